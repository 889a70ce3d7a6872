"""The arms of the comparison, on the same split, seeds, frames and step budget:

  zero_shot  the base model, no training
  sft        direct SFT: video -> label from the base model (Stage II's steps)
  sft_total  direct SFT with as many steps as RB-FT's Stage I + Stage II together
  rbft       Stage I (video -> rationale) gives M_inter, then Stage II (video -> label)
  rbft_joint one stage of Stage I + II's steps on the rationale and label objectives mixed
             (joint_weight: the rationale objective's share), from the base model

Each (experiment, arm, seed) is one run in the store. Re-running the same command
skips finished runs and resumes interrupted ones from their checkpoints.
"""
from __future__ import annotations

import gc
import hashlib
import json
import resource
import statistics
import time
from dataclasses import replace

import torch

from .. import models, project, quality, rationale_import, rationales
from ..config import ExperimentConfig, to_dict
from ..evaluate import evaluate
from ..events import Event, EventSink, fanout, ignore
from ..prompts import rationale_target
from ..store import Store
from ..train import Example, stage_stats, train_stage

ARMS = ("zero_shot", "sft", "sft_total", "rbft", "rbft_joint")


def experiment_name(cfg: ExperimentConfig, store: Store | None = None) -> str:
    """Same settings, same name: that is what makes a re-run resume. Once pool videos have been
    labelled into the training split, the training set is part of the name too, so an experiment
    on the grown set is a new one (and the old one stays to compare with)."""
    settings = {k: v for k, v in to_dict(cfg).items() if k != "seeds"}
    if not settings["rationales"]:
        del settings["rationales"]   # the default keeps the names experiments had before sets existed
    if store is not None:
        sources = store.label_sources("train")
        if sources["person"] or sources["model"]:
            settings["train"] = sorted((v["id"], v["label"]) for v in store.videos(split="train"))
    blob = json.dumps(settings, sort_keys=True)
    return "exp-" + hashlib.sha1(blob.encode()).hexdigest()[:8]


def label_examples(store: Store, split: str = "train") -> list[Example]:
    text = project.render(store, "classify")
    return [Example(v, text, v["label"]) for v in store.videos(split=split)]


def rationale_examples(store: Store, rows: list[dict], hint_in_training: bool) -> list[Example]:
    """Stage I targets: the reasoning then 'Classification: <label>'. By default the prompt
    is the describe prompt (video alone); with the hint, the generation prompt itself."""
    videos = {v["id"]: v for v in store.videos(split="train")}
    rationale_template = project.prompt(store, "rationale")["template"]
    out = []
    for r in rows:
        if r["video_id"] not in videos:
            continue
        video = videos[r["video_id"]]
        prompt = (project.render(store, "rationale", rationale_template, label=video["label"])
                  if hint_in_training else project.render(store, "describe"))
        out.append(Example(video, prompt, rationale_target(r["text"], video["label"])))
    return out


def joint_examples(labels: list[Example], rationales: list[Example], weight: float) -> list[Example]:
    """Both objectives in one dataset, the rationale examples a `weight` share of it: sampling in
    that proportion gives the loss (1 - weight) * label loss + weight * rationale loss in expectation."""
    if not 0 < weight < 1:
        raise ValueError(f"joint_weight must be between 0 and 1 (exclusive), not {weight}")
    if not labels or not rationales:
        raise ValueError("the joint variant needs both label and rationale examples")
    total = max(round(len(labels) / (1 - weight)), round(len(rationales) / weight))
    n_rationale = round(total * weight)

    def cycle(items: list[Example], n: int) -> list[Example]:
        return [items[i % len(items)] for i in range(n)]
    return cycle(labels, total - n_rationale) + cycle(rationales, n_rationale)


def stage1_examples(store: Store, lm, cfg: ExperimentConfig, emit: EventSink) -> list[Example]:
    """Generate (or reuse) the rationales, filter them, and make Stage I's examples. Under several
    processes the main one generates and scores; the others then find the work done and read it."""
    with _processes().main_process_first():
        if cfg.rationales:
            prompt_id, model = imported_set(store, cfg.rationales)
        else:
            from ..engine import server_for
            writer = server_for(cfg.engine) or lm   # a server: e.g. a stronger teacher
            result = rationales.generate_rationales(store, writer, cfg.frames, cfg.generation, on_event=emit)
            if result["failed"]:
                raise RuntimeError(f"{len(result['failed'])} training clips got no rationale from the server "
                                   f"(first: {next(iter(result['failed'].values()))}); resume to ask for exactly those")
            prompt_id, model = result["prompt_id"], writer.name
        if cfg.filter == "supported":
            quality.score_support(store, lm, prompt_id, model, on_event=emit)
    rows = quality.select(store.rationales(prompt_id, model), cfg.filter)
    emit(Event("log", "stage1", message=f"Stage I trains on {len(rows)} rationales of {model} "
                                        f"(filter: {cfg.filter})"))
    return rationale_examples(store, rows, cfg.hint_in_training)


def imported_set(store: Store, name: str) -> tuple[int, str]:
    """(prompt id, model name) of an imported rationale set, or a clear error naming those there are."""
    found = [g for g in store.rationale_generators() if g["model"] == name and rationale_import.is_imported(name)]
    if not found:
        sets = rationale_import.imported_sets(store)
        raise ValueError(f"no imported rationale set {name!r} in this project; "
                         + (f"there are {', '.join(sets)}" if sets else
                            "import one with `python -m rbft rationales import`"))
    return found[0]["prompt_id"], name


def _processes():
    """accelerate's view of the processes: one (a no-op) or those of `torchrun` / `accelerate launch`."""
    from accelerate import PartialState
    return PartialState(cpu=not torch.cuda.is_available())  # gloo between CPU processes


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_arm(store: Store, arm: str, seed: int, cfg: ExperimentConfig, experiment: str,
            on_event: EventSink = ignore) -> dict:
    """Run one arm for one seed and store its metrics and per-video predictions."""
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; arms are {', '.join(ARMS)}")
    run_id = f"{experiment}/{arm}/s{seed}"
    out_dir = store.root / "runs" / experiment / f"{arm}-s{seed}"
    existing = store.db["runs"].count_where("id = ?", [run_id])
    if existing and store.run(run_id)["status"] == "done":
        on_event(Event("log", arm, message=f"{arm} seed {seed}: done before, kept"))
        return store.run(run_id)["metrics"]
    # Several processes (torchrun / accelerate launch) train together; only the main one writes the
    # run, its events and predictions, evaluates and generates. Returns None in the others.
    processes = _processes()
    main = processes.is_main_process
    scored = zero_shot_scored(store, experiment) if arm == "zero_shot" else None
    if scored is not None:
        if main:
            record_same_as(store, scored, arm, seed, cfg, experiment)
        on_event(Event("log", arm, message=f"{arm} seed {seed}: the same predictions as {scored['id']} "
                                           "(nothing trained, scoring has no randomness)"))
        return scored["metrics"]
    if main:
        store.start_run(arm, seed, to_dict(cfg), str(out_dir), experiment, run_id=run_id)
    emit = fanout(store.event_sink(run_id), on_event) if main else ignore
    stage1 = replace(cfg.stage1, seed=seed)
    stage2 = replace(cfg.stage2, seed=seed)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start = time.time()
    try:
        lm = models.load(cfg.model)
        has_val = bool(store.videos(split="val"))

        def validate(stage: str):
            if not has_val or not main:
                return None
            return lambda: evaluate(store, lm, "val", cfg.frames, stage=f"{stage}/val")[0]

        steps = {"stage1": 0, "stage2": 0}
        if arm in ("sft", "sft_total"):
            budget = stage2 if arm == "sft" else replace(stage2, max_steps=stage1.max_steps + stage2.max_steps)
            steps["stage2"] = budget.max_steps
            train_stage(store, lm, label_examples(store), cfg.frames, budget, out_dir / "sft", arm,
                        validate(arm), emit)
        elif arm == "rbft":
            examples = stage1_examples(store, lm, cfg, emit)
            train_stage(store, lm, examples, cfg.frames, stage1, out_dir / "stage1", "stage1",
                        validate("stage1"), emit)
            train_stage(store, lm, label_examples(store), cfg.frames, stage2, out_dir / "stage2",
                        "stage2", validate("stage2"), emit)
            steps = {"stage1": stage1.max_steps, "stage2": stage2.max_steps}
        elif arm == "rbft_joint":
            mixed = joint_examples(label_examples(store), stage1_examples(store, lm, cfg, emit), cfg.joint_weight)
            budget = replace(stage2, max_steps=stage1.max_steps + stage2.max_steps)
            train_stage(store, lm, mixed, cfg.frames, budget, out_dir / "joint", "joint", validate("joint"), emit)
            steps["stage2"] = budget.max_steps
        processes.wait_for_everyone()
        if not main:
            lm = None   # dropped, not del'd: validate's closure reads it
            gc.collect()
            return None
        metrics, rows = evaluate(store, lm, "test", cfg.frames, on_event=emit, stage=f"{arm}/test")
        metrics.update(train_labels=store.label_sources("train"),
                       seconds=time.time() - start, peak_rss_mb=_peak_rss_mb(), steps=steps,
                       total_steps=sum(steps.values()), **models.model_info(lm),
                       stages={p.name: stage_stats(p) for p in sorted(out_dir.glob("*")) if stage_stats(p)})
        if torch.cuda.is_available():
            metrics["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
        store.save_predictions(run_id, [dict(r, rationale=None) for r in rows])
        store.finish_run(run_id, metrics)
        emit(Event("done", arm, message=f"{arm} seed {seed}: accuracy {metrics['accuracy']:.3f}, "
                                         f"macro-F1 {metrics['macro_f1']:.3f}"))
        lm = None  # release the model before the next arm loads its own
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return metrics
    except BaseException as e:
        status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        if main:
            store.finish_run(run_id, status=status, error=f"{type(e).__name__}: {e}")
        emit(Event("error", arm, message=f"{arm} seed {seed} {status}: {e}"))
        raise


def record_same_as(store: Store, source: dict, arm: str, seed: int, cfg: ExperimentConfig, experiment: str) -> str:
    """Record a run that would repeat `source` (the same training, or none) as done, with its
    predictions and metrics and `same_as` naming it, instead of running it again."""
    run_id = f"{experiment}/{arm}/s{seed}"
    store.start_run(arm, seed, to_dict(cfg), str(store.root / "runs" / experiment / f"{arm}-s{seed}"), experiment,
                    run_id=run_id)
    store.save_predictions(run_id, store.predictions(source["id"]))
    store.finish_run(run_id, dict(source["metrics"], same_as=source["id"]))
    return run_id


def zero_shot_scored(store: Store, experiment: str) -> dict | None:
    """Zero-shot trains nothing and scores by likelihood, so every seed gives the same predictions:
    the first seed's are copied to the others, which the paired differences pair seed by seed."""
    return next((r for r in store.runs(experiment) if r["arm"] == "zero_shot" and r["status"] == "done"), None)


def check_generation_memory(cfg: ExperimentConfig) -> float | None:
    """Refuse, before any load, generation with a recommended model that will not fit here
    (fit.WontFit). Training is checked by budget.check, which knows the steps too."""
    from ..fit import check_fits
    device = models.pick_device(cfg.model.device)
    return check_fits(cfg.model.model, device, models.use_4bit(cfg.model, device), cfg.frames.num_frames,
                      cfg.generation.batch_size, training=False)


def run_experiment(store: Store, cfg: ExperimentConfig, name: str | None = None,
                   on_event: EventSink = ignore) -> str:
    if not store.videos(split="train"):
        raise ValueError("the project has no training videos; run `python -m rbft ingest` first")
    if not store.videos(split="test"):
        raise ValueError("the project has no test videos to compare the arms on")
    from .budget import check
    check(store, cfg)   # refused here, before any weights load, when it will not fit
    name = name or experiment_name(cfg, store)
    check_same_weights(store, name, cfg.model.model)
    for seed in cfg.seeds:
        for arm in cfg.arms:
            run_arm(store, arm, seed, cfg, name, on_event)
    return name


def check_same_weights(store: Store, experiment: str, model: str) -> None:
    """An experiment's arms are compared run by run, so they must all train the same weights. A name
    such as `toyworld` resolves to whatever parts are installed: after new parts ship, resuming an
    experiment would pair runs of two models. Refused before anything runs."""
    used = {r["metrics"].get("weights") for r in store.runs(experiment)
            if r["status"] == "done" and r["metrics"] and r["metrics"].get("weights")}
    if not used:
        return
    now = models.weights_name(model)
    if used != {now}:
        raise ValueError(f"experiment {experiment}'s finished runs used {', '.join(sorted(used))}, but {model} "
                         f"now resolves to {now}: its arms would compare two models. Restore those weights, "
                         f"or start a new experiment under another name (`python -m rbft experiment --name`).")


def summarize(store: Store, experiment: str) -> list[dict]:
    """One row per arm: mean and std over seeds of accuracy and macro-F1, per-class F1 means."""
    by_arm: dict[str, list[dict]] = {}
    for run in store.runs(experiment):
        if run["status"] == "done":
            by_arm.setdefault(run["arm"], []).append(run["metrics"])
    rows = []
    for arm in [a for a in ARMS if a in by_arm]:
        ms = by_arm[arm]

        def mean_std(values):
            return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)

        classes = ms[0]["classes"]
        rows.append({
            "arm": arm, "seeds": len(ms),
            "accuracy": mean_std([m["accuracy"] for m in ms]),
            "macro_f1": mean_std([m["macro_f1"] for m in ms]),
            "per_class_f1": {c: statistics.fmean(m["per_class"][c]["f1"] for m in ms) for c in classes},
            "total_steps": ms[0].get("total_steps", 0),
            "seconds": statistics.fmean(m["seconds"] for m in ms),
            "peak_rss_mb": max(m["peak_rss_mb"] for m in ms),
            "n_test": ms[0]["n"],
        })
    return rows


def format_table(rows: list[dict]) -> str:
    """A markdown table of the arms side by side."""
    if not rows:
        return "(no finished runs)"
    classes = list(rows[0]["per_class_f1"])
    head = ["arm", "seeds", "steps", "accuracy", "macro-F1"] + [f"F1 {c}" for c in classes] + ["time s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["arm"], str(r["seeds"]), str(r["total_steps"]),
                 f"{r['accuracy'][0]:.3f} ± {r['accuracy'][1]:.3f}",
                 f"{r['macro_f1'][0]:.3f} ± {r['macro_f1'][1]:.3f}"]
        cells += [f"{r['per_class_f1'][c]:.3f}" for c in classes] + [f"{r['seconds']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
