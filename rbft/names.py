"""The one place where a model name that is not a Hub id or a folder resolves.

A package that provides named models registers the name with the module that builds it (a module
path, imported only when the name is used): `import rbft` stays light, and the method never imports
a provider. The module has `model_dir() -> Path` (raises FileNotFoundError with the reason when it
cannot be had here), `available() -> bool` (without a download).
"""
from __future__ import annotations

import importlib
from pathlib import Path

PROVIDERS: dict[str, str] = {}


def register(name: str, module: str) -> None:
    PROVIDERS[name] = module


register("toyworld", "rbft.toyworld.shipped")   # the toy-world VLM: assembled offline on first use


def provider(name: str):
    """The provider module of a registered name, or None for any other name."""
    return importlib.import_module(PROVIDERS[name]) if name in PROVIDERS else None


def model_dir(name: str) -> Path:
    return provider(name).model_dir()


def available(name: str) -> bool:
    return name in PROVIDERS and provider(name).available()
