"""What a run will cost before it starts: tokens, memory against what is free here, the batch auto
would choose, steps and time per stage, and the command line that runs the same from a terminal.

The CLI's `--dry-run` prints it, the studio's Train tab shows it as settings change, and
`check` refuses a run that will not fit, before any weights load.
"""
from __future__ import annotations

import functools
import shlex
import statistics
from dataclasses import dataclass, field

from .. import dtypes, fit, memory, models, project
from ..config import ExperimentConfig, to_dict
from ..fit import WontFit
from ..presets import preset
from ..store import Store

MARGIN = 0.9   # of the free memory a run may plan to use
# Where no step was measured on this machine, GPU time is estimated from the H200 measurements in
# bench/gpu-h200/ (Qwen2.5-VL-7B nf4, 637 tokens: 0.79 / 1.00 / 1.16 s per step at 1 / 8 / 64 per
# forward; 32 new tokens per video in 2.5 s at batch 1, 8 videos in 4.0 s): a floor that grows with
# the parameters (small batches wait on the layers, not on arithmetic), else the arithmetic.
GPU_STEP_S_PER_BILLION = 0.11
GPU_PARAM_TOKENS_PER_S = 3.5e14
GPU_DECODE_S_PER_TOKEN = 0.08
GPU_DECODE_BATCH_COST = 0.08   # each further video in a generation call adds this share of its time


def estimated_step_seconds(dims: memory.Dims, tokens: int, micro: int, accum: int = 1) -> float:
    """Seconds per optimizer step on an H200-class GPU (accumulation repeats the micro step)."""
    params = dims.lm_linear_params + dims.other_params
    micro_s = max(GPU_STEP_S_PER_BILLION * params / 1e9, params * tokens * micro / GPU_PARAM_TOKENS_PER_S)
    return micro_s * accum


def estimated_generation_seconds(videos: int, new_tokens: int, batch: int) -> float:
    """Seconds to write `new_tokens` for each of `videos` on an H200-class GPU, `batch` per call."""
    calls = -(-videos // max(batch, 1))
    per_call = new_tokens * GPU_DECODE_S_PER_TOKEN * (1 + GPU_DECODE_BATCH_COST * (min(batch, videos) - 1))
    return calls * per_call


@dataclass
class StagePlan:
    name: str
    runs: int                  # how many times the stage trains (arms x seeds)
    steps: int
    batch: int                 # effective batch per optimizer step
    micro_batch: int           # per forward pass (auto: what fits here)
    seconds_per_step: float | None
    measured: bool             # seconds_per_step from a finished run of this project on this machine

    @property
    def seconds(self) -> float | None:
        return self.runs * self.steps * self.seconds_per_step if self.seconds_per_step else None


@dataclass
class Budget:
    model: str
    device: str
    quantized: bool
    compute: dtypes.Choice
    clip: tuple[int, int]
    label_sequence: memory.Sequence
    rationale_sequence: memory.Sequence
    estimate: memory.Estimate  # the stage with the highest peak, at its micro batch
    free_gb: float
    checkpointing: bool
    stages: list[StagePlan] = field(default_factory=list)
    command: str = ""
    tokens_from: str = "the model's processor"
    peak_tokens: int = 0       # tokens per example of the stage with the highest peak
    generation: str = ""       # where Stage I's rationales are written

    @property
    def fits(self) -> bool:
        return self.estimate.gb <= self.free_gb * MARGIN

    def advice(self) -> str:
        hints = []
        if self.estimate.batch > 1:
            hints.append("a smaller batch")
        if self.rationale_sequence.frames > 4:
            hints.append("fewer frames")
        if self.rationale_sequence.visual_tokens > 64 * max(self.rationale_sequence.frames, 1):
            hints.append("a smaller max_side")
        if not self.quantized and self.device == "cuda":
            hints.append("4-bit loading (--quantization nf4)")
        hints.append("a smaller model")
        return ", ".join(hints)

    @property
    def types(self) -> str:
        return f"{'nf4 weights, ' if self.quantized else ''}{self.compute.name} compute"

    def refusal(self) -> str:
        where = "GPU memory" if self.device == "cuda" else "RAM"
        return (f"{self.model} needs about {self.estimate.gb:.1f} GB to train here ({self.peak_tokens} "
                f"tokens per example, {self.estimate.batch} per forward, {self.types}) but "
                f"{self.free_gb:.1f} GB of {where} is free. Try {self.advice()}.")

    def lines(self) -> list[str]:
        s, r, e = self.label_sequence, self.rationale_sequence, self.estimate
        where = "GPU" if self.device == "cuda" else "RAM"
        out = [f"**{self.model}** on {self.device}, {self.types}, "
               f"gradient checkpointing {'on' if self.checkpointing else 'off'}; clips up to "
               f"{self.clip[0]}x{self.clip[1]} px",
               f"- compute type {self.compute.reason}",
               f"- visual tokens: {s.visual_tokens_per_frame:.0f} per frame, {s.visual_tokens} per video "
               f"({s.patches} patches in the vision tower; from {self.tokens_from})",
               f"- sequence: {s.tokens} tokens with a label answer, {r.tokens} with a rationale answer",
               f"- peak memory: about {e.gb:.1f} GB at {e.batch} per forward "
               f"({e.per_sample_gb:.2f} GB per video) against {self.free_gb:.1f} GB of {where} free"
               + ("" if self.fits else " — **will not fit**")]
        if self.generation:
            out.append(f"- Stage I rationales: {self.generation}")
        for st in self.stages:
            when = (f"{st.seconds / 60:.1f} min ({st.seconds_per_step:.2f} s/step "
                    f"{'measured here' if st.measured else 'estimated from H200 measurements'})" if st.seconds else
                    "time unknown: no step measured on this machine yet")
            out.append(f"- {st.name}: {st.runs} run(s) x {st.steps} steps, batch {st.batch} = "
                       f"{st.micro_batch} per forward x {st.batch // st.micro_batch} accumulated; {when}")
        if self.command:
            out.append(f"- the same from a terminal: `{self.command}`")
        if not self.fits:
            out.append(f"- {self.refusal()}")
        return out

    def text(self) -> str:
        return "\n".join(self.lines())


@functools.lru_cache(maxsize=8)
def _processor(model: str):
    """The model's own processor where it can be had without a download; else, for a recommended
    model, its family's tiny processor (Qwen families round pixels the same way)."""
    from ..config import ModelConfig
    try:
        return models.load_processor(ModelConfig(model=model)), "the model's processor"
    except models.ModelLoadError:
        p = preset(model)
        if p is None:
            raise
        lm = models.load_processor(ModelConfig(model=f"tiny:{p.family}"))
        lm._config = memory._preset_config(model)
        lm.name = model
        return lm, f"the {p.family} processor offline (the real one is not downloaded here)"


@functools.lru_cache(maxsize=8)
def model_dims(model: str) -> memory.Dims:
    """Counted once per model (a multi-billion-parameter model takes a second or two on the meta device)."""
    return memory.dims(model, config=_processor(model)[0].config)


def clip_size(store: Store) -> tuple[int, int]:
    """The largest training clip (what the longest sequence is made of)."""
    videos = store.videos(split="train") or store.videos()
    if not videos:
        return (224, 224)
    v = max(videos, key=lambda v: (v["width"] or 0) * (v["height"] or 0))
    return int(v["width"] or 224), int(v["height"] or 224)


def measured_step(store: Store, model: str, device: str, micro: int) -> float | None:
    """Median seconds per step of this project's finished stages with this model, device and micro batch."""
    found = []
    for run in store.runs():
        m = run["metrics"] or {}
        if m.get("model") != model or m.get("device") != device:
            continue
        for st in (m.get("stages") or {}).values():
            if st.get("micro_batch") == micro and st.get("seconds_per_step"):
                found.append(st["seconds_per_step"])
    return statistics.median(found) if found else None


def command_line(store: Store, cfg: ExperimentConfig, verb: str = "experiment") -> str:
    """The `python -m rbft` command that runs these settings (flags only where they differ from the defaults)."""
    from ..config import FLAG_PREFIXES
    default = to_dict(ExperimentConfig())
    now = to_dict(cfg)
    args = ["python", "-m", "rbft", verb, "--project", str(store.root), "--model", cfg.model.model]
    for group, prefix in FLAG_PREFIXES.items():
        for key, value in now[group].items():
            if (group, key) == ("model", "model") or value == default[group][key]:
                continue
            flag = f"--{prefix}{key.replace('_', '-')}"
            if isinstance(value, bool):
                args.append(flag if value else f"--no-{prefix}{key.replace('_', '-')}")
            elif isinstance(value, list):
                args += [flag, *map(str, value)] if value else []
            else:
                args += [flag, str(value)]
    for key in ("filter", "joint_weight", "rationales"):
        if now[key] != default[key]:
            args += [f"--{key.replace('_', '-')}", str(now[key])]
    if now["hint_in_training"]:
        args.append("--hint-in-training")
    if verb == "experiment":
        args += ["--arms", *cfg.arms, "--seeds", *map(str, cfg.seeds)]
    return shlex.join(args)


def plan(store: Store, cfg: ExperimentConfig, verb: str = "experiment", clip: tuple[int, int] | None = None,
         arms: list[str] | None = None, seeds: list[int] | None = None, device: str | None = None,
         free_gb: float | None = None) -> Budget:
    """The budget of an experiment (or one `train` arm) with these settings on this project, here (or on
    `device` with `free_gb`, for a GPU this process cannot see: a ZeroGPU Space between calls)."""
    from ..train import checkpointing
    lm, tokens_from = _processor(cfg.model.model)
    w, h = clip or clip_size(store)
    classes = [c["name"] for c in project.classes(store)] or ["label"]
    label_seq = memory.sequence(lm, cfg.frames, w, h, project.render(store, "classify"), max(classes, key=len))
    rationale = " ".join(["word"] * cfg.generation.max_new_tokens) + f"\nClassification: {max(classes, key=len)}"
    rationale_seq = memory.sequence(lm, cfg.frames, w, h, project.render(store, "describe"), rationale)
    dims = model_dims(cfg.model.model)
    device = device or models.pick_device(cfg.model.device)
    quantized = models.use_4bit(cfg.model, device)
    compute = models.compute_type(cfg.model, device)
    value_bytes = 4 if compute.name == "float32" else 2
    if free_gb is not None:
        free = free_gb
    else:
        free = fit.available_gb(device)
        if device == "cuda":
            import torch
            free += torch.cuda.memory_allocated() / 1e9  # this process's own tensors are not the run's
    arms, seeds = arms or cfg.arms, seeds or cfg.seeds
    trained = [a for a in arms if a != "zero_shot"]
    stage_names = {"sft": ["sft"], "sft_total": ["sft_total"], "rbft": ["stage1", "stage2"], "rbft_joint": ["joint"]}
    rationale_stages = {"stage1", "joint"}
    stages, worst = [], None
    for name in dict.fromkeys(n for a in trained for n in stage_names[a]):
        tc = cfg.stage1 if name == "stage1" else cfg.stage2
        steps = {"sft_total": cfg.stage1.max_steps + cfg.stage2.max_steps,
                 "joint": cfg.stage1.max_steps + cfg.stage2.max_steps}.get(name, tc.max_steps)
        seq = rationale_seq if name in rationale_stages else label_seq
        effective = tc.batch_size * tc.grad_accum
        ckpt = checkpointing(tc, device)
        if str(tc.micro_batch) != "auto":
            micro = int(tc.micro_batch)
        elif device == "cuda":
            micro = memory.largest_batch(dims, seq, free, quantized, effective, tc.lora_r, tc.lean, ckpt,
                                         value_bytes=value_bytes) or 1
        else:
            micro = tc.batch_size
        est = memory.estimate(dims, seq, micro, quantized, tc.lora_r, tc.lean, ckpt, value_bytes)
        if worst is None or est.gb > worst[0].gb:
            worst = (est, ckpt, seq)
        measured = measured_step(store, cfg.model.model, device, micro)
        per_step = measured
        if per_step is None and device == "cuda":
            per_step = estimated_step_seconds(dims, seq.tokens, micro, max(effective // micro, 1))
        runs = len(seeds) * sum(name in stage_names[a] for a in trained)
        stages.append(StagePlan(name, runs, steps, effective, micro, per_step, measured is not None))
    if worst is None:   # zero-shot only: inference at the generation batch
        worst = (memory.estimate(dims, label_seq, 1, quantized, lean=True, checkpointing=False,
                                 value_bytes=value_bytes), False, label_seq)
    return Budget(cfg.model.model, device, quantized, compute, (w, h), label_seq, rationale_seq, worst[0], free, worst[1],
                  stages, command_line(store, cfg, verb), tokens_from, worst[2].tokens, generation_place(cfg))


def generation_place(cfg: ExperimentConfig) -> str:
    """Where the rationales are written, as the budget preview says it."""
    if cfg.engine.engine == "server":
        return (f"written by the server at {cfg.engine.base_url or '(no address given)'} "
                f"({cfg.engine.server_model or 'the model it lists first'}, {cfg.engine.in_flight} requests in "
                "flight); label scoring and training run here")
    return f"written in this process by {cfg.model.model}, {cfg.generation.batch_size} videos a batch"


def check(store: Store, cfg: ExperimentConfig, **kw) -> Budget:
    """Raise WontFit, before anything loads, when the run will not fit here; return the budget."""
    budget = plan(store, cfg, **kw)
    if not budget.fits:
        raise WontFit(budget.refusal())
    return budget
