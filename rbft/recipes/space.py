"""Running as a Hugging Face Space: where projects are kept, and which jobs fit a ZeroGPU window.

A Space's own disk is wiped on every restart or rebuild; its persistent storage, when the owner
adds it, is mounted at /data. On ZeroGPU a job runs inside the app under `spaces.GPU(duration=...)`
and is cut off when the window ends, so a job is estimated first and refused when it will not fit,
and generation runs in chunks that each fit.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .. import config as C
from ..store import Store

PERSISTENT_MOUNT = Path("/data")   # RBFT_PERSISTENT_MOUNT names another
WINDOW_S = 600               # what the studio asks spaces.GPU for, per call
ZERO_GPU_MEMORY_GB = 70.0    # a ZeroGPU call gets an H200 MIG 3g.71gb slice
ZERO_GPU_SLOWDOWN = 7 / 3    # that slice has 3 of an H200's 7 compute slices
LOAD_S = 60                  # loading a model from the Space's cache, per load (a guess on the safe side)
SAFETY = 0.8                 # of the window a job may plan to use


def on_space() -> bool:
    """Started by Hugging Face Spaces (SYSTEM=spaces and a SPACE_ID), as gradio itself tells."""
    return os.environ.get("SYSTEM") == "spaces" and bool(os.environ.get("SPACE_ID"))


def on_zero_gpu() -> bool:
    return os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true")


@dataclass
class Storage:
    root: Path        # projects are folders under here
    persistent: bool  # survives a restart of the app (and of the Space)
    why: str

    def note(self) -> str:
        if self.persistent:
            return f"Projects are kept in `{self.root}` ({self.why})."
        return (f"⚠ Projects are kept in `{self.root}`, which this Space wipes on every restart or rebuild: "
                "add persistent storage in the Space's settings (it is mounted at /data and used at once), "
                "or download what you need (Results: adapter, predictions, report).")


def storage(default: Path, mount: Path | None = None) -> Storage:
    """Where projects live: RBFT_PROJECTS when set, else the persistent mount when it is there and
    writable, else `default` (beside the code), which a Space does not keep."""
    mount = mount or Path(os.environ.get("RBFT_PERSISTENT_MOUNT", PERSISTENT_MOUNT))
    named = os.environ.get("RBFT_PROJECTS")
    if named:
        return Storage(Path(named).expanduser().resolve(), True, "RBFT_PROJECTS")
    if mount.is_dir() and os.access(mount, os.W_OK):
        return Storage(mount / "rbft-projects", True, f"persistent storage at {mount}")
    if on_space():
        return Storage(default, False, "the Space's own disk")
    return Storage(default, True, "this machine's disk")


# ---- ZeroGPU: what a job will take, against the window ---------------------------------------------

class WontFitWindow(ValueError):
    """A job estimated to run longer than one ZeroGPU window; the message has the numbers."""


def _seconds_per_video(cfg: C.ExperimentConfig) -> float:
    from . import budget  # torch and transformers: only when a job is estimated
    return budget.estimated_generation_seconds(1, cfg.generation.max_new_tokens, 1) * ZERO_GPU_SLOWDOWN


def generation_chunk(cfg: C.ExperimentConfig, window_s: float | None = None) -> int:
    """How many videos one ZeroGPU call can describe (at least one)."""
    window_s = window_s or WINDOW_S
    per_video = _seconds_per_video(cfg)
    return max(int((window_s * SAFETY - LOAD_S) // per_video), 1)


def job_seconds(store: Store, kind: str, params: dict) -> tuple[float, str]:
    """Estimated seconds of a job on a ZeroGPU slice, and how the number was made."""
    from . import budget  # torch and transformers: only when a job is estimated
    cfg = C.from_dict(C.ExperimentConfig, params["config"])
    if kind == "experiment":
        b = budget.plan(store, cfg, device="cuda", free_gb=ZERO_GPU_MEMORY_GB)
        train = sum(st.seconds * (1 if st.measured else ZERO_GPU_SLOWDOWN) for st in b.stages if st.seconds)
        runs = len(cfg.arms) * len(cfg.seeds)
        n_test = len(store.videos(split="test")) + len(store.videos(split="val"))
        scoring = runs * n_test * budget.estimated_step_seconds(budget.model_dims(cfg.model.model),
                                                                 b.label_sequence.tokens, 1) * ZERO_GPU_SLOWDOWN
        n_train = len(store.videos(split="train"))
        rationales = (len(cfg.seeds) * n_train * _seconds_per_video(cfg)) if "rbft" in cfg.arms else 0.0
        total = train + scoring + rationales + runs * LOAD_S
        how = (f"{sum(st.runs * st.steps for st in b.stages)} training steps "
               f"({train / 60:.1f} min), scoring {n_test} videos per run, "
               f"{runs} model loads")
        return total, how
    if kind == "generate":
        n = len(params.get("video_ids") or []) or int(params.get("limit") or 0) or \
            len(store.videos(split=params.get("split", "train")))
        return LOAD_S + n * _seconds_per_video(cfg), f"{n} videos to describe"
    if kind == "label":
        n = len(store.videos(split="pool")) + len(store.videos(split="val"))
        per = budget.estimated_step_seconds(budget.model_dims(cfg.model.model), 256, 1) * ZERO_GPU_SLOWDOWN
        if params.get("rationale"):
            per += _seconds_per_video(cfg)
        return LOAD_S + n * per, f"{n} videos to label"
    if kind == "explain":
        n = len(store.predictions(params["run_id"]))
        return LOAD_S + n * _seconds_per_video(cfg), f"{n} test videos to explain"
    n = len(store.rationales(params.get("prompt_id"), params.get("model")))
    per = budget.estimated_step_seconds(budget.model_dims(cfg.model.model), 256, 1) * ZERO_GPU_SLOWDOWN
    return LOAD_S + n * per, f"{n} rationales to score"


def check_window(store: Store, kind: str, params: dict, window_s: float | None = None) -> float:
    """Refuse, with the numbers, a job that will not finish within one ZeroGPU window."""
    window_s = window_s or WINDOW_S
    seconds, how = job_seconds(store, kind, params)
    if seconds > window_s * SAFETY:
        raise WontFitWindow(
            f"this {kind} would take about {seconds / 60:.0f} min on ZeroGPU ({how}), but one ZeroGPU call "
            f"lasts at most {window_s / 60:.0f} min and is cut off then. Use fewer steps, seeds, arms or "
            "videos, or run the Space on dedicated GPU hardware (Settings → Hardware), where jobs run in "
            "the background with no window, as they do on your own machine.")
    return seconds
