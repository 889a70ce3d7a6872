"""Sight across time: what each image token should know about its thing, read inside the language model.

SmolVLM's vision tower sees one frame at a time, so no target on the tower can teach motion. The
language model is where the frames meet: with causal attention, an image token of frame i can look
at every earlier frame. So the caption stage also asks, at one middle layer, each image token that
shows a thing for that thing's truth: its colour, shape and size, where it is, which way it moved
since the previous frame the model sees, and which logged events happened to it in between (a
bounce, a touch, a turn back, an appearance, ...). The targets are dense (every token of every frame)
where the caption gives one word per event, and they are read from the renderer's exact logs. The
head that reads them is thrown away after training; the model keeps its SmolVLM architecture.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from . import world
from .sight import COLORS, SIZES

DIRECTIONS = ("still", "left", "right", "up", "down")
EVENTS = ("bounces", "turns back", "speeds up", "stops at the edge", "touches", "passes close to", "appears",
          "grows", "shrinks", "rotates")
ONGOING = {"grows", "shrinks", "rotates"}   # logged once, true of every frame after the first
STILL = 0.01          # canvas widths between two seen frames: less is standing still
LAYER = 10            # of SmolLM2-135M's 30: frames have met, and 20 layers are left to put it in words
N_POSITION = 3        # x, y, radius in tokens (a frame is side x side tokens)
CLASS_KEYS = ("color", "shape", "size", "direction")
N_OUT = len(COLORS) + 1 + len(world.SHAPES) + 1 + len(SIZES) + 1 + len(DIRECTIONS) + len(EVENTS) + N_POSITION


def direction(dx: float, dy: float) -> str:
    if math.hypot(dx, dy) < STILL:
        return "still"
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


def token_shares(labels: np.ndarray, side: int, things: int) -> np.ndarray:
    """(T, side * side, things): the share of each image token's region (a side x side grid per
    frame, row-major, as SmolVLM's pixel shuffle orders its tokens) that each thing covers."""
    t, h, _ = labels.shape
    region = h // side
    cells = labels.reshape(t, side, region, side, region).transpose(0, 1, 3, 2, 4).reshape(t, side * side, -1)
    return np.stack([(cells == k + 1).mean(-1) for k in range(things)], -1)


def token_targets(clip: world.Clip, frame_ids: list[int], side: int = 4) -> dict:
    """Per image token (frame-major, then row-major over a side x side grid): the thing it shows
    (a quarter of its area or more; colour 0 where none), that thing's truth, and what happened to
    it since the previous seen frame. Ignored class targets are -100."""
    names = [f"the {th['size']} {th['color']} {th['shape']}" for th in clip.things]
    shares = token_shares(clip.labels[frame_ids], side, len(names))
    which = np.where(shares.max(-1) >= 0.25, shares.argmax(-1), -1)
    t = len(frame_ids)
    n = t * side * side
    classes = np.full((n, len(CLASS_KEYS)), -100, np.int64)
    classes[:, :3] = 0
    events = np.zeros((n, len(EVENTS)), np.float32)
    position = np.zeros((n, N_POSITION), np.float32)
    for i, f in enumerate(frame_ids):
        before = frame_ids[i - 1] if i else -1
        for k, (thing, name) in enumerate(zip(clip.things, names)):
            tokens = np.nonzero(which[i] == k)[0] + i * side * side
            if not len(tokens):
                continue
            x, y, r, _ = clip.tracks[name][f]
            classes[tokens, 0] = COLORS.index(thing["color"]) + 1
            classes[tokens, 1] = world.SHAPES.index(thing["shape"]) + 1
            classes[tokens, 2] = SIZES.index(thing["size"]) + 1
            position[tokens] = (x * side, y * side, r * side)
            if i and clip.tracks[name][before][3]:   # seen in the previous frame too: it moved this way
                px, py, _, _ = clip.tracks[name][before]
                classes[tokens, 3] = DIRECTIONS.index(direction(x - px, y - py))
            for e in clip.events:
                if e["object"] == name and e["event"] in EVENTS and before < e["t"] <= f:
                    events[tokens, EVENTS.index(e["event"])] = 1
            for kind in ONGOING:
                if any(e["object"] == name and e["event"] == kind for e in clip.events) and i:
                    events[tokens, EVENTS.index(kind)] = 1
    return {"motion_classes": torch.from_numpy(classes), "motion_events": torch.from_numpy(events),
            "motion_position": torch.from_numpy(position)}


TARGET_KEYS = ("motion_classes", "motion_events", "motion_position")


def event_pos_weight(seeds, num_frames: int, side: int = 4, frames_per_token: int = 1,
                     cap: float = 100.0) -> torch.Tensor:
    """Per event kind, how many image tokens (of those that show a thing) lack it for each one that
    has it, over the training clips `seeds`: binary cross-entropy's pos_weight, so that over the
    data an event's presence weighs as much as its absence. Capped, as a kind almost never seen
    would otherwise take over the loss."""
    from ..frames import uniform_indices
    counts, shown = torch.zeros(len(EVENTS)), 0
    for seed in seeds:
        clip = world.render(int(seed), labels=True)
        t = token_targets(clip, list(uniform_indices(len(clip.frames), num_frames))[::frames_per_token], side)
        on = t["motion_classes"][:, 0] > 0
        counts += t["motion_events"][on].sum(0)
        shown += int(on.sum())
    return ((shown - counts) / counts.clamp(min=1)).clamp(1, cap)


def event_loss(logits: torch.Tensor, targets: torch.Tensor, pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy of the event tags, each event's positives weighed by `pos_weight`
    (event_pos_weight; None: the plain mean of builds 1-4). An event is on a few image tokens of a
    clip's hundreds, so under the plain mean a head that never fires loses almost nothing; build 4's
    read-out learned the commonest event ("grows") alone. Build 5 balanced positives against
    negatives within each batch instead: at one clip a step, most steps hold no positive of a rare
    event and only push it down, and its read-out still learned "grows" alone."""
    return nn.functional.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight)


class MotionHead(nn.Module):
    """A linear read-out of an image token's hidden state, normalized first; the loss sums its
    targets' losses.

    Why normalized: SmolLM2's residual stream at layer 10 has norms of about 135, carried by a few
    channels near 80. Read raw, the head's loss sent gradients 3-15x the caption loss's into the
    model at the start and 10-30x through training (median gradient norm 13-35 against the caption
    stage's 1.1), so with clipping at 1 the captions barely trained and collapsed to one sentence.
    A parameter-free layer norm, as the language model applies before its own head, keeps the two
    losses on one scale."""

    def __init__(self, hidden: int, event_pos_weight: torch.Tensor | None = None):
        super().__init__()
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False)
        self.linear = nn.Linear(hidden, N_OUT)
        self.register_buffer("event_pos_weight", event_pos_weight, persistent=False)

    def read(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(hidden.float()))

    def split(self, out: torch.Tensor) -> dict:
        sizes = [len(COLORS) + 1, len(world.SHAPES) + 1, len(SIZES) + 1, len(DIRECTIONS), len(EVENTS), N_POSITION]
        parts = torch.split(out, sizes, dim=-1)
        return dict(zip(("color", "shape", "size", "direction", "events", "position"), parts))

    def loss(self, hidden: torch.Tensor, classes, events, position) -> torch.Tensor:
        out = self.split(self.read(hidden))
        ce = nn.functional.cross_entropy
        total = sum(ce(out[key], classes[:, j], ignore_index=-100) for j, key in enumerate(CLASS_KEYS[:3]))
        if (classes[:, 3] >= 0).any():
            total = total + ce(out["direction"], classes[:, 3], ignore_index=-100)
        shown = classes[:, 0] > 0
        if shown.any():
            total = total + event_loss(out["events"][shown], events[shown], self.event_pos_weight)
            total = total + ((out["position"][shown] - position[shown]) ** 2).mean()
        return total

    @torch.no_grad()
    def predict(self, hidden: torch.Tensor) -> dict:
        return {k: v.argmax(-1) if k in CLASS_KEYS else v for k, v in self.split(self.read(hidden)).items()}
