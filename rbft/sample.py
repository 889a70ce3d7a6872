"""The bundled sample project: short synthetic clips of three motion classes (made with
opencv by `rbft.synthetic`, so the labels are true by construction and the footage is ours)."""
from __future__ import annotations

import json
from pathlib import Path

from .data import IngestReport, import_folder
from .events import EventSink, ignore
from .project import configure, open_project

SAMPLE = Path(__file__).resolve().parent.parent / "assets" / "sample"


def create_sample(root: str | Path, on_event: EventSink = ignore) -> IngestReport:
    """Bring the sample clips into `root` and set the sample's domain and class descriptions."""
    store = open_project(root)
    meta = json.loads((SAMPLE / "project.json").read_text())
    configure(store, meta["domain"], meta["classes"])
    return import_folder(store, SAMPLE / "videos", seed=0, on_event=on_event, name="sample")


def build_sample_videos(per_class: int = 8) -> None:
    """Regenerate assets/sample/videos (deterministic)."""
    from .synthetic import MOTIONS, render_clip, write_video
    for ci, motion in enumerate(MOTIONS):
        for i in range(per_class):
            write_video(SAMPLE / "videos" / motion / f"{motion}_{i:02d}.webm",
                        render_clip(motion, 7000 + ci * 100 + i, size=128, n_frames=24))
