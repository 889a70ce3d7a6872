"""What leaves the studio: the peft adapter, optionally merged weights, predictions CSV, rationales JSONL."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from . import project
from .config import ModelConfig
from .store import Store


def run_adapter(store: Store, run_id: str) -> Path:
    """The final adapter of a run (Stage II for RB-FT, the mixed stage for rbft_joint, SFT for SFT arms)."""
    run = store.run(run_id)
    out = Path(run["output_dir"])
    for stage in ("stage2", "joint", "sft"):
        adapter = out / stage / "adapter"
        if (adapter / "adapter_config.json").exists():
            return adapter
    raise FileNotFoundError(f"run {run_id} ({run['arm']}) has no trained adapter")


def export_adapter(store: Store, run_id: str, dest: str | Path) -> Path:
    """A peft adapter folder: `PeftModel.from_pretrained(base, dest)` loads it anywhere."""
    dest = Path(dest)
    shutil.copytree(run_adapter(store, run_id), dest, dirs_exist_ok=True)
    return dest


def export_merged(store: Store, run_id: str, dest: str | Path) -> Path:
    """Base weights with the LoRA merged in (bf16), plus the processor: a plain transformers model."""
    from . import models
    run = store.run(run_id)
    cfg = ModelConfig(**{**run["config"]["model"], "quantization": "none"})
    lm = models.load(cfg, adapter=run_adapter(store, run_id))
    merged = lm.model.merge_and_unload()
    merged.save_pretrained(str(dest))
    lm.processor.save_pretrained(str(dest))
    return Path(dest)


def export_predictions(store: Store, run_id: str, dest: str | Path) -> Path:
    classes = [c["name"] for c in project.classes(store)]
    with open(dest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video_id", "path", "label", "pred", "correct"] + [f"p_{c}" for c in classes])
        for p in store.predictions(run_id):
            video = store.video(p["video_id"])
            w.writerow([p["video_id"], video["path"], p["label"], p["pred"], int(p["label"] == p["pred"])]
                       + [f"{p['scores'].get(c, 0.0):.4f}" for c in classes])
    return Path(dest)


def export_rationales(store: Store, dest: str | Path, prompt_id: int | None = None,
                      model: str | None = None) -> Path:
    """One JSON object per rationale, with the prompt that made it and its review status."""
    prompts_by_id = {p["id"]: p for p in store.prompts()}
    with open(dest, "w") as f:
        for r in store.rationales(prompt_id, model):
            video = store.video(r["video_id"])
            prompt = prompts_by_id[r["prompt_id"]]
            f.write(json.dumps({
                "video_id": r["video_id"], "path": video["path"], "label": r["label"],
                "split": r["split"], "rationale": r["text"], "status": r["status"],
                "model": r["model"], "prompt_version": prompt["version"],
                "prompt": project.render(store, "rationale", prompt["template"], label=r["label"]),
                "support_ok": r["support_ok"], "settings": json.loads(r["settings"]),
            }) + "\n")
    return Path(dest)
