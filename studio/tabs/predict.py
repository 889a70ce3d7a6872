"""Predict: upload an unlabelled video, get the label with each class's probability and the model's rationale."""
from __future__ import annotations

import shutil
import time

import gradio as gr

from rbft import config as C
from rbft import models, project
from rbft.data import safe_filename
from rbft.export import run_adapter
from rbft.predict import predict

from .. import attention_view
from ..common import Context, friendly, open_store
from ..gpu import gpu

BASE = "base model (zero-shot)"


def model_choices(store) -> list[str]:
    return [r["id"] for r in reversed(store.runs()) if r["status"] == "done" and r["arm"] != "zero_shot"] + [BASE]


def load_model(store, run_id: str):
    """(model, frame settings) of a trained run, or of the project's base model."""
    if run_id == BASE:
        cfg = project.settings(store)
        return models.load(cfg.model), cfg.frames
    cfg = C.from_dict(C.ExperimentConfig, store.run(run_id)["config"])
    return models.load(cfg.model, adapter=run_adapter(store, run_id)), cfg.frames


@gpu(duration=120)
def _predict(store, run_id: str, path, with_rationale: bool, max_new_tokens: int):
    lm, frames = load_model(store, run_id)
    gen = C.GenerationConfig(max_new_tokens=max_new_tokens, batch_size=1) if with_rationale else None
    return predict(store, lm, [path], frames, gen)[0]


def build(ctx: Context, project_state: gr.State):
    with gr.Row():
        with gr.Column():
            video = gr.Video(label="An unlabelled video", sources=["upload"], height=280)
            model = gr.Dropdown(label="Model", info="a trained run, or the base model", allow_custom_value=True)
            with_rationale = gr.Checkbox(value=True, label="Also write the model's rationale")
            max_tokens = gr.Number(value=120, precision=0, label="Longest rationale (tokens)")
            predict_btn = gr.Button("Predict", variant="primary")
        with gr.Column():
            scores = gr.Label(label="Predicted class", num_top_classes=10, elem_id="predict-label")
            rationale = gr.Textbox(label="Rationale", lines=8, interactive=False)
            message = gr.Markdown()
    looked = attention_view.panel("predict")

    @friendly
    def run(project_path, path, run_id, rationale_wanted, tokens):
        if not path:
            raise gr.Error("Upload a video first.")
        if not run_id:
            raise gr.Error("Choose a model: a trained run or the base model.")
        store = open_store(project_path)
        dest = store.root / "uploads" / "predict" / time.strftime("%Y%m%d-%H%M%S")
        dest.mkdir(parents=True, exist_ok=True)
        copy = dest / safe_filename(str(path))
        shutil.copyfile(path, copy)
        row = _predict(store, run_id, copy, bool(rationale_wanted), int(tokens or 120))
        if row["error"]:
            raise gr.Error(f"This file cannot be used: {row['error']}")
        return row["scores"], row["rationale"] or "", f"**{row['pred']}** by `{run_id}`."

    predict_btn.click(run, [project_state, video, model, with_rationale, max_tokens],
                      [scores, rationale, message], api_name="predict")

    @friendly
    def look(project_path, path, run_id, choice, text):
        from rbft.data import VideoError, probe
        from rbft.frames import file_sha256, load_clip
        if not path or not run_id:
            raise gr.Error("Upload a video and choose a model first.")
        store = open_store(project_path)
        lm, frames = load_model(store, run_id)
        try:
            probe(path)
            clip = load_clip(path, file_sha256(path), frames, store.root / "cache" / "frames")
        except VideoError as e:
            raise gr.Error(f"This file cannot be used: {e}") from None
        return attention_view.look(store, lm, clip, frames, choice, text)

    rationale.change(attention_view.choices, rationale, looked.look_from, api_visibility="private")
    looked.button.click(look, [project_state, video, model, looked.look_from, rationale],
                        [looked.share, looked.gallery], api_name="attention_predict")

    @friendly
    def reload(project_path):
        choices = model_choices(open_store(project_path))
        return gr.Dropdown(choices=choices, value=choices[0])

    return reload, [model]
