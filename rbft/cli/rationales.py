"""Stage I rationales: generate them, their quality stats, and sets imported from files."""
from __future__ import annotations

import json
import sys

from .. import config as C
from .common import _sink, _store, add_dtype_arg, add_experiment_args, build_config


def cmd_generate(args):
    from .. import models
    from ..engine import EngineError, engine_for
    from ..rationales import generate_rationales
    cfg = build_config(args)
    store = _store(args)
    try:
        engine = engine_for(cfg.engine, lambda: models.load(cfg.model))
    except EngineError as e:
        sys.exit(str(e))
    result = generate_rationales(store, engine, cfg.frames, cfg.generation, prompt_id=args.prompt_id,
                                 split=args.split, overwrite=args.overwrite, on_event=_sink(args))
    print(f"generated {result['generated']} rationales ({result['skipped']} already done) in "
          f"{result['seconds']:.1f} s with prompt id {result['prompt_id']}")
    if result["failed"]:
        sys.exit(f"{len(result['failed'])} clips got no rationale (the reasons are above); run the same "
                 "command again to ask for exactly those")


def cmd_stats(args):
    from .. import models, quality
    store = _store(args)
    gen = quality.latest_generator(store, args.model)
    if args.prompt_id is None and gen is None:
        sys.exit("no rationales yet: run `python -m rbft generate` first")
    prompt_id = args.prompt_id if args.prompt_id is not None else gen["prompt_id"]
    model = args.model or gen["model"]
    if args.score_support:
        from ..project import settings
        from ..rationale_import import is_imported
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


def cmd_rationales(args):
    from .. import rationale_import
    if not args.action:
        raise SystemExit("error: rationales needs an action: list or import (see --help)")
    store = _store(args)
    if args.action == "import":
        print(rationale_import.import_rationales(store, args.file, args.source).summary())
        return
    for g in store.rationale_generators():
        kind = "imported" if rationale_import.is_imported(g["model"]) else "generated"
        print(f"{g['model']:<40} prompt id {g['prompt_id']:<4} {g['n']:>5} rationales  ({kind})")


def add_commands(command) -> None:
    c = command("generate", cmd_generate, "Stage I: generate rationales for the training videos "
                "(resumable: done videos are skipped)")
    add_experiment_args(c, ("frames", "model", "generation", "engine"))
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
