import os
import shutil

import pytest

from rbft import synthetic
from rbft.data import VideoError, ingest, probe, stratified_split


def test_folder_ingest_labels_and_splits(store, dataset):
    report = ingest(store, dataset)
    assert len(report.added) == 10 and not report.errors
    videos = store.videos()
    assert {v["label"] for v in videos} == {"left", "right"}
    for label in ("left", "right"):
        splits = sorted(v["split"] for v in videos if v["label"] == label)
        assert splits == ["test", "train", "train", "train", "val"]
    assert all(v["n_frames"] == 16 and v["width"] == 64 for v in videos)


def test_reingest_adds_only_new_files_and_keeps_splits(store, dataset, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(dataset, src)
    ingest(store, src)
    before = {v["id"]: v["split"] for v in store.videos()}
    synthetic.write_video(src / "left" / "new.mp4", synthetic.render_clip("left", 99, 64, 16))
    report = ingest(store, src)
    assert len(report.added) == 1 and len(report.already_present) == 10
    after = {v["id"]: v["split"] for v in store.videos()}
    assert {k: after[k] for k in before} == before


def test_broken_files_get_plain_reasons_and_the_rest_go_on(store, dataset, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(dataset, src)
    synthetic.make_broken_files(src / "left")
    report = ingest(store, src)
    assert len(report.added) == 10
    reasons = {os.path.basename(p): r for p, r in report.errors.items()}
    assert "empty" in reasons["zero_bytes.mp4"]
    assert "not a video" in reasons["notes.mp4"] or "decoded" in reasons["notes.mp4"]
    assert "damaged" in reasons["truncated.mp4"] or "truncated" in reasons["truncated.mp4"]
    assert "only 1 frame" in reasons["one_frame.mp4"]
    assert {os.path.basename(e["path"]) for e in store.import_errors()} == set(reasons)


def test_duplicate_content_is_kept_once(store, dataset, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(dataset, src)
    shutil.copy(src / "left" / "left_00.mp4", src / "left" / "copy of left 00.mp4")
    report = ingest(store, src)
    assert len(report.added) == 10
    assert any("same content" in w for w in report.warnings)


def test_manifest_with_bom_semicolons_case_and_escape(store, dataset, tmp_path):
    rows = ["path;label;split"]
    for i in range(3):
        rows.append(f"{dataset}/left/left_{i:02d}.mp4;left;train")
    rows.append(f"{dataset}/right/right_00.mp4; Right ;test")
    rows.append(f"{dataset}/right/right_01.mp4;;train")
    rows.append("../../etc/passwd;left;train")
    # the manifest sits beside the data, so its folder is the dataset's parent
    manifest = dataset.parent / "manifest.csv"
    manifest.write_text("\ufeff" + "\n".join(rows).replace(str(dataset.parent) + "/", ""), encoding="utf-8")
    store.set_meta("classes", [{"name": "right", "description": ""}])
    report = ingest(store, manifest)
    assert len(report.added) == 4
    assert any("existing class 'right'" in w for w in report.warnings)
    assert {v["label"] for v in store.videos()} == {"left", "right"}
    assert any("no label" in r for r in report.errors.values())
    assert any("outside" in r for r in report.errors.values())


def test_stratified_split_is_seeded_and_keeps_training_data():
    ids = {"a": [f"a{i}" for i in range(10)], "b": ["b0"], "c": ["c0", "c1"]}
    warnings = []
    one = stratified_split(ids, seed=3, warnings=warnings)
    assert one == stratified_split(ids, seed=3)
    assert [one[i] for i in ids["a"]].count("test") == 2 and [one[i] for i in ids["a"]].count("val") == 2
    assert one["b0"] == "train"
    assert sorted(one[i] for i in ids["c"]) == ["test", "train"]
    assert any("'b'" in w and "training only" in w for w in warnings)


def test_probe_rejects_missing_file(tmp_path):
    with pytest.raises(VideoError, match="not found"):
        probe(tmp_path / "nope.mp4")
