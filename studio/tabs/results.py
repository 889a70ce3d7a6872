"""Results: the arms side by side, their confusion matrices, per-video predictions with each model's
rationale, and downloads (adapter, predictions CSV, rationales JSONL, report)."""
from __future__ import annotations

import shutil
from pathlib import Path

import gradio as gr
import pandas as pd

from rbft import export
from rbft.recipes import report
from rbft.recipes.experiment import summarize

from ..common import Context, download_folder, friendly, open_store, start_job
from ..plots import confusion_html


def experiment_choices(store) -> list[str]:
    names = []
    for run in reversed(store.runs()):
        if run["experiment"] not in names:
            names.append(run["experiment"])
    return names


def summary_table(rows: list[dict]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame(columns=["arm"])
    classes = list(rows[0]["per_class_f1"])
    data = [[r["arm"], r["seeds"], r["total_steps"], f"{r['accuracy'][0]:.3f} ± {r['accuracy'][1]:.3f}",
             f"{r['macro_f1'][0]:.3f} ± {r['macro_f1'][1]:.3f}", *[round(r["per_class_f1"][c], 3) for c in classes],
             round(r["seconds"]), round(r["peak_rss_mb"])] for r in rows]
    return pd.DataFrame(data, columns=["arm", "seeds", "steps", "accuracy", "macro-F1",
                                       *[f"F1 {c}" for c in classes], "time s", "peak RSS MB"])


def matrix_title(row: dict) -> str:
    return f"{row['arm']}: test, summed over {row['seeds']} seed(s)"


def predictions_table(store, experiment: str) -> pd.DataFrame:
    """One row per test video: the true label, then each run's prediction and rationale."""
    runs = [r for r in store.runs(experiment) if r["status"] == "done"]
    videos: dict[str, dict] = {}
    columns = ["video", "label"]
    for run in runs:
        name = f"{run['arm']} s{run['seed']}"
        columns.append(name)
        preds = store.predictions(run["id"])
        has_rationales = any(p["rationale"] for p in preds)
        if has_rationales:
            columns.append(f"{name} rationale")
        for p in preds:
            row = videos.setdefault(p["video_id"], {"video": Path(store.video(p["video_id"])["path"]).name,
                                                    "label": p["label"]})
            mark = "✓" if p["pred"] == p["label"] else "✗"
            row[name] = f"{mark} {p['pred']} ({p['scores'].get(p['pred'], 0):.2f})"
            if has_rationales:
                row[f"{name} rationale"] = p["rationale"] or ""
    return pd.DataFrame(list(videos.values()), columns=columns)


def build(ctx: Context, project_state: gr.State):
    with gr.Row():
        experiment = gr.Dropdown(label="Experiment", scale=3, allow_custom_value=True)
        refresh_btn = gr.Button("Refresh", scale=0)
    summary = gr.Dataframe(interactive=False, label="Test split: the arms side by side (mean ± std over seeds)",
                           elem_id="results-summary")
    matrices = gr.HTML(elem_id="results-confusion")
    predictions = gr.Dataframe(interactive=False, label="Per-video predictions (✓ right, ✗ wrong; class "
                               "probability)", wrap=True, max_height=420)
    with gr.Row():
        run = gr.Dropdown(label="Run", scale=3, allow_custom_value=True)
        explain_btn = gr.Button("Write each test video's rationale with this run's model")
        download_btn = gr.Button("Prepare downloads", variant="primary")
    message = gr.Markdown()
    files = gr.File(label="Downloads", file_count="multiple", interactive=False)

    @friendly
    def view(project_path, name):
        store = open_store(project_path)
        names = experiment_choices(store)
        name = name if name in names else (names[0] if names else None)
        if name is None:
            return (gr.Dropdown(choices=[], value=None), summary_table([]),
                    '<p class="rbft-muted">No finished experiment yet: run one in the Train tab.</p>',
                    pd.DataFrame(), gr.Dropdown(choices=[], value=None))
        rows = summarize(store, name)
        html = "".join(
            f'<div class="rbft-matrix">{confusion_html(m, c, matrix_title(r))}</div>'
            for r in rows for c, m in [report.confusion_sum(store, name, r["arm"])])
        done = [r["id"] for r in store.runs(name) if r["status"] == "done"]
        return (gr.Dropdown(choices=names, value=name), summary_table(rows),
                f'<div class="rbft-matrices">{html}</div>', predictions_table(store, name),
                gr.Dropdown(choices=done, value=done[-1] if done else None))

    @friendly
    def explain(project_path, run_id):
        if not run_id:
            raise gr.Error("Choose a finished run first.")
        store = open_store(project_path)
        job_id = start_job(ctx, store, "explain", {"run_id": run_id})
        return f"Started {job_id}; press Refresh when it is done to see the rationales in the table."

    @friendly
    def downloads(project_path, name, run_id):
        if not name or not run_id:
            raise gr.Error("Choose an experiment and one of its finished runs first.")
        store = open_store(project_path)
        out = download_folder(run_id.replace("/", "_"))
        paths = [export.export_predictions(store, run_id, out / "predictions.csv"),
                 export.export_rationales(store, out / "rationales.jsonl")]
        (out / "report.md").write_text(report.markdown(store, name))
        (out / "report.html").write_text(report.html(store, name))
        paths += [out / "report.md", out / "report.html"]
        if store.run(run_id)["arm"] != "zero_shot":
            adapter = export.export_adapter(store, run_id, out / "adapter")
            paths.append(Path(shutil.make_archive(str(out / "adapter"), "zip", adapter)))
        return f"Ready: {', '.join(p.name for p in paths)}.", [str(p) for p in paths]

    outputs = [experiment, summary, matrices, predictions, run]
    experiment.input(view, [project_state, experiment], outputs, api_visibility="private")
    refresh_btn.click(view, [project_state, experiment], outputs, api_name="results")
    explain_btn.click(explain, [project_state, run], message, api_name="explain_run")
    download_btn.click(downloads, [project_state, experiment, run], [message, files], api_name="downloads")

    def reload(project_path):
        return view(project_path, None)

    return reload, outputs
