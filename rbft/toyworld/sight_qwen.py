"""Pretraining the Qwen-family toy-world tower on what each two-frame patch shows, motion included.

Qwen2.5-VL's tower embeds two consecutive frames per patch (rbft.toyworld.base_qwen), so what moved
between them is in its input and can be taught there, densely, from the renderer's truth, as colour
and shape are. Per patch that shows a thing (in either frame): its colour, shape and size, and, when
the thing is seen in both frames, which way it moved (still, left, right, up, down), how fast (slow,
fast), whether it grew or shrank, whether it turned, and whether it touches another thing. A pooled
head asks the same of each thing's mean patch feature in a pair, which is also how the held-out
accuracy is measured: per thing and pair of frames, beside the rate of the commonest class (a tower
that learned nothing scores exactly that).

Trained with transformers' Trainer like the rest of the build (resumable checkpoints, progress events).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from . import world
from .base_qwen import IMAGE_SIZE, VISION
from .motion import DIRECTIONS, direction
from .sight import COLORS, SIZES, pixels

SPEEDS = ("slow", "fast")
SIZE_CHANGES = ("same", "grew", "shrank")
FAST = 0.018          # canvas widths per rendered frame: the world moves things at 0.012 or 0.025 (x2 sped up)
GREW = 1.03           # radius ratio between the two frames (the world scales by 1.06 a frame)
TURNED = 3.0          # degrees between the two frames (the world turns by 12 a frame)
# Per thing and pair: (name, number of classes); -100 where it does not apply
TARGETS = (("color", len(COLORS)), ("shape", len(world.SHAPES)), ("size", len(SIZES)),
           ("direction", len(DIRECTIONS)), ("speed", len(SPEEDS)), ("size_change", len(SIZE_CHANGES)),
           ("turned", 2), ("touches", 2))
KEYS = tuple(k for k, _ in TARGETS)
IGNORE = -100


def patchify(frames: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB uint8 frames (T, H, W, 3), T even -> the Qwen2-VL processor's flattened patches and grid
    (tests/test_toyworld_qwen.py checks them against the processor): pairs of frames, then merge
    blocks row by row, then the patches inside a block, each patch channels x 2 frames x p x p."""
    p, m, tp = VISION["patch_size"], VISION["spatial_merge_size"], VISION["temporal_patch_size"]
    x = pixels(frames)                                    # (T, C, H, W), normalised as the processor does
    t, c, h, w = x.shape
    gt, gh, gw = t // tp, h // p, w // p
    x = x.reshape(gt, tp, c, gh // m, m, p, gw // m, m, p).permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return x.reshape(gt * gh * gw, c * tp * p * p), torch.tensor([[gt, gh, gw]])


def patch_order(gt: int, gh: int, gw: int) -> np.ndarray:
    """For each of patchify's patches, its (pair, row, col) cell as a flat index into (gt, gh, gw)."""
    m = VISION["spatial_merge_size"]
    idx = np.arange(gt * gh * gw).reshape(gt, gh // m, m, gw // m, m).transpose(0, 1, 3, 2, 4)
    return idx.reshape(-1)


def _touches(clip: world.Clip, names: list[str], k: int, f: int) -> bool:
    x, y, r, seen = clip.tracks[names[k]][f]
    return bool(seen) and any(
        j != k and clip.tracks[o][f][3] and math.hypot(x - clip.tracks[o][f][0], y - clip.tracks[o][f][1])
        <= r + clip.tracks[o][f][2] for j, o in enumerate(names))


def thing_targets(clip: world.Clip, first: int, second: int) -> np.ndarray:
    """(things, len(TARGETS)) for one pair of rendered frames: each thing's truth, IGNORE where a
    target does not apply (motion needs the thing seen in both frames; a circle cannot be seen to turn)."""
    names = [f"the {t['size']} {t['color']} {t['shape']}" for t in clip.things]
    out = np.full((len(names), len(TARGETS)), IGNORE, np.int64)
    gap = max(second - first, 1)
    for k, (thing, name) in enumerate(zip(clip.things, names)):
        out[k, :3] = (COLORS.index(thing["color"]), world.SHAPES.index(thing["shape"]), SIZES.index(thing["size"]))
        (x1, y1, r1, seen1), (x2, y2, r2, seen2) = clip.tracks[name][first], clip.tracks[name][second]
        if not (seen1 and seen2):
            continue
        way = direction(x2 - x1, y2 - y1)
        out[k, 3] = DIRECTIONS.index(way)
        if way != "still":
            out[k, 4] = SPEEDS.index("fast" if math.hypot(x2 - x1, y2 - y1) / gap >= FAST else "slow")
        out[k, 5] = SIZE_CHANGES.index("grew" if r2 > r1 * GREW else "shrank" if r1 > r2 * GREW else "same")
        if thing["shape"] != "circle":
            period = 90 if thing["shape"] == "square" else 120
            turn = abs(clip.angles[name][second] - clip.angles[name][first]) % period
            out[k, 6] = int(min(turn, period - turn) >= TURNED)
        out[k, 7] = int(_touches(clip, names, k, first) or _touches(clip, names, k, second))
    return out


def patch_things(labels: np.ndarray, things: int) -> np.ndarray:
    """(pairs, gh, gw): the thing (0-based) each two-frame patch shows (15% of its pixels over both
    frames or more; the largest share), -1 for background."""
    p, tp = VISION["patch_size"], VISION["temporal_patch_size"]
    t, h, w = labels.shape
    cells = labels.reshape(t // tp, tp, h // p, p, w // p, p).transpose(0, 2, 4, 1, 3, 5).reshape(t // tp, h // p, w // p, -1)
    counts = np.stack([(cells == k + 1).sum(-1) for k in range(things)], -1)
    return np.where(counts.max(-1) >= cells.shape[-1] * 0.15, counts.argmax(-1), -1)


def clip_example(clip: world.Clip, frame_ids: list[int]) -> dict:
    """One clip's frames (an even number) as the tower sees them, with each patch's thing and each
    (pair, thing)'s targets. `group` numbers the (pair, thing) groups of this clip, -1 for background."""
    pixel_values, grid = patchify(clip.frames[frame_ids])
    gt, gh, gw = grid[0].tolist()
    things = patch_things(clip.labels[frame_ids], len(clip.things))          # (gt, gh, gw)
    group = np.where(things >= 0, np.arange(gt)[:, None, None] * len(clip.things) + things, -1)
    targets = np.concatenate([thing_targets(clip, frame_ids[2 * i], frame_ids[2 * i + 1]) for i in range(gt)])
    return {"pixel_values": pixel_values, "grid_thw": grid,
            "group": torch.from_numpy(group.reshape(-1)[patch_order(gt, gh, gw)]),
            "targets": torch.from_numpy(targets)}


class PairDataset(torch.utils.data.Dataset):
    """Clip `first + i` rendered on access: of the `num_frames` frames the model sees, one pair (the
    pair chosen by the clip's index, so each clip's pair is fixed and the data deterministic)."""

    def __init__(self, first_seed: int, clips: int, num_frames: int, all_pairs: bool = False):
        self.first, self.clips, self.num_frames, self.all_pairs = first_seed, clips, num_frames, all_pairs

    def __len__(self) -> int:
        return self.clips

    def __getitem__(self, i: int) -> dict:
        from ..frames import uniform_indices
        clip = world.render(self.first + i, size=IMAGE_SIZE, labels=True)
        ids = uniform_indices(len(clip.frames), self.num_frames)
        if not self.all_pairs:
            k = int(np.random.default_rng([self.first, i]).integers(len(ids) // 2))
            ids = ids[2 * k:2 * k + 2]
        return clip_example(clip, list(ids))


def collate(features: list[dict]) -> dict:
    """Clips' patches into one batch; each clip's (pair, thing) groups numbered after the previous clip's."""
    out, offset, groups = {"pixel_values": [], "grid_thw": [], "group": [], "targets": []}, 0, []
    for f in features:
        out["pixel_values"].append(f["pixel_values"])
        out["grid_thw"].append(f["grid_thw"])
        out["targets"].append(f["targets"])
        groups.append(torch.where(f["group"] >= 0, f["group"] + offset, -1))
        offset += len(f["targets"])
    out["group"] = groups
    return {k: torch.cat(v) for k, v in out.items()}


class PairPretraining(nn.Module):
    """The tower with two linear read-outs of the same targets: one per patch (whether it shows a thing
    and, where it does, that thing's truth), one of each (pair, thing)'s mean patch feature. The loss
    sums their cross-entropies."""

    def __init__(self, visual: nn.Module):
        super().__init__()
        self.visual = visual
        # The merger (Qwen's connector) learns in the caption stage; here it would only cost time (a
        # quarter of a step). The tower's forward indexes its output, which the identity keeps valid.
        self.visual.merger = nn.Identity()
        hidden = VISION["hidden_size"]
        self.sizes = [n for _, n in TARGETS]
        self.patch_head = nn.Linear(hidden, sum(self.sizes) + 2)   # + background / thing
        self.pool_head = nn.Linear(hidden, sum(self.sizes))

    def features(self, pixel_values, grid_thw) -> torch.Tensor:
        return self.visual(pixel_values, grid_thw=grid_thw).last_hidden_state   # per patch, before the merger

    @staticmethod
    def pooled(h: torch.Tensor, group: torch.Tensor, groups: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Each group's mean patch feature, and which groups have a patch at all."""
        on = group >= 0
        sums = torch.zeros(groups, h.shape[-1], dtype=h.dtype).index_add_(0, group[on], h[on])
        counts = torch.bincount(group[on], minlength=groups)
        return sums / counts.clamp(min=1)[:, None].to(h.dtype), counts > 0

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        total = logits.new_zeros(())
        for j, part in enumerate(torch.split(logits, self.sizes, dim=-1)):
            if (targets[:, j] != IGNORE).any():
                total = total + nn.functional.cross_entropy(part, targets[:, j], ignore_index=IGNORE)
        return total

    def forward(self, pixel_values, grid_thw, group, targets):
        h = self.features(pixel_values, grid_thw)
        out = self.patch_head(h)
        on = group >= 0
        loss = nn.functional.cross_entropy(out[:, -2:], on.long()) + self._loss(out[on, :-2], targets[group[on]])
        pooled, seen = self.pooled(h, group, len(targets))
        loss = loss + self._loss(self.pool_head(pooled[seen]), targets[seen])
        return {"loss": loss}


@torch.no_grad()
def pair_accuracy(model: PairPretraining, first_seed: int, clips: int, num_frames: int) -> dict:
    """Held-out clips, every pair the model sees: per (pair, thing) and target, how often the pooled
    head and the patches' majority vote name it right, beside the share of its commonest class."""
    model.eval()
    data = PairDataset(first_seed, clips, num_frames, all_pairs=True)
    truth, pooled_pred, vote_pred = [], [], []
    for i in range(clips):
        item = data[i]
        h = model.features(item["pixel_values"], item["grid_thw"])
        pooled, seen = model.pooled(h, item["group"], len(item["targets"]))
        pp = [part.argmax(-1) for part in torch.split(model.pool_head(pooled), model.sizes, dim=-1)]
        patch = [part.argmax(-1) for part in torch.split(model.patch_head(h)[:, :-2], model.sizes, dim=-1)]
        votes = torch.stack([torch.stack([torch.bincount(p[item["group"] == g], minlength=n).argmax()
                                          if seen[g] else torch.tensor(-1) for g in range(len(seen))])
                             for p, n in zip(patch, model.sizes)], -1)
        truth.append(item["targets"][seen])
        pooled_pred.append(torch.stack(pp, -1)[seen])
        vote_pred.append(votes[seen])
    truth, pooled_pred, vote_pred = torch.cat(truth), torch.cat(pooled_pred), torch.cat(vote_pred)
    report = {"clips": clips, "thing_pairs": len(truth)}
    for j, key in enumerate(KEYS):
        on = truth[:, j] != IGNORE
        t = truth[on, j]
        if not len(t):
            continue
        report[key] = {"pooled": round(float((pooled_pred[on, j] == t).float().mean()), 4),
                       "patch_vote": round(float((vote_pred[on, j] == t).float().mean()), 4),
                       "commonest_class_rate": round(float(torch.bincount(t).max() / len(t)), 4), "n": len(t)}
    return report
