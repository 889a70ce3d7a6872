"""The Blocks of RB-FT Studio: a header (project, model, frames, the running job) over seven tabs.

Every handler opens the project's store, does its work through `rbft`, and returns what
the page shows; nothing is kept in Python globals. A 1 s timer redraws the job bar and
the live training figures from the store, so a reloaded page or a second tab sees the same job.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import gradio as gr

from rbft import project
from rbft.dtypes import CHOICES as DTYPE_CHOICES
from rbft.recipes import jobs, launcher
from rbft.recipes.space import Storage

from . import access as access_rules
from . import jobbar
from .access import Access
from .common import MODEL_CHOICES, Context, friendly, header_settings, open_store
from .gpu import on_zero_gpu
from .tabs import data, label, predict, quality, rationales, results, train

CSS = Path(__file__).resolve().parent.parent / "assets" / "studio.css"
PROJECT_NAME = re.compile(r"^[\w][\w .-]{0,63}$")


def list_projects(root: Path) -> list[str]:
    return sorted(p.parent.name for p in root.glob("*/project.db"))


def compute_note(requested: str) -> str:
    """The compute type in a line, from the probe remembered on this machine (no torch import here)."""
    from rbft import dtypes
    requested = requested or "auto"
    if requested != "auto":
        return f"Compute type **{requested}** (asked for)."
    known = dtypes.remembered()
    if known:
        cpu = dtypes.choose("auto", "cpu", lambda: known)
        return f"Compute type **auto**: on CPU {cpu.reason}; bfloat16 on a CUDA GPU."
    return ("Compute type **auto**: on a CPU float32 unless bfloat16 is measured faster there (measured once, "
            "when a model first loads); bfloat16 on a CUDA GPU.")


def model_note_text(model: str, dtype: str = "auto", server: str = "") -> str:
    return " ".join(t for t in (_model_text(model), compute_note(dtype), server_note(server)) if t)


def server_note(server: str) -> str:
    if not server:
        return ""
    return (f"Rationales (Try, Generate all, Regenerate) are written by the server at `{server}`, with the model it "
            "serves; label scoring, training and the judge run in this studio's own jobs.")


def _model_text(model: str) -> str:
    from rbft import fit, presets
    from rbft.toyworld.shipped import unavailable_reason
    if model.startswith(("tiny:", "random:")) or model == "toyworld":
        missing = unavailable_reason()
        if missing:
            return ("⚠ `" + model + "`: the offline toy-world VLM cannot be had here, so the studio falls back "
                    "to tiny random models, whose rationales are noise. " + missing[0].upper() + missing[1:] + ".")
    if model == "toyworld":
        return ("`toyworld` is a small model of a toy world (SmolLM2-135M with eyes trained on rendered "
                "shapes, offline): its rationales describe toy-world clips, for trying the studio and testing "
                "the method. It is not a model of real footage: pick a Hub model above for that.")
    if model.startswith(("tiny:", "random:")):
        return ("⚠ `" + model + "` has random weights, built offline: every step runs, but its rationales are "
                "noise and its accuracy is chance. Pick a pretrained model above for real results.")
    p = presets.preset(model)
    if p is None:
        return ""
    gpu = fit.estimate_gb(p, quantized=True)
    cpu = fit.estimate_gb(p, quantized=False)
    return (f"Preset for `{model}` ({p.params_b:.2f} B parameters{', ' + p.note if p.note else ''}): "
            f"{p.num_frames} frames at {p.max_side} px, batch {p.batch_size}; training needs about "
            f"{gpu:.1f} GB with 4-bit QLoRA on a GPU, {cpu:.1f} GB in bf16 (about twice that in float32). A model that will not fit "
            "is refused before it loads.")


def create_app(project_path: str | Path, projects_root: str | Path | None = None,
               inline_jobs: bool | None = None, storage: Storage | None = None,
               access: Access | None = None) -> gr.Blocks:
    """The studio for one project folder; other projects are folders beside it (or under projects_root,
    or under storage.root: where app.py keeps them, with a warning when a restart wipes them). `access`
    says who may change it (studio.access; default: this machine's owner alone, on 127.0.0.1)."""
    project_path = Path(project_path).resolve()
    if storage is None:
        storage = Storage(Path(projects_root).resolve() if projects_root else project_path.parent, True,
                          "the folder the studio was given")
    root = storage.root.resolve()
    access = access or Access("local")
    ctx = Context(projects_root=root, default_project=project_path,
                  inline_jobs=on_zero_gpu() if inline_jobs is None else inline_jobs, access=access)
    project.open_project(project_path)  # fail now, plainly, if it cannot be created or opened

    with gr.Blocks(title="RB-FT Studio") as demo:
        project_state = gr.State(str(project_path))
        with gr.Row(elem_id="header"):
            gr.Markdown("## RB-FT Studio\nRationale-bootstrapped fine-tuning for video classification",
                        elem_id="title")
            project_dd = gr.Dropdown(list_projects(root), value=project_path.name, allow_custom_value=True,
                                     label="Project", info=f"a folder under {root}; type a new name to create one",
                                     scale=2)
            open_btn = gr.Button("Open", scale=0, min_width=80)
            model = gr.Dropdown(MODEL_CHOICES, allow_custom_value=True, scale=3, label="Model",
                                info="Hub id, local folder, toyworld (offline, toy world only), or tiny:* (random weights)")
            num_frames = gr.Number(precision=0, label="Frames", scale=0, min_width=90)
            max_side = gr.Number(precision=0, label="Max side px", scale=0, min_width=110)
            dtype = gr.Dropdown(list(DTYPE_CHOICES), label="Compute type", scale=0, min_width=130,
                                info="auto: the faster here")
            server = gr.Textbox(label="Generation server", placeholder="in this process", scale=2,
                                info="an OpenAI-compatible address (vLLM, SGLang, transformers serve) that "
                                     "writes the rationales; empty: this studio's jobs do")
        with gr.Row(elem_id="access-row"):
            access_note = gr.Markdown(elem_id="access-note")
            if access.mode == "editors":
                gr.LoginButton(scale=0, min_width=200)
        model_note = gr.Markdown(elem_id="model-note")
        storage_note = gr.Markdown(storage.note(), elem_id="storage-note")
        with gr.Row():
            job_html = gr.HTML(elem_id="job-bar")
        header = [model, num_frames, max_side]

        with gr.Tabs() as tabs:
            with gr.Tab("Data", id="data") as data_tab:
                data_reload, data_out = data.build(ctx, project_state)
            with gr.Tab("Rationales", id="rationales"):
                rat_reload, rat_out, rat_parts = rationales.build(ctx, project_state, header)
            with gr.Tab("Quality", id="quality") as quality_tab:
                q_reload, q_out = quality.build(ctx, project_state, header, rat_parts, tabs)
            with gr.Tab("Train", id="train"):
                t_reload, t_out, (watch, watch_in, watch_out), train_progress = train.build(
                    ctx, project_state, header)
            with gr.Tab("Results", id="results") as results_tab:
                r_reload, r_out = results.build(ctx, project_state)
            with gr.Tab("Predict", id="predict") as predict_tab:
                p_reload, p_out = predict.build(ctx, project_state)
            with gr.Tab("Label", id="label") as label_tab:
                l_reload, l_out = label.build(ctx, project_state)

        tab_reloads = [(data_reload, data_out), (rat_reload, rat_out), (q_reload, q_out),
                       (t_reload, t_out), (r_reload, r_out), (p_reload, p_out), (l_reload, l_out)]
        all_outputs = [model, num_frames, max_side, model_note, storage_note] + [
            o for _, outs in tab_reloads for o in outs] + [dtype, server]   # last: /reload's older outputs keep their places

        @friendly
        def reload_all(project_path):
            """Everything on the page, from the store: on page load and when another project is opened."""
            store = open_store(project_path)
            jobs.refresh(store)
            cfg = project.settings(store)
            values = [cfg.model.model, cfg.frames.num_frames, cfg.frames.max_side,
                      model_note_text(cfg.model.model, cfg.model.dtype, cfg.engine.base_url), storage.note()]
            for fn, outs in tab_reloads:
                result = fn(project_path)
                values += list(result) if len(outs) > 1 else [result]
            return values + [cfg.model.dtype, cfg.engine.base_url]

        @friendly
        def open_project(name, request: gr.Request, profile: gr.OAuthProfile | None):
            name = str(name or "").strip()
            if not PROJECT_NAME.match(name) or name in (".", ".."):
                raise gr.Error("A project name is letters, digits, spaces, '.', '-' or '_' (at most 64), "
                               "and is a folder under the projects folder.")
            path = root / name
            if not (path / "project.db").exists() and not access.can_edit(request, profile):
                raise gr.Error(f"There is no project '{name}', and this studio is read-only for you: "
                               "an editor can create it.")
            project.open_project(path)
            demo.blocked_paths += [p for p in access_rules.private_paths(root) if p not in demo.blocked_paths]
            return str(path), gr.Dropdown(choices=list_projects(root), value=name)

        @friendly
        def save_header(project_path, model_name, frames, side):
            cfg = header_settings(open_store(project_path), model_name, frames, side)
            return model_note_text(cfg.model.model, cfg.model.dtype, cfg.engine.base_url)

        @friendly
        def save_dtype(project_path, value):
            """The compute type every job of this project loads its model in."""
            store = open_store(project_path)
            cfg = project.settings(store)
            cfg.model.dtype = value if value in DTYPE_CHOICES else "auto"
            project.save_settings(store, cfg)
            return model_note_text(cfg.model.model, cfg.model.dtype, cfg.engine.base_url)

        @friendly
        def save_server(project_path, value):
            """Where this project's rationales are generated: a server's address, or empty for in process."""
            store = open_store(project_path)
            cfg = project.settings(store)
            value = str(value or "").strip()
            if value and not value.startswith(("http://", "https://")):
                raise gr.Error("A server address starts with http:// or https://, e.g. http://127.0.0.1:8000/v1")
            cfg.engine.base_url, cfg.engine.engine = value, "server" if value else "in-process"
            project.save_settings(store, cfg)
            return model_note_text(cfg.model.model, cfg.model.dtype, cfg.engine.base_url)

        @friendly
        def choose_model(project_path, model_name, frames, side):
            """A recommended model brings its preset frame settings."""
            from rbft import presets
            p = presets.preset(str(model_name or "").strip())
            if p is not None:
                frames, side = p.num_frames, p.max_side
            cfg = header_settings(open_store(project_path), model_name, frames, side)
            return cfg.frames.num_frames, cfg.frames.max_side, model_note_text(cfg.model.model, cfg.model.dtype, cfg.engine.base_url)

        def tick(project_path, seen):
            store = open_store(project_path)
            bar = jobbar.status(store)["html"]
            return (bar, bar, *watch(store, seen))  # one store opened per tick

        open_btn.click(open_project, [project_dd], [project_state, project_dd], api_name="open_project")
        project_state.change(reload_all, [project_state], all_outputs, api_visibility="private")
        demo.load(reload_all, [project_state], all_outputs, api_name="reload")
        model.input(choose_model, [project_state, *header], [num_frames, max_side, model_note],
                    api_visibility="private")
        for box in (num_frames, max_side):
            box.input(save_header, [project_state, *header], model_note, api_visibility="private")
        dtype.input(save_dtype, [project_state, dtype], model_note, api_name="set_dtype")
        for event in (server.submit, server.blur):   # not .change: /reload sets it, and a visitor may reload
            event(save_server, [project_state, server], model_note, api_name="set_server")
        # tabs that only show the store's contents are redrawn when opened
        for tab, (fn, outs) in ((data_tab, tab_reloads[0]), (quality_tab, tab_reloads[2]),
                                (results_tab, tab_reloads[4]), (predict_tab, tab_reloads[5]),
                                (label_tab, tab_reloads[6])):
            tab.select(fn, [project_state], outs, api_visibility="private")
        timer = gr.Timer(1.0)
        timer.tick(tick, [project_state, *watch_in[1:]], [job_html, train_progress, *watch_out],
                   api_name="job_status", show_progress="hidden", trigger_mode="always_last")

        triggers = access_rules.protect(demo, access)   # after every listener: each write is checked

        def show_access(request: gr.Request, profile: gr.OAuthProfile | None):
            """Who may change this studio, at the top; a visitor's write buttons and boxes greyed out."""
            allowed = access.can_edit(request, profile)
            return [access.note(request, profile)] + [gr.skip() if allowed else gr.update(interactive=False)
                                                     for _ in triggers]
        demo.load(show_access, None, [access_note, *triggers], api_name="access")
    return demo


def _warm_plots() -> None:
    """Draw one figure while the page loads: the first loss curve or histogram then costs a redraw,
    not matplotlib's import and font setup (seconds on a small machine)."""
    import io

    from matplotlib.figure import Figure
    fig = Figure(figsize=(2, 1))
    fig.add_subplot().plot([0, 1], [1, 0], label="warm")
    fig.legend()
    fig.savefig(io.BytesIO(), format="png")


def _warm_models() -> None:
    """Import torch and transformers while the page loads: the Train tab's budget preview and Predict
    then answer in a second, not after the imports (tens of seconds on a small CPU)."""
    from rbft import models  # noqa: F401
    from rbft.recipes import budget  # noqa: F401


def _patient_url_ok(url: str, wait_s: float = 90.0) -> bool:
    """gradio's check that the server answers on localhost gives up at the first reply slower than
    3 s and then refuses to start; on a busy 2-core machine (a free CPU Space) the first page takes
    longer than that. This one waits up to `wait_s` for an answer."""
    import httpx
    deadline = time.time() + wait_s
    while time.time() < deadline:
        try:
            if httpx.head(url, timeout=15, verify=False).status_code in (200, 401, 301, 302, 303, 307, 308):
                return True
        except (httpx.TimeoutException, httpx.ConnectError):
            pass
        time.sleep(0.5)
    return False


def launch(demo: gr.Blocks, root: Path, host: str | None = None, port: int | None = None,
           **kwargs):
    """Serve the app; media is served only from the projects folder, and of that only the videos (never a
    project's store, models or logs: studio.access.private_paths). The warm-up threads start once the
    server answers: importing torch while gradio checks that localhost answers can fail the launch."""
    import threading

    from gradio import networking
    networking.url_ok = _patient_url_ok
    block = not kwargs.pop("prevent_thread_lock", False)
    result = demo.queue(default_concurrency_limit=4).launch(
        server_name=host, server_port=port, allowed_paths=[str(root)],
        blocked_paths=access_rules.private_paths(root), css_paths=[CSS],
        theme=gr.themes.Soft(), footer_links=["api", "gradio"], prevent_thread_lock=True, **kwargs)
    threading.Thread(target=_warm_plots, daemon=True).start()
    threading.Thread(target=launcher.warm_up, daemon=True).start()   # the first job then starts at once
    threading.Thread(target=_warm_models, daemon=True).start()
    if block:
        demo.block_thread()
    return result
