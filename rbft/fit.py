"""Will it fit here? A recommended model's memory at its preset (rbft.memory's model of its real
dimensions) against what is free on this machine, said before anything loads."""
from __future__ import annotations

import os

from . import memory
from .presets import PRESETS, Preset, preset


def estimate_gb(p: Preset, quantized: bool, num_frames: int | None = None, batch_size: int | None = None,
                training: bool = True) -> float:
    """Peak memory (GB) of LoRA training (or inference) with the preset's frames and a square clip at
    its max_side: rbft.memory's model of the real dimensions, with the preset's visual tokens per
    frame and ~300 text tokens (the Train tab's budget uses the project's real clips and processor).
    Training on a GPU (nf4) checkpoints its layers; bf16 is the CPU path, which does not."""
    frames, batch = num_frames or p.num_frames, batch_size or p.batch_size
    visual = frames * p.tokens_per_frame
    merge = 16 if p.family == "smolvlm" else 4   # patches per visual token (pixel shuffle / 2x2 merge)
    seq = memory.Sequence(tokens=visual + 300, visual_tokens=visual, frames=frames, patches=visual * merge,
                          answer_tokens=4)
    d = memory.dims(p.model)
    if not training:
        return memory.estimate_generation(d, seq, 160, batch, quantized)
    return memory.estimate(d, seq, batch, quantized, lean=True, checkpointing=quantized).gb


def available_gb(device: str) -> float:
    """Free memory where the model will live: the GPU's free memory, or the machine's available RAM."""
    if device == "cuda":
        import torch
        free, _ = torch.cuda.mem_get_info()
        return free / 1e9
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: int(line.split()[1]) for line in f}
        return info["MemAvailable"] * 1024 / 1e9
    except (OSError, KeyError, ValueError):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES") / 1e9


class WontFit(ValueError):
    """The model's estimated memory exceeds what is free: said with the numbers, before loading."""


def check_fits(model: str, device: str, quantized: bool, num_frames: int, batch_size: int,
               training: bool = True, margin: float = 0.9) -> float | None:
    """Raise WontFit when a preset model will not fit; return the estimate (None: no preset, not checked)."""
    p = preset(model)
    if p is None:
        return None
    need = estimate_gb(p, quantized, num_frames, batch_size, training)
    have = available_gb(device)
    if need > have * margin:
        where = "GPU memory" if device == "cuda" else "RAM"
        hint = ("use fewer frames or a smaller batch, " if num_frames > 4 or batch_size > 1 else "")
        hint += "4-bit loading (--quantization nf4), " if not quantized else ""
        raise WontFit(f"{model} needs about {need:.1f} GB for {'training' if training else 'inference'} "
                      f"({num_frames} frames, batch {batch_size}, {'nf4' if quantized else 'bf16'}) but "
                      f"{have:.1f} GB of {where} is free. Try {hint}or a smaller model "
                      f"(e.g. {min(PRESETS.values(), key=lambda q: q.params_b).model}).")
    return need
