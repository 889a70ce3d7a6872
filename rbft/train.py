"""Fine-tuning with transformers' Trainer and peft LoRA: the same code for Stage I
(video -> rationale), Stage II (video -> label, from M_inter) and direct SFT.

No training loop of our own: multi-GPU runs work through `accelerate launch` / `torchrun`.
A killed run resumes from its last checkpoint in `output_dir`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments
import json
import shutil

from . import models, project
from .config import FrameConfig, TrainConfig
from .events import Event, EventSink, ignore
from .store import Store

ADAPTER_DIR = "adapter"


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


@dataclass
class VideoCollator:
    """Right-pads a batch and casts pixel tensors to the model's compute dtype."""

    pad_id: int
    dtype: torch.dtype = torch.bfloat16

    def __call__(self, features: list[dict]) -> dict:
        batch = models.collate(features, self.pad_id, side="right")
        return {k: v.to(self.dtype) if v.is_floating_point() else v for k, v in batch.items()}


class EventCallback(TrainerCallback):
    """Turns Trainer logs into loss events and evaluates every K steps (accuracy, confusion matrix)."""

    def __init__(self, stage: str, on_event: EventSink, evaluate: Optional[Callable[[], dict]],
                 eval_every: int):
        self.stage, self.on_event, self.evaluate, self.eval_every = stage, on_event, evaluate, eval_every

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs and "loss" in logs:
            self.on_event(Event("loss", self.stage, state.global_step, state.max_steps,
                                data={"loss": float(logs["loss"]),
                                      "learning_rate": float(logs.get("learning_rate", 0.0))}))

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if not state.is_world_process_zero:
            return
        self.on_event(Event("progress", self.stage, state.global_step, state.max_steps))
        due = self.eval_every and state.global_step % self.eval_every == 0
        if self.evaluate and (due or state.global_step == state.max_steps):
            was_training = model.training
            model.eval()
            result = self.evaluate()
            model.train(was_training)
            self.on_event(Event("eval", self.stage, state.global_step, state.max_steps, data=result))


def last_complete_checkpoint(output_dir: Path) -> Optional[str]:
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


def add_lora(lm: models.LoadedModel, cfg: TrainConfig) -> None:
    """Wrap the model with fresh LoRA weights on the language model (skipped if it already has an adapter)."""
    from peft import LoraConfig, PeftModel, get_peft_model
    if isinstance(lm.model, PeftModel):
        return
    if cfg.gradient_checkpointing:
        lm.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        lm.model.enable_input_require_grads()
    torch.manual_seed(cfg.seed)
    full = list(lm.family.vision_modules if cfg.train_vision else []) + list(cfg.train_modules)
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=lm.family.lora_target, task_type="CAUSAL_LM",
                      modules_to_save=list(dict.fromkeys(full)) or None)
    lm.model = get_peft_model(lm.model, lora)


def training_arguments(cfg: TrainConfig, output_dir: Path, device: str) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(output_dir),
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=cfg.warmup_ratio,
        logging_steps=1,
        save_strategy="steps",
        save_steps=max(1, cfg.save_every),
        save_total_limit=2,
        seed=cfg.seed,
        bf16=device == "cuda",
        use_cpu=device == "cpu",
        report_to=[],
        remove_unused_columns=False,   # the collator's vision keys are not in forward()'s signature
        dataloader_pin_memory=device == "cuda",
        disable_tqdm=True,             # progress goes through events
    )


def train_stage(store: Store, lm: models.LoadedModel, examples: list[Example], frames: FrameConfig,
                cfg: TrainConfig, output_dir: str | Path, stage: str,
                evaluate: Optional[Callable[[], dict]] = None, on_event: EventSink = ignore) -> Path:
    """Train LoRA on the examples (continuing an adapter the model already carries) and save it.

    Returns the adapter folder. A finished stage (adapter saved) is not trained again.
    """
    output_dir = Path(output_dir)
    adapter_dir = output_dir / ADAPTER_DIR
    if (adapter_dir / "adapter_config.json").exists():
        on_event(Event("log", stage, message=f"{stage}: already trained, using {adapter_dir}"))
        return adapter_dir
    if not examples:
        raise ValueError(f"{stage}: no training examples")
    add_lora(lm, cfg)
    lm.model.train()
    trainer = Trainer(
        model=lm.model,
        args=training_arguments(cfg, output_dir, lm.device),
        train_dataset=VideoTextDataset(store, lm, examples, frames),
        data_collator=VideoCollator(lm.tokenizer.pad_token_id),
        callbacks=[EventCallback(stage, on_event, evaluate, cfg.eval_every)],
    )
    trainer.remove_callback(PrinterCallback)  # progress goes through events, not stdout dicts
    last = last_complete_checkpoint(output_dir)
    if last:
        on_event(Event("log", stage, message=f"{stage}: resuming from {Path(last).name}"))
    trainer.train(resume_from_checkpoint=last)
    if trainer.is_world_process_zero():  # written aside, then renamed: a cut-off save is never "done"
        partial = output_dir / (ADAPTER_DIR + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        lm.model.save_pretrained(str(partial))
        partial.rename(adapter_dir)
    lm.model.eval()
    return adapter_dir
