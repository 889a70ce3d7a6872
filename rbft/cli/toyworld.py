"""The toy world: build the toy-world VLM, testbed tasks, truth against the event logs, the toy sample."""
from __future__ import annotations

import json
from pathlib import Path

from .common import _sink, _store, add_config_args


def cmd_toysample(args):
    from ..recipes.sample import TOY_SAMPLE, build_toy_sample
    build_toy_sample(on_event=_sink(args))
    print(f"toy-world sample written to {TOY_SAMPLE}: {(TOY_SAMPLE / 'truth.json').read_text()}")


def cmd_toyworld(args):
    from ..toyworld.build import BuildConfig, build, family_config
    values = {k.split(".", 1)[1]: v for k, v in vars(args).items() if k.startswith("build.") and v is not None}
    cfg = family_config(values.pop("family", BuildConfig.family), **values)
    adapter = build(args.work, cfg, on_event=_sink(args))
    print(f"toy-world VLM trained: connector and LoRA in {adapter}, vision tower in {args.work}/sight, "
          f"base in {args.work}/base")
    if args.eval_clips:
        from ..toyworld.evaluation import evaluate_build
        report = evaluate_build(args.work, args.eval_clips, tuple(args.compare or ()), num_frames=cfg.num_frames,
                                on_event=_sink(args), dtype=cfg.dtype)
        captions = {name: r for name, r in report.items() if name not in ("seeds", "motion read-out", "paired")}
        keys = [k for k in report["toy-world VLM"] if k not in ("examples", "per_clip", "clips", "seconds", "dtype")]
        print(f"held-out clips: {args.eval_clips} (seeds {report['seeds'][0]}-{report['seeds'][-1]})")
        for k in keys:
            print(f"  {k:<26}" + "".join(f"{name}: {r.get(k) if r.get(k) is None else round(r[k], 3)!s:<8}  "
                                          for name, r in captions.items()))
        from ..paired import format_difference
        for name, paired in report.get("paired", {}).items():
            print(f"this build minus {name}, paired over the clips, 95% interval:")
            for k, d in paired.items():
                print(f"  {k:<26}{format_difference(d)}")
        if "motion read-out" in report:
            print(f"motion read-out at the language model's layer 10: {json.dumps(report['motion read-out'])}")
    if args.ship:
        from ..toyworld.shipped import package
        print(f"trained parts and manifest written to {package(args.work, args.ship)}")


def cmd_testbed(args):
    from ..toyworld.testbed import build_task
    manifest = build_task(args.task, args.out, args.train, args.val, args.test, on_event=_sink(args), pool=args.pool)
    print(f"task {args.task} written: {manifest}")
    if args.pool:
        print(f"pool: {manifest.parent / 'pool.csv'} (no labels; `ingest --pool` it), hidden truth "
              f"{manifest.parent / 'pool_truth.csv'} (for `pool measure`)")
    print(f"next: python -m rbft benchmark --data {manifest} --model toyworld --out OUT --seeds 0 1 2")


def cmd_truth(args):
    from ..toyworld.truth import format_truth, truth_report
    rows = truth_report(_store(args), args.task)
    print(format_truth(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    if args.curve:
        from ..recipes.truth_curve import markdown, write
        print(markdown(write(_store(args), args.task, args.curve, args.experiment)))
        print(f"written: {args.curve}/truth_curve.md, truth_curve.png, learning_curves.png")


def cmd_grounding(args):
    from ..recipes.grounding import markdown, write
    table = write(_store(args), args.task, args.out, args.experiment, args.clips, on_event=_sink(args))
    print(markdown(table))
    print(f"written: {args.out}/grounding.md, grounding.json, grounding.png")


def add_commands(command) -> None:
    command("toysample", cmd_toysample, "regenerate assets/toysample: floor-task clips and the rationales the "
            "shipped toy-world VLM writes for them, with their truth against the event logs", project=False)
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
    from ..toyworld.build import BuildConfig
    add_config_args(c, BuildConfig, "", "build.")
    c = command("testbed", cmd_testbed, "write a toy-world testbed task: clips whose abstract classes are "
                "rules over their event logs, a manifest with fixed splits, project.json", project=False)
    from ..toyworld.testbed import TASKS
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
    c.add_argument("--curve", metavar="OUT",
                   help="also write, to this folder, each finished arm against SFT beside its Stage I rationales' "
                        "truth (truth_curve.md/.json/.png) and the validation curves (learning_curves.png)")
    c.add_argument("--experiment", help="with --curve: the experiment whose SFT is the baseline (default: the one "
                   "whose settings have the most finished runs)")
    c = command("grounding", cmd_grounding, "where each finished arm of a testbed benchmark looked: the share of "
                "the class token's attention to the video that falls on the things its label depends on, "
                "each arm against SFT (paired over clips and seeds)")
    c.add_argument("--task", required=True, choices=list(TASKS), help="the testbed task the project was built from")
    c.add_argument("--out", required=True, help="folder for grounding.md/.json/.png and each run's measures")
    c.add_argument("--experiment", help="the experiment whose SFT is the baseline (default as for truth --curve)")
    c.add_argument("--clips", type=int, help="measure only the first N test clips of each run (default: all)")
