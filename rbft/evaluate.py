"""Classification by label scoring: each class name's likelihood after the classification
prompt decides the prediction, so no prediction is ever unparseable."""
from __future__ import annotations

import math

from . import models, project
from .config import FrameConfig
from .events import EventSink, Progress, ignore
from .store import Store


def softmax(scores: list[float]) -> list[float]:
    top = max(scores)
    exp = [math.exp(s - top) for s in scores]
    total = sum(exp)
    return [e / total for e in exp]


def classify(store: Store, lm: models.LoadedModel, videos: list[dict], frames: FrameConfig,
             prompt_id: int | None = None, on_event: EventSink = ignore,
             stage: str = "evaluate") -> list[dict]:
    """[{video_id, label, pred, scores: {class: probability}}] for the given videos."""
    names = [c["name"] for c in project.classes(store)]
    text = project.render(store, "classify", project.prompt(store, "classify", prompt_id)["template"])
    progress = Progress(on_event, stage, len(videos))
    rows = []
    for video in videos:
        clip = project.clip(store, video, frames)
        probs = softmax(models.score_options(lm, text, clip, frames, names))
        best = max(range(len(names)), key=probs.__getitem__)
        rows.append({"video_id": video["id"], "label": video.get("label"), "pred": names[best],
                     "scores": dict(zip(names, probs))})
        progress.advance()
    return rows


def metrics(labels: list[str], preds: list[str], classes: list[str]) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix (rows: true)."""
    index = {c: i for i, c in enumerate(classes)}
    confusion = [[0] * len(classes) for _ in classes]
    for y, p in zip(labels, preds):
        confusion[index[y]][index[p]] += 1
    per_class = {}
    for c, i in index.items():
        tp = confusion[i][i]
        predicted = sum(row[i] for row in confusion)
        actual = sum(confusion[i])
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[c] = {"precision": precision, "recall": recall, "f1": f1, "support": actual}
    present = [c for c in classes if per_class[c]["support"]]
    n = len(labels)
    return {
        "n": n,
        "accuracy": sum(y == p for y, p in zip(labels, preds)) / n if n else 0.0,
        "macro_f1": sum(per_class[c]["f1"] for c in present) / len(present) if present else 0.0,
        "per_class": per_class,
        "classes": classes,
        "confusion": confusion,
    }


def evaluate(store: Store, lm: models.LoadedModel, split: str, frames: FrameConfig,
             on_event: EventSink = ignore, stage: str = "evaluate") -> tuple[dict, list[dict]]:
    videos = store.videos(split=split)
    rows = classify(store, lm, videos, frames, on_event=on_event, stage=stage)
    names = [c["name"] for c in project.classes(store)]
    return metrics([r["label"] for r in rows], [r["pred"] for r in rows], names), rows
