"""Uniform frame sampling with opencv, cached on disk by content hash and settings.

Every later step (generation, training, evaluation, the studio's frame strip) reads
frames through `load_clip`, so a video is decoded once per frame setting.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .config import FrameConfig


@dataclass
class Clip:
    """What the model sees of a video: RGB frames (T, H, W, 3) and where they came from."""

    frames: np.ndarray
    fps: float
    total_frames: int
    indices: list[int]

    @property
    def metadata(self) -> dict:
        """The `video_metadata` transformers' video processors want for pre-sampled frames."""
        h, w = self.frames.shape[1:3]
        return {"total_num_frames": self.total_frames, "fps": self.fps, "width": w, "height": h,
                "duration": self.total_frames / self.fps, "frames_indices": self.indices}


class FrameError(Exception):
    """A video whose frames cannot be read, said plainly."""


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def uniform_indices(total: int, n: int) -> list[int]:
    """n frame indices spread evenly over [0, total), centred in their segments."""
    if total <= 0:
        return []
    n = min(n, total)
    return [min(total - 1, int((i + 0.5) * total / n)) for i in range(n)]


def resized_shape(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) of a frame after sampling: the longest side capped at max_side, never enlarged."""
    scale = max_side / max(height, width)
    if scale >= 1:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def _resize(frame: np.ndarray, max_side: int) -> np.ndarray:
    h, w = frame.shape[:2]
    size = resized_shape(w, h, max_side)
    if size == (w, h):
        return frame
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def sample_frames(path: str | Path, cfg: FrameConfig) -> Clip:
    """Seek to each of N evenly spaced frames (never decodes the whole video when seeking works)."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise FrameError(f"opencv cannot open {path}")
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0) or 25.0
        frames, indices = [], []
        for idx in uniform_indices(total, cfg.num_frames):
            cap.set(cv2.CAP_PROP_POS_FRAMES, idx)
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(_resize(frame, cfg.max_side))
            indices.append(idx)
    finally:
        cap.release()
    if len(frames) < min(cfg.num_frames, max(total, 1)):
        # Container without a reliable frame count or index: decode sequentially,
        # keeping only small frames, then sample from what was read.
        frames, indices, total = _sample_by_decoding(path, cfg)
    if not frames:
        raise FrameError(f"no frame of {path} could be decoded")
    rgb = np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames])
    return Clip(rgb, fps, total, indices)


def _sample_by_decoding(path, cfg: FrameConfig):
    cap = cv2.VideoCapture(str(path))
    small = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        small.append(_resize(frame, cfg.max_side))
    cap.release()
    idx = uniform_indices(len(small), cfg.num_frames)
    return [small[i] for i in idx], idx, len(small)


def cache_path(cache_dir: str | Path, sha256: str, cfg: FrameConfig) -> Path:
    return Path(cache_dir) / sha256[:2] / f"{sha256}_{cfg.num_frames}f_{cfg.max_side}px.npz"


def load_clip(video_path: str | Path, sha256: str, cfg: FrameConfig, cache_dir: str | Path) -> Clip:
    """Frames from the cache, or sampled now and cached (written atomically: a crash leaves no half file)."""
    target = cache_path(cache_dir, sha256, cfg)
    if target.exists():
        with np.load(target) as z:
            return Clip(z["frames"], float(z["fps"]), int(z["total"]), z["indices"].tolist())
    clip = sample_frames(video_path, cfg)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, frames=clip.frames, fps=clip.fps, total=clip.total_frames,
             indices=np.array(clip.indices))
    os.replace(tmp, target)
    return clip
