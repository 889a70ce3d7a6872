"""`python -m rbft`: every step of RB-FT from the command line. A thin layer over the library, one
module per command group (data, rationales, runs, pool, jobs, tools, toyworld)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import data, jobs, pool, rationales, runs, tools, toyworld

GROUP_MODULES = (data, rationales, runs, pool, jobs, toyworld, tools)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rbft" if Path(sys.argv[0]).name == "rbft" else "python -m rbft",   # the installed command
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

    for group in GROUP_MODULES:
        group.add_commands(command)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if argv is not None:
        args.argv = list(argv)
    from ..data import VideoError
    from ..models import ModelLoadError
    from ..prompts import PromptError
    from ..store import ProjectError
    try:
        args.func(args)
    except (ModelLoadError, PromptError, ProjectError, VideoError, FileNotFoundError, ValueError) as e:  # WontFit too
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: re-run the same command to resume", file=sys.stderr)
        return 130
    except Exception as e:
        from ..store import disk_problem
        problem = disk_problem(e)
        if problem is None:
            raise
        print(f"error: {problem}", file=sys.stderr)
        return 2
    return 0
