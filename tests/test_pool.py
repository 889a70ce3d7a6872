"""The pool: unlabelled videos imported as such, labelled by a run, reviewed most uncertain first,
accepted automatically above a precision measured on validation, exported, and trained on again."""
import csv
import json
from pathlib import Path

import pytest
from conftest import small_config

from rbft import pool
from rbft.cli import main as cli
from rbft.data import ingest
from rbft.recipes import experiment, report
from rbft.synthetic import render_clip, write_video


def pool_folder(root: Path, n: int = 4) -> tuple[Path, dict[str, str]]:
    """Clips at the folder's top level (no class subfolders) and their hidden true class."""
    truth = {}
    for i in range(n):
        motion = ("left", "right")[i % 2]
        write_video(root / f"clip_{i:02d}.mp4", render_clip(motion, 500 + i, 64, 16))
        truth[f"clip_{i:02d}.mp4"] = motion
    return root, truth


def test_unlabelled_videos_join_the_pool_with_the_same_per_file_errors(store, dataset, tmp_path):
    ingest(store, dataset)
    folder, _ = pool_folder(tmp_path / "unlabelled", 3)
    (folder / "zero_bytes.mp4").write_bytes(b"")
    refused = ingest(store, folder)   # without --pool a missing label is still an error
    assert not refused.added and "no label" in refused.errors[str(folder / "clip_00.mp4")]
    rep = ingest(store, folder, pool=True)
    assert len(rep.added) == len(rep.pooled) == 3 and "3 unlabelled, into the pool" in rep.summary()
    assert rep.errors[str(folder / "zero_bytes.mp4")] == "the file is empty (0 bytes)"
    manifest = tmp_path / "m.csv"
    write_video(tmp_path / "late.mp4", render_clip("left", 900, 64, 16))
    manifest.write_text("path,label\nlate.mp4,\n")
    assert len(ingest(store, manifest, pool=True).pooled) == 1
    assert len(store.videos(split="pool")) == 4 and all(v["label"] is None for v in store.videos(split="pool"))
    assert store.labels() == ["left", "right"]
    assert all(v["split"] != "pool" for v in store.videos())   # the labelled set is what it was


def _labelled_then_pool(store, dataset, tmp_path):
    ingest(store, dataset)
    folder, truth = pool_folder(tmp_path / "unlabelled", 4)
    ingest(store, folder, pool=True)
    cfg = small_config("tiny:smolvlm", arms=["sft"])
    name = experiment.run_experiment(store, cfg)
    return name, cfg, truth


def test_a_run_labels_the_pool_then_a_person_reviews_and_the_labels_go_out(store, dataset, tmp_path, tiny):
    name, cfg, truth = _labelled_then_pool(store, dataset, tmp_path)
    run_id = store.runs(name)[0]["id"]
    result = pool.label_pool(store, run_id, rationale=True, max_new_tokens=6)
    n_val = len(store.videos(split="val"))
    assert result["labelled"] == 4 + n_val and result["videos_per_min"] > 0
    assert pool.label_pool(store, run_id)["labelled"] == 0   # resumable: nothing labelled twice
    rows = store.pool_predictions(run_id)
    assert len(rows) == 4 and all(r["rationale"] for r in rows)
    for r in rows:
        assert sum(r["scores"].values()) == pytest.approx(1.0) and r["confidence"] == max(r["scores"].values())
    queue = pool.queue(store, run_id)
    assert [r["margin"] for r in queue] == sorted(r["margin"] for r in rows)   # most uncertain first
    first, second = queue[0], queue[1]
    other = next(c for c in store.labels() if c != first["pred"])
    pool.accept(store, first["video_id"], other, run_id)        # corrected by a person
    store.skip(second["video_id"])
    queue = pool.queue(store, run_id)
    assert len(queue) == 3 and queue[-1]["video_id"] == second["video_id"]   # skipped: to the end
    with pytest.raises(ValueError, match="not a class"):
        pool.accept(store, queue[0]["video_id"], "sideways", run_id)
    video = store.video(first["video_id"])
    assert (video["label"], video["split"], video["label_source"], video["label_run"]) == (other, "train", "person", run_id)
    assert store.label_sources("train")["person"] == 1

    files = pool.export(store, tmp_path / "export", run_id)
    rows = list(csv.DictReader(open(files["csv"])))
    assert {r["source"] for r in rows} == {"imported", "person", "prediction"}
    assert len(rows) == len(store.videos()) + 3
    assert [json.loads(line)["file"] for line in files["jsonl"].read_text().splitlines()] == [r["file"] for r in rows]
    tasks = json.loads(files["label_studio"].read_text())
    predicted = [t for t in tasks if "predictions" in t]
    assert len(predicted) == 3 and predicted[0]["predictions"][0]["model_version"] == run_id
    assert predicted[0]["predictions"][0]["result"][0]["value"]["choices"][0] in store.labels()
    assert all(t["annotations"][0]["result"][0]["to_name"] == "video" for t in tasks if "annotations" in t)
    assert '<Choice value="left"/>' in files["label_studio_config"].read_text()

    # the loop closes: the grown training set is a new experiment, and its report says where labels came from
    grown = experiment.run_experiment(store, cfg)
    assert grown != name
    text = report.markdown(store, grown)
    assert "1 labelled by a person in the pool" in text and f"Against `{name}`" in text


def _val_predictions(store, confidences_right: list[tuple[float, bool]]):
    run_id = "exp-x/sft/s0"
    val = store.videos(split="val")
    assert len(val) >= len(confidences_right)
    rows = []
    for v, (conf, right) in zip(val, confidences_right):
        pred = v["label"] if right else next(c for c in store.labels() if c != v["label"])
        rows.append({"video_id": v["id"], "pred": pred, "scores": {pred: conf}, "confidence": conf,
                     "margin": conf, "rationale": None})
    store.save_pool_predictions(run_id, rows)
    return run_id


def test_the_threshold_is_the_lowest_confidence_that_reaches_the_precision_on_validation(store, tmp_path):
    from rbft.synthetic import make_dataset
    ingest(store, make_dataset(tmp_path / "d", per_class=10, motions=("left", "right"), size=48, n_frames=8))
    # by confidence: 0.99 ok, 0.95 ok, 0.9 wrong, 0.8 ok   -> precision 1, 1, 0.667, 0.75
    run_id = _val_predictions(store, [(0.95, True), (0.8, True), (0.99, True), (0.9, False)])
    share = 0.5   # no bound: the share right decides
    t = pool.find_threshold(store, run_id, 0.95, share)
    assert (t.threshold, t.val_passing, t.val_precision, t.val_lower) == (0.95, 2, 1.0, 1.0)
    t = pool.find_threshold(store, run_id, 0.7, share)
    assert (t.threshold, t.val_passing, t.val_precision) == (0.8, 4, 0.75)
    assert pool.find_threshold(store, run_id, 1.0, share).threshold == 0.95
    with pytest.raises(ValueError, match="between 0 and 1"):
        pool.find_threshold(store, run_id, 95)
    with pytest.raises(ValueError, match="at least 0.5"):
        pool.find_threshold(store, run_id, 0.9, 0.2)


def test_a_threshold_on_a_few_right_videos_is_not_enough_evidence(store, tmp_path):
    """The pool benchmark's failure: a threshold resting on 3 validation videos (2 right) accepted
    pool labels of which 1 in 4 was right. By default the precision's 95% lower bound must reach
    the target, so thin evidence accepts nothing and says why; more right videos do."""
    from rbft.synthetic import make_dataset
    ingest(store, make_dataset(tmp_path / "d", per_class=40, motions=("left", "right"), size=32, n_frames=4))
    assert pool.precision_lower_bound(3, 3, 0.95) == pytest.approx(0.526, abs=1e-3)
    assert pool.precision_lower_bound(2, 3, 0.5) == pytest.approx(2 / 3)
    few = _val_predictions(store, [(0.9, True), (0.8, True), (0.7, False)] + [(0.1, False)] * 5)
    t = pool.find_threshold(store, few, 0.6)
    assert t.threshold is None and t.pool_passing == 0
    assert (t.val_passing, t.val_precision) == (2, 1.0) and t.val_lower == pytest.approx(0.425, abs=1e-3)
    assert "No confidence threshold reaches precision 0.60 (95% sure)" in t.text()
    assert "2 most confident, 1.000 right" in t.text()
    assert pool.find_threshold(store, few, 0.6, 0.5).threshold == 0.7   # the old rule took it
    many = _val_predictions(store, [(0.9, True)] * 12 + [(0.5, False)] * 4)
    t = pool.find_threshold(store, many, 0.8)
    assert (t.threshold, t.val_passing) == (0.9, 12) and t.val_lower == pytest.approx(0.816, abs=1e-3)
    assert "precision is 0.816 or more (95% sure; target 0.80)" in t.text()


def test_auto_accept_marks_labels_as_the_models_and_keeps_the_evidence(store, dataset, tmp_path):
    ingest(store, dataset)
    folder, _ = pool_folder(tmp_path / "unlabelled", 3)
    ingest(store, folder, pool=True)
    run_id = _val_predictions(store, [(0.9, True)])
    pooled = store.videos(split="pool")
    store.save_pool_predictions(run_id, [
        {"video_id": v["id"], "pred": "left", "scores": {"left": c}, "confidence": c, "margin": c, "rationale": None}
        for v, c in zip(pooled, (0.95, 0.5, 0.91))])
    t = pool.auto_accept(store, run_id, 0.9, confidence=0.5)   # one validation video: the share right
    assert t.threshold == 0.9 and t.pool_passing == 2
    assert store.label_sources("train")["model"] == 2 and len(store.videos(split="pool")) == 1
    kept = store.auto_accepts()[-1]
    assert kept["accepted"] == 2 and kept["threshold"] == 0.9 and kept["evidence"]["val_precision"] == 1.0


def test_uncertainty_order_needs_fewer_reviews_than_a_random_order():
    truth = {f"v{i}": "a" for i in range(10)}
    rows = [{"video_id": f"v{i}", "pred": "a" if i >= 3 else "b", "margin": i / 10} for i in range(10)]
    saved = pool.review_savings(rows, truth, target_accuracy=1.0)
    assert saved["model_accuracy"] == 0.7 and saved["by_uncertainty"] == 3 and saved["random"] > 3


@pytest.mark.slow  # a second experiment (the library test covers the steps)
def test_the_cli_labels_queues_and_exports(store, dataset, tmp_path, tiny, capsys):
    name, _, _ = _labelled_then_pool(store, dataset, tmp_path)
    run_id = store.runs(name)[0]["id"]
    project = ["--project", str(store.root), "--quiet"]
    cli(["pool", "label", "--run", run_id, *project])
    cli(["pool", "queue", *project])
    cli(["pool", "auto", "--precision", "0.5", *project])
    cli(["pool", "export", "--out", str(tmp_path / "out"), *project])
    out = capsys.readouterr().out
    assert "labelled 4 pool videos and 2 validation videos" in out and "4 pool videos left, most uncertain first" in out
    assert "validation" in out and (tmp_path / "out" / "label_studio_tasks.json").exists()


def test_measure_against_hidden_labels_says_precision_share_and_reviews(store, tmp_path):
    from rbft.toyworld import testbed
    manifest = testbed.build_task("floor", tmp_path / "floor", train=2, val=2, test=1, pool=2)
    assert (tmp_path / "floor" / "pool.csv").read_text().count(",\n") == 6   # six rows, no label
    ingest(store, manifest)
    ingest(store, tmp_path / "floor" / "pool.csv", pool=True)
    truth = pool.read_truth(tmp_path / "floor" / "pool_truth.csv")
    assert len(store.videos(split="pool")) == 6 and set(truth.values()) == set(store.labels())
    run_id = _val_predictions(store, [(0.9, True)] * 6)   # every validation prediction right
    by_name = {Path(v["path"]).name: v for v in store.videos(split="pool")}
    rows = []
    for i, (name, label) in enumerate(sorted(truth.items())):
        pred = label if i % 3 else next(c for c in store.labels() if c != label)   # 2 of 6 wrong
        rows.append({"video_id": by_name[name]["id"], "pred": pred, "scores": {pred: 0.95}, "confidence": 0.95,
                     "margin": 0.1 if pred != label else 0.5, "rationale": None})
    store.save_pool_predictions(run_id, rows)
    m = pool.measure(store, run_id, truth, confidence=0.5)   # 6 validation videos: the share right decides
    at_90 = m["targets"][0]
    assert (at_90["threshold"], at_90["accepted"], at_90["share"]) == (0.9, 6, 1.0)
    assert at_90["pool_precision"] == pytest.approx(4 / 6)   # what validation promised, and what the pool gave
    full = m["reviews"][-1]
    assert full["by_uncertainty"] == 2 and full["random"] > 2
    assert "| 0.90 | 0.900 | 1.000 (6 of 6) | 1.000 (50%) |" in pool.format_measure(m)
    assert store.label_sources("train")["model"] == 0   # measuring accepts nothing
    sure = pool.measure(store, run_id, truth)["targets"][0]   # 95% sure: 6 of 6 right is not enough for 0.9
    assert sure["threshold"] is None and sure["accepted"] == 0 and sure["val_lower"] == pytest.approx(0.689, abs=1e-3)
