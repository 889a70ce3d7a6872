"""What every tab shares: the app's context, opening the project, and errors said plainly."""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from sqlite_utils.db import NotFoundError

from rbft import config as C
from rbft import project
from rbft.data import VideoError
from rbft.prompts import PromptError
from rbft.store import JobBusy, ProjectError, Store, disk_problem

from .access import Access

log = logging.getLogger("studio")

# Offered in the model box; any Hub id or local folder can be typed instead.
MODEL_CHOICES = [
    "toyworld", "tiny:smolvlm", "tiny:qwen2_vl", "tiny:qwen2_5_vl", "tiny:qwen3_vl",
    "HuggingFaceTB/SmolVLM2-256M-Video-Instruct", "HuggingFaceTB/SmolVLM2-500M-Video-Instruct",
    "HuggingFaceTB/SmolVLM2-2.2B-Instruct", "Qwen/Qwen2-VL-2B-Instruct",
    "Qwen/Qwen2.5-VL-3B-Instruct", "Qwen/Qwen2.5-VL-7B-Instruct", "Qwen/Qwen3-VL-2B-Instruct",
]


@dataclass
class Context:
    """How this app was started. Not UI state: that lives in the project's store."""

    projects_root: Path          # projects are folders under here; media is served only from here
    default_project: Path
    inline_jobs: bool = False    # run jobs inside the app process (a ZeroGPU Space) instead of a child
    access: Access = Access("local")   # who may change the studio (studio.access)


def open_store(path: str) -> Store:
    if not path:
        raise ProjectError("no project is open")
    return project.open_project(path)


def _user_errors() -> tuple[type[BaseException], ...]:
    from rbft.models import ModelLoadError
    return (ProjectError, VideoError, PromptError, ModelLoadError, JobBusy, ValueError,
            FileNotFoundError)


def friendly(fn: Callable) -> Callable:
    """Handlers raise plain-language gr.Error messages, never a stack trace in the page."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except _user_errors() as e:
            raise gr.Error(str(e)) from None
        except NotFoundError:
            raise gr.Error("That item is not in this project (it may have been removed, or belongs to "
                           "another project): pick one from the list.") from None
        except Exception as e:  # a full disk, or a bug: say so, log the details for the terminal
            problem = disk_problem(e)
            if problem:
                raise gr.Error(problem[0].upper() + problem[1:] + ".") from None
            log.exception("error in %s", fn.__name__)
            raise gr.Error(f"Something went wrong ({type(e).__name__}: {e}). "
                           "The details are in the terminal that runs the studio.") from None

    return wrapper


def media_path(ctx: Context, store: Store, stored: str) -> str | None:
    """A video's file for the browser player, only if it lies under the projects folder."""
    path = store.resolve(stored).resolve()
    root = ctx.projects_root.resolve()
    return str(path) if root in path.parents and path.exists() else None


def download_folder(what: str) -> Path:
    """A fresh folder outside the projects folder for files handed to one browser: gradio copies them
    into its cache under a name no one can guess, while the project's own files are never served
    (studio.access.private_paths)."""
    import tempfile
    return Path(tempfile.mkdtemp(prefix=f"rbft-{what}-"))


def parse_ints(text: str, what: str) -> list[int]:
    try:
        values = [int(x) for x in str(text).replace(",", " ").split()]
    except ValueError:
        raise ValueError(f"{what} must be whole numbers separated by spaces, e.g. 0 1 2") from None
    if not values:
        raise ValueError(f"give at least one {what[:-1] if what.endswith('s') else what}")
    return values


def header_settings(store: Store, model: str, num_frames, max_side, save: bool = True):
    """The project's settings with the header's model and frame choices applied (and saved, unless
    this only previews them)."""
    cfg = project.settings(store)
    if model and str(model).strip():
        cfg.model.model = str(model).strip()
    if num_frames is not None:
        if int(num_frames) < 1:
            raise ValueError("frames per video must be at least 1")
        cfg.frames.num_frames = int(num_frames)
    if max_side is not None:
        if int(max_side) < 28:
            raise ValueError("the frame side must be at least 28 pixels")
        cfg.frames.max_side = int(max_side)
    if save:
        project.save_settings(store, cfg)
    return cfg


def start_job(ctx: Context, store: Store, kind: str, params: dict) -> str:
    """A background job (a child process); on a ZeroGPU Space, inside this process under spaces.GPU."""
    from rbft.recipes import jobs
    if ctx.inline_jobs:
        return _run_inline(store, kind, params)
    return jobs.submit(store, kind, params)


def _run_inline(store: Store, kind: str, params: dict) -> str:
    """On ZeroGPU: refused before it starts when it will not fit one GPU window; generation runs
    in chunks of videos that each fit (it skips what is done, so the chunks add up to the whole)."""
    from rbft.recipes import jobs, space

    from .gpu import gpu
    run = gpu(duration=int(space.WINDOW_S))(jobs.submit)
    if kind != "generate" or params.get("limit"):
        space.check_window(store, kind, params)
        return run(store, kind, params, inline=True)
    cfg = C.from_dict(C.ExperimentConfig, params["config"])
    todo = params.get("video_ids") or [v["id"] for v in store.videos(split=params.get("split", "train"))]
    if not params.get("overwrite"):
        prompt_id = project.prompt(store, "rationale", params.get("prompt_id"))["id"]
        done = {r["video_id"] for r in store.rationales(prompt_id, cfg.model.model)}
        todo = [v for v in todo if v not in done]
    if not todo:
        raise ValueError("every video asked for already has a rationale from this prompt and model")
    chunk = space.generation_chunk(cfg)
    job_id = ""
    for start in range(0, len(todo), chunk):
        job_id = run(store, kind, {**params, "video_ids": todo[start:start + chunk]}, inline=True)
        if store.job(job_id)["status"] != "done":
            break   # stopped or failed: the job bar says so; Resume picks up from here
    return job_id
