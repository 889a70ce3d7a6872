"""Rationales, the prompt lab: each video beside the frames the model sees and the rationale it wrote;
edit, accept or reject; edit the prompt with a live preview; try it on a few videos, then on all;
compare two prompt versions on the same videos."""
from __future__ import annotations

from pathlib import Path

import gradio as gr
import pandas as pd

from rbft import config as C
from rbft import project, quality, rationale_import
from rbft.prompts import FIELDS, KINDS, PromptError, strip_classification

from .. import attention_view
from ..common import Context, friendly, header_settings, media_path, open_store, start_job

FLAGS = ["all", "no rationale yet", "leaks the label", "does not support its label",
         "rejected", "edited or accepted", "not reviewed"]
SPLITS = ["train", "val", "test", "all"]


def version_choices(store, kind: str = "rationale") -> list[tuple[str, int]]:
    project.prompt(store, kind)  # stores the default on first use
    return [(f"v{p['version']} (id {p['id']})", p["id"]) for p in reversed(store.prompts(kind))]


def rationales_by_video(store, prompt_id: int, model: str) -> dict[str, dict]:
    return {r["video_id"]: r for r in store.rationales(prompt_id, model)}


def matches(flag: str, video: dict, r: dict | None) -> bool:
    if flag == "all":
        return True
    if flag == "no rationale yet":
        return r is None
    if r is None:
        return False
    return {"leaks the label": lambda: quality.leaks_label(r["text"], video["label"]),
            "does not support its label": lambda: r["support_ok"] == 0,
            "rejected": lambda: r["status"] == "rejected",
            "edited or accepted": lambda: r["status"] in ("edited", "accepted"),
            "not reviewed": lambda: r["status"] in ("generated", "imported")}[flag]()


def set_model(store, rationale_set: str | None) -> str:
    """The model name a rationale set is stored under: an imported set's, or the project model's."""
    return rationale_set or project.settings(store).model.model


def set_choices(store) -> list[tuple[str, str]]:
    return [("written by the project's model", "")] + [(n, n) for n in rationale_import.imported_sets(store)]


def filtered(store, cls: str, split: str, flag: str, prompt_id: int, rationale_set: str = "") -> list[tuple[str, str]]:
    model = set_model(store, rationale_set)
    by_video = rationales_by_video(store, prompt_id, model)
    videos = store.videos(split=None if split in (None, "all") else split,
                          label=None if cls in (None, "all") else cls)
    return [(f"{v['label']} · {Path(v['path']).name}", v["id"]) for v in videos
            if matches(flag or "all", v, by_video.get(v["id"]))]


def info_text(store, video: dict, r: dict | None, model: str, prompt_id: int) -> str:
    version = store.prompt(prompt_id)["version"]
    head = f"**{video['label']}** · {video['split']} · {Path(video['path']).name}"
    if r is None:
        return f"{head}\n\nNo rationale yet from prompt v{version} and `{model}`."
    leak = "yes (the class name appears)" if quality.leaks_label(r["text"], video["label"]) else "no"
    support = {None: "not scored (Quality tab)", 1: "yes", 0: f"no (points to {r['support_pred']})"}[r["support_ok"]]
    return (f"{head}\n\nstatus **{r['status']}** · leaks the label: {leak} · supports its label: {support}"
            f" · prompt v{version} · `{model}`" + claims_text(store, video, r["text"]))


def claims_text(store, video: dict, text: str) -> str:
    """In a testbed project (the sample is one), each claim of the rationale marked true or false
    against the clip's event log: what a hallucinated rationale looks like."""
    if not store.get_meta("testbed_task"):
        return ""
    from rbft.toyworld import truth, world  # only a testbed's clips have event logs
    seed = truth.seed_of(video["path"])
    if seed is None:
        return ""
    found = truth.claims(text, world.render(seed).events)
    if not found:
        return "\n\nAgainst the clip's event log: the rationale states no event that can be checked."
    right = sum(c["true"] for c in found)
    marks = " · ".join(("✅ " if c["true"] else "❌ ") + c["claim"] for c in found)
    return f"\n\nAgainst the clip's event log, {right} of {len(found)} claims are true: {marks}"


def frames_gallery(store, video: dict, frames: C.FrameConfig) -> list:
    clip = project.clip(store, video, frames)
    fps = clip.fps or 1.0
    return [(f, f"frame {i} · {i / fps:.1f} s") for f, i in zip(clip.frames, clip.indices)]


def preview(store, kind: str, template: str, video: dict | None, rationale: str = "") -> str:
    try:
        return project.render(store, kind, template, label=video["label"] if video else "<label>",
                              rationale=strip_classification(rationale or "") or "<rationale>")
    except PromptError as e:
        return f"⚠ {e}"


def build(ctx: Context, project_state: gr.State, header: list):
    with gr.Row():
        cls_f = gr.Dropdown(["all"], value="all", label="Class")
        split_f = gr.Dropdown(SPLITS, value="train", label="Split")
        flag_f = gr.Dropdown(FLAGS, value="all", label="Show")
        version = gr.Dropdown(label="Rationale prompt version", allow_custom_value=True)
        rset = gr.Dropdown([("written by the project's model", "")], value="", label="Rationale set",
                           allow_custom_value=True, elem_id="rationale-set")
    with gr.Accordion("Import rationales from a file", open=False):
        with gr.Row():
            import_file = gr.File(label="CSV or JSONL: a column naming the video (video, file, path or id) and "
                                        "one with its text (text or rationale); optionally source",
                                  file_types=[".csv", ".jsonl", ".ndjson"], type="filepath", scale=3,
                                  elem_id="import-file")
            with gr.Column(scale=1):
                import_source = gr.Textbox(label="Set name", placeholder="default: the file's name")
                import_btn = gr.Button("Import", elem_id="import-rationales")
        import_msg = gr.Markdown(elem_id="import-message")
    with gr.Row():
        prev_btn = gr.Button("◀ Previous", scale=0)
        video_dd = gr.Dropdown(label="Video", scale=3, allow_custom_value=True)
        next_btn = gr.Button("Next ▶", scale=0)
        position = gr.Markdown()
    with gr.Row():
        player = gr.Video(label="Video", interactive=False, height=260)
        gallery = gr.Gallery(label="What the model sees: the sampled frames", columns=4, height=260,
                             allow_preview=True)
    with gr.Row():
        with gr.Column(scale=3):
            rationale = gr.Textbox(label="Rationale (edit it, then save)", lines=7, interactive=True,
                                   elem_id="rationale-text")
        with gr.Column(scale=2):
            info = gr.Markdown(elem_id="rationale-info")
            with gr.Row():
                save_btn = gr.Button("Save edit")
                accept_btn = gr.Button("Accept")
                reject_btn = gr.Button("Reject", variant="stop")
            regen_btn = gr.Button("Regenerate this one")
    looked = attention_view.panel("rationales")
    with gr.Accordion("Prompt lab", open=True):
        with gr.Row():
            with gr.Column():
                kind = gr.Dropdown(list(KINDS), value="rationale", label="Prompt kind",
                                   info="rationale: Stage I generation (with the label hint); describe: "
                                        "Stage I training; classify: labels; support: label-support check")
                template = gr.Textbox(label="Template", lines=14, max_lines=40, elem_id="template")
                fields = gr.Markdown()
                with gr.Row():
                    save_template_btn = gr.Button("Save as a new version", variant="primary")
                template_msg = gr.Markdown()
            with gr.Column():
                rendered = gr.Textbox(label="Preview for the selected video", lines=16, interactive=False)
        with gr.Row():
            try_n = gr.Number(value=6, precision=0, label="N", scale=0, min_width=80)
            try_btn = gr.Button("Try on N training videos")
            all_btn = gr.Button("Generate for all training videos", variant="primary")
        job_msg = gr.Markdown()
    with gr.Accordion("Prompt versions, side by side", open=False):
        versions = gr.Dataframe(headers=["id", "kind", "version", "first line", "rationales"],
                                interactive=False, label="Versions")
        with gr.Row():
            version_a = gr.Dropdown(label="Version A", allow_custom_value=True)
            version_b = gr.Dropdown(label="Version B", allow_custom_value=True)
            compare_btn = gr.Button("Compare")
        compare_stats = gr.Dataframe(interactive=False, label="Quality of each version (same videos)")
        compare_rows = gr.Dataframe(interactive=False, label="Rationales side by side", wrap=True,
                                    max_height=500)

    def versions_table(store) -> pd.DataFrame:
        counts = {(g["prompt_id"]): g["n"] for g in store.rationale_generators()}
        return pd.DataFrame([[p["id"], p["kind"], p["version"], p["template"].strip().splitlines()[0][:80],
                              counts.get(p["id"], 0)] for p in store.prompts()],
                            columns=["id", "kind", "version", "first line", "rationales"])

    def current_prompt(store, prompt_id) -> int:
        return int(prompt_id) if prompt_id else project.prompt(store, "rationale")["id"]

    @friendly
    def show(project_path, video_id, prompt_id, kind_value, template_text, rationale_set=""):
        store = open_store(project_path)
        if not video_id:
            return None, [], "", "No video matches the filters.", preview(store, kind_value, template_text, None)
        prompt_id = current_prompt(store, prompt_id)
        cfg = project.settings(store)
        video = store.video(video_id)
        model = set_model(store, rationale_set)
        r = rationales_by_video(store, prompt_id, model).get(video_id)
        text = r["text"] if r else ""
        return (media_path(ctx, store, video["path"]), frames_gallery(store, video, cfg.frames), text,
                info_text(store, video, r, model, prompt_id),
                preview(store, kind_value, template_text, video, text))

    @friendly
    def refresh_list(project_path, cls, split, flag, prompt_id, current, rationale_set=""):
        store = open_store(project_path)
        choices = filtered(store, cls, split, flag, current_prompt(store, prompt_id), rationale_set)
        ids = [c[1] for c in choices]
        value = current if current in ids else (ids[0] if ids else None)
        return gr.Dropdown(choices=choices, value=value), position_text(ids, value)

    def position_text(ids, value) -> str:
        return f"{ids.index(value) + 1} of {len(ids)}" if value in ids else f"0 of {len(ids)}"

    @friendly
    def step(project_path, cls, split, flag, prompt_id, current, rationale_set, delta):
        store = open_store(project_path)
        ids = [c[1] for c in filtered(store, cls, split, flag, current_prompt(store, prompt_id), rationale_set)]
        if not ids:
            return gr.Dropdown(value=None), position_text(ids, None)
        i = (ids.index(current) + delta) % len(ids) if current in ids else 0
        return gr.Dropdown(value=ids[i]), position_text(ids, ids[i])

    @friendly
    def review(project_path, video_id, prompt_id, text, rationale_set, status):
        store = open_store(project_path)
        if not video_id:
            raise gr.Error("Select a video first.")
        prompt_id = current_prompt(store, prompt_id)
        model = set_model(store, rationale_set)
        if video_id not in rationales_by_video(store, prompt_id, model):
            if status != "edited" or not (text or "").strip():
                raise gr.Error("This video has no rationale from this prompt version yet: generate one, "
                               "or write one and press Save edit.")
            store.save_rationale(video_id, prompt_id, model, text.strip(), {"written_by": "a person"},
                                 status="edited")
        else:
            store.set_rationale(video_id, prompt_id, model,
                                text=text.strip() if status == "edited" else None, status=status)
        r = rationales_by_video(store, prompt_id, model)[video_id]
        return info_text(store, store.video(video_id), r, model, prompt_id)

    @friendly
    def load_template(project_path, kind_value, video_id, text):
        store = open_store(project_path)
        row = project.prompt(store, kind_value)
        names = ", ".join("{" + f + "}" for f in sorted(FIELDS[kind_value]))
        video = store.video(video_id) if video_id else None
        return (row["template"], f"Fields: {names}. Version v{row['version']} (id {row['id']}).",
                preview(store, kind_value, row["template"], video, text))

    @friendly
    def live_preview(project_path, kind_value, template_text, video_id, text):
        store = open_store(project_path)
        return preview(store, kind_value, template_text, store.video(video_id) if video_id else None, text)

    @friendly
    def save_template(project_path, kind_value, template_text):
        store = open_store(project_path)
        pid = project.save_prompt(store, kind_value, template_text)
        row = store.prompt(pid)
        choices = version_choices(store)
        selected = pid if kind_value == "rationale" else choices[0][1]
        return (f"Saved as {kind_value} v{row['version']} (id {pid}).", gr.Dropdown(choices=choices, value=selected),
                versions_table(store), gr.Dropdown(choices=choices), gr.Dropdown(choices=choices))

    def start_generate(project_path, model, n_frames, side, prompt_id, params):
        store = open_store(project_path)
        cfg = header_settings(store, model, n_frames, side)
        params = {"config": C.to_dict(cfg), "prompt_id": current_prompt(store, prompt_id), **params}
        job_id = start_job(ctx, store, "generate", params)
        return f"Started {job_id}: rationales from `{cfg.model.model}`; progress is in the bar at the top."

    @friendly
    def try_some(project_path, model, n_frames, side, prompt_id, n):
        if not n or int(n) < 1:
            raise gr.Error("N must be at least 1.")
        return start_generate(project_path, model, n_frames, side, prompt_id,
                              {"limit": int(n), "split": "train"})

    @friendly
    def generate_all(project_path, model, n_frames, side, prompt_id):
        return start_generate(project_path, model, n_frames, side, prompt_id, {"split": "train"})

    @friendly
    def regenerate(project_path, model, n_frames, side, prompt_id, video_id):
        if not video_id:
            raise gr.Error("Select a video first.")
        return start_generate(project_path, model, n_frames, side, prompt_id,
                              {"video_ids": [video_id], "overwrite": True, "split": None})

    @friendly
    def compare(project_path, a, b):
        if not a or not b:
            raise gr.Error("Choose two prompt versions to compare.")
        store = open_store(project_path)
        model = project.settings(store).model.model
        ra, rb = rationales_by_video(store, int(a), model), rationales_by_video(store, int(b), model)
        both = sorted(set(ra) & set(rb))
        if not both:
            raise gr.Error("The two versions have no video in common yet: try both on the same N videos "
                           "(Try on N picks the same videos each time).")
        stats = []
        for name, pid in (("A", int(a)), ("B", int(b))):
            s = quality.stats(store, pid, model)["overall"]
            rows = [r for v, r in (ra if name == "A" else rb).items() if v in both]
            leak = sum(quality.leaks_label(r["text"], r["label"]) for r in rows) / len(rows)
            support = [r["support_ok"] for r in rows if r["support_ok"] is not None]
            stats.append([f"{name}: v{store.prompt(pid)['version']}", len(rows),
                          round(sum(len(quality.words(strip_classification(r["text"]))) for r in rows) / len(rows), 1),
                          round(leak, 2), round(sum(support) / len(support), 2) if support else None,
                          round(quality.distinct_n([r["text"] for r in rows], 2), 2),
                          round(s["repetition_mean"], 2)])
        stats_df = pd.DataFrame(stats, columns=["version", "videos", "words", "leak rate", "support rate",
                                                "distinct-2", "repetition (all)"])
        rows_df = pd.DataFrame([[ra[v]["label"], v, ra[v]["text"], rb[v]["text"]] for v in both],
                               columns=["label", "video", "A", "B"])
        return stats_df, rows_df

    @friendly
    def import_rationales(project_path, file, source):
        if not file:
            raise gr.Error("Choose a CSV or JSONL file first.")
        store = open_store(project_path)
        try:
            report = rationale_import.import_rationales(store, file, (source or "").strip() or Path(file).stem)
        except ValueError as e:
            raise gr.Error(str(e)) from e
        chosen = report.sets[0] if report.sets else ""
        prompt_id = store.rationales(model=chosen)[0]["prompt_id"] if chosen else None
        return ("```\n" + report.summary() + "\n```", gr.Dropdown(choices=set_choices(store), value=chosen),
                gr.Dropdown(value=prompt_id) if prompt_id else gr.skip())

    @friendly
    def pick_set(project_path, rationale_set, prompt_id):
        """An imported set lives under the prompt version it was imported with: show that version."""
        store = open_store(project_path)
        rows = store.rationales(model=rationale_set) if rationale_set else []
        return gr.Dropdown(value=rows[0]["prompt_id"]) if rows else gr.skip()

    @friendly
    def refresh(project_path, prompt_id):
        store = open_store(project_path)
        choices = version_choices(store)
        ids = [c[1] for c in choices]
        value = int(prompt_id) if prompt_id and int(prompt_id) in ids else ids[0]
        return (gr.Dropdown(choices=["all"] + store.labels(), value="all"),
                gr.Dropdown(choices=choices, value=value), versions_table(store),
                gr.Dropdown(choices=choices, value=ids[-1]), gr.Dropdown(choices=choices, value=ids[0]))

    filters = [project_state, cls_f, split_f, flag_f, version, video_dd, rset]
    show_inputs = [project_state, video_dd, version, kind, template, rset]
    show_outputs = [player, gallery, rationale, info, rendered]
    for f in (cls_f, split_f, flag_f, version):
        f.input(refresh_list, filters, [video_dd, position], api_visibility="private").then(
            show, show_inputs, show_outputs, api_visibility="private")
    rset.input(pick_set, [project_state, rset, version], version, api_visibility="private").then(
        refresh_list, filters, [video_dd, position], api_visibility="private").then(
        show, show_inputs, show_outputs, api_visibility="private")
    import_btn.click(import_rationales, [project_state, import_file, import_source], [import_msg, rset, version],
                     api_name="import_rationales").then(
        refresh_list, filters, [video_dd, position], api_visibility="private").then(
        show, show_inputs, show_outputs, api_visibility="private")
    video_dd.change(show, show_inputs, show_outputs, api_name="show_video")
    video_dd.input(refresh_list, filters, [video_dd, position], api_visibility="private")
    prev_btn.click(lambda *a: step(*a, -1), filters, [video_dd, position], api_visibility="private")
    next_btn.click(lambda *a: step(*a, 1), filters, [video_dd, position], api_visibility="private")
    review_inputs = [project_state, video_dd, version, rationale, rset]
    save_btn.click(lambda p, v, pid, t, rs: review(p, v, pid, t, rs, "edited"), review_inputs, info,
                   api_name="edit_rationale")
    accept_btn.click(lambda p, v, pid, t, rs: review(p, v, pid, t, rs, "accepted"), review_inputs, info,
                     api_name="accept_rationale")
    reject_btn.click(lambda p, v, pid, t, rs: review(p, v, pid, t, rs, "rejected"), review_inputs, info,
                     api_name="reject_rationale")
    kind.input(load_template, [project_state, kind, video_dd, rationale], [template, fields, rendered],
               api_visibility="private")
    template.input(live_preview, [project_state, kind, template, video_dd, rationale], rendered,
                   api_name="preview_prompt", trigger_mode="always_last")
    save_template_btn.click(save_template, [project_state, kind, template],
                            [template_msg, version, versions, version_a, version_b], api_name="save_prompt")
    model_inputs = [project_state, *header]

    @friendly
    def look(project_path, model_name, n_frames, side, video_id, choice, text):
        """With the header's model, as the rationale was generated."""
        from rbft import models
        if not video_id:
            raise gr.Error("Select a video first.")
        store = open_store(project_path)
        cfg = header_settings(store, model_name, n_frames, side, save=False)
        lm = models.load(cfg.model)
        clip = project.clip(store, store.video(video_id), cfg.frames)
        return attention_view.look(store, lm, clip, cfg.frames, choice, text)

    rationale.change(attention_view.choices, rationale, looked.look_from, api_visibility="private")
    looked.button.click(look, [*model_inputs, video_dd, looked.look_from, rationale], [looked.share, looked.gallery],
                        api_name="attention_rationale")
    try_btn.click(try_some, [*model_inputs, version, try_n], job_msg, api_name="try_rationales")
    all_btn.click(generate_all, [*model_inputs, version], job_msg, api_name="generate_rationales")
    regen_btn.click(regenerate, [*model_inputs, version, video_dd], job_msg, api_name="regenerate_rationale")
    compare_btn.click(compare, [project_state, version_a, version_b], [compare_stats, compare_rows],
                      api_name="compare_prompts")

    refresh_outputs = [cls_f, version, versions, version_a, version_b]

    def reload(project_path):
        """Everything this tab shows, for a project just opened (or a page just loaded)."""
        first = refresh(project_path, None)
        listing = refresh_list(project_path, "all", "train", "all", None, None)
        tmpl = load_template(project_path, "rationale", None, "")
        sets = gr.Dropdown(choices=set_choices(open_store(project_path)), value="")
        return (*first, *listing, *tmpl, sets)

    reload_outputs = [*refresh_outputs, video_dd, position, template, fields, rendered, rset]
    return reload, reload_outputs, {"video": video_dd, "class": cls_f, "split": split_f, "flag": flag_f,
                                    "version": version, "set": rset, "show": (show, show_inputs, show_outputs),
                                    "list": (refresh_list, filters, [video_dd, position])}
