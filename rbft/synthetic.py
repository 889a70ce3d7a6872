"""Short clips drawn with opencv, for tests and the bundled sample project.

Each class is a motion pattern of a shape, so the label is true by construction.
Also writes the broken files that ingest must reject with a plain reason.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

MOTIONS = {
    "left": "a shape slides from the right edge to the left edge",
    "right": "a shape slides from the left edge to the right edge",
    "fall": "a shape drops from the top to the bottom and stops",
}
# .webm (VP8) plays in browsers; opencv's .mp4 (mp4v) does not, but is what users often have.
FOURCC = {".webm": "VP80", ".mp4": "mp4v", ".avi": "MJPG"}
COLORS = [(40, 40, 220), (40, 180, 40), (220, 120, 30), (200, 40, 200), (30, 200, 220)]


def render_clip(motion: str, seed: int, size: int = 96, n_frames: int = 24) -> np.ndarray:
    """Frames (T, H, W, 3) uint8, BGR, of one shape following `motion`."""
    rng = np.random.default_rng(seed)
    color = COLORS[int(rng.integers(len(COLORS)))]
    radius = int(rng.integers(size // 10, size // 6))
    circle = bool(rng.integers(2))
    background = np.full((size, size, 3), int(rng.integers(20, 90)), np.uint8)
    y0 = int(rng.integers(radius, size - radius))
    x0 = int(rng.integers(radius, size - radius))
    frames = []
    for t in range(n_frames):
        a = t / max(n_frames - 1, 1)
        if motion == "left":
            cx, cy = int((1 - a) * (size - radius) + a * radius), y0
        elif motion == "right":
            cx, cy = int(a * (size - radius) + (1 - a) * radius), y0
        elif motion == "fall":
            cx, cy = x0, int(radius + min(1.0, 1.6 * a * a) * (size - 2 * radius))
        else:
            raise ValueError(f"unknown motion {motion!r}; known: {sorted(MOTIONS)}")
        frame = background.copy()
        noise = rng.integers(0, 12, frame.shape, dtype=np.uint8)
        frame = cv2.add(frame, noise)
        if circle:
            cv2.circle(frame, (cx, cy), radius, color, -1)
        else:
            cv2.rectangle(frame, (cx - radius, cy - radius), (cx + radius, cy + radius), color, -1)
        frames.append(frame)
    return np.stack(frames)


def write_video(path: str | Path, frames: np.ndarray, fps: float = 8.0) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames.shape[1:3]
    fourcc = FOURCC.get(path.suffix.lower(), "mp4v")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"opencv cannot write {path}")
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def make_dataset(root: str | Path, per_class: int = 4, motions=("left", "right"),
                 size: int = 96, n_frames: int = 24, seed: int = 0) -> Path:
    """A folder with one subfolder per class, `per_class` clips each."""
    root = Path(root)
    for ci, motion in enumerate(motions):
        for i in range(per_class):
            frames = render_clip(motion, seed * 1000 + ci * 100 + i, size, n_frames)
            write_video(root / motion / f"{motion}_{i:02d}.mp4", frames)
    return root


def make_broken_files(folder: str | Path) -> dict[str, Path]:
    """Files that look like videos but are not usable, keyed by what is wrong."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    zero = folder / "zero_bytes.mp4"
    zero.write_bytes(b"")
    text = folder / "notes.mp4"
    text.write_text("this is a text file with a video extension\n")
    good = write_video(folder / "_whole.mp4", render_clip("left", 1))
    truncated = folder / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[:600])
    good.unlink()
    one = write_video(folder / "one_frame.mp4", render_clip("right", 2)[:1])
    return {"zero_bytes": zero, "text": text, "truncated": truncated, "one_frame": one}


def zero_fps_avi(path: str | Path, seed: int = 3) -> Path:
    """An MJPG .avi whose headers claim 0 frames per second (both avih and strh rates zeroed)."""
    import struct
    path = write_video(Path(path), render_clip("left", seed, size=64, n_frames=12))
    data = bytearray(path.read_bytes())
    avih, strh = data.find(b"avih"), data.find(b"strh")
    data[avih + 8:avih + 12] = struct.pack("<I", 0)           # microseconds per frame
    data[strh + 28:strh + 36] = struct.pack("<II", 1, 0)      # scale 1, rate 0
    path.write_bytes(bytes(data))
    return path


def long_video(path: str | Path, n_frames: int = 3000, size: int = 96, fps: float = 25.0) -> Path:
    """A long clip (2 minutes at 25 fps by default): sampling must not decode every frame."""
    base = render_clip("right", 5, size=size, n_frames=100)
    return write_video(path, np.concatenate([base] * (n_frames // 100 + 1))[:n_frames], fps=fps)


def huge_video(path: str | Path, width: int = 3840, height: int = 2160, n_frames: int = 6) -> Path:
    """A 4K clip: frames must be resized before they reach the memory-heavy steps."""
    small = render_clip("fall", 6, size=96, n_frames=n_frames)
    big = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_NEAREST) for f in small])
    return write_video(path, big)


def make_bad_corpus(folder: str | Path) -> dict[str, Path]:
    """Every kind of awkward file a user's folder holds, keyed by what is awkward (class `left`)."""
    folder = Path(folder)
    out = make_broken_files(folder)
    out["zero_fps"] = zero_fps_avi(folder / "zero_fps.avi")
    out["huge"] = huge_video(folder / "huge_4k.avi")
    out["long"] = long_video(folder / "long_2min.mp4")
    out["odd_name"] = write_video(folder / "a b ü 日本 $(rm -rf x); 'q' & y.mp4",
                                  render_clip("left", 11, size=64, n_frames=12))
    out["duplicate"] = folder / "copy of odd name.mp4"
    out["duplicate"].write_bytes(out["odd_name"].read_bytes())
    return out
