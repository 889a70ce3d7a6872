"""Background jobs: long work (generation, support scoring, experiments) recorded in the store.

A job is a row in the `jobs` table plus, by default, a child process
(`python -m rbft job --project P JOB_ID`) that runs it and writes its state and
events to the store. Whoever watches (the studio's timer, a second browser tab,
the CLI, a test) reads the store; nothing lives only in the memory of the app, so
a reloaded page or a restarted app sees the same jobs. A job whose process died
without a word is marked interrupted by `refresh`; resuming re-submits the same
parameters, and the work itself resumes (rationales skip done videos, training
continues from its last checkpoint, finished runs are kept).

One job per project at a time: `Store.add_job` refuses a second.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from .. import config as C
from ..events import Event, EventSink, Progress
from ..store import JobBusy, Store
from . import launcher

KINDS = ("generate", "support", "experiment", "explain", "label")
RUN_EVENTS = ("loss", "eval")  # those go to each run's own stream, not the job's

__all__ = ["submit", "run_job", "stop", "refresh", "resume", "active", "job_events", "JobBusy", "KINDS"]


def job_stream(job_id: str) -> str:
    """The event stream (events.run_id) of a job."""
    return f"job/{job_id}"


# ---- what each kind does --------------------------------------------------------------------

def _config(params: dict) -> C.ExperimentConfig:
    return C.from_dict(C.ExperimentConfig, params["config"])


def _try_videos(store: Store, n: int, split: str) -> list[str]:
    """The first N videos of a split, taking the classes in turn, so a trial sees every class."""
    by_class: dict[str, list[str]] = {}
    for v in store.videos(split=split):
        by_class.setdefault(v["label"], []).append(v["id"])
    picked, i = [], 0
    while len(picked) < n and any(i < len(ids) for ids in by_class.values()):
        picked += [ids[i] for ids in by_class.values() if i < len(ids)]
        i += 1
    return picked[:n]


def _do_generate(store: Store, params: dict, emit: EventSink) -> dict:
    from .. import models
    from ..engine import engine_for
    from ..rationales import generate_rationales
    from .experiment import check_generation_memory
    cfg = _config(params)
    video_ids = params.get("video_ids")
    if params.get("limit"):
        video_ids = _try_videos(store, int(params["limit"]), params.get("split", "train"))

    def load():
        check_generation_memory(cfg)
        emit(Event("log", "generate", message=f"loading {cfg.model.model}"))
        return models.load(cfg.model)
    engine = engine_for(cfg.engine, load)
    return generate_rationales(store, engine, cfg.frames, cfg.generation, prompt_id=params.get("prompt_id"),
                               video_ids=video_ids, split=params.get("split", "train"),
                               overwrite=bool(params.get("overwrite")), on_event=emit)


def _do_support(store: Store, params: dict, emit: EventSink) -> dict:
    from .. import models, quality
    cfg = _config(params)
    emit(Event("log", "support", message=f"loading {cfg.model.model}"))
    lm = models.load(cfg.model)
    quality.score_support(store, lm, params["prompt_id"], params["model"], on_event=emit)
    return {"scored": len(store.rationales(params["prompt_id"], params["model"]))}


def _do_experiment(store: Store, params: dict, emit: EventSink) -> dict:
    from .experiment import run_experiment, summarize
    name = run_experiment(store, _config(params), params["name"], on_event=emit)
    return {"experiment": name, "summary": summarize(store, name)}


def _do_explain(store: Store, params: dict, emit: EventSink) -> dict:
    """Each test prediction of a run gets the model's own rationale (the describe prompt)."""
    from .. import models, project
    from ..export import run_adapter
    run = store.run(params["run_id"])
    cfg = C.from_dict(C.ExperimentConfig, run["config"])
    adapter = run_adapter(store, run["id"]) if run["arm"] != "zero_shot" else None
    lm = models.load(cfg.model, adapter=adapter)
    gen = C.GenerationConfig(max_new_tokens=int(params.get("max_new_tokens", 96)))
    text = project.render(store, "describe")
    preds = store.predictions(run["id"])
    progress = Progress(emit, "explain", len(preds))
    for p in preds:
        clip = project.clip(store, store.video(p["video_id"]), cfg.frames)
        store.set_prediction_rationale(run["id"], p["video_id"],
                                       models.generate(lm, [text], [clip], cfg.frames, gen)[0])
        progress.advance()
    return {"explained": len(preds)}


def _do_label(store: Store, params: dict, emit: EventSink) -> dict:
    """A run (or the base model) labels the pool videos it has not labelled yet."""
    from .. import project
    from ..engine import server_for
    from ..pool import label_pool
    engine = server_for(project.settings(store).engine) if params.get("rationale") else None
    return label_pool(store, params["run_id"], rationale=bool(params.get("rationale")),
                      max_new_tokens=int(params.get("max_new_tokens", 96)), on_event=emit, engine=engine)


WORK: dict[str, Callable[[Store, dict, EventSink], dict]] = {
    "generate": _do_generate, "support": _do_support,
    "experiment": _do_experiment, "explain": _do_explain, "label": _do_label,
}


# ---- running, watching, stopping ------------------------------------------------------------

def _job_sink(store: Store, job_id: str) -> EventSink:
    record = store.event_sink(job_stream(job_id))
    return lambda event: None if event.kind in RUN_EVENTS else record(event)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def run_job(store: Store, job_id: str) -> dict:
    """Run a recorded job here, now; its state, result and events go to the store.

    Called by the child process (`python -m rbft job`), or in-process where a child
    cannot be used (a ZeroGPU Space). SIGTERM and SIGINT end it as "interrupted".
    """
    job = store.job(job_id)
    if job["kind"] not in WORK:
        raise ValueError(f"unknown job kind {job['kind']!r}; kinds are {', '.join(KINDS)}")
    store.update_job(job_id, status="running", pid=os.getpid(), started_at=time.time())
    emit = _job_sink(store, job_id)
    emit(Event("log", job["kind"], message=f"{job['kind']} started"))
    try:
        if sys.platform != "win32" and _in_main_thread():
            signal.signal(signal.SIGTERM, _raise_interrupt)
        result = WORK[job["kind"]](store, job["params"], emit)
    except KeyboardInterrupt:
        _end(store, job, "interrupted", "stopped before it finished; resume to continue")
        emit(Event("error", job["kind"], message=f"{job['kind']} stopped; resume to continue"))
        raise
    except Exception as e:
        from ..store import disk_problem
        message = disk_problem(e) or (str(e) if _is_user_error(e) else f"{type(e).__name__}: {e}")
        _end(store, job, "failed", message)
        emit(Event("error", job["kind"], message=f"{job['kind']} failed: {message}"))
        traceback.print_exc()
        raise
    store.update_job(job_id, status="done", result=result, finished_at=time.time())
    emit(Event("done", job["kind"], message=f"{job['kind']} finished"))
    return result


def _in_main_thread() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


def _is_user_error(e: Exception) -> bool:
    from ..data import VideoError
    from ..models import ModelLoadError
    from ..prompts import PromptError
    from ..store import ProjectError
    return isinstance(e, (ModelLoadError, PromptError, ProjectError, VideoError, ValueError,
                          FileNotFoundError))


def _end(store: Store, job: dict, status: str, error: str) -> None:
    store.update_job(job["id"], status=status, error=error, finished_at=time.time())
    if job["kind"] == "experiment":  # a run cut off mid-way must not look as if it still runs
        store.mark_runs(job["params"]["name"], "running", "interrupted", error)


def submit(store: Store, kind: str, params: dict, inline: bool = False) -> str:
    """Record a job and start it in a child process (or here, with inline=True).

    Raises JobBusy while another job of the project is active.
    """
    if kind not in WORK:
        raise ValueError(f"unknown job kind {kind!r}; kinds are {', '.join(KINDS)}")
    refresh(store)
    job_id = store.add_job(kind, params)
    if inline:
        try:
            run_job(store, job_id)
        except (Exception, KeyboardInterrupt):
            pass  # recorded in the store, which is what callers read
        return job_id
    log = store.root / "jobs" / f"{job_id}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    pid = launcher.start(store.root, job_id, log) or _start_cold(store.root, job_id, log)
    store.update_job(job_id, pid=pid, log=str(log))
    return job_id


def _start_cold(root: Path, job_id: str, log: Path) -> int:
    """A fresh interpreter (where the launcher cannot run: Windows)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rbft", "job", "--project", str(root), job_id],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            cwd=str(Path(__file__).resolve().parents[2]), start_new_session=True,
            preexec_fn=launcher.lower_priority if hasattr(os, "nice") else None)
    return proc.pid


def run_in_project(root: str, job_id: str) -> None:
    """What the launcher runs in a forked job process."""
    from ..project import open_project
    run_job(open_project(root), job_id)


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:  # our own child: reap it if it has ended (a zombie would look alive)
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass  # started by an earlier app process: ask the OS
    except OSError:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """A job forked away from the studio is reaped by init, which in a container may never do it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def refresh(store: Store, grace_s: float = 30.0) -> None:
    """Mark active jobs whose process is gone as interrupted (killed, or the app restarted)."""
    for job in store.jobs(status=Store.JOB_ACTIVE):
        if job["pid"] is None:
            stale = time.time() - job["created_at"] > grace_s
            if stale:
                _end(store, job, "interrupted", "it never started")
            continue
        if not _alive(job["pid"]):
            fresh = store.job(job["id"])  # it may have finished between the two reads
            if fresh["status"] in Store.JOB_ACTIVE:
                _end(store, job, "interrupted",
                     "its process ended without finishing (killed, or the app was restarted); "
                     "resume to continue")


def active(store: Store) -> dict | None:
    refresh(store)
    jobs = store.jobs(status=Store.JOB_ACTIVE, limit=1)
    return jobs[0] if jobs else None


def stop(store: Store, job_id: str) -> bool:
    """Ask a running job to stop (SIGINT: the work ends at the next step, checkpoints kept)."""
    job = store.job(job_id)
    if job["status"] not in Store.JOB_ACTIVE or not _alive(job["pid"]):
        refresh(store)
        return False
    store.update_job(job_id, status="stopping")
    os.kill(job["pid"], signal.SIGINT)
    return True


def resume(store: Store, job_id: str, inline: bool = False) -> str:
    """Start the same work again; what was done is kept and skipped."""
    job = store.job(job_id)
    return submit(store, job["kind"], job["params"], inline=inline)


def wait(store: Store, job_id: str, timeout_s: float = 600, poll_s: float = 0.5) -> dict:
    """Block until a job ends (for the CLI and tests); returns its row."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        refresh(store)
        job = store.job(job_id)
        if job["status"] not in Store.JOB_ACTIVE:
            return job
        time.sleep(poll_s)
    raise TimeoutError(f"job {job_id} still {store.job(job_id)['status']} after {timeout_s:.0f} s")


def job_events(store: Store, job_id: str, kind: str | None = None, after_id: int = 0) -> list[dict]:
    return store.events(job_stream(job_id), kind, after_id)
