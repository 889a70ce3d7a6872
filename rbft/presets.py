"""Recommended real models, each with settings that fit it (data only: rbft.fit checks them).

The dimensions are those of the models' published config.json files (for offline tests and the
estimate; loading always reads the real config).
"""
from __future__ import annotations

from dataclasses import dataclass, field


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


def preset(model: str) -> Preset | None:
    return PRESETS.get(model)
