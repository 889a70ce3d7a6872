"""The project's SQLite file (sqlite-utils, WAL mode). The only module that writes SQL.

A project is a folder: `project.db`, `cache/` (sampled frames), `runs/` (adapters,
checkpoints), `videos/` (uploads). Every step reads and writes through `Store`.
"""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sqlite_utils

from .events import Event
from .schema import create_tables

DB_NAME = "project.db"


def _now() -> float:
    return time.time()


class Store:
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ProjectError(f"cannot create the project folder {self.root}: {e.strerror}") from e
        try:
            self.db = sqlite_utils.Database(self.root / DB_NAME)
            self.db.enable_wal()
            create_tables(self.db)
        except Exception as e:  # sqlite3.OperationalError on a read-only folder, full disk...
            why = disk_problem(e) or str(e)
            raise ProjectError(f"cannot open the project database in {self.root}: {why}") from e

    # ---- project settings ---------------------------------------------------------
    def get_meta(self, key: str, default: Any = None) -> Any:
        try:
            return json.loads(self.db["meta"].get(key)["value"])
        except sqlite_utils.db.NotFoundError:
            return default

    def set_meta(self, key: str, value: Any) -> None:
        self.db["meta"].upsert({"key": key, "value": json.dumps(value)}, pk="key")

    # ---- videos -------------------------------------------------------------------
    def resolve(self, path: str) -> Path:
        """A stored video path (relative to the project when inside it) as a real path."""
        p = Path(path)
        return p if p.is_absolute() else self.root / p

    def relative(self, path: Path) -> str:
        path = Path(path).resolve()
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def add_videos(self, rows: Iterable[dict]) -> None:
        rows = [dict(r, added_at=r.get("added_at") or _now()) for r in rows]
        with self.db.conn:
            self.db["videos"].insert_all(rows, pk="id", ignore=True)

    def videos(self, split: str | None = None, label: str | None = None) -> list[dict]:
        """The labelled videos (of a split, of a class); split="pool" gives the unlabelled ones."""
        where, args = [], []
        if split:
            where.append("split = ?")
            args.append(split)
        else:
            where.append("split != 'pool'")
        if label:
            where.append("label = ?")
            args.append(label)
        return list(self.db["videos"].rows_where(" and ".join(where) or None, args,
                                                 order_by="id"))

    def video(self, video_id: str) -> dict:
        return self.db["videos"].get(video_id)

    def video_by_sha(self, sha256: str) -> dict | None:
        rows = list(self.db["videos"].rows_where("sha256 = ?", [sha256], limit=1))
        return rows[0] if rows else None

    def record_import_error(self, path: str, reason: str) -> None:
        self.db["import_errors"].upsert({"path": path, "reason": reason, "at": _now()}, pk="path")

    def clear_import_error(self, path: str) -> None:
        self.db.execute("delete from import_errors where path = ?", [path])
        self.db.conn.commit()

    def import_errors(self) -> list[dict]:
        return list(self.db["import_errors"].rows_where(order_by="path"))

    def labels(self) -> list[str]:
        """The project's classes: the declared ones first, then any label seen in the videos."""
        declared = [c["name"] for c in self.get_meta("classes", [])]
        seen = [r["label"] for r in self.db.query(
            "select distinct label from videos where label is not null order by label")]
        return declared + [s for s in seen if s not in declared]

    # ---- the pool: unlabelled videos, their predictions, the labels given to them -----------
    def save_pool_predictions(self, run_id: str, rows: list[dict]) -> None:
        rows = [dict(r, run_id=run_id, scores=json.dumps(r["scores"]), created_at=_now()) for r in rows]
        with self.db.conn:
            self.db["pool_predictions"].upsert_all(rows, pk=("video_id", "run_id"))

    def pool_predictions(self, run_id: str, split: str | None = "pool") -> list[dict]:
        """A run's stored predictions with their video's label, split and provenance."""
        sql = ("select p.*, v.path, v.label, v.split, v.label_source, v.skipped_at from pool_predictions p "
               "join videos v on v.id = p.video_id where p.run_id = ?" + (" and v.split = ?" if split else "")
               + " order by p.video_id")
        rows = list(self.db.query(sql, [run_id, split] if split else [run_id]))
        for r in rows:
            r["scores"] = json.loads(r["scores"])
        return rows

    def pool_runs(self) -> list[str]:
        return [r["run_id"] for r in self.db.query(
            "select run_id, max(created_at) as last from pool_predictions group by run_id order by last desc")]

    def give_label(self, video_id: str, label: str, source: str, run_id: str | None = None,
                   confidence: float | None = None) -> None:
        """A pool video becomes a labelled training video, with where its label came from."""
        with self.db.conn:
            self.db["videos"].update(video_id, {"label": label, "split": "train", "label_source": source,
                                                "label_run": run_id, "label_confidence": confidence,
                                                "labelled_at": _now()})

    def skip(self, video_id: str) -> None:
        with self.db.conn:
            self.db["videos"].update(video_id, {"skipped_at": _now()})

    def label_sources(self, split: str | None = "train") -> dict[str, int]:
        """How many labelled videos (of a split) came from the import, a person, the model."""
        sql = ("select coalesce(label_source, 'imported') as source, count(*) as n from videos "
               "where split != 'pool'" + (" and split = ?" if split else "") + " group by source")
        counts = {"imported": 0, "person": 0, "model": 0}
        counts.update({r["source"]: r["n"] for r in self.db.query(sql, [split] if split else [])})
        return counts

    def save_auto_accept(self, run_id: str, target: float, threshold: float | None, evidence: dict,
                         accepted: int) -> int:
        with self.db.conn:
            return self.db["auto_accepts"].insert({
                "run_id": run_id, "target": target, "threshold": threshold, "evidence": json.dumps(evidence),
                "accepted": accepted, "created_at": _now()}).last_pk

    def auto_accepts(self) -> list[dict]:
        rows = list(self.db["auto_accepts"].rows_where(order_by="id"))
        for r in rows:
            r["evidence"] = json.loads(r["evidence"])
        return rows

    # ---- prompts ------------------------------------------------------------------
    def save_prompt(self, kind: str, template: str) -> int:
        """Store a template as the newest version of its kind; an unchanged template keeps its id.
        The read and the insert share one write transaction, so two processes seeding the same
        default (the processes of a torchrun) do not both write version 1."""
        conn = self.db.conn
        conn.execute("begin immediate")
        try:
            latest = conn.execute("select id, version, template from prompts where kind = ? "
                                  "order by version desc limit 1", [kind]).fetchone()
            if latest and latest[2] == template:
                conn.execute("commit")
                return latest[0]
            cursor = conn.execute("insert into prompts (kind, version, template, created_at) values (?, ?, ?, ?)",
                                  [kind, (latest[1] + 1) if latest else 1, template, _now()])
            conn.execute("commit")
            return cursor.lastrowid
        except BaseException:
            conn.execute("rollback")
            raise

    def latest_prompt(self, kind: str) -> dict | None:
        rows = list(self.db["prompts"].rows_where("kind = ?", [kind], order_by="version desc",
                                                  limit=1))
        return rows[0] if rows else None

    def prompt(self, prompt_id: int) -> dict:
        return self.db["prompts"].get(prompt_id)

    def prompts(self, kind: str | None = None) -> list[dict]:
        if kind:
            return list(self.db["prompts"].rows_where("kind = ?", [kind], order_by="version"))
        return list(self.db["prompts"].rows_where(order_by="kind, version"))

    # ---- rationales ---------------------------------------------------------------
    def save_rationale(self, video_id: str, prompt_id: int, model: str, text: str,
                       settings: dict, status: str = "generated") -> None:
        with self.db.conn:
            self.db["rationales"].upsert({
                "video_id": video_id, "prompt_id": prompt_id, "model": model, "text": text,
                "status": status, "settings": json.dumps(settings), "created_at": _now(),
            }, pk=("video_id", "prompt_id", "model"))

    def set_rationale(self, video_id: str, prompt_id: int, model: str, *,
                      text: str | None = None, status: str | None = None) -> None:
        """A human edit, accept or reject of one rationale."""
        changes = {k: v for k, v in (("text", text), ("status", status)) if v is not None}
        with self.db.conn:
            self.db["rationales"].update((video_id, prompt_id, model), changes)

    def set_support(self, video_id: str, prompt_id: int, model: str, pred: str, ok: bool,
                    margin: float, probs: dict | None = None, judge: str | None = None) -> None:
        with self.db.conn:
            self.db["rationales"].update((video_id, prompt_id, model), {
                "support_pred": pred, "support_ok": int(ok), "support_margin": margin,
                "support_probs": json.dumps(probs) if probs else None, "support_judge": judge})

    def rationales(self, prompt_id: int | None = None, model: str | None = None) -> list[dict]:
        """Rationales with their video's label and split; support_probs read from its JSON."""
        where, args = [], []
        if prompt_id is not None:
            where.append("r.prompt_id = ?")
            args.append(prompt_id)
        if model is not None:
            where.append("r.model = ?")
            args.append(model)
        sql = ("select r.*, v.label, v.split from rationales r join videos v on v.id = r.video_id"
               + (" where " + " and ".join(where) if where else "") + " order by r.video_id")
        return [dict(r, support_probs=json.loads(r["support_probs"]) if r.get("support_probs") else None)
                for r in self.db.query(sql, args)]

    def rationale_generators(self) -> list[dict]:
        """Which (prompt, model) pairs have rationales, newest first."""
        return list(self.db.query(
            "select prompt_id, model, count(*) as n, max(created_at) as last from rationales "
            "group by prompt_id, model order by last desc"))

    # ---- runs, predictions, events -----------------------------------------------
    def start_run(self, arm: str, seed: int, config: dict, output_dir: str,
                  experiment: str = "", run_id: str | None = None) -> str:
        run_id = run_id or f"{arm}-s{seed}-{uuid.uuid4().hex[:8]}"
        with self.db.conn:
            self.db["runs"].upsert({
                "id": run_id, "experiment": experiment, "arm": arm, "seed": seed,
                "status": "running", "config": json.dumps(config), "output_dir": output_dir,
                "started_at": _now(), "finished_at": None, "error": None,
            }, pk="id")
        return run_id

    def finish_run(self, run_id: str, metrics: dict | None = None, status: str = "done",
                   error: str | None = None) -> None:
        with self.db.conn:
            self.db["runs"].update(run_id, {
                "status": status, "metrics": json.dumps(metrics) if metrics is not None else None,
                "error": error, "finished_at": _now()})

    def run(self, run_id: str) -> dict:
        row = self.db["runs"].get(run_id)
        for key in ("config", "metrics"):
            row[key] = json.loads(row[key]) if row[key] else None
        return row

    def runs(self, experiment: str | None = None) -> list[dict]:
        rows = self.db["runs"].rows_where("experiment = ?" if experiment else None,
                                          [experiment] if experiment else [],
                                          order_by="started_at")
        return [self.run(r["id"]) for r in rows]

    def save_predictions(self, run_id: str, rows: list[dict]) -> None:
        rows = [dict(r, run_id=run_id, scores=json.dumps(r["scores"])) for r in rows]
        with self.db.conn:
            self.db.execute("delete from predictions where run_id = ?", [run_id])
            self.db["predictions"].insert_all(rows, pk=("run_id", "video_id"))

    def predictions(self, run_id: str) -> list[dict]:
        rows = self.db["predictions"].rows_where("run_id = ?", [run_id], order_by="video_id")
        return [dict(r, scores=json.loads(r["scores"])) for r in rows]

    def set_prediction_rationale(self, run_id: str, video_id: str, text: str) -> None:
        with self.db.conn:
            self.db["predictions"].update((run_id, video_id), {"rationale": text})

    def record_event(self, run_id: str, event: Event) -> None:
        with self.db.conn:
            self.db["events"].insert({
                "run_id": run_id, "kind": event.kind, "stage": event.stage, "done": event.done,
                "total": event.total, "message": event.message,
                "data": json.dumps(event.data, default=float), "time": event.time})

    def events(self, run_id: str, kind: str | None = None, after_id: int = 0) -> list[dict]:
        where, args = "run_id = ? and id > ?", [run_id, after_id]
        if kind:
            where += " and kind = ?"
            args.append(kind)
        return [dict(r, data=json.loads(r["data"]))
                for r in self.db["events"].rows_where(where, args, order_by="id")]

    def recent_events(self, run_id: str, kind: str | None = None, limit: int = 50) -> list[dict]:
        """The newest events of a stream, newest first."""
        where, args = "run_id = ?", [run_id]
        if kind:
            where += " and kind = ?"
            args.append(kind)
        return [dict(r, data=json.loads(r["data"]))
                for r in self.db["events"].rows_where(where, args, order_by="id desc", limit=limit)]

    def event_sink(self, run_id: str):
        return lambda event: self.record_event(run_id, event)

    def last_event_id(self, run_ids: list[str]) -> int:
        """The newest event id of these runs: a cheap "has anything changed?" for the UI."""
        if not run_ids:
            return 0
        marks = ",".join("?" * len(run_ids))
        row = next(self.db.query(f"select max(id) as m from events where run_id in ({marks})", run_ids))
        return row["m"] or 0

    # ---- background jobs ------------------------------------------------------------
    JOB_ACTIVE = ("queued", "running", "stopping")

    def add_job(self, kind: str, params: dict) -> str:
        """Record a new job, refusing while another is active: one job per project at a time.

        The check and the insert share one write transaction, so two clicks in two
        browser tabs cannot both start a job.
        """
        job_id = f"job-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        conn = self.db.conn
        conn.execute("begin immediate")
        try:
            marks = ",".join("?" * len(self.JOB_ACTIVE))
            busy = conn.execute(f"select id, kind from jobs where status in ({marks})",
                                self.JOB_ACTIVE).fetchone()
            if busy:
                raise JobBusy(f"job {busy[0]} ({busy[1]}) is still running in this project; "
                              "stop it or wait for it to finish")
            conn.execute("insert into jobs (id, kind, params, status, created_at) values (?, ?, ?, ?, ?)",
                         [job_id, kind, json.dumps(params), "queued", _now()])
            conn.execute("commit")
        except BaseException:
            conn.execute("rollback")
            raise
        return job_id

    def update_job(self, job_id: str, **changes: Any) -> None:
        for key in ("params", "result"):
            if key in changes and not isinstance(changes[key], str) and changes[key] is not None:
                changes[key] = json.dumps(changes[key])
        with self.db.conn:
            self.db["jobs"].update(job_id, changes)

    def job(self, job_id: str) -> dict:
        row = self.db["jobs"].get(job_id)
        return dict(row, params=json.loads(row["params"]),
                    result=json.loads(row["result"]) if row["result"] else None)

    def jobs(self, status: tuple[str, ...] | None = None, limit: int = 50) -> list[dict]:
        """Newest first."""
        where, args = None, []
        if status:
            where = "status in (" + ",".join("?" * len(status)) + ")"
            args = list(status)
        rows = self.db["jobs"].rows_where(where, args, order_by="created_at desc", limit=limit)
        return [self.job(r["id"]) for r in rows]

    def mark_runs(self, experiment: str, from_status: str, to_status: str, error: str) -> None:
        with self.db.conn:
            self.db.execute("update runs set status = ?, error = ?, finished_at = ? "
                            "where experiment = ? and status = ?",
                            [to_status, error, _now(), experiment, from_status])


def disk_problem(e: BaseException) -> str | None:
    """A plain sentence for a full disk or an unwritable folder (from SQLite or the OS), else None."""
    import errno
    import sqlite3
    text = str(e).lower()
    if isinstance(e, sqlite3.OperationalError):
        if "disk is full" in text or "disk i/o" in text:
            return ("the disk is full (or a file-size limit was reached) while writing the project; "
                    "free some space and run it again: finished work is kept")
        if "readonly" in text or "read-only" in text or "unable to open" in text:
            return "the project folder cannot be written; check its permissions or pick another folder"
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return (f"the disk is full (or a file-size limit was reached) while writing {e.filename or 'a file'}; "
                "free some space and run it again: finished work is kept")
    if isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{e.filename or 'a file'} cannot be written ({e.strerror}); check the folder's permissions"
    return None


class JobBusy(Exception):
    """A second job was asked for while one is running."""


class ProjectError(Exception):
    """A problem with the project folder or its database, said plainly."""
