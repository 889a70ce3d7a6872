"""Grounding on the toy world: the share of the class token's visual attention on the things its label
depends on, checked against where the renderer's tracks put those things, and the report over an
experiment's arms."""
import json

import numpy as np
import pytest
from conftest import small_config

from rbft import cli
from rbft.attention import AttentionMap
from rbft.project import open_project
from rbft.recipes import grounding as report
from rbft.recipes.benchmark import run_benchmark
from rbft.toyworld import testbed, world
from rbft.toyworld.grounding import deciding_things, ground


def first_seed_of(label: str) -> int:
    seed = testbed.FIRST_SEED
    while testbed.floor_rule(world.render(seed).events) != label:
        seed += 1
    return seed


def test_the_things_that_touch_or_pass_close_decide_the_floor_class():
    incident = world.render(first_seed_of("incident")).events
    touch = next(e for e in incident if e["event"] == "touches")
    assert {touch["object"], touch["other"]} <= set(deciding_things("floor", incident))
    near = world.render(first_seed_of("near miss")).events
    close = next(e for e in near if e["event"] == "passes close to")
    assert deciding_things("floor", near) == sorted({close["object"], close["other"]})
    assert deciding_things("floor", world.render(first_seed_of("routine")).events) == []


def place_of(clip, name: str, frame: int, rows: int, cols: int) -> tuple[int, int]:
    """The token place of a thing's centre in a frame, from the renderer's tracks (not its pixel labels)."""
    x, y, _, visible = clip.tracks[name][frame]
    assert visible
    return min(int(y * rows), rows - 1), min(int(x * cols), cols - 1)


def empty_place(clip, frames: list[int], rows: int, cols: int) -> tuple[int, int]:
    """A place far from every thing in all those frames, from the tracks."""
    for r in range(rows):
        for c in range(cols):
            cy, cx = (r + 0.5) / rows, (c + 0.5) / cols
            if all(np.hypot(x - cx, y - cy) > radius + 0.75 / rows
                   for track in clip.tracks.values() for f in frames for x, y, radius, _ in [track[f]]):
                return r, c
    pytest.skip("no empty place in this clip")


@pytest.mark.parametrize("label", ["incident", "near miss"])
def test_attention_on_a_deciding_thing_counts_and_attention_on_the_floor_does_not(label):
    seed = first_seed_of(label)
    clip = world.render(seed, labels=True)
    name = deciding_things("floor", clip.events)[0]
    indices, rows, cols = [0, 2, 4, 6, 8, 10, 12, 14], 4, 4     # Qwen: 4 steps of two frames, 4 x 4 places
    frame = next(f for f in indices if clip.tracks[name][f][3])
    step = indices.index(frame) // 2

    def all_on(r, c):
        maps = np.zeros((4, rows, cols))
        maps[step, r, c] = 0.8
        return AttentionMap(maps, indices[::2], 0.8, [0.8], (1, 2), 1)

    on = ground(all_on(*place_of(clip, name, frame, rows, cols)), indices, seed, "floor")
    assert on.on_deciding == pytest.approx(1.0) and on.on_things == pytest.approx(1.0)
    assert on.visual_share == 0.8
    assert 0 < on.chance <= on.things_chance < 1
    off = ground(all_on(*empty_place(clip, indices[step * 2:step * 2 + 2], rows, cols)), indices, seed, "floor")
    assert off.on_deciding == 0.0 and off.on_things == 0.0
    even = ground(AttentionMap(np.full((4, rows, cols), 1 / 64), indices[::2], 1.0, [1.0], (1, 2), 1),
                  indices, seed, "floor")
    assert even.on_deciding == pytest.approx(even.chance)


def test_a_routine_clip_has_no_grounding():
    indices = list(range(0, 16, 2))
    flat = AttentionMap(np.full((4, 4, 4), 1 / 64), indices[::2], 1.0, [1.0], (1, 2), 1)
    assert ground(flat, indices, first_seed_of("routine"), "floor") is None


def test_the_report_pairs_each_arm_with_sft_and_keeps_each_runs_measures(tmp_path, tiny, monkeypatch, capsys):
    manifest = testbed.build_task("floor", tmp_path / "floor", train=2, val=1, test=2)
    cfg = small_config(tiny("qwen2_5_vl"), arms=["zero_shot", "sft"])
    run_benchmark(manifest, tmp_path / "project", cfg, tmp_path / "out")
    cli.main(["grounding", "--project", str(tmp_path / "project"), "--task", "floor", "--out", str(tmp_path / "g")])
    assert "| sft | - | 0 | 4 |" in capsys.readouterr().out        # the 4 test clips that touch or pass close
    table = {r["arm"]: r for r in json.loads((tmp_path / "g" / "grounding.json").read_text())}
    assert set(table) == {"zero_shot", "sft"}
    assert 0 <= table["sft"]["on_deciding"] <= 1 and 0 < table["sft"]["chance"] < 1
    d = table["zero_shot"]["on_deciding_against_sft"]
    assert d["clips"] == 4 and d["low"] <= d["difference"] <= d["high"]
    assert (tmp_path / "g" / "grounding.png").stat().st_size > 0
    # measured runs are read back, not measured again
    monkeypatch.setattr(report.models, "load", lambda *a, **k: pytest.fail("measured again"))
    again = {r["arm"]: r for r in report.rows(open_project(tmp_path / "project"), "floor", tmp_path / "g")}
    assert again["sft"]["on_deciding"] == table["sft"]["on_deciding"]
