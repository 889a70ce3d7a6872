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
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from . import toyworld
from .events import EventSink, Progress, ignore


def _first(events: list[dict], kind: str) -> Optional[int]:
    return next((e["t"] for e in events if e["event"] == kind), None)


def floor_rule(events: list[dict]) -> Optional[str]:
    """incident: two things touch; near miss: two pass close without touching; routine: neither."""
    if len({e["object"] for e in events}) < 2:
        return None  # every clip of this task shows at least two things
    kinds = {e["event"] for e in events}
    if "touches" in kinds:
        return "incident"
    if "passes close to" in kinds:
        return "near miss"
    return "routine"


def order_rule(events: list[dict]) -> Optional[str]:
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
    rule: Callable[[list[dict]], Optional[str]]
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


def build_task(name: str, out: str | Path, train: int = 16, val: int = 8, test: int = 20,
               first_seed: int = FIRST_SEED, on_event: EventSink = ignore) -> Path:
    """Render clips until every class has train + val + test of them; write clips, manifest, project.json."""
    from .synthetic import write_video
    task = TASKS[name]
    out = Path(out)
    need = train + val + test
    picked: dict[str, list[int]] = {c: [] for c in task.classes}
    seed = first_seed
    while any(len(v) < need for v in picked.values()):
        label = task.rule(toyworld.render(seed).events)
        if label is not None and len(picked[label]) < need:
            picked[label].append(seed)
        seed += 1
        if seed - first_seed > 200 * need * len(picked):
            raise RuntimeError(f"task {name}: too few clips of some class after {seed - first_seed} seeds")
    progress = Progress(on_event, "testbed", need * len(picked))
    rows = []
    for label, seeds in picked.items():
        for i, s in enumerate(seeds):
            split = "train" if i < train else "val" if i < train + val else "test"
            path = out / label / f"{s}.webm"
            if not path.exists():
                clip = toyworld.render(s)
                write_video(path, clip.frames[..., ::-1], fps=clip.fps)
            rows.append({"path": f"{label}/{s}.webm", "label": label, "split": split})
            progress.advance()
    with open(out / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "label", "split"])
        writer.writeheader()
        writer.writerows(rows)
    (out / "project.json").write_text(json.dumps({
        "domain": task.domain, "classes": task.classes, "task": name, "temporal": task.temporal,
        "rule": task.rule.__doc__, "sizes": {"train": train, "val": val, "test": test}}, indent=2))
    return out / "manifest.csv"


def implied_label(task: Task, text: str) -> Optional[str]:
    """The class the rule gives for the events a rationale states (object and event, in its order)."""
    from .toyvlm import _facts_from_text
    facts = _facts_from_text(text)
    events = [{"t": i, "object": obj, "event": kind} for i, (obj, kind) in enumerate(facts)]
    objects = {e["object"] for e in events}
    if task.name == "floor" and len(objects) < 2:  # a rationale naming one thing still states events
        events += [{"t": len(events), "object": "(another)", "event": "stays still"}]
    return task.rule(events)


def rationale_truth(task_name: str, rows: list[dict]) -> dict:
    """How true rationales are: rows of {text, label, seed}. Caption accuracy against the clip's log,
    and whether the events a rationale states make its label true under the task's rule."""
    from .toyvlm import caption_scores
    task = TASKS[task_name]
    scores, consistent = [], []
    for r in rows:
        clip = toyworld.render(r["seed"])
        scores.append(caption_scores(r["text"], clip.events))
        consistent.append(implied_label(task, r["text"]) == r["label"])
    if not rows:
        return {"rationales": 0}
    claims = sum(s["claims"] for s in scores)
    return {"rationales": len(rows),
            "event_precision": statistics.fmean(s["event_precision"] for s in scores),
            "event_recall": statistics.fmean(s["event_recall"] for s in scores),
            "object_precision": statistics.fmean(s["object_precision"] for s in scores),
            "hallucination_rate": sum(s["hallucinated"] for s in scores) / claims if claims else None,
            "label_consistent": statistics.fmean(consistent)}


def truth_report(store, task_name: str) -> list[dict]:
    """Per rationale set (prompt version, model) of a testbed project: the truth of all its training
    rationales, and of those that pass the label-support filter (Video-STaR style) where scored."""
    paths = {v["id"]: v["path"] for v in store.videos()}
    groups: dict[tuple, list[dict]] = {}
    for r in store.rationales():
        if r["split"] == "train":
            groups.setdefault((r["prompt_id"], r["model"]), []).append(r)
    def as_rows(rs: list[dict]) -> list[dict]:
        return [{"text": r["text"], "label": r["label"], "seed": int(Path(paths[r["video_id"]]).stem)} for r in rs]

    out = []
    for (prompt_id, model), rows in groups.items():
        out.append({"prompt_id": prompt_id, "model": model, "subset": "all",
                    **rationale_truth(task_name, as_rows(rows))})
        if all(r["support_ok"] is not None for r in rows):
            kept = [r for r in rows if r["support_ok"]]
            out.append({"prompt_id": prompt_id, "model": model, "subset": "label-supported",
                        **rationale_truth(task_name, as_rows(kept))})
    return out


def format_truth(rows: list[dict]) -> str:
    head = ["rationales", "subset", "n", "event precision", "event recall", "hallucination rate",
            "label follows from the stated events"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        def f(k):
            return "-" if r.get(k) is None else f"{r[k]:.3f}"
        lines.append(f"| {r['model']} prompt {r['prompt_id']} | {r['subset']} | {r['rationales']} | "
                     f"{f('event_precision')} | {f('event_recall')} | {f('hallucination_rate')} | "
                     f"{f('label_consistent')} |")
    return "\n".join(lines)
