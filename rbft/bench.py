"""`python -m rbft bench`: the waits users feel, measured on the machine it runs on.

Four sections, each the median of several runs, settings printed with the table:
  frames    seek-based sampling vs decoding every frame of a long video; cache hit vs first read
  generate  rationales batched (B videos per call) vs one video at a time
  train     LoRA training samples per second and peak RSS: bf16 and nf4, two frame settings
  score     label scoring of C classes in one batched forward vs C separate forwards

The default model is `random:smolvlm-256m`: SmolVLM2-256M's exact dimensions with random
weights, built offline, so the timings are those of a real ~256M VLM (the answers are noise).
"""
from __future__ import annotations

import json
import multiprocessing
import platform
import resource
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .config import FrameConfig, GenerationConfig, ModelConfig, TrainConfig
from .events import Event, EventSink, ignore

SECTIONS = ("frames", "generate", "train", "score")


@dataclass
class BenchConfig:
    model: str = field(default="random:smolvlm-256m", metadata={"help": "model to time (Hub id, folder, tiny:*, random:*)"})
    num_frames: int = field(default=8, metadata={"help": "frames per video"})
    max_side: int = field(default=384, metadata={"help": "frame side in pixels"})
    repeats: int = field(default=3, metadata={"help": "runs per measurement (the median is reported)"})
    batch: int = field(default=4, metadata={"help": "videos per batched generation call"})
    new_tokens: int = field(default=32, metadata={"help": "tokens generated per rationale (forced, for equal work)"})
    train_steps: int = field(default=4, metadata={"help": "LoRA steps per training measurement"})
    train_frames: list = field(default_factory=lambda: [4, 8], metadata={"help": "frame counts for training"})
    classes: int = field(default=3, metadata={"help": "class options scored per video"})
    long_video_frames: int = field(default=3000, metadata={"help": "length of the long video (frames at 25 fps)"})
    sections: list = field(default_factory=lambda: list(SECTIONS), metadata={"help": "what to measure"})


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def row(section: str, what: str, value: float, unit: str, target: str = "", met=None, note: str = "") -> dict:
    return {"section": section, "what": what, "value": value, "unit": unit, "target": target, "met": met,
            "note": note}


# ---- sections --------------------------------------------------------------------------------

def bench_frames(cfg: BenchConfig, work: Path) -> list[dict]:
    from . import frames as F
    from .synthetic import long_video
    video = long_video(work / "long.mp4", n_frames=cfg.long_video_frames, size=256)
    fc = FrameConfig(cfg.num_frames, cfg.max_side)
    seek = median_seconds(lambda: F.sample_frames(video, fc), cfg.repeats)
    decode_all = median_seconds(lambda: F._sample_by_decoding(video, fc), cfg.repeats)
    sha = F.file_sha256(video)
    cache = work / "cache"

    def first_read():
        F.cache_path(cache, sha, fc).unlink(missing_ok=True)
        F.load_clip(video, sha, fc, cache)

    first = median_seconds(first_read, cfg.repeats)
    F.load_clip(video, sha, fc, cache)
    hit = median_seconds(lambda: F.load_clip(video, sha, fc, cache), cfg.repeats)
    return [
        row("frames", f"sample {cfg.num_frames} frames by seeking ({cfg.long_video_frames}-frame video)", seek, "s"),
        row("frames", "decode every frame, then sample", decode_all, "s"),
        row("frames", "seek speed-up over decoding all", decode_all / seek, "x"),
        row("frames", "first read (sample + write cache)", first, "s"),
        row("frames", "cached read", hit, "s"),
        row("frames", "cached read speed-up", first / hit, "x", ">= 5x", first / hit >= 5),
    ]


def _clips(cfg: BenchConfig, n: int, num_frames: int) -> list:
    from .frames import Clip
    from .synthetic import render_clip
    import cv2
    out = []
    for i in range(n):
        small = render_clip(("left", "right", "fall")[i % 3], 100 + i, size=96, n_frames=num_frames)
        big = np.stack([cv2.cvtColor(cv2.resize(f, (cfg.max_side, cfg.max_side)), cv2.COLOR_BGR2RGB)
                        for f in small])
        out.append(Clip(big, 8.0, num_frames * 4, list(range(0, num_frames * 4, 4))))
    return out


def bench_generate(cfg: BenchConfig, lm) -> list[dict]:
    from . import models
    fc = FrameConfig(cfg.num_frames, cfg.max_side)
    gen = GenerationConfig(max_new_tokens=cfg.new_tokens, batch_size=cfg.batch)
    lm.model.generation_config.min_new_tokens = cfg.new_tokens  # equal work batched and alone
    clips = _clips(cfg, cfg.batch, cfg.num_frames)
    prompt = "Describe what happens in this video, in temporal order."
    single = median_seconds(lambda: [models.generate(lm, [prompt], [c], fc, gen) for c in clips], cfg.repeats)
    batched = median_seconds(lambda: models.generate(lm, [prompt] * len(clips), clips, fc, gen), cfg.repeats)
    lm.model.generation_config.min_new_tokens = None
    per_min_single, per_min_batched = 60 * len(clips) / single, 60 * len(clips) / batched
    return [
        row("generate", f"one video at a time ({cfg.new_tokens} tokens each)", per_min_single, "videos/min"),
        row("generate", f"batched, {cfg.batch} videos per call", per_min_batched, "videos/min",
            ">= 12/min", per_min_batched >= 12),
        row("generate", "batched speed-up", per_min_batched / per_min_single, "x", ">= 3x",
            per_min_batched / per_min_single >= 3),
    ]


def bench_score(cfg: BenchConfig, lm) -> list[dict]:
    from . import models
    fc = FrameConfig(cfg.num_frames, cfg.max_side)
    clip = _clips(cfg, 1, cfg.num_frames)[0]
    names = ["routine", "near miss", "incident", "unclear", "other", "tampering"][:cfg.classes]
    prompt = f"Which class is this video? Classes: {', '.join(names)}. Answer with the class name."
    batched = median_seconds(lambda: models.score_options(lm, prompt, clip, fc, names), cfg.repeats)
    separate = median_seconds(lambda: [models.score_options(lm, prompt, clip, fc, [n]) for n in names],
                              cfg.repeats)
    return [
        row("score", f"{len(names)} classes: video encoded once, options batched on its cache", batched, "s"),
        row("score", f"{len(names)} classes: {len(names)} separate full forwards", separate, "s"),
        row("score", "batched speed-up", separate / batched, "x"),
    ]


def _train_worker(model: str, quantization: str, num_frames: int, max_side: int, steps: int) -> dict:
    """One training measurement in a fresh process, so its peak RSS is its own."""
    from . import models
    from .data import ingest
    from .experiment import label_examples
    from .project import open_project
    from .synthetic import make_dataset
    from .train import train_stage
    with tempfile.TemporaryDirectory() as tmp:
        store = open_project(Path(tmp) / "project")
        ingest(store, make_dataset(Path(tmp) / "clips", per_class=3, motions=("left", "right", "fall"),
                                   size=96, n_frames=24))
        lm = models.load(ModelConfig(model=model, quantization=quantization))
        steps_at = []
        sink = lambda e: steps_at.append(time.perf_counter()) if e.kind == "progress" else None  # noqa: E731
        fc = FrameConfig(num_frames, max_side)
        train_stage(store, lm, label_examples(store), fc,
                    TrainConfig(max_steps=steps, batch_size=1, eval_every=0, save_every=steps + 1),
                    Path(tmp) / "run", "bench", on_event=sink)
        # from the end of step 1 to the end of the last step: the first step's warm-up left out
        per_step = (steps_at[-1] - steps_at[0]) / max(len(steps_at) - 1, 1)
        return {"samples_per_min": 60 / per_step, "seconds_per_step": per_step, "peak_rss_mb": peak_rss_mb(),
                "quantized": lm.quantized, "device": lm.device}


def bench_train(cfg: BenchConfig, emit: EventSink) -> list[dict]:
    ctx = multiprocessing.get_context("spawn")
    rows = []
    for quantization, label in (("none", "LoRA bf16"), ("nf4", "QLoRA nf4")):
        for n in cfg.train_frames:
            emit(Event("log", "bench", message=f"training: {label}, {n} frames"))
            with ctx.Pool(1) as pool:
                r = pool.apply(_train_worker, (cfg.model, quantization, n, cfg.max_side, cfg.train_steps))
            setting = f"{label}, {n} frames at {cfg.max_side} px, batch 1"
            rows.append(row("train", setting, r["samples_per_min"], "samples/min", ">= 12/min",
                            r["samples_per_min"] >= 12, f"{r['seconds_per_step']:.2f} s/step"))
            rows.append(row("train", f"{setting}: peak RSS", r["peak_rss_mb"] / 1024, "GB", "< 6 GB",
                            r["peak_rss_mb"] / 1024 < 6))
    return rows


def run_bench(cfg: BenchConfig, on_event: EventSink = ignore) -> dict:
    from . import models
    from .report import versions
    unknown = set(cfg.sections) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown bench section(s) {sorted(unknown)}; sections are {', '.join(SECTIONS)}")
    rows, started = [], time.time()
    with tempfile.TemporaryDirectory() as tmp:
        if "frames" in cfg.sections:
            on_event(Event("log", "bench", message="frames"))
            rows += bench_frames(cfg, Path(tmp))
        if {"generate", "score"} & set(cfg.sections):
            lm = models.load(ModelConfig(model=cfg.model, quantization="none"))
            if "generate" in cfg.sections:
                on_event(Event("log", "bench", message="generation"))
                rows += bench_generate(cfg, lm)
            if "score" in cfg.sections:
                on_event(Event("log", "bench", message="label scoring"))
                rows += bench_score(cfg, lm)
            rows.append(row("memory", "peak RSS of generation and scoring (bf16)", peak_rss_mb() / 1024, "GB",
                            "< 6 GB", peak_rss_mb() / 1024 < 6))
            del lm
        if "train" in cfg.sections:
            rows += bench_train(cfg, on_event)
    import os
    machine = (f"{platform.node()}: {os.cpu_count()} cores, {platform.machine()}, "
               f"{_gpu_name() or 'no GPU'}")
    return {"settings": asdict(cfg), "rows": rows, "machine": machine, "date": time.strftime("%Y-%m-%d"),
            "versions": versions(), "seconds": time.time() - started}


def _gpu_name() -> str:
    import torch
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""


def format_bench(result: dict) -> str:
    s = result["settings"]
    lines = [f"Measured {result['date']} on {result['machine']}; model `{s['model']}`, {s['num_frames']} frames at "
             f"{s['max_side']} px, median of {s['repeats']} runs, {result['seconds']:.0f} s in all.", "",
             "| section | measurement | value | target | met |", "|---|---|---|---|---|"]
    for r in result["rows"]:
        value = f"{r['value']:.3f} {r['unit']}" if r["unit"] == "s" else f"{r['value']:.1f} {r['unit']}"
        if r["note"]:
            value += f" ({r['note']})"
        met = "" if r["met"] is None else ("yes" if r["met"] else "**no**")
        lines.append(f"| {r['section']} | {r['what']} | {value} | {r['target']} | {met} |")
    return "\n".join(lines)


def write(result: dict, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / "bench.md", out_dir / "bench.json"
    md.write_text(format_bench(result) + "\n")
    js.write_text(json.dumps(result, indent=2))
    return md, js
