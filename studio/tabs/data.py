"""Data: import videos (a folder, or uploads with a class or a manifest), see them, describe the classes."""
from __future__ import annotations

import gradio as gr
import pandas as pd

from rbft import project, quality
from rbft.data import import_files, import_folder

from ..common import Context, friendly, open_store
from ..plots import class_counts

VIDEO_COLUMNS = ["id", "file", "label", "split", "duration s", "resolution", "rationale"]
SPLIT_COLORS = {"train": "#2563eb", "val": "#f59e0b", "test": "#16a34a", "pool": "#9ca3af"}


def video_table(store) -> pd.DataFrame:
    gen = quality.latest_generator(store)
    status = ({r["video_id"]: r["status"] for r in store.rationales(gen["prompt_id"], gen["model"])}
              if gen else {})
    rows = [[v["id"], v["path"], v["label"], v["split"],
             round(v["duration_s"], 1) if v["duration_s"] else None,
             f"{v['width']}x{v['height']}", status.get(v["id"], "-")]
            for v in store.videos() + store.videos(split="pool")]
    return pd.DataFrame(rows, columns=VIDEO_COLUMNS)


def summary(store) -> str:
    videos = store.videos()
    if not videos and not store.videos(split="pool"):
        return (f"**{store.root.name}** has no videos yet. Import a folder with one subfolder per class, "
                "or upload videos below.")
    splits = {s: sum(v["split"] == s for v in videos) for s in ("train", "val", "test")}
    errors = len(store.import_errors())
    pooled = len(store.videos(split="pool"))
    return (f"**{store.root.name}**: {len(videos)} videos in {len(store.labels())} classes "
            f"(train {splits['train']}, val {splits['val']}, test {splits['test']})"
            + (f", and {pooled} unlabelled in the pool (Label tab)" if pooled else "")
            + (f"; {errors} files could not be imported (listed below)" if errors else ""))


def errors_table(store) -> pd.DataFrame:
    return pd.DataFrame([[e["path"], e["reason"]] for e in store.import_errors()],
                        columns=["file", "why it was not imported"])


def classes_table(store) -> pd.DataFrame:
    return pd.DataFrame([[c["name"], c["description"]] for c in project.classes(store)],
                        columns=["class", "description"])


def view(project_path: str):
    store = open_store(project_path)
    return (summary(store), video_table(store), class_counts(store.videos() + store.videos(split="pool")),
            errors_table(store),
            project.domain(store), classes_table(store))


def build(ctx: Context, project_state: gr.State):
    summary_md = gr.Markdown()
    with gr.Row():
        with gr.Column(scale=1):
            with gr.Tab("Import a folder"):
                folder = gr.Textbox(label="Folder or manifest on this machine",
                                    placeholder="/data/clips (one subfolder per class) or /data/labels.csv")
                seed = gr.Number(value=0, precision=0, label="Split seed (train/val/test, stratified)")
                to_pool = gr.Checkbox(value=False, label="Videos without a label go into the pool (unlabelled, "
                                      "for the Label tab) instead of being refused", elem_id="to-pool")
                import_folder_btn = gr.Button("Import", variant="primary")
            with gr.Tab("Upload videos"):
                uploads = gr.File(file_count="multiple", label="Videos, and optionally one CSV/JSONL manifest",
                                  file_types=["video", ".csv", ".jsonl", ".tsv"])
                upload_label = gr.Textbox(label="Class of these videos (leave empty with a manifest, or for the pool)")
                upload_pool = gr.Checkbox(value=False, label="Without a class: into the pool (unlabelled)")
                upload_btn = gr.Button("Upload and import", variant="primary")
            import_report = gr.Textbox(label="Import report", lines=6, interactive=False)
        with gr.Column(scale=1):
            counts = gr.BarPlot(x="class", y="videos", color="split", label="Videos per class and split",
                                height=340, color_map=SPLIT_COLORS)  # tall enough for the legend below
    with gr.Accordion("Domain and class descriptions (shown to the model in every prompt)", open=False):
        domain = gr.Textbox(label="Domain", placeholder="e.g. smart-home security camera footage")
        classes = gr.Dataframe(headers=["class", "description"], interactive=True, column_count=2,
                               label="One line per class: what it means in this domain")
        save_classes_btn = gr.Button("Save descriptions")
        classes_msg = gr.Markdown()
    videos = gr.Dataframe(headers=VIDEO_COLUMNS, interactive=False, label="Videos", max_height=420,
                          show_search="filter")
    errors = gr.Dataframe(headers=["file", "why it was not imported"], interactive=False,
                          label="Files that could not be imported", max_height=240)
    outputs = [summary_md, videos, counts, errors, domain, classes]

    @friendly
    def import_from_folder(project_path: str, source: str, split_seed: float, pool: bool = False):
        if not str(source or "").strip():
            raise gr.Error("Type the path of a folder (one subfolder per class) or a CSV/JSONL manifest.")
        store = open_store(project_path)
        report = import_folder(store, source.strip(), seed=int(split_seed or 0), pool=bool(pool))
        return (report.summary(), *view(project_path))

    @friendly
    def upload(project_path: str, files: list[str] | None, label: str, split_seed: float, pool: bool = False):
        if not files:
            raise gr.Error("Choose one or more video files to upload first.")
        store = open_store(project_path)
        report = import_files(store, files, label=label, seed=int(split_seed or 0), pool=bool(pool))
        return (report.summary(), *view(project_path))

    @friendly
    def save_classes(project_path: str, domain_text: str, table: pd.DataFrame):
        store = open_store(project_path)
        known = set(store.labels())
        descriptions = {}
        for name, text in table.itertuples(index=False):
            name = str(name).strip()
            if name and name not in known:
                raise gr.Error(f"{name!r} is not a class of this project; classes come from the imported "
                               "videos' labels")
            if name:
                descriptions[name] = str(text or "").strip()
        project.configure(store, domain_text.strip() or None, descriptions)
        return "Saved: every prompt now shows these descriptions.", *view(project_path)

    import_folder_btn.click(import_from_folder, [project_state, folder, seed, to_pool], [import_report, *outputs],
                            api_name="import_folder")
    upload_btn.click(upload, [project_state, uploads, upload_label, seed, upload_pool], [import_report, *outputs],
                     api_name="import_uploads")
    save_classes_btn.click(save_classes, [project_state, domain, classes], [classes_msg, *outputs],
                           api_name="save_classes")
    return friendly(view), outputs
