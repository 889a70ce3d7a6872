"""Where the model looked: the attention from chosen answer tokens to every visual token, mapped back
to the frame (or pair of frames, for Qwen's two-frame patches) and the place in the frame each visual
token stands for.

One forward pass over prompt, video and answer. The language model runs with eager attention for
that pass only (no other kernel returns its weights), and a hook on each attention layer keeps just
the rows of the chosen answer tokens, averaged over heads, so no layer's full attention is kept
beyond its own call: memory is one layer's attention matrix more than a plain forward pass.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import models
from .config import FrameConfig
from .frames import Clip


@dataclass
class VisualGrid:
    """Where each visual token of an encoded example lies: its sequence position, the clip frame it
    stands for (the first of its pair for Qwen) and its row and column in a rows x cols grid."""

    positions: torch.Tensor
    frame: np.ndarray
    row: np.ndarray
    col: np.ndarray
    rows: int
    cols: int
    frames_per_token: int

    @property
    def steps(self) -> int:
        return int(self.frame.max() // self.frames_per_token + 1) if len(self.frame) else 0


@dataclass
class AttentionMap:
    """Per layer kept and averaged over `layers`: maps[t] is the share of the answer tokens' attention
    on each place of the t-th frame (pair) the model saw; visual_share the share that went to the video."""

    maps: np.ndarray                 # (steps, rows, cols), averaged over the layers
    frames: list[int]                # the clip frame each step of maps shows (first of its pair)
    visual_share: float
    per_layer_visual_share: list[float]
    layers: tuple[int, int]          # first and last layer averaged (inclusive)
    tokens: int                      # answer tokens looked from


def visual_grid(lm: models.LoadedModel, feats: dict) -> VisualGrid:
    """The processor's own layout of the visual tokens: SmolVLM's pixel shuffle gives each frame a
    row-major g x g grid; Qwen's merge gives each pair of frames a row-major (h/m) x (w/m) grid."""
    ids = feats["input_ids"]
    config = lm.model.config
    if lm.family.name == "smolvlm":
        positions = torch.nonzero(ids == config.image_token_id).flatten()
        side = int(round(lm.processor.image_seq_len ** 0.5))
        k = np.arange(len(positions))
        per = side * side
        return VisualGrid(positions, k // per, (k % per) // side, k % side, side, side, 1)
    positions = torch.nonzero(ids == config.video_token_id).flatten()
    t, h, w = (int(x) for x in feats["video_grid_thw"][0])
    m = config.vision_config.spatial_merge_size
    rows, cols = h // m, w // m
    k = np.arange(len(positions))
    per = rows * cols
    if len(positions) != t * per:
        raise ValueError(f"{len(positions)} video tokens for a grid of {t} x {rows} x {cols}")
    tp = getattr(config.vision_config, "temporal_patch_size", 2)
    return VisualGrid(positions, (k // per) * tp, (k % per) // cols, k % cols, rows, cols, tp)


def _answer_rows(lm: models.LoadedModel, feats: dict, answer: str, focus: str | None) -> torch.Tensor:
    """Sequence positions of the answer's tokens that cover `focus` (a piece of the answer; all of it
    when None), without the end-of-turn token."""
    labels = feats["labels"]
    rows = torch.nonzero(labels != -100).flatten()
    n_answer = len(lm.tokenizer(lm.family.answer_prefix + answer, add_special_tokens=False)["input_ids"])
    rows = rows[:n_answer]
    if focus is None:
        return rows
    start = answer.find(focus)
    if start < 0:
        raise ValueError(f"{focus!r} is not part of the answer")
    enc = lm.tokenizer(lm.family.answer_prefix + answer, add_special_tokens=False, return_offsets_mapping=True)
    shift = len(lm.family.answer_prefix)
    lo, hi = start + shift, start + shift + len(focus)
    keep = [i for i, (a, b) in enumerate(enc["offset_mapping"]) if a < hi and b > lo]
    return rows[keep]


def text_layers(lm: models.LoadedModel) -> list[torch.nn.Module]:
    """The language model's attention modules, in order."""
    text = next(m for n, m in lm.model.named_modules() if n.endswith(lm.family.text_module) and hasattr(m, "layers"))
    return [layer.self_attn for layer in text.layers]


@torch.no_grad()
def attention_map(lm: models.LoadedModel, prompt: str, clip: Clip, frames: FrameConfig, answer: str,
                  focus: str | None = None, layers: tuple[int, int] | None = None) -> AttentionMap:
    """The attention of `answer`'s tokens (or those of `focus`, a piece of it) to the video, per
    frame and place, averaged over heads and over `layers` (default: the second half of the language
    model, where answers attend to the evidence)."""
    feats = models.encode(lm, prompt, clip, frames, answer=answer)
    grid = visual_grid(lm, feats)
    rows = _answer_rows(lm, feats, answer, focus)
    if not len(rows):
        raise ValueError("no answer token to look from")
    attn = text_layers(lm)
    first, last = layers or (len(attn) // 2, len(attn) - 1)
    kept: dict[int, torch.Tensor] = {}

    def keep(index):
        def hook(module, inputs, output):
            weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
            if weights is None:
                raise RuntimeError("the attention layer returned no weights (not eager attention)")
            kept[index] = weights[0][:, rows].float().mean(0).cpu()   # (answer rows, sequence), head mean
        return hook

    previous = lm.model.config.get_text_config()._attn_implementation
    lm.model.set_attn_implementation({"text_config": "eager"})
    handles = [a.register_forward_hook(keep(i)) for i, a in enumerate(attn) if first <= i <= last]
    try:
        batch = models.to_model(lm, models.collate([feats], lm.tokenizer.pad_token_id))
        batch.pop("labels", None)
        lm.model(**batch)
    finally:
        for h in handles:
            h.remove()
        lm.model.set_attn_implementation({"text_config": previous})
    visual, shares, maps = grid.positions, [], []
    for i in sorted(kept):
        a = kept[i]                                   # (answer rows, sequence)
        shares.append(float(a[:, visual].sum(-1).mean()))
        on_video = a[:, visual].mean(0).numpy()        # per visual token
        m = np.zeros((grid.steps, grid.rows, grid.cols))
        np.add.at(m, (grid.frame // grid.frames_per_token, grid.row, grid.col), on_video)
        maps.append(m)
    known = list(clip.indices) if clip.indices is not None else list(range(len(clip.frames)))
    used = [known[min(s * grid.frames_per_token, len(known) - 1)] for s in range(grid.steps)]
    return AttentionMap(np.mean(maps, 0), [int(f) for f in used], float(np.mean(shares)), shares, (first, last),
                        len(rows))


def save_figure(clip: Clip, result: AttentionMap, path, title: str = "") -> None:
    """The frames the model saw (the first of each pair for Qwen), each under its heat map, with the
    visual share in the title; one colour scale for all frames, so that they compare."""
    from matplotlib.figure import Figure
    steps = len(result.maps)
    per = len(clip.frames) // steps if steps else 1
    fig = Figure(figsize=(2.2 * steps, 2.6))
    top = result.maps.max() or 1.0
    for s in range(steps):
        ax = fig.add_subplot(1, steps, s + 1)
        frame = clip.frames[s * per]
        ax.imshow(frame)
        ax.imshow(result.maps[s], cmap="inferno", alpha=0.55, vmin=0, vmax=top, interpolation="nearest",
                  extent=(0, frame.shape[1], frame.shape[0], 0))
        ax.set_title(f"frame {result.frames[s]}", fontsize=8)
        ax.axis("off")
    fig.suptitle(f"{title}  visual share {result.visual_share:.2f} (layers {result.layers[0]}-{result.layers[1]})",
                 fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")


CLASS_CHOICE = "the class it names"


def sentences(text: str) -> list[str]:
    """A rationale's sentences, in order (what the user can pick to look from)."""
    import re
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text or "") if s.strip()]


def where_it_looked(store, lm: models.LoadedModel, clip: Clip, frames: FrameConfig, choice: str,
                    rationale: str = "") -> tuple[str, AttentionMap]:
    """For the studio: from the class the model names (scored as label scoring asks for it), or from
    one sentence of `rationale` (looked at with the describe prompt, the whole rationale as the answer).
    Returns what it looked from and the map."""
    from . import project
    from .evaluate import softmax
    if choice and choice != CLASS_CHOICE:
        if choice not in (rationale or ""):
            raise ValueError("pick a sentence of the rationale shown, or the class it names")
        return choice, attention_map(lm, project.render(store, "describe"), clip, frames, rationale, focus=choice)
    names = [c["name"] for c in project.classes(store)]
    if not names:
        raise ValueError("the project has no classes yet")
    prompt = project.render(store, "classify")
    probs = softmax(models.score_options(lm, prompt, clip, frames, names))
    named = names[int(np.argmax(probs))]
    return named, attention_map(lm, prompt, clip, frames, named)


def overlays(clip: Clip, result: AttentionMap) -> list[tuple[np.ndarray, str]]:
    """Each frame the model saw (the first of each pair) under its heat map, as RGB images for a
    gallery; one colour scale for all, so that the frames compare."""
    from matplotlib import colormaps
    steps = len(result.maps)
    per = len(clip.frames) // steps if steps else 1
    top = result.maps.max() or 1.0
    out = []
    for s in range(steps):
        frame = clip.frames[s * per].astype(np.float32)
        h, w = frame.shape[:2]
        heat = result.maps[s] / top
        big = np.kron(heat, np.ones((-(-h // heat.shape[0]), -(-w // heat.shape[1]))))[:h, :w]
        colour = colormaps["inferno"](big)[..., :3] * 255
        mixed = (0.45 * frame + 0.55 * colour).clip(0, 255).astype(np.uint8)
        out.append((mixed, f"frame {result.frames[s]} · {result.maps[s].sum():.0%} of the answer's attention"))
    return out
