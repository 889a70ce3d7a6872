"""Seconds per caption-stage step on this machine: the shipped build's stage (captions only, tower
frozen) against the motion stage (captions + motion read-out at layer 10, tower trained), on the same
build's clips, connector and settings (batch 1, LoRA r 16), 5 steps each.

    python benchmark/toyworld-steps/step_time.py captions THREADS   (needs a build's work folder: WORK)
    python benchmark/toyworld-steps/step_time.py motion THREADS
"""
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from rbft import models
from rbft.config import ModelConfig, FrameConfig, TrainConfig
from rbft.project import open_project
from rbft.train import train_stage
from rbft.toyworld import build as M
from rbft.toyworld.motion_stage import motion_stage
torch.set_num_threads(int(sys.argv[2]))
work, kind = Path(os.environ.get("WORK", "toyworld-build")), sys.argv[1]
store = open_project(work / "project")
examples = M.caption_examples(store.videos(split="train"), 0)
lm = models.load(ModelConfig(model=str(work / "base"), quantization="none"))
M.load_vision(lm, work / "sight" / M.VISION_FILE)
M.align_connector(work, store, lm, examples, M.BuildConfig(), print)
for p in M.find_module(lm, "vision_model").parameters(): p.requires_grad_(False)
times = []
def on(e):
    if e.kind == "loss": times.append(time.time()); print(e.data, time.time(), flush=True)
cfg = TrainConfig(max_steps=5, batch_size=1, learning_rate=5e-4, lora_r=16, lora_alpha=32, eval_every=0, save_every=1000,
                  seed=0, train_modules=["connector"] + (["vision_model"] if kind == "motion" else []))
frames = FrameConfig(8, 128)
out = Path(tempfile.mkdtemp()) / kind
if kind == "motion":
    motion_stage(store, lm, examples, frames, cfg, out, 1.0, on)
else:
    train_stage(store, lm, examples, frames, cfg, out, "toyworld", on_event=on)
gaps = [b - a for a, b in zip(times, times[1:])]
print(kind, "seconds per step (steps 2-5):", [round(g, 1) for g in gaps], "mean", round(sum(gaps) / len(gaps), 1))
result = Path(__file__).parent / "steps.json"
found = json.loads(result.read_text()) if result.exists() else {}
found[f"{kind}, {torch.get_num_threads()} thread(s)"] = {"seconds_per_step": gaps, "mean": sum(gaps) / len(gaps)}
result.write_text(json.dumps(found, indent=2))
