"""`python -m rbft bench`: the waits users feel, measured on the machine it runs on.

Sections (the CPU ones the median of several runs), settings printed with the table:
  machine   the CPU, torch's view of it, whether it has a native bf16 path, float32 and bfloat16
            matmul speed (rbft.dtypes' probe) and the compute type auto picks
  toyworld  the toy-world VLM's training step (batch 1, 8 frames of 128 px) in float32 and in
            bfloat16, and caption evaluation in clips per minute (where the toy-world VLM can be had)
  frames    seek-based sampling vs decoding every frame of a long video; cache hit vs first read
  generate  rationales batched (B videos per call) vs one video at a time
  train     LoRA training samples per second and peak RSS: unquantized and nf4, two frame settings,
            in the compute type auto picks
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
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..config import FrameConfig, GenerationConfig, ModelConfig, TrainConfig
from ..events import Event, EventSink, ignore
from .bench_config import SECTIONS, BenchConfig, row
from .bench_gpu import _gpu_name, bench_gpu


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- sections --------------------------------------------------------------------------------

def bench_frames(cfg: BenchConfig, work: Path) -> list[dict]:
    from .. import frames as F
    from ..synthetic import long_video
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
    import cv2

    from ..frames import Clip
    from ..synthetic import render_clip
    out = []
    for i in range(n):
        small = render_clip(("left", "right", "fall")[i % 3], 100 + i, size=96, n_frames=num_frames)
        big = np.stack([cv2.cvtColor(cv2.resize(f, (cfg.max_side, cfg.max_side)), cv2.COLOR_BGR2RGB)
                        for f in small])
        out.append(Clip(big, 8.0, num_frames * 4, list(range(0, num_frames * 4, 4))))
    return out


def bench_generate(cfg: BenchConfig, lm) -> list[dict]:
    from .. import models
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
    from .. import models
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
    from .. import models
    from ..data import ingest
    from ..project import open_project
    from ..synthetic import make_dataset
    from ..train import train_stage
    from .experiment import label_examples
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
                "quantized": lm.quantized, "device": lm.device, "dtype": lm.compute.name}


def _memory_worker(model: str, num_frames: int, max_side: int, batch: int, lean: bool) -> dict:
    """Peak RSS of two LoRA steps at this batch, in a fresh process (bf16, no checkpointing: the CPU default)."""
    from .. import models
    from ..data import ingest
    from ..project import open_project
    from ..synthetic import make_dataset
    from ..train import train_stage
    from .experiment import label_examples
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
    for quantization, label in (("none", "LoRA"), ("nf4", "QLoRA nf4")):
        for n in cfg.train_frames:
            emit(Event("log", "bench", message=f"training: {label}, {n} frames"))
            with ctx.Pool(1) as pool:
                r = pool.apply(_train_worker, (cfg.model, quantization, n, cfg.max_side, cfg.train_steps))
            setting = f"{label} {r['dtype']}, {n} frames at {cfg.max_side} px, batch 1"
            rows.append(row("train", setting, r["samples_per_min"], "samples/min", ">= 12/min",
                            r["samples_per_min"] >= 12, f"{r['seconds_per_step']:.2f} s/step"))
            rows.append(row("train", f"{setting}: peak RSS", r["peak_rss_mb"] / 1024, "GB", "< 6 GB",
                            r["peak_rss_mb"] / 1024 < 6))
    return rows


def bench_machine() -> tuple[dict, list[dict]]:
    """The machine and the compute types (rbft.dtypes' probe, remembered per machine)."""
    from .. import dtypes
    m = dtypes.describe_machine()
    native = ", ".join(m["native_bf16_flags"]) or "none"
    rows = [row("machine", f"CPU: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, capability {m['capability']}",
                m["cores"], "cores"),
            row("machine", "float32 matmul, forward + backward (576 x 1536, 64 tokens)", m["float32_gflops"], "GFLOP/s"),
            row("machine", "bfloat16 matmul, forward + backward", m["bfloat16_gflops"], "GFLOP/s",
                note=f"native bf16 flags: {native}; oneDNN bf16: {'yes' if m['onednn_bf16'] else 'no'}"),
            row("machine", f"bfloat16 over float32 (auto picks {m['auto_picks']})", m["bf16_speedup"], "x")]
    return m, rows


def _toyworld_step_worker(dtype: str, steps: int) -> dict:
    """Seconds per `rbft train --arm sft` step of the toy-world VLM (batch 1, 8 frames of 128 px), in a
    fresh process so that each type starts cold."""
    from .. import models
    from ..data import ingest
    from ..project import open_project, render
    from ..synthetic import write_video
    from ..toyworld import world
    from ..train import Example, stage_stats, train_stage
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(4):
            clip = world.render(700_000 + i)
            write_video(Path(tmp) / "clips" / ("a", "b")[i % 2] / f"{i}.webm", clip.frames[..., ::-1], fps=clip.fps)
        store = open_project(Path(tmp) / "project")
        ingest(store, Path(tmp) / "clips")
        lm = models.load(ModelConfig(model="toyworld", dtype=dtype))
        text = render(store, "classify")
        examples = [Example(v, text, v["label"]) for v in store.videos()]
        train_stage(store, lm, examples, FrameConfig(8, 128),
                    TrainConfig(max_steps=steps + 1, batch_size=1, eval_every=0, save_every=steps + 2),
                    Path(tmp) / "run", "bench")
        per_step = stage_stats(Path(tmp) / "run")["seconds_per_step"]   # the first step's warm-up left out
        return {"seconds_per_step": per_step, "dtype": lm.compute.name}


def bench_toyworld(cfg: BenchConfig, emit: EventSink) -> list[dict]:
    """The toy-world VLM on this machine: a training step in each type, and captions per minute."""
    from .. import models
    from ..toyworld import evaluation, shipped
    if not shipped.available():
        emit(Event("log", "bench", message=f"toyworld: skipped ({shipped.unavailable_reason()})"))
        return []
    shipped.model_dir()   # assembled once, outside the timings
    ctx = multiprocessing.get_context("spawn")
    rows = []
    for dtype in ("float32", "bfloat16"):
        emit(Event("log", "bench", message=f"toyworld: training steps in {dtype}"))
        with ctx.Pool(1) as pool:
            r = pool.apply(_toyworld_step_worker, (dtype, cfg.toyworld_steps))
        rows.append(row("toyworld", f"training step, {dtype}, batch 1, 8 frames of 128 px", r["seconds_per_step"],
                        "s", "<= 3 s", r["seconds_per_step"] <= 3))
    emit(Event("log", "bench", message=f"toyworld: captions of {cfg.toyworld_clips} held-out clips"))
    lm = models.load(ModelConfig(model="toyworld"))
    start = time.perf_counter()
    evaluation.evaluate_captions(lm, [evaluation.HELD_OUT_SEEDS + i for i in range(cfg.toyworld_clips)])
    per_min = 60 * cfg.toyworld_clips / (time.perf_counter() - start)
    rows.append(row("toyworld", f"caption evaluation, {lm.compute.name}, batches of 25, up to 120 new tokens",
                    per_min, "clips/min", ">= 20/min (100 clips in 5 min)", per_min >= 20))
    return rows


def run_bench(cfg: BenchConfig, on_event: EventSink = ignore) -> dict:
    from .. import models
    from .report import versions
    unknown = set(cfg.sections) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown bench section(s) {sorted(unknown)}; sections are {', '.join(SECTIONS)}")
    rows, started, machine_info = [], time.time(), None
    with tempfile.TemporaryDirectory() as tmp:
        if "machine" in cfg.sections:
            machine_info, found = bench_machine()
            rows += found
        if "toyworld" in cfg.sections:
            rows += bench_toyworld(cfg, on_event)
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
            rows.append(row("memory", f"peak RSS of generation and scoring ({lm.compute.name})", peak_rss_mb() / 1024, "GB",
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
    return {"settings": asdict(cfg), "rows": rows, "machine": machine, "machine_info": machine_info,
            "date": time.strftime("%Y-%m-%d"),
            "versions": versions(), "seconds": time.time() - started}


def format_bench(result: dict) -> str:
    s = result["settings"]
    cpu_sections = [x for x in s["sections"] if x != "gpu"]
    what = (f"model `{s['model']}`, {s['num_frames']} frames at {s['max_side']} px, median of {s['repeats']} runs"
            if cpu_sections else f"gpu section: {', '.join(s['gpu_models'])}, {s['num_frames']} frames of "
            f"{s['max_side']} px clips, {s['train_steps']} timed steps per row")
    cpu = (result.get("machine_info") or {}).get("cpu")
    lines = [f"Measured {result['date']} on {result['machine']}" + (f" (CPU {cpu})" if cpu else "") +
             f"; {what}, {result['seconds']:.0f} s in all.", "",
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
