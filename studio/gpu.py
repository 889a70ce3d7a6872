"""ZeroGPU support: on a Hugging Face ZeroGPU Space a function gets the GPU only while it runs
under `spaces.GPU`. Everywhere else (no `spaces` package) the wrapper is a no-op."""
from __future__ import annotations

import os
from typing import Callable


def on_zero_gpu() -> bool:
    return bool(os.environ.get("SPACES_ZERO_GPU"))


def gpu(duration: int = 120) -> Callable[[Callable], Callable]:
    try:
        import spaces
    except ImportError:
        return lambda fn: fn
    return spaces.GPU(duration=duration)
