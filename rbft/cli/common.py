"""What every command group shares: flags built from the config dataclasses, the project, the progress sink."""
from __future__ import annotations

import argparse
import json
from dataclasses import MISSING, fields
from pathlib import Path

from .. import config as C

GROUPS = C.FLAG_PREFIXES


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
        if "choices" in f.metadata:
            kw["choices"] = f.metadata["choices"]
        group.add_argument(flag, **kw)


def add_dtype_arg(parser: argparse.ArgumentParser) -> None:
    """--dtype for a command that loads a model outside the ModelConfig flags."""
    from ..dtypes import CHOICES
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
    from ..project import open_project
    return open_project(args.project)


def _sink(args):
    from ..events import ignore, print_sink
    return ignore if args.quiet else print_sink()
