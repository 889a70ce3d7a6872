"""Does the shipped toy-world VLM keep the label-hint habit? (issue 33, since build 15)

Stage I's prompt gives the clip's label as a hint, and the rationale should end with
"Classification: <that label>". Build 9's own rationales of issue 37's 180 training clips are stored
in its project; this writes the shipped model's rationales of the same clips, with the same prompt
and settings (greedy, 100 new tokens, 8 frames of 128 px), into a copy of that project, then counts
per class how many end with their hint, and scores both sets against the event logs. The clips'
paths in the project are absolute, so build issue 37's split first (docs/rationale-truth.md, "To run
or continue it (issue 37)"); a work folder that already holds the rationales is only counted again:

    PYTHONPATH=. python benchmark/toyworld-captions/label_hint.py /tmp/hint > benchmark/toyworld-captions/label-hint.json
"""
import json
import sqlite3
import sys
from pathlib import Path

from rbft import models, paired, rationales
from rbft.config import FrameConfig, GenerationConfig, ModelConfig
from rbft.store import Store
from rbft.toyworld import world
from rbft.toyworld.truth import TASKS, caption_scores, implied_label, seed_of, truth_report

PROJECT = Path("benchmark/rationale-truth-v2/project.db")   # the committed copy
SHIPPED_AS = "toyworld-shipped"   # another name, so that build 9's stored rows ("toyworld") stay apart


def ends_with_hint(text: str, label: str) -> bool:
    lines = text.strip().splitlines()
    return bool(lines) and lines[-1].strip() == f"Classification: {label}"


def hint_kept(store: Store, model: str) -> dict[str, int]:
    """Per training clip: 1 where the model's rationale ends with the clip's hinted label."""
    videos = {v["id"]: v for v in store.videos(split="train")}
    return {r["video_id"]: int(ends_with_hint(r["text"], videos[r["video_id"]]["label"]))
            for g in store.rationale_generators() if g["model"] == model
            for r in store.rationales(g["prompt_id"], model)}


def per_clip_truth(store: Store, model: str) -> dict[str, dict[str, float]]:
    """Per training clip: the rationale's event precision and whether its stated events imply its
    label (what truth_report averages), so that two models can be paired over the clips."""
    out: dict[str, dict[str, float]] = {"event_precision": {}, "label_follows": {}}
    for g in store.rationale_generators():
        if g["model"] == model:
            for r in store.rationales(g["prompt_id"], model):
                video = store.video(r["video_id"])
                events = world.render(seed_of(video["path"])).events
                out["event_precision"][r["video_id"]] = caption_scores(r["text"], events)["event_precision"]
                out["label_follows"][r["video_id"]] = int(implied_label(TASKS["floor"], r["text"]) == video["label"])
    return out


def habit(store: Store, kept: dict[str, int]) -> dict:
    by_class: dict[str, list[int]] = {}
    for video_id, ok in kept.items():
        by_class.setdefault(store.video(video_id)["label"], []).append(ok)
    return {"ends_with_hint": sum(kept.values()), "rationales": len(kept),
            "per_class": {k: f"{sum(v)}/{len(v)}" for k, v in sorted(by_class.items())}}


def main(work: str) -> None:
    work = Path(work)
    if not (work / "project.db").exists():
        work.mkdir(parents=True, exist_ok=True)
        src, dst = sqlite3.connect(PROJECT), sqlite3.connect(work / "project.db")
        src.backup(dst)
        dst.close()
        src.close()
    store = Store(work)
    lm = models.load(ModelConfig(model="toyworld"))
    weights, lm.name = lm.weights, SHIPPED_AS
    rationales.generate_rationales(store, lm, FrameConfig(8, 128), GenerationConfig(max_new_tokens=100))  # kept if done
    truth = {row["model"]: row for row in truth_report(store, "floor")
             if row["model"] in ("toyworld", SHIPPED_AS) and row["subset"] == "all"}
    build9, shipped = hint_kept(store, "toyworld"), hint_kept(store, SHIPPED_AS)
    a, b = per_clip_truth(store, SHIPPED_AS), per_clip_truth(store, "toyworld")
    print(json.dumps({"build 9 (toyworld-4635d90819ff)": {**habit(store, build9), "truth": truth.get("toyworld")},
                      f"shipped ({weights})": {**habit(store, shipped), "truth": truth.get(SHIPPED_AS)},
                      "shipped minus build 9, paired over the clips [95%]": {
                          "hint kept": paired.format_difference(paired.paired_difference({0: shipped}, {0: build9})),
                          **{k: paired.format_difference(paired.paired_difference({0: a[k]}, {0: b[k]})) for k in a}}},
                     indent=2))


if __name__ == "__main__":
    main(sys.argv[1])
