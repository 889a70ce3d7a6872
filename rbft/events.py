"""One event type for every long job, so the CLI, the studio and the tests consume progress the same way."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Event:
    """Something a long job reports.

    kind: "progress" (done/total), "loss" (step, loss), "eval" (metrics and confusion
    matrix), "log" (a line for the user), "done" or "error".
    """

    kind: str
    stage: str
    done: int = 0
    total: int = 0
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


EventSink = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The default sink: drop events."""


def fanout(*sinks: EventSink | None) -> EventSink:
    """One sink that forwards to several (e.g. the store and a progress bar)."""
    real = [s for s in sinks if s is not None]

    def emit(event: Event) -> None:
        for sink in real:
            sink(event)

    return emit


class Progress:
    """Counts done items of a stage and emits progress events with a rate."""

    def __init__(self, emit: EventSink, stage: str, total: int):
        self.emit, self.stage, self.total = emit, stage, total
        self.done = 0
        self.start = time.time()
        self.emit(Event("progress", stage, 0, total, f"{stage}: starting"))

    def advance(self, n: int = 1, message: str = "", **data: Any) -> None:
        self.done += n
        elapsed = max(time.time() - self.start, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else None
        data = {"rate_per_min": rate * 60, "eta_s": eta, **data}
        self.emit(Event("progress", self.stage, self.done, self.total, message, data))


def print_sink(stream=sys.stderr) -> EventSink:
    """A terminal progress line per event: what the CLI shows."""

    def emit(event: Event) -> None:
        if event.kind == "progress" and event.total:
            width = 30
            filled = int(width * event.done / event.total)
            rate = event.data.get("rate_per_min")
            eta = event.data.get("eta_s")
            extra = f" {rate:.1f}/min" if rate else ""
            extra += f" eta {eta:.0f}s" if eta is not None and event.done < event.total else ""
            end = "\n" if event.done >= event.total else ""
            stream.write(f"\r{event.stage:<14} [{'#' * filled}{'.' * (width - filled)}] "
                         f"{event.done}/{event.total}{extra}   {end}")
        elif event.kind == "loss":
            stream.write(f"\r{event.stage:<14} step {event.done}/{event.total} "
                         f"loss {event.data['loss']:.4f}          ")
        elif event.kind == "eval":
            stream.write(f"\n{event.stage:<14} step {event.done}: accuracy "
                         f"{event.data['accuracy']:.3f} macro-F1 {event.data['macro_f1']:.3f}\n")
        elif event.kind in ("log", "error", "done") and event.message:
            stream.write(f"\n{event.message}\n" if event.kind != "log" else f"{event.message}\n")
        stream.flush()

    return emit
