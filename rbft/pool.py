"""Label the pool: a trained run (or the base model) labels the unlabelled videos, a person reviews
the uncertain ones, labels above a precision threshold are accepted automatically, and the labels
go back into training and out to other tools.

Pool videos are imported without a label (`data.ingest(..., pool=True)`: split "pool"). Labelling
stores, per video and run, the class probabilities, the prediction, its confidence (the top
probability) and margin (top minus second), and on request the model's rationale. The run's
validation videos are scored along with them, which is what a confidence threshold is chosen on:
the lowest whose validation evidence makes the precision target sure (a lower confidence bound, not
the share right among a handful of videos).
"""
from __future__ import annotations

import csv
import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import NormalDist

from . import models, project
from .config import ExperimentConfig, GenerationConfig, ModelConfig, from_dict
from .evaluate import classify
from .events import Event, EventSink, Progress, ignore
from .store import Store

BASE = "base:"   # run id of the untrained model: "base:<model>"


def load_labeller(store: Store, run_id: str, dtype: str | None = None) -> tuple[models.LoadedModel, ExperimentConfig]:
    """The model of a finished run (its adapter), or the base model for run id "base:<model>";
    `dtype` overrides the compute type the run or the project was set to."""
    from .export import run_adapter
    if run_id.startswith(BASE):
        cfg = project.settings(store)
        cfg.model = ModelConfig(**{**asdict(cfg.model), "model": run_id[len(BASE):]})
        if dtype:
            cfg.model.dtype = dtype
        return models.load(cfg.model), cfg
    run = store.run(run_id)
    if run["status"] != "done":
        raise ValueError(f"run {run_id} is {run['status']}, not done: label with a finished run")
    cfg = from_dict(ExperimentConfig, run["config"])
    if dtype:
        cfg.model.dtype = dtype
    adapter = run_adapter(store, run_id) if run["arm"] != "zero_shot" else None
    return models.load(cfg.model, adapter=adapter), cfg


def label_pool(store: Store, run_id: str, rationale: bool = False, max_new_tokens: int = 96,
               on_event: EventSink = ignore, dtype: str | None = None, engine=None) -> dict:
    """Score every pool video not yet labelled by this run (and the validation videos, for the
    threshold); resumable: what is stored is skipped. Returns counts and videos per minute.

    With a server engine (rbft.engine.Server), the rationales beside the labels are written by the
    server's model while this process scores, all requests in flight at once; the labels are always
    the run's own, scored here."""
    done = {r["video_id"] for r in store.pool_predictions(run_id, split=None)}
    todo = [v for v in store.videos(split="pool") + store.videos(split="val") if v["id"] not in done]
    if todo:
        on_event(Event("log", "label", message=f"loading {run_id}"))
        lm, cfg = load_labeller(store, run_id, dtype)
        on_event(Event("log", "label", message=f"compute type {lm.compute.reason}"))
    start = time.time()
    progress = Progress(on_event, "label", len(todo))
    gen = GenerationConfig(max_new_tokens=max_new_tokens)
    describe = project.render(store, "describe")
    asked = {}
    if rationale and engine is not None and todo:
        from .engine import outcome
        pool_todo = [v for v in todo if v["split"] == "pool"]
        on_event(Event("log", "label", message=f"{len(pool_todo)} rationales {engine.where}"))
        asked = dict(zip([v["id"] for v in pool_todo], engine.submit(
            [(describe, lambda v=v: project.clip(store, v, cfg.frames)) for v in pool_todo], gen)))
    for video in todo:
        row = classify(store, lm, [video], cfg.frames)[0]
        ranked = sorted(row["scores"].values(), reverse=True)
        text = None
        if video["id"] in asked:
            text, reason = outcome(asked[video["id"]])
            if reason:
                on_event(Event("log", "label", message=f"{video['id']}: labelled, but no rationale: {reason}"))
        elif rationale and video["split"] == "pool":
            clip = project.clip(store, video, cfg.frames)
            text = models.generate(lm, [describe], [clip], cfg.frames, gen)[0]
        store.save_pool_predictions(run_id, [{
            "video_id": video["id"], "pred": row["pred"], "scores": row["scores"], "confidence": ranked[0],
            "margin": ranked[0] - (ranked[1] if len(ranked) > 1 else 0.0), "rationale": text}])
        progress.advance()
    seconds = time.time() - start
    per_min = 60 * len(todo) / seconds if todo and seconds > 0 else None
    if per_min:
        on_event(Event("log", "label", message=f"labelled {len(todo)} videos, {per_min:.1f} videos/min"))
    pooled = sum(v["split"] == "pool" for v in todo)
    return {"run_id": run_id, "labelled": len(todo), "pool": pooled, "val": len(todo) - pooled,
            "skipped": len(done), "videos_per_min": per_min}


# ---- review ---------------------------------------------------------------------------------------

def queue(store: Store, run_id: str, pred: str | None = None, min_confidence: float = 0.0,
          max_confidence: float = 1.0) -> list[dict]:
    """Pool videos still unlabelled, most uncertain first (smallest margin); skipped ones last."""
    rows = [r for r in store.pool_predictions(run_id)
            if (pred is None or r["pred"] == pred) and min_confidence <= r["confidence"] <= max_confidence]
    return sorted(rows, key=lambda r: (r["skipped_at"] is not None, r["skipped_at"] or 0, r["margin"]))


def accept(store: Store, video_id: str, label: str, run_id: str | None = None) -> None:
    """A person's label for a pool video (the prediction accepted, or another class chosen)."""
    if label not in store.labels():
        raise ValueError(f"{label!r} is not a class of this project; classes: {', '.join(store.labels())}")
    video = store.video(video_id)
    if video["split"] != "pool":
        raise ValueError(f"{video_id} is not in the pool (it is labelled {video['label']!r})")
    confidence = None
    if run_id:
        row = next((r for r in store.pool_predictions(run_id) if r["video_id"] == video_id), None)
        confidence = row["scores"].get(label) if row else None
    store.give_label(video_id, label, "person", run_id, confidence)


# ---- automatic acceptance above a precision target ------------------------------------------------

@dataclass
class Threshold:
    run_id: str
    target: float
    confidence: float               # how sure the validation evidence must make us of the target
    threshold: float | None      # None: no threshold's evidence reaches the target on validation
    val_n: int                      # validation videos scored
    val_passing: int                # at or above the threshold (or the best candidate's, when none reaches)
    val_precision: float | None  # measured precision of those
    val_lower: float | None      # its lower bound at `confidence`: what the threshold is chosen on
    pool_passing: int               # pool videos at or above it, still unlabelled

    def text(self) -> str:
        sure = f"{self.confidence:.0%} sure"
        if self.threshold is None:
            best = (f" The best evidence: {self.val_passing} most confident, {self.val_precision:.3f} right, which "
                    f"makes precision {self.val_lower:.3f} or more, {sure}." if self.val_passing else "")
            return (f"No confidence threshold reaches precision {self.target:.2f} ({sure}) on the {self.val_n} "
                    f"validation videos of {self.run_id}.{best} Review by hand, add validation videos, or "
                    "train a better model first.")
        return (f"Threshold {self.threshold:.3f}: on the validation split, {self.val_passing} of {self.val_n} "
                f"videos are at or above it and {self.val_precision:.3f} of them are right, so precision is "
                f"{self.val_lower:.3f} or more ({sure}; target {self.target:.2f}). {self.pool_passing} pool "
                "videos pass it.")


def precision_lower_bound(right: int, n: int, confidence: float) -> float:
    """One-sided Wilson score bound: precision is at least this, `confidence` sure. A few right
    videos are weak evidence (3 of 3 right: 0.53 at 95%), which is what stops a threshold that rests
    on them from accepting a pool; confidence 0.5 gives the plain share right."""
    z = NormalDist().inv_cdf(confidence)
    p = right / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


def find_threshold(store: Store, run_id: str, target: float, confidence: float = 0.95) -> Threshold:
    """The lowest confidence threshold whose predictions on the validation split reach the target
    precision, `confidence` sure (the most pool videos it can accept on that evidence): measured,
    not assumed."""
    if not 0 < target <= 1:
        raise ValueError("the precision target is a number between 0 and 1, such as 0.95")
    if not 0.5 <= confidence < 1:
        raise ValueError("the confidence in the evidence is at least 0.5 and below 1, such as 0.95")
    val = store.pool_predictions(run_id, split="val")
    if not val:
        raise ValueError(f"{run_id} has not scored the validation split: label the pool with it first "
                         "(and the project needs validation videos)")
    ranked = sorted(val, key=lambda r: -r["confidence"])
    candidates, right = [], 0   # (lower bound, threshold, passing, precision), one per distinct confidence
    for i, r in enumerate(ranked, 1):
        right += r["pred"] == r["label"]
        if i == len(ranked) or ranked[i]["confidence"] < r["confidence"]:
            candidates.append((precision_lower_bound(right, i, confidence), r["confidence"], i, right / i))
    reaching = [c for c in candidates if c[0] >= target]
    if not reaching:
        lower, _, passing, precision = max(candidates)
        return Threshold(run_id, target, confidence, None, len(val), passing, precision, lower, 0)
    lower, threshold, passing, precision = reaching[-1]
    pool_passing = sum(r["confidence"] >= threshold for r in store.pool_predictions(run_id))
    return Threshold(run_id, target, confidence, threshold, len(val), passing, precision, lower, pool_passing)


def auto_accept(store: Store, run_id: str, target: float, confidence: float = 0.95) -> Threshold:
    """Accept every pool video at or above the threshold as labelled by the model, and store the
    threshold with its evidence."""
    t = find_threshold(store, run_id, target, confidence)
    accepted = 0
    if t.threshold is not None:
        for r in store.pool_predictions(run_id):
            if r["confidence"] >= t.threshold:
                store.give_label(r["video_id"], r["pred"], "model", run_id, r["confidence"])
                accepted += 1
    store.save_auto_accept(run_id, target, t.threshold, asdict(t), accepted)
    return t


# ---- export -----------------------------------------------------------------------------------

def label_rows(store: Store, run_id: str | None = None) -> list[dict]:
    """Every labelled video (file, label, source, run, confidence), then, with a run, every pool
    video still unlabelled with that run's prediction (source "prediction")."""
    rows = []
    for v in store.videos():
        rows.append({"file": str(store.resolve(v["path"])), "label": v["label"],
                     "source": v["label_source"] or "imported", "run": v["label_run"],
                     "confidence": v["label_confidence"], "split": v["split"]})
    if run_id:
        for r in store.pool_predictions(run_id):
            rows.append({"file": str(store.resolve(r["path"])), "label": r["pred"], "source": "prediction",
                         "run": run_id, "confidence": r["confidence"], "split": "pool"})
    return rows


def export(store: Store, out: str | Path, run_id: str | None = None) -> dict[str, Path]:
    """labels.csv, labels.jsonl and a Label Studio import (labelled videos as annotations, the run's
    pool predictions as pre-annotations) with its labelling config."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = label_rows(store, run_id)
    files = {"csv": out / "labels.csv", "jsonl": out / "labels.jsonl",
             "label_studio": out / "label_studio_tasks.json", "label_studio_config": out / "label_studio_config.xml"}
    with open(files["csv"], "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["file", "label", "source", "run", "confidence", "split"])
        writer.writeheader()
        writer.writerows(rows)
    files["jsonl"].write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    files["label_studio"].write_text(json.dumps([_label_studio_task(r) for r in rows], indent=1), encoding="utf-8")
    choices = "".join(f'    <Choice value="{_xml(c)}"/>\n' for c in store.labels())
    files["label_studio_config"].write_text(
        '<View>\n  <Video name="video" value="$video"/>\n  <Choices name="label" toName="video" choice="single">\n'
        f"{choices}  </Choices>\n</View>\n", encoding="utf-8")
    return files


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def _label_studio_task(row: dict) -> dict:
    result = [{"from_name": "label", "to_name": "video", "type": "choices", "value": {"choices": [row["label"]]}}]
    task = {"data": {"video": row["file"], "source": row["source"], "split": row["split"]}}
    if row["source"] == "prediction":
        task["predictions"] = [{"model_version": row["run"], "score": row["confidence"], "result": result}]
    else:
        task["annotations"] = [{"result": result, "ground_truth": row["source"] != "model"}]
    return task


# ---- measured on a pool whose true labels are known (the toy-world testbed) -----------------------

def review_savings(rows: list[dict], truth: dict[str, str], target_accuracy: float, seed: int = 0) -> dict:
    """How many person reviews reach `target_accuracy` over the whole pool when a person corrects
    videos in uncertainty order (the rest keep the model's label), against a random order."""
    def reviews_needed(order: list[dict]) -> int:
        wrong = sum(r["pred"] != truth[r["video_id"]] for r in order)
        n = len(order)
        for k in range(n + 1):
            if (n - wrong) / n >= target_accuracy:
                return k
            if k < n:
                wrong -= order[k]["pred"] != truth[order[k]["video_id"]]
        return n

    uncertain = sorted(rows, key=lambda r: r["margin"])
    randoms = []
    for s in range(seed, seed + 20):   # a random order's cost, averaged over 20 orders
        shuffled = rows[:]
        random.Random(s).shuffle(shuffled)
        randoms.append(reviews_needed(shuffled))
    return {"target_accuracy": target_accuracy, "model_accuracy": sum(r["pred"] == truth[r["video_id"]]
                                                                      for r in rows) / len(rows),
            "by_uncertainty": reviews_needed(uncertain), "random": sum(randoms) / len(randoms), "pool": len(rows)}


def read_truth(path: str | Path) -> dict[str, str]:
    """File name -> true label, from a CSV with path,label (a testbed's pool_truth.csv)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        return {Path(r["path"]).name: r["label"] for r in csv.DictReader(f)}


def measure(store: Store, run_id: str, truth_by_name: dict[str, str], targets=(0.9, 0.95),
            accuracies=(0.9, 0.95, 1.0), confidence: float = 0.95) -> dict:
    """Against the pool's hidden labels, without accepting anything: for each precision target, the
    threshold found on validation, the share of the pool it accepts and how precise that is; and how
    many person reviews reach a given label accuracy over the pool in uncertainty order vs a random one."""
    rows = store.pool_predictions(run_id)
    truth = {r["video_id"]: truth_by_name[Path(r["path"]).name] for r in rows if Path(r["path"]).name in truth_by_name}
    rows = [r for r in rows if r["video_id"] in truth]
    if not rows:
        raise ValueError("no pool video of this run matches the truth file's names")
    out = {"run_id": run_id, "pool": len(rows), "targets": [], "reviews": []}
    for target in targets:
        t = find_threshold(store, run_id, target, confidence)
        passing = [r for r in rows if t.threshold is not None and r["confidence"] >= t.threshold]
        right = sum(r["pred"] == truth[r["video_id"]] for r in passing)
        out["targets"].append({**asdict(t), "accepted": len(passing), "share": len(passing) / len(rows),
                               "pool_precision": right / len(passing) if passing else None})
    for accuracy in accuracies:
        out["reviews"].append(review_savings(rows, truth, accuracy))
    return out


def format_measure(m: dict) -> str:
    lines = [f"Pool of {m['pool']} videos labelled by `{m['run_id']}`.", "",
             "| precision target | threshold (validation) | validation precision | its lower bound | accepted from "
             "the pool | share of the pool | precision on the pool (true labels) |", "|---|---|---|---|---|---|---|"]
    for t in m["targets"]:
        sure = f"{t['confidence']:.0%}"
        if t["threshold"] is None:
            best = (f"best: {t['val_precision']:.3f} ({t['val_passing']} of {t['val_n']}) | {t['val_lower']:.3f} "
                    f"({sure})" if t["val_passing"] else "- | -")
            lines.append(f"| {t['target']:.2f} | none reaches it ({t['val_n']} validation videos) | {best} | 0 | 0 "
                         "| - |")
            continue
        pool_p = f"{t['pool_precision']:.3f}" if t["pool_precision"] is not None else "-"
        lines.append(f"| {t['target']:.2f} | {t['threshold']:.3f} | {t['val_precision']:.3f} ({t['val_passing']} of "
                     f"{t['val_n']}) | {t['val_lower']:.3f} ({sure}) | {t['accepted']} | {t['share']:.2f} | "
                     f"{pool_p} |")
    lines += ["", "| pool label accuracy to reach | model alone | reviews, most uncertain first | "
              "reviews, random order (mean of 20) |", "|---|---|---|---|"]
    for r in m["reviews"]:
        lines.append(f"| {r['target_accuracy']:.2f} | {r['model_accuracy']:.3f} | {r['by_uncertainty']} | "
                     f"{r['random']:.1f} |")
    return "\n".join(lines)
