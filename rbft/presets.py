"""Recommended real models, each with settings that fit it and a memory estimate checked before loading.

The dimensions are those of the models' published config.json files (for offline tests and the
estimate; loading always reads the real config). A model that will not fit is refused with the
numbers, before a multi-GB download or load starts.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True)
class Preset:
    model: str
    family: str                  # our family key (models.FAMILIES model_type)
    params_b: float              # total parameters, billions
    text: dict = field(default_factory=dict)     # hidden, layers, heads, kv_heads, intermediate, vocab
    vision: dict = field(default_factory=dict)   # the family's vision_config fields
    num_frames: int = 8
    max_side: int = 384
    batch_size: int = 1
    tokens_per_frame: int = 64   # visual tokens per frame at max_side, after merging/pixel shuffle
    note: str = ""


SMOL_VISION_512 = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                       image_size=512, patch_size=16)
QWEN25_VISION = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, patch_size=14,
                     spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                     fullatt_block_indexes=[7, 15, 23, 31])
QWEN3_VISION = dict(depth=24, hidden_size=1024, intermediate_size=4096, num_heads=16, patch_size=16,
                    spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=2304,
                    deepstack_visual_indexes=[5, 11, 17])
PRESETS = {p.model: p for p in [
    Preset("HuggingFaceTB/SmolVLM2-256M-Video-Instruct", "smolvlm", 0.256,
           dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                intermediate_size=1536, vocab_size=49280), SMOL_VISION_512, 8, 512, 2, 64,
           "smallest; runs on a laptop CPU"),
    Preset("HuggingFaceTB/SmolVLM2-500M-Video-Instruct", "smolvlm", 0.507,
           dict(hidden_size=960, num_hidden_layers=32, num_attention_heads=15, num_key_value_heads=5,
                intermediate_size=2560, vocab_size=49280), SMOL_VISION_512, 8, 512, 2, 64),
    Preset("HuggingFaceTB/SmolVLM2-2.2B-Instruct", "smolvlm", 2.25,
           dict(hidden_size=2048, num_hidden_layers=24, num_attention_heads=32, num_key_value_heads=32,
                intermediate_size=8192, vocab_size=49280),
           dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                image_size=384, patch_size=14), 8, 384, 1, 81),
    Preset("Qwen/Qwen2-VL-2B-Instruct", "qwen2_vl", 2.21,
           dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                intermediate_size=8960, vocab_size=151936),
           dict(depth=32, embed_dim=1280, hidden_size=1536, num_heads=16, mlp_ratio=4, patch_size=14,
                spatial_merge_size=2, temporal_patch_size=2), 8, 336, 1, 36),
    Preset("Qwen/Qwen2.5-VL-3B-Instruct", "qwen2_5_vl", 3.75,
           dict(hidden_size=2048, num_hidden_layers=36, num_attention_heads=16, num_key_value_heads=2,
                intermediate_size=11008, vocab_size=151936),
           dict(QWEN25_VISION, out_hidden_size=2048), 8, 336, 1, 36),
    Preset("Qwen/Qwen2.5-VL-7B-Instruct", "qwen2_5_vl", 8.29,
           dict(hidden_size=3584, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
                intermediate_size=18944, vocab_size=152064),
           dict(QWEN25_VISION, out_hidden_size=3584), 8, 336, 1, 36, "the paper's model"),
    Preset("Qwen/Qwen3-VL-2B-Instruct", "qwen3_vl", 2.13,
           dict(hidden_size=2048, num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8,
                intermediate_size=6144, vocab_size=151936, head_dim=128, tie_word_embeddings=True),
           dict(QWEN3_VISION, out_hidden_size=2048), 8, 384, 1, 36),
    Preset("Qwen/Qwen3-VL-4B-Instruct", "qwen3_vl", 4.44,
           dict(hidden_size=2560, num_hidden_layers=36, num_attention_heads=32, num_key_value_heads=8,
                intermediate_size=9728, vocab_size=151936, head_dim=128, tie_word_embeddings=True),
           dict(QWEN3_VISION, out_hidden_size=2560), 8, 384, 1, 36),
]}


def preset(model: str) -> Optional[Preset]:
    return PRESETS.get(model)


def estimate_gb(p: Preset, quantized: bool, num_frames: Optional[int] = None, batch_size: Optional[int] = None,
                training: bool = True) -> float:
    """Peak memory (GB) of LoRA training (or inference) with the preset's frames and a square clip at
    its max_side: rbft.memory's model of the real dimensions, with the preset's visual tokens per
    frame and ~300 text tokens (the Train tab's budget uses the project's real clips and processor).
    Training on a GPU (nf4) checkpoints its layers; bf16 is the CPU path, which does not."""
    from . import memory
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
               training: bool = True, margin: float = 0.9) -> Optional[float]:
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
