"""`python -m rbft benchmark`: zero-shot, direct SFT (same steps as Stage II, and same total steps as
Stage I + II) and RB-FT on one dataset, one split, the same seeds, frames and step budget; optional
rationale ablations; a markdown and a JSON report with the exact command and versions."""
from __future__ import annotations

import json
import platform
import time
from dataclasses import replace
from pathlib import Path

from .. import paired
from ..config import ExperimentConfig, to_dict
from ..data import ingest
from ..events import Event, EventSink, ignore
from ..project import configure, open_project
from ..rationale_import import import_rationales
from .experiment import run_experiment, summarize
from .report import markdown, minority_classes, versions

ALL_ARMS = ["zero_shot", "sft", "sft_total", "rbft"]  # rbft_joint runs when asked for by --arms
ABLATIONS = {  # label -> the change to the RB-FT arm's settings
    "rbft, only label-supporting rationales (Video-STaR-style filter)": {"filter": "supported"},
    "rbft, label hint kept in the Stage I training prompt": {"hint_in_training": True},
}


def task_description(data: str | Path) -> dict | None:
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
        if task.get("task"):
            store.set_meta("testbed_task", task["task"])   # a toy-world testbed: its truth is known
    report = ingest(store, data, seed=split_seed, on_event=on_event)
    if report.errors:
        on_event(Event("log", "benchmark", message=report.summary()))
    return store


def run_benchmark(data: str | Path, project_dir: str | Path, cfg: ExperimentConfig, out_dir: str | Path,
                  ablations: bool = False, command: str = "", split_seed: int = 0,
                  rationale_files: list = (), on_event: EventSink = ignore) -> dict:
    """Run every arm (and the ablations, and RB-FT on each imported rationale file), write report.md
    and report.json to out_dir, return the JSON."""
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
    for file in rationale_files:
        imported = import_rationales(store, file)
        on_event(Event("log", "benchmark", message=imported.summary()))
        for name in imported.sets:
            label = f"rbft on {name}"
            try:
                experiments[label] = run_experiment(store, replace(cfg, arms=["rbft"], rationales=name),
                                                    on_event=on_event)
            except Exception as e:
                on_event(Event("error", "benchmark", message=f"{label!r} could not run: {e}"))
                failed[label] = f"{type(e).__name__}: {e}"
    sft = paired.correct_by_seed(store, store.runs(main), "sft")
    differences = paired.against(store, store.runs(main), "sft")
    for label, name in experiments.items():
        if label != "main":
            d = paired.paired_difference(paired.correct_by_seed(store, store.runs(name), "rbft"), sft)
            if d:
                differences[label] = d
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
        "against_sft": differences,
        "rationale_sets": rationale_sets(store, task_description(data)),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(result, indent=2, default=float))
    (out / "report.md").write_text(markdown(store, main, command) + _ablation_md(result))
    return result


def rationale_sets(store, task: dict | None) -> list[dict]:
    """Every rationale set of the project (generated or imported), with its truth against the event
    logs where the data is a toy-world testbed task."""
    truth = {}
    if task and task.get("task"):
        from ..toyworld.truth import truth_report  # only a testbed knows its clips' event logs
        truth = {(r["prompt_id"], r["model"]): r for r in truth_report(store, task["task"]) if r["subset"] == "all"}
    return [{"model": g["model"], "prompt_id": g["prompt_id"], "rationales": g["n"],
             **{k: v for k, v in truth.get((g["prompt_id"], g["model"]), {}).items()
                if k not in ("prompt_id", "model", "subset", "rationales")}}
            for g in store.rationale_generators()]


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
    out = _sets_md(result["rationale_sets"])
    if not labels and not result["ablations_failed"]:
        return out
    main_rbft = next((a for a in result["experiments"]["main"]["arms"] if a["arm"] == "rbft"), None)
    lines = ["", "## RB-FT variants (RB-FT arm only, same split, seeds and budget)", "",
             "| variant | seeds | accuracy | macro-F1 | accuracy minus SFT's [95% interval] |",
             "|---|---|---|---|---|"]
    diffs = result["against_sft"]

    def cells(a: dict | None, label: str) -> str:
        if a is None:
            return "| - | - | - | - |"
        return (f"| {a['seeds']} | {a['accuracy']['mean']:.3f} ± {a['accuracy']['std']:.3f} | "
                f"{a['macro_f1']['mean']:.3f} ± {a['macro_f1']['std']:.3f} | "
                f"{paired.format_difference(diffs.get(label))} |")

    cfg = result["config"]
    lines.append(f"| rbft as in the main table (filter {cfg['filter']}, hint in training "
                 f"{cfg['hint_in_training']}) " + cells(main_rbft, "rbft"))
    for label in labels:
        arms = result["experiments"][label]["arms"]
        lines.append(f"| {label} " + cells(arms[0] if arms else None, label))
    for label, error in result["ablations_failed"].items():
        lines.append(f"| {label} | could not run: {error} | | | |")
    return out + "\n".join(lines) + "\n"


def _sets_md(sets: list[dict]) -> str:
    if not sets:
        return ""
    truth = any("event_precision" in s for s in sets)
    head = "| rationale set | prompt id | rationales |" + (
        " event precision | event recall | hallucination rate | label follows from the stated events |"
        if truth else "")
    lines = ["", "## Rationale sets" + (" and their truth against the event logs (training split)" if truth else ""),
             "", head, "|" + "---|" * (head.count("|") - 1)]
    for s in sets:
        row = f"| {s['model']} | {s['prompt_id']} | {s['rationales']} |"
        if truth:
            row += "".join(f" {s[k]:.3f} |" if s.get(k) is not None else " - |" for k in
                           ("event_precision", "event_recall", "hallucination_rate", "label_consistent"))
        lines.append(row)
    return "\n".join(lines) + "\n"

