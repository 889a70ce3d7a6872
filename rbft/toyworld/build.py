"""The toy-world build (`python -m rbft toyworld`), resumable and deterministic for a seed: the vision
tower learns each patch's truth (rbft.toyworld.sight), the connector starts from word embeddings,
then the connector and LoRA (and, with the motion read-out, the tower) learn the clips' captions."""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..events import Event, EventSink, Progress, ignore
from .base import VISION
from .family import FAMILIES, find_module, layout, layout_of

# ---- the build: teach the vision tower and connector (and LoRA on the language model) the toy world

DESCRIBE = "Describe what happens in this video, in the order it happens."


@dataclass
class BuildConfig:
    # the defaults are the shipped build's settings (assets/toyworld/manifest.json): build 16, the Qwen
    # family; FAMILY_RECIPES holds the SmolVLM build's own (builds 1-6)
    family: str = field(default="qwen2_5_vl", metadata={"help": "the architecture around SmolLM2: qwen2_5_vl "
                        "(the paper's family, shipped; its tower sees pairs of frames) or smolvlm (builds 1-6; "
                        "its own recipe, unless given: sight steps 1500, sight batch 4, sight lr 1e-3, motion "
                        "weight 1, tower and connector trained in the caption stage)", "choices": FAMILIES})
    clips: int = field(default=1200, metadata={"help": "toy-world clips rendered for caption training (60/20/20 split)"})
    sight_steps: int = field(default=4500, metadata={"help": "optimizer steps of the vision tower's pretraining"})
    sight_batch_size: int = field(default=16, metadata={"help": "clips per pretraining step (each gives num_frames images)"})
    sight_learning_rate: float = field(default=3e-3, metadata={"help": "for the vision tower's pretraining"})
    align_steps: int = field(default=0, metadata={"help": "steps that train the connector alone after its word init "
                                                    "(language model frozen, no LoRA); the shipped build used none"})
    align_learning_rate: float = field(default=1e-3, metadata={"help": "for the connector's alignment steps"})
    steps: int = field(default=2400, metadata={"help": "optimizer steps of the caption stage"})
    batch_size: int = field(default=1, metadata={"help": "clips per caption step"})
    learning_rate: float = field(default=5e-4, metadata={"help": "for the connector and LoRA (caption stage)"})
    num_frames: int = field(default=8, metadata={"help": "frames per clip the model sees"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank on the language model"})
    motion_weight: float = field(default=0.1, metadata={"help": "weight of the caption stage's sight-across-time "
                                                          "loss (rbft.toyworld.motion); 0: captions alone"})
    balanced_events: bool = field(default=True, metadata={"help": "the read-out's event tags: each event's "
                                  "present tokens weigh as much as its absent ones over the training clips "
                                  "(motion.event_pos_weight; off: the plain mean of builds 1-4)"})
    train_vision: bool = field(default=False, metadata={"help": "the caption stage also trains the vision tower "
                                                        "(it stays frozen with motion_weight 0)"})
    train_connector: bool = field(default=False, metadata={"help": "the caption stage also trains the connector "
                                                            "from its word start (off: it keeps the word start, and "
                                                            "only LoRA learns to read it)"})
    connector_learning_rate: float = field(default=0.0, metadata={"help": "with --train-connector: the connector's "
                                           "own rate in the caption stage (0: the LoRA rate, --learning-rate)"})
    motion_path: bool = field(default=False, metadata={"help": "Qwen: LoRA on the merger's last linear beside its "
                              "frozen word start, so that what the words do not span (motion) has its own path "
                              "into the language model; merged into the merger when shipped"})
    motion_path_norm: float = field(default=0.5, metadata={"help": "with --motion-path: the path's output norm, as a "
                                    "share of a word embedding's median norm, above which a penalty holds it "
                                    "(a bare trained merger grew 23x past the words)"})
    word_start_motion: float = field(default=0.5, metadata={"help": "Qwen: weight of the words of each thing's "
                                     "motion in its pair of frames in the merger's word start, outside the object "
                                     "words' span (0: the things' size, colour and shape only, as build 9)"})
    event_word_weight: float = field(default=1.0, metadata={"help": "weight of the event words' tokens in the "
                                     "caption loss, for the commonest kind, rarer kinds more (rbft.toyworld."
                                     "event_words; 1: the plain caption loss); needs a motion weight above 0"})
    save_every: int = field(default=100, metadata={"help": "steps between resumable checkpoints"})
    seed: int = field(default=0, metadata={"help": "seed of the world, the weights and the data order"})
    dtype: str = field(default="auto", metadata={"help": "compute type of the caption stage and the evaluation: "
                                                 "auto (rbft.dtypes: the faster one here), float32 or bfloat16"})


# A family's own recipe where it differs from the defaults above (the Qwen family's: the tower's
# pretraining of issue 33, 16 clips of one pair a step, 4,500 steps at 3e-3; build 6's caption stage,
# read-out weight 0.1 and the tower frozen; the merger kept at its word start since build 9, with
# each thing's motion words in it at half weight since build 15, 2,400 caption steps since build 16). The
# SmolVLM build trained everything in the caption stage, with a smaller tower pretraining.
FAMILY_RECIPES = {"qwen2_5_vl": {},
                  "smolvlm": dict(sight_steps=1500, sight_batch_size=4, sight_learning_rate=1e-3,
                                  motion_weight=1.0, train_vision=True, train_connector=True, steps=600,
                                  word_start_motion=0.0)}


def family_config(family: str = "qwen2_5_vl", **given) -> BuildConfig:
    """A family's build settings: its recipe, then whatever is given."""
    layout(family)   # a clear error for an unknown family
    return BuildConfig(family=family, **{**FAMILY_RECIPES[family], **given})


# Clip seeds, offset by seed * 1e6. Caption-stage clips are 0 .. clips - 1; the vision tower trains on
# SIGHT_SEEDS + i; SIGHT_EVAL_SEEDS are its 40 held-out clips, measured before the connector's word
# regression fits on the same range (rbft.toyworld.word_start: that fit never touches the tower it was measured on).
SIGHT_SEEDS = 500_000
SIGHT_EVAL_SEEDS = 900_000
VISION_FILE = "vision.safetensors"


def pretrain_sight(work: Path, base: Path, cfg: BuildConfig, on_event: EventSink = ignore) -> Path:
    """Stage 0: the vision tower learns each patch's ground truth (rbft.toyworld.sight); returns its weights."""
    import transformers as tf
    from safetensors.torch import save_file

    from ..config import TrainConfig
    from ..models import pick_device
    from ..train import EventCallback, last_complete_checkpoint, training_arguments
    from . import sight
    out = work / "sight"
    weights = out / VISION_FILE
    if weights.exists():
        return weights
    full = tf.AutoModelForImageTextToText.from_pretrained(base, dtype=torch.float32)
    model = sight.SightPretraining(full.model.vision_model, VISION["hidden_size"])
    del full
    args = training_arguments(TrainConfig(max_steps=cfg.sight_steps, batch_size=cfg.sight_batch_size,
                                          learning_rate=cfg.sight_learning_rate, save_every=cfg.save_every,
                                          seed=cfg.seed), out, pick_device())
    data = sight.SightDataset(cfg.seed * 1_000_000 + SIGHT_SEEDS, cfg.sight_steps * cfg.sight_batch_size,
                                 cfg.num_frames, VISION["patch_size"])
    trainer = tf.Trainer(model=model, args=args, train_dataset=data, data_collator=sight.collate,
                         callbacks=[EventCallback("sight", on_event, None, 0)])
    trainer.remove_callback(tf.PrinterCallback)
    trainer.train(resume_from_checkpoint=last_complete_checkpoint(out))
    first = cfg.seed * 1_000_000 + SIGHT_EVAL_SEEDS
    held_out = list(range(first, first + 40))
    report = sight.sight_accuracy(model.cpu().float(), held_out, cfg.num_frames, VISION["patch_size"])
    on_event(Event("log", "sight", message=f"vision tower on 40 held-out clips: {report}"))
    (out / "sight.json").write_text(json.dumps(report, indent=2))
    partial = out / (VISION_FILE + ".partial")
    save_file({k: v.detach().to(torch.bfloat16).contiguous() for k, v in model.vision_model.state_dict().items()},
              str(partial))
    partial.rename(weights)
    return weights


def pretrain_sight_qwen(work: Path, base: Path, cfg: BuildConfig, on_event: EventSink = ignore) -> Path:
    """Stage 0 of the Qwen-family build: the tower learns each two-frame patch's truth, motion
    included (rbft.toyworld.sight_qwen); returns its weights (the merger is not among them)."""
    import transformers as tf
    from safetensors.torch import save_file

    from ..config import TrainConfig
    from ..models import pick_device
    from ..train import EventCallback, last_complete_checkpoint, training_arguments
    from . import sight_qwen
    out = work / "sight"
    weights = out / VISION_FILE
    if weights.exists():
        return weights
    full = tf.AutoModelForImageTextToText.from_pretrained(base, dtype=torch.float32)
    model = sight_qwen.PairPretraining(full.model.visual)
    del full
    args = training_arguments(TrainConfig(max_steps=cfg.sight_steps, batch_size=cfg.sight_batch_size,
                                          learning_rate=cfg.sight_learning_rate, save_every=cfg.save_every,
                                          seed=cfg.seed), out, pick_device())
    data = sight_qwen.PairDataset(cfg.seed * 1_000_000 + SIGHT_SEEDS, cfg.sight_steps * cfg.sight_batch_size,
                                  cfg.num_frames)
    trainer = tf.Trainer(model=model, args=args, train_dataset=data, data_collator=sight_qwen.collate,
                         callbacks=[EventCallback("sight", on_event, None, 0)])
    trainer.remove_callback(tf.PrinterCallback)
    started = time.time()
    trainer.train(resume_from_checkpoint=last_complete_checkpoint(out))
    seconds = time.time() - started
    report = sight_qwen.pair_accuracy(model.cpu().float(), cfg.seed * 1_000_000 + SIGHT_EVAL_SEEDS, 40,
                                      cfg.num_frames)
    report["train_seconds_this_run"] = round(seconds, 1)
    on_event(Event("log", "sight", message=f"vision tower on 40 held-out clips: {report}"))
    (out / "sight.json").write_text(json.dumps(report, indent=2))
    partial = out / (VISION_FILE + ".partial")
    tower = {k: v.detach().to(torch.bfloat16).contiguous() for k, v in model.visual.state_dict().items()
             if not k.startswith("merger.")}
    save_file(tower, str(partial))
    partial.rename(weights)
    return weights


def load_vision(lm, weights: Path) -> None:
    """Put pretrained vision tower weights into a loaded toy-world model (Qwen's tower weights leave
    out the merger, its connector, which the caption stage trains)."""
    from safetensors.torch import load_file
    tower = find_module(lm, layout(lm.family.name).tower)
    dtype = next(tower.parameters()).dtype
    missing, unexpected = tower.load_state_dict({k: v.to(dtype) for k, v in load_file(str(weights)).items()},
                                                strict=False)
    if unexpected or any(not k.startswith("merger.") for k in missing):
        raise ValueError(f"{weights} does not fit this model's vision tower: missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}")


CONNECTOR_FILE = "connector.safetensors"   # in align/: the connector as the caption stage starts it


def load_connector(lm, weights: Path) -> None:
    """Put the connector's start (word start, or alignment steps) into a loaded model: a caption stage
    that trained the connector brings its own in the adapter, one that kept it needs this."""
    from safetensors.torch import load_file
    connector = find_module(lm, layout(lm.family.name).connector)
    dtype = next(connector.parameters()).dtype
    connector.load_state_dict({k: v.to(dtype) for k, v in load_file(str(weights)).items()})


def _world_project(work: Path, cfg: BuildConfig, on_event: EventSink):
    """A project of rendered clips (label 'clip'); each file's stem is the seed that renders it."""
    from ..data import ingest
    from ..project import open_project
    from ..synthetic import write_video
    from . import world
    store = open_project(work / "project")
    if len(store.videos()) < cfg.clips:
        folder = work / "clips" / "clip"
        progress = Progress(on_event, "render", cfg.clips)
        for i in range(cfg.clips):
            path = folder / f"{cfg.seed * 1_000_000 + i:07d}.webm"
            if not path.exists():
                clip = world.render(cfg.seed * 1_000_000 + i)
                write_video(path, clip.frames[..., ::-1], fps=clip.fps)
            progress.advance()
        ingest(store, work / "clips", seed=cfg.seed, on_event=on_event)
    return store


# The caption stage asks in the studio's own prompt formats too, with made-up domains and classes, so
# that the model describes its clips whatever the project's prompt (with a label hint, it ends with the
# hint as the rationale format asks: it cannot reason about classes it has never seen).
DOMAINS = ["a camera watching a room", "quality checks on a conveyor", "a game of shapes",
           "traffic on a square", "a lab experiment", "security footage"]
CLASS_WORDS = ["alert", "normal", "fault", "ok", "busy", "quiet", "type a", "type b", "event", "none",
               "pass", "fail", "active", "idle"]


def caption_prompt(index: int, seed: int = 0) -> tuple[str, str | None]:
    """(prompt, hint label or None) for the index-th training clip: a third each of the plain request,
    the studio's describe prompt and its rationale prompt (with a hint), under a made-up task."""
    import numpy as np

    from .. import prompts
    rng = np.random.default_rng([seed, index])
    kind = ("plain", "describe", "rationale")[index % 3]
    if kind == "plain":
        return DESCRIBE, None
    names = list(rng.choice(CLASS_WORDS, size=int(rng.integers(2, 5)), replace=False))
    classes = [{"name": n, "description": f"{n} as the team defines it"} for n in names]
    domain = str(rng.choice(DOMAINS))
    if kind == "describe":
        return prompts.render("describe", prompts.default_template("describe"), domain=domain, classes=classes), None
    label = str(rng.choice(names))
    return prompts.render("rationale", prompts.default_template("rationale"), domain=domain, classes=classes,
                          label=label), label


def caption_examples(videos: list[dict], seed: int) -> list:
    from ..prompts import rationale_target
    from ..train import Example
    out = []
    for i, v in enumerate(videos):
        prompt, hint = caption_prompt(i, seed)
        text = caption_for(v)
        out.append(Example(v, prompt, rationale_target(text, hint) if hint else text))
    return out


def caption_for(video: dict) -> str:
    from . import world
    seed = int(Path(video["path"]).stem)
    return world.caption(world.render(seed), seed)


def align_connector(work: Path, store, lm, examples: list, cfg: BuildConfig, on_event: EventSink = ignore) -> None:
    """Stage 1 of the caption training, as LLaVA does it: only the connector learns (language model
    frozen, no LoRA), so lowering the caption loss has to go through the image tokens; with LoRA
    from the start the language model learns the captions' common wording first and ignores them.
    The connector starts from `connector_from_words`. Leaves the aligned connector in `lm`."""
    import transformers as tf
    from safetensors.torch import save_file

    from ..config import FrameConfig, TrainConfig
    from ..train import EventCallback, VideoCollator, VideoTextDataset, last_complete_checkpoint, training_arguments
    out = work / "align"
    saved = out / CONNECTOR_FILE
    lay = layout(lm.family.name)
    connector = find_module(lm, lay.connector)
    if saved.exists():
        load_connector(lm, saved)
        return
    from .word_start import connector_from_words
    connector_from_words(lm, cfg.seed, cfg.num_frames, motion=cfg.word_start_motion)
    if cfg.align_steps <= 0:
        out.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in connector.state_dict().items()}, str(saved))
        return
    data = VideoTextDataset(store, lm, examples, FrameConfig(cfg.num_frames, lay.image_size))
    for p in lm.model.parameters():
        p.requires_grad_(False)
    for p in connector.parameters():
        p.requires_grad_(True)
    args = training_arguments(TrainConfig(max_steps=cfg.align_steps, batch_size=cfg.batch_size,
                                          learning_rate=cfg.align_learning_rate, save_every=cfg.save_every,
                                          seed=cfg.seed), out, lm.device)
    trainer = tf.Trainer(model=lm.model, args=args, train_dataset=data,
                         data_collator=VideoCollator(lm.tokenizer.pad_token_id, lm.dtype),
                         callbacks=[EventCallback("align", on_event, None, 0)])
    trainer.remove_callback(tf.PrinterCallback)
    trainer.train(resume_from_checkpoint=last_complete_checkpoint(out))
    partial = out / "connector.partial"
    save_file({k: v.contiguous() for k, v in connector.state_dict().items()}, str(partial))
    partial.rename(saved)


def build(work: str | Path, cfg: BuildConfig | None = None, on_event: EventSink = ignore) -> Path:
    """Train the toy-world VLM (resumable): the vision tower on patch truth, the connector from words
    (and optionally alone on captions), then the connector and LoRA on captions. Returns the caption
    stage's adapter folder (connector, LoRA); the vision tower is in sight/."""
    from .. import models
    from ..config import FrameConfig, ModelConfig, TrainConfig
    from ..train import train_stage
    cfg = cfg or BuildConfig()
    if cfg.event_word_weight != 1.0 and cfg.motion_weight <= 0:
        raise ValueError("--event-word-weight needs a motion weight above 0 (the motion stage weighs the caption loss)")
    work = Path(work)
    base = work / "base"
    lay = layout(cfg.family)
    if not (base / "rbft_toyvlm.json").exists():
        on_event(Event("log", "toyworld", message=f"assembling the {cfg.family} base around SmolLM2-135M-Instruct"))
        lay.assemble(base, seed=cfg.seed)
    if layout_of(base) != lay:
        raise ValueError(f"{work} holds a {layout_of(base).family} build; this one is {cfg.family}: use another --work")
    if cfg.motion_path and (cfg.family != "qwen2_5_vl" or cfg.motion_weight <= 0):
        raise ValueError("--motion-path needs the qwen2_5_vl family and a motion weight above 0")
    started = time.time()
    vision = (pretrain_sight_qwen if cfg.family == "qwen2_5_vl" else pretrain_sight)(work, base, cfg, on_event)
    store = _world_project(work, cfg, on_event)
    examples = caption_examples(store.videos(split="train"), cfg.seed)
    lm = models.load(ModelConfig(model=str(base), quantization="none", dtype=cfg.dtype))
    on_event(Event("log", "toyworld", message=f"compute type {lm.compute.reason}"))
    load_vision(lm, vision)
    trained_before = (work / "run" / "adapter" / "adapter_config.json").exists()
    if not trained_before:
        align_connector(work, store, lm, examples, cfg, on_event)
    for p in find_module(lm, lay.tower).parameters():
        p.requires_grad_(False)   # its eyes are trained; the caption stage learns to read them
    with_motion = cfg.motion_weight > 0
    train = TrainConfig(max_steps=cfg.steps, batch_size=cfg.batch_size, learning_rate=cfg.learning_rate,
                        lora_r=cfg.lora_r, lora_alpha=2 * cfg.lora_r, eval_every=0, save_every=cfg.save_every,
                        seed=cfg.seed, train_modules=lay.trained_modules(with_motion and cfg.train_vision,
                                                                         cfg.train_connector))
    frames = FrameConfig(cfg.num_frames, lay.image_size)
    if with_motion:
        from .motion_stage import motion_stage
        adapter = motion_stage(store, lm, examples, frames, train, work / "run", cfg.motion_weight, on_event,
                               balanced_events=cfg.balanced_events, connector_lr=cfg.connector_learning_rate,
                               path_norm=cfg.motion_path_norm if cfg.motion_path else 0.0,
                               event_word_weight=cfg.event_word_weight)
    else:
        adapter = train_stage(store, lm, examples, frames, train, work / "run", "toyworld", on_event=on_event)
    if trained_before and (work / "build.json").exists():
        return adapter   # nothing was trained now: build.json keeps the build's own seconds (for --ship runs)
    (work / "build.json").write_text(json.dumps({
        "config": asdict(cfg), "train_examples": len(examples), "seconds": time.time() - started,
        "base": json.loads((base / "rbft_toyvlm.json").read_text())}, indent=2))
    return adapter


def load_build(work: str | Path, trained: bool = True, dtype: str = "auto"):
    """A build's model as it stands: its base, with the pretrained vision tower and the caption
    stage's adapter when trained (a tower the caption stage trained comes with the adapter), else
    the untrained base."""
    from peft import PeftModel

    from .. import models
    from ..config import ModelConfig
    work = Path(work)
    lm = models.load(ModelConfig(model=str(work / "base"), quantization="none", dtype=dtype))
    if trained:
        load_vision(lm, work / "sight" / VISION_FILE)
        if (work / "align" / CONNECTOR_FILE).exists():   # a connector the caption stage trained is in the adapter
            load_connector(lm, work / "align" / CONNECTOR_FILE)
        # merged, as the shipped assembly is: LoRA's per-token float32 casts slow CPU decoding
        lm.model = PeftModel.from_pretrained(lm.model, str(work / "run" / "adapter")).merge_and_unload()
        lm.model.eval()
    return lm
