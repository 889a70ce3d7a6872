"""The job bar: what the project's newest job is doing, read from the store on every tick."""
from __future__ import annotations

import time

from rbft.recipes import jobs
from rbft.store import Store

from .plots import eta_text, progress_html


def _rate_eta(events: list[dict]) -> float | None:
    """Seconds left, from the newest run of progress events of one stage (newest first)."""
    if not events:
        return None
    newest = events[0]
    if newest["data"].get("eta_s") is not None:
        return newest["data"]["eta_s"]
    tail = [newest]
    for e in events[1:]:
        if e["stage"] != newest["stage"] or e["done"] >= tail[-1]["done"]:
            break
        tail.append(e)
    oldest = tail[-1]
    steps, seconds = newest["done"] - oldest["done"], newest["time"] - oldest["time"]
    if steps <= 0 or seconds <= 0:
        return None
    return (newest["total"] - newest["done"]) * seconds / steps


def experiment_position(store: Store, job: dict) -> str:
    cfg = job["params"].get("config", {})
    total = len(cfg.get("arms", [])) * len(cfg.get("seeds", []))
    done = sum(r["status"] == "done" for r in store.runs(job["params"].get("name")))
    return f"run {min(done + 1, total)} of {total}" if job["status"] in Store.JOB_ACTIVE else f"{done} of {total} runs done"


def status(store: Store) -> dict:
    """{job, html, active} for the newest job; `html` is what the page shows."""
    job = jobs.active(store) or next(iter(store.jobs(limit=1)), None)
    if job is None:
        return {"job": None, "active": False,
                "html": '<div class="rbft-progress rbft-idle">No job has run in this project yet.</div>'}
    active = job["status"] in Store.JOB_ACTIVE
    progress = store.recent_events(jobs.job_stream(job["id"]), "progress", limit=60)
    label = f"{job['kind']} · {job['status']}"
    if job["kind"] == "experiment":
        label += f" · {experiment_position(store, job)}"
    if progress and active:
        e = progress[0]
        detail = f"{e['stage']} · {eta_text(_rate_eta(progress))}"
        return {"job": job, "active": True, "html": progress_html(label, e["done"], e["total"], detail)}
    if active:
        since = time.time() - (job["started_at"] or job["created_at"])
        return {"job": job, "active": True,
                "html": progress_html(label, 0, 1, f"starting ({since:.0f} s): loading the model")}
    detail = job["error"] or ""
    state = "done" if job["status"] == "done" else "failed"
    return {"job": job, "active": False, "html": progress_html(label, 1 if state == "done" else 0, 1,
                                                               detail, state)}
