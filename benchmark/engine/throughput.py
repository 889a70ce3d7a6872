"""Clips per minute of Stage I generation for 100 toy-world clips: in process (batched) and through
`transformers serve` with continuous batching at 1, 4 and 16 requests in flight (issue 36).

    python benchmark/engine/throughput.py [WORK] [--clips 100] [--new-tokens 64]

Run it with nothing else on the machine. Writes benchmark/engine/throughput.json: the machine, the
settings, per engine the seconds, clips per minute and tokens per second, and how the server's greedy
rationales compare with the in-process ones for the same clips (the server gets the frames as images,
the in-process model as a video: see docs/speed.md).
"""
import argparse
import json
import os
import platform
import socket
import time
from pathlib import Path

import torch

from rbft import data, models, project
from rbft.config import EngineConfig, FrameConfig, GenerationConfig, ModelConfig
from rbft.engine import Server, start_transformers_serve, wait_until_ready
from rbft.rationales import generate_rationales
from rbft.synthetic import write_video
from rbft.toyworld import world

parser = argparse.ArgumentParser()
parser.add_argument("work", nargs="?", default="/tmp/rbft-engine-bench")
parser.add_argument("--clips", type=int, default=100)
parser.add_argument("--new-tokens", type=int, default=64)
parser.add_argument("--batch", type=int, default=8)
args = parser.parse_args()
work = Path(args.work)
frames = FrameConfig(8, 128)
gen = GenerationConfig(max_new_tokens=args.new_tokens, batch_size=args.batch)

folder = work / "clips" / "clip"
for i in range(args.clips):
    path = folder / f"{700_000 + i}.webm"
    if not path.exists():
        clip = world.render(700_000 + i)
        write_video(path, clip.frames[..., ::-1], fps=clip.fps)
store = project.open_project(work / "project")
if len(store.videos()) < args.clips:
    data.ingest(store, work / "clips", seed=0)
project.configure(store, domain="shapes moving on a screen")
videos = [v["id"] for v in store.videos()]

lm = models.load(ModelConfig(model="toyworld", quantization="none"))
folder_name = str(models.resolve("toyworld"))
rows, texts = [], {}


def tokens(model: str) -> int:
    return sum(len(lm.tokenizer.encode(r["text"], add_special_tokens=False))
               for r in store.rationales(model=model) if r["video_id"] in videos)


def measure(name: str, engine, in_flight=None) -> None:
    started = time.perf_counter()
    result = generate_rationales(store, engine, frames, gen, video_ids=videos, overwrite=True)
    seconds = time.perf_counter() - started
    model = engine if isinstance(engine, str) else engine.name
    n = tokens(model)
    texts[name] = {r["video_id"]: r["text"] for r in store.rationales(model=model)}
    rows.append({"engine": name, "in_flight": in_flight, "clips": len(videos) - len(result["failed"]),
                 "failed": len(result["failed"]), "seconds": round(seconds, 1),
                 "clips_per_min": round(len(videos) / seconds * 60, 1), "tokens": n,
                 "tokens_per_s": round(n / seconds, 1)})
    print(rows[-1], flush=True)


measure(f"in-process, batches of {args.batch}", lm)
gen_batch = gen
gen = GenerationConfig(max_new_tokens=args.new_tokens, batch_size=1)
measure("in-process, one clip at a time", lm)   # the server's requests run one at a time: the fair baseline
gen = gen_batch

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
proc = start_transformers_serve(folder_name, port, "--continuous-batching", "--dtype",
                                str(lm.dtype).removeprefix("torch."), log=work / "serve.log")
url = f"http://127.0.0.1:{port}/v1"
try:
    wait_until_ready(url, proc)
    for in_flight in (1, 4, 16):
        measure(f"transformers serve --continuous-batching, {in_flight} in flight",
                Server(EngineConfig(engine="server", base_url=url, in_flight=in_flight)), in_flight)
finally:
    proc.kill()

local = texts[f"in-process, batches of {args.batch}"]
served = texts["transformers serve --continuous-batching, 1 in flight"]
same = [v for v in videos if local.get(v) == served.get(v)]


def first_difference(a: str, b: str) -> int:
    x, y = lm.tokenizer.encode(a, add_special_tokens=False), lm.tokenizer.encode(b, add_special_tokens=False)
    return next((i for i, (p, q) in enumerate(zip(x, y)) if p != q), min(len(x), len(y)))


report = {
    "machine": {"cpu": platform.processor() or open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": \t"),
                "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "compute": lm.compute.reason},
    "model": f"toyworld ({folder_name})", "frames": "8 x 128 px", "new_tokens": args.new_tokens,
    "rows": rows,
    "greedy_agreement": {"clips": len(videos), "identical": len(same),
                         "mean_first_differing_token": round(sum(first_difference(local[v], served[v]) for v in videos)
                                                             / len(videos), 1),
                         "why": "in process the clip goes in as one video; through transformers serve, which "
                                "decodes video_url only with torchcodec, as 8 PNG images (other visual tokens)"},
    "command": "python benchmark/engine/throughput.py",
}
out = Path(__file__).with_name("throughput.json")
out.write_text(json.dumps(report, indent=2))
print(json.dumps(report, indent=2))
