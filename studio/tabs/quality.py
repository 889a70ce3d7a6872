"""Quality: per prompt version and class, rationale length, label leakage, label support, diversity and
repetition, with the worst examples one click from the Rationales tab."""
from __future__ import annotations

import gradio as gr
import pandas as pd

from rbft import config as C
from rbft import project, quality, rationale_import

from ..common import Context, friendly, header_settings, open_store, start_job
from ..plots import length_histogram

STAT_COLUMNS = ["class", "rationales", "words (mean)", "words (min-max)", "leak rate", "support rate",
                "distinct-1", "distinct-2", "repetition", "reviewed"]


def generator_choices(store) -> list[tuple[str, str]]:
    out = []
    for g in store.rationale_generators():
        p = store.prompt(g["prompt_id"])
        out.append((f"prompt v{p['version']} · {g['model']} · {g['n']} rationales", f"{g['prompt_id']}|{g['model']}"))
    return out


def stats_table(s: dict) -> pd.DataFrame:
    rows = []
    for name, row in [("ALL", s["overall"]), *s["per_class"].items()]:
        reviewed = sum(n for k, n in row["status"].items() if k not in ("generated", "imported"))
        rows.append([name, row["n"], round(row["words_mean"], 1), f"{row['words_min']}-{row['words_max']}",
                     round(row["leakage_rate"], 2),
                     None if row["support_rate"] is None else round(row["support_rate"], 2),
                     round(row["distinct_1"], 2), round(row["distinct_2"], 2),
                     round(row["repetition_mean"], 2), reviewed])
    return pd.DataFrame(rows, columns=STAT_COLUMNS)


def worst_table(s: dict) -> pd.DataFrame:
    rows = []
    for w in s["worst"]:
        why = []
        if w["support_pred"] is not None and w["support_pred"] != w["label"]:
            why.append(f"points to {w['support_pred']}")
        if w["repetition"] > 0.2:
            why.append(f"repetitive ({w['repetition']:.2f})")
        if len(quality.words(w["text"])) < 15:
            why.append("short")
        rows.append([w["video_id"], w["label"], ", ".join(why) or "lowest ranked", w["text"][:300]])
    return pd.DataFrame(rows, columns=["video", "label", "why", "rationale"])


def truth_table(store):
    """For a testbed project: each rationale set's truth against the event logs and its support rate."""
    task = store.get_meta("testbed_task")
    if not task:
        return gr.Dataframe(visible=False)
    from rbft.toyworld.truth import truth_report  # only a testbed's clips have event logs
    rows = []
    for r in truth_report(store, task, splits=None):
        if r["subset"] != "all":
            continue
        support = quality.stats(store, r["prompt_id"], r["model"], worst=0)["overall"]["support_rate"]
        rows.append([r["model"], r["prompt_id"], r["rationales"]] + [
            None if r.get(k) is None else round(r[k], 3)
            for k in ("event_precision", "event_recall", "hallucination_rate", "label_consistent")]
            + [None if support is None else round(support, 3)])
    return gr.Dataframe(pd.DataFrame(rows, columns=[
        "rationale set", "prompt id", "rationales", "event precision", "event recall", "hallucination rate",
        "label follows from the stated events", "judge's support rate"]), visible=True)


def build(ctx: Context, project_state: gr.State, header: list, rationales_tab: dict, tabs: gr.Tabs):
    with gr.Row():
        generator = gr.Dropdown(label="Rationales of", scale=3, allow_custom_value=True)
        refresh_btn = gr.Button("Refresh", scale=0)
        judge_box = gr.Textbox(label="Judge (default: the header's model)", scale=2,
                               placeholder="any VLM, or a text-only chat model: Hub id or local folder")
        support_btn = gr.Button("Score label support", scale=1)
    support_msg = gr.Markdown(
        "Label support asks the judge, from a rationale's text alone (no video), which class it points to. "
        "A rationale that points elsewhere is what the 'supported' Stage I filter drops.")
    judge_note = gr.Markdown(elem_id="judge-note")
    stats = gr.Dataframe(headers=STAT_COLUMNS, interactive=False, label="Per class")
    truth = gr.Dataframe(interactive=False, visible=False, elem_id="truth-table",
                         label="Truth against the clips' event logs (known for a testbed project such as the "
                               "sample): every rationale set, beside the judge's support rate")
    with gr.Row():
        histogram = gr.Plot(label="Rationale length")
        with gr.Column():
            gr.Markdown("**Worst examples**: select a row to open it in the Rationales tab.")
            worst = gr.Dataframe(headers=["video", "label", "why", "rationale"], interactive=False, wrap=True,
                                 elem_id="worst-examples")

    @friendly
    def view(project_path, key, n_worst: int = 8):
        store = open_store(project_path)
        choices = generator_choices(store)
        keys = [c[1] for c in choices]
        key = key if key in keys else (keys[0] if keys else None)
        if key is None:
            empty = pd.DataFrame(columns=STAT_COLUMNS)
            return (gr.Dropdown(choices=[], value=None), empty, None,
                    pd.DataFrame(columns=["video", "label", "why", "rationale"]), "", gr.Dataframe(visible=False))
        prompt_id, model = key.split("|", 1)
        s = quality.stats(store, int(prompt_id), model, worst=n_worst)
        return (gr.Dropdown(choices=choices, value=key), stats_table(s), length_histogram(s["per_class"]),
                worst_table(s), quality.judge_note(s["overall"]), truth_table(store))

    @friendly
    def score_support(project_path, model, n_frames, side, key, judge=""):
        if not key:
            raise gr.Error("There are no rationales to score yet: generate some in the Rationales tab.")
        store = open_store(project_path)
        cfg = header_settings(store, model, n_frames, side)
        if judge and judge.strip():
            cfg.model.model = judge.strip()
        prompt_id, written_by = key.split("|", 1)
        job_id = start_job(ctx, store, "support", {"config": C.to_dict(cfg), "prompt_id": int(prompt_id),
                                                "model": written_by})
        return f"Started {job_id}: `{cfg.model.model}` scores each rationale; press Refresh when it is done."

    @friendly
    def open_worst(project_path, key, evt: gr.SelectData):
        """Open the selected example in the Rationales tab, with filters (set, version) that show it."""
        from .rationales import filtered, set_choices
        if not evt.row_value:
            raise gr.Error("Select a row of the worst examples.")
        store = open_store(project_path)
        video = store.video(evt.row_value[0])
        prompt_id, model = key.split("|", 1) if key else (project.prompt(store, "rationale")["id"], "")
        rationale_set = model if rationale_import.is_imported(model) else ""
        choices = filtered(store, "all", video["split"], "all", int(prompt_id), rationale_set)
        return (gr.Tabs(selected="rationales"), gr.Dropdown(value="all"), gr.Dropdown(value=video["split"]),
                gr.Dropdown(value="all"), gr.Dropdown(choices=choices, value=video["id"]),
                gr.Dropdown(choices=set_choices(store), value=rationale_set), gr.Dropdown(value=int(prompt_id)))

    outputs = [generator, stats, histogram, worst, judge_note, truth]
    generator.input(view, [project_state, generator], outputs, api_visibility="private")
    refresh_btn.click(view, [project_state, generator], outputs, api_name="quality")
    support_btn.click(score_support, [project_state, *header, generator, judge_box], support_msg,
                      api_name="score_support")
    worst.select(open_worst, [project_state, generator],
                 [tabs, rationales_tab["class"], rationales_tab["split"], rationales_tab["flag"],
                  rationales_tab["video"], rationales_tab["set"], rationales_tab["version"]],
                 api_visibility="private")

    def reload(project_path):
        return view(project_path, None)

    return reload, outputs
