"""`python -m rbft benchmark`: zero-shot, direct SFT (same steps as Stage II, and same total steps as
Stage I + II) and RB-FT on one dataset, one split, the same seeds, frames and step budget; optional
rationale ablations; a markdown and a JSON report with the exact command and versions."""
from __future__ import annotations

import json
import platform
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional

from .config import ExperimentConfig, to_dict
from .data import ingest
from .events import Event, EventSink, ignore
from .experiment import run_experiment, summarize
from .project import configure, open_project
from .report import markdown, minority_classes, versions

ALL_ARMS = ["zero_shot", "sft", "sft_total", "rbft"]  # rbft_joint runs when asked for by --arms
ABLATIONS = {  # label -> the change to the RB-FT arm's settings
    "rbft, only label-supporting rationales (Video-STaR-style filter)": {"filter": "supported"},
    "rbft, label hint kept in the Stage I training prompt": {"hint_in_training": True},
}


def task_description(data: str | Path) -> Optional[dict]:
    """A dataset may carry project.json (domain and class descriptions) beside its clips or manifest."""
    folder = Path(data) if Path(data).is_dir() else Path(data).parent
    meta = folder / "project.json"
    return json.loads(meta.read_text()) if meta.exists() else None


def prepare(data: str | Path, project_dir: str | Path, split_seed: int = 0, on_event: EventSink = ignore):
    """The benchmark's project: the task's domain and classes (a testbed's project.json), the clips ingested."""
    store = open_project(project_dir)
    task = task_description(data)
    if task:
        configure(store, task.get("domain"), task.get("classes"))
    report = ingest(store, data, seed=split_seed, on_event=on_event)
    if report.errors:
        on_event(Event("log", "benchmark", message=report.summary()))
    return store


def run_benchmark(data: str | Path, project_dir: str | Path, cfg: ExperimentConfig, out_dir: str | Path,
                  ablations: bool = False, command: str = "", split_seed: int = 0,
                  on_event: EventSink = ignore) -> dict:
    """Run every arm (and the ablations), write report.md and report.json to out_dir, return the JSON."""
    store = prepare(data, project_dir, split_seed, on_event)
    started = time.time()
    main = run_experiment(store, cfg, on_event=on_event)
    experiments, failed = {"main": main}, {}
    if ablations:
        base = {k: getattr(cfg, k) for k in ("filter", "hint_in_training")}
        for label, change in ABLATIONS.items():
            if all(base[k] == v for k, v in change.items()):
                continue  # the main RB-FT arm already is this variant
            variant = replace(cfg, arms=["rbft"], **change)
            on_event(Event("log", "benchmark", message=f"ablation: {label}"))
            try:
                experiments[label] = run_experiment(store, variant, on_event=on_event)
            except Exception as e:  # e.g. no rationale supports its label: report it, keep the rest
                on_event(Event("error", "benchmark", message=f"ablation {label!r} could not run: {e}"))
                failed[label] = f"{type(e).__name__}: {e}"
    result = {
        "command": command, "date": time.strftime("%Y-%m-%d %H:%M"), "machine": _machine(),
        "versions": versions(), "data": str(data), "project": str(store.root), "config": to_dict(cfg),
        "split": {s: len(store.videos(split=s)) for s in ("train", "val", "test")},
        "classes": store.labels(), "minority_classes": minority_classes(store, main),
        "seconds": time.time() - started,
        "experiments": {label: {"name": name, "arms": _jsonable(summarize(store, name)),
                                "runs": [{k: r[k] for k in ("id", "arm", "seed", "status", "metrics", "error")}
                                         for r in store.runs(name)]}
                        for label, name in experiments.items()},
        "ablations_failed": failed,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(result, indent=2, default=float))
    (out / "report.md").write_text(markdown(store, main, command) + _ablation_md(result))
    return result


def _machine() -> str:
    import os

    import torch
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.node()}: {os.cpu_count()} cores, {platform.machine()}, {gpu}"


def _jsonable(rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        r = dict(r)
        for key in ("accuracy", "macro_f1"):
            r[key] = {"mean": r[key][0], "std": r[key][1]}
        out.append(r)
    return out


def _ablation_md(result: dict) -> str:
    labels = [k for k in result["experiments"] if k != "main"]
    if not labels and not result["ablations_failed"]:
        return ""
    main_rbft = next((a for a in result["experiments"]["main"]["arms"] if a["arm"] == "rbft"), None)
    lines = ["", "## Rationale ablations (RB-FT arm only, same split, seeds and budget)", "",
             "| variant | seeds | accuracy | macro-F1 |", "|---|---|---|---|"]

    def cells(a: Optional[dict]) -> str:
        if a is None:
            return "| - | - | - |"
        return (f"| {a['seeds']} | {a['accuracy']['mean']:.3f} ± {a['accuracy']['std']:.3f} | "
                f"{a['macro_f1']['mean']:.3f} ± {a['macro_f1']['std']:.3f} |")

    cfg = result["config"]
    lines.append(f"| rbft as in the main table (filter {cfg['filter']}, hint in training "
                 f"{cfg['hint_in_training']}) " + cells(main_rbft))
    for label in labels:
        arms = result["experiments"][label]["arms"]
        lines.append(f"| {label} " + cells(arms[0] if arms else None))
    for label, error in result["ablations_failed"].items():
        lines.append(f"| {label} | could not run: {error} | | |")
    return "\n".join(lines) + "\n"

