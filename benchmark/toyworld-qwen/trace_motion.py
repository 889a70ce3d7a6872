"""Where does the shipped toy-world VLM lose motion? Linear probes per image token (a 4 x 4 block of
two-frame patches) of what the thing it shows is and did between its pair of frames: colour and shape,
which way it moved (still, left, right, up, down), whether it grew or shrank, at the tower's output,
the merger's output (the word start) and the language model's layers. Issue 33 asks for the read-out
per target kind, so that a miss can be traced to where it happens.

    PYTHONPATH=. python benchmark/toyworld-qwen/trace_motion.py [MODEL] [--word-start-motion W] > OUT.json

MODEL defaults to `toyworld` (the shipped parts, assembled). With --word-start-motion, the merger is
first set to a new word start that also says each thing's motion with weight W (`merger_from_words`,
as a build with `--word-start-motion W` starts its caption stage); the probes after the merger then
show what that start passes on (the layers' do not: the language model was trained on build 9's). Held-out clips (the caption evaluation's
seeds 800000+, which no stage trains on); probes fitted on the first 3/4 of the clips, scored on the
rest, each beside the rate of the commonest class on the scored tokens.
"""
import argparse
import json

import numpy as np
import torch

from rbft import models
from rbft.config import FrameConfig, ModelConfig
from rbft.frames import Clip, uniform_indices
from rbft.toyworld import build as tb
from rbft.toyworld import sight_qwen, world
from rbft.toyworld.family import find_module
from rbft.toyworld.motion import DIRECTIONS, token_shares
from rbft.toyworld.sight import COLORS

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("model", nargs="?", default="toyworld")
parser.add_argument("--word-start-motion", type=float, default=None)
args = parser.parse_args()
MODEL, motion = args.model, args.word_start_motion
CLIPS, FIRST = 160, 800_000
LAYERS = (0, 5, 10, 20)
TARGETS = {"colour": (0, len(COLORS)), "shape": (1, len(world.SHAPES)),
           "direction": (3, len(DIRECTIONS)), "size_change": (5, len(sight_qwen.SIZE_CHANGES))}

lm = models.load(ModelConfig(model=MODEL, quantization="none", dtype="auto"))
lm.model.eval()
if motion is not None:
    from rbft.toyworld.word_start import merger_from_words
    merger_from_words(lm, 0, 8, motion=motion)
tower = find_module(lm, "visual")
text = find_module(lm, lm.family.text_module)
hidden = {}
hooks = [text.layers[i].register_forward_hook(
    lambda m, a, o, i=i: hidden.__setitem__(i, o[0] if isinstance(o, tuple) else o)) for i in LAYERS]
video_id = lm.model.config.video_token_id
frames = FrameConfig(8, 128)
rows = {k: [] for k in ["tower_mean", "merger"] + [f"layer_{i}" for i in LAYERS]}
truth, clip_of = [], []
with torch.no_grad():
    for n in range(CLIPS):
        clip = world.render(FIRST + n, labels=True)
        ids = uniform_indices(len(clip.frames), 8)
        shares = token_shares(clip.labels[ids], 4, len(clip.things))
        shares = shares.reshape(4, 2, 16, -1).mean(1).reshape(64, -1)          # per pair of frames
        which = np.where(shares.max(-1) >= 0.25, shares.argmax(-1), -1)
        on = which >= 0
        if not on.any():
            continue
        pairs = [sight_qwen.thing_targets(clip, ids[2 * i], ids[2 * i + 1]) for i in range(4)]
        pv, grid = sight_qwen.patchify(clip.frames[ids])
        h = tower(pv.to(lm.dtype), grid_thw=grid).last_hidden_state
        rows["tower_mean"].append(h.float().view(64, 16, -1).mean(1)[on])
        rows["merger"].append(tower.merger(h).float()[on])
        item = models.encode(lm, tb.DESCRIBE, Clip(clip.frames[ids], clip.fps, len(clip.frames), list(ids)), frames)
        batch = models.to_model(lm, models.collate([item], lm.tokenizer.pad_token_id))
        lm.model(**batch)
        image = batch["input_ids"][0] == video_id
        for i in LAYERS:
            rows[f"layer_{i}"].append(hidden[i][0][image].float()[on])
        for token in np.flatnonzero(on):
            truth.append(pairs[token // 16][which[token]])
        clip_of += [n] * int(on.sum())
for hook in hooks:
    hook.remove()

truth = torch.from_numpy(np.stack(truth))
clip_of = torch.tensor(clip_of)
train, test = clip_of < CLIPS * 3 // 4, clip_of >= CLIPS * 3 // 4


def probe(x: torch.Tensor, column: int, classes: int) -> dict:
    """Ridge regression onto one-hot classes (standardised features), on the tokens where the target
    applies; accuracy on the held-out clips' tokens beside their commonest class's rate."""
    y = truth[:, column]
    fit, score = train & (y >= 0), test & (y >= 0)
    mu, sd = x[fit].mean(0), x[fit].std(0) + 1e-6
    z = torch.cat([(x - mu) / sd, torch.ones(len(x), 1)], 1)
    onehot = torch.nn.functional.one_hot(y.clamp(min=0), classes).float()
    w = torch.linalg.solve(z[fit].T @ z[fit] + 0.01 * int(fit.sum()) * torch.eye(z.shape[1]), z[fit].T @ onehot[fit])
    right = ((z[score] @ w).argmax(-1) == y[score]).float().mean()
    return {"accuracy": round(float(right), 3), "commonest": round(float(torch.bincount(y[score]).max() / score.sum()), 3),
            "tokens": int(score.sum())}


report = {"model": MODEL, "word_start_motion": motion, "dtype": str(lm.dtype), "clips": CLIPS, "first_seed": FIRST, "tokens": len(truth),
          "probes": {place: {name: probe(torch.cat(parts), *spec) for name, spec in TARGETS.items()}
                     for place, parts in rows.items()}}
print(json.dumps(report, indent=2))
