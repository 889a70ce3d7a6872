"""bench's gpu section: training samples/s and peak GPU memory at fixed batches and auto, generation
videos/min, every training row timed with CUDA synchronized and checked against the card's peak."""
from __future__ import annotations

import time
from pathlib import Path

from ..config import FrameConfig, ModelConfig, TrainConfig
from ..events import Event, EventSink
from .bench_config import BenchConfig, row

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

    from .. import memory
    from ..presets import preset
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

    from .. import fit, memory, models
    from ..data import ingest
    from ..project import open_project
    from ..synthetic import make_dataset
    from ..train import VideoTextDataset, stage_stats, train_stage
    from .experiment import label_examples
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
    from ..config import GenerationConfig
    from ..project import clip as project_clip
    videos = store.videos()
    free = ((torch.cuda.mem_get_info()[0] + torch.cuda.memory_allocated()) / 1e9 if torch.cuda.is_available()
            else fit.available_gb("cpu"))
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


def _gpu_name() -> str:
    import torch
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""
