"""Tiny random-weight models of every supported family, built offline.

Same architectures, processors, chat templates and special tokens as the real
models, with a small BPE tokenizer trained here: every code path (processor, chat
template, 4-bit loading, LoRA, generation, scoring, Trainer) runs for real in
seconds on a CPU. The answers are noise; the plumbing is not.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from . import prompts

FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "smolvlm")
TEXT_FAMILIES = ("qwen2",)   # text-only chat models: judges of label support, never trained here
TINY_PREFIX = "tiny:"
RANDOM_PREFIX = "random:"   # random weights with a real model's dimensions: for timing, not for answers
RANDOM_SHAPES = ("smolvlm-256m",)

QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                 "<|image_pad|>", "<|video_pad|>"]
SMOLVLM_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>",
                    "<image>", "<global-img>", "<video>"] + [
                        f"<row_{r}_col_{c}>" for r in range(1, 4) for c in range(1, 4)]

# The Qwen chat format (ChatML with vision markers), written for these tiny models.
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _corpus() -> list[str]:
    from .synthetic import MOTIONS
    text = [prompts.default_template(k) for k in prompts.KINDS]
    text += [f"{k}: {v}" for k, v in MOTIONS.items()]
    text += ["The shape moves across the frame. At the beginning it is on the left, in the middle it "
             "is at the centre, and at the end it is on the right. Classification: right",
             "A red circle falls from the top to the bottom and stops. The video is normal, abnormal, "
             "a person walks into the room, opens a door, a package is delivered, nothing happens."]
    return text * 4


def build_tokenizer(specials: list[str], eos: str, pad: str, vocab_size: int = 600):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos, pad_token=pad,
                                   additional_special_tokens=[s for s in specials if s not in (eos, pad)])


def _text_config(tok, **extra) -> dict:
    cfg = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
               eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
               bos_token_id=tok.convert_tokens_to_ids("<|endoftext|>"))
    cfg.update(extra)
    return cfg


def build_tiny(family: str, out_dir: str | Path, seed: int = 0) -> Path:
    """Write a tiny model + processor of `family` to out_dir, loadable with AutoProcessor /
    AutoModelForImageTextToText like the real thing."""
    import transformers as tf

    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    if family in TEXT_FAMILIES:
        return build_tiny_text(family, out_dir, seed)
    if family in ("qwen2_vl", "qwen2_5_vl", "qwen3_vl"):
        tok = build_tokenizer(QWEN_SPECIALS, eos="<|im_end|>", pad="<|endoftext|>")
        ids = {k: tok.convert_tokens_to_ids(t) for k, t in [
            ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
            ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>")]}
        # head_dim 16: mrope_section must sum to head_dim / 2
        rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}
        if family == "qwen2_vl":
            config = tf.Qwen2VLConfig(
                text_config=_text_config(tok, rope_parameters=rope),
                vision_config=dict(depth=1, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2,
                                   patch_size=14, temporal_patch_size=2, spatial_merge_size=2), **ids)
            image_proc, video_proc, proc_cls, patch = (tf.Qwen2VLImageProcessor, tf.Qwen2VLVideoProcessor,
                                                       tf.Qwen2VLProcessor, 14)
        elif family == "qwen2_5_vl":
            config = tf.Qwen2_5_VLConfig(
                text_config=_text_config(tok, rope_parameters=rope),
                vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2,
                                   out_hidden_size=64, patch_size=14, temporal_patch_size=2,
                                   spatial_merge_size=2, window_size=56, fullatt_block_indexes=[1]),
                **ids)
            image_proc, video_proc, proc_cls, patch = (tf.Qwen2VLImageProcessor, tf.Qwen2VLVideoProcessor,
                                                       tf.Qwen2_5_VLProcessor, 14)
        else:
            rope3 = dict(rope, mrope_interleaved=True)
            config = tf.Qwen3VLConfig(
                text_config=_text_config(tok, head_dim=16, rope_parameters=rope3),
                vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2,
                                   out_hidden_size=64, patch_size=16, temporal_patch_size=2,
                                   spatial_merge_size=2, num_position_embeddings=64,
                                   deepstack_visual_indexes=[1]), **ids)
            image_proc, video_proc, proc_cls, patch = (tf.Qwen2VLImageProcessor, tf.Qwen3VLVideoProcessor,
                                                       tf.Qwen3VLProcessor, 16)
        factor = patch * 2
        pixels = {"shortest_edge": factor * factor, "longest_edge": factor * factor * 4}
        processor = proc_cls(
            image_processor=image_proc(size=pixels, patch_size=patch),
            video_processor=video_proc(size=pixels, patch_size=patch, do_sample_frames=False),
            tokenizer=tok, chat_template=QWEN_CHAT_TEMPLATE)
    elif family == "smolvlm":
        from transformers.models.smolvlm.processing_smolvlm import DEFAULT_CHAT_TEMPLATE
        tok = build_tokenizer(SMOLVLM_SPECIALS, eos="<end_of_utterance>", pad="<|endoftext|>")
        side, patch = 32, 8  # 16 patches, pixel shuffle by 2 -> 4 tokens per frame
        config = tf.SmolVLMConfig(
            text_config=dict(_text_config(tok), model_type="llama"),
            vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                               num_attention_heads=2, image_size=side, patch_size=patch),
            image_token_id=tok.convert_tokens_to_ids("<image>"), scale_factor=2)
        processor = tf.SmolVLMProcessor(
            image_processor=tf.SmolVLMImageProcessor(size={"longest_edge": side},
                                                     max_image_size={"longest_edge": side},
                                                     do_image_splitting=False),
            video_processor=tf.SmolVLMVideoProcessor(size={"longest_edge": side},
                                                     max_image_size={"longest_edge": side}),
            tokenizer=tok, image_seq_len=(side // patch) ** 2 // 4, chat_template=DEFAULT_CHAT_TEMPLATE)
    else:
        raise ValueError(f"unknown family {family!r}; tiny models exist for {', '.join(FAMILIES + TEXT_FAMILIES)}")
    return _save_tiny(tf.AutoModelForImageTextToText.from_config(config), processor, tok, family, seed, out_dir)


def _save_tiny(model, processor, tok, family: str, seed: int, out_dir: Path) -> Path:
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    (out_dir / "rbft_tiny.json").write_text(json.dumps({"family": family, "seed": seed}))
    return out_dir


def build_tiny_text(family: str, out_dir: Path, seed: int) -> Path:
    """A tiny text-only chat model (Qwen2.5-Instruct's architecture, ChatML, <|im_end|> closing a
    turn), loadable with AutoTokenizer / AutoModelForCausalLM: the judge a user may pick."""
    import transformers as tf
    tok = build_tokenizer(QWEN_SPECIALS[:3], eos="<|im_end|>", pad="<|endoftext|>")
    tok.chat_template = QWEN_CHAT_TEMPLATE
    return _save_tiny(tf.AutoModelForCausalLM.from_config(tf.Qwen2Config(**_text_config(tok))), tok, tok, family,
                      seed, out_dir)


def tiny_model_dir(family: str, cache_root: str | Path | None = None) -> Path:
    """The folder of a tiny model, built on first use (in well under a minute)."""
    root = Path(cache_root or os.environ.get("RBFT_TINY_DIR") or Path.home() / ".cache" / "rbft" / "tiny")
    out = root / family
    if not (out / "rbft_tiny.json").exists():
        _build_once(out, lambda tmp: build_tiny(family, tmp))
    return out


def _build_once(out: Path, build) -> None:
    """Build into a folder of this process's own, then rename it into place: processes that build
    the same model at once (the ranks of a torchrun) do not write into each other's files."""
    import shutil
    tmp = out.parent / f".{out.name}.building-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    build(tmp)
    try:
        tmp.rename(out)
    except OSError:   # another process finished first: its copy is the same model
        shutil.rmtree(tmp, ignore_errors=True)


def build_random_smolvlm_256m(out_dir: str | Path, image_side: int = 384, seed: int = 0) -> Path:
    """SmolVLM2-256M's dimensions (30-layer 576-wide SmolLM2 text model, 12-layer 768-wide SigLIP
    vision tower, pixel shuffle 4) with random weights: what a ~256M VLM costs, measured offline."""
    import transformers as tf
    from transformers.models.smolvlm.processing_smolvlm import DEFAULT_CHAT_TEMPLATE

    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    tok = build_tokenizer(SMOLVLM_SPECIALS, eos="<end_of_utterance>", pad="<|endoftext|>")
    patch = 16
    config = tf.SmolVLMConfig(
        text_config=dict(_text_config(tok), model_type="llama", vocab_size=49280, hidden_size=576,
                         intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, max_position_embeddings=8192, rope_theta=100000.0),
        vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                           num_attention_heads=12, image_size=image_side, patch_size=patch),
        image_token_id=tok.convert_tokens_to_ids("<image>"), scale_factor=4)
    size = {"longest_edge": image_side}
    processor = tf.SmolVLMProcessor(
        image_processor=tf.SmolVLMImageProcessor(size=size, max_image_size=size, do_image_splitting=False),
        video_processor=tf.SmolVLMVideoProcessor(size=size, max_image_size=size),
        tokenizer=tok, image_seq_len=(image_side // patch) ** 2 // 16, chat_template=DEFAULT_CHAT_TEMPLATE)
    model = tf.AutoModelForImageTextToText.from_config(config).to(torch.bfloat16)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    (out_dir / "rbft_tiny.json").write_text(json.dumps({"family": "smolvlm", "shape": "smolvlm-256m",
                                                        "image_side": image_side, "seed": seed}))
    return out_dir


def random_model_dir(shape: str, cache_root: str | Path | None = None) -> Path:
    """`random:smolvlm-256m[@SIDE]` or `random:<recommended model id>`: built on first use, cached beside
    the tiny models."""
    from .presets import PRESETS
    name, _, side = shape.partition("@")
    root = Path(cache_root or os.environ.get("RBFT_TINY_DIR") or Path.home() / ".cache" / "rbft" / "tiny")
    if name in PRESETS:   # random:<recommended model id>: its real dimensions, random weights
        out = root / ("random-" + name.replace("/", "--"))
        if not (out / "rbft_tiny.json").exists():
            _build_once(out, lambda tmp: build_random_preset(name, tmp, device="cuda" if torch.cuda.is_available()
                                                             else "cpu"))
        return out
    if name not in RANDOM_SHAPES:
        raise ValueError(f"unknown random shape {name!r}; known: {', '.join(RANDOM_SHAPES)} "
                         f"or a recommended model id ({', '.join(PRESETS)})")
    out = root / f"{name}-{side or 384}px"
    if not (out / "rbft_tiny.json").exists():
        _build_once(out, lambda tmp: build_random_smolvlm_256m(tmp, image_side=int(side or 384)))
    return out


def build_random_preset(model: str, out_dir: str | Path, seed: int = 0, device: str = "cpu") -> Path:
    """A recommended model's exact dimensions (its preset) with random weights, around its family's
    tiny tokenizer and processor: what the real model costs in time and memory, built offline.
    On a GPU pass device='cuda': initialising billions of weights on a CPU takes long."""
    import transformers as tf

    from .presets import preset
    p = preset(model)
    if p is None:
        raise ValueError(f"no preset for {model!r}: random models exist for the recommended models")
    out_dir = Path(out_dir)
    tiny = tiny_model_dir(p.family)
    config = tf.AutoConfig.from_pretrained(tiny).to_dict()
    config["text_config"].update(p.text)
    config["text_config"].pop("layer_types", None)   # derived again from the real layer count
    config["vision_config"].update(p.vision)
    rope = config["text_config"].get("rope_parameters") or {}
    if "mrope_section" in rope:  # M-RoPE sections must sum to head_dim / 2 (the real models' split)
        head_dim = p.text.get("head_dim") or p.text["hidden_size"] // p.text["num_attention_heads"]
        rope["mrope_section"] = {128: [16, 24, 24] if p.family != "qwen3_vl" else [24, 20, 20]}[head_dim]
    config = tf.AutoConfig.for_model(**config)
    torch.manual_seed(seed)
    with torch.device(device):
        net = tf.AutoModelForImageTextToText.from_config(config, dtype=torch.bfloat16)
    net.save_pretrained(out_dir)
    processor = tf.AutoProcessor.from_pretrained(tiny)
    processor.save_pretrained(out_dir)
    (out_dir / "rbft_tiny.json").write_text(json.dumps({"family": p.family, "shape": model, "seed": seed}))
    return out_dir
