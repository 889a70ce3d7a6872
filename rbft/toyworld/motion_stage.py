"""The toy-world build's caption stage with sight across time (rbft.toyworld.motion): the captions'
loss plus a read-out of each image token's truth at one layer of the language model, trained with
the project's Trainer like the rest of the build."""
from __future__ import annotations

from pathlib import Path

import torch

from ..events import Event, EventSink, ignore
from .family import find_module, layout


def motion_collator(pad_id: int, dtype: torch.dtype):
    from ..train import VideoCollator
    from .motion import TARGET_KEYS
    base = VideoCollator(pad_id, dtype)

    def collate(features: list[dict]) -> dict:
        targets = {k: torch.cat([f.pop(k) for f in features]) for k in TARGET_KEYS}
        if "label_weights" in features[0]:   # right-padded with 0, as labels are with -100
            weights = [f.pop("label_weights") for f in features]
            length = max(len(w) for w in weights)
            targets["label_weights"] = torch.stack([torch.cat([w, w.new_zeros(length - len(w))]) for w in weights])
        return {**base(features), **targets}
    return collate


def _motion_classes():
    """(dataset, trainer) classes of the motion stage; built on first use, as transformers loads slowly."""
    import transformers as tf

    from .. import models, project
    from ..train import VideoTextDataset
    from . import world
    from .event_words import weighted_answer_loss
    from .motion import TARGET_KEYS, token_targets

    class MotionDataset(VideoTextDataset):
        """The caption examples, each with its image tokens' targets from the clip's rendered truth,
        and, given event kinds' weights, each token's weight in the caption loss (rbft.toyworld.event_words)."""

        def __init__(self, *args, event_weights: dict | None = None):
            super().__init__(*args)
            self.event_weights = event_weights or {}

        def __getitem__(self, i: int) -> dict:
            ex = self.examples[i]
            clip = project.clip(self.store, ex.video, self.frames)
            item = models.encode(self.lm, ex.prompt, clip, self.frames, answer=ex.answer)
            lay = layout(self.lm.family.name)
            truth = world.render(int(Path(ex.video["path"]).stem), labels=True)
            if self.event_weights:
                item["label_weights"] = label_weights(self.lm, item, ex.answer, self.event_weights)
            return {**item, **token_targets(truth, lay.token_frames(clip.indices), lay.side)}

    class MotionTrainer(tf.Trainer):
        """The caption loss plus `weight` x the motion head's loss on the image tokens' hidden states at
        `layer` (kept by a forward hook)."""

        def __init__(self, *args, head, layer, image_token_id: int, weight: float, connector_lr: float = 0.0,
                     connector: str = "", path=None, path_cap: float = 0.0, **kwargs):
            super().__init__(*args, **kwargs)
            self.head, self.image_token_id, self.weight, self.hidden = head, image_token_id, weight, None
            self.connector_lr, self.connector = connector_lr, connector
            self.hooks = [layer.register_forward_hook(self.keep)]
            self.path_cap, self.path_out = path_cap, None
            if path is not None:   # the motion path's LoRA layer: its own output is what the penalty holds
                scale = path.scaling["default"]
                self.hooks.append(path.lora_B["default"].register_forward_hook(
                    lambda m, i, out: setattr(self, "path_out", out * scale)))

        def create_optimizer(self, model=None):
            """AdamW with the connector at its own rate where one is given (the schedule scales both)."""
            if self.optimizer is None and self.connector_lr:
                named = [(n.split("."), p) for n, p in self.model.named_parameters() if p.requires_grad]
                slow = [p for parts, p in named if self.connector in parts]
                rest = [p for parts, p in named if self.connector not in parts]
                self.optimizer = torch.optim.AdamW([{"params": rest}, {"params": slow, "lr": self.connector_lr}],
                                                   lr=self.args.learning_rate, weight_decay=self.args.weight_decay)
                return self.optimizer
            return super().create_optimizer(model)

        def keep(self, module, inputs, output):
            self.hidden = output[0] if isinstance(output, tuple) else output

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            # Every build steps at batch 1 with no accumulation. The read-out's loss, the path penalty and
            # the weighted caption loss are means over this batch, which the Trainer does not divide by
            # its accumulation steps (the model takes num_items_in_batch): with accumulation they would add up.
            targets = [inputs.pop(k) for k in TARGET_KEYS]
            ids = inputs["input_ids"]
            if "label_weights" in inputs:
                weights, labels = inputs.pop("label_weights"), inputs.pop("labels")
                outputs = model(**inputs)
                loss = weighted_answer_loss(outputs.logits, labels, weights)
            else:
                loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
            tokens = self.hidden[ids == self.image_token_id]
            if len(tokens) != len(targets[0]):
                raise ValueError(f"{len(tokens)} image tokens but {len(targets[0])} motion targets")
            loss = loss + self.weight * self.head.loss(tokens, *targets)
            if self.path_out is not None:
                loss = loss + path_penalty(self.path_out, self.path_cap)
            return (loss, outputs) if return_outputs else loss

    return MotionDataset, MotionTrainer


def label_weights(lm, item: dict, answer: str, event_weights: dict) -> torch.Tensor:
    """Per token of an encoded example: 1 for the prompt and video, the answer's event-word weights after."""
    from .event_words import token_weights
    prefix = lm.family.answer_prefix
    answer_part = token_weights(lm.tokenizer, prefix + answer + lm.family.end_of_turn, len(prefix), event_weights)
    prompt_part = torch.ones(len(item["input_ids"]) - len(answer_part))
    if (item["labels"][len(prompt_part):] == -100).any() or (item["labels"][:len(prompt_part)] != -100).any():
        raise ValueError("the answer's token weights do not line up with its labels")
    return torch.cat([prompt_part, answer_part])


HEAD_FILE = "motion_head.pt"
PATH_TARGET = r".*merger\.mlp\.2"   # the merger's last linear, whose word start stays frozen under the path


def path_penalty(out: torch.Tensor, cap: float) -> torch.Tensor:
    """Zero while each token's path output is within `cap` in norm, then quadratic: AdamW's nearly
    sign-sized steps otherwise grow a merger's output without bound (build 9's trace)."""
    return ((out.float().norm(dim=-1) / cap - 1).clamp(min=0) ** 2).mean()


def word_norm(lm) -> float:
    """The median norm of the language model's word embeddings (3.15 for SmolLM2-135M)."""
    return find_module(lm, "embed_tokens").weight.float().norm(dim=-1).median().item()


def motion_stage(store, lm, examples: list, frames, cfg, output_dir: Path, weight: float,
                 on_event: EventSink = ignore, balanced_events: bool = True, connector_lr: float = 0.0,
                 path_norm: float = 0.0, event_word_weight: float = 1.0) -> Path:
    """train_stage's caption training with the motion read-out beside it (resumable, the head saved
    with each checkpoint), and with `path_norm` > 0 the motion path (LoRA on the merger's last linear,
    its output held within path_norm x a word's norm). With `event_word_weight` above 1, the caption
    loss weighs the event words up (rbft.toyworld.event_words). Returns the adapter folder; the head
    is written beside it."""
    import transformers as tf

    from ..train import ADAPTER_DIR, EventCallback, add_lora, last_complete_checkpoint, save_adapter, training_arguments
    from .motion import EVENTS, LAYER, MotionHead, event_pos_weight
    adapter_dir = output_dir / ADAPTER_DIR
    if (adapter_dir / "adapter_config.json").exists():
        return adapter_dir
    lay = layout(lm.family.name)
    image_token_id = getattr(lm.model.config, lay.token_key)
    add_lora(lm, cfg, also=PATH_TARGET if path_norm else "")
    lm.model.train()
    path = next(m for n, m in lm.model.named_modules() if n.endswith("merger.mlp.2")) if path_norm else None
    path_cap = path_norm * word_norm(lm) if path_norm else 0.0
    torch.manual_seed(cfg.seed)
    pos_weight = None
    if balanced_events:
        seeds = sorted({int(Path(ex.video["path"]).stem) for ex in examples})
        pos_weight = event_pos_weight(seeds, frames.num_frames, lay.side, lay.frames_per_token)
        on_event(Event("log", "toyworld", message="event weights (absent per present token): " + ", ".join(
            f"{k} {w:.0f}" for k, w in zip(EVENTS, pos_weight.tolist()))))
    event_weights = {}
    if event_word_weight != 1.0:
        from .event_words import kind_weights
        event_weights = kind_weights([ex.answer for ex in examples], event_word_weight)
        on_event(Event("log", "toyworld", message="event word weights in the caption loss: " + ", ".join(
            f"{k} {w:.2f}" for k, w in sorted(event_weights.items(), key=lambda kw: kw[1]))))
    text = find_module(lm, lm.family.text_module)
    head = MotionHead(text.config.hidden_size, pos_weight)
    lm.model.motion_head = head   # a sub-module, so that the optimizer trains it; PEFT saves adapters only
    last = last_complete_checkpoint(output_dir)
    if last and (Path(last) / HEAD_FILE).exists():
        head.load_state_dict(torch.load(Path(last) / HEAD_FILE))

    class SaveHead(tf.TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            torch.save(head.state_dict(), Path(args.output_dir) / f"checkpoint-{state.global_step}" / HEAD_FILE)

    dataset_class, trainer_class = _motion_classes()
    trainer = trainer_class(
        model=lm.model, args=training_arguments(cfg, output_dir, lm.device, dtype=lm.dtype),
        train_dataset=dataset_class(store, lm, examples, frames, event_weights=event_weights),
        data_collator=motion_collator(lm.tokenizer.pad_token_id, lm.dtype),
        callbacks=[EventCallback("toyworld", on_event, None, 0), SaveHead()],
        head=head, layer=text.layers[LAYER], image_token_id=image_token_id, weight=weight,
        connector_lr=connector_lr, connector=lay.connector, path=path, path_cap=path_cap)
    trainer.remove_callback(tf.PrinterCallback)
    trainer.train(resume_from_checkpoint=last)
    for hook in trainer.hooks:
        hook.remove()
    del lm.model.motion_head
    torch.save(head.state_dict(), output_dir / HEAD_FILE)
    save_adapter(lm.model, output_dir)
    lm.model.eval()
    return adapter_dir

