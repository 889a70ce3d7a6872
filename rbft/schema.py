"""The tables of a project's SQLite file, created where missing (older projects gain new tables)."""
from __future__ import annotations

import sqlite_utils


def create_tables(db: sqlite_utils.Database) -> None:
    if "meta" not in db.table_names():
        db["meta"].create({"key": str, "value": str}, pk="key")
    if "videos" not in db.table_names():
        db["videos"].create({
            "id": str, "path": str, "label": str, "split": str, "sha256": str,
            "n_frames": int, "fps": float, "width": int, "height": int,
            "duration_s": float, "added_at": float,
        }, pk="id")
        db["videos"].create_index(["sha256"])
    if "import_errors" not in db.table_names():
        db["import_errors"].create({"path": str, "reason": str, "at": float}, pk="path")
    if "prompts" not in db.table_names():
        db["prompts"].create({"id": int, "kind": str, "version": int, "template": str,
                              "created_at": float}, pk="id")
        db["prompts"].create_index(["kind", "version"], unique=True)
    if "rationales" not in db.table_names():
        db["rationales"].create({
            "video_id": str, "prompt_id": int, "model": str, "text": str,
            "status": str, "settings": str, "created_at": float,
            # label support, scored by a model from the rationale text alone
            "support_pred": str, "support_ok": int, "support_margin": float,
        }, pk=("video_id", "prompt_id", "model"))
    if "runs" not in db.table_names():
        db["runs"].create({
            "id": str, "experiment": str, "arm": str, "seed": int, "status": str,
            "config": str, "output_dir": str, "metrics": str, "error": str,
            "started_at": float, "finished_at": float,
        }, pk="id")
    if "predictions" not in db.table_names():
        db["predictions"].create({
            "run_id": str, "video_id": str, "label": str, "pred": str,
            "scores": str, "rationale": str,
        }, pk=("run_id", "video_id"))
    if "events" not in db.table_names():
        db["events"].create({
            "id": int, "run_id": str, "kind": str, "stage": str, "done": int,
            "total": int, "message": str, "data": str, "time": float,
        }, pk="id")
        db["events"].create_index(["run_id", "id"])
    # where a label came from: NULL (imported with it), "person" (reviewed in the pool), "model"
    # (accepted automatically above a precision threshold); pool videos have split "pool", no label
    for column, kind in (("label_source", str), ("label_run", str), ("label_confidence", float),
                         ("labelled_at", float), ("skipped_at", float)):
        if column not in db["videos"].columns_dict:
            db["videos"].add_column(column, kind)
    # the judge's calibrated class probabilities for a rationale, and which model judged
    for column in ("support_probs", "support_judge"):
        if column not in db["rationales"].columns_dict:
            db["rationales"].add_column(column, str)
    if "pool_predictions" not in db.table_names():
        db["pool_predictions"].create({
            "video_id": str, "run_id": str, "pred": str, "scores": str, "confidence": float,
            "margin": float, "rationale": str, "created_at": float,
        }, pk=("video_id", "run_id"))
    if "auto_accepts" not in db.table_names():
        db["auto_accepts"].create({
            "id": int, "run_id": str, "target": float, "threshold": float, "evidence": str,
            "accepted": int, "created_at": float,
        }, pk="id")
    if "jobs" not in db.table_names():
        db["jobs"].create({
            "id": str, "kind": str, "params": str, "status": str, "pid": int,
            "error": str, "result": str, "log": str,
            "created_at": float, "started_at": float, "finished_at": float,
        }, pk="id")
