"""The connector's word start: before any caption step, each image token is mapped (by ridge regression
on rendered clips) to the sum of the word embeddings of what it shows, so that the language model sees
words in the image ("small red circle"; nothing for the background) and only has to learn to copy and
order them.

The Qwen build keeps its merger at this start. Trained in the caption stage (builds 7 and 8), its
tokens grew from a median norm of 0.21 to 74 in 100 steps (17 even at lr 2e-5), against 3.15 for a
word embedding: every input of its last linear is positive after the GELU, so AdamW's steps add up
in every row. Tokens that large swamp the sequence, and the captions' colours fell to 0.35-0.40
(docs/toyworld.md, build 9). The start's output lies in the span of its target words, so with only
the things' words it passes on none of the tower's motion (a probe of direction: 0.986 at the tower,
0.458 after the start, the commonest class's rate). `motion` adds the words of what each thing did
between the pair's frames ("moves left", "getting bigger"), with their part in the object words' span
removed: added as they are, at half weight, they cost objects -0.093 [-0.167, -0.020].
"""
from __future__ import annotations

import torch

from .family import find_module, layout

WORD_SEEDS = 900_000     # offset by seed * 1e6: the tower's 40 held-out clips, which it never trained on
CLIPS = 150

# GELU is close to the identity above about 3 and cuts what is below 0. The merger's first linear
# starts as the identity lifted by this much, so the features pass its GELU whole (build 8).
MERGER_LIFT = 4.0


def word_vector(lm, words: str) -> torch.Tensor:
    ids = lm.tokenizer.encode(" " + words, add_special_tokens=False)
    return find_module(lm, "embed_tokens").weight[ids].float().sum(0)   # the rows only: the whole table is 28 M


def ridge(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The (out, in) weight that maps rows of x closest to rows of y, ridge-regularised."""
    gram = x.T @ x + 1e-2 * len(x) * torch.eye(x.shape[1])
    return torch.linalg.solve(gram, x.T @ y).T


def word_targets(vectors: list[torch.Tensor], shares) -> torch.Tensor:
    """Per image token: the sum of the things' word vectors, each by the share of the token it covers
    (a quarter or more counts in full)."""
    target = torch.zeros(len(shares), vectors[0].shape[0])
    for k, vector in enumerate(vectors):
        share = torch.from_numpy(shares[:, k]).float()
        target += share[:, None].clamp(max=0.25) * 4 * vector
    return target


def thing_words(thing: dict) -> str:
    return f"{thing['size']} {thing['color']} {thing['shape']}"


# What a thing did between a pair's frames, in the captions' words (sight_qwen.thing_targets' columns)
DIRECTION_WORDS = {"still": "stays still", "left": "moves left", "right": "moves right", "up": "moves up",
                   "down": "moves down"}
SIZE_CHANGE_WORDS = {"grew": "getting bigger", "shrank": "getting smaller"}


def motion_words(targets) -> str:
    """The words of one thing's motion in one pair (a row of sight_qwen.thing_targets); "" where the
    thing is not seen in both frames."""
    from .motion import DIRECTIONS
    from .sight_qwen import IGNORE, KEYS, SIZE_CHANGES
    row = dict(zip(KEYS, (int(v) for v in targets)))
    if row["direction"] == IGNORE:
        return ""
    words = [DIRECTION_WORDS[DIRECTIONS[row["direction"]]]]
    if row["size_change"] != IGNORE and SIZE_CHANGES[row["size_change"]] in SIZE_CHANGE_WORDS:
        words.append(SIZE_CHANGE_WORDS[SIZE_CHANGES[row["size_change"]]])
    if row["turned"] == 1:
        words.append("rotates")
    if row["touches"] == 1:
        words.append("touches")
    return " ".join(words)


def object_basis(lm) -> torch.Tensor:
    """Orthonormal rows spanning the embeddings of every size, colour and shape word's tokens: what the
    word start says about things."""
    from . import world
    from .sight import COLORS, SIZES
    ids = {i for w in (*SIZES, *COLORS, *world.SHAPES) for i in lm.tokenizer.encode(" " + w, add_special_tokens=False)}
    rows = find_module(lm, "embed_tokens").weight[sorted(ids)].float()
    return torch.linalg.qr(rows.T).Q.T


def off_objects(vector: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """`vector` without its part in the object words' span, rescaled to its own norm: motion words
    that cannot be read as a size, colour or shape (left in that span, at half weight, they cost
    objects -0.093)."""
    rest = vector - basis.T @ (basis @ vector)
    return rest * (vector.norm() / rest.norm().clamp(min=1e-6))


@torch.no_grad()
def connector_from_words(lm, seed: int, num_frames: int, clips: int = CLIPS, motion: float = 0.0) -> None:
    """SmolVLM's connector (one linear over a 4 x 4 pixel shuffle of patches) set to the ridge
    regression from a token's features to the words of what it shows."""
    if lm.family.name == "qwen2_5_vl":
        return merger_from_words(lm, seed, num_frames, clips, motion)
    if motion:
        raise ValueError("motion words in the word start need the qwen2_5_vl family (its tower sees pairs of frames)")
    from ..frames import uniform_indices
    from . import sight, world
    from .base import SCALE_FACTOR, VISION
    from .motion import token_shares
    tower, connector = find_module(lm, "vision_model"), find_module(lm, "connector")
    side = VISION["image_size"] // VISION["patch_size"] // SCALE_FACTOR   # tokens per frame side
    xs, ys = [], []
    for i in range(clips):
        clip = world.render(seed * 1_000_000 + WORD_SEEDS + i, labels=True)
        ids = uniform_indices(len(clip.frames), num_frames)
        feats = tower(pixel_values=sight.pixels(clip.frames[ids]).to(lm.model.dtype)).last_hidden_state
        xs.append(connector.pixel_shuffle(feats, SCALE_FACTOR).float().flatten(0, 1))
        shares = token_shares(clip.labels[ids], side, len(clip.things)).reshape(len(ids) * side * side, -1)
        ys.append(word_targets([word_vector(lm, thing_words(t)) for t in clip.things], shares))
    proj = connector.modality_projection.proj
    proj.weight.copy_(ridge(torch.cat(xs), torch.cat(ys)).to(proj.weight.dtype))


@torch.no_grad()
def merger_from_words(lm, seed: int, num_frames: int, clips: int = CLIPS, motion: float = 0.0) -> None:
    """Qwen's merger (norm, linear, GELU, linear over a 4 x 4 block of two-frame patches): its first
    linear starts as the identity plus MERGER_LIFT, and its last is the ridge regression (with an
    intercept) from the block's features after the GELU to the words of what the block shows over
    its pair of frames."""
    from ..frames import uniform_indices
    from . import sight_qwen, world
    from .motion import token_shares
    lay = layout("qwen2_5_vl")
    tower = find_module(lm, lay.tower)
    merger = tower.merger
    first, last = merger.mlp[0], merger.mlp[2]
    first.weight.copy_(torch.eye(first.weight.shape[0], dtype=first.weight.dtype))
    first.bias.fill_(MERGER_LIFT)
    basis = object_basis(lm) if motion else None
    xs, ys = [], []
    for i in range(clips):
        clip = world.render(seed * 1_000_000 + WORD_SEEDS + i, labels=True)
        ids = uniform_indices(len(clip.frames), num_frames)
        pixel_values, grid = sight_qwen.patchify(clip.frames[ids])
        h = tower(pixel_values.to(lm.model.dtype), grid_thw=grid).last_hidden_state
        xs.append(merger.mlp[1](first(merger.ln_q(h).view(-1, merger.hidden_size))).float())
        shares = token_shares(clip.labels[ids], lay.side, len(clip.things))      # (T, 16, things)
        shares = shares.reshape(len(ids) // 2, 2, lay.side ** 2, -1).mean(1).reshape(-1, len(clip.things))
        target = word_targets([word_vector(lm, thing_words(t)) for t in clip.things], shares)
        if motion:
            per_pair = shares.reshape(len(ids) // 2, lay.side ** 2, -1)
            for pair in range(len(ids) // 2):
                moved = sight_qwen.thing_targets(clip, ids[2 * pair], ids[2 * pair + 1])
                vectors = [off_objects(word_vector(lm, words), basis) if words else torch.zeros_like(target[0])
                           for words in map(motion_words, moved)]
                tokens = slice(pair * lay.side ** 2, (pair + 1) * lay.side ** 2)
                target[tokens] += motion * word_targets(vectors, per_pair[pair])
        ys.append(target)
    x = torch.cat(xs)
    weight = ridge(torch.cat([x, torch.ones(len(x), 1)], 1), torch.cat(ys))
    last.weight.copy_(weight[:, :-1].to(last.weight.dtype))
    last.bias.copy_(weight[:, -1].to(last.bias.dtype))
