"""Paired comparison of two arms: the same test clips, the same seeds, a difference in accuracy with
a 95% bootstrap interval over clips and seeds. A gap smaller than its interval is no result.

Each seed's runs of both arms predict the same test clips, so the difference is taken per clip and
seed; the bootstrap resamples seeds and clips (with replacement) and reads the 2.5th and 97.5th
percentiles of the mean difference.
"""
from __future__ import annotations

import numpy as np

from .store import Store


def correct_by_seed(store: Store, runs: list[dict], arm: str) -> dict[int, dict[str, int]]:
    """{seed: {video id: 1 if right}} for an arm's finished runs."""
    out = {}
    for r in runs:
        if r["arm"] == arm and r["status"] == "done":
            out[r["seed"]] = {p["video_id"]: int(p["pred"] == p["label"]) for p in store.predictions(r["id"])}
    return out


def paired_difference(a: dict[int, dict[str, int]], b: dict[int, dict[str, int]],
                      resamples: int = 2000, seed: int = 0) -> dict | None:
    """Accuracy of a minus b over the seeds and clips both have; None when they share none."""
    seeds = sorted(set(a) & set(b))
    clips = sorted(set.intersection(*(set(a[s]) & set(b[s]) for s in seeds))) if seeds else []
    if not clips:
        return None
    diff = np.array([[a[s][c] - b[s][c] for c in clips] for s in seeds], dtype=float)  # seeds x clips
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for i in range(resamples):
        rows = rng.integers(0, len(seeds), len(seeds))
        cols = rng.integers(0, len(clips), len(clips))
        means[i] = diff[np.ix_(rows, cols)].mean()
    low, high = np.percentile(means, [2.5, 97.5])
    return {"difference": float(diff.mean()), "low": float(low), "high": float(high),
            "seeds": len(seeds), "clips": len(clips),
            "per_seed": {int(s): float(d) for s, d in zip(seeds, diff.mean(axis=1))},
            "resolved": bool(low > 0 or high < 0)}


def against(store: Store, runs: list[dict], baseline: str = "sft") -> dict[str, dict]:
    """Every other arm of these runs against the baseline arm."""
    base = correct_by_seed(store, runs, baseline)
    out = {}
    for arm in dict.fromkeys(r["arm"] for r in runs):
        if arm != baseline:
            d = paired_difference(correct_by_seed(store, runs, arm), base)
            if d:
                out[arm] = d
    return out


def format_difference(d: dict | None) -> str:
    if not d:
        return "-"
    verdict = "" if d["resolved"] else " (interval includes 0: no result)"
    return (f"{d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]{verdict}")
