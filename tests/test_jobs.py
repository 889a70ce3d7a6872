"""Background jobs: one at a time, state in the store, a killed job is seen as interrupted and resumes."""
import json
import os
import signal
import time

import pytest
from conftest import small_config

from rbft import config as C
from rbft.data import ingest
from rbft.recipes import jobs
from rbft.recipes.experiment import experiment_name
from rbft.store import JobBusy


@pytest.mark.slow  # kill -9 mid-training, then a resumed run
def test_killed_job_is_marked_interrupted_and_resumes(store, dataset, tiny):
    ingest(store, dataset)
    cfg = small_config(tiny("smolvlm"), arms=["sft"])
    cfg.stage2.max_steps, cfg.stage2.save_every, cfg.stage2.eval_every = 60, 5, 0
    params = {"config": C.to_dict(cfg), "name": experiment_name(cfg)}
    job_id = jobs.submit(store, "experiment", params)
    with pytest.raises(JobBusy):
        jobs.submit(store, "generate", {"config": C.to_dict(cfg)})
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until a complete checkpoint exists, then kill -9
        ckpts = list((store.root / "runs").rglob("checkpoint-*/trainer_state.json"))
        if ckpts:
            break
        time.sleep(0.1)
    assert ckpts, store.job(job_id)
    os.kill(store.job(job_id)["pid"], signal.SIGKILL)
    job = jobs.wait(store, job_id, timeout_s=30)
    assert job["status"] == "interrupted" and "ended without finishing" in job["error"]
    run_id = f"{params['name']}/sft/s0"
    assert store.run(run_id)["status"] == "interrupted"
    resumed = jobs.wait(store, jobs.resume(store, job_id), timeout_s=300)
    assert resumed["status"] == "done", resumed["error"]
    log = open(resumed["log"]).read()
    assert store.run(run_id)["status"] == "done"
    messages = [e["message"] for e in jobs.job_events(store, resumed["id"], "log")]
    assert any("resuming from checkpoint-" in m for m in messages), messages + [log[-2000:]]
    # and it reached the same final step as an uninterrupted run
    final = sorted((store.root / "runs").rglob("checkpoint-*/trainer_state.json"),
                   key=lambda p: int(p.parent.name.split("-")[1]))[-1]
    assert json.loads(final.read_text())["global_step"] == 60


def test_failed_job_says_why(store, dataset):
    ingest(store, dataset)
    cfg = small_config("no/such-model-here")
    job_id = jobs.submit(store, "generate", {"config": C.to_dict(cfg)}, inline=True)
    job = store.job(job_id)
    assert job["status"] == "failed" and "no/such-model-here" in job["error"]
    assert jobs.job_events(store, job_id, "error")


def test_inline_jobs_for_zero_gpu_spaces(store, dataset, tiny):
    """Where a child process cannot have the GPU (ZeroGPU), the studio runs the job in its own process."""
    from studio.common import Context, start_job
    ingest(store, dataset)
    cfg = small_config(tiny("smolvlm"))
    ctx = Context(projects_root=store.root.parent, default_project=store.root, inline_jobs=True)
    job_id = start_job(ctx, store, "generate", {"config": C.to_dict(cfg), "limit": 2, "split": "train"})
    job = store.job(job_id)
    assert job["status"] == "done" and job["pid"] == os.getpid()
    assert job["result"]["generated"] == 2


def test_a_checkpoint_cut_off_mid_save_is_not_resumed_from(tmp_path):
    from rbft.train import last_complete_checkpoint
    for step, complete in ((4, True), (6, True), (8, False)):
        ckpt = tmp_path / f"checkpoint-{step}"
        ckpt.mkdir()
        (ckpt / "adapter_model.safetensors").write_bytes(b"x")
        if complete:
            (ckpt / "trainer_state.json").write_text(f'{{"global_step": {step}}}')
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-6")
    assert not (tmp_path / "checkpoint-8").exists()
    assert last_complete_checkpoint(tmp_path / "missing") is None
