"""Where a trained tower's shape goes wrong, on the build's 40 held-out sight clips: the confusion of
true and predicted shape per patch, accuracy by how much of the patch the thing covers, and by
majority vote over each thing's patches in a frame. Results: probe.md beside this.

    python shape_confusion.py WORK [WORK/sight/checkpoint-N]
"""
import sys, numpy as np, torch
from safetensors.torch import load_file
import transformers as tf
from rbft.toyworld import sight, world
from rbft.toyworld.base import VISION
from rbft.frames import uniform_indices
work = sys.argv[1]
ck = sys.argv[2] if len(sys.argv) > 2 else None
full = tf.AutoModelForImageTextToText.from_pretrained(work + "/base", dtype=torch.float32)
m = sight.SightPretraining(full.model.vision_model, VISION["hidden_size"])
import glob
if ck is None:
    ck = sorted(glob.glob(work + "/sight/checkpoint-*"), key=lambda s: int(s.split("-")[-1]))[-1]
m.load_state_dict(load_file(ck + "/model.safetensors"))
m.eval()
torch.set_num_threads(2)
a, b, c = len(sight.COLORS) + 1, len(world.SHAPES) + 1, len(sight.SIZES) + 1
P = 16
conf = np.zeros((4, 4), int)
bycov = {}
thing_right = thing_n = 0
per_size = {}
with torch.no_grad():
    for s in range(900000, 900040):
        clip = world.render(s, labels=True)
        ids = uniform_indices(len(clip.frames), 8)
        t = sight.patch_targets(clip, ids, P)
        out = m.head(m.vision_model(pixel_values=sight.pixels(clip.frames[ids])).last_hidden_state)
        ps = out[..., a:a + b].argmax(-1).numpy()
        lab = clip.labels[ids]
        T, H, W = lab.shape
        g = H // P
        cells = lab.reshape(T, g, P, g, P).transpose(0, 1, 3, 2, 4).reshape(T, g * g, -1)
        for k, th in enumerate(clip.things):
            cov = (cells == k + 1).mean(-1)
            true = world.SHAPES.index(th["shape"]) + 1
            for i in range(T):
                on = (t["shape"][i] == true) & (cov[i] > 0) & (t["color"][i] == sight.COLORS.index(th["color"]) + 1)
                if not on.any():
                    continue
                for j in np.nonzero(on)[0]:
                    conf[true, ps[i, j]] += 1
                    bucket = min(int(cov[i, j] * 4), 3)
                    r = bycov.setdefault(bucket, [0, 0]); r[0] += ps[i, j] == true; r[1] += 1
                votes = np.bincount(ps[i][on], minlength=4)[1:]
                ok = votes.argmax() + 1 == true
                thing_right += ok; thing_n += 1
                r = per_size.setdefault(th["size"], [0, 0]); r[0] += ok; r[1] += 1
print("confusion rows true (none, circle, square, triangle), cols predicted\n", conf)
print("patch accuracy by coverage quarter:", {k: round(v[0] / v[1], 3) for k, v in sorted(bycov.items())}, {k: v[1] for k, v in sorted(bycov.items())})
print("thing-frame majority vote accuracy:", round(thing_right / thing_n, 3), thing_n)
print("by size:", {k: round(v[0] / v[1], 3) for k, v in per_size.items()})
