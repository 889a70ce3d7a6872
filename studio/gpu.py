"""ZeroGPU support: on a Hugging Face ZeroGPU Space a function gets the GPU only while it runs
under `spaces.GPU`. Everywhere else (no `spaces` package) the wrapper is a no-op."""
from __future__ import annotations

from collections.abc import Callable

from rbft.recipes.space import on_zero_gpu

__all__ = ["gpu", "on_zero_gpu"]


def gpu(duration: int = 120) -> Callable[[Callable], Callable]:
    try:
        import spaces
    except ImportError:
        return lambda fn: fn
    return spaces.GPU(duration=duration)
