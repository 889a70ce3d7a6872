"""Ingest: a folder (one subfolder per class) or a CSV/JSONL manifest into the project store.

Every file is opened with opencv; a file that cannot be used gets a plain reason in
`import_errors` and the rest go on. Videos are keyed by a hash of their content, so
re-running ingest adds only new files and a copy under a second name is reported
as a duplicate, not imported twice.
"""
from __future__ import annotations

import csv
import io
import json
import os
import random
import re
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from .events import EventSink, Progress, ignore
from .frames import file_sha256
from .store import Store

VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v", ".wmv", ".flv"}
MANIFEST_EXTENSIONS = {".csv", ".tsv", ".jsonl", ".ndjson"}
SPLITS = ("train", "val", "test")


class VideoError(Exception):
    """Why a file cannot be used as a video, in words a user understands."""


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    already_present: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    pooled: list[str] = field(default_factory=list)   # added without a label, to the pool

    def summary(self) -> str:
        pool = f" ({len(self.pooled)} unlabelled, into the pool)" if self.pooled else ""
        lines = [f"added {len(self.added)} videos{pool}, {len(self.already_present)} already in the project, "
                 f"{len(self.errors)} could not be used"]
        lines += [f"  error: {path}: {reason}" for path, reason in self.errors.items()]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def probe(path: str | Path) -> dict:
    """Open a video and read its shape, or raise VideoError with the reason."""
    path = Path(path)
    if not path.exists():
        raise VideoError("file not found")
    if not path.is_file():
        raise VideoError("not a file")
    try:
        size = path.stat().st_size
        with open(path, "rb"):
            pass
    except PermissionError:
        raise VideoError("permission denied: the file cannot be read") from None
    if size == 0:
        raise VideoError("the file is empty (0 bytes)")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise VideoError("opencv cannot open it: not a video, or a damaged/truncated file")
        ok, frame = cap.read()
        if not ok or frame is None:
            raise VideoError("it opens but no frame can be decoded (damaged or truncated)")
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if count <= 0:  # no frame count in the header: count, without keeping frames
            count = 1
            while cap.grab():
                count += 1
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0)
        height, width = frame.shape[:2]
    finally:
        cap.release()
    if count < 2:
        raise VideoError(f"it has only {count} frame; at least 2 are needed to show anything over time")
    return {"n_frames": count, "fps": fps or None, "width": width, "height": height,
            "duration_s": count / fps if fps > 0 else None}


def read_rows(path: Path) -> list[dict]:
    """Rows of a CSV (any common delimiter, BOM tolerated) or JSONL file, keys stripped and lowercased."""
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path.name} line {n} is not valid JSON: {e.msg}") from None
                if not isinstance(row, dict):
                    raise ValueError(f"{path.name} line {n} is not a JSON object")
                rows.append({str(k).strip().lower(): v for k, v in row.items()})
        return rows
    try:
        dialect = csv.Sniffer().sniff(text.split("\n", 1)[0], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    return [{(k or "").strip().lower(): (v or "").strip() for k, v in r.items()}
            for r in csv.DictReader(io.StringIO(text), dialect=dialect)]


def read_manifest(path: Path) -> list[dict]:
    """Rows of {path, label, split?} from CSV or JSONL."""
    rows = read_rows(path)
    if rows and path.suffix.lower() not in (".jsonl", ".ndjson") and "path" not in rows[0]:
        raise ValueError(f"{path.name} has no 'path' column; its columns are {list(rows[0])}. "
                         "A manifest needs path,label[,split].")
    return rows


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == r or r in path.parents for r in roots)


def collect(source: str | Path, project_root: Path, pool: bool = False) -> tuple[list[dict], dict[str, str]]:
    """Candidate rows {file, label, split} from a folder or manifest, and errors found on the way.
    With pool=True a video without a label (at the folder's top level, or an empty label in the
    manifest) is a pool row (label None) instead of an error."""
    source = Path(source).resolve()
    errors: dict[str, str] = {}
    if source.is_dir():
        rows = []
        for file in sorted(source.rglob("*")):
            if not file.is_file() or file.name.startswith("."):
                continue
            rel = file.relative_to(source)
            if file.suffix.lower() not in VIDEO_EXTENSIONS:
                continue
            if len(rel.parts) < 2:
                if pool:
                    rows.append({"file": file, "label": None, "split": "pool"})
                else:
                    errors[str(file)] = ("no label: put each video in a subfolder named after its "
                                         "class, use a manifest, or import it into the pool (unlabelled)")
                continue
            rows.append({"file": file, "label": rel.parts[0], "split": None})
        return rows, errors
    if not source.exists():
        raise FileNotFoundError(f"{source} does not exist")
    if source.suffix.lower() not in MANIFEST_EXTENSIONS:
        raise ValueError(f"{source.name}: give a folder (one subfolder per class) or a "
                         ".csv / .jsonl manifest with path,label[,split]")
    roots = [source.parent, project_root]
    rows = []
    for n, row in enumerate(read_manifest(source), 1):
        raw = str(row.get("path") or "").strip()
        if not raw:
            errors[f"{source.name} row {n}"] = "no path"
            continue
        file = (source.parent / raw).resolve()
        if not _inside(file, roots):
            errors[raw] = ("the path points outside the manifest's folder and the project; "
                           "copy the video inside one of them")
            continue
        label = str(row.get("label") or "").strip()
        if not label:
            if pool:
                rows.append({"file": file, "label": None, "split": "pool"})
            else:
                errors[str(file)] = "no label in the manifest row (import it into the pool to leave it unlabelled)"
            continue
        split = str(row.get("split") or "").strip().lower() or None
        if split and split not in SPLITS:
            errors[str(file)] = f"unknown split {split!r}: use train, val or test"
            continue
        rows.append({"file": file, "label": label, "split": split})
    return rows, errors


def _canonical_label(label: str, known: list[str], warnings: list[str]) -> str:
    """Match a label to an existing class when only case or spacing differ (and say so)."""
    clean = " ".join(label.split())
    for k in known:
        if k == label:
            return k
    for k in known:
        if k.casefold() == clean.casefold():
            warnings.append(f"label {label!r} was read as the existing class {k!r}")
            return k
    if clean != label:
        warnings.append(f"label {label!r} had extra spaces; stored as {clean!r}")
    return clean


def stratified_split(ids_by_label: dict[str, list[str]], seed: int, val: float = 0.2,
                     test: float = 0.2, warnings: list[str] | None = None) -> dict[str, str]:
    """Per class: shuffle with the seed, then test and val shares, at least one each from 3 videos up."""
    out = {}
    for label, ids in sorted(ids_by_label.items()):
        ids = sorted(ids)
        random.Random(f"{seed}:{label}").shuffle(ids)
        n = len(ids)
        n_test = max(1, round(n * test)) if n >= 2 else 0
        n_val = max(1, round(n * val)) if n >= 3 else 0
        if n_test + n_val >= n:  # always keep at least one for training
            n_val = max(0, n - n_test - 1)
        for i, vid in enumerate(ids):
            out[vid] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
        if warnings is not None and n < 3:
            warnings.append(f"class {label!r} has only {n} new video(s): "
                            + ("it is used for training only and cannot be evaluated" if n == 1
                               else "one goes to test, none to validation"))
    return out


def ingest(store: Store, source: str | Path, seed: int = 0, on_event: EventSink = ignore,
           pool: bool = False) -> IngestReport:
    """Add the videos of a folder or manifest to the project; never changes what is already there.
    With pool=True, videos without a label join the pool (unlabelled, split "pool")."""
    report = IngestReport()
    rows, report.errors = collect(source, store.root, pool=pool)
    known = store.labels()
    progress = Progress(on_event, "ingest", len(rows))
    new_rows, seen_sha = [], {}
    for row in rows:
        file: Path = row["file"]
        key = str(file)
        try:
            info = probe(file)
            sha = file_sha256(file)
        except VideoError as e:
            report.errors[key] = str(e)
            progress.advance(message=f"{file.name}: {e}")
            continue
        existing = store.video_by_sha(sha)
        if existing or sha in seen_sha:
            first = existing["path"] if existing else seen_sha[sha]
            if existing and store.resolve(existing["path"]).resolve() == file:
                report.already_present.append(key)
            else:
                report.warnings.append(f"{key} has the same content as {first}; kept once")
            progress.advance()
            continue
        label = _canonical_label(row["label"], known, report.warnings) if row["label"] else None
        if label and label not in known:
            known.append(label)
        seen_sha[sha] = key
        new_rows.append({"id": sha[:16], "path": store.relative(file), "label": label,
                         "split": row["split"], "sha256": sha, **info})
        store.clear_import_error(key)
        progress.advance()
    unsplit = defaultdict(list)
    for r in new_rows:
        if r["split"] is None:
            unsplit[r["label"]].append(r["id"])
    splits = stratified_split(unsplit, seed, warnings=report.warnings)
    for r in new_rows:
        r["split"] = r["split"] or splits[r["id"]]
    store.add_videos(new_rows)
    for path, reason in report.errors.items():
        store.record_import_error(path, reason)
    report.added = [r["path"] for r in new_rows]
    report.pooled = [r["path"] for r in new_rows if r["split"] == "pool"]
    return report


def safe_filename(name: str) -> str:
    """A file name that stays where it is put: no folders, no leading dots, no odd characters."""
    base = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    clean = re.sub(r"[^\w.\- ]+", "_", base).strip(" .")
    return clean[-150:] or "video"


def import_files(store: Store, files: list[str | Path], label: str | None = None, seed: int = 0,
                 on_event: EventSink = ignore, pool: bool = False) -> IngestReport:
    """Uploaded files into the project, then ingested like a manifest.

    Each file is copied to `videos/uploads/<batch>/` under a safe name (a name cannot
    reach outside that folder). Labels come from `label` (every video one class) or
    from one uploaded manifest whose rows name the uploaded videos by file name.
    """
    files = [Path(f) for f in files]
    manifests = [f for f in files if f.suffix.lower() in MANIFEST_EXTENSIONS]
    videos = [f for f in files if f not in manifests]
    if len(manifests) > 1:
        raise ValueError("upload one manifest at a time")
    if not videos:
        raise ValueError("no videos among the uploaded files")
    label = (label or "").strip()
    if not manifests and not label and not pool:
        raise ValueError("say which class the uploaded videos are, upload a manifest "
                         "(path,label[,split]) with them, or add them to the pool (unlabelled)")
    batch = store.root / "videos" / "uploads" / time.strftime("%Y%m%d-%H%M%S")
    while batch.exists():
        batch = batch.with_name(batch.name + "_")
    batch.mkdir(parents=True)
    copied: dict[str, str] = {}
    for f in videos:
        name = safe_filename(f.name)
        stem, n = Path(name), 1
        while name in copied.values():
            n += 1
            name = f"{stem.stem}_{n}{stem.suffix}"
        try:
            shutil.copyfile(f, batch / name)
        except OSError as e:
            raise ValueError(f"cannot copy {f.name} into the project: {e.strerror}") from None
        copied[f.name] = name
    report_errors: dict[str, str] = {}
    if manifests:
        by_name = {safe_filename(k): v for k, v in copied.items()}
        rows = []
        for n, row in enumerate(read_manifest(manifests[0]), 1):
            name = by_name.get(safe_filename(str(row.get("path") or "")))
            if name is None:
                report_errors[f"{manifests[0].name} row {n}"] = (
                    f"{row.get('path')!r} is not among the uploaded videos")
                continue
            rows.append({"path": name, "label": row.get("label", ""), "split": row.get("split", "")})
    else:
        rows = [{"path": name, "label": label, "split": ""} for name in copied.values()]
    manifest = batch / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=["path", "label", "split"])
        writer.writeheader()
        writer.writerows(rows)
    report = ingest(store, manifest, seed=seed, on_event=on_event, pool=pool)
    report.errors.update(report_errors)
    for path, reason in report_errors.items():
        store.record_import_error(path, reason)
    return report


def _link_or_copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        return
    try:
        os.link(src, dest)  # same disk: no second copy of the bytes
    except OSError:
        shutil.copyfile(src, dest)


def import_folder(store: Store, source: str | Path, seed: int = 0, on_event: EventSink = ignore,
                  name: str | None = None, pool: bool = False) -> IngestReport:
    """A class-per-subfolder folder brought into the project (hard links where possible, else copies)
    under `videos/imported/<folder>/`, then ingested: the project holds everything it uses, and the
    studio can play every clip. A manifest is ingested where its files are."""
    source = Path(source).expanduser().resolve()
    if not source.is_dir():
        return ingest(store, source, seed=seed, on_event=on_event, pool=pool)
    dest = store.root / "videos" / "imported" / safe_filename(name or source.name)
    if store.root == source or store.root in source.parents:
        return ingest(store, source, seed=seed, on_event=on_event, pool=pool)  # already inside the project
    rows, errors = collect(source, store.root, pool=pool)
    for row in rows:
        folder = dest / safe_filename(row["label"]) if row["label"] else dest
        target = folder / safe_filename(row["file"].name)
        try:
            _link_or_copy(row["file"], target)
        except OSError as e:
            errors[str(row["file"])] = f"cannot copy it into the project: {e.strerror}"
    report = ingest(store, dest, seed=seed, on_event=on_event, pool=pool) if dest.exists() else IngestReport()
    report.errors.update(errors)
    for path, reason in errors.items():
        store.record_import_error(path, reason)
    return report
