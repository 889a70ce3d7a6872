"""Where does the Qwen-family toy-world build lose the things' colours? Linear probes of colour and
shape per image token (a 4 x 4 block of two-frame patches), at each place a token passes through:
the tower's output, after the merger's norm, the merger's output after its word start, the model's
own video features (processor and all), and the language model's layers.

    python benchmark/toyworld-qwen/trace_colour.py WORK [TOWER] [--adapter] [--decoded]

WORK is a build folder (its base, its sight/ tower); TOWER a stage-0 checkpoint's model.safetensors
instead of the finished tower. With --adapter, the caption stage's merger and LoRA are loaded too;
with --decoded, each clip goes through a webm file first, as the caption stage's clips do.
Prints JSON: per place, probe accuracy on held-out clips beside the commonest class's rate, and the
word start's own read-out (the colour word nearest the token, no probe).
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch

from rbft import models
from rbft.config import FrameConfig, ModelConfig
from rbft.frames import Clip, uniform_indices
from rbft.toyworld import build as tb
from rbft.toyworld import sight_qwen, world
from rbft.toyworld.family import find_module
from rbft.toyworld.motion import token_shares
from rbft.toyworld.sight import COLORS
from rbft.toyworld.word_start import merger_from_words, word_vector

work = Path(sys.argv[1])
tower_file = Path(sys.argv[2]) if len(sys.argv) > 2 and not sys.argv[2].startswith("--") else None
with_adapter = "--adapter" in sys.argv
decoded = "--decoded" in sys.argv     # the frames as the caption stage gets them: written to webm, decoded
CLIPS, FIRST = 160, 800_000            # the caption evaluation's seeds: never trained on, not the word fit's
LAYERS = (0, 2, 5, 10, 20)

lm = models.load(ModelConfig(model=str(work / "base"), quantization="none", dtype="auto"))
if tower_file:
    from safetensors.torch import load_file
    state = {k[len("visual."):]: v for k, v in load_file(str(tower_file)).items() if k.startswith("visual.")}
    tower = find_module(lm, "visual")
    missing, unexpected = tower.load_state_dict({k: v.to(lm.dtype) for k, v in state.items()}, strict=False)
    assert not unexpected and all(k.startswith("merger.") for k in missing), (missing, unexpected)
else:
    tb.load_vision(lm, work / "sight" / tb.VISION_FILE)
if with_adapter:
    from peft import PeftModel
    tb.load_connector(lm, work / "align" / tb.CONNECTOR_FILE)
    lm.model = PeftModel.from_pretrained(lm.model, str(work / "run" / "adapter")).merge_and_unload()
else:
    merger_from_words(lm, 0, 8)
lm.model.eval()
tower = find_module(lm, "visual")
merger = tower.merger
colour_words = torch.stack([word_vector(lm, c) for c in COLORS])
frames = FrameConfig(8, 128)

rows = {k: [] for k in ["tower_mean", "after_ln_q", "merger", "video_features"] + [f"layer_{i}" for i in LAYERS]}
truth, clip_of, word_pick = [], [], []
hidden = {}
text = find_module(lm, lm.family.text_module)
hooks = [text.layers[i].register_forward_hook(lambda m, a, o, i=i: hidden.__setitem__(i, o[0] if isinstance(o, tuple) else o))
         for i in LAYERS]
video_id = lm.model.config.video_token_id
max_diff = 0.0
with torch.no_grad():
    for n in range(CLIPS):
        clip = world.render(FIRST + n, labels=True)
        ids = uniform_indices(len(clip.frames), 8)
        shares = token_shares(clip.labels[ids], 4, len(clip.things))
        shares = shares.reshape(4, 2, 16, -1).mean(1).reshape(64, -1)           # per pair, as the word fit
        which = np.where(shares.max(-1) >= 0.25, shares.argmax(-1), -1)
        on = which >= 0
        if not on.any():
            continue
        if decoded:
            import tempfile

            from rbft.frames import sample_frames
            from rbft.synthetic import write_video
            with tempfile.TemporaryDirectory() as tmp:
                path = write_video(Path(tmp) / "clip.webm", clip.frames[..., ::-1], fps=clip.fps)
                got = sample_frames(path, frames)
            assert list(got.indices) == list(ids), (got.indices, ids)
            clip.frames[ids] = got.frames
        pv, grid = sight_qwen.patchify(clip.frames[ids])
        h = tower(pv.to(lm.dtype), grid_thw=grid).last_hidden_state.float()        # (1024, 96)
        blocks = h.view(64, 16, -1)
        normed = merger.ln_q(h.to(lm.dtype)).float().view(64, -1)
        merged = merger(h.to(lm.dtype)).float()
        seen = Clip(clip.frames[ids], clip.fps, len(clip.frames), list(ids))
        item = models.encode(lm, tb.DESCRIBE, seen, frames)
        batch = models.to_model(lm, models.collate([item], lm.tokenizer.pad_token_id))
        feats = lm.model.model.get_video_features(batch["pixel_values_videos"], batch["video_grid_thw"])
        feats = (feats.pooler_output if hasattr(feats, "pooler_output") else feats)
        feats = torch.cat(list(feats)) if isinstance(feats, (list, tuple)) else feats
        max_diff = max(max_diff, float((feats.float() - merged).abs().max()))
        lm.model(**batch)
        image = batch["input_ids"][0] == video_id
        rows["tower_mean"].append(blocks.mean(1)[on])
        rows["after_ln_q"].append(normed[on])
        rows["merger"].append(merged[on])
        rows["video_features"].append(feats.float()[on])
        for i in LAYERS:
            rows[f"layer_{i}"].append(hidden[i][0][image].float()[on])
        for k in which[on]:
            t = clip.things[k]
            truth.append((COLORS.index(t["color"]), world.SHAPES.index(t["shape"])))
        clip_of += [n] * int(on.sum())
        word_pick.append((merged[on] @ colour_words.T).argmax(-1))
for hk in hooks:
    hk.remove()

truth = torch.tensor(truth)
clip_of = torch.tensor(clip_of)
train, test = clip_of < CLIPS * 3 // 4, clip_of >= CLIPS * 3 // 4


def probe(x: torch.Tensor, y: torch.Tensor, classes: int) -> float:
    """Ridge regression onto one-hot classes, standardised features, fitted on the first 3/4 of the clips."""
    mu, sd = x[train].mean(0), x[train].std(0) + 1e-6
    z = torch.cat([(x - mu) / sd, torch.ones(len(x), 1)], 1)
    onehot = torch.nn.functional.one_hot(y, classes).float()
    w = torch.linalg.solve(z[train].T @ z[train] + 1.0 * len(z[train]) * 0.01 * torch.eye(z.shape[1]),
                           z[train].T @ onehot[train])
    return round(float(((z[test] @ w).argmax(-1) == y[test]).float().mean()), 3)


report = {"work": str(work), "frames": "decoded from webm" if decoded else "rendered", "tower": str(tower_file or work / "sight" / tb.VISION_FILE),
          "merger": "caption stage's" if with_adapter else "word start", "dtype": str(lm.dtype),
          "tokens": len(truth), "test_tokens": int(test.sum()),
          "commonest": {"colour": round(float(torch.bincount(truth[test, 0]).max() / test.sum()), 3),
                        "shape": round(float(torch.bincount(truth[test, 1]).max() / test.sum()), 3)},
          "video_features_vs_merger_max_abs_diff": max_diff,
          "colour_word_nearest_merger_output": round(float((torch.cat(word_pick)[test] == truth[test, 0]).float().mean()), 3),
          "probes": {}}
for place, parts in rows.items():
    x = torch.cat(parts)
    report["probes"][place] = {"colour": probe(x, truth[:, 0], len(COLORS)),
                               "shape": probe(x, truth[:, 1], len(world.SHAPES)), "dims": x.shape[1]}
print(json.dumps(report, indent=2))
