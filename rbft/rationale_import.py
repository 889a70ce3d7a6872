"""Rationales from elsewhere: annotators' notes, a stronger model's output, text written by hand.

An imported file becomes a rationale set of its own, stored like a generated one under the model
name `import:<source>`, so quality stats, review, filters, Stage I and the benchmark treat it the
same way. A row names its video by id, stored path, or file name; rows that match no video, match
several, repeat a video or have no text are reported by row and skipped, and every other row lands.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from . import project
from .data import read_rows
from .store import Store

PREFIX = "import:"
VIDEO_KEYS = ("video", "video_id", "id", "file", "path", "filename")
TEXT_KEYS = ("text", "rationale", "reasoning", "description")


@dataclass
class ImportReport:
    sets: list = field(default_factory=list)   # the model names the rows were stored under
    imported: int = 0
    replaced: int = 0
    problems: list[str] = field(default_factory=list)   # "row N (key): why", one per skipped row

    def summary(self) -> str:
        lines = [f"{self.imported} rationales imported as {', '.join(self.sets) or 'no set'}"
                 + (f" ({self.replaced} replaced an earlier import)" if self.replaced else "")]
        if self.problems:
            lines.append(f"{len(self.problems)} rows skipped:")
            lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


def set_name(source: str) -> str:
    """The model name an imported set is stored under."""
    return PREFIX + source


def is_imported(model: str) -> bool:
    return str(model).startswith(PREFIX)


def imported_sets(store: Store) -> list[str]:
    """The project's imported sets, newest first."""
    return [g["model"] for g in store.rationale_generators() if is_imported(g["model"])]


def clean_source(name: str) -> str:
    clean = re.sub(r"[^\w.\- ]+", "_", str(name)).strip(" ._")
    if not clean:
        raise ValueError("a rationale source needs a name (letters, digits, . - _)")
    return clean[:60]


def _matcher(store: Store, videos: list[dict]):
    """A function from a row's video key to (video id, None) or (None, why not)."""
    by_id = {v["id"]: v["id"] for v in videos}
    by_path = {v["path"]: v["id"] for v in videos}
    by_real = {str(store.resolve(v["path"]).resolve()): v["id"] for v in videos}
    by_name: dict[str, list[str]] = {}
    for v in videos:
        by_name.setdefault(Path(v["path"]).name, []).append(v["id"])

    def match(key: str, base: Path) -> tuple[str | None, str | None]:
        key = key.strip().replace("\\", "/")
        for table in (by_id, by_path):
            if key in table:
                return table[key], None
        for real in (Path(key), base / key, store.root / key):
            found = by_real.get(str(real.resolve()))
            if found:
                return found, None
        named = by_name.get(Path(key).name, [])
        if len(named) == 1:
            return named[0], None
        if len(named) > 1:
            return None, (f"{len(named)} videos are called {Path(key).name}; give the path "
                          "inside the project or the video id")
        return None, "matches no video in the project"
    return match


def import_rationales(store: Store, path: str | Path, source: str | None = None) -> ImportReport:
    """Read a CSV or JSONL file of (video, text[, source]) rows into the project."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    rows = read_rows(path)
    if not rows:
        raise ValueError(f"{path.name} has no rows")
    columns = set().union(*rows)
    video_key = next((k for k in VIDEO_KEYS if k in columns), None)
    text_key = next((k for k in TEXT_KEYS if k in columns), None)
    if not video_key or not text_key:
        raise ValueError(f"{path.name} needs a column naming the video ({' / '.join(VIDEO_KEYS)}) and "
                         f"one with the text ({' / '.join(TEXT_KEYS)}); its columns are {sorted(columns)}")
    default_source = clean_source(source or path.stem)
    prompt_id = project.prompt(store, "rationale")["id"]
    match = _matcher(store, store.videos() + store.videos(split="pool"))
    report = ImportReport()
    seen: dict[tuple[str, str], int] = {}
    kept = []
    for n, row in enumerate(rows, 2 if path.suffix.lower() == ".csv" else 1):
        key = str(row.get(video_key) or "").strip()
        text = str(row.get(text_key) or "").strip()
        where = f"{'row' if path.suffix.lower() == '.csv' else 'line'} {n}" + (f" ({key})" if key else "")
        if not key:
            report.problems.append(f"{where}: no video named")
            continue
        if not text:
            report.problems.append(f"{where}: empty text")
            continue
        video_id, why = match(key, path.parent)
        if why:
            report.problems.append(f"{where}: {why}")
            continue
        row_source = clean_source(row["source"]) if str(row.get("source") or "").strip() and not source \
            else default_source
        if (video_id, row_source) in seen:
            report.problems.append(f"{where}: the same video as row {seen[video_id, row_source]}; "
                                   "the first is kept")
            continue
        seen[video_id, row_source] = n
        kept.append((video_id, row_source, text))
    existing = {(r["video_id"], r["model"]) for r in store.rationales(prompt_id)}
    for video_id, row_source, text in kept:
        model = set_name(row_source)
        report.replaced += (video_id, model) in existing
        store.save_rationale(video_id, prompt_id, model, text,
                             {"source": row_source, "file": path.name}, status="imported")
    report.imported = len(kept)
    report.sets = sorted({set_name(s) for _, s, _ in kept})
    return report
