"""The rationale-truth report: every RB-FT arm is paired with the truth of the rationales its Stage I
trained on and compared with the SFT of the same settings, seeds and test clips, from whatever runs
have finished."""
from dataclasses import replace

import pytest

from rbft import cli, rationale_import
from rbft.config import ExperimentConfig, TrainConfig, to_dict
from rbft.data import ingest
from rbft.project import configure, open_project
from rbft.recipes import truth_curve
from rbft.toyworld import testbed

BUDGET = ExperimentConfig(stage1=TrainConfig(max_steps=90, batch_size=2), stage2=TrainConfig(max_steps=90, batch_size=2))


@pytest.fixture(scope="module")
def floor(tmp_path_factory):
    """A floor-task project with the oracle sets at p = 0 and p = 1 imported."""
    root = tmp_path_factory.mktemp("truth-curve")
    manifest = testbed.build_task("floor", root / "floor", train=3, val=1, test=4)
    store = open_project(root / "project")
    configure(store, "floor", testbed.TASKS["floor"].classes)
    ingest(store, manifest)
    for p in ("p0", "p1"):
        rationale_import.import_rationales(store, root / "floor" / f"rationales_oracle_{p}.csv")
    return store


def finished_run(store, arm: str, seed: int, right: int, cfg: ExperimentConfig = BUDGET, rationales: str = "",
                 seconds_per_step: float = 2.0) -> None:
    """A finished run of `arm` whose first `right` test clips are predicted right, the rest wrong."""
    cfg = replace(cfg, arms=[arm], rationales=rationales, seeds=[seed])
    run_id = store.start_run(arm, seed, to_dict(cfg), "unused", "exp-" + (rationales or "main"),
                             run_id=f"{rationales or 'main'}/{arm}/s{seed}/{cfg.stage2.max_steps}")
    classes = store.labels()
    rows = []
    for i, v in enumerate(store.videos(split="test")):
        wrong = next(c for c in classes if c != v["label"])
        rows.append({"video_id": v["id"], "label": v["label"], "pred": v["label"] if i < right else wrong,
                     "scores": {}, "rationale": None})
    store.save_predictions(run_id, rows)
    store.finish_run(run_id, {"total_steps": cfg.stage1.max_steps + cfg.stage2.max_steps,
                              "stages": {"sft": {"seconds_per_step": seconds_per_step}}})


def test_each_rbft_arm_stands_beside_its_rationales_truth_and_against_sft(floor, tmp_path):
    for seed in (0, 1):
        finished_run(floor, "sft", seed, right=6)
        finished_run(floor, "sft_total", seed, right=9)
        finished_run(floor, "rbft", seed, right=12, rationales="import:oracle_p0")
        finished_run(floor, "rbft", seed, right=3, rationales="import:oracle_p1")
    finished_run(floor, "sft", 0, right=0, cfg=replace(BUDGET, stage2=TrainConfig(max_steps=30, batch_size=2)))
    rows = {r["rationales"] or r["arm"]: r for r in truth_curve.rows(floor, "floor")}
    assert set(rows) == {"sft", "sft_total", "import:oracle_p0", "import:oracle_p1"}   # another budget's SFT is left out
    assert rows["sft"]["accuracy"] == pytest.approx(0.5) and rows["sft"]["seeds"] == [0, 1]
    true, false = rows["import:oracle_p0"], rows["import:oracle_p1"]
    assert true["event_precision"] == 1.0 and false["event_precision"] == 0.0
    assert true["against_sft"]["difference"] == pytest.approx(0.5) and true["against_sft"]["resolved"]
    assert false["against_sft"]["difference"] == pytest.approx(-0.25) and false["against_sft"]["seeds"] == 2
    # and against SFT given RB-FT's whole budget (Stage I + Stage II steps), paired the same way
    assert true["against_sft_total"]["difference"] == pytest.approx(0.25)
    assert false["against_sft_total"]["difference"] == pytest.approx(-0.5) and false["against_sft_total"]["resolved"]
    assert rows["sft_total"]["against_sft_total"] is None and rows["sft"]["against_sft_total"] is None
    assert true["low"] <= true["accuracy"] == 1.0 <= true["high"]
    # each run on its own: its accuracy, and the clips it gave each class (every class, 0 where none)
    assert true["by_seed"][1] == {"accuracy": 1.0, "predicted": dict.fromkeys(floor.labels(), 4)}
    assert false["by_seed"][0]["accuracy"] == 0.25
    assert set(false["by_seed"][0]["predicted"]) == set(floor.labels())
    assert sum(false["by_seed"][0]["predicted"].values()) == 12
    table = truth_curve.write(floor, "floor", tmp_path / "out")
    assert len(table) == 4
    text = (tmp_path / "out" / "truth_curve.md").read_text()
    assert "import:oracle_p0 | 1.000 | 1.000 | 0, 1 | 180 | 2.0 | 1.000" in text and "+0.500" in text
    assert "minus SFT with the total budget" in text and "| -0.500 [" in text
    assert "| rbft | import:oracle_p0 | 1 | 1.000 | 4 | 4 | 4 |" in text
    narrowest = min((r["against_sft"]["high"] - r["against_sft"]["low"]) / 2 for r in table if r["against_sft"])
    assert f"detects 4 times in 5 is about ±{narrowest * 2.8016 / 1.96:.3f}" in text   # (1.96 + 0.84) SE
    for png in ("truth_curve.png", "learning_curves.png"):
        assert (tmp_path / "out" / png).read_bytes()[:4] == b"\x89PNG"


def test_the_truth_command_writes_the_curve_and_says_without_sft_there_is_none(tmp_path, capsys):
    store = open_project(tmp_path / "empty")
    configure(store, "floor", testbed.TASKS["floor"].classes)
    with pytest.raises(ValueError, match="no SFT run"):
        truth_curve.rows(store, "floor")
    manifest = testbed.build_task("floor", tmp_path / "floor", train=2, val=0, test=2)
    ingest(store, manifest)
    finished_run(store, "sft", 0, right=3)
    cli.main(["truth", "--project", str(store.root), "--task", "floor", "--curve", str(tmp_path / "curve")])
    assert "(baseline)" in capsys.readouterr().out
    assert (tmp_path / "curve" / "truth_curve.png").exists()


def test_a_run_recorded_as_the_same_as_another_has_that_runs_learning_curve(floor):
    """SFT at N steps recorded from SFT with the total budget of N (`same_as`) is drawn with the
    validation curve that run measured, not left out of the figure."""
    from rbft.events import Event
    finished_run(floor, "sft_total", 5, right=6)
    source = "main/sft_total/s5/90"
    sink = floor.event_sink(source)
    for step, acc in ((30, 0.4), (60, 0.5)):
        sink(Event("eval", "sft_total", done=step, total=60, data={"accuracy": acc}))
    sink(Event("eval", "sft_total/test", done=1, total=1, data={"accuracy": 0.9}))   # not a curve point
    copy = floor.start_run("sft", 5, to_dict(BUDGET), "unused", "exp-copy", run_id="copy/sft/s5")
    floor.finish_run(copy, {"same_as": source})
    assert truth_curve.curve_points(floor, floor.run(source)) == [(30, 0.4), (60, 0.5)]
    assert truth_curve.curve_points(floor, floor.run(copy)) == [(30, 0.4), (60, 0.5)]


def test_an_arm_two_experiments_ran_on_one_seed_counts_once():
    runs = [{"id": f"exp-{e}/zero_shot/s0", "arm": "zero_shot", "seed": 0, "config": {}} for e in "ab"]
    runs.append({"id": "exp-a/rbft/s0", "arm": "rbft", "seed": 0, "config": {"rationales": "import:oracle_p0"}})
    groups = truth_curve.arm_groups(runs)
    assert [r["id"] for r in groups[("zero_shot", "")]] == ["exp-a/zero_shot/s0"]
    assert set(groups) == {("zero_shot", ""), ("rbft", "import:oracle_p0")}
