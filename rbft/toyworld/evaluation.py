"""The toy-world VLM's eyes, measured: captions of held-out clips against their event logs
(rbft.toyworld.truth), and how much of the clips' truth its motion read-out finds."""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from ..events import EventSink, Progress, ignore
from .build import DESCRIBE, load_build
from .family import find_module, layout
from .motion_stage import HEAD_FILE
from .shipped import _assembly_dir, model_dir


def evaluate_captions(lm, seeds: list[int], num_frames: int = 8, max_new_tokens: int = 120,
                      on_event: EventSink = ignore, batch_size: int = 25) -> dict:
    """Caption held-out clips and score them against their event logs (score_captions). Greedy,
    `batch_size` clips per generate call: on 2 CPU cores a decoding step costs about as much for 16
    clips as for one (1.9 s against 1.5 s here)."""
    from .. import models
    from ..config import FrameConfig, GenerationConfig
    from ..frames import Clip, uniform_indices
    from . import world
    frames = FrameConfig(num_frames, layout(lm.family.name).image_size)
    gen = GenerationConfig(max_new_tokens=max_new_tokens, batch_size=batch_size, repetition_penalty=1.05)
    said = []
    progress = Progress(on_event, "caption-eval", len(seeds))
    for start in range(0, len(seeds), batch_size):
        chunk = seeds[start:start + batch_size]
        clips = [world.render(seed) for seed in chunk]
        idx = uniform_indices(len(clips[0].frames), num_frames)
        said += models.generate(lm, [DESCRIBE] * len(chunk),
                                [Clip(c.frames[idx], c.fps, len(c.frames), idx) for c in clips], frames, gen)
        progress.advance(len(chunk))
    return score_captions(seeds, said)


def score_captions(seeds: list[int], said: list[str]) -> dict:
    """Captions of the clips of `seeds` against their event logs: means over clips (precision and
    recall), ratios over all claims (hallucination rate, temporal order), and each clip's caption and
    scores, so that two models compare clip by clip (paired_captions)."""
    import statistics

    from . import world
    from .truth import caption_scores
    rows, examples, per_clip = [], [], []
    for seed, text in zip(seeds, said, strict=True):
        clip = world.render(seed)
        rows.append(caption_scores(text, clip.events))
        per_clip.append({"seed": seed, "said": text, **{k: rows[-1][k] for k in PAIRED_MEASURES}})
        if len(examples) < 5:
            examples.append({"seed": seed, "said": text, "truth": world.caption(clip, seed)})
    keys = [k for k in rows[0] if k not in ("order_pairs", "order_right", "hallucinated", "claims")]
    out = {k: statistics.fmean(r[k] for r in rows) for k in keys}
    pairs = sum(r["order_pairs"] for r in rows)
    out["temporal_order_accuracy"] = sum(r["order_right"] for r in rows) / pairs if pairs else None
    out["order_pairs"] = pairs
    claims = sum(r["claims"] for r in rows)
    out["hallucination_rate"] = sum(r["hallucinated"] for r in rows) / claims if claims else None
    out.update(clips=len(seeds), examples=examples, per_clip=per_clip)
    return out


# per clip, so that two models captioning the same clips compare as a paired difference
PAIRED_MEASURES = ("object_precision", "object_recall", "event_precision", "event_recall",
                   "event_kind_precision", "event_kind_recall")


def paired_captions(a: dict, b: dict, resamples: int = 2000) -> dict:
    """Model a minus model b on the clips both captioned (evaluate_captions reports): per measure, the
    mean difference over clips with a 95% bootstrap interval over them (rbft.paired)."""
    from ..paired import paired_difference
    rows_a = {r["seed"]: r for r in a.get("per_clip", [])}
    rows_b = {r["seed"]: r for r in b.get("per_clip", [])}
    shared = sorted(set(rows_a) & set(rows_b))
    if not shared:
        raise ValueError("the two evaluations share no clip with per-clip scores: evaluate both again")
    return {k: paired_difference({0: {s: rows_a[s][k] for s in shared}}, {0: {s: rows_b[s][k] for s in shared}},
                                 resamples=resamples)
            for k in PAIRED_MEASURES}


@torch.no_grad()
def motion_readout(lm, head_file: Path, seeds: list[int], num_frames: int = 8) -> dict:
    """How much of the clips' truth the motion head reads from the language model's layer LAYER on
    held-out clips: per image token that shows a thing, colour, shape and direction accuracy; per
    event kind, precision and recall over tokens. What says whether the caption stage's model carries
    motion where its words can find it."""
    from .. import models
    from ..config import FrameConfig
    from ..frames import Clip, uniform_indices
    from . import motion, world
    lay = layout(lm.family.name)
    text = find_module(lm, lm.family.text_module)
    head = motion.MotionHead(text.config.hidden_size)
    head.load_state_dict(torch.load(head_file))
    kept = {}
    layer = text.layers[motion.LAYER]
    hook = layer.register_forward_hook(lambda m, i, o: kept.__setitem__("h", o[0] if isinstance(o, tuple) else o))
    frames = FrameConfig(num_frames, lay.image_size)
    image_token = getattr(lm.model.config, lay.token_key)
    right = {k: [0, 0] for k in ("color", "shape", "direction")}
    events = {k: [0, 0, 0] for k in motion.EVENTS}   # true positives, said, true
    try:
        for seed in seeds:
            clip = world.render(seed, labels=True)
            idx = uniform_indices(len(clip.frames), num_frames)
            feats = models.encode(lm, DESCRIBE, Clip(clip.frames[idx], clip.fps, len(clip.frames), idx), frames)
            batch = models.to_model(lm, models.collate([feats], lm.tokenizer.pad_token_id))
            lm.model(**batch)
            pred = head.predict(kept["h"][batch["input_ids"] == image_token])
            truth = motion.token_targets(clip, lay.token_frames(idx), lay.side)
            classes = truth["motion_classes"]
            shown = classes[:, 0] > 0
            for j, key in enumerate(("color", "shape", None, "direction")):
                if key:
                    known = shown & (classes[:, j] >= 0)
                    right[key][0] += int((pred[key][known] == classes[known, j]).sum())
                    right[key][1] += int(known.sum())
            said = pred["events"][shown] > 0
            true = truth["motion_events"][shown] > 0.5
            for j, kind in enumerate(motion.EVENTS):
                events[kind][0] += int((said[:, j] & true[:, j]).sum())
                events[kind][1] += int(said[:, j].sum())
                events[kind][2] += int(true[:, j].sum())
    finally:
        hook.remove()
    out = {f"{k}_accuracy": (r / n if n else None) for k, (r, n) in right.items()}
    out["events"] = {k: {"precision": tp / said if said else None, "recall": tp / true if true else None,
                         "tokens": true} for k, (tp, said, true) in events.items()}
    out["clips"] = len(seeds)
    return out


HELD_OUT_SEEDS = 800_000   # caption-eval clips: no stage of any build trains on them


def evaluate_build(work: str | Path, clips: int, compare: tuple = (), num_frames: int = 8,
                   on_event: EventSink = ignore, dtype: str = "auto") -> dict:
    """Captions of `clips` held-out clips scored for the untrained base, the build with its motion
    read-out, and the models assembled from each of `compare`'s shipped parts (named by their
    manifest's digest, so that changed parts are measured anew), and the build minus each of those,
    paired over the clips. Kept in work/eval.json per model: a model measured clip by clip on the
    same clips before is not measured again."""
    from .. import models
    from ..config import ModelConfig
    work = Path(work)
    seeds = [HELD_OUT_SEEDS + i for i in range(clips)]
    path = work / "eval.json"
    report = json.loads(path.read_text()) if path.exists() else {}
    if report.get("seeds") != seeds:
        report = {"seeds": seeds}
    todo = [("untrained base", lambda: load_build(work, trained=False, dtype=dtype)),
            ("toy-world VLM", lambda: load_build(work, dtype=dtype))]
    todo += [(f"parts in {p} ({_assembly_dir(Path(p)).name})",
              lambda p=p: models.load(ModelConfig(model=str(model_dir(Path(p))), quantization="none", dtype=dtype)))
             for p in compare]
    for name, load in todo:
        if name in report and "per_clip" in report[name]:
            continue
        lm = load()
        started = time.time()
        report[name] = evaluate_captions(lm, seeds, num_frames, on_event=on_event)
        report[name]["seconds"] = time.time() - started
        report[name]["dtype"] = lm.compute.name
        head = work / "run" / HEAD_FILE
        if name == "toy-world VLM" and head.exists():
            report["motion read-out"] = motion_readout(lm, head, seeds, num_frames)
        path.write_text(json.dumps(report, indent=2))
    build = report["toy-world VLM"]
    report["paired"] = {name: paired_captions(build, report[name]) for name, _ in todo[2:]}
    path.write_text(json.dumps(report, indent=2))
    return report

