"""An experiment's report: the arms side by side, confusion matrices, settings and versions.

`markdown` is for a README or an issue; `html` is one self-contained page with the
loss curves drawn in (what the studio offers as a download).
"""
from __future__ import annotations

import base64
import html as H
import io
import platform
import time
from importlib.metadata import PackageNotFoundError, version

from .. import dtypes, paired
from ..store import Store
from .experiment import format_table, summarize

PACKAGES = ("torch", "transformers", "peft", "accelerate", "bitsandbytes", "opencv-python-headless")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def confusion_sum(store: Store, experiment: str, arm: str) -> tuple[list[str], list[list[int]]]:
    """The test confusion matrix of an arm, summed over its seeds."""
    classes, total = [], []
    for run in store.runs(experiment):
        if run["arm"] != arm or run["status"] != "done":
            continue
        m = run["metrics"]
        if not total:
            classes, total = m["classes"], [[0] * len(m["classes"]) for _ in m["classes"]]
        for i, row in enumerate(m["confusion"]):
            for j, n in enumerate(row):
                total[i][j] += n
    return classes, total


def minority_classes(store: Store, experiment: str) -> list[str]:
    """Classes with the fewest test videos (highlighted: they are what accuracy hides)."""
    runs = [r for r in store.runs(experiment) if r["status"] == "done"]
    if not runs:
        return []
    support = {c: v["support"] for c, v in runs[0]["metrics"]["per_class"].items()}
    low = min(support.values())
    return [c for c, n in support.items() if n == low] if len(set(support.values())) > 1 else []


def _matrix_md(classes: list[str], matrix: list[list[int]]) -> str:
    lines = ["| true \\ predicted | " + " | ".join(classes) + " |", "|---" * (len(classes) + 1) + "|"]
    lines += [f"| {c} | " + " | ".join(map(str, row)) + " |" for c, row in zip(classes, matrix)]
    return "\n".join(lines)


def markdown(store: Store, experiment: str, command: str = "") -> str:
    rows = summarize(store, experiment)
    runs = store.runs(experiment)
    cfg = runs[0]["config"] if runs else {}
    minority = minority_classes(store, experiment)
    out = [f"# Experiment {experiment}", "",
           f"Written {time.strftime('%Y-%m-%d %H:%M')} on {platform.node()} ({platform.machine()}, "
           f"{platform.system()}; CPU {dtypes.cpu_name_and_flags()[0]}). "
           f"Test split: {rows[0]['n_test'] if rows else 0} videos.", ""]
    if cfg:
        out += [f"Model `{cfg['model']['model']}` (quantization {cfg['model']['quantization']}); "
                f"{cfg['frames']['num_frames']} frames at most {cfg['frames']['max_side']} px; "
                f"Stage I {cfg['stage1']['max_steps']} steps, Stage II / SFT {cfg['stage2']['max_steps']} steps, "
                f"batch {cfg['stage2']['batch_size']}, learning rate {cfg['stage2']['learning_rate']}, "
                f"LoRA r {cfg['stage2']['lora_r']}; Stage I filter {cfg['filter']}, "
                f"label hint in training {cfg['hint_in_training']}; seeds {cfg['seeds']}"
                + (f"; rbft_joint weight {cfg.get('joint_weight')}" if "rbft_joint" in cfg.get("arms", []) else "")
                + ".", ""]
    reasons = sorted({r["metrics"].get("dtype_reason") for r in runs if r["metrics"] and r["metrics"].get("dtype_reason")})
    if reasons:
        out += ["Compute type: " + "; ".join(reasons) + ".", ""]
    out += ["## Arms (mean ± std over seeds)", "", format_table(rows), ""]
    out += _paired_section(store, runs)
    if cfg.get("rationales"):
        out += [f"Stage I trained on the imported rationale set `{cfg['rationales']}`.", ""]
    if minority:
        out += [f"Minority class(es) on the test split: **{', '.join(minority)}**.", ""]
    if rows:
        out += ["| arm | wall time s (mean) | peak RSS MB |", "|---|---|---|"]
        out += [f"| {r['arm']} | {r['seconds']:.0f} | {r['peak_rss_mb']:.0f} |" for r in rows]
        out.append("")
    stages = [(run, name, st) for run in runs if run["metrics"]
              for name, st in (run["metrics"].get("stages") or {}).items()]
    if stages:
        out += ["Batches as trained (micro batch x gradient accumulation = the effective batch; 'auto' picks the "
                "micro batch that fits this machine, so results do not depend on the card):", "",
                "| run | stage | batch | per forward x accumulated | auto | s / step | peak GPU GB |",
                "|---|---|---|---|---|---|---|"]
        for run, name, st in stages:
            per_step = f"{st['seconds_per_step']:.2f}" if st.get("seconds_per_step") else "-"
            peak = f"{st['peak_gpu_gb']:.1f}" if st.get("peak_gpu_gb") else "-"
            out.append(f"| {run['arm']} s{run['seed']} | {name} | {st['effective_batch']} | {st['micro_batch']} x "
                       f"{st['grad_accum']} | {'yes' if st['auto'] else 'no'} | {per_step} | {peak} |")
        out.append("")
    out += _label_section(store, experiment, rows)
    for r in rows:
        classes, matrix = confusion_sum(store, experiment, r["arm"])
        out += [f"### {r['arm']}: test confusion matrix (summed over {r['seeds']} seeds)", "",
                _matrix_md(classes, matrix), ""]
    failed = [r for r in runs if r["status"] != "done"]
    if failed:
        out += ["## Runs that did not finish", ""]
        out += [f"- {r['id']}: {r['status']} {r['error'] or ''}" for r in failed]
        out.append("")
    out += ["## Versions", "", ", ".join(f"{k} {v}" for k, v in versions().items()), ""]
    if command:
        out += ["## Command", "", f"```\n{command}\n```", ""]
    return "\n".join(out)


def _paired_section(store: Store, runs: list[dict]) -> list[str]:
    """Each arm against direct SFT on the same seeds and test clips, with a 95% bootstrap interval."""
    diffs = paired.against(store, runs, "sft")
    if not diffs:
        return []
    out = ["## Against direct SFT (paired: same seeds and test clips; 95% bootstrap interval over both)", "",
           "| arm | accuracy minus SFT's [95% interval] | seeds | test clips |", "|---|---|---|---|"]
    out += [f"| {arm} | {paired.format_difference(d)} | {d['seeds']} | {d['clips']} |" for arm, d in diffs.items()]
    return out + ["", "A difference whose interval includes 0 is no result: these seeds and clips cannot "
                      "tell the arms apart.", ""]


def previous_experiment(store: Store, experiment: str) -> str | None:
    """The experiment that finished last before this one started (to compare a grown training set)."""
    runs = store.runs(experiment)
    if not runs:
        return None
    began = min(r["started_at"] for r in runs)
    earlier = [r for r in store.runs() if r["experiment"] != experiment and r["status"] == "done"
               and (r["finished_at"] or 0) <= began]
    return max(earlier, key=lambda r: r["finished_at"])["experiment"] if earlier else None


def _label_section(store: Store, experiment: str, rows: list[dict]) -> list[str]:
    """Where the training labels came from, and, after pool labels, how test accuracy changed."""
    labels = next((r["metrics"].get("train_labels") for r in store.runs(experiment)
                   if r["metrics"] and r["metrics"].get("train_labels")), None)
    if not labels or not (labels["person"] or labels["model"]):
        return []
    out = ["## Training labels", "",
           f"{labels['imported'] + labels['person'] + labels['model']} training videos: {labels['imported']} imported "
           f"with their label, {labels['person']} labelled by a person in the pool (reviewed), {labels['model']} "
           "accepted automatically above a precision threshold.", ""]
    before = previous_experiment(store, experiment)
    if before:
        old = {r["arm"]: r for r in summarize(store, before)}
        pairs = [(r, old[r["arm"]]) for r in rows if r["arm"] in old and r["n_test"] == old[r["arm"]]["n_test"]]
        if pairs:
            out += [f"Against `{before}` (the experiment before, on the same {pairs[0][0]['n_test']} test videos):", "",
                    "| arm | accuracy before | accuracy now | change |", "|---|---|---|---|"]
            out += [f"| {r['arm']} | {o['accuracy'][0]:.3f} | {r['accuracy'][0]:.3f} | "
                    f"{r['accuracy'][0] - o['accuracy'][0]:+.3f} |" for r, o in pairs]
            out.append("")
    return out


def loss_figure(store: Store, experiment: str):
    """The training loss of every run and stage of an experiment (a matplotlib figure)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for run in store.runs(experiment):
        events = store.events(run["id"], "loss")
        by_stage: dict[str, list] = {}
        for e in events:
            by_stage.setdefault(e["stage"], []).append((e["done"], e["data"]["loss"]))
        for stage, points in by_stage.items():
            ax.plot(*zip(*points), label=f"{run['arm']} s{run['seed']} {stage}")
    ax.set_xlabel("step of the stage")
    ax.set_ylabel("training loss")
    ax.set_title("training loss per arm and stage", fontsize=10)
    if ax.lines:
        ax.legend(fontsize=7)
    fig.tight_layout()
    plt.close(fig)
    return fig


def loss_png(store: Store, experiment: str) -> bytes:
    fig = loss_figure(store, experiment)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def html(store: Store, experiment: str, command: str = "") -> str:
    """The markdown report's content as one HTML page, with the loss curves as an image."""
    rows = summarize(store, experiment)
    minority = set(minority_classes(store, experiment))
    parts = [f"<h1>Experiment {H.escape(experiment)}</h1>"]
    intro = markdown(store, experiment, command).split("## Arms")[0].split("\n", 2)[-1]
    parts += [f"<p>{H.escape(p)}</p>" for p in intro.strip().split("\n\n") if p.strip()]
    if rows:
        classes = list(rows[0]["per_class_f1"])
        head = ["arm", "seeds", "steps", "accuracy", "macro-F1"] + [f"F1 {c}" for c in classes] + ["time s", "peak RSS MB"]
        body = []
        for r in rows:
            cells = [r["arm"], r["seeds"], r["total_steps"], f"{r['accuracy'][0]:.3f} ± {r['accuracy'][1]:.3f}",
                     f"{r['macro_f1'][0]:.3f} ± {r['macro_f1'][1]:.3f}"]
            cells += [f"{r['per_class_f1'][c]:.3f}" for c in classes]
            cells += [f"{r['seconds']:.0f}", f"{r['peak_rss_mb']:.0f}"]
            body.append("<tr>" + "".join(f"<td>{H.escape(str(c))}</td>" for c in cells) + "</tr>")
        head_html = "".join(f"<th>{'<b>' if h[3:] in minority else ''}{H.escape(h)}</th>" for h in head)
        parts.append(f"<table border=1 cellpadding=4><tr>{head_html}</tr>{''.join(body)}</table>")
        if minority:
            parts.append(f"<p>Minority class(es): <b>{H.escape(', '.join(sorted(minority)))}</b></p>")
    png = base64.b64encode(loss_png(store, experiment)).decode()
    parts.append(f'<h2>Training loss</h2><img alt="loss curves" src="data:image/png;base64,{png}">')
    for r in rows:
        classes, matrix = confusion_sum(store, experiment, r["arm"])
        cells = "".join(f"<tr><th>{H.escape(c)}</th>" + "".join(f"<td>{n}</td>" for n in row) + "</tr>"
                        for c, row in zip(classes, matrix))
        parts.append(f"<h3>{H.escape(r['arm'])}: test confusion matrix (summed over {r['seeds']} seeds)</h3>"
                     f"<table border=1 cellpadding=4><tr><th>true \\ predicted</th>"
                     + "".join(f"<th>{H.escape(c)}</th>" for c in classes) + f"</tr>{cells}</table>")
    parts.append("<h2>Versions</h2><p>" + H.escape(", ".join(f"{k} {v}" for k, v in versions().items())) + "</p>")
    if command:
        parts.append(f"<h2>Command</h2><pre>{H.escape(command)}</pre>")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>RB-FT report</title></head><body>"
            + "\n".join(parts) + "</body></html>")
