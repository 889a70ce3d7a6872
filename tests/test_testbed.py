"""The toy-world testbed: classes are rules over event logs, splits are fixed, and the truth of a
rationale is measured against the clip's log."""
import csv
import json

import pytest
from conftest import small_config

from rbft.recipes import experiment
from rbft.recipes.benchmark import run_benchmark
from rbft.toyworld import testbed
from rbft.toyworld import truth as tr
from rbft.toyworld import world as toyworld
from rbft.train import Example


def test_rules_follow_the_event_logs():
    labels = {"floor": set(), "order": set()}
    for seed in range(testbed.FIRST_SEED, testbed.FIRST_SEED + 400):
        events = toyworld.render(seed).events
        kinds = {e["event"] for e in events}
        floor = testbed.floor_rule(events)
        if floor == "incident":
            assert "touches" in kinds
        elif floor == "near miss":
            assert "passes close to" in kinds and "touches" not in kinds
        elif floor == "routine":
            assert not kinds & {"touches", "passes close to"}
        order = testbed.order_rule(events)
        if order:
            speed = min(e["t"] for e in events if e["event"] == "speeds up")
            touch = min(e["t"] for e in events if e["event"] == "touches")
            assert (order == "reckless") == (speed < touch)
        labels["floor"].add(floor)
        labels["order"].add(order)
    assert labels["floor"] == {None, "incident", "near miss", "routine"}
    assert labels["order"] == {None, "reckless", "fleeing"}


def test_class_names_never_appear_in_captions():
    names = [c for task in testbed.TASKS.values() for c in task.classes]
    for seed in range(testbed.FIRST_SEED, testbed.FIRST_SEED + 300):
        text = toyworld.caption(toyworld.render(seed), seed).lower()
        assert not [n for n in names if n in text], text


def test_a_task_folder_has_balanced_classes_fixed_splits_and_its_descriptions(tmp_path):
    manifest = testbed.build_task("order", tmp_path / "order", train=3, val=1, test=2)
    rows = list(csv.DictReader(open(manifest)))
    assert len(rows) == 12
    for label in ("reckless", "fleeing"):
        splits = [r["split"] for r in rows if r["label"] == label]
        assert splits.count("train") == 3 and splits.count("val") == 1 and splits.count("test") == 2
    for r in rows:  # each file's stem renders the clip whose log gives its label
        seed = int(r["path"].split("/")[1].split(".")[0])
        assert testbed.order_rule(toyworld.render(seed).events) == r["label"]
        assert (tmp_path / "order" / r["path"]).stat().st_size > 0
    meta = json.loads((tmp_path / "order" / "project.json").read_text())
    assert meta["temporal"] and set(meta["classes"]) == {"reckless", "fleeing"}


@pytest.mark.slow  # renders and scores many clips
def test_true_captions_are_true_rationales_and_wrong_ones_are_not():
    rows, wrong = [], []
    for seed in range(testbed.FIRST_SEED, testbed.FIRST_SEED + 300):
        clip = toyworld.render(seed)
        label = testbed.floor_rule(clip.events)
        if label is None:
            continue
        text = toyworld.caption(clip, seed)
        rows.append({"text": text, "label": label, "seed": seed})
        other = next(s for s in range(seed + 1, seed + 50) if testbed.floor_rule(toyworld.render(s).events)
                     not in (None, label))
        wrong.append({"text": toyworld.caption(toyworld.render(other), other), "label": label, "seed": seed})
    truth = tr.rationale_truth("floor", rows)
    assert truth["label_consistent"] == 1.0 and truth["event_precision"] == 1.0
    assert truth["hallucination_rate"] == 0.0
    lies = tr.rationale_truth("floor", wrong)  # another clip's caption: wrong events, wrong class
    assert lies["label_consistent"] == 0.0 and lies["event_precision"] < 0.3


def test_joint_examples_mix_the_objectives_by_weight():
    labels = [Example({}, "classify", f"l{i}") for i in range(10)]
    rationales = [Example({}, "describe", f"r{i}") for i in range(10)]
    for weight in (0.25, 0.5, 0.8):
        mixed = experiment.joint_examples(labels, rationales, weight)
        share = sum(e.prompt == "describe" for e in mixed) / len(mixed)
        assert abs(share - weight) < 0.05
        assert {e.answer for e in mixed} >= {e.answer for e in labels + rationales}  # none left out


@pytest.mark.slow  # a benchmark run with the joint arm
def test_benchmark_reads_the_task_description_and_runs_the_joint_arm(tmp_path, tiny):
    manifest = testbed.build_task("floor", tmp_path / "floor", train=2, val=1, test=1)
    cfg = small_config(tiny("smolvlm"), arms=["sft", "rbft_joint"])
    oracle_file = tmp_path / "floor" / "rationales_oracle_p0.csv"
    result = run_benchmark(manifest, tmp_path / "project", cfg, tmp_path / "out", rationale_files=[oracle_file])
    from rbft.project import domain, open_project
    store = open_project(tmp_path / "project")
    assert domain(store) == testbed.TASKS["floor"].domain
    assert result["split"] == {"train": 6, "val": 3, "test": 3}
    runs = {r["arm"]: r for r in result["experiments"]["main"]["runs"]}
    assert runs["rbft_joint"]["status"] == "done"
    assert runs["rbft_joint"]["metrics"]["total_steps"] == 6  # Stage I + Stage II's budget in one stage
    from rbft.export import run_adapter
    assert run_adapter(store, runs["rbft_joint"]["id"]).parent.name == "joint"  # predict/export find it
    rows = tr.truth_report(store, "floor")
    assert rows and rows[0]["rationales"] == 6
    # RB-FT on the oracle file ran beside the arms, and the report holds its truth and its paired difference
    oracle_runs = result["experiments"]["rbft on import:oracle_p0"]["runs"]
    assert [r["status"] for r in oracle_runs] == ["done"]
    assert oracle_runs[0]["id"].endswith("/rbft/s0")
    sets = {s["model"]: s for s in result["rationale_sets"]}
    assert sets["import:oracle_p0"]["event_precision"] == 1.0 and sets["import:oracle_p0"]["rationales"] == 6
    assert {"rbft_joint", "rbft on import:oracle_p0"} <= set(result["against_sft"])
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Against direct SFT (paired" in report and "| rbft on import:oracle_p0 |" in report
    assert "| import:oracle_p0 | " in report and "event precision" in report
