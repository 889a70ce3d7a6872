"""Grounding where the truth is known (issue 34): how much of the attention from the class the model
names to the video falls on the things its label depends on.

Every toy-world clip knows which thing each pixel shows (`world.render(labels=True)`) and which
things decide its class (its event log): the two that touch, or pass close. A visual token counts as
showing a thing when any pixel of its place, in any frame it stands for, shows it. Spread evenly,
attention would put `chance` (the share of such tokens) on them: the number to beat.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..attention import AttentionMap
from . import world

# the events whose things decide each testbed task's class
DECIDING = {"floor": ("touches", "passes close to"), "order": ("speeds up", "touches")}


@dataclass
class Grounding:
    on_deciding: float     # share of the visual attention on tokens that show a deciding thing
    chance: float          # share of visual tokens that show one (what even attention would give)
    on_things: float       # share of the visual attention on tokens that show any thing
    things_chance: float
    visual_share: float    # share of the answer's attention that went to the video at all


def deciding_things(task: str, events: list[dict]) -> list[str]:
    """The things named in the events that decide the class; none where no such event happened
    (floor's routine: nothing touches or comes close, so no thing decides it more than another).
    Floor's near miss is decided by the close passes only when nothing touches."""
    kinds = DECIDING[task]
    happened = {e["event"] for e in events}
    if task == "floor" and "touches" in happened:
        kinds = ("touches",)
    names = [n for e in events if e["event"] in kinds for n in (e["object"], e.get("other")) if n]
    return sorted(set(names))


def step_frames(indices: list[int], steps: int) -> list[list[int]]:
    """The clip frames each step of an attention map stands for (two per step for Qwen's patches)."""
    per = max(1, len(indices) // steps)
    return [list(indices[s * per:(s + 1) * per]) for s in range(steps)]


def shown(labels: np.ndarray, ids: list[int], frames: list[list[int]], rows: int, cols: int) -> np.ndarray:
    """(steps, rows, cols): whether a token's place shows any of the things `ids` (label values) in
    any of its frames."""
    h, w = labels.shape[1:]
    out = np.zeros((len(frames), rows, cols), bool)
    for s, fs in enumerate(frames):
        seen = np.isin(labels[fs], ids).any(0)
        for r in range(rows):
            for c in range(cols):
                out[s, r, c] = seen[r * h // rows:(r + 1) * h // rows, c * w // cols:(c + 1) * w // cols].any()
    return out


def ground(result: AttentionMap, indices: list[int], seed: int, task: str) -> Grounding | None:
    """The grounding of one attention map of the clip rendered from `seed`; None when no thing
    decides its class."""
    clip = world.render(seed, labels=True)
    deciding = deciding_things(task, clip.events)
    if not deciding:
        return None
    index = {world.Thing(**t).name: i + 1 for i, t in enumerate(clip.things)}
    steps, rows, cols = result.maps.shape
    frames = step_frames(indices, steps)
    on_deciding = shown(clip.labels, [index[n] for n in deciding], frames, rows, cols)
    on_any = shown(clip.labels, list(index.values()), frames, rows, cols)
    total = float(result.maps.sum()) or 1.0
    return Grounding(float(result.maps[on_deciding].sum()) / total, float(on_deciding.mean()),
                     float(result.maps[on_any].sum()) / total, float(on_any.mean()), result.visual_share)
