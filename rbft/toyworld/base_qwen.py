"""The toy-world VLM's base in the paper's own family: Qwen2.5-VL's architecture around the real
SmolLM2-135M-Instruct.

SmolLM2 is a Llama; Qwen2.5-VL's language model is a Qwen2, which differs only by biases on q, k and
v and by multimodal RoPE. With the biases zero and the three RoPE sections fed the same text positions,
the two compute the same function, so SmolLM2's weights go in name for name and its text logits are
unchanged (tests/test_toyworld_qwen.py). The vision tower and the merger (Qwen's connector) start
from random weights: they are what the toy-world build trains.

The tower's patches are two consecutive frames deep (`temporal_patch_size` 2), so motion between
them is in its input. 8 px patches see shape (16 px patches learned none, issue 33), and a merge of
4 x 4 keeps 16 image tokens per pair of 128 px frames: 8 frames are 64 tokens.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..testing import QWEN_CHAT_TEMPLATE
from . import weights
from .base import load_smollm2

VISION = dict(depth=4, hidden_size=96, intermediate_size=384, num_heads=4, patch_size=8, temporal_patch_size=2,
              spatial_merge_size=4, window_size=128, fullatt_block_indexes=[0, 1, 2, 3])
IMAGE_SIZE = 128
SPECIALS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
MROPE_SECTION = [8, 12, 12]   # SmolLM2's head dim 64: a half of 32 rotary pairs over time, height, width
MEAN = STD = [0.5, 0.5, 0.5]  # the pixels the tower is pretrained on (rbft.toyworld.sight.pixels)

# SmolLM2's chat template, unchanged for text turns (with its default system line), plus Qwen's
# vision markers for image and video parts: the tiny Qwen models' ChatML template with that line added.
SMOLLM2_SYSTEM = ("{% if loop.first and messages[0]['role'] != 'system' %}"
                  "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
                  "<|im_end|>\\n' }}{% endif %}")
CHAT_TEMPLATE = QWEN_CHAT_TEMPLATE.replace("{% for message in messages %}",
                                           "{% for message in messages %}" + SMOLLM2_SYSTEM, 1)


def tokens_per_pair() -> int:
    side = IMAGE_SIZE // VISION["patch_size"] // VISION["spatial_merge_size"]
    return side * side


def text_config(lm, tok) -> dict:
    """Qwen2.5-VL's text config with SmolLM2's sizes, norms and RoPE."""
    c = lm.config
    return dict(vocab_size=len(tok), hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
                num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
                num_key_value_heads=c.num_key_value_heads, max_position_embeddings=c.max_position_embeddings,
                rms_norm_eps=c.rms_norm_eps, hidden_act=c.hidden_act, tie_word_embeddings=c.tie_word_embeddings,
                rope_parameters={"rope_type": "default", "rope_theta": c.rope_parameters["rope_theta"],
                                 "mrope_section": MROPE_SECTION},
                eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"), pad_token_id=tok.pad_token_id,
                bos_token_id=tok.bos_token_id)


def processor(tok):
    """Qwen2.5-VL's processor for 128 px frames at 8 px patches: the pixel range pins the size (without
    it the processor upsamples small frames), the normalisation is the tower's."""
    import transformers as tf
    pixels = {"shortest_edge": IMAGE_SIZE * IMAGE_SIZE, "longest_edge": IMAGE_SIZE * IMAGE_SIZE}
    common = dict(size=pixels, patch_size=VISION["patch_size"], merge_size=VISION["spatial_merge_size"],
                  temporal_patch_size=VISION["temporal_patch_size"], image_mean=MEAN, image_std=STD)
    return tf.Qwen2_5_VLProcessor(image_processor=tf.Qwen2VLImageProcessor(**common),
                                  video_processor=tf.Qwen2VLVideoProcessor(**common, do_sample_frames=False),
                                  tokenizer=tok, chat_template=CHAT_TEMPLATE)


def build_model(tok, lm, seed: int = 0):
    """The float32 Qwen2.5-VL model around a loaded SmolLM2 (`load_smollm2(SPECIALS)`)."""
    import transformers as tf
    ids = {k: tok.convert_tokens_to_ids(t) for k, t in [
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>")]}
    torch.manual_seed(seed)
    text = text_config(lm, tok)
    config = tf.Qwen2_5_VLConfig(text_config=text, vision_config={**VISION, "out_hidden_size": text["hidden_size"]},
                                 tie_word_embeddings=text["tie_word_embeddings"], **ids)
    model = tf.AutoModelForImageTextToText.from_config(config, dtype=torch.float32)
    lm.resize_token_embeddings(len(tok), mean_resizing=False)  # the four vision tokens: small, improbable
    language = model.model.language_model
    missing, unexpected = language.load_state_dict(lm.model.state_dict(), strict=False)
    if unexpected or any(not k.endswith(("q_proj.bias", "k_proj.bias", "v_proj.bias")) for k in missing):
        raise RuntimeError(f"SmolLM2 weights do not fit the Qwen2.5-VL language model: missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]}")
    with torch.no_grad():
        for name, p in language.named_parameters():
            if name in missing:
                p.zero_()   # Llama has no q/k/v bias: zero ones compute the same
    model.lm_head.weight = language.embed_tokens.weight if config.tie_word_embeddings \
        else torch.nn.Parameter(lm.lm_head.weight.detach().clone())
    model.generation_config.pad_token_id = text["pad_token_id"]
    model.generation_config.eos_token_id = text["eos_token_id"]
    return model


def assemble_base(out_dir: str | Path, seed: int = 0) -> Path:
    """Write a Qwen2.5-VL folder (bfloat16, as the SmolVLM base): SmolLM2-135M-Instruct's real weights,
    a fresh vision tower and merger."""
    out_dir = Path(out_dir)
    tok, lm = load_smollm2(SPECIALS)
    build_model(tok, lm, seed).to(torch.bfloat16).save_pretrained(out_dir)
    processor(tok).save_pretrained(out_dir)
    (out_dir / "rbft_toyvlm.json").write_text(json.dumps({
        "family": "qwen2_5_vl",
        "language_model": f"{weights.GGUF_FILE} sha256 {weights.GGUF_SHA256} (SmolLM2-135M-Instruct, Apache-2.0)",
        "vision": VISION, "image_size": IMAGE_SIZE, "seed": seed, "trained": False}))
    return out_dir
