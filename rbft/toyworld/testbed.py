"""Testbed tasks in the toy world: classes with abstract names (like a real domain's "incident" /
"near miss" / "routine") defined by rules over the clip's event log. The captions describe the
events in plain words (touches, passes close to, speeds up) and never name a class, so a model has
to learn the mapping from the labels, and the truth of every rationale can be checked.

A task folder holds the clips (`<seed>.webm`: the seed renders the clip and its log again), a
manifest with fixed train/val/test splits and `project.json` (domain and class descriptions), so
`python -m rbft benchmark --data FOLDER` runs on it like on any dataset.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..events import EventSink, Progress, ignore
from . import oracle, world


def _first(events: list[dict], kind: str) -> int | None:
    return next((e["t"] for e in events if e["event"] == kind), None)


def floor_rule(events: list[dict]) -> str | None:
    """incident: two things touch; near miss: two pass close without touching; routine: neither."""
    if len({e["object"] for e in events}) < 2:
        return None  # every clip of this task shows at least two things
    kinds = {e["event"] for e in events}
    if "touches" in kinds:
        return "incident"
    if "passes close to" in kinds:
        return "near miss"
    return "routine"


def order_rule(events: list[dict]) -> str | None:
    """Both a speed-up and a touch happen; the class is which came first."""
    speed, touch = _first(events, "speeds up"), _first(events, "touches")
    if speed is None or touch is None or speed == touch:
        return None
    return "reckless" if speed < touch else "fleeing"


@dataclass
class Task:
    name: str
    domain: str
    classes: dict          # class name -> the description the prompts show
    rule: Callable[[list[dict]], str | None]
    temporal: bool         # needs the order of events, not just which happened


TASKS = {
    "floor": Task("floor", "safety on a shop floor seen from above",
                  {"incident": "two objects come into contact",
                   "near miss": "two objects come close to each other but never touch",
                   "routine": "objects keep their distance from each other"},
                  floor_rule, temporal=False),
    "order": Task("order", "reviewing collisions",
                  {"reckless": "an object speeds up and afterwards a collision happens",
                   "fleeing": "a collision happens and afterwards an object speeds up"},
                  order_rule, temporal=True),
}
FIRST_SEED = 20_000_000  # testbed clips never share a seed with the build's clips
ORACLE_SHARES = (0.0, 0.25, 0.5, 1.0)  # shares of false event claims in the oracle rationale files


def build_task(name: str, out: str | Path, train: int = 16, val: int = 8, test: int = 20,
               first_seed: int = FIRST_SEED, on_event: EventSink = ignore, pool: int = 0) -> Path:
    """Render clips until every class has train + val + test (+ pool) of them; write clips, manifest,
    project.json, and rationales written from the training clips' event logs (rationales_oracle_p*.csv:
a share p of their event claims false). Pool clips go to pool.csv without a label (import it with `ingest --pool`), their
    hidden true labels to pool_truth.csv (for `pool measure`)."""
    from ..synthetic import write_video
    task = TASKS[name]
    out = Path(out)
    need = train + val + test + pool
    picked: dict[str, list[int]] = {c: [] for c in task.classes}
    seed = first_seed
    while any(len(v) < need for v in picked.values()):
        label = task.rule(world.render(seed).events)
        if label is not None and len(picked[label]) < need:
            picked[label].append(seed)
        seed += 1
        if seed - first_seed > 200 * need * len(picked):
            raise RuntimeError(f"task {name}: too few clips of some class after {seed - first_seed} seeds")
    progress = Progress(on_event, "testbed", need * len(picked))
    rows, pooled = [], []
    for label, seeds in picked.items():
        for i, s in enumerate(seeds):
            split = ("train" if i < train else "val" if i < train + val else "test" if i < train + val + test
                     else "pool")
            if split == "pool":
                path = out / "pool" / f"{s}.webm"
                if not path.exists():
                    clip = world.render(s)
                    write_video(path, clip.frames[..., ::-1], fps=clip.fps)
                pooled.append({"path": f"pool/{s}.webm", "label": label})
                progress.advance()
                continue
            path = out / label / f"{s}.webm"
            if not path.exists():
                clip = world.render(s)
                write_video(path, clip.frames[..., ::-1], fps=clip.fps)
            rows.append({"path": f"{label}/{s}.webm", "label": label, "split": split})
            progress.advance()
    with open(out / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "label", "split"])
        writer.writeheader()
        writer.writerows(rows)
    (out / "project.json").write_text(json.dumps({
        "domain": task.domain, "classes": task.classes, "task": name, "temporal": task.temporal,
        "rule": task.rule.__doc__, "sizes": {"train": train, "val": val, "test": test, "pool": pool}}, indent=2))
    logs = {r["path"]: world.render(int(Path(r["path"]).stem)).events for r in rows if r["split"] == "train"}
    for p in ORACLE_SHARES:   # importable with `rationales import` / `benchmark --rationale-files`
        source = f"oracle_p{p:g}"
        with open(out / f"rationales_{source}.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["path", "text", "source"])
            writer.writeheader()
            writer.writerows({"path": path, "source": source,
                              "text": oracle.oracle_rationale(int(Path(path).stem), p, events)}
                             for path, events in logs.items())
    if pooled:
        pooled.sort(key=lambda r: r["path"])   # by seed, not by class: the order says nothing
        for name_, with_label in (("pool.csv", False), ("pool_truth.csv", True)):
            with open(out / name_, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=["path", "label"])
                writer.writeheader()
                writer.writerows([r if with_label else {**r, "label": ""} for r in pooled])
    return out / "manifest.csv"
