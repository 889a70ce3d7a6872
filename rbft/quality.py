"""Rationale quality: what can be counted from the text, and label support scored by a model.

Label leakage: the reasoning names the class outright (it may then be copying the hint,
not describing the video). Label support: given only the rationale, does a model pick the
true class? (The authors' data has rationales that describe a calm scene and still end
"Abnormal": support catches that.) Filtering keeps only what supports its label, as
Video-STaR keeps only answers that verifiably contain the label.
"""
from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict

from . import models, project
from .config import FrameConfig
from .evaluate import softmax
from .events import EventSink, Progress, ignore
from .prompts import strip_classification
from .store import Store

WORD = re.compile(r"[a-z0-9']+")
FILTERS = ("all", "not_rejected", "supported")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def leaks_label(text: str, label: str) -> bool:
    """The class name (underscores read as spaces) stated in the reasoning, whole words only."""
    name = re.escape(" ".join(label.replace("_", " ").lower().split()))
    return re.search(rf"\b{name}\b", " ".join(words(strip_classification(text).replace("_", " ")))) is not None


def repetition(text: str, n: int = 3) -> float:
    """Share of n-grams that repeat an earlier one (0: none, near 1: a loop)."""
    grams = list(zip(*[words(text)[i:] for i in range(n)]))
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct n-grams over all n-grams across a set of rationales (diversity)."""
    grams = [g for t in texts for g in zip(*[words(t)[i:] for i in range(n)])]
    return len(set(grams)) / len(grams) if grams else 0.0


CONTENT_FREE = "N/A"   # what the judge is shown to measure its prior (contextual calibration)
INFORMATIVE_AUC = 0.6  # below this the judge's support says little about the label


def calibrated(probs: list[float], prior: list[float]) -> list[float]:
    """The judge's class probabilities divided by its answer to a content-free rationale, renormalised
    (Zhao et al. 2021): a judge that leans to one class whatever it reads no longer marks every
    rationale of the other classes as unsupported."""
    scaled = [p / max(q, 1e-9) for p, q in zip(probs, prior)]
    total = sum(scaled)
    return [x / total for x in scaled]


def score_support(store: Store, lm: models.LoadedModel, prompt_id: int, model: str,
                  on_event: EventSink = ignore) -> None:
    """Ask `lm`, from each rationale's reasoning alone (no video), which class it points to, its
    answer calibrated against the one it gives a content-free rationale."""
    names = [c["name"] for c in project.classes(store)]
    rows = store.rationales(prompt_id, model)
    progress = Progress(on_event, "support", len(rows) + 1)
    frames = FrameConfig()

    def judge(reasoning: str) -> list[float]:
        text = project.render(store, "support", rationale=reasoning)
        return softmax(models.score_options(lm, text, None, frames, names))
    prior = judge(CONTENT_FREE)
    progress.advance(message="the judge's prior: " + ", ".join(f"{n} {p:.2f}" for n, p in zip(names, prior)))
    for r in rows:
        probs = calibrated(judge(strip_classification(r["text"])), prior)
        pred = names[max(range(len(names)), key=probs.__getitem__)]
        true_p = probs[names.index(r["label"])]
        rival = max((p for n, p in zip(names, probs) if n != r["label"]), default=0.0)
        store.set_support(r["video_id"], prompt_id, model, pred, pred == r["label"], true_p - rival,
                          dict(zip(names, probs)), lm.name)
        progress.advance()


def auc(positives: list[float], negatives: list[float]) -> float | None:
    """Probability that a random positive scores above a random negative (ties count half)."""
    if not positives or not negatives:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def support_auc(rows: list[dict]) -> float | None:
    """How well the judge's scores separate the classes: per class, the AUC of its probability for
    that class between rationales of that class and the others, averaged over classes."""
    scored = [r for r in rows if r.get("support_probs")]
    classes = sorted({r["label"] for r in scored})
    if len(classes) < 2:
        return None
    per_class = []
    for c in classes:
        value = auc([r["support_probs"].get(c, 0.0) for r in scored if r["label"] == c],
                    [r["support_probs"].get(c, 0.0) for r in scored if r["label"] != c])
        if value is not None:
            per_class.append(value)
    return statistics.fmean(per_class) if per_class else None


def select(rows: list[dict], mode: str) -> list[dict]:
    """The rationales Stage I trains on."""
    if mode not in FILTERS:
        raise ValueError(f"filter must be one of {', '.join(FILTERS)}, not {mode!r}")
    if mode == "all":
        return list(rows)
    kept = [r for r in rows if r["status"] != "rejected"]
    if mode == "supported":
        if any(r["support_ok"] is None for r in kept):
            raise ValueError("label support has not been scored for these rationales; run "
                             "`python -m rbft stats --score-support` first")
        separation = support_auc(kept)
        if separation is not None and separation < INFORMATIVE_AUC:
            raise ValueError(f"the judge's support scores separate the classes no better than an AUC of "
                             f"{separation:.2f} (chance is 0.5): its word is not informative enough to drop "
                             "rationales on. Score support with another judge, or train on 'not_rejected'")
        kept = [r for r in kept if r["support_ok"] or r["status"] in ("accepted", "edited")]
    return kept


def judge_note(summary: dict) -> str:
    """One line on whether the support scores can be trusted, for the Quality tab and `stats`."""
    if summary.get("support_rate") is None:
        return "label support: not scored yet"
    separation = summary.get("support_auc")
    head = f"label support judged by {summary.get('judge') or 'an earlier judge'} (calibrated)"
    if separation is None:
        return f"{head}; one class only, so how well it separates the classes is unknown"
    if separation < INFORMATIVE_AUC:
        return (f"{head}: its scores separate the classes with an AUC of {separation:.2f} (chance 0.5), so the "
                "support score is NOT informative with this judge and the 'supported' filter will not drop "
                "rationales on its word")
    return f"{head}: its scores separate the classes with an AUC of {separation:.2f} (chance 0.5)"


def _summary(rows: list[dict]) -> dict:
    lengths = [len(words(strip_classification(r["text"]))) for r in rows]
    scored = [r for r in rows if r["support_ok"] is not None]
    return {
        "n": len(rows),
        "words_mean": statistics.fmean(lengths) if lengths else 0.0,
        "words_median": statistics.median(lengths) if lengths else 0.0,
        "words_min": min(lengths, default=0), "words_max": max(lengths, default=0),
        "lengths": lengths,
        "leakage_rate": sum(leaks_label(r["text"], r["label"]) for r in rows) / len(rows) if rows else 0.0,
        "support_rate": sum(r["support_ok"] for r in scored) / len(scored) if scored else None,
        "support_auc": support_auc(rows),
        "judge": next((r["support_judge"] for r in scored if r.get("support_judge")), None),
        "distinct_1": distinct_n([r["text"] for r in rows], 1),
        "distinct_2": distinct_n([r["text"] for r in rows], 2),
        "repetition_mean": statistics.fmean(repetition(r["text"]) for r in rows) if rows else 0.0,
        "empty": sum(1 for n in lengths if n == 0),
        "status": dict(Counter(r["status"] for r in rows)),
    }


def stats(store: Store, prompt_id: int, model: str, worst: int = 3) -> dict:
    """Overall and per-class stats for one (prompt version, model), with the worst examples."""
    rows = store.rationales(prompt_id, model)
    by_class = defaultdict(list)
    for r in rows:
        by_class[r["label"]].append(r)

    def badness(r):  # unsupported first, then most repetitive, then shortest
        return (r["support_ok"] == 1, -repetition(r["text"]), len(words(r["text"])))

    return {"prompt_id": prompt_id, "model": model, "overall": _summary(rows),
            "per_class": {c: _summary(rs) for c, rs in sorted(by_class.items())},
            "worst": [{"video_id": r["video_id"], "label": r["label"], "text": r["text"],
                       "support_pred": r["support_pred"], "repetition": repetition(r["text"])}
                      for r in sorted(rows, key=badness)[:worst]]}


def latest_generator(store: Store, model: str | None = None) -> dict | None:
    gens = [g for g in store.rationale_generators() if model is None or g["model"] == model]
    return gens[0] if gens else None
