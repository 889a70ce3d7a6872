"""A project's settings and the small lookups every step shares: classes, prompts, frames."""
from __future__ import annotations

from pathlib import Path

from . import prompts
from .config import ExperimentConfig, FrameConfig, from_dict, to_dict
from .frames import Clip, load_clip
from .store import Store


def open_project(root: str | Path) -> Store:
    return Store(root)


def configure(store: Store, domain: str | None = None,
              descriptions: dict[str, str] | None = None) -> None:
    """Set the domain line and class descriptions that the prompts show the model."""
    if domain is not None:
        store.set_meta("domain", domain)
    if descriptions:
        current = {c["name"]: c.get("description", "") for c in classes(store)}
        current.update(descriptions)
        store.set_meta("classes", [{"name": k, "description": v} for k, v in current.items()])


def classes(store: Store) -> list[dict]:
    """[{name, description}] for every class: declared ones with their descriptions, then labels seen."""
    declared = {c["name"]: c.get("description", "") for c in store.get_meta("classes", [])}
    return [{"name": n, "description": declared.get(n, "")} for n in store.labels()]


def domain(store: Store) -> str:
    return store.get_meta("domain", "video classification")


def prompt(store: Store, kind: str, prompt_id: int | None = None) -> dict:
    """A stored prompt version (the newest of its kind by default; the shipped default on first use)."""
    if prompt_id is not None:
        row = store.prompt(prompt_id)
        if row["kind"] != kind:
            raise prompts.PromptError(f"prompt {prompt_id} is a {row['kind']} prompt, not {kind}")
        return row
    row = store.latest_prompt(kind)
    if row is None:
        store.save_prompt(kind, prompts.default_template(kind))
        row = store.latest_prompt(kind)
    return row


def save_prompt(store: Store, kind: str, template: str) -> int:
    """Validate, then store as a new version of its kind."""
    prompts.validate(kind, template)
    return store.save_prompt(kind, template)


def render(store: Store, kind: str, template: str | None = None, **values: str) -> str:
    template = template if template is not None else prompt(store, kind)["template"]
    return prompts.render(kind, template, domain=domain(store), classes=classes(store), **values)


def clip(store: Store, video: dict, frames: FrameConfig) -> Clip:
    return load_clip(store.resolve(video["path"]), video["sha256"], frames, store.root / "cache" / "frames")


def settings(store: Store) -> ExperimentConfig:
    """The project's current settings (model, frames, training) that the studio edits and its jobs use.

    Before any are saved: the defaults, with the default model if it can be loaded
    here, else the tiny offline model so that every step still runs.
    """
    saved = store.get_meta("settings")
    if saved is not None:
        return from_dict(ExperimentConfig, saved)
    from .models import default_model
    cfg = ExperimentConfig()
    cfg.model.model = default_model()
    return cfg


def save_settings(store: Store, cfg: ExperimentConfig) -> None:
    store.set_meta("settings", to_dict(cfg))
