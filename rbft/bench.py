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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .config import FrameConfig, GenerationConfig, ModelConfig, TrainConfig
from .events import Event, EventSink, ignore

SECTIONS = ("machine", "toyworld", "frames", "generate", "train", "score", "train-memory", "gpu")
DEFAULT_SECTIONS = ("machine", "toyworld", "frames", "generate", "train", "score", "gpu")   # train-memory spawns 4 processes: on request


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
    gpu_peak_tflops: float = field(default=989.0, metadata={"help": "the card's dense bf16 peak (H200/H100 SXM: 989), "
                                                                   "for each gpu row's share of peak"})
    toyworld_steps: int = field(default=3, metadata={"help": "timed toy-world training steps per compute type"})
    toyworld_clips: int = field(default=25, metadata={"help": "held-out clips the toy-world section captions"})


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
                "quantized": lm.quantized, "device": lm.device, "dtype": lm.compute.name}


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
    from . import dtypes
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
    from . import models
    from .data import ingest
    from .project import open_project, render
    from .synthetic import write_video
    from .toyworld import world
    from .train import Example, train_stage
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(4):
            clip = world.render(700_000 + i)
            write_video(Path(tmp) / "clips" / ("a", "b")[i % 2] / f"{i}.webm", clip.frames[..., ::-1], fps=clip.fps)
        store = open_project(Path(tmp) / "project")
        ingest(store, Path(tmp) / "clips")
        lm = models.load(ModelConfig(model="toyworld", dtype=dtype))
        steps_at = []
        sink = lambda e: steps_at.append(time.perf_counter()) if e.kind == "progress" else None  # noqa: E731
        text = render(store, "classify")
        examples = [Example(v, text, v["label"]) for v in store.videos()]
        train_stage(store, lm, examples, FrameConfig(8, 128),
                    TrainConfig(max_steps=steps + 1, batch_size=1, eval_every=0, save_every=steps + 2),
                    Path(tmp) / "run", "bench", on_event=sink)
        return {"seconds_per_step": (steps_at[-1] - steps_at[0]) / max(len(steps_at) - 1, 1), "dtype": lm.compute.name}


def bench_toyworld(cfg: BenchConfig, emit: EventSink) -> list[dict]:
    """The toy-world VLM on this machine: a training step in each type, and captions per minute."""
    from . import models
    from .toyworld import model as toy
    if not toy.available():
        emit(Event("log", "bench", message=f"toyworld: skipped ({toy.unavailable_reason()})"))
        return []
    toy.model_dir()   # assembled once, outside the timings
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
    toy.evaluate_captions(lm, [toy.HELD_OUT_SEEDS + i for i in range(cfg.toyworld_clips)])
    per_min = 60 * cfg.toyworld_clips / (time.perf_counter() - start)
    rows.append(row("toyworld", f"caption evaluation, {lm.compute.name}, batches of 25, up to 120 new tokens",
                    per_min, "clips/min", ">= 20/min (100 clips in 5 min)", per_min >= 20))
    return rows


CREDIBLE_SHARE = 0.7


def add_peak_share(r: dict, peak_tflops: float) -> dict:
    """What a GPU training row implies: tokens per second, and the share of the card's dense bf16 peak
    at 2 FLOP per non-embedding parameter per token for the forward, twice that with the backward,
    three times with checkpointing's recompute. Over 70% of peak is not credible: profile it before
    quoting it. Adds the figures to the row and its note."""
    st = r["stats"]
    tokens_per_s = r["tokens_per_example"] * st["effective_batch"] / st["seconds_per_step"]
    tflops = tokens_per_s * r["non_embedding_params"] * 2 * (3 if r["checkpointing"] else 2) / 1e12
    r.update(tokens_per_s=tokens_per_s, implied_tflops=tflops, share_of_peak=tflops / peak_tflops,
             credible=tflops / peak_tflops <= CREDIBLE_SHARE)
    r["note"] += f"; {tokens_per_s / 1e3:.1f}k tokens/s, {100 * r['share_of_peak']:.0f}% of peak"
    if not r["credible"]:
        r["note"] += " (over 70%: NOT CREDIBLE, not a result)"
    if not r.get("synchronized"):
        r["note"] += "; timed without CUDA synchronization"
    return r


def recheck_gpu_rows(result: dict, peak_tflops: float = 989.0) -> dict:
    """Add tokens/s and the share of peak to the gpu train rows of a bench.json written before rows
    carried them (bench/gpu-h200): tokens from the row's text, parameters counted from the model."""
    import re

    from . import memory
    from .presets import preset
    model = result["settings"]["gpu_models"][0]
    if preset(model.removeprefix("random:")):
        model = model.removeprefix("random:")   # the same dimensions, from its preset: nothing is built
    params = memory.dims(model).lm_linear_params
    ckpt = result["settings"].get("gpu_checkpointing", "auto") != "off"
    for r in result["rows"]:
        if r["section"] != "gpu train" or "stats" not in r or "share_of_peak" in r:
            continue
        r["tokens_per_example"] = int(re.search(r"(\d+) tokens per example", r["what"]).group(1))
        r.update(non_embedding_params=params, checkpointing=ckpt)
        add_peak_share(r, peak_tflops)
    trained = [r for r in result["rows"] if "share_of_peak" in r]
    for r in result["rows"]:
        if r["what"].endswith("auto over batch 1") and not all(t["credible"] for t in trained
                                                               if "auto (" in t["what"] or t["what"].endswith("lean, batch 1")):
            r["met"], r["note"] = False, "not a result: a row it rests on implies over 70% of peak"
    return result


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
    dims = memory.dims(model, config=lm.config)
    ckpt = lm.device == "cuda" if cfg.gpu_checkpointing == "auto" else cfg.gpu_checkpointing == "on"
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
        rows[-1]["tokens_per_example"], rows[-1]["synchronized"] = seq.tokens, True
        rows[-1]["checkpointing"], rows[-1]["non_embedding_params"] = ckpt, dims.lm_linear_params
        add_peak_share(rows[-1], cfg.gpu_peak_tflops)
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
        credible = rows[-1].get("credible", True) and one.get("credible", True)
        rows.append(row("gpu train", f"{clip}: auto over batch 1", speedup, "x", ">= 4x", speedup >= 4 and credible,
                        "" if credible else "not a result: a row it rests on implies over 70% of peak"))
    if not cfg.gpu_generate:
        lm.model = None
        return rows
    # generation: the same clips, forced to equal length
    from .config import GenerationConfig
    from .project import clip as project_clip
    videos = store.videos()
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


def _gpu_name() -> str:
    import torch
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""


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
