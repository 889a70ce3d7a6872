"""Training and its results: train, experiment, benchmark, eval, predict, export, runs."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import config as C
from .common import _sink, _store, add_experiment_args, build_config


def cmd_train(args):
    from ..recipes.experiment import experiment_name, run_arm
    cfg = build_config(args)
    store = _store(args)
    name = args.name or experiment_name(cfg, store)
    if args.dry_run:
        _dry_run(store, cfg, "train", arms=[args.arm], seeds=[args.seed])
    from ..recipes.budget import check
    check(store, cfg, verb="train", arms=[args.arm], seeds=[args.seed])
    metrics = run_arm(store, args.arm, args.seed, cfg, name, on_event=_sink(args))
    if metrics is None:   # not the main process of a torchrun / accelerate launch: it only trained
        return
    print(f"run {name}/{args.arm}/s{args.seed}: accuracy {metrics['accuracy']:.3f}, "
          f"macro-F1 {metrics['macro_f1']:.3f}")


def _load_for_run(store, args):
    from .. import models
    from ..export import run_adapter
    if args.run:
        run = store.run(args.run)
        cfg = C.from_dict(C.ExperimentConfig, run["config"])
        cfg.model.dtype = getattr(args, "model.dtype", None) or cfg.model.dtype
        adapter = run_adapter(store, args.run) if run["arm"] != "zero_shot" else None
        return models.load(cfg.model, adapter=adapter), cfg.frames
    cfg = build_config(args)
    return models.load(cfg.model, adapter=args.adapter), cfg.frames


def cmd_eval(args):
    from ..evaluate import evaluate
    store = _store(args)
    lm, frames = _load_for_run(store, args)
    metrics, _ = evaluate(store, lm, args.split, frames, on_event=_sink(args))
    print(json.dumps({k: metrics[k] for k in ("n", "accuracy", "macro_f1", "confusion", "classes")}))


def _dry_run(store, cfg, verb: str, **kw) -> None:
    """Print the budget and exit: 0 when it fits here, 2 when it will not."""
    from ..recipes.budget import plan
    budget = plan(store, cfg, verb, **kw)
    print(budget.text())
    sys.exit(0 if budget.fits else 2)


def cmd_experiment(args):
    from ..recipes.experiment import format_table, run_experiment, summarize
    cfg = build_config(args)
    store = _store(args)
    if args.dry_run:
        _dry_run(store, cfg, "experiment")
    name = run_experiment(store, cfg, args.name, on_event=_sink(args))
    print(f"\nexperiment {name} ({cfg.model.model}, seeds {cfg.seeds}), test split:\n")
    print(format_table(summarize(store, name)))


def cmd_benchmark(args):
    import shlex

    from ..recipes.benchmark import ALL_ARMS, run_benchmark
    cfg = build_config(args)
    if args.arms is None:
        cfg.arms = list(ALL_ARMS)
    out = Path(args.out)
    command = "python -m rbft " + " ".join(shlex.quote(a) for a in (args.argv or sys.argv[1:]))
    if args.dry_run:  # the clips are read in a throwaway project: nothing is written beside the data
        import tempfile

        from ..recipes.benchmark import prepare
        with tempfile.TemporaryDirectory() as tmp:
            store = prepare(args.data, Path(tmp) / "project", args.split_seed)
            from ..recipes.budget import plan
            budget = plan(store, cfg, "benchmark")
        budget.command = command
        print(budget.text())
        sys.exit(0 if budget.fits else 2)
    run_benchmark(args.data, args.project or out / "project", cfg, out, ablations=args.ablations,
                  command=command, split_seed=args.split_seed, rationale_files=args.rationale_files or [],
                  on_event=_sink(args))
    print((out / "report.md").read_text())
    print(f"written: {out / 'report.md'} and {out / 'report.json'}")


def cmd_predict(args):
    from ..config import GenerationConfig
    from ..predict import predict
    store = _store(args)
    lm, frames = _load_for_run(store, args)
    gen = None if args.no_rationale else GenerationConfig(max_new_tokens=args.max_new_tokens)
    for row in predict(store, lm, args.videos, frames, gen, on_event=_sink(args)):
        if row["error"]:
            print(f"{row['path']}: cannot be used: {row['error']}")
            continue
        scores = ", ".join(f"{k} {v:.2f}" for k, v in row["scores"].items())
        print(f"{row['path']}: {row['pred']}  ({scores})")
        if row["rationale"]:
            print(f"  rationale: {row['rationale']}")


def cmd_attention(args):
    from .. import project
    from ..attention import attention_map, save_figure
    from ..evaluate import softmax
    from ..frames import file_sha256, load_clip
    store = _store(args)
    lm, frames = _load_for_run(store, args)
    video = store.video(args.video)
    path = store.resolve(video["path"])
    clip = load_clip(path, file_sha256(path), frames, store.root / "cache" / "frames")
    if args.answer:
        prompt, answer = project.render(store, "describe"), args.answer
    else:   # the class the model names, as label scoring asks for it
        from .. import models
        names = [c["name"] for c in project.classes(store)]
        prompt = project.render(store, "classify")
        probs = softmax(models.score_options(lm, prompt, clip, frames, names))
        answer = names[max(range(len(names)), key=probs.__getitem__)]
    layers = tuple(args.layers) if args.layers else None
    result = attention_map(lm, prompt, clip, frames, answer, focus=args.focus, layers=layers)
    save_figure(clip, result, args.out, title=f"{args.video}: {(args.focus or answer)[:60]!r}")
    print(f"{args.out}: attention of {result.tokens} answer tokens ({(args.focus or answer)[:60]!r}), layers "
          f"{result.layers[0]}-{result.layers[1]}; visual share {result.visual_share:.3f}; per frame "
          + ", ".join(f"{f}: {m.sum():.3f}" for f, m in zip(result.frames, result.maps)))


def cmd_export(args):
    from .. import export
    store = _store(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run = store.run(args.run)
    if run["arm"] != "zero_shot":
        print("adapter:", export.export_adapter(store, args.run, out / "adapter"))
    if args.merged:
        print("merged model:", export.export_merged(store, args.run, out / "merged"))
    print("predictions:", export.export_predictions(store, args.run, out / "predictions.csv"))
    print("rationales:", export.export_rationales(store, out / "rationales.jsonl"))


def cmd_runs(args):
    store = _store(args)
    for r in store.runs(args.experiment):
        m = r["metrics"] or {}
        acc = f"accuracy {m['accuracy']:.3f}" if "accuracy" in m else (r["error"] or "")
        print(f"{r['id']:<40} {r['status']:<12} {acc}")


def add_commands(command) -> None:
    for name, func, text in [
            ("train", cmd_train, "train one arm for one seed: sft, sft_total or rbft (Stage I -> II)"),
            ("experiment", cmd_experiment, "run zero-shot, direct SFT and RB-FT on the same split, "
             "seeds and budget, and print one table (re-run the same command to resume)")]:
        c = command(name, func, text)
        add_experiment_args(c)
        c.add_argument("--config", help="JSON file of ExperimentConfig settings (flags override it)")
        c.add_argument("--name", help="experiment name (default: derived from the settings)")
        c.add_argument("--dry-run", action="store_true", help="print tokens, memory, the batch auto picks, steps "
                       "and time per stage and the command line, then exit (2 when it will not fit here)")
        c.add_argument("--filter", choices=["all", "not_rejected", "supported"],
                       help="which rationales Stage I trains on (default: not_rejected)")
        c.add_argument("--hint-in-training", action=argparse.BooleanOptionalAction,
                       help="keep the label hint in the Stage I training prompt")
        c.add_argument("--rationales", metavar="SET", help="Stage I trains on this imported set (import:NAME, "
                       "see `rationales list`) instead of generating rationales with the model")
        c.add_argument("--joint-weight", type=float,
                       help="rbft_joint: the rationale objective's share of the mixed stage (default 0.5)")
        if name == "train":
            c.add_argument("--arm", required=True, choices=["sft", "sft_total", "rbft", "rbft_joint"],
                           help="sft: labels from the base model; sft_total: the same with Stage I + II "
                                "steps; rbft: Stage I (rationales) then Stage II (labels)")
            c.add_argument("--seed", type=int, default=0, help="seed of this run")
        else:
            c.add_argument("--arms", nargs="+", choices=["zero_shot", "sft", "sft_total", "rbft", "rbft_joint"],
                           help="which arms to run (default: zero_shot sft rbft)")
            c.add_argument("--seeds", nargs="+", type=int, help="one run of every arm per seed")
    c = command("benchmark", cmd_benchmark, "zero-shot, direct SFT (Stage II's steps and Stage I + II's), and "
                "RB-FT on one dataset with equal budgets; writes report.md and report.json", project=False)
    c.add_argument("--data", required=True, help="folder (one subfolder per class) or CSV/JSONL manifest")
    c.add_argument("--project", help="project folder to work in (default: OUT/project); re-running resumes")
    c.add_argument("--out", default="benchmark", help="report folder (default: benchmark)")
    c.add_argument("--split-seed", type=int, default=0, help="seed of the stratified train/val/test split")
    c.add_argument("--ablations", action="store_true",
                   help="also RB-FT with only label-supporting rationales, and with the label hint in training")
    add_experiment_args(c)
    c.add_argument("--filter", choices=["all", "not_rejected", "supported"], help="Stage I rationale filter")
    c.add_argument("--hint-in-training", action=argparse.BooleanOptionalAction,
                   help="keep the label hint in the Stage I training prompt")
    c.add_argument("--joint-weight", type=float,
                   help="rbft_joint: the rationale objective's share of the mixed stage (default 0.5)")
    c.add_argument("--arms", nargs="+", choices=["zero_shot", "sft", "sft_total", "rbft", "rbft_joint"],
                   help="arms (default: zero_shot, sft, sft_total, rbft)")
    c.add_argument("--rationale-files", nargs="+", metavar="FILE", help="also RB-FT on each of these rationale "
                   "files (imported as sets named after the files), same split, seeds and budget")
    c.add_argument("--seeds", nargs="+", type=int, help="one run of every arm per seed")
    c.add_argument("--dry-run", action="store_true", help="print tokens, memory, the batch auto picks, steps and "
                   "time per stage, then exit (2 when it will not fit here); the data is read, nothing is written")
    c.set_defaults(argv=None)
    for name, func, text in [
            ("eval", cmd_eval, "evaluate a run's model (or base model + adapter) by label scoring"),
            ("predict", cmd_predict, "label new videos with a trained model, with its rationale")]:
        c = command(name, func, text)
        c.add_argument("--run", help="run id (see `runs`): its model, adapter and frame settings")
        c.add_argument("--adapter", help="a peft adapter folder (with --model)")
        add_experiment_args(c, ("frames", "model"))
        if name == "eval":
            c.add_argument("--split", default="test", choices=["train", "val", "test"],
                           help="which split to evaluate on")
        else:
            c.add_argument("videos", nargs="+", help="video files")
            c.add_argument("--no-rationale", action="store_true", help="label only")
            c.add_argument("--max-new-tokens", type=int, default=160, help="longest rationale")
    c = command("attention", cmd_attention, "where the model looked: a picture of the frames it saw, each "
                "under the attention of the answer (the class it names, or --answer) to that frame's places")
    c.add_argument("--video", required=True, help="video id (see `videos`)")
    c.add_argument("--run", help="run id (see `runs`): its model, adapter and frame settings")
    c.add_argument("--adapter", help="a peft adapter folder (with --model)")
    c.add_argument("--answer", help="look from this text (e.g. the video's rationale) instead of the named class")
    c.add_argument("--focus", help="only from this piece of the answer (e.g. one sentence)")
    c.add_argument("--layers", nargs=2, type=int, metavar=("FIRST", "LAST"),
                   help="layers averaged (default: the second half of the language model)")
    c.add_argument("--out", required=True, help="the picture to write (.png)")
    add_experiment_args(c, ("frames", "model"))
    c = command("export", cmd_export, "write a run's adapter, predictions CSV and the rationale JSONL")
    c.add_argument("--run", required=True, help="run id (see `runs`)")
    c.add_argument("--out", required=True, help="output folder")
    c.add_argument("--merged", action="store_true", help="also write base weights with the LoRA merged")
    c = command("runs", cmd_runs, "list runs with their status and accuracy")
    c.add_argument("--experiment", help="only this experiment")
