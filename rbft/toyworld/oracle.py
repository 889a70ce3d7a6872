"""Rationales written from a clip's event log, for experiments on how much rationale truth RB-FT
needs: all true (p = 0), or with a share p of their event claims swapped for false ones (the same
thing doing something it does not do, at the same moment). They never name a class."""
from __future__ import annotations

import numpy as np

from . import world

FALSE_KINDS = ["touches", "passes close to", "speeds up", "turns back", "bounces", "rotates", "grows",
               "shrinks", "disappears", "stops at the edge"]
WALLS = ["left", "right", "top", "bottom"]


def _false_event(e: dict, true: set, objects: list[str], rng: np.random.Generator) -> dict:
    """An event about the same thing at the same time that its log does not have."""
    _, _, color, shape = e["object"].split(" ")
    others = [o for o in objects if o != e["object"]]
    kinds = [k for k in FALSE_KINDS if (f"{color} {shape}", k) not in true
             and (others or k not in ("touches", "passes close to"))]
    kind = str(rng.choice(kinds))
    out = {"t": e["t"], "object": e["object"], "event": kind, "wall": str(rng.choice(WALLS))}
    if kind in ("touches", "passes close to"):
        out["other"] = str(rng.choice(others))
    if kind in ("grows", "shrinks"):
        out["detail"] = "keeps getting " + ("bigger" if kind == "grows" else "smaller")
    if kind == "turns back":
        out["detail"] = "now moves " + str(rng.choice(["left", "right", "up", "down"]))
    return out


def oracle_rationale(seed: int, p: float = 0.0, events: list[dict] | None = None) -> str:
    """The clip's events in temporal order, round(p * n) of its n claims replaced by false ones
    (pass the clip's `events` when they are at hand: rendering the clip again is the slow part)."""
    if not 0 <= p <= 1:
        raise ValueError(f"p is a share of claims, between 0 and 1, not {p}")
    events = world.render(seed).events if events is None else events
    rng = np.random.default_rng([seed, int(round(p * 1000))])
    true = set(world.facts(events))
    objects = sorted({e["object"] for e in events})
    swap = set(rng.choice(len(events), int(round(p * len(events))), replace=False).tolist()) if events else set()
    told = [_false_event(e, true, objects, rng) if i in swap else e for i, e in enumerate(events)]
    return world.describe(told, seed)
