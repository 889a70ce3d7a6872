"""The pool of unlabelled videos: label, review, accept, export, measure."""
from __future__ import annotations

import json
from pathlib import Path

from .common import _sink, _store, add_config_args, add_dtype_arg, build_config


def cmd_pool(args):
    from .. import pool
    store = _store(args)
    run = args.run or (f"{pool.BASE}{args.model}" if args.model else None)
    if args.action == "label":
        if not run:
            raise SystemExit("error: name the run that labels (--run RUN_ID, see `runs`) or --model for the base model")
        from ..engine import EngineError, server_for
        try:
            engine = server_for(build_config(args).engine) if args.rationale else None
        except EngineError as e:
            raise SystemExit(str(e)) from None
        result = pool.label_pool(store, run, rationale=args.rationale, on_event=_sink(args), dtype=args.dtype,
                                 engine=engine)
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


def add_commands(command) -> None:
    c = command("pool", cmd_pool, "the unlabelled videos: label them with a run, review the uncertain ones, "
                "accept automatically above a precision target, export the labels")
    c.add_argument("action", nargs="?", default="status",
                   choices=["status", "label", "queue", "accept", "auto", "export", "measure"],
                   help="status (default), label, queue, accept, auto, export or measure")
    c.add_argument("--run", help="the run that labels (a finished run's id; default: the last that labelled)")
    c.add_argument("--model", help="label with this base model instead of a run (zero-shot)")
    add_dtype_arg(c)
    c.add_argument("--rationale", action="store_true", help="label: also write the model's rationale per video")
    from .. import config as C
    add_config_args(c, C.EngineConfig, "", "engine.")   # --engine server --base-url ...: the rationales from a server
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
