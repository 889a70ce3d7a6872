"""What real users throw at the project: awkward files, bad manifests and prompts, kills, full disks.
Each case: a plain per-item message, and nothing already done is lost."""
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
from conftest import small_config

from rbft import config as C
from rbft import frames as rbft_frames
from rbft import models, project, synthetic
from rbft.config import FrameConfig, GenerationConfig, ModelConfig
from rbft.data import ingest
from rbft.prompts import PromptError
from rbft.rationales import generate_rationales
from rbft.recipes import jobs
from rbft.store import ProjectError, Store

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    src = tmp_path_factory.mktemp("corpus")
    files = synthetic.make_bad_corpus(src / "left")
    synthetic.make_dataset(src, per_class=3, motions=("right",), size=64, n_frames=12)
    return src, files


def test_awkward_files_each_get_a_plain_outcome(store, corpus):
    src, files = corpus
    report = ingest(store, src)
    reasons = {Path(p).name: r for p, r in report.errors.items()}
    assert reasons == {
        "zero_bytes.mp4": "the file is empty (0 bytes)",
        "notes.mp4": reasons["notes.mp4"], "truncated.mp4": reasons["truncated.mp4"],
        "one_frame.mp4": "it has only 1 frame; at least 2 are needed to show anything over time"}
    assert "not a video" in reasons["notes.mp4"] and "truncated" in reasons["truncated.mp4"]
    added = {Path(p).name for p in report.added}
    assert {"zero_fps.avi", "huge_4k.avi", "long_2min.mp4", files["odd_name"].name} <= added
    assert any("copy of odd name.mp4" in w and "same content" in w for w in report.warnings)
    by_name = {Path(v["path"]).name: v for v in store.videos()}
    assert by_name["huge_4k.avi"]["width"] == 3840 and by_name["long_2min.mp4"]["n_frames"] == 3000
    cfg = FrameConfig(num_frames=8, max_side=96)
    for name in ("zero_fps.avi", "huge_4k.avi", "long_2min.mp4", files["odd_name"].name):
        clip = project.clip(store, by_name[name], cfg)
        assert clip.frames.dtype.name == "uint8" and max(clip.frames.shape[1:3]) <= 96, name
        assert len(clip.frames) == min(8, by_name[name]["n_frames"])
    # a 0-fps header: the decoder assumes 25 fps, so frame times are estimates but frames are right
    assert project.clip(store, by_name["zero_fps.avi"], cfg).fps == 25.0


def test_long_video_is_sampled_without_decoding_every_frame(corpus, monkeypatch):
    _, files = corpus
    reads = []

    real = cv2.VideoCapture

    class CountingCapture:  # a wrapper, not a subclass: collecting a subclass of a cv2 type can crash
        def __init__(self, *args):
            self.cap = real(*args)

        def read(self, *args):
            reads.append(1)
            return self.cap.read(*args)

        def __getattr__(self, name):
            return getattr(self.cap, name)

    monkeypatch.setattr(rbft_frames.cv2, "VideoCapture", CountingCapture)
    clip = rbft_frames.sample_frames(files["long"], FrameConfig(num_frames=8, max_side=64))
    assert len(clip.frames) == 8 and clip.total_frames == 3000
    assert len(reads) == 8  # one decoded frame per sample, not 3000


def test_unreadable_file_says_permission_denied(store, corpus, monkeypatch):
    src, files = corpus
    target = files["odd_name"]
    real_open = open

    def guarded_open(path, *args, **kwargs):  # what chmod 000 does to a non-root user
        if Path(path) == target:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("rbft.data.open", guarded_open, raising=False)
    report = ingest(store, src)
    assert report.errors[str(target)] == "permission denied: the file cannot be read"


def test_manifest_missing_file_and_a_class_of_one(store, tmp_path):
    synthetic.make_dataset(tmp_path, per_class=3, motions=("left",), size=64, n_frames=12)
    synthetic.write_video(tmp_path / "rare" / "only.mp4", synthetic.render_clip("fall", 1, 64, 12))
    manifest = tmp_path / "labels.csv"
    rows = ["path,label"] + [f"left/left_{i:02d}.mp4,left" for i in range(3)]
    rows += ["rare/only.mp4,rare", "left/gone.mp4,left"]
    manifest.write_text("\n".join(rows))
    report = ingest(store, manifest)
    assert report.errors[str(tmp_path / "left" / "gone.mp4")] == "file not found"
    assert any("'rare'" in w and "training only" in w for w in report.warnings)
    assert [v["split"] for v in store.videos(label="rare")] == ["train"]


def test_template_over_the_context_fails_before_any_generation(store, dataset, tiny):
    ingest(store, dataset)
    lm = models.load(ModelConfig(model=tiny("smolvlm")))
    long = project.prompt(store, "rationale")["template"] + "\nDescribe every detail. " * 4000
    pid = project.save_prompt(store, "rationale", long)
    with pytest.raises(PromptError, match="over the model's context"):
        generate_rationales(store, lm, FrameConfig(4, 64), GenerationConfig(max_new_tokens=8), prompt_id=pid)
    assert store.rationales(pid) == []


def wait_for(predicate, timeout=120, poll=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return False


@pytest.mark.slow  # kill -9 mid-generation; generation's resume is also tested in test_pipeline
def test_kill_during_generation_keeps_what_is_done(store, dataset, tiny):
    ingest(store, dataset)
    cfg = small_config(tiny("smolvlm"))
    cfg.generation = GenerationConfig(max_new_tokens=48, batch_size=1)
    job_id = jobs.submit(store, "generate", {"config": C.to_dict(cfg), "split": None})
    total = len(store.videos())
    assert wait_for(lambda: len(store.rationales()) >= 2), store.job(job_id)
    os.kill(store.job(job_id)["pid"], signal.SIGKILL)
    assert jobs.wait(store, job_id, timeout_s=30)["status"] == "interrupted"
    kept = {r["video_id"]: r["created_at"] for r in store.rationales()}
    assert 2 <= len(kept) < total
    assert store.db.execute("pragma integrity_check").fetchone()[0] == "ok"
    resumed = jobs.wait(store, jobs.resume(store, job_id), timeout_s=300)
    assert resumed["status"] == "done" and resumed["result"]["skipped"] == len(kept)
    after = {r["video_id"]: r["created_at"] for r in store.rationales()}
    assert len(after) == total and all(after[v] == t for v, t in kept.items())


def test_unwritable_project_folder_is_said_plainly():
    with pytest.raises(ProjectError, match="cannot create the project folder"):
        Store("/proc/rbft-no-such-place/project")
    with pytest.raises(ProjectError, match="cannot open the project database"):
        Store("/sys/kernel")  # exists, but nothing can be created there, not even by root


@pytest.mark.parametrize("limit_kb", [64, pytest.param(160, marks=pytest.mark.slow)])
def test_full_disk_gives_a_clear_error(tmp_path, limit_kb):
    """A file-size limit makes every write past it fail as on a full disk (ENOSPC/EFBIG)."""

    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_kb * 1024, limit_kb * 1024))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    result = subprocess.run([sys.executable, "-m", "rbft", "sample", "--project", str(tmp_path / "p"), "--quiet"],
                            preexec_fn=small_disk, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2
    assert "the disk is full" in result.stderr and "Traceback" not in result.stderr


def test_app_binds_to_localhost_by_default(monkeypatch):
    import app
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    assert app.parse_args([]).host == "127.0.0.1"
    help_text = subprocess.run([sys.executable, "app.py", "--help"], cwd=ROOT, capture_output=True, text=True).stdout
    assert "0.0.0.0 exposes it" in " ".join(help_text.split())  # and it says how to expose it


def test_no_secret_reaches_job_logs_or_events(store, dataset, monkeypatch):
    secret = "hf_" + "x7Rq" * 8
    monkeypatch.setenv("HF_TOKEN", secret)
    ingest(store, dataset)
    job_id = jobs.submit(store, "generate", {"config": C.to_dict(small_config("no-such/model-anywhere"))})
    job = jobs.wait(store, job_id, timeout_s=120)
    assert job["status"] == "failed"
    text = Path(job["log"]).read_text() + str(jobs.job_events(store, job_id)) + str(job)
    assert "no-such/model-anywhere" in text and secret not in text
    con = sqlite3.connect(store.root / "project.db")
    assert not any(secret in str(row) for row in con.execute("select * from events"))
