"""Label: a trained run labels the pool (the unlabelled videos), a person reviews the uncertain ones
first, labels above a precision measured on validation are accepted automatically, and the
labels are exported (CSV, JSONL, Label Studio)."""
from __future__ import annotations

import gradio as gr
import pandas as pd

from rbft import config as C
from rbft import pool, project

from .. import attention_view
from ..common import Context, download_folder, friendly, media_path, open_store, start_job
from .predict import BASE, load_model, model_choices
from .rationales import frames_gallery

QUEUE_COLUMNS = ["video", "file", "predicted", "confidence", "margin", "skipped"]
ALL = "all classes"


def run_id_of(store, choice: str) -> str:
    """The run id a choice names ("base model" is the project's model, zero-shot)."""
    if not choice:
        raise gr.Error("Choose the model that labels: a trained run or the base model.")
    return f"{pool.BASE}{project.settings(store).model.model}" if choice == BASE else choice


def build(ctx: Context, project_state: gr.State):
    summary = gr.Markdown(elem_id="pool-summary")
    with gr.Row():
        run = gr.Dropdown(label="Model that labels", info="a trained run, or the base model (zero-shot)",
                          allow_custom_value=True, scale=3)
        with_rationale = gr.Checkbox(value=False, label="Also write each video's rationale (slower)", scale=2)
        label_btn = gr.Button("Label the pool", variant="primary", scale=1)
    label_msg = gr.Markdown()
    with gr.Row():
        pred_filter = gr.Dropdown([ALL], value=ALL, label="Predicted class", scale=2)
        low = gr.Slider(0, 1, value=0, step=0.01, label="Confidence from", scale=2)
        high = gr.Slider(0, 1, value=1, step=0.01, label="to", scale=2)
        show_btn = gr.Button("Show the queue", scale=1)
    left = gr.Markdown(elem_id="pool-left")
    with gr.Row():
        with gr.Column(scale=3):
            current = gr.Textbox(label="Video under review", interactive=False, elem_id="pool-current")
            player = gr.Video(label="The clip", height=260, interactive=False)
            gallery = gr.Gallery(label="The frames the model saw", columns=4, height=200, preview=False)
        with gr.Column(scale=2):
            probs = gr.Label(label="Class probabilities", num_top_classes=10, elem_id="pool-probs")
            rationale = gr.Textbox(label="The model's rationale", lines=5, interactive=False)
            accept_btn = gr.Button("Accept the prediction", variant="primary")
            with gr.Row():
                other = gr.Dropdown(label="Or this class", scale=2)
                other_btn = gr.Button("Label as this class", scale=1)
            skip_btn = gr.Button("Skip (to the end of the queue)")
    looked = attention_view.panel("label")
    queue_table = gr.Dataframe(headers=QUEUE_COLUMNS, interactive=False, label="The queue, most uncertain first",
                               max_height=300)
    with gr.Accordion("Accept automatically above a precision target", open=False):
        with gr.Row():
            target = gr.Number(value=0.95, label="Precision target", minimum=0.01, maximum=1.0, scale=1)
            sure = gr.Number(value=0.95, label="How sure (the evidence's lower bound)", minimum=0.5, maximum=0.999,
                             scale=1)
            find_btn = gr.Button("Find the threshold on the validation split", scale=2)
            auto_btn = gr.Button("Accept those that pass", variant="stop", scale=1)
        evidence = gr.Markdown(elem_id="pool-evidence")
    with gr.Accordion("Export the labels", open=False):
        export_btn = gr.Button("Export CSV, JSONL and a Label Studio import")
        files = gr.File(label="Files", file_count="multiple", interactive=False)

    view_outputs = [summary, left, queue_table, current, player, gallery, probs, rationale, other]

    def _summary(store) -> str:
        sources = store.label_sources("train")
        return (f"**{len(store.videos(split='pool'))} videos in the pool** (unlabelled). Training labels: "
                f"{sources['imported']} imported, {sources['person']} reviewed by a person, "
                f"{sources['model']} accepted automatically.")

    def _view(project_path, choice, pred, lo, hi, video_id=None):
        store = open_store(project_path)
        classes = store.labels()
        empty = [_summary(store), "", pd.DataFrame(columns=QUEUE_COLUMNS), "", None, [], None, "",
                 gr.Dropdown(choices=classes, value=None)]
        if not choice or not store.videos(split="pool"):
            empty[1] = "Import unlabelled videos in the Data tab (tick 'into the pool'), then label them here."
            return empty
        run_id = run_id_of(store, choice)
        rows = pool.queue(store, run_id, None if pred in (None, ALL) else pred, float(lo or 0), float(hi if hi is not None else 1))
        if not rows:
            empty[1] = (f"No pool video is waiting with these filters for `{run_id}`: label the pool with it, "
                        "or widen the filters.")
            return empty
        table = pd.DataFrame([[r["video_id"], r["path"].rsplit("/", 1)[-1], r["pred"], round(r["confidence"], 3),
                               round(r["margin"], 3), "yes" if r["skipped_at"] else ""] for r in rows],
                             columns=QUEUE_COLUMNS)
        row = next((r for r in rows if r["video_id"] == video_id), rows[0])
        video = store.video(row["video_id"])
        cfg = project.settings(store)
        return [_summary(store), f"**{len(rows)} left** in this queue (`{run_id}`).", table, row["video_id"],
                media_path(ctx, store, video["path"]), frames_gallery(store, video, cfg.frames), row["scores"],
                row["rationale"] or "(not written: tick 'Also write each video's rationale' when labelling)",
                gr.Dropdown(choices=classes, value=None)]

    view = friendly(_view)
    filters = [project_state, run, pred_filter, low, high]

    @friendly
    def start_labelling(project_path, choice, rationale_wanted):
        store = open_store(project_path)
        if not store.videos(split="pool"):
            raise gr.Error("The pool is empty: import unlabelled videos in the Data tab first.")
        run_id = run_id_of(store, choice)
        cfg = project.settings(store)
        job_id = start_job(ctx, store, "label", {"run_id": run_id, "rationale": bool(rationale_wanted),
                                                 "config": C.to_dict(cfg)})
        return f"Started {job_id}: `{run_id}` labels the pool; progress is in the bar at the top. Then 'Show the queue'."

    @friendly
    def decide(project_path, choice, pred, lo, hi, video_id, label):
        store = open_store(project_path)
        if not video_id:
            raise gr.Error("No video is under review: show the queue first.")
        run_id = run_id_of(store, choice)
        if label is None:   # accept the prediction
            row = next((r for r in store.pool_predictions(run_id) if r["video_id"] == video_id), None)
            if row is None:
                raise gr.Error(f"{video_id} has no prediction from {run_id}.")
            label = row["pred"]
        pool.accept(store, video_id, label, run_id)
        return _view(project_path, choice, pred, lo, hi)

    @friendly
    def skip(project_path, choice, pred, lo, hi, video_id):
        store = open_store(project_path)
        if not video_id:
            raise gr.Error("No video is under review: show the queue first.")
        store.skip(video_id)
        return _view(project_path, choice, pred, lo, hi)

    @friendly
    def pick(project_path, choice, pred, lo, hi, evt: gr.SelectData):
        row = evt.row_value if evt is not None else None
        return _view(project_path, choice, pred, lo, hi, row[0] if row else None)

    @friendly
    def threshold(project_path, choice, precision, confidence):
        store = open_store(project_path)
        return pool.find_threshold(store, run_id_of(store, choice), float(precision), float(confidence)).text()

    @friendly
    def auto(project_path, choice, precision, confidence):
        store = open_store(project_path)
        t = pool.auto_accept(store, run_id_of(store, choice), float(precision), float(confidence))
        done = (f"\n\n**Accepted {t.pool_passing} pool videos** as labelled by the model (marked as automatic; "
                "the threshold and its evidence are kept in the project)." if t.threshold is not None else "")
        return t.text() + done

    @friendly
    def export(project_path, choice):
        store = open_store(project_path)
        run_id = run_id_of(store, choice) if choice else None
        out = download_folder("labels")
        return [str(p) for p in pool.export(store, out, run_id).values()]

    @friendly
    def look(project_path, choice, video_id, look_choice, text):
        if not video_id:
            raise gr.Error("No video is under review: show the queue first.")
        if not choice:
            raise gr.Error("Choose the model that labels: a trained run or the base model.")
        store = open_store(project_path)
        lm, frames = load_model(store, choice)
        clip = project.clip(store, store.video(video_id), frames)
        written = text if text and not text.startswith("(not written") else ""
        return attention_view.look(store, lm, clip, frames, look_choice, written)

    rationale.change(attention_view.choices, rationale, looked.look_from, api_visibility="private")
    looked.button.click(look, [project_state, run, current, looked.look_from, rationale],
                        [looked.share, looked.gallery], api_name="attention_label")
    label_btn.click(start_labelling, [project_state, run, with_rationale], label_msg, api_name="label_pool")
    show_btn.click(view, filters, view_outputs, api_name="pool_queue")
    accept_btn.click(lambda *a: decide(*a, None), [*filters, current], view_outputs, api_name="pool_accept")
    other_btn.click(decide, [*filters, current, other], view_outputs, api_name="pool_label_as")
    skip_btn.click(skip, [*filters, current], view_outputs, api_name="pool_skip")
    queue_table.select(pick, filters, view_outputs, api_visibility="private")
    find_btn.click(threshold, [project_state, run, target, sure], evidence, api_name="pool_threshold")
    auto_btn.click(auto, [project_state, run, target, sure], evidence, api_name="pool_auto_accept")
    export_btn.click(export, [project_state, run], files, api_name="pool_export")

    @friendly
    def reload(project_path):
        store = open_store(project_path)
        choices = model_choices(store)
        labelled = store.pool_runs()
        named = {c: run_id_of(store, c) for c in choices}
        value = next((c for c in choices if named[c] in labelled), choices[0])
        classes = store.labels()
        return [gr.Dropdown(choices=choices, value=value), gr.Dropdown(choices=[ALL] + classes, value=ALL),
                *_view(project_path, value, ALL, 0, 1)]

    return reload, [run, pred_filter, *view_outputs]
