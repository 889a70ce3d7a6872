"""Typed settings for every step. Dataclasses with help text, so the CLI and the studio build them the same way."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any


def _help(text: str, default: Any = None, **kw) -> Any:
    if "default_factory" in kw:
        return field(metadata={"help": text}, **kw)
    return field(default=default, metadata={"help": text})


@dataclass
class FrameConfig:
    num_frames: int = _help("frames sampled uniformly from each video", 8)
    max_side: int = _help("longest side of a sampled frame, in pixels (fewer pixels, fewer tokens)", 224)


@dataclass
class ModelConfig:
    model: str = _help("Hugging Face Hub id or local folder of a Qwen2-VL, Qwen2.5-VL, "
                       "Qwen3-VL or SmolVLM/SmolVLM2 model", "HuggingFaceTB/SmolVLM2-256M-Video-Instruct")
    quantization: str = _help("'auto' (4-bit nf4 QLoRA on CUDA, LoRA in the compute type on CPU), 'nf4' or 'none'", "auto")
    device: str = _help("'auto', 'cuda' or 'cpu'", "auto")
    dtype: str = _help("compute type: 'auto' (on CUDA bfloat16; on a CPU float32 unless bfloat16 is measured "
                       "faster there), 'float32' or 'bfloat16'", "auto")


@dataclass
class GenerationConfig:
    max_new_tokens: int = _help("longest rationale, in tokens", 160)
    batch_size: int = _help("videos per generation batch (left padded)", 4)
    do_sample: bool = _help("sample instead of greedy decoding", False)
    temperature: float = _help("sampling temperature (only with do_sample)", 0.7)
    top_p: float = _help("nucleus sampling mass (only with do_sample)", 0.9)
    repetition_penalty: float = _help("penalty on repeated tokens", 1.05)
    seed: int = _help("random seed for sampling", 0)


@dataclass
class EngineConfig:
    engine: str = field(default="in-process", metadata={
        "help": "where rationales and descriptions are generated: 'in-process' (the loaded model, in "
                "batches) or 'server' (an OpenAI-compatible inference server: vLLM, SGLang, transformers serve)",
        "choices": ("in-process", "server")})
    base_url: str = _help("the server's API address, e.g. http://127.0.0.1:8000/v1", "")
    server_model: str = _help("the model name on the server (empty: the first it lists)", "")
    server_kind: str = field(default="auto", metadata={
        "help": "the server's own sampling fields: 'auto' (from what it lists), 'vllm', 'sglang', "
                "'transformers' or 'openai'", "choices": ("auto", "vllm", "sglang", "transformers", "openai")})
    api_key_env: str = _help("the environment variable that holds the server's API key (never stored)",
                             "RBFT_SERVER_API_KEY")
    in_flight: int = _help("requests the server works on at once", 8)
    retries: int = _help("retries of a failed request, with backoff, before the clip is reported failed", 3)
    timeout_s: float = _help("seconds to wait for one answer", 600.0)
    frames_as: str = field(default="images", metadata={
        "help": "how a clip's sampled frames are sent: 'images' (lossless PNGs, every server) or "
                "'video_url' (a short mp4; vLLM, SGLang)", "choices": ("images", "video_url")})


@dataclass
class TrainConfig:
    max_steps: int = _help("optimizer steps of this stage", 60)
    batch_size: int = _help("videos per device per optimizer step (with grad_accum: the effective batch)", 2)
    grad_accum: int = _help("gradient accumulation steps", 1)
    micro_batch: str = _help("videos per forward pass: 'auto' (on CUDA the largest divisor of "
                             "batch_size x grad_accum that fits, confirmed by a real first step; "
                             "gradient accumulation keeps the effective batch; on CPU batch_size) "
                             "or a number", "auto")
    lean: bool = _help("logits only where the loss is (the answer tokens) and no autograd through the "
                       "frozen vision tower; off: transformers' default path (same loss, more memory)", True)
    learning_rate: float = _help("peak learning rate of the LoRA weights", 2e-4)
    warmup_ratio: float = _help("share of steps that warm the learning rate up", 0.05)
    lora_r: int = _help("LoRA rank", 16)
    lora_alpha: int = _help("LoRA scaling alpha", 32)
    lora_dropout: float = _help("LoRA dropout", 0.05)
    eval_every: int = _help("evaluate on the validation split every K steps (0: only at the end)", 20)
    save_every: int = _help("save a resumable checkpoint every K steps", 20)
    seed: int = _help("random seed (data order, LoRA init)", 0)
    gradient_checkpointing: str = _help("trade compute for memory: 'auto' (on with CUDA, off on CPU where "
                                        "memory is rarely the limit), 'on' or 'off'", "auto")
    train_vision: bool = _help("also train the vision tower and connector in full (for a model whose "
                               "vision starts untrained, like the toy-world VLM's)", False)
    train_modules: list = _help("more modules trained in full beside LoRA, by name (e.g. 'connector')",
                                default_factory=list)


@dataclass
class ExperimentConfig:
    frames: FrameConfig = _help("frame sampling", default_factory=FrameConfig)
    model: ModelConfig = _help("the base model", default_factory=ModelConfig)
    generation: GenerationConfig = _help("Stage I rationale generation", default_factory=GenerationConfig)
    engine: EngineConfig = _help("where generation runs", default_factory=EngineConfig)
    stage1: TrainConfig = _help("Stage I: video -> rationale", default_factory=TrainConfig)
    stage2: TrainConfig = _help("Stage II and direct SFT: video -> label", default_factory=TrainConfig)
    arms: list = _help("which arms to run", default_factory=lambda: ["zero_shot", "sft", "rbft"])
    seeds: list = _help("one run of every arm per seed", default_factory=lambda: [0])
    rationales: str = _help("the rationale set Stage I trains on: empty (the default) generates them with "
                            "the model; 'import:NAME' is a set imported with `rationales import`", "")
    filter: str = _help("which rationales Stage I trains on: 'all', 'supported' (label support), "
                        "'not_rejected' (drop those a person rejected)", "not_rejected")
    hint_in_training: bool = _help("keep the label hint in the Stage I training prompt (the authors' "
                                   "scripts do); by default Stage I learns from the video alone", False)
    joint_weight: float = _help("rbft_joint arm: the rationale objective's share of one mixed stage "
                                "(Stage I + II steps), the label objective has the rest", 0.5)
    sft_same_total_steps: bool = _help("give direct SFT as many steps as Stage I + Stage II together", False)


# ExperimentConfig's groups and the prefix of their command-line flags (--stage1-max-steps): data that
# the CLI builds its flags from and the budget preview writes its command line with
FLAG_PREFIXES = {"frames": "", "model": "", "generation": "gen-", "engine": "", "stage1": "stage1-",
                 "stage2": "stage2-"}


def to_dict(cfg) -> dict:
    return asdict(cfg)


def from_dict(cls, data: dict | None):
    """Build a (nested) config dataclass from a dict, rejecting unknown keys by name."""
    data = dict(data or {})
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} settings: {', '.join(unknown)}; "
                         f"known: {', '.join(known)}")
    kwargs = {}
    for name, value in data.items():
        factory = known[name].default_factory
        nested = factory if is_dataclass(factory) else None  # sub-configs use their class as factory
        kwargs[name] = from_dict(nested, value) if nested and isinstance(value, dict) else value
    return cls(**kwargs)


def dumps(cfg) -> str:
    return json.dumps(to_dict(cfg), indent=2)
