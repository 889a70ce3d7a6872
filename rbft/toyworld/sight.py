"""Pretraining the toy-world VLM's vision tower on what each patch shows.

Learning to see only through the caption loss is slow: at first the language model learns the
captions' common wording faster than the random vision tower learns anything, and every clip
gets the same caption (our first CPU build did exactly that). The world's ground truth is exact,
so the tower first learns it directly, patch by patch and frame by frame: the colour, shape and
size of the thing a patch shows, where that thing's centre is, how big it is and how it is turned.
Those features are what the captions need; the caption stage then only has to learn to read them.

Trained with transformers' Trainer like everything else (resumable checkpoints, progress events).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from . import world

COLORS = list(world.COLORS)
SIZES = ("small", "large")
N_REGRESS = 5  # centre dx, dy (in patches), radius (canvas tenths), orientation cos, sin


def patch_targets(clip: world.Clip, frame_ids, patch: int) -> dict:
    """Per frame and patch: class targets (0 = nothing) and regression targets with their mask."""
    labels = clip.labels[frame_ids]                                    # (T, H, W)
    t, h, w = labels.shape
    grid = h // patch
    cells = labels.reshape(t, grid, patch, grid, patch).transpose(0, 1, 3, 2, 4).reshape(t, grid, grid, -1)
    n_things = len(clip.things)
    counts = np.stack([(cells == k + 1).sum(-1) for k in range(n_things)], -1)  # (T, g, g, things)
    seen = counts.max(-1) >= patch * patch * 0.15
    which = np.where(seen, counts.argmax(-1), -1)
    color = np.zeros((t, grid, grid), np.int64)
    shape = np.zeros_like(color)
    size = np.zeros_like(color)
    regress = np.zeros((t, grid, grid, N_REGRESS), np.float32)
    mask = np.zeros_like(regress)
    for k, thing in enumerate(clip.things):
        name = f"the {thing['size']} {thing['color']} {thing['shape']}"
        for i, f in enumerate(frame_ids):
            here = which[i] == k
            if not here.any():
                continue
            color[i][here] = COLORS.index(thing["color"]) + 1
            shape[i][here] = world.SHAPES.index(thing["shape"]) + 1
            size[i][here] = SIZES.index(thing["size"]) + 1
            x, y, r, _ = clip.tracks[name][f]
            rows, cols = np.nonzero(here)
            regress[i, rows, cols, 0] = np.clip(x * grid - (cols + 0.5), -4, 4)
            regress[i, rows, cols, 1] = np.clip(y * grid - (rows + 0.5), -4, 4)
            regress[i, rows, cols, 2] = r * 10
            mask[i, rows, cols, :3] = 1
            if thing["shape"] != "circle":  # a square looks the same every 90 degrees, a triangle every 120
                n = 4 if thing["shape"] == "square" else 3
                a = math.radians(clip.angles[name][f] * n)
                regress[i, rows, cols, 3:] = (math.cos(a), math.sin(a))
                mask[i, rows, cols, 3:] = 1
    return {"color": color.reshape(t, -1), "shape": shape.reshape(t, -1), "size": size.reshape(t, -1),
            "regress": regress.reshape(t, grid * grid, -1), "regress_mask": mask.reshape(t, grid * grid, -1)}


def pixels(frames: np.ndarray) -> torch.Tensor:
    """RGB uint8 frames -> the SmolVLM processor's normalisation (mean 0.5, std 0.5), channels first."""
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1.0


class SightDataset(torch.utils.data.Dataset):
    """Rendered on access: clip `first + i`, `num_frames` frames spread over it."""

    def __init__(self, first_seed: int, clips: int, num_frames: int, patch: int):
        self.first, self.clips, self.num_frames, self.patch = first_seed, clips, num_frames, patch

    def __len__(self) -> int:
        return self.clips

    def __getitem__(self, i: int) -> dict:
        from ..frames import uniform_indices
        clip = world.render(self.first + i, labels=True)
        ids = uniform_indices(len(clip.frames), self.num_frames)
        out = {k: torch.from_numpy(v) for k, v in patch_targets(clip, ids, self.patch).items()}
        out["pixel_values"] = pixels(clip.frames[ids])
        return out


def collate(features: list[dict]) -> dict:
    """Clips' frames become one batch of images."""
    return {k: torch.cat([f[k] for f in features]) for k in features[0]}


class SightPretraining(nn.Module):
    """The vision tower with a linear head per patch; the loss sums the targets' losses."""

    def __init__(self, vision_model: nn.Module, hidden: int):
        super().__init__()
        self.vision_model = vision_model
        self.head = nn.Linear(hidden, len(COLORS) + 1 + len(world.SHAPES) + 1 + len(SIZES) + 1 + N_REGRESS)

    def forward(self, pixel_values, color, shape, size, regress, regress_mask):
        h = self.vision_model(pixel_values=pixel_values).last_hidden_state
        out = self.head(h)
        a, b, c = len(COLORS) + 1, len(world.SHAPES) + 1, len(SIZES) + 1
        ce = nn.functional.cross_entropy
        loss = ce(out[..., :a].flatten(0, 1), color.flatten()) + \
            ce(out[..., a:a + b].flatten(0, 1), shape.flatten()) + \
            ce(out[..., a + b:a + b + c].flatten(0, 1), size.flatten())
        pred = out[..., a + b + c:]
        loss = loss + ((pred - regress) ** 2 * regress_mask).sum() / regress_mask.sum().clamp(min=1)
        return {"loss": loss, "logits": out}


@torch.no_grad()
def sight_accuracy(model: SightPretraining, seeds: list[int], num_frames: int, patch: int) -> dict:
    """Held-out clips: how often the tower names the right colour and shape of patches that show a
    thing, and how far off (in patches) it places the thing's centre."""
    model.eval()
    right_color = right_shape = seen = 0
    error = []
    ds = SightDataset(seeds[0], len(seeds), num_frames, patch)
    a, b, c = len(COLORS) + 1, len(world.SHAPES) + 1, len(SIZES) + 1
    for i in range(len(seeds)):
        item = ds[i]
        out = model.vision_model(pixel_values=item["pixel_values"]).last_hidden_state
        out = model.head(out)
        on = item["color"] > 0
        seen += int(on.sum())
        right_color += int((out[..., :a].argmax(-1)[on] == item["color"][on]).sum())
        right_shape += int((out[..., a:a + b].argmax(-1)[on] == item["shape"][on]).sum())
        d = out[..., a + b + c:a + b + c + 2][on] - item["regress"][..., :2][on]
        error.extend(d.norm(dim=-1).tolist())
    return {"color_accuracy": right_color / max(seen, 1), "shape_accuracy": right_shape / max(seen, 1),
            "centre_error_patches": float(np.mean(error)) if error else None, "patches": seen}
