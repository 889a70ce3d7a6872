"""Profile one caption-stage step (forward + backward, LoRA r16 + merger, the build's first training
example) and one label-scoring pass of the Qwen-family toy-world build, against the CPU's matmul rate.

    python benchmark/toyworld-qwen/profile_step.py WORK      # WORK: a finished build (python -m rbft toyworld ...)

Prints the compute type, seconds, the matmul FLOPs torch's profiler counts, and the rate they imply;
compare it with ../shared/tools/cpu-dtype-probe.py's figure for the same type (nothing else running).
"""
import json
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from rbft import models
from rbft.config import FrameConfig, ModelConfig, TrainConfig
from rbft.project import clip as project_clip
from rbft.project import open_project
from rbft.toyworld.build import caption_examples, load_vision
from rbft.train import add_lora

work = Path(sys.argv[1])
store = open_project(work / "project")
examples = caption_examples(store.videos(split="train"), 0)
lm = models.load(ModelConfig(model=str(work / "base"), quantization="none", dtype="auto"))
load_vision(lm, work / "sight" / "vision.safetensors")
frames = FrameConfig(8, 128)
ex = examples[0]
clip = project_clip(store, ex.video, frames)
item = models.encode(lm, ex.prompt, clip, frames, answer=ex.answer)
batch = models.to_model(lm, models.collate([item], lm.tokenizer.pad_token_id))
add_lora(lm, TrainConfig(lora_r=16, lora_alpha=32, train_modules=["merger"]))
lm.model.train()


def step():
    loss = lm.model(**batch).loss
    loss.backward()
    return loss


def flops_and_seconds(fn, repeat=3):
    fn()   # warm
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    seconds = (time.perf_counter() - start) / repeat
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        fn()
    flops = sum(e.flops for e in prof.key_averages() if e.flops)
    top = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8)
    return flops, seconds, top


tokens = int(batch["input_ids"].shape[1])
f, s, top = flops_and_seconds(step)
lm.model.eval()
with torch.no_grad():
    g, t, top2 = flops_and_seconds(lambda: models.score_options(lm, "Which class?", clip, frames, ["incident", "near miss", "routine"]))
report = {"compute_type": lm.compute.name, "sequence_tokens": tokens,
          "caption_step": {"seconds": round(s, 3), "matmul_gflop": round(f / 1e9, 1), "gflop_per_s": round(f / 1e9 / s, 1)},
          "scoring_pass_3_options": {"seconds": round(t, 3), "matmul_gflop": round(g / 1e9, 1), "gflop_per_s": round(g / 1e9 / t, 1)}}
print(json.dumps(report, indent=1))
print(top)
print(top2)
