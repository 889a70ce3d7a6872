"""`python -m rbft bench`: the waits users feel, measured on the machine it runs on.

Sections (the CPU ones the median of several runs), settings printed with the table:
  frames    seek-based sampling vs decoding every frame of a long video; cache hit vs first read
  generate  rationales batched (B videos per call) vs one video at a time
  train     LoRA training samples per second and peak RSS: bf16 and nf4, two frame settings
  score     label scoring of C classes in one batched forward vs C separate forwards
  train-memory  training peak RSS at batch 1 and 4, transformers' default path vs the lean one (on request)
  gpu       where CUDA is: training samples/s and peak GPU memory at fixed batches and auto, both
            paths; generation videos/min at batch 1, 8 and auto

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

SECTIONS = ("frames", "generate", "train", "score", "train-memory", "gpu")
DEFAULT_SECTIONS = ("frames", "generate", "train", "score", "gpu")   # train-memory spawns 4 processes: on request


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
    sections: list = field(default_factory=lambda: list(DEFAULT_SECTIONS),
                           metadata={"help": f"what to measure, of {', '.join(SECTIONS)} (gpu: only where CUDA is)"})
    gpu_models: list = field(default_factory=lambda: ["random:smolvlm-256m"],
                             metadata={"help": "models the gpu section trains and generates with "
                                               "(random:<recommended model id> gives its real dimensions)"})
    gpu_quantization: str = field(default="nf4", metadata={"help": "loading for the gpu section: nf4 or none"})
    gpu_batches: list = field(default_factory=lambda: [1, 4, 8], metadata={"help": "fixed batches the gpu section trains at"})
    gpu_auto_batch: int = field(default=64, metadata={"help": "effective batch of the gpu section's auto row"})
    gpu_default_path: bool = field(default=True, metadata={"help": "also train on transformers' default (not lean) path, for the before/after"})
    gpu_checkpointing: str = field(default="auto", metadata={"help": "gradient checkpointing in the gpu section: auto (on), on or off"})
    gpu_generate: bool = field(default=True, metadata={"help": "also time generation in the gpu section"})


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


def _memory_worker(model: str, num_frames: int, max_side: int, batch: int, lean: bool) -> dict:
    """Peak RSS of two LoRA steps at this batch, in a fresh process (bf16, no checkpointing: the CPU default)."""
    from . import models
    from .data import ingest
    from .experiment import label_examples
    from .project import open_project
    from .synthetic import make_dataset
    from .train import train_stage
    with tempfile.TemporaryDirectory() as tmp:
        store = open_project(Path(tmp) / "project")
        ingest(store, make_dataset(Path(tmp) / "clips", per_class=2, motions=("left", "right", "fall"),
                                   size=max_side, n_frames=2 * num_frames))
        lm = models.load(ModelConfig(model=model, quantization="none"))
        before = peak_rss_mb()
        train_stage(store, lm, label_examples(store), FrameConfig(num_frames, max_side),
                    TrainConfig(max_steps=2, batch_size=batch, lean=lean, eval_every=0, save_every=10),
                    Path(tmp) / "run", "bench")
        return {"peak_rss_mb": peak_rss_mb(), "loaded_rss_mb": before}


def bench_memory(cfg: BenchConfig, emit: EventSink) -> list[dict]:
    """Training memory per sample on this CPU: peak RSS at batch 1 and 4, transformers' default path
    against the lean one (each measurement in its own process)."""
    ctx = multiprocessing.get_context("spawn")
    rows, peaks = [], {}
    for lean in (False, True):
        for batch in (1, 4):
            emit(Event("log", "bench", message=f"memory: {'lean' if lean else 'default path'}, batch {batch}"))
            with ctx.Pool(1) as pool:
                peaks[lean, batch] = pool.apply(_memory_worker, (cfg.model, cfg.num_frames, cfg.max_side, batch,
                                                                 lean))["peak_rss_mb"] / 1024
        per_sample = (peaks[lean, 4] - peaks[lean, 1]) / 3
        label = "lean" if lean else "default path"
        rows.append(row("train-memory", f"training peak RSS, {label}, batch 4", peaks[lean, 4], "GB",
                        note=f"batch 1: {peaks[lean, 1]:.2f} GB"))
        rows.append(row("train-memory", f"training memory per added sample, {label}", per_sample, "GB"))
    return rows


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


def bench_gpu(cfg: BenchConfig, model: str, work: Path, emit: EventSink) -> list[dict]:
    """On the GPU, with one loaded model: training samples/s and peak GPU memory at fixed batches and
    at auto (both paths: transformers' default and the lean one), generation videos/min at batch 1, 8
    and auto. Rows are streamed to `emit` as they are measured, so a cut-off run keeps what it had."""
    import torch

    from . import memory, models, presets
    from .data import ingest
    from .experiment import label_examples
    from .project import open_project
    from .synthetic import make_dataset
    from .train import VideoTextDataset, stage_stats, train_stage
    store = open_project(work / f"project-{len(list(work.glob('project-*'))) if work.exists() else 0}")
    ingest(store, make_dataset(store.root / "clips", per_class=4, motions=("left", "right", "fall"),
                               size=cfg.max_side, n_frames=max(16, 2 * cfg.num_frames)))
    lm = models.load(ModelConfig(model=model, quantization=cfg.gpu_quantization))
    fc = FrameConfig(cfg.num_frames, cfg.max_side)
    examples = label_examples(store)
    seq = memory.sequence_of(lm, VideoTextDataset(store, lm, examples, fc)[0])
    clip = (f"{model}, {'nf4' if lm.quantized else 'bf16'}, {cfg.num_frames} frames of {cfg.max_side}x{cfg.max_side} px, "
            f"{seq.tokens} tokens per example ({seq.visual_tokens} visual)"
            + (", no gradient checkpointing" if cfg.gpu_checkpointing == "off" else ""))
    emit(Event("log", "bench", message=f"gpu: {clip}"))
    rows: list[dict] = []

    def sync():
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def train(label: str, batch: int, micro: str, lean: bool):
        out = work / f"run-{len(list(work.glob('run-*')))}"
        tc = TrainConfig(max_steps=cfg.train_steps + 1, batch_size=batch, micro_batch=micro, lean=lean,
                         eval_every=0, save_every=10 ** 6, gradient_checkpointing=cfg.gpu_checkpointing)
        try:
            train_stage(store, lm, examples, fc, tc, out, "bench")
        except torch.OutOfMemoryError:
            lm.model.zero_grad(set_to_none=True)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            rows.append(row("gpu train", f"{clip}: {label}", float("nan"), "samples/s", note="out of memory"))
            emit(Event("log", "bench", message=f"gpu train {label}: out of memory", data=rows[-1]))
            return None
        st = stage_stats(out)
        rows.append(row("gpu train", f"{clip}: {label}", st["samples_per_s"], "samples/s",
                        note=f"{st['seconds_per_step']:.3f} s/step, peak {st['peak_gpu_gb'] or 0:.2f} GB, "
                             f"{st['micro_batch']} per forward x {st['grad_accum']}"))
        rows[-1]["peak_gpu_gb"], rows[-1]["stats"] = st["peak_gpu_gb"], st
        emit(Event("log", "bench", message=f"gpu train {label}: {rows[-1]['note']}", data=rows[-1]))
        return st

    paths = ([False] if cfg.gpu_default_path else []) + [True]
    for lean in paths:
        for b in cfg.gpu_batches:
            train(f"{'lean' if lean else 'default path'}, batch {b}", b, str(b), lean)
    one = next((r for r in rows if r["what"].endswith("lean, batch 1") and r["value"] == r["value"]), None)
    auto = (train(f"lean, auto (effective batch {cfg.gpu_auto_batch})", cfg.gpu_auto_batch, "auto", True)
            if cfg.gpu_auto_batch else None)
    if auto and one:
        speedup = auto["samples_per_s"] / one["value"]
        rows.append(row("gpu train", f"{clip}: auto over batch 1", speedup, "x", ">= 4x", speedup >= 4))
    if not cfg.gpu_generate:
        lm.model = None
        return rows
    # generation: the same clips, forced to equal length
    from .config import GenerationConfig
    from .project import clip as project_clip
    videos = store.videos()
    dims = memory.dims(model, config=lm.config)
    free = ((torch.cuda.mem_get_info()[0] + torch.cuda.memory_allocated()) / 1e9 if torch.cuda.is_available()
            else presets.available_gb("cpu"))
    gen_auto = memory.largest_generation_batch(dims, seq, cfg.new_tokens, free, lm.quantized, upto=64)
    lm.model.eval()
    lm.model.generation_config.min_new_tokens = cfg.new_tokens
    for label, b in (("batch 1", 1), ("batch 8", 8), (f"auto ({gen_auto})", gen_auto)):
        clips = [project_clip(store, videos[i % len(videos)], fc) for i in range(max(b, 8))]
        gen = GenerationConfig(max_new_tokens=cfg.new_tokens, batch_size=b)
        models.generate(lm, ["Describe what happens."] * b, clips[:b], fc, gen)  # warm-up
        sync()
        start = time.perf_counter()
        for i in range(0, len(clips), b):
            models.generate(lm, ["Describe what happens."] * len(clips[i:i + b]), clips[i:i + b], fc, gen)
        sync()
        per_min = 60 * len(clips) / (time.perf_counter() - start)
        rows.append(row("gpu generate", f"{clip}: {label}, {cfg.new_tokens} tokens each", per_min, "videos/min"))
        emit(Event("log", "bench", message=f"gpu generate {label}: {per_min:.1f} videos/min", data=rows[-1]))
    lm.model.generation_config.min_new_tokens = None
    lm.model = None   # release the weights before the next model loads
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
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
        if "train-memory" in cfg.sections:
            rows += bench_memory(cfg, on_event)
        if "gpu" in cfg.sections and _gpu_name():
            for model in cfg.gpu_models:
                rows += bench_gpu(cfg, model, Path(tmp) / "gpu", on_event)
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
    cpu_sections = [x for x in s["sections"] if x != "gpu"]
    what = (f"model `{s['model']}`, {s['num_frames']} frames at {s['max_side']} px, median of {s['repeats']} runs"
            if cpu_sections else f"gpu section: {', '.join(s['gpu_models'])}, {s['num_frames']} frames of "
            f"{s['max_side']} px clips, {s['train_steps']} timed steps per row")
    lines = [f"Measured {result['date']} on {result['machine']}; {what}, {result['seconds']:.0f} s in all.", "",
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
