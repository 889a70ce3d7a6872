"""The compute type: float32 or bfloat16, chosen for speed on the machine at hand.

A CPU without a native bf16 path (no avx512_bf16 or AMX) runs bfloat16 matmuls 10-25x slower than
float32; one with it runs them faster. So `auto` on a CPU measures both on one language-model-sized
matmul (forward and backward, well under a second) and remembers the answer per machine. On CUDA,
`auto` is bfloat16 (with nf4 weights under QLoRA), as the cards are built for it.
"""
from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

CHOICES = ("auto", "float32", "bfloat16")
FASTER = 1.1   # bfloat16 must beat float32 by this factor to be picked (the probe's noise is a few %)
NATIVE_BF16_FLAGS = {"avx512_bf16", "amx_bf16", "amx_tile"}


class DtypeError(ValueError):
    """An unknown compute type."""


@dataclass(frozen=True)
class Choice:
    name: str          # 'float32' or 'bfloat16'
    reason: str        # why, in a line a person reads under the model box

    @property
    def dtype(self):
        import torch
        return getattr(torch, self.name)


def cpu_name_and_flags() -> tuple[str, set]:
    name, flags = platform.processor() or "unknown", set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return name, flags


def cpu_info() -> dict:
    """What the CPU is and what torch makes of it."""
    import torch
    name, flags = cpu_name_and_flags()
    try:
        onednn_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        onednn_bf16 = False
    return {"cpu": name, "cores": os.cpu_count(), "torch": torch.__version__,
            "capability": torch.backends.cpu.get_cpu_capability(),
            "native_bf16_flags": sorted(flags & NATIVE_BF16_FLAGS), "onednn_bf16": onednn_bf16}


def _gflops(dtype, tokens: int = 64, repeats: int = 3) -> float:
    """One decoder-sized linear layer (576 -> 1536, SmolLM2-135M's MLP), forward and backward."""
    import torch
    torch.manual_seed(0)
    layer = torch.nn.Linear(576, 1536).to(dtype)
    x = torch.randn(tokens, 576, dtype=dtype, requires_grad=True)
    layer(x).sum().backward()   # warm-up: allocations, kernel choice
    start = time.perf_counter()
    for _ in range(repeats):
        layer(x).sum().backward()
    seconds = (time.perf_counter() - start) / repeats
    return 3 * 2 * tokens * 576 * 1536 / seconds / 1e9


def measure(rounds: int = 3) -> dict:
    """float32 and bfloat16 speed on this CPU, in GFLOP/s (about a second where bf16 is slow). The
    types take turns and each keeps its best round, so that other work on the machine during the
    probe slows both alike instead of tipping the choice."""
    import torch
    fp32 = bf16 = 0.0
    for _ in range(rounds):
        fp32 = max(fp32, _gflops(torch.float32, repeats=2))
        bf16 = max(bf16, _gflops(torch.bfloat16, repeats=2))
    return {"float32_gflops": round(fp32, 2), "bfloat16_gflops": round(bf16, 2),
            "bf16_speedup": round(bf16 / fp32, 3), "threads": torch.get_num_threads()}


def _cache_file() -> Path:
    root = os.environ.get("RBFT_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rbft"
    return Path(root) / "cpu-dtype.json"


def _machine_key() -> str:
    """CPU model, cores and torch version: read without importing torch (the studio's page asks)."""
    try:
        version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        version = "none"
    return f"{cpu_name_and_flags()[0]}|{os.cpu_count()}|torch {version}"


def remembered() -> dict | None:
    """This machine's probe result if it was measured before, else None (reads a file, nothing else)."""
    try:
        return json.loads(_cache_file().read_text()).get(_machine_key())
    except (OSError, ValueError, AttributeError):
        return None


def probe(run: Callable[[], dict] = measure) -> dict:
    """The CPU's description and its measured speed per type, measured once per machine (CPU model,
    cores, torch version) and remembered in ~/.cache/rbft/cpu-dtype.json."""
    key, path = _machine_key(), _cache_file()
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if key not in known:
        known[key] = {**cpu_info(), **run(), "measured": time.strftime("%Y-%m-%d %H:%M")}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(known, indent=2))
            tmp.replace(path)
        except OSError:
            pass   # a read-only home: measured again next time, still right
    return known[key]


def choose(requested: str = "auto", device: str = "cpu",
           probe_cpu: Callable[[], dict] = probe) -> Choice:
    """The compute type for a model on `device`: the one asked for, or with 'auto' the faster one."""
    requested = (requested or "auto").lower()
    if requested not in CHOICES:
        raise DtypeError(f"dtype must be one of {', '.join(CHOICES)}, not {requested!r}")
    if requested != "auto":
        return Choice(requested, f"{requested}: asked for")
    if device != "cpu":
        return Choice("bfloat16", "bfloat16: auto on CUDA (the card's native type)")
    p = probe_cpu()
    ratio = p["bf16_speedup"]
    native = "native bf16" if p.get("native_bf16_flags") or p.get("onednn_bf16") else "no native bf16"
    if ratio >= FASTER:
        return Choice("bfloat16", f"bfloat16: auto on this CPU ({p['cpu']}, {native}: bfloat16 measured "
                                  f"{ratio:.2f}x float32)")
    return Choice("float32", f"float32: auto on this CPU ({p['cpu']}, {native}: bfloat16 measured "
                             f"{ratio:.2f}x float32)")


def describe_machine(probe_cpu: Callable[[], dict] = probe) -> dict:
    """The machine and the type auto picks, for bench reports and run records."""
    p = probe_cpu()
    return {**p, "auto_picks": choose("auto", "cpu", lambda: p).name}

