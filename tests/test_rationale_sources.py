"""Rationales from any source (imported files, oracle rationales from the testbed's event logs), the
paired comparison every report carries, and a label-support judge that is calibrated and says when
its word means nothing."""
import csv
import json

import pytest

from rbft import cli, paired, quality, rationale_import
from rbft.data import ingest
from rbft.project import configure, open_project
from rbft.recipes.experiment import imported_set
from rbft.toyworld import oracle, testbed, truth, world


@pytest.fixture
def project(tmp_path, dataset):
    store = open_project(tmp_path / "project")
    ingest(store, dataset)
    return store


def write_csv(path, rows, fields=("video", "text")):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(fields))
        w.writeheader()
        w.writerows(rows)
    return path


def test_an_imported_file_becomes_a_set_and_every_bad_row_is_reported(project, tmp_path, dataset):
    videos = project.videos()
    first, second, third = videos[0], videos[1], videos[2]
    rows = [
        {"video": first["id"], "text": "The square moves left across the floor."},        # by id
        {"video": str(project.resolve(second["path"])), "text": "It drifts to the right."},  # by full path
        {"video": third["path"].rsplit("/", 1)[-1], "text": "  "},                          # empty text
        {"video": "nowhere.mp4", "text": "A ghost."},                                      # no such video
        {"video": first["id"], "text": "A second opinion."},                               # duplicate
        {"video": "", "text": "Whose is this?"},                                           # no video named
    ]
    report = rationale_import.import_rationales(project, write_csv(tmp_path / "notes.csv", rows))
    assert report.imported == 2 and report.sets == ["import:notes"]
    assert [p.split(":")[0] for p in report.problems] == ["row 4 (" + third["path"].rsplit("/", 1)[-1] + ")",
                                                          "row 5 (nowhere.mp4)", f"row 6 ({first['id']})", "row 7"]
    assert "empty text" in report.problems[0] and "matches no video" in report.problems[1]
    assert "same video as row 2" in report.problems[2] and "no video named" in report.problems[3]
    stored = {r["video_id"]: r for r in project.rationales(model="import:notes")}
    assert stored[first["id"]]["text"] == "The square moves left across the floor." and len(stored) == 2
    assert stored[first["id"]]["status"] == "imported"
    # a set of its own, beside generated ones; the experiment finds it by name, and filters work on it
    assert imported_set(project, "import:notes")[1] == "import:notes"
    assert len(quality.select(project.rationales(model="import:notes"), "not_rejected")) == 2
    with pytest.raises(ValueError, match="there are import:notes"):
        imported_set(project, "import:other")
    # importing again replaces the same rows, loses nothing
    again = rationale_import.import_rationales(project, tmp_path / "notes.csv")
    assert again.replaced == 2 and len(project.rationales(model="import:notes")) == 2


def test_jsonl_rows_carry_their_own_source_and_file_names_must_be_unique(project, tmp_path):
    videos = project.videos()
    lines = [{"file": videos[0]["path"], "rationale": "Moves left.", "source": "annotator A"},
             {"file": videos[1]["path"], "rationale": "Moves right.", "source": "annotator B"}]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    report = rationale_import.import_rationales(project, path)
    assert report.sets == ["import:annotator A", "import:annotator B"] and not report.problems
    # a file name that two videos share cannot say which one it means
    same = tmp_path / "same"
    (same / "a").mkdir(parents=True)
    (same / "b").mkdir()
    from rbft import synthetic
    for i, cls in enumerate(("a", "b")):
        synthetic.write_video(same / cls / "clip.mp4", synthetic.render_clip("right", seed=90 + i, size=64, n_frames=16))
    ingest(project, same)
    report = rationale_import.import_rationales(project, write_csv(tmp_path / "x.csv", [
        {"video": "clip.mp4", "text": "Which one?"}]))
    assert report.imported == 0 and "2 videos are called clip.mp4" in report.problems[0]


def test_a_file_without_the_columns_says_which_it_needs(project, tmp_path):
    path = write_csv(tmp_path / "bad.csv", [{"name": "x", "words": "y"}], fields=("name", "words"))
    with pytest.raises(ValueError, match="needs a column naming the video"):
        rationale_import.import_rationales(project, path)


def test_the_cli_imports_and_lists_sets(project, tmp_path, capsys):
    video = project.videos()[0]
    path = write_csv(tmp_path / "notes.csv", [{"video": video["id"], "text": "It moves."}])
    assert cli.main(["rationales", "import", "--project", str(project.root), str(path), "--source", "expert"]) == 0
    assert "1 rationales imported as import:expert" in capsys.readouterr().out
    assert cli.main(["rationales", "list", "--project", str(project.root)]) == 0
    listing = capsys.readouterr().out
    assert "import:expert" in listing and "(imported)" in listing


def test_oracle_rationales_have_the_share_of_false_claims_asked_for():
    seeds = [s for s in range(20_000_000, 20_000_060) if testbed.floor_rule(world.render(s).events)]
    for p, low, high in ((0.0, 1.0, 1.0), (0.5, 0.4, 0.6), (1.0, 0.0, 0.0)):
        scores = [truth.caption_scores(oracle.oracle_rationale(s, p), world.render(s).events) for s in seeds]
        precision = sum(x["event_precision"] for x in scores) / len(scores)
        assert low <= precision <= high, (p, precision)
    text = oracle.oracle_rationale(seeds[0])
    assert not any(c in text for c in testbed.TASKS["floor"].classes)   # never a class name
    assert oracle.oracle_rationale(seeds[0], 0.5) == oracle.oracle_rationale(seeds[0], 0.5)   # deterministic


def test_the_testbed_writes_oracle_files_that_import_with_their_truth(tmp_path):
    manifest = testbed.build_task("floor", tmp_path / "floor", train=3, val=1, test=1)
    files = sorted(p.name for p in (tmp_path / "floor").glob("rationales_oracle_*.csv"))
    assert files == ["rationales_oracle_p0.25.csv", "rationales_oracle_p0.5.csv", "rationales_oracle_p0.csv",
                     "rationales_oracle_p1.csv"]
    store = open_project(tmp_path / "project")
    configure(store, "floor", testbed.TASKS["floor"].classes)
    ingest(store, manifest)
    for name in ("p0", "p1"):
        report = rationale_import.import_rationales(store, tmp_path / "floor" / f"rationales_oracle_{name}.csv")
        assert report.imported == 9 and not report.problems and report.sets == [f"import:oracle_{name}"]
    rows = {r["model"]: r for r in truth.truth_report(store, "floor")}
    assert rows["import:oracle_p0"]["event_precision"] == 1.0 and rows["import:oracle_p0"]["label_consistent"] == 1.0
    assert rows["import:oracle_p1"]["event_precision"] == 0.0


def test_paired_difference_finds_a_real_gap_and_calls_a_small_one_no_result():
    clips = [f"v{i}" for i in range(100)]
    better = {s: {c: 1 for c in clips} for s in (0, 1, 2)}
    worse = {s: {c: int(i % 2 == 0) for i, c in enumerate(clips)} for s in (0, 1, 2)}
    d = paired.paired_difference(better, worse)
    assert d["difference"] == pytest.approx(0.5) and d["low"] > 0.35 and d["resolved"]
    assert d["seeds"] == 3 and d["clips"] == 100
    nearly = {s: {c: int(i % 2 == 0 or i == 1) for i, c in enumerate(clips)} for s in (0, 1, 2)}
    small = paired.paired_difference(nearly, worse)
    assert small["low"] <= 0 <= small["high"] and not small["resolved"]
    assert "no result" in paired.format_difference(small)
    assert paired.paired_difference(better, {5: {}}) is None   # no seed in common: nothing to compare


class BiasedJudge:
    """Stands for the loaded judge model; its answers come from the scoring function patched in."""
    name = "biased-judge"


def test_a_biased_judge_is_calibrated_and_a_blind_one_is_called_uninformative(project, monkeypatch):
    from rbft import models
    from rbft import project as P
    videos = project.videos()
    prompt_id = P.prompt(project, "rationale")["id"]
    for v in videos:
        project.save_rationale(v["id"], prompt_id, "import:x", f"It moves {v['label']}.", {}, status="imported")
    names = sorted({v["label"] for v in videos})
    assert names == ["left", "right"]

    def reads_but_leans_left(lm, text, clip, frames, options):
        says = "left" if "It moves left" in text else "right" if "It moves right" in text else None
        return [3.0 + (1.0 if says == "left" else 0.0), 0.0 + (1.0 if says == "right" else 0.0)]
    monkeypatch.setattr(models, "score_options", reads_but_leans_left)
    # without calibration it would answer "left" for every rationale: right-class ones all unsupported
    quality.score_support(project, BiasedJudge(), prompt_id, "import:x")
    rows = project.rationales(prompt_id, "import:x")
    assert all(r["support_ok"] for r in rows), [(r["label"], r["support_pred"]) for r in rows]
    overall = quality.stats(project, prompt_id, "import:x")["overall"]
    assert overall["support_auc"] == 1.0 and overall["judge"] == "biased-judge"
    assert "AUC of 1.00" in quality.judge_note(overall)
    assert len(quality.select(rows, "supported")) == len(rows)

    def blind(lm, text, clip, frames, options):   # the same answer whatever it reads
        return [3.0, 0.0]
    monkeypatch.setattr(models, "score_options", blind)
    quality.score_support(project, BiasedJudge(), prompt_id, "import:x")
    overall = quality.stats(project, prompt_id, "import:x")["overall"]
    assert overall["support_auc"] == 0.5 and "NOT informative" in quality.judge_note(overall)
    with pytest.raises(ValueError, match="not informative enough"):
        quality.select(project.rationales(prompt_id, "import:x"), "supported")


def test_a_text_only_chat_model_judges_support_through_the_cli(project, tmp_path, tiny, capsys):
    """A text-only model (tiny Qwen2.5-Instruct architecture, its own tokenizer and chat template)
    loads as a judge: it scores every rationale of a set, calibrated, and the stats name it. It
    cannot watch a video, nor take an adapter: both say so."""
    from rbft import models
    from rbft import project as P
    from rbft.config import FrameConfig, ModelConfig
    notes = [{"video": v["id"], "text": f"The square slides to the {v['label']}."} for v in project.videos()]
    rationale_import.import_rationales(project, write_csv(tmp_path / "notes.csv", notes))
    judge = tiny("qwen2")
    cli.main(["stats", "--project", str(project.root), "--model", "import:notes", "--score-support",
              "--scorer", judge])
    assert "support" in capsys.readouterr().out
    prompt_id = P.prompt(project, "rationale")["id"]
    rows = project.rationales(prompt_id, "import:notes")
    assert len(rows) == len(notes) and all(r["support_probs"] and r["support_ok"] is not None for r in rows)
    assert all(abs(sum(r["support_probs"].values()) - 1) < 1e-6 for r in rows)
    overall = quality.stats(project, prompt_id, "import:notes")["overall"]
    assert overall["judge"] == judge and overall["support_auc"] is not None
    lm = models.load(ModelConfig(model=judge))
    assert lm.family.end_of_turn == "<|im_end|>" and lm.family.name == "text"
    with pytest.raises(models.ModelLoadError, match="cannot watch a video"):
        models.encode(lm, "What happens?", world_clip(), FrameConfig(num_frames=2, max_side=32))
    with pytest.raises(models.ModelLoadError, match="takes no adapter"):
        models.load(ModelConfig(model=judge), adapter=tmp_path)


def world_clip():
    import numpy as np

    from rbft.frames import Clip
    return Clip(np.zeros((2, 32, 32, 3), np.uint8), 8.0, 2, [0, 1])


def test_the_end_of_an_assistant_turn_is_read_from_the_chat_template():
    """Llama 3 closes a turn with <|eot_id|>, not its end-of-text token: the option scores must end
    where the model's answers end."""
    from rbft.models import text_family
    from rbft.testing import build_tokenizer
    tok = build_tokenizer(["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>",
                           "<|end_header_id|>"], eos="<|end_of_text|>", pad="<|end_of_text|>")
    tok.chat_template = ("<|begin_of_text|>{% for m in messages %}<|start_header_id|>{{ m['role'] }}"
                         "<|end_header_id|>\n\n{{ m['content'] }}<|eot_id|>{% endfor %}"
                         "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}")
    assert text_family(tok).end_of_turn == "<|eot_id|>"


def test_stage_one_trains_on_an_imported_set_and_the_run_records_it(project, tmp_path, tiny):
    from conftest import small_config

    from rbft.recipes.experiment import run_arm
    notes = [{"video": v["id"], "text": f"The square slides to the {v['label']} at a steady pace."}
             for v in project.videos(split="train")]
    rationale_import.import_rationales(project, write_csv(tmp_path / "notes.csv", notes))
    cfg = small_config(tiny("smolvlm"), arms=["rbft"], rationales="import:notes")
    cfg.stage1.max_steps = cfg.stage2.max_steps = 1
    cfg.stage1.eval_every = cfg.stage2.eval_every = 0
    seen = []
    metrics = run_arm(project, "rbft", 0, cfg, "exp-notes", on_event=seen.append)
    assert metrics["total_steps"] == 2
    assert any(f"Stage I trains on {len(notes)} rationales of import:notes" in (e.message or "") for e in seen)
    assert project.run("exp-notes/rbft/s0")["config"]["rationales"] == "import:notes"
    assert not project.rationales(model="tiny:smolvlm") and not project.rationales(model=tiny("smolvlm"))
