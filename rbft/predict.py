"""Label new, unlabelled videos with a trained adapter, with the model's rationale for each."""
from __future__ import annotations

from pathlib import Path

from . import models, project
from .config import FrameConfig, GenerationConfig
from .data import VideoError, probe
from .evaluate import softmax
from .events import EventSink, Progress, ignore
from .frames import file_sha256, load_clip
from .store import Store


def predict(store: Store, lm: models.LoadedModel, paths: list[str | Path], frames: FrameConfig,
            gen: GenerationConfig | None = None, on_event: EventSink = ignore) -> list[dict]:
    """[{path, pred, scores, rationale, error}] per file; a broken file gets an error, not an exception."""
    names = [c["name"] for c in project.classes(store)]
    classify_text = project.render(store, "classify")
    describe_text = project.render(store, "describe")
    progress = Progress(on_event, "predict", len(paths))
    out = []
    for path in paths:
        row = {"path": str(path), "pred": None, "scores": {}, "rationale": None, "error": None}
        try:
            probe(path)
            clip = load_clip(path, file_sha256(path), frames, store.root / "cache" / "frames")
        except VideoError as e:
            row["error"] = str(e)
        else:
            probs = softmax(models.score_options(lm, classify_text, clip, frames, names))
            row["scores"] = dict(zip(names, probs))
            row["pred"] = max(row["scores"], key=row["scores"].get)
            if gen is not None:
                row["rationale"] = models.generate(lm, [describe_text], [clip], frames, gen)[0]
        out.append(row)
        progress.advance()
    return out
