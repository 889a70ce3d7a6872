"""Train: settings for the arms (zero-shot, direct SFT, RB-FT Stage I -> II), one button to run them all,
live loss curves and the validation confusion matrix redrawn at each evaluation, stop and resume."""
from __future__ import annotations

from typing import Optional

import gradio as gr
import pandas as pd

from rbft import config as C
from rbft import jobs, project
from rbft.budget import check as budget_check, plan as budget_plan
from rbft.experiment import ARMS, experiment_name
from rbft.quality import FILTERS
from rbft.store import Store

from ..common import Context, friendly, start_job, header_settings, open_store, parse_ints
from rbft.report import loss_figure

from ..plots import confusion_html

EVAL_COLUMNS = ["run", "stage", "step", "accuracy", "macro-F1"]


def watched_experiment(store: Store) -> Optional[str]:
    """The experiment of the newest experiment job, else of the newest run."""
    for job in store.jobs(limit=20):
        if job["kind"] == "experiment":
            return job["params"]["name"]
    runs = store.runs()
    return runs[-1]["experiment"] if runs else None


def live_view(store: Store, experiment: Optional[str]):
    """(loss figure, confusion HTML, eval table) of an experiment, from its runs' events."""
    if not experiment:
        return None, '<p class="rbft-muted">No experiment yet.</p>', pd.DataFrame(columns=EVAL_COLUMNS)
    runs = store.runs(experiment)
    evals = [(r, e) for r in runs for e in store.events(r["id"], "eval")]
    table = pd.DataFrame([[f"{r['arm']} s{r['seed']}", e["stage"], e["done"], round(e["data"]["accuracy"], 3),
                           round(e["data"]["macro_f1"], 3)] for r, e in evals], columns=EVAL_COLUMNS)
    if evals:
        run, newest = max(evals, key=lambda pair: pair[1]["id"])
        d = newest["data"]
        title = (f"{run['arm']} seed {run['seed']}, {newest['stage']}, step {newest['done']}: "
                 f"accuracy {d['accuracy']:.3f}, macro-F1 {d['macro_f1']:.3f}")
        confusion = confusion_html(d["confusion"], d["classes"], title)
    else:
        confusion = '<p class="rbft-muted">The validation confusion matrix appears at the first evaluation.</p>'
    return loss_figure(store, experiment), confusion, table


def build(ctx: Context, project_state: gr.State, header: list):
    with gr.Row():
        with gr.Column():
            arms = gr.CheckboxGroup(list(ARMS), value=["zero_shot", "sft", "rbft"], label="Arms",
                                    info="sft_total: direct SFT with as many steps as Stage I + II together; "
                                         "rbft_joint: rationale and label objectives mixed in one stage")
            seeds = gr.Textbox(value="0", label="Seeds", info="one run of every arm per seed, e.g. 0 1 2")
            with gr.Row():
                stage1_steps = gr.Number(precision=0, label="Stage I steps (rationales)")
                stage2_steps = gr.Number(precision=0, label="Stage II / SFT steps (labels)")
            with gr.Row():
                batch = gr.Number(precision=0, label="Batch size")
                lr = gr.Number(label="Learning rate")
                eval_every = gr.Number(precision=0, label="Evaluate every K steps")
        with gr.Column():
            quantization = gr.Radio(["auto", "nf4", "none"], label="Quantization",
                                    info="auto: 4-bit QLoRA on a CUDA GPU, bf16 LoRA on CPU")
            with gr.Row():
                lora_r = gr.Number(precision=0, label="LoRA rank")
                lora_alpha = gr.Number(precision=0, label="LoRA alpha")
            rationale_filter = gr.Radio(list(FILTERS), label="Stage I trains on",
                                        info="not_rejected: all but those you rejected; supported: only "
                                             "rationales that point to their label (score them in Quality)")
            hint = gr.Checkbox(label="Keep the label hint in the Stage I training prompt")
            joint = gr.Slider(0.05, 0.95, step=0.05, label="rbft_joint: weight of the rationale objective",
                              info="its share of the mixed stage; the label objective has the rest")
            gen_tokens = gr.Number(precision=0, label="Longest rationale (tokens)")
    budget = gr.Markdown(elem_id="budget-preview")
    with gr.Row():
        run_btn = gr.Button("Run experiment", variant="primary", elem_id="run-experiment")
        stop_btn = gr.Button("Stop", variant="stop")
        resume_btn = gr.Button("Resume")
    train_msg = gr.Markdown()
    progress = gr.HTML(elem_id="train-progress")
    with gr.Row():
        loss_plot = gr.Plot(label="Training loss per arm and stage", show_label=False, elem_id="loss-plot")
        confusion = gr.HTML(elem_id="live-confusion", label="Validation confusion matrix")
    evals = gr.Dataframe(headers=EVAL_COLUMNS, interactive=False, label="Validation during training")
    last_seen = gr.State(-1)

    setting_inputs = [arms, seeds, stage1_steps, stage2_steps, batch, lr, eval_every, quantization, lora_r,
                      lora_alpha, rationale_filter, hint, gen_tokens, joint]

    def settings_values(cfg: C.ExperimentConfig) -> list:
        return [cfg.arms, " ".join(map(str, cfg.seeds)), cfg.stage1.max_steps, cfg.stage2.max_steps,
                cfg.stage2.batch_size, cfg.stage2.learning_rate, cfg.stage2.eval_every,
                cfg.model.quantization, cfg.stage2.lora_r, cfg.stage2.lora_alpha, cfg.filter,
                cfg.hint_in_training, cfg.generation.max_new_tokens, cfg.joint_weight]

    def apply(cfg: C.ExperimentConfig, arm_list, seed_text, s1, s2, bs, rate, every, quant, r, alpha, filt,
              hint_value, tokens, joint_weight) -> C.ExperimentConfig:
        if not arm_list:
            raise gr.Error("Choose at least one arm.")
        for name, value, low in (("Stage I steps", s1, 1), ("Stage II steps", s2, 1), ("Batch size", bs, 1),
                                 ("LoRA rank", r, 1), ("Longest rationale", tokens, 8)):
            if value is None or int(value) < low:
                raise gr.Error(f"{name} must be at least {low}.")
        if not rate or float(rate) <= 0:
            raise gr.Error("The learning rate must be above 0.")
        cfg.arms, cfg.seeds = list(arm_list), parse_ints(seed_text, "seeds")
        for stage, steps in ((cfg.stage1, s1), (cfg.stage2, s2)):
            stage.max_steps, stage.batch_size, stage.learning_rate = int(steps), int(bs), float(rate)
            stage.eval_every = int(every or 0)
            stage.save_every = max(1, min(stage.save_every, int(steps)))
            stage.lora_r, stage.lora_alpha = int(r), int(alpha or 2 * int(r))
        cfg.model.quantization, cfg.filter, cfg.hint_in_training = quant, filt, bool(hint_value)
        cfg.generation.max_new_tokens = int(tokens)
        cfg.joint_weight = float(joint_weight)
        return cfg

    @friendly
    def run(project_path, model, n_frames, side, *values):
        store = open_store(project_path)
        cfg = apply(header_settings(store, model, n_frames, side), *values)
        project.save_settings(store, cfg)
        need = budget_check(store, cfg)  # what will not fit is refused here, before anything loads
        name = experiment_name(cfg, store)
        job_id = start_job(ctx, store, "experiment", {"config": C.to_dict(cfg), "name": name})
        return (f"Started {job_id}: experiment `{name}` ({', '.join(cfg.arms)} × seeds {cfg.seeds}). "
                f"Estimated peak memory: {need.estimate.gb:.1f} GB.")

    def preview(project_path, model, n_frames, side, *values):
        """The budget of these settings, redrawn as they change; a problem is said in its place."""
        try:
            store = open_store(project_path)
            return "#### Budget\n" + budget_plan(store, apply(header_settings(store, model, n_frames, side),
                                                                *values)).text()
        except gr.Error as e:
            return f"#### Budget\n{e.message}"
        except Exception as e:  # noqa: BLE001 - a preview never breaks the page
            return f"#### Budget\nNo estimate for these settings: {e}"

    @friendly
    def stop(project_path):
        store = open_store(project_path)
        job = jobs.active(store)
        if job is None:
            return "No job is running."
        jobs.stop(store, job["id"])
        return f"Stopping {job['id']}: it ends at the next step; Resume continues from the last checkpoint."

    @friendly
    def resume(project_path):
        store = open_store(project_path)
        if jobs.active(store):
            raise gr.Error("A job is still running; stop it first.")
        ended = [j for j in store.jobs(limit=20) if j["status"] in ("interrupted", "failed")]
        if not ended:
            return "Nothing to resume: no stopped or failed job."
        job_id = start_job(ctx, store, ended[0]["kind"], ended[0]["params"])
        return f"Resumed {ended[0]['kind']} as {job_id}; finished work is kept."

    def watch(store: Store, seen):
        """What the timer redraws; unchanged figures are skipped."""
        name = watched_experiment(store)
        ids = [r["id"] for r in store.runs(name)] if name else []
        newest = store.last_event_id(ids)
        if newest == seen:
            return gr.skip(), gr.skip(), gr.skip(), seen
        loss, matrix, table = live_view(store, name)
        return loss, matrix, table, newest

    run_btn.click(run, [project_state, *header, *setting_inputs], train_msg, api_name="run_experiment")
    for source in [*header, *setting_inputs]:
        source.change(preview, [project_state, *header, *setting_inputs], budget, show_progress="hidden")
    gr.Button("Preview the budget", visible=False).click(preview, [project_state, *header, *setting_inputs],
                                                         budget, api_name="budget_preview")
    stop_btn.click(stop, [project_state], train_msg, api_name="stop_job")
    resume_btn.click(resume, [project_state], train_msg, api_name="resume_job")

    def reload(project_path):
        store = open_store(project_path)
        cfg = project.settings(store)
        loss, matrix, table = live_view(store, watched_experiment(store))
        return (*settings_values(cfg), loss, matrix, table, -1)

    reload_outputs = [*setting_inputs, loss_plot, confusion, evals, last_seen]
    return reload, reload_outputs, (watch, [project_state, last_seen], [loss_plot, confusion, evals, last_seen]), progress
