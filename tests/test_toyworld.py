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
