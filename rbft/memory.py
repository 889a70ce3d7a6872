"""What a training step costs in memory, from the model's real dimensions and the real sequence.

`dims(model)` reads the model's config and counts its parameters on PyTorch's meta device (no
weights, no download; the presets' published dimensions when the config cannot be had offline).
`sequence(...)` runs the model's own processor on a blank clip of the project's frame size, so the
visual tokens follow the processor's rounding, not a fixed number per frame. `estimate(...)` adds:

  weights      nf4 LM linears at ~0.53 bytes/param (4-bit + double-quantized scales); embeddings,
               lm_head and the vision tower stay bf16 (2 bytes)
  lora         trainable LoRA weights in fp32 with their gradient and two Adam moments (16 bytes)
  decoder      per token: every layer's activations without checkpointing; with it, each layer's
               input plus the one layer recomputed in backward
  logits       per position whose logits are made (every one on the default path, the answer's
               on the lean path)
  vision       per patch: one vision layer's transient forward; on the default path also what the
               frozen tower keeps for a backward that changes nothing
  overhead     the allocator's slack

The per-token constants were fitted to the GPU measurements in `bench/gpu-measurements.json`
(H200; tests hold the estimate within 25% of every row there). It is a guide, checked against
the real first step when training starts (train.plan_batch).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

GB = 1e9
NF4_BYTES = 0.53
LORA_BYTES = 16                 # fp32 weight + fp32 grad + Adam m and v
# values kept per token, as (hidden, intermediate) multiples, in bf16:
DECODER_LAYER = (8.0, 4.0)      # per layer when nothing is checkpointed (what frozen linears' backward needs)
DECODER_RECOMPUTE = (4.0, 2.0)  # the one layer recomputed in backward, when checkpointed
LOGIT_BYTES = 5.2               # per vocabulary entry per position whose logits are made
VISION_FORWARD = (10.0, 3.0)    # per patch: one vision layer's transient activations (vision hidden, intermediate)
VISION_KEPT = (1.2, 0.5)        # per patch per vision layer, vision-hidden values kept for backward on the
                                # default path: (no checkpointing, checkpointed layer inputs)
OVERHEAD_GB = 0.3


@dataclass
class Dims:
    """What memory depends on, read from a model's config."""
    family: str
    hidden: int
    layers: int
    intermediate: int
    vocab: int
    lm_linear_params: int      # the language model's projection weights (quantized under nf4)
    other_params: int          # embeddings, lm_head, norms, vision tower, connector (bf16)
    lora_params_per_rank: int  # LoRA parameters per unit of rank, over every targeted projection
    vision_hidden: int
    vision_layers: int
    vision_intermediate: int
    kv_dim: int = 0            # key/value width per layer (heads x head dim): the generation cache


@dataclass
class Sequence:
    """One training example as the model's processor makes it."""
    tokens: int                # whole sequence (visual + text + answer)
    visual_tokens: int         # placeholders the language model sees for the video
    frames: int
    patches: int               # patches the vision tower attends over, for the whole video
    answer_tokens: int         # positions that carry a loss

    @property
    def visual_tokens_per_frame(self) -> float:
        return self.visual_tokens / max(self.frames, 1)


@dataclass
class Estimate:
    gb: float
    parts: dict                # name -> GB
    per_sample_gb: float
    batch: int

    def as_dict(self) -> dict:
        return asdict(self)


def _config_of(model: str):
    """The model's config without a download: tiny/random/named models and local folders resolve
    here; Hub ids from the local cache; otherwise None."""
    from transformers import AutoConfig

    from . import models
    try:
        source = models.resolve(model)
        if isinstance(source, Path) or models.available(model):
            return AutoConfig.from_pretrained(source)
    except (OSError, ValueError, models.ModelLoadError):
        return None
    return None


def _preset_config(model: str):
    from transformers import AutoConfig

    from .presets import preset
    p = preset(model)
    if p is None:
        return None
    text = {k: v for k, v in p.text.items()}
    if p.family == "smolvlm":
        text["model_type"] = "llama"
    return AutoConfig.for_model(p.family, text_config=text, vision_config=dict(p.vision))


def dims(model: str, config=None) -> Dims:
    """Dimensions and parameter counts of `model` (a name or a config), counted on the meta device."""
    import torch
    from transformers import AutoModelForImageTextToText

    from .models import LORA_LAYERS, detect_family
    config = config or _config_of(model) or _preset_config(model)
    if config is None:
        raise ValueError(f"cannot read {model!r}'s config here (not local, not cached, no preset); "
                         "download it once or pass a local folder")
    if hasattr(config, "quantization_config"):  # a loaded 4-bit model's config: count the plain shapes
        import copy
        config = copy.deepcopy(config)
        del config.quantization_config
    family = detect_family(config.model_type)
    with torch.device("meta"):
        net = AutoModelForImageTextToText.from_config(config)
    import re
    lm_linear, other, lora = 0, 0, 0
    text_prefix = f".{family.text_module}.layers."
    pattern = re.compile(family.lora_target)
    for name, module in net.named_modules():
        if isinstance(module, torch.nn.Linear) and pattern.fullmatch(name):
            lora += module.in_features + module.out_features
    for name, p in net.named_parameters():
        if text_prefix in "." + name and name.endswith("weight") and p.dim() == 2 and re.search(LORA_LAYERS, name):
            lm_linear += p.numel()
        else:
            other += p.numel()
    text, vision = config.get_text_config(), config.vision_config
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    kv_dim = head_dim * (getattr(text, "num_key_value_heads", None) or text.num_attention_heads)
    return Dims(family=family.name, hidden=text.hidden_size, layers=text.num_hidden_layers,
                intermediate=text.intermediate_size, vocab=text.vocab_size,
                lm_linear_params=lm_linear, other_params=other, lora_params_per_rank=lora,
                vision_hidden=getattr(vision, "embed_dim", None) or vision.hidden_size,
                vision_layers=getattr(vision, "depth", None) or vision.num_hidden_layers,
                vision_intermediate=getattr(vision, "intermediate_size", None)
                or int(getattr(vision, "mlp_ratio", 4) * (getattr(vision, "embed_dim", None) or vision.hidden_size)),
                kv_dim=kv_dim)


def sequence(lm, frames, width: int, height: int, prompt: str, answer: str) -> Sequence:
    """The real token counts of one example: the model's processor on a blank clip of this size
    (`lm` needs only its processor and family: `models.load_processor`)."""
    import numpy as np

    from . import models
    from .frames import Clip, resized_shape
    w, h = resized_shape(width, height, frames.max_side)
    clip = Clip(np.zeros((frames.num_frames, h, w, 3), dtype=np.uint8), 8.0, frames.num_frames * 4,
                list(range(0, frames.num_frames * 4, 4)))
    return sequence_of(lm, models.encode(lm, prompt, clip, frames, answer=answer))


def sequence_of(lm, features: dict) -> Sequence:
    """Token counts of an encoded example (`models.encode` with an answer)."""
    ids = features["input_ids"]
    specials = [lm.tokenizer.convert_tokens_to_ids(t) for t in ("<|video_pad|>", "<image>")]
    visual = int(sum(int((ids == t).sum()) for t in specials if isinstance(t, int) and t >= 0
                     and t != lm.tokenizer.unk_token_id))
    pixels = features.get("pixel_values_videos", features.get("pixel_values"))
    grid = features.get("video_grid_thw")
    if grid is not None:               # Qwen: one row per patch, two frames per temporal patch
        frames = int(grid[:, 0].sum()) * 2
        patches = pixels.shape[0]
    elif pixels is not None:           # SmolVLM: (1, frames, 3, H, W), patch_size squares per frame
        patch = lm.vision_patch_size
        frames = pixels.shape[1]
        patches = frames * (pixels.shape[-1] // patch) * (pixels.shape[-2] // patch)
    else:
        frames, patches = 0, 0
    return Sequence(tokens=int(ids.shape[0]), visual_tokens=visual, frames=frames, patches=int(patches),
                    answer_tokens=int((features["labels"] != -100).sum()))


def estimate(d: Dims, seq: Sequence, batch: int, quantized: bool, lora_r: int = 16, lean: bool = True,
             checkpointing: bool = True, value_bytes: int = 2) -> Estimate:
    """Peak memory (GB) of a LoRA training step at this micro batch; `value_bytes` 2 for bfloat16
    (fitted on the GPU), 4 for float32 (a CPU without native bf16: rbft.dtypes)."""
    v = value_bytes
    weights = d.lm_linear_params * (NF4_BYTES if quantized else v) + d.other_params * v
    lora = d.lora_params_per_rank * lora_r * LORA_BYTES
    if checkpointing:
        decoder = seq.tokens * (d.layers * d.hidden + DECODER_RECOMPUTE[0] * d.hidden
                                + DECODER_RECOMPUTE[1] * d.intermediate) * v
    else:
        decoder = seq.tokens * d.layers * (DECODER_LAYER[0] * d.hidden + DECODER_LAYER[1] * d.intermediate) * v
    logits = (seq.answer_tokens if lean else seq.tokens) * d.vocab * LOGIT_BYTES
    vision = seq.patches * (VISION_FORWARD[0] * d.vision_hidden + VISION_FORWARD[1] * d.vision_intermediate) * v
    if not lean:
        vision += seq.patches * d.vision_layers * VISION_KEPT[checkpointing] * d.vision_hidden * v
    per_sample = decoder + logits + vision
    parts = {"weights": weights / GB, "lora_and_adam": lora / GB, "decoder": batch * decoder / GB,
             "logits": batch * logits / GB, "vision": batch * vision / GB, "overhead": OVERHEAD_GB}
    return Estimate(gb=sum(parts.values()), parts=parts, per_sample_gb=per_sample / GB, batch=batch)


def largest_batch(d: Dims, seq: Sequence, free_gb: float, quantized: bool, upto: int, lora_r: int = 16,
                  lean: bool = True, checkpointing: bool = True, margin: float = 0.9, value_bytes: int = 2) -> int:
    """The largest divisor of `upto` (the effective batch) whose estimate fits `margin` of what is free;
    0 when not even one sample fits."""
    fits = [b for b in range(1, upto + 1) if upto % b == 0
            and estimate(d, seq, b, quantized, lora_r, lean, checkpointing, value_bytes).gb <= free_gb * margin]
    return max(fits, default=0)


def estimate_generation(d: Dims, seq: Sequence, new_tokens: int, batch: int, quantized: bool) -> float:
    """Peak GPU memory (GB) of generating for `batch` videos at once: weights, the key/value cache,
    and the prefill's transient activations (one layer at a time, no autograd)."""
    weights = d.lm_linear_params * (NF4_BYTES if quantized else 2) + d.other_params * 2
    cache = 2 * d.layers * d.kv_dim * (seq.tokens + new_tokens) * 2
    prefill = seq.tokens * (DECODER_LAYER[0] * d.hidden + DECODER_LAYER[1] * d.intermediate) * 2
    vision = seq.patches * (VISION_FORWARD[0] * d.vision_hidden + VISION_FORWARD[1] * d.vision_intermediate) * 2
    return (weights + batch * (cache + prefill + vision + d.vocab * 4)) / GB + OVERHEAD_GB


def largest_generation_batch(d: Dims, seq: Sequence, new_tokens: int, free_gb: float, quantized: bool,
                             upto: int = 64, margin: float = 0.8) -> int:
    fits = [b for b in range(1, upto + 1) if estimate_generation(d, seq, new_tokens, b, quantized) <= free_gb * margin]
    return max(fits, default=1)


def measured_rows(path: Path | None = None) -> list[dict]:
    """The GPU measurements the constants were fitted to (bench/gpu-measurements.json)."""
    path = path or Path(__file__).resolve().parent.parent / "bench" / "gpu-measurements.json"
    return json.loads(path.read_text())["rows"] if path.exists() else []
