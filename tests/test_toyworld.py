"""The toy world's ground truth is exact: every logged event is true of the rendered trajectory,
the same seed gives the same clip, and captions follow the log in temporal order."""
import math

import numpy as np
import pytest

from rbft.toyworld import world as tw

SEEDS = range(40)


@pytest.mark.parametrize("seed", [0, 7, 23])
def test_same_seed_same_clip(seed):
    a, b = tw.render(seed), tw.render(seed)
    assert np.array_equal(a.frames, b.frames) and a.events == b.events
    assert a.frames.shape == (16, 128, 128, 3) and a.frames.dtype == np.uint8


def test_every_event_is_true_of_the_trajectory():
    kinds = set()
    for seed in SEEDS:
        clip = tw.render(seed)
        for e in clip.events:
            kinds.add(e["event"])
            x, y, r, visible = clip.tracks[e["object"]][e["t"]]
            if e["event"] == "bounces":
                edge = {"left": x - r, "right": 1 - x - r, "top": y - r, "bottom": 1 - y - r}[e["wall"]]
                assert edge < 0.02, (seed, e)
            if e["event"] == "touches":
                ox, oy, orad, ovis = clip.tracks[e["other"]][e["t"]]
                assert visible and ovis and math.hypot(x - ox, y - oy) <= r + orad + 1e-9, (seed, e)
            if e["event"] == "passes close to":
                gaps = [math.hypot(a[0] - b[0], a[1] - b[1]) - a[2] - b[2]
                        for a, b in zip(clip.tracks[e["object"]], clip.tracks[e["other"]]) if a[3] and b[3]]
                assert min(gaps) > 0, (seed, e)  # close, but never touching
            if e["event"] == "disappears":
                assert not any(v for *_, v in clip.tracks[e["object"]][e["t"]:]), (seed, e)
            if e["event"] == "appears":
                assert not any(v for *_, v in clip.tracks[e["object"]][:e["t"]]) and visible, (seed, e)
    assert {"bounces", "touches", "turns back", "speeds up", "appears", "disappears"} <= kinds


def test_captions_follow_the_log_in_temporal_order():
    for seed in SEEDS:
        clip = tw.render(seed)
        text = tw.caption(clip, seed)
        for t in {e["object"] for e in clip.events}:
            assert t in text
        times = sorted({e["t"] for e in clip.events})
        assert text.count(". ") + 1 == len(times)  # one sentence per moment, in order
        assert text.split(",")[0] in tw.OPENERS


def test_caption_scores_reward_truth_and_catch_hallucination():
    from rbft.toyworld import truth
    for seed in SEEDS:
        clip = tw.render(seed)
        s = truth.caption_scores(tw.caption(clip, seed + 1), clip.events)  # other phrasing, same facts
        assert (s["object_precision"], s["object_recall"], s["event_precision"], s["event_recall"]) == (1, 1, 1, 1)
        assert s["hallucinated"] == 0 and s["order_right"] == s["order_pairs"]
    clip = tw.render(3)
    names = {e["object"].split(" ", 2)[2] for e in clip.events}
    wrong = "A purple triangle bounces off the left wall. Then a white square disappears."
    s = truth.caption_scores(wrong, clip.events)
    assert s["event_precision"] == 0 and s["hallucinated"] >= 2 - len(names & {"purple triangle", "white square"})
    reversed_text = " ".join(reversed(tw.caption(clip, 3).split(". ")))
    if truth.caption_scores(tw.caption(clip, 3), clip.events)["order_pairs"]:
        assert truth.caption_scores(reversed_text, clip.events)["order_right"] < \
            truth.caption_scores(tw.caption(clip, 3), clip.events)["order_right"]


def test_event_kinds_are_scored_apart_from_the_things_they_happen_to():
    """A caption that tells what happens but to the wrong thing is told from one that sees nothing:
    what separates a miss of the eyes (objects) from a miss of motion (events)."""
    from rbft.toyworld import truth
    clip = tw.render(3)
    colors = {e["object"].split(" ")[2] for e in clip.events}
    other = next(c for c in ("red", "green", "blue", "yellow", "purple", "white") if c not in colors)
    recoloured = tw.caption(clip, 3)
    for c in colors:
        recoloured = recoloured.replace(f" {c} ", f" {other} ")
    s = truth.caption_scores(recoloured, clip.events)
    assert s["event_precision"] == 0 and s["event_recall"] == 0
    assert s["event_kind_precision"] == 1 and s["event_kind_recall"] == 1
    s = truth.caption_scores("Nothing moves.", clip.events)
    assert s["event_kind_precision"] == 0 and s["event_kind_recall"] == 0


def test_two_models_compare_clip_by_clip_with_an_interval():
    """Builds are ranked by a paired difference over the same held-out clips, not by two means: a
    model that tells the truth on half the clips beats one that never does, beyond the interval, and a
    model against itself is no result."""
    from rbft.toyworld.evaluation import paired_captions, score_captions
    seeds = [s for s in SEEDS if tw.render(s).events][:30]
    wrong = "A purple triangle bounces off the left wall. Then a white square disappears."
    half = score_captions(seeds, [tw.caption(tw.render(s), s) if i % 2 else wrong for i, s in enumerate(seeds)])
    never = score_captions(seeds, [wrong] * len(seeds))
    assert [r["seed"] for r in half["per_clip"]] == seeds and half["per_clip"][1]["event_precision"] == 1
    d = paired_captions(half, never)["event_precision"]
    assert d["resolved"] and 0 < d["low"] < d["difference"] < d["high"] <= 1
    assert abs(d["difference"] - (half["event_precision"] - never["event_precision"])) < 1e-9
    same = paired_captions(half, half)["event_recall"]
    assert same["difference"] == 0 and not same["resolved"]
    with pytest.raises(ValueError, match="share no clip"):
        paired_captions(half, score_captions([999], [wrong]))


# ---- sight across time: the targets the caption stage reads from the language model's middle layer

def _targets(seed):
    from rbft.frames import uniform_indices
    from rbft.toyworld import motion
    clip = tw.render(seed, labels=True)
    ids = uniform_indices(len(clip.frames), 8)
    return clip, ids, motion.token_targets(clip, ids, side=4)


def test_motion_targets_name_the_thing_each_token_shows_and_where_it_is():
    from rbft.toyworld import motion
    for seed in range(20):
        clip, ids, t = _targets(seed)
        classes, position = t["motion_classes"].numpy(), t["motion_position"].numpy()
        assert classes.shape == (8 * 16, 4)
        empty = classes[:, 0] == 0
        assert (classes[empty, 3] == -100).all() and (t["motion_events"].numpy()[empty] == 0).all()
        for i, f in enumerate(ids):
            for token in np.nonzero(~empty[i * 16:(i + 1) * 16])[0]:
                row = classes[i * 16 + token]
                thing = next(th for th in clip.things if motion.COLORS.index(th["color"]) + 1 == row[0]
                             and tw.SHAPES.index(th["shape"]) + 1 == row[1])
                x, y, r, seen = clip.tracks[f"the {thing['size']} {thing['color']} {thing['shape']}"][f]
                assert seen and motion.SIZES.index(thing["size"]) + 1 == row[2]
                assert np.allclose(position[i * 16 + token], (x * 4, y * 4, r * 4))
                # the token lies on the thing: its centre is within a token's reach of the region
                col, line = token % 4, token // 4
                assert abs(x * 4 - (col + 0.5)) < 0.5 + r * 4 and abs(y * 4 - (line + 0.5)) < 0.5 + r * 4


def test_motion_targets_follow_the_trajectory_and_the_event_log():
    """Direction since the previous seen frame, from the rendered track; each logged event on the
    tokens of its thing in the first seen frame at or after it, and nowhere else."""
    from rbft.toyworld import motion
    checked = set()
    for seed in range(60):
        clip, ids, t = _targets(seed)
        classes, events = t["motion_classes"].numpy(), t["motion_events"].numpy()
        for thing in clip.things:
            name = f"the {thing['size']} {thing['color']} {thing['shape']}"
            colour, shape = motion.COLORS.index(thing["color"]) + 1, tw.SHAPES.index(thing["shape"]) + 1
            for i, f in enumerate(ids):
                mine = np.nonzero((classes[i * 16:(i + 1) * 16, 0] == colour) &
                                  (classes[i * 16:(i + 1) * 16, 1] == shape))[0] + i * 16
                if not len(mine):
                    continue
                (x, y, *_), (px, py, _, was_seen) = clip.tracks[name][f], clip.tracks[name][ids[i - 1]]
                if i and was_seen:
                    assert (classes[mine, 3] == motion.DIRECTIONS.index(motion.direction(x - px, y - py))).all()
                    if thing["behaviour"] == "still":
                        assert (classes[mine, 3] == motion.DIRECTIONS.index("still")).all()
                else:
                    assert (classes[mine, 3] == -100).all()   # nothing seen before it to compare with
                before = ids[i - 1] if i else -1
                for j, kind in enumerate(motion.EVENTS):
                    if kind in motion.ONGOING:
                        continue
                    logged = any(e["object"] == name and e["event"] == kind and before < e["t"] <= f
                                 for e in clip.events)
                    assert (events[mine, j] == logged).all(), (seed, name, kind, f)
                    if logged:
                        checked.add(kind)
    assert {"bounces", "touches", "appears", "turns back", "speeds up"} <= checked


def test_the_motion_head_reads_the_residual_stream_whatever_its_scale():
    """SmolLM2's layer-10 states have norms near 135 with a few channels near 80: the read-out's loss
    and the gradient it sends into the model must not grow with that scale, or it drowns the caption
    loss (the first motion builds: gradient norms 10-30x the caption stage's, captions collapsed)."""
    import torch

    from rbft.toyworld import motion
    torch.manual_seed(0)
    clip, ids, t = _targets(3)
    n = len(t["motion_classes"])
    head = motion.MotionHead(64)
    state, grads = torch.randn(n, 64), []
    for scale in (1.0, 80.0):
        h = (state * scale).requires_grad_(True)
        loss = head.loss(h, t["motion_classes"], t["motion_events"], t["motion_position"])
        loss.backward()
        grads.append((loss.item(), (h.grad * scale).norm().item()))   # gradient w.r.t. the unscaled state
    (small, g_small), (large, g_large) = grads
    assert large == pytest.approx(small, rel=1e-3) and g_large == pytest.approx(g_small, rel=1e-2)


def test_a_rare_event_weighs_as_much_as_its_absence_over_the_data():
    """One clip a step, as the caption stage trains: an event on 20 tokens of 1,000, all in the first
    of 20 steps. Weighed by the data's pos_weight, its tokens push the read-out up as hard, summed
    over the steps, as the other 980 push it down; under the plain mean they are 1/49 of the push."""
    import torch

    from rbft.toyworld.motion import EVENTS, event_loss
    k = EVENTS.index("touches")
    steps = [torch.zeros(50, len(EVENTS)) for _ in range(20)]
    steps[0][:20, k] = 1
    pos_weight = torch.ones(len(EVENTS))
    pos_weight[k] = 980 / 20
    for weight, ratio in ((pos_weight, 1.0), (None, 20 / 980)):
        up = down = 0.0
        for targets in steps:
            logits = torch.zeros_like(targets, requires_grad=True)
            event_loss(logits, targets, weight).backward()
            g = logits.grad[:, k]
            up -= g[targets[:, k] > 0].sum().item()
            down += g[targets[:, k] == 0].sum().item()
        assert up / down == pytest.approx(ratio, rel=1e-4)
    silent = torch.full((50, len(EVENTS)), -6.0)   # a read-out that never fires
    assert event_loss(silent, steps[0]).item() < 0.3
    assert event_loss(silent, steps[0], pos_weight).item() > 5 * event_loss(silent, steps[0]).item()


def test_event_weights_balance_each_event_over_the_training_clips():
    """With the weights counted on a set of clips, a read-out that cannot tell (logits 0) is pushed
    up by each event's present tokens as hard as down by its absent ones, summed over those clips,
    for every event inside the cap; a rare event weighs more than a common one."""
    import torch

    from rbft.frames import uniform_indices
    from rbft.toyworld import motion, world
    seeds = range(40, 60)
    w = motion.event_pos_weight(seeds, 8)
    up, down = torch.zeros(len(motion.EVENTS)), torch.zeros(len(motion.EVENTS))
    for seed in seeds:   # one clip a step, as the caption stage trains
        clip = world.render(seed, labels=True)
        t = motion.token_targets(clip, uniform_indices(16, 8))
        events = t["motion_events"][t["motion_classes"][:, 0] > 0]
        logits = torch.zeros_like(events, requires_grad=True)
        motion.event_loss(logits, events, w).backward()
        n = len(events)   # the loss is a mean: undo it, so that steps of any size add up
        up -= (logits.grad * n * (events > 0)).sum(0)
        down += (logits.grad * n * (events == 0)).sum(0)
    assert (w >= 1).all() and (w <= 100).all()
    inside = (up > 0) & (w > 1) & (w < 100)
    assert inside.sum() >= 3
    assert torch.allclose(up[inside], down[inside], rtol=1e-4)
    assert w[motion.EVENTS.index("grows")] < w[motion.EVENTS.index("touches")]
