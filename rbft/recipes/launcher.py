"""Starts job processes in about a second instead of tens of seconds.

A job needs torch, transformers and peft, which take tens of seconds to import on a small CPU. The
studio therefore keeps one launcher process (`python -m rbft launcher`) that imports them once and
forks each job from there. The job is forked twice, so that it is nobody's child: it has its own
session and outlives the studio, as a `python -m rbft job` process does. The studio writes one JSON
line per job to the launcher's stdin and reads the job's pid back. Where fork does not exist
(Windows), `start` returns None and the caller starts a fresh interpreter.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path

PRELOAD = ("rbft.recipes.jobs", "rbft.models", "rbft.train", "rbft.recipes.experiment", "rbft.rationales", "rbft.quality")

_lock = threading.Lock()
_process: subprocess.Popen | None = None   # this process's launcher (a resource, not UI state)


def _running() -> subprocess.Popen | None:
    global _process
    if _process is not None and _process.poll() is None:
        return _process
    if not hasattr(os, "fork"):
        return None
    _process = subprocess.Popen([sys.executable, "-m", "rbft", "launcher"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, bufsize=1,
                                cwd=str(Path(__file__).resolve().parents[2]))
    return _process


def warm_up() -> None:
    """Start the launcher now, so that its imports are done when the first job comes."""
    with _lock:
        _running()


def start(root: Path, job_id: str, log: Path) -> int | None:
    """Start job `job_id` of the project at `root`, its output in `log`; its pid, or None."""
    with _lock:
        proc = _running()
        if proc is None:
            return None
        try:
            proc.stdin.write(json.dumps({"root": str(root), "job_id": job_id, "log": str(log),
                                         "env": dict(os.environ)}) + "\n")
            answer = proc.stdout.readline()
        except (BrokenPipeError, OSError):
            return None
        return int(answer) if answer.strip().isdigit() else None


def serve(run: Callable[[str, str], None]) -> None:
    """The launcher: import what jobs need, then fork one job per line read; in the forked process,
    `run(project_root, job_id)` (rbft.recipes.jobs.run_in_project, handed in by the CLI: the launcher
    knows processes, not jobs)."""
    import importlib
    import signal
    for name in PRELOAD:
        importlib.import_module(name)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)   # the short-lived middle processes are reaped at once
    for line in sys.stdin:
        request = json.loads(line)
        read, write = os.pipe()
        if os.fork() == 0:   # the middle process: fork the job, say its pid, leave
            os.close(read)
            pid = os.fork()
            if pid == 0:
                os.close(write)
                _run(request, run)
            os.write(write, str(pid).encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as f:
            pid = f.read()
        sys.stdout.write(pid + "\n")
        sys.stdout.flush()


def _run(request: dict, run: Callable[[str, str], None]) -> None:
    """In the job process: its own session, lower priority, output to its log, then the job."""
    code = 1
    try:
        os.setsid()
        signal_defaults()
        lower_priority()
        fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        sys.stdin.close()
        os.environ.clear()
        os.environ.update(request["env"])
        run(request["root"], request["job_id"])
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def lower_priority() -> None:
    """A job yields the CPU to the page that watches it: on a machine with few cores the studio
    answers while training runs (the GPU work is unaffected)."""
    os.nice(10)


def signal_defaults() -> None:
    import signal
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)   # Stop sends SIGINT: KeyboardInterrupt
