"""How true a text is about a toy-world clip: captions and rationales scored against the clip's
event log (objects, events, their order), and whether the events a rationale states make its label
true under a testbed task's rule."""
from __future__ import annotations

import re
import statistics
from pathlib import Path

from . import world
from .testbed import TASKS, Task

EVENT_WORDS = {  # event kind in the log -> phrases a caption may use for it
    "bounces": r"bounces|hits the \w+ (?:edge|wall)", "touches": r"touches|bumps into",
    "passes close to": r"passes close|comes near", "turns back": r"turns back|reverses",
    "speeds up": r"speeds up|faster", "appears": r"\bappears", "disappears": r"disappears",
    "grows": r"bigger|grows", "shrinks": r"smaller|shrinks", "rotates": r"rotates",
    "stops at the edge": r"stops", "moves left": r"moves left", "moves right": r"moves right",
    "moves up": r"moves up", "moves down": r"moves down", "stays still": r"stays still",
}
OBJECT = r"(?:(small|large) )?(red|green|blue|yellow|purple|white) (circle|square|triangle)"


def facts_from_text(text: str) -> list[tuple[str, str]]:
    """(object, event kind) for each clause of a caption, in text order."""
    facts = []
    for clause in re.split(r"[.;]| and (?=the )|, ", text.lower()):
        found = re.search(OBJECT, clause)
        if not found:
            continue
        rest = clause[found.end():]
        for kind, pattern in EVENT_WORDS.items():
            if re.search(pattern, rest):
                facts.append((f"{found.group(2)} {found.group(3)}", kind))
                break
    return facts


def claims(text: str, events: list[dict]) -> list[dict]:
    """Each claim a text makes (an object and what it does), true or false against the clip's log;
    objects it names that are not in the clip are claims too."""
    true = set(world.facts(events))
    present = {o for o, _ in true}
    out = [{"claim": f"{obj}: {kind}", "true": (obj, kind) in true} for obj, kind in dict.fromkeys(facts_from_text(text))]
    named = dict.fromkeys(f"{m.group(2)} {m.group(3)}" for m in re.finditer(OBJECT, text.lower()))
    out += [{"claim": f"{obj}: is in the clip", "true": False} for obj in named if obj not in present]
    return out


def seed_of(path: str) -> int | None:
    """A testbed clip's seed is its file name; None for any other video."""
    stem = Path(path).stem
    return int(stem) if stem.isdigit() else None


def _prf(said: set, true: set) -> tuple[float, float]:
    precision = len(said & true) / len(said) if said else 0.0
    recall = len(said & true) / len(true) if true else 0.0
    return precision, recall


def caption_scores(text: str, events: list[dict]) -> dict:
    """How right one caption is about one clip's event log."""
    true = world.facts(events)
    said = facts_from_text(text)
    objects_true = {o for o, _ in true}
    objects_said = {f"{m.group(2)} {m.group(3)}" for m in re.finditer(OBJECT, text.lower())}
    colors = _prf({o.split()[0] for o in objects_said}, {o.split()[0] for o in objects_true})
    shapes = _prf({o.split()[1] for o in objects_said}, {o.split()[1] for o in objects_true})
    objects = _prf(objects_said, objects_true)
    facts = _prf(set(said), set(true))
    kinds = _prf({k for _, k in said}, {k for _, k in true})   # what happens, whichever thing it names
    # temporal order: among facts said and true, pairs in the same order as the log
    first_true = {f: i for i, f in reversed(list(enumerate(true)))}
    right = [f for f in dict.fromkeys(said) if f in first_true]
    pairs = [(a, b) for i, a in enumerate(right) for b in right[i + 1:] if first_true[a] != first_true[b]]
    ordered = sum(first_true[a] < first_true[b] for a, b in pairs)
    return {"object_precision": objects[0], "object_recall": objects[1], "color_precision": colors[0],
            "color_recall": colors[1], "shape_precision": shapes[0], "shape_recall": shapes[1],
            "event_precision": facts[0], "event_recall": facts[1],
            "event_kind_precision": kinds[0], "event_kind_recall": kinds[1],
            "order_pairs": len(pairs), "order_right": ordered,
            "hallucinated": len([f for f in said if f not in set(true)]) + len(objects_said - objects_true),
            "claims": len(said) + len(objects_said)}


def implied_label(task: Task, text: str) -> str | None:
    """The class the rule gives for the events a rationale states (object and event, in its order)."""
    facts = facts_from_text(text)
    events = [{"t": i, "object": obj, "event": kind} for i, (obj, kind) in enumerate(facts)]
    objects = {e["object"] for e in events}
    if task.name == "floor" and len(objects) < 2:  # a rationale naming one thing still states events
        events += [{"t": len(events), "object": "(another)", "event": "stays still"}]
    return task.rule(events)


def rationale_truth(task_name: str, rows: list[dict]) -> dict:
    """How true rationales are: rows of {text, label, seed}. Caption accuracy against the clip's log,
    and whether the events a rationale states make its label true under the task's rule."""
    task = TASKS[task_name]
    scores, consistent = [], []
    for r in rows:
        clip = world.render(r["seed"])
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


def truth_report(store, task_name: str, splits: tuple | None = ("train",)) -> list[dict]:
    """Per rationale set (prompt version, model) of a testbed project: the truth of all its training
    rationales (of every split with splits=None), and of those that pass the label-support filter
    (Video-STaR style) where scored."""
    paths = {v["id"]: v["path"] for v in store.videos()}
    groups: dict[tuple, list[dict]] = {}
    for r in store.rationales():
        if r["video_id"] in paths and (splits is None or r["split"] in splits) and seed_of(paths[r["video_id"]]) is not None:
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
        def f(k, r=r):
            return "-" if r.get(k) is None else f"{r[k]:.3f}"
        lines.append(f"| {r['model']} prompt {r['prompt_id']} | {r['subset']} | {r['rationales']} | "
                     f"{f('event_precision')} | {f('event_recall')} | {f('hallucination_rate')} | "
                     f"{f('label_consistent')} |")
    return "\n".join(lines)
