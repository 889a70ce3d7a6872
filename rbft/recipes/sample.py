"""The bundled sample projects.

* The toy-world sample (assets/toysample), used where the toy-world VLM can be assembled: clips of
  the toy world's "floor" testbed task (incident / near miss / routine), with the rationales the
  toy-world VLM wrote for them, so the studio opens with real descriptions of real clips.
* The synthetic sample (assets/sample), the fallback: short clips of three motion classes made with
  opencv by `rbft.synthetic`, for the tiny random models.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..data import IngestReport, import_folder
from ..events import EventSink, ignore
from ..project import configure, open_project

ASSETS = Path(__file__).resolve().parents[2] / "assets"
SAMPLE = ASSETS / "sample"
TOY_SAMPLE = ASSETS / "toysample"
TOY_FRAMES = {"num_frames": 8, "max_side": 128}   # what the toy-world VLM was trained on


def create_sample(root: str | Path, on_event: EventSink = ignore) -> IngestReport:
    """Bring a sample into `root`: the toy-world one where its model is the default (it can be
    assembled here and no Hub model is cached), else the synthetic one."""
    from ..models import TOYWORLD, default_model
    if (TOY_SAMPLE / "project.json").exists() and default_model() == TOYWORLD:
        return create_toy_sample(root, on_event=on_event)
    store = open_project(root)
    meta = json.loads((SAMPLE / "project.json").read_text())
    configure(store, meta["domain"], meta["classes"])
    return import_folder(store, SAMPLE / "videos", seed=0, on_event=on_event, name="sample")


def create_toy_sample(root: str | Path, with_rationales: bool = True, on_event: EventSink = ignore) -> IngestReport:
    """The toy-world sample: clips, domain and classes, the toy-world VLM and its frame settings, and
    the rationales it wrote (rationales.jsonl, made by build_toy_sample)."""
    from .. import project
    from ..models import TOYWORLD
    store = open_project(root)
    meta = json.loads((TOY_SAMPLE / "project.json").read_text())
    configure(store, meta["domain"], meta["classes"])
    store.set_meta("testbed_task", meta["task"])   # its clips' event logs are known: the studio shows truth
    report = import_folder(store, TOY_SAMPLE / "videos", seed=0, on_event=on_event, name="sample")
    if (TOY_SAMPLE / "pool.csv").exists():   # unlabelled clips: the Label tab's whole loop on a first start
        from ..data import ingest
        report.pooled = ingest(store, TOY_SAMPLE / "pool.csv", on_event=on_event, pool=True).pooled
    cfg = project.settings(store)
    cfg.model.model = TOYWORLD
    cfg.frames.num_frames, cfg.frames.max_side = TOY_FRAMES["num_frames"], TOY_FRAMES["max_side"]
    cfg.generation.max_new_tokens = 120
    project.save_settings(store, cfg)
    shipped = TOY_SAMPLE / "rationales.jsonl"
    if with_rationales and shipped.exists():
        prompt_id = project.prompt(store, "rationale")["id"]
        by_file = {Path(v["path"]).name: v["id"] for v in store.videos()}
        for line in shipped.read_text().splitlines():
            row = json.loads(line)
            if row["file"] in by_file:
                store.save_rationale(by_file[row["file"]], prompt_id, TOYWORLD, row["text"], row["settings"])
    return report


def build_toy_sample(per_class: tuple[int, int, int] = (8, 4, 4), pool: int = 4, on_event: EventSink = ignore) -> None:
    """Regenerate assets/toysample: the clips (deterministic), a pool of `pool` unlabelled clips per
    class (pool.csv; their labels in pool_truth.csv, for `pool measure`) and the toy-world VLM's
    rationales."""
    import shutil
    import tempfile

    from .. import models, rationales
    from ..config import FrameConfig, GenerationConfig, ModelConfig
    from ..models import TOYWORLD
    from ..toyworld import testbed, truth
    shutil.rmtree(TOY_SAMPLE, ignore_errors=True)
    videos = TOY_SAMPLE / "videos"
    testbed.build_task("floor", videos, *per_class, first_seed=30_000_000, on_event=on_event, pool=pool)
    (videos / "project.json").rename(TOY_SAMPLE / "project.json")
    (videos / "manifest.csv").unlink()
    for oracle in videos.glob("rationales_*.csv"):   # the testbed's oracle files: not part of the sample
        oracle.unlink()
    if pool:   # beside the class folders, not among them
        (videos / "pool").rename(TOY_SAMPLE / "pool")
        for name in ("pool.csv", "pool_truth.csv"):
            (videos / name).rename(TOY_SAMPLE / name)
    with tempfile.TemporaryDirectory() as tmp:
        store = open_project(Path(tmp) / "sample")
        create_toy_sample(store.root, with_rationales=False)
        lm = models.load(ModelConfig(model=TOYWORLD))
        gen = GenerationConfig(max_new_tokens=120, batch_size=16)   # on a CPU a batch decodes as fast as one clip
        rationales.generate_rationales(store, lm, FrameConfig(**TOY_FRAMES), gen, split=None, on_event=on_event)
        paths = {v["id"]: Path(v["path"]).name for v in store.videos()}
        rows = store.rationales(model=TOYWORLD)
        with open(TOY_SAMPLE / "rationales.jsonl", "w") as f:
            for r in rows:
                f.write(json.dumps({"file": paths[r["video_id"]], "label": r["label"], "text": r["text"],
                                    "settings": json.loads(r["settings"])}) + "\n")
        facts = truth.rationale_truth("floor", [
            {"text": r["text"], "label": r["label"], "seed": int(Path(paths[r["video_id"]]).stem)} for r in rows])
        (TOY_SAMPLE / "truth.json").write_text(json.dumps(facts, indent=2))


def build_sample_videos(per_class: int = 8) -> None:
    """Regenerate assets/sample/videos (deterministic)."""
    from ..synthetic import MOTIONS, render_clip, write_video
    for ci, motion in enumerate(MOTIONS):
        for i in range(per_class):
            write_video(SAMPLE / "videos" / motion / f"{motion}_{i:02d}.webm",
                        render_clip(motion, 7000 + ci * 100 + i, size=128, n_frames=24))
