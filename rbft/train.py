"""Fine-tuning with transformers' Trainer and peft LoRA: the same code for Stage I
(video -> rationale), Stage II (video -> label, from M_inter) and direct SFT.

No training loop of our own: multi-GPU runs work through `accelerate launch` / `torchrun`.
A killed run resumes from its last checkpoint in `output_dir`.
"""
from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

from . import models, project
from .config import FrameConfig, TrainConfig
from .events import Event, EventSink, ignore
from .store import Store

ADAPTER_DIR = "adapter"
STATS_FILE = "train_stats.json"   # the batch plan and the measured speed and memory of a finished stage


@dataclass
class Example:
    video: dict
    prompt: str
    answer: str


class VideoTextDataset(torch.utils.data.Dataset):
    """(video, prompt, answer) triples, encoded on access; frames come from the on-disk cache."""

    def __init__(self, store: Store, lm: models.LoadedModel, examples: list[Example], frames: FrameConfig):
        self.store, self.lm, self.examples, self.frames = store, lm, examples, frames

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict:
        ex = self.examples[i]
        clip = project.clip(self.store, ex.video, self.frames)
        return models.encode(self.lm, ex.prompt, clip, self.frames, answer=ex.answer)


def answer_positions(labels: torch.Tensor) -> torch.Tensor:
    """Positions whose next token carries a loss in any row of the batch: the only logits training needs."""
    return (labels[:, 1:] != -100).any(0).nonzero().squeeze(-1)


@dataclass
class VideoCollator:
    """Right-pads a batch and casts pixel tensors to the model's compute dtype (`LoadedModel.dtype`).
    With `lean`, it also asks the model for the logits of the answer positions only (`logits_to_keep`)."""

    pad_id: int
    dtype: torch.dtype = torch.float32
    lean: bool = False

    def __call__(self, features: list[dict]) -> dict:
        batch = models.collate(features, self.pad_id, side="right")
        batch = {k: v.to(self.dtype) if v.is_floating_point() else v for k, v in batch.items()}
        if self.lean and "labels" in batch:
            batch["logits_to_keep"] = answer_positions(batch["labels"])
        return batch


def answer_loss(outputs, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
    """transformers' causal-LM loss (fp32 cross-entropy, summed over the accumulated batch's answer
    tokens and divided by their count) on logits made only at `answer_positions`. Without it, a 637-token
    example of a 152k-vocabulary model materialises ~0.4 GB of fp32 logits to score a few answer tokens."""
    keep = answer_positions(labels)
    logits = outputs.logits.float()
    target = labels[:, 1:][:, keep].to(logits.device)
    reduction = "sum" if num_items_in_batch is not None else "mean"
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                             ignore_index=-100, reduction=reduction)
    if num_items_in_batch is not None:
        loss = loss / (num_items_in_batch.to(loss.device) if torch.is_tensor(num_items_in_batch)
                       else num_items_in_batch)
    return loss


class EventCallback(TrainerCallback):
    """Turns Trainer logs into loss events and evaluates every K steps (accuracy, confusion matrix)."""

    def __init__(self, stage: str, on_event: EventSink, evaluate: Callable[[], dict] | None,
                 eval_every: int):
        self.stage, self.on_event, self.evaluate, self.eval_every = stage, on_event, evaluate, eval_every
        self.step_ends: list[float] = []   # when each step ended (evaluation time left out)

    def seconds_per_step(self) -> float | None:
        """From the end of the first step to the end of the last: the first step's warm-up left out."""
        t = self.step_ends
        return (t[-1] - t[0]) / (len(t) - 1) if len(t) > 1 else None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs and "loss" in logs:
            self.on_event(Event("loss", self.stage, state.global_step, state.max_steps,
                                data={"loss": float(logs["loss"]),
                                      "learning_rate": float(logs.get("learning_rate", 0.0))}))

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if not state.is_world_process_zero:
            return
        if torch.cuda.is_available():
            torch.cuda.synchronize()   # a step's kernels are queued, not done, when the Trainer returns
        self.step_ends.append(time.perf_counter())
        self.on_event(Event("progress", self.stage, state.global_step, state.max_steps))
        due = self.eval_every and state.global_step % self.eval_every == 0
        if self.evaluate and (due or state.global_step == state.max_steps):
            was_training = model.training
            model.eval()
            started = time.perf_counter()
            result = self.evaluate()
            model.train(was_training)
            self.step_ends = [t + (time.perf_counter() - started) for t in self.step_ends]
            self.on_event(Event("eval", self.stage, state.global_step, state.max_steps, data=result))


def last_complete_checkpoint(output_dir: Path) -> str | None:
    """The newest checkpoint the Trainer finished writing (its trainer_state.json is written last);
    a checkpoint cut off mid-save by a stop or a kill is removed, not resumed from."""
    if not output_dir.exists():
        return None
    found = [(int(p.name.split("-")[-1]), p) for p in output_dir.glob("checkpoint-*")
             if p.is_dir() and p.name.split("-")[-1].isdigit()]
    for _, path in sorted(found, reverse=True):
        try:
            json.loads((path / "trainer_state.json").read_text())
            return str(path)
        except (OSError, ValueError):
            shutil.rmtree(path, ignore_errors=True)
    return None


def checkpointing(cfg: TrainConfig, device: str) -> bool:
    value = str(cfg.gradient_checkpointing).lower()
    if value not in ("auto", "on", "off", "true", "false"):
        raise ValueError(f"gradient_checkpointing must be auto, on or off, not {cfg.gradient_checkpointing!r}")
    return value in ("on", "true") or (value == "auto" and device == "cuda")


def set_memory_path(lm: models.LoadedModel, cfg: TrainConfig) -> None:
    """Checkpointing on or off, and the input-grad hooks of the default path on or off, for this stage.

    Non-reentrant checkpointing needs no input that requires grad. transformers'
    enable_input_require_grads hooks every sub-model's input embeddings, the vision tower's patch
    embedding included, so the frozen tower keeps its activations for a backward that changes
    nothing: only the default (not lean) path does that, for comparison."""
    if checkpointing(cfg, lm.device):
        lm.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    elif getattr(lm.model, "is_gradient_checkpointing", False):
        lm.model.gradient_checkpointing_disable()
    if checkpointing(cfg, lm.device) and not cfg.lean:
        lm.model.enable_input_require_grads()
    else:
        lm.model.disable_input_require_grads()


def add_lora(lm: models.LoadedModel, cfg: TrainConfig, also: str = "") -> None:
    """Wrap the model with fresh LoRA weights on the language model, and on the modules the regex
    `also` names (skipped if it already has an adapter); set this stage's checkpointing either way."""
    from peft import LoraConfig, PeftModel, get_peft_model
    set_memory_path(lm, cfg)
    if isinstance(lm.model, PeftModel):
        return
    torch.manual_seed(cfg.seed)
    full = list(lm.family.vision_modules if cfg.train_vision else []) + list(cfg.train_modules)
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=f"({lm.family.lora_target})|({also})" if also else lm.family.lora_target,
                      task_type="CAUSAL_LM",
                      modules_to_save=list(dict.fromkeys(full)) or None)
    lm.model = get_peft_model(lm.model, lora)


def training_arguments(cfg: TrainConfig, output_dir: Path, device: str,
                       micro_batch: int | None = None, dtype: torch.dtype = torch.bfloat16) -> TrainingArguments:
    """With `micro_batch` (a divisor of batch_size x grad_accum), gradient accumulation makes up the rest."""
    micro = micro_batch or cfg.batch_size
    accum = cfg.batch_size * cfg.grad_accum // micro if micro_batch else cfg.grad_accum
    return TrainingArguments(
        output_dir=str(output_dir),
        max_steps=cfg.max_steps,
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=accum,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=cfg.warmup_ratio,
        logging_steps=1,
        save_strategy="steps",
        save_steps=max(1, cfg.save_every),
        save_total_limit=2,
        seed=cfg.seed,
        bf16=device == "cuda" and dtype == torch.bfloat16,
        use_cpu=device == "cpu",
        report_to=[],
        remove_unused_columns=False,   # the collator's vision keys are not in forward()'s signature
        dataloader_pin_memory=device == "cuda",
        disable_tqdm=True,             # progress goes through events
    )


def train_stage(store: Store, lm: models.LoadedModel, examples: list[Example], frames: FrameConfig,
                cfg: TrainConfig, output_dir: str | Path, stage: str,
                evaluate: Callable[[], dict] | None = None, on_event: EventSink = ignore) -> Path:
    """Train LoRA on the examples (continuing an adapter the model already carries) and save it.

    Returns the adapter folder. A finished stage (adapter saved) is not trained again: its adapter
    is loaded instead, so that the next stage continues from it and scoring uses it.
    """
    output_dir = Path(output_dir)
    adapter_dir = output_dir / ADAPTER_DIR
    if (adapter_dir / "adapter_config.json").exists():
        on_event(Event("log", stage, message=f"{stage}: already trained, using {adapter_dir}"))
        load_adapter(lm, adapter_dir)
        return adapter_dir
    if not examples:
        raise ValueError(f"{stage}: no training examples")
    add_lora(lm, cfg)
    lm.model.train()
    dataset = VideoTextDataset(store, lm, examples, frames)
    collator = VideoCollator(lm.tokenizer.pad_token_id, lm.dtype, lean=cfg.lean)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    plan = plan_batch(lm, cfg, dataset, collator)
    on_event(Event("log", stage, message=f"{stage}: {plan.describe()}", data=plan.as_dict()))
    events = EventCallback(stage, on_event, evaluate, cfg.eval_every)
    trainer = Trainer(
        model=lm.model,
        args=training_arguments(cfg, output_dir, lm.device, plan.micro_batch, lm.dtype),
        train_dataset=dataset,
        data_collator=collator,
        compute_loss_func=answer_loss if cfg.lean else None,
        callbacks=[events],
    )
    trainer.remove_callback(PrinterCallback)  # progress goes through events, not stdout dicts
    last = last_complete_checkpoint(output_dir)
    if last:
        on_event(Event("log", stage, message=f"{stage}: resuming from {Path(last).name}"))
    trainer.train(resume_from_checkpoint=last)
    if trainer.is_world_process_zero():
        per_step = events.seconds_per_step()
        stats = {**plan.as_dict(), "processes": trainer.args.world_size, "seconds_per_step": per_step,
                 "dtype": lm.compute.name, "dtype_reason": lm.compute.reason,
                 "samples_per_s": plan.effective_batch / per_step if per_step else None,
                 "peak_gpu_gb": torch.cuda.max_memory_allocated() / 1e9 if torch.cuda.is_available() else None}
        (output_dir / STATS_FILE).write_text(json.dumps(stats, indent=2))
        save_adapter(lm.model, output_dir)
    lm.model.eval()
    return adapter_dir


def load_adapter(lm: models.LoadedModel, adapter_dir: Path) -> None:
    """Make the model carry this saved adapter: wrap it, or, where it carries an earlier stage's
    LoRA, put the saved weights in its place (a resumed RB-FT run after Stage I or Stage II)."""
    from peft import PeftModel
    from peft.utils import load_peft_weights, set_peft_model_state_dict
    if isinstance(lm.model, PeftModel):
        set_peft_model_state_dict(lm.model, load_peft_weights(str(adapter_dir), device=lm.device))
    else:
        lm.model = PeftModel.from_pretrained(lm.model, str(adapter_dir), is_trainable=True)
    lm.model.eval()


def save_adapter(model, output_dir: Path) -> Path:
    """Save a stage's adapter: written aside, then renamed, so that a cut-off save is never "done"."""
    partial = output_dir / (ADAPTER_DIR + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(str(partial))
    partial.rename(output_dir / ADAPTER_DIR)
    return output_dir / ADAPTER_DIR


def stage_stats(output_dir: str | Path) -> dict | None:
    """What a finished stage measured (batch plan, seconds per step, peak GPU memory), if written."""
    path = Path(output_dir) / STATS_FILE
    return json.loads(path.read_text()) if path.exists() else None


# ---- the batch: the user's effective batch, split into micro batches that fit ----------------

@dataclass
class BatchPlan:
    micro_batch: int
    grad_accum: int
    effective_batch: int
    auto: bool
    estimate_gb: float | None = None     # the memory model's peak at this micro batch (CUDA, auto)
    first_step_gb: float | None = None   # measured by the confirming step
    backed_off_from: int | None = None   # the model's choice when the real step ran out of memory

    def as_dict(self) -> dict:
        from dataclasses import asdict
        return asdict(self)

    def describe(self) -> str:
        text = (f"batch {self.effective_batch} per step = {self.micro_batch} per forward x "
                f"{self.grad_accum} accumulated" + (" (auto)" if self.auto else ""))
        if self.estimate_gb is not None:
            text += f"; estimated peak {self.estimate_gb:.1f} GB"
        if self.first_step_gb is not None:
            text += f", first step measured {self.first_step_gb:.1f} GB"
        if self.backed_off_from:
            text += f"; {self.backed_off_from} per forward ran out of memory"
        return text


def _divisors_below(n: int, upto: int) -> list[int]:
    return [b for b in range(upto, 0, -1) if n % b == 0]


def plan_batch(lm: models.LoadedModel, cfg: TrainConfig, dataset: VideoTextDataset,
               collator: VideoCollator) -> BatchPlan:
    """The micro batch: a number the user set; on CPU with 'auto', today's batch_size; on CUDA with
    'auto', the largest divisor of the effective batch that the memory model says fits, confirmed
    by a real forward and backward on the longest example (backing off on out-of-memory)."""
    effective = cfg.batch_size * cfg.grad_accum
    if str(cfg.micro_batch) != "auto":
        micro = int(cfg.micro_batch)
        if micro < 1 or effective % micro:
            raise ValueError(f"micro_batch {micro} must divide the effective batch {effective} "
                             f"(batch_size {cfg.batch_size} x grad_accum {cfg.grad_accum})")
        return BatchPlan(micro, effective // micro, effective, auto=False)
    if lm.device != "cuda":
        return BatchPlan(cfg.batch_size, cfg.grad_accum, effective, auto=True)
    from . import memory
    longest = max(range(len(dataset)), key=lambda i: len(dataset.examples[i].answer))
    example = dataset[longest]
    dims = memory.dims(lm.name, config=lm.model.config)
    seq = memory.sequence_of(lm, example)
    free = (torch.cuda.mem_get_info()[0] + torch.cuda.memory_allocated()) / 1e9  # the estimate counts the weights
    quantized, ckpt = lm.quantized, checkpointing(cfg, lm.device)
    micro = memory.largest_batch(dims, seq, free, quantized, effective, cfg.lora_r, cfg.lean, ckpt,
                                 value_bytes=4 if lm.compute.name == "float32" else 2) or 1
    chosen = micro
    for micro in _divisors_below(effective, chosen):
        try:
            measured = _one_step(lm, collator, [example] * micro, cfg.lean)
        except torch.cuda.OutOfMemoryError:
            lm.model.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            continue
        estimate = memory.estimate(dims, seq, micro, quantized, cfg.lora_r, cfg.lean, ckpt,
                                   4 if lm.compute.name == "float32" else 2).gb
        return BatchPlan(micro, effective // micro, effective, True, estimate, measured,
                         chosen if micro != chosen else None)
    from .fit import WontFit
    raise WontFit(f"not even one video fits in GPU memory for training ({seq.tokens} tokens, "
                  f"{seq.visual_tokens} of them visual): use fewer frames or a smaller max_side, "
                  "4-bit loading (--quantization nf4), or a smaller model")


def _one_step(lm: models.LoadedModel, collator: VideoCollator, features: list[dict], lean: bool) -> float:
    """A real forward and backward (no optimizer step); returns its peak GPU memory in GB."""
    torch.cuda.reset_peak_memory_stats()
    batch = models.to_model(lm, collator(features))
    batch["labels"] = batch["labels"].long()
    if lean:
        labels = batch.pop("labels")
        loss = answer_loss(lm.model(**batch), labels)
    else:
        loss = lm.model(**batch).loss
    loss.backward()
    del loss, batch
    lm.model.zero_grad(set_to_none=True)
    peak = torch.cuda.max_memory_allocated() / 1e9
    torch.cuda.empty_cache()
    return peak
