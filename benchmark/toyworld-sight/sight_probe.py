"""A probe, not the build: why the vision tower sees colour but hardly shape. Short runs of the sight
pretraining (rbft.toyworld.sight's model, data and held-out measure) with one thing changed each,
on 2 CPU cores, scored on the same 40 held-out clips as the build. Results: probe.md beside this.

    BASE=WORK/base [PE_SCALE=0.5] python sight_probe.py VARIANT STEPS [LEARNING_RATE]

VARIANT: control (the build's loss), fg (shape and size scored only where a thing is), noreg (fg,
no position or size regression), pooled (fg plus each thing's mean patch feature naming its shape
and size), diverse (16 clips x 2 frames a step instead of 4 x 8), patch8 (8 px patches, 4 clips x
2 frames), heads12 (12 attention heads of 16 dimensions), oneframe (32 clips x 1 frame a step), cnn (a small
convolutional net in the tower's place: the control for a prior the transformer lacks), cnn-norm (cnn with a group norm after
each downsampling),
mimetic (the control's loss; the transformer
starts from 2-D sine positions, PE_SCALE times, and local attention), overfit (fg on 8 clips, scored on them). BASE is a toy-world build's base folder
(`rbft.toyworld.base.assemble_base`); the tower starts from its random weights."""
import os, sys, time, math, numpy as np, torch
from torch import nn
import transformers as tf
from rbft.toyworld import sight, world
from rbft.toyworld.base import VISION
variant, steps = sys.argv[1], int(sys.argv[2])
lr = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-3
torch.manual_seed(0); torch.set_num_threads(2)
full = tf.AutoModelForImageTextToText.from_pretrained(os.environ["BASE"], dtype=torch.float32)
P = 16
if variant.startswith("patch8"):  # 8 px patches (256 a frame; a pixel shuffle of 4 keeps 16 tokens)
    P = 8
    full.model.vision_model = tf.models.smolvlm.modeling_smolvlm.SmolVLMVisionTransformer(tf.SmolVLMVisionConfig(**{**VISION, "patch_size": 8}))
if variant.startswith("heads12"):  # 12 attention heads of 16 dimensions instead of 3 of 64
    full.model.vision_model = tf.models.smolvlm.modeling_smolvlm.SmolVLMVisionTransformer(tf.SmolVLMVisionConfig(**{**VISION, "num_attention_heads": 12}))
if variant.startswith("cnn"):  # the control: a small convolutional net in the tower's place, 8 x 8 cells out
    from types import SimpleNamespace

    class CNNTower(nn.Module):
        def __init__(self):
            super().__init__()
            layers, c = [], 3
            for w in (32, 64, 96, VISION["hidden_size"]):   # 128 -> 64 -> 32 -> 16 -> 8
                norm = [nn.GroupNorm(8, w)] if variant == "cnn-norm" else []
                layers += [nn.Conv2d(c, w, 3, stride=2, padding=1), *norm, nn.GELU(), nn.Conv2d(w, w, 3, padding=1), nn.GELU()]
                c = w
            self.net = nn.Sequential(*layers)

        def forward(self, pixel_values):
            return SimpleNamespace(last_hidden_state=self.net(pixel_values).flatten(2).transpose(1, 2))
    full.model.vision_model = CNNTower()
if variant.startswith("mimetic"):  # same transformer, other starting weights: 2-D sine positions and
    # attention that starts local (Trockman & Kolter 2023: W_q W_k^T ~ a Z + b I, W_v W_o ~ a Z - b I)
    tower, d = full.model.vision_model, VISION["hidden_size"]
    n, q = VISION["image_size"] // P, VISION["hidden_size"] // 4
    ys, xs = torch.meshgrid(torch.arange(n, dtype=torch.float32), torch.arange(n, dtype=torch.float32), indexing="ij")
    freq = 1.0 / (16.0 ** (torch.arange(q, dtype=torch.float32) / q))
    pe = torch.cat([f(c.flatten()[:, None] * freq) for c in (ys, xs) for f in (torch.sin, torch.cos)], 1)
    with torch.no_grad():
        tower.embeddings.position_embedding.weight.copy_(pe * float(os.environ.get("PE_SCALE", "1.0")))
        heads = VISION["num_attention_heads"]; dh = d // heads
        for layer in tower.encoder.layers:
            at = layer.self_attn
            for h in range(heads):
                sl = slice(h * dh, (h + 1) * dh)
                u, s_, vt = torch.linalg.svd(0.7 * torch.randn(d, d) / d ** 0.5 + 0.7 * torch.eye(d))
                at.q_proj.weight[sl] = (u[:, :dh] * s_[:dh].sqrt()).T
                at.k_proj.weight[sl] = (vt[:dh].T * s_[:dh].sqrt()).T
                u, s_, vt = torch.linalg.svd(0.4 * torch.randn(d, d) / d ** 0.5 - 0.4 * torch.eye(d))
                at.v_proj.weight[sl] = (u[:, :dh] * s_[:dh].sqrt()).T
                at.out_proj.weight[:, sl] = vt[:dh].T * s_[:dh].sqrt()
            for lin in (at.q_proj, at.k_proj, at.v_proj, at.out_proj):
                lin.bias.zero_()
m = sight.SightPretraining(full.model.vision_model, VISION["hidden_size"])
pool_head = nn.Linear(VISION["hidden_size"], 3 + 2)
params = list(m.parameters()) + list(pool_head.parameters())
opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
warm = int(0.05 * steps)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: s / max(1, warm) if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, steps - warm))))
ds = sight.SightDataset(500000, steps * 4, 8, P)
per_step, nf = 4, 8
if variant.startswith("diverse"):  # as many images a step, from 4x the clips: 2 frames each
    per_step, nf = 16, 2
    ds = sight.SightDataset(500000, steps * per_step, nf, 16)
if variant.startswith("oneframe"):  # 32 clips x 1 frame a step
    per_step, nf = 32, 1
    ds = sight.SightDataset(500000, steps * per_step, nf, 16)
if variant.startswith("patch8"):
    per_step, nf = 4, 2
    ds = sight.SightDataset(500000, steps * per_step, nf, P)
if variant.startswith("overfit"):
    ds = [ds[i % 8] for i in range(8)] * (steps // 2 + 1)
a, b, c = len(sight.COLORS) + 1, len(world.SHAPES) + 1, len(sight.SIZES) + 1
ce = nn.functional.cross_entropy
t0 = time.time()
for step in range(steps):
    batch = sight.collate([ds[step * per_step + i] for i in range(per_step)])
    h = m.vision_model(pixel_values=batch["pixel_values"]).last_hidden_state
    out = m.head(h)
    color, shape, size = batch["color"], batch["shape"], batch["size"]
    on = color > 0
    loss = ce(out[..., :a].flatten(0, 1), color.flatten())
    if variant in ("control", "diverse", "patch8", "heads12", "oneframe", "cnn", "cnn-norm", "mimetic"):
        loss = loss + ce(out[..., a:a + b].flatten(0, 1), shape.flatten()) + ce(out[..., a + b:a + b + c].flatten(0, 1), size.flatten())
    else:  # shape and size only where a thing is (the colour says where)
        loss = loss + ce(out[..., a:a + b][on], shape[on]) + ce(out[..., a + b:a + b + c][on], size[on])
    pred = out[..., a + b + c:]
    if variant != "noreg":
      loss = loss + ((pred - batch["regress"]) ** 2 * batch["regress_mask"]).sum() / batch["regress_mask"].sum().clamp(min=1)
    if variant == "pooled":  # each thing in each frame: its patches' mean names its shape and size
        key = color * 10 + shape * 3 + size  # one id per thing within a clip's frame (colour+shape unique)
        feats, ys, zs = [], [], []
        for i in range(h.shape[0]):
            for k in torch.unique(key[i][on[i]]):
                sel = key[i] == k
                feats.append(h[i][sel].mean(0)); ys.append(shape[i][sel][0] - 1); zs.append(size[i][sel][0] - 1)
        if feats:
            po = pool_head(torch.stack(feats))
            loss = loss + ce(po[:, :3], torch.stack(ys)) + ce(po[:, 3:], torch.stack(zs))
    opt.zero_grad(); loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0); opt.step(); sched.step()
    if step % 50 == 0:
        print(step, round(loss.item(), 3), round(time.time() - t0, 1), flush=True)
print("seconds", round(time.time() - t0, 1), "per step", round((time.time() - t0) / steps, 3))
held = list(range(500000, 500008)) if variant.startswith("overfit") else list(range(900000, 900040))
print(variant, steps, lr, sight.sight_accuracy(m, held, 8, P))
