"""Model families, loading (4-bit QLoRA on CUDA, the CPU's fast float type on CPU: rbft.dtypes), and the three things we ask of a VLM:
encode a (video, prompt[, answer]) example, generate text, and score candidate answers.

Every family goes through AutoProcessor / AutoModelForImageTextToText; what differs
between families is kept in one `Family` record each.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from . import dtypes, names
from .config import FrameConfig, GenerationConfig, ModelConfig
from .frames import Clip
from .testing import FAMILIES as TINY_FAMILIES
from .testing import RANDOM_PREFIX, TINY_PREFIX, random_model_dir, tiny_model_dir

TOYWORLD = "toyworld"     # the toy-world VLM (rbft.toyworld, registered in rbft.names)
LORA_LAYERS = "(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
SEQUENCE_KEYS = {"input_ids": None, "attention_mask": 0, "labels": -100,
                 "mm_token_type_ids": 0, "token_type_ids": 0}


@dataclass(frozen=True)
class Family:
    name: str
    end_of_turn: str          # closes an assistant answer; training targets end with it
    answer_prefix: str        # what the chat format puts between the generation prompt and the answer
    text_module: str          # LoRA goes on the language model only (vision towers also have q_proj)
    patch_factor: int = 0     # Qwen: pixels per merged token side (patch * merge)
    skip_quantization: tuple = ()
    vision_modules: tuple = ()  # trained in full with TrainConfig.train_vision

    @property
    def lora_target(self) -> str:
        return rf".*{self.text_module}\.layers\.\d+\..*{LORA_LAYERS}"


# matched from the start of the module name (transformers 5); vision towers stay bf16
QWEN_SKIP = ("model.visual", "lm_head")
FAMILIES = {
    "qwen2_vl": Family("qwen2_vl", "<|im_end|>", "", "language_model", 28, QWEN_SKIP, ("visual",)),
    "qwen2_5_vl": Family("qwen2_5_vl", "<|im_end|>", "", "language_model", 28, QWEN_SKIP, ("visual",)),
    "qwen3_vl": Family("qwen3_vl", "<|im_end|>", "", "language_model", 32, QWEN_SKIP, ("visual",)),
    "smolvlm": Family("smolvlm", "<end_of_utterance>", " ", "text_model", 0,
                      ("model.vision_model", "model.connector", "lm_head"), ("vision_model", "connector")),
}


class ModelLoadError(RuntimeError):
    """A model that cannot be loaded, with what to do about it."""


OFFLINE_HELP = ("Offline options: a local folder holding the model (config, weights, processor files), "
                f"or a tiny random model for trying the pipeline: {', '.join(TINY_PREFIX + f for f in TINY_FAMILIES)}.")


def resolve(name: str) -> Path | str:
    """A tiny model name, a registered name ('toyworld'), a local folder, or a Hub id (returned unchanged)."""
    if name in names.PROVIDERS:
        try:
            return names.model_dir(name)
        except FileNotFoundError as e:
            raise ModelLoadError(f"{name} cannot be had here: {e}") from None
    if name.startswith(TINY_PREFIX):
        return tiny_model_dir(name[len(TINY_PREFIX):])
    if name.startswith(RANDOM_PREFIX):
        return random_model_dir(name[len(RANDOM_PREFIX):])
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise ModelLoadError(f"{path} has no config.json: it is not a model folder. {OFFLINE_HELP}")
        return path
    return name


def available(name: str) -> bool:
    """Can this model be loaded without a download (tiny, a local folder, or in the Hub cache)?"""
    if name.startswith((TINY_PREFIX, RANDOM_PREFIX)) or Path(name).expanduser().exists():
        return True
    if name in names.PROVIDERS:
        return names.available(name)
    from huggingface_hub import try_to_load_from_cache
    return isinstance(try_to_load_from_cache(name, "config.json"), str)


def default_model() -> str:
    """The configured default Hub model where it is cached here, else the toy-world VLM (offline, it
    sees its toy world), else the tiny random SmolVLM. RBFT_DEFAULT_MODEL overrides all three."""
    from .config import ModelConfig
    if os.environ.get("RBFT_DEFAULT_MODEL"):
        return os.environ["RBFT_DEFAULT_MODEL"]
    hub = ModelConfig().model
    if available(hub):
        return hub
    return TOYWORLD if available(TOYWORLD) else TINY_PREFIX + "smolvlm"


def detect_family(model_type: str) -> Family:
    if model_type not in FAMILIES:
        raise ModelLoadError(f"model type {model_type!r} is not supported; supported families: "
                             f"Qwen2-VL, Qwen2.5-VL, Qwen3-VL, SmolVLM/SmolVLM2 "
                             f"(model types {', '.join(FAMILIES)}). A text-only chat model can judge label "
                             "support (`stats --score-support --scorer MODEL`, the Quality tab's judge), "
                             "but it cannot watch videos or be trained here")
    return FAMILIES[model_type]


def is_text_only(config) -> bool:
    return getattr(config, "vision_config", None) is None


class TextProcessor:
    """A text-only chat model's tokenizer behind a processor's face, so that a judge's prompts go
    through the same encode and score path as a VLM's. It reads text; a video is refused."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def apply_chat_template(self, messages: list[dict], **kwargs):
        flat = []
        for m in messages:
            content = m["content"]
            if not isinstance(content, str):
                if any(part["type"] != "text" for part in content):
                    raise ModelLoadError("a text-only model cannot watch a video: it can only judge label "
                                         "support from a rationale's text")
                content = "".join(part["text"] for part in content)
            flat.append({**m, "content": content})
        return self.tokenizer.apply_chat_template(flat, **kwargs)

    def __call__(self, text=None, videos=None, return_tensors=None, **kwargs):
        if videos is not None:
            raise ModelLoadError("a text-only model cannot watch a video")
        return self.tokenizer(text, return_tensors=return_tensors, **kwargs)


def text_family(tokenizer) -> Family:
    """A chat model's format, read from its chat template: the special token that closes an
    assistant turn (<|im_end|>, <|eot_id|>, <end_of_turn>, ...); the tokenizer's end of text where
    the template shows none."""
    marker = "Xq7Answer"
    shown = tokenizer.apply_chat_template([{"role": "user", "content": "Q"}, {"role": "assistant", "content": marker}],
                                          tokenize=False)
    after = shown[shown.rindex(marker) + len(marker):] if marker in shown else ""
    special = set(tokenizer.all_special_ids)
    ids = tokenizer(after, add_special_tokens=False)["input_ids"]
    end = next((tokenizer.convert_ids_to_tokens(i) for i in ids if i in special), tokenizer.eos_token)
    return Family("text", end, "", "model", skip_quantization=("lm_head",))


def pick_device(requested: str = "auto") -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("--device cuda was asked for, but torch sees no CUDA GPU here")
    return requested


def compute_type(cfg: ModelConfig, device: str) -> dtypes.Choice:
    try:
        return dtypes.choose(cfg.dtype, device)
    except dtypes.DtypeError as e:
        raise ModelLoadError(str(e)) from None


def use_4bit(cfg: ModelConfig, device: str) -> bool:
    if cfg.quantization not in ("auto", "nf4", "none"):
        raise ModelLoadError(f"quantization must be auto, nf4 or none, not {cfg.quantization!r}")
    return cfg.quantization == "nf4" or (cfg.quantization == "auto" and device == "cuda")


@dataclass
class LoadedModel:
    model: torch.nn.Module
    processor: object
    family: Family
    name: str
    device: str
    quantized: bool
    compute: dtypes.Choice = dtypes.Choice("bfloat16", "bfloat16")
    weights: str = ""   # which weights the name resolved to: a Hub id, or a local folder's name

    @property
    def dtype(self) -> torch.dtype:
        return self.compute.dtype

    @property
    def tokenizer(self):
        return self.processor.tokenizer

    @property
    def vision_patch_size(self) -> int:
        return self.config.vision_config.patch_size

    @property
    def config(self):
        return self.model.config if self.model is not None else self._config

    _config: object = None


def load_processor(cfg: ModelConfig) -> LoadedModel:
    """The processor and config alone (no weights): enough to encode examples and count their tokens."""
    from transformers import AutoProcessor
    source = resolve(cfg.model)
    config = _load_config(source)
    try:
        processor = AutoProcessor.from_pretrained(source)
    except OSError as e:
        raise ModelLoadError(f"cannot load {cfg.model!r}'s processor: {str(e).splitlines()[0]}") from None
    device = pick_device(cfg.device)
    return LoadedModel(None, processor, detect_family(config.model_type), cfg.model, device,
                       use_4bit(cfg, device), compute_type(cfg, device), _weights_name(source), _config=config)


def _load_config(source):
    from transformers import AutoConfig
    try:
        return AutoConfig.from_pretrained(source)
    except OSError as e:
        msg = str(e)
        if isinstance(source, str) and ("connect" in msg.lower() or "offline" in msg.lower()
                                        or "resolve" in msg.lower() or "couldn't" in msg.lower()):
            raise ModelLoadError(f"cannot download {source!r}: the Hugging Face Hub cannot be reached "
                                 f"from this machine ({msg.splitlines()[0]}). {OFFLINE_HELP}") from None
        raise ModelLoadError(f"cannot load {source!r}: {msg.splitlines()[0]}. {OFFLINE_HELP}") from None


def load(cfg: ModelConfig, adapter: str | Path | None = None, trainable: bool = False) -> LoadedModel:
    """Base model (+ a LoRA adapter when given). With trainable=True the adapter's weights can be
    trained further. A text-only chat model loads as a judge of label support, and nothing else."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

    source = resolve(cfg.model)
    config = _load_config(source)
    text_only = is_text_only(config)
    if text_only and adapter is not None:
        raise ModelLoadError(f"{cfg.model!r} is a text-only model: it can judge label support, but it is not "
                             "trained here, so it takes no adapter")
    device = pick_device(cfg.device)
    quantized = use_4bit(cfg, device)
    compute = compute_type(cfg, device)
    try:
        if text_only:
            tokenizer = AutoTokenizer.from_pretrained(source)
            if not tokenizer.chat_template:
                raise ModelLoadError(f"{cfg.model!r} has no chat template: a judge must be a chat (instruct) model")
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            processor, family = TextProcessor(tokenizer), text_family(tokenizer)
        else:
            processor, family = AutoProcessor.from_pretrained(source), detect_family(config.model_type)
        model_class = AutoModelForCausalLM if text_only else AutoModelForImageTextToText
        model = model_class.from_pretrained(source, **_load_kwargs(family, device, quantized, compute.dtype))
    except OSError as e:
        raise ModelLoadError(f"cannot load {cfg.model!r}: {str(e).splitlines()[0]}. {OFFLINE_HELP}") from None
    if adapter is not None:
        from peft import PeftModel
        model = PeftModel.from_pretrained(model, str(adapter), is_trainable=trainable)
    if device == "cpu":
        model.to("cpu")
    model.eval()
    return LoadedModel(model, processor, family, cfg.model, device, quantized, compute, _weights_name(source))


def weights_name(name: str) -> str:
    """Which weights a model name resolves to here, without loading them (see LoadedModel.weights)."""
    return _weights_name(resolve(name))


def _weights_name(source: Path | str) -> str:
    """A local folder by its name (the toy world's carries its parts' digest: toyworld-<digest>), a Hub id as is."""
    return source.name if isinstance(source, Path) else source


def _load_kwargs(family: Family, device: str, quantized: bool, dtype: torch.dtype) -> dict:
    from transformers import BitsAndBytesConfig
    kwargs = {"dtype": dtype}
    if quantized:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
            llm_int8_skip_modules=list(family.skip_quantization))
    if device == "cuda":
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", 0))}
    return kwargs


# ---- encoding ---------------------------------------------------------------------------

def chat_prompt(lm: LoadedModel, text: str, with_video: bool = True) -> str:
    """The family's chat format for one user turn (video first, then text), ready for the answer."""
    content = ([{"type": "video"}] if with_video else []) + [{"type": "text", "text": text}]
    return lm.processor.apply_chat_template([{"role": "user", "content": content}],
                                            add_generation_prompt=True, tokenize=False)


def video_kwargs(lm: LoadedModel, clips: Sequence[Clip], frames: FrameConfig) -> dict:
    """Processor arguments for frames we sampled ourselves, sized by our frame settings."""
    kw = {"videos": [c.frames for c in clips], "video_metadata": [c.metadata for c in clips],
          "do_sample_frames": False}
    if lm.family.patch_factor:
        f = lm.family.patch_factor
        kw["size"] = {"shortest_edge": 4 * f * f, "longest_edge": max(frames.max_side ** 2, 4 * f * f)}
        kw["cap_pixels_per_frame"] = True
    return kw


def encode(lm: LoadedModel, prompt: str, clip: Clip | None, frames: FrameConfig,
           answer: str | None = None) -> dict:
    """One example as tensors without a batch dimension on sequence keys.

    With an answer, the answer tokens (and the end-of-turn token) are appended and are the
    only ones with labels: prompt and video tokens are masked with -100.
    """
    text = chat_prompt(lm, prompt, with_video=clip is not None)
    kw = video_kwargs(lm, [clip], frames) if clip is not None else {}
    out = lm.processor(text=[text], return_tensors="pt", **kw)
    feats = {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}
    ids = feats["input_ids"][0]
    seq = {k: feats.pop(k)[0] for k in list(feats) if k in SEQUENCE_KEYS}
    if answer is not None:
        ans = lm.tokenizer(lm.family.answer_prefix + answer + lm.family.end_of_turn,
                           add_special_tokens=False, return_tensors="pt")["input_ids"][0]
        seq["input_ids"] = torch.cat([ids, ans])
        seq["attention_mask"] = torch.ones_like(seq["input_ids"])
        for k in ("mm_token_type_ids", "token_type_ids"):
            if k in seq:  # answer tokens are text
                seq[k] = torch.cat([seq[k], torch.zeros_like(ans)])
        seq["labels"] = torch.cat([torch.full_like(ids, -100), ans])
    return {**seq, **feats}


def collate(features: list[dict], pad_id: int, side: str = "right") -> dict:
    """Pad sequence keys to one length; concatenate vision tensors along their first dimension
    (zero-padding the frame dimension when clips have different frame counts)."""
    batch = {}
    length = max(f["input_ids"].shape[0] for f in features)
    for key in features[0]:
        values = [f[key] for f in features]
        if key in SEQUENCE_KEYS:
            fill = pad_id if key == "input_ids" else SEQUENCE_KEYS[key]
            padded = []
            for v in values:
                pad = torch.full((length - v.shape[0],), fill, dtype=v.dtype)
                padded.append(torch.cat([pad, v] if side == "left" else [v, pad]))
            batch[key] = torch.stack(padded)
        else:
            if values[0].dim() >= 2 and len({v.shape[1] for v in values}) > 1:
                most = max(v.shape[1] for v in values)
                values = [torch.cat([v, v.new_zeros((v.shape[0], most - v.shape[1], *v.shape[2:]))], 1)
                          for v in values]
            batch[key] = torch.cat(values)
    return batch


def to_model(lm: LoadedModel, batch: dict) -> dict:
    device = next(lm.model.parameters()).device
    out = {}
    for k, v in batch.items():
        v = v.to(device)
        out[k] = v.to(lm.dtype) if v.is_floating_point() else v
    return out


# ---- generation and scoring ------------------------------------------------------------

@torch.no_grad()
def generate(lm: LoadedModel, prompts: list[str], clips: list[Clip], frames: FrameConfig,
             gen: GenerationConfig) -> list[str]:
    """Free text for a batch of videos, left padded so every row continues its own prompt."""
    feats = [encode(lm, p, c, frames) for p, c in zip(prompts, clips)]
    batch = to_model(lm, collate(feats, lm.tokenizer.pad_token_id, side="left"))
    eot = lm.tokenizer.convert_tokens_to_ids(lm.family.end_of_turn)
    kwargs = dict(max_new_tokens=gen.max_new_tokens, do_sample=gen.do_sample,
                  repetition_penalty=gen.repetition_penalty, pad_token_id=lm.tokenizer.pad_token_id,
                  eos_token_id=[eot, lm.tokenizer.eos_token_id])
    if gen.do_sample:
        kwargs.update(temperature=gen.temperature, top_p=gen.top_p)
        torch.manual_seed(gen.seed)
    out = lm.model.generate(**batch, **kwargs)
    new = out[:, batch["input_ids"].shape[1]:]
    return [t.strip() for t in lm.tokenizer.batch_decode(new, skip_special_tokens=True)]


@torch.no_grad()
def score_options_full(lm: LoadedModel, prompt: str, clip: Clip | None, frames: FrameConfig,
                       options: list[str]) -> list[float]:
    """The reference: each option scored in a full forward of prompt + video + option (the video
    is encoded once per option). `score_options` must agree with it."""
    feats = [encode(lm, prompt, clip, frames, answer=o) for o in options]
    batch = to_model(lm, collate(feats, lm.tokenizer.pad_token_id, side="right"))
    labels = batch.pop("labels")
    logits = lm.model(**batch).logits.float()
    logp = torch.log_softmax(logits[:, :-1], dim=-1)
    target = labels[:, 1:]
    mask = target != -100
    token_logp = logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (token_logp * mask).sum(-1).tolist()


def _mrope_module(model: torch.nn.Module) -> torch.nn.Module | None:
    """Qwen models keep the M-RoPE offset of their last prefill (`rope_deltas`) on one module."""
    return next((m for m in model.modules() if hasattr(m, "rope_deltas")), None)


@torch.no_grad()
def score_options(lm: LoadedModel, prompt: str, clip: Clip | None, frames: FrameConfig,
                  options: list[str]) -> list[float]:
    """Log-likelihood of each option as the full answer (its tokens and the end of turn).
    The highest is the prediction: no free text to parse.

    The prompt and video go through the model once; its key/value cache is then shared by
    all options, scored together in one small batched forward. The vision tower, which
    dominates the cost, runs once per video instead of once per option.
    """
    prefix = to_model(lm, collate([encode(lm, prompt, clip, frames)], lm.tokenizer.pad_token_id))
    out = lm.model(**prefix, use_cache=True, logits_to_keep=1)   # only the last position's logits are read
    cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
    first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)  # predicts each option's first token
    answers = [lm.tokenizer(lm.family.answer_prefix + o + lm.family.end_of_turn, add_special_tokens=False,
                            return_tensors="pt")["input_ids"][0] for o in options]
    n, width, start = len(options), max(len(a) for a in answers), prefix["input_ids"].shape[1]
    device = prefix["input_ids"].device
    ids = torch.full((n, width), lm.tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    for i, a in enumerate(answers):
        ids[i, :len(a)], mask[i, :len(a)] = a, 1
    ids, mask = ids.to(device), mask.to(device)
    cache.batch_repeat_interleave(n)
    positions = torch.arange(start, start + width, device=device).unsqueeze(0).expand(n, width)
    mrope = _mrope_module(lm.model)
    if mrope is not None:  # M-RoPE: text after a video is shifted past the video's compressed positions
        deltas = mrope.rope_deltas if clip is not None and mrope.rope_deltas is not None else 0
        positions = positions[None] + (deltas.to(device) if torch.is_tensor(deltas) else deltas)
    logits = lm.model(input_ids=ids, attention_mask=torch.cat([prefix["attention_mask"].expand(n, -1), mask], 1),
                      position_ids=positions, cache=cache, use_cache=True).logits.float()
    logp = torch.cat([first.expand(n, 1, -1), torch.log_softmax(logits[:, :-1], dim=-1)], dim=1)
    token_logp = logp.gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    return (token_logp * mask).sum(-1).tolist()


def model_info(lm: LoadedModel) -> dict:
    return {"model": lm.name, "weights": lm.weights, "family": lm.family.name, "device": lm.device,
            "quantized_4bit": lm.quantized, "dtype": lm.compute.name, "dtype_reason": lm.compute.reason}
