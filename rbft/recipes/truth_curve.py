"""How much rationale truth RB-FT needs: on a testbed benchmark, each RB-FT arm's accuracy beside the
measured event precision of the rationales its Stage I trained on, against direct SFT on the same
seeds and test clips; and the validation curves that show whether the step budget was long enough.

It reads the project's finished runs, so a benchmark that runs in parts is reported as far as it
has got (`python -m rbft truth --project P --task floor --curve OUT`)."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from .. import paired
from ..rationale_import import is_imported
from ..store import Store
from ..toyworld.truth import truth_report

VARIES = ("arms", "rationales", "seeds")   # what may differ between the arms of one comparison
CURVE_STAGES = ("sft", "sft_total", "stage2")


def _settings(run: dict) -> str:
    return json.dumps({k: v for k, v in run["config"].items() if k not in VARIES}, sort_keys=True)


def _baseline(store: Store, experiment: str | None) -> list[dict]:
    """The runs compared: those with the settings of an SFT run (of `experiment` where named). Where
    several settings have one, those with the most finished runs, the newest on a tie."""
    runs = [store.run(r["id"]) for r in store.runs()]
    sft = [r for r in runs if r["arm"] == "sft" and (experiment is None or r["experiment"] == experiment)]
    if not sft:
        raise ValueError("no SFT run in this project" + (f" in experiment {experiment!r}" if experiment else ""))
    groups: dict[str, list[dict]] = {}
    for r in runs:
        groups.setdefault(_settings(r), []).append(r)

    def rank(key: str) -> tuple:
        return (sum(r["status"] == "done" for r in groups[key]), max(r["started_at"] or "" for r in groups[key]))
    return groups[max({_settings(r) for r in sft}, key=rank)]


def _interval(correct: dict[int, dict[str, int]]) -> tuple[float, float, float]:
    """Accuracy and its 95% bootstrap interval over seeds and clips: paired's bootstrap against an
    arm that is never right."""
    d = paired.paired_difference(correct, {s: dict.fromkeys(clips, 0) for s, clips in correct.items()})
    return d["difference"], d["low"], d["high"]


def arm_groups(runs: list[dict]) -> dict[tuple, list[dict]]:
    """Runs by arm and Stage I rationale set, one run per seed: an arm that two experiments of the
    same settings both ran (zero-shot, which ignores the arms beside it) counts once."""
    groups: dict[tuple, dict[int, dict]] = {}
    for r in runs:
        groups.setdefault((r["arm"], r["config"].get("rationales") or ""), {}).setdefault(r["seed"], r)
    return {key: list(by_seed.values()) for key, by_seed in groups.items()}


def compared_groups(store: Store, experiment: str | None = None) -> dict[tuple, list[dict]]:
    """The finished runs the truth curve compares, by arm and Stage I rationale set (what the
    grounding report and the between-set comparison read too)."""
    return arm_groups([r for r in _baseline(store, experiment) if r["status"] == "done"])


def rows(store: Store, task: str, experiment: str | None = None) -> list[dict]:
    """One row per arm (each RB-FT rationale set its own arm): seeds done, accuracy with its
    interval, the paired difference from SFT, and the Stage I rationales' truth."""
    runs = _baseline(store, experiment)
    done = [r for r in runs if r["status"] == "done"]
    truth = {t["model"]: t for t in truth_report(store, task) if t["subset"] == "all"}
    own = max((t for t in truth.values() if not is_imported(t["model"])), key=lambda t: t["rationales"],
              default=None)
    sft = paired.correct_by_seed(store, done, "sft")
    sft_total = paired.correct_by_seed(store, done, "sft_total")   # SFT given RB-FT's whole budget
    groups = arm_groups(done)
    classes = store.labels()
    out = []
    for (arm, rationale_set), group in groups.items():
        correct = paired.correct_by_seed(store, group, arm)
        accuracy, low, high = _interval(correct)
        t, label = None, ""
        if arm.startswith("rbft"):
            t = truth.get(rationale_set) if rationale_set else own
            label = rationale_set or f"{own['model'] if own else 'the model'} (its own)"
        out.append({
            "arm": arm, "rationales": label,
            "seeds": sorted(correct), "accuracy": accuracy, "low": low, "high": high,
            "steps": group[0]["metrics"].get("total_steps"),
            "where": _where(group[0]),
            "seconds_per_step": _seconds_per_step(group),
            "against_sft": None if arm == "sft" else paired.paired_difference(correct, sft),
            "against_sft_total": None if arm in ("sft", "sft_total")
            else paired.paired_difference(correct, sft_total),
            "event_precision": t["event_precision"] if t else None,
            "label_consistent": t["label_consistent"] if t else None,
            "hallucination_rate": t["hallucination_rate"] if t else None,
            "by_seed": {r["seed"]: {"accuracy": float(np.mean(list(correct[r["seed"]].values()))),
                                    "predicted": _predicted(store, r, classes)} for r in group},
        })
    order = {"zero_shot": 0, "sft": 1, "sft_total": 2}
    return sorted(out, key=lambda r: (order.get(r["arm"], 3), -(r["event_precision"] or 0)))


def _predicted(store: Store, run: dict, classes: list[str]) -> dict[str, int]:
    """How many test clips a run gave each class (0 where none): runs this close to chance differ
    less in what they see than in which classes they came to predict at all."""
    return dict.fromkeys(classes, 0) | Counter(p["pred"] for p in store.predictions(run["id"]))


def _where(run: dict) -> str:
    """The model, device, clip size and compute type (its reason names the CPU) a run measured with."""
    m, frames = run["metrics"], run["config"].get("frames", {})
    weights = f" ({m['weights']})" if m.get("weights") and m["weights"] != m.get("model") else ""
    return (f"{m.get('model', '?')}{weights} on {m.get('device', '?')}, {frames.get('num_frames', '?')} frames of "
            f"{frames.get('max_side', '?')} px; {m.get('dtype_reason') or m.get('dtype', '')}")


def _seconds_per_step(group: list[dict]) -> float | None:
    """Mean seconds per optimizer step over the runs' stages, as train_stage measured them."""
    values = [s["seconds_per_step"] for r in group for s in (r["metrics"].get("stages") or {}).values()
              if s.get("seconds_per_step")]
    return float(np.mean(values)) if values else None


def detectable(half_width: float, power: float = 0.8) -> float:
    """The smallest true difference that a 95% interval of this half-width excludes 0 for with the
    given probability (normal approximation: (1.96 + z_power) standard errors)."""
    from statistics import NormalDist
    z = NormalDist().inv_cdf
    return half_width / z(0.975) * (z(0.975) + z(power))


def markdown(table: list[dict]) -> str:
    head = ("| arm | Stage I rationales | their event precision | label follows from their events | seeds | "
            "steps | s/step | accuracy [95% interval] | minus SFT [95% interval] | "
            "minus SFT with the total budget [95% interval] |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in table:
        def f(key, r=r):
            return "-" if r[key] is None else f"{r[key]:.3f}"
        lines.append(f"| {r['arm']} | {r['rationales'] or '-'} | {f('event_precision')} | {f('label_consistent')} | "
                     f"{', '.join(map(str, r['seeds']))} | {r['steps']} | "
                     f"{'-' if r['seconds_per_step'] is None else format(r['seconds_per_step'], '.1f')} | "
                     f"{r['accuracy']:.3f} [{r['low']:.3f}, {r['high']:.3f}] | "
                     f"{paired.format_difference(r['against_sft']) if r['arm'] != 'sft' else '(baseline)'} | "
                     f"{paired.format_difference(r['against_sft_total'])} |")
    widths = [(d["high"] - d["low"]) / 2 for r in table if (d := r["against_sft"])]
    if widths:
        lines += ["", f"With these seeds and test clips, a paired difference smaller than about ±{min(widths):.3f} "
                      "(the narrowest interval's half-width here) cannot be told from 0, and the smallest "
                      f"difference this design detects 4 times in 5 is about ±{detectable(min(widths)):.3f} "
                      "(80% power, two-sided 5%)."]
    return "\n".join(lines + by_seed_markdown(table)) + "\n"


def by_seed_markdown(table: list[dict]) -> list[str]:
    """Each run on its own: its accuracy and the test clips it gave each class."""
    classes = sorted({c for r in table for s in r["by_seed"].values() for c in s["predicted"]})
    if not classes:
        return []
    head = "| arm | Stage I rationales | seed | accuracy | " + " | ".join(f"predicted {c}" for c in classes) + " |"
    lines = ["", "Each run on its own (test clips it gave each class):", "", head, "|" + "---|" * (head.count("|") - 1)]
    for r in table:
        for seed, s in sorted(r["by_seed"].items()):
            accuracy = "-" if s["accuracy"] is None else f"{s['accuracy']:.3f}"
            lines.append(f"| {r['arm']} | {r['rationales'] or '-'} | {seed} | {accuracy} | "
                         + " | ".join(str(s["predicted"].get(c, 0)) for c in classes) + " |")
    return lines


def truth_figure(table: list[dict], path: Path) -> None:
    """Accuracy against the Stage I rationales' event precision; SFT's interval as a band."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4))
    by_arm = {r["arm"]: r for r in table if r["event_precision"] is None}
    if "sft" in by_arm:
        s = by_arm["sft"]
        ax.axhspan(s["low"], s["high"], color="tab:gray", alpha=0.25, label=f"SFT {s['accuracy']:.3f} (95% interval)")
        ax.axhline(s["accuracy"], color="tab:gray", lw=1)
    for arm, style in (("sft_total", ":"), ("zero_shot", "--")):
        if arm in by_arm:
            ax.axhline(by_arm[arm]["accuracy"], color="black", ls=style, lw=1,
                       label=f"{arm} {by_arm[arm]['accuracy']:.3f}")
    points = [r for r in table if r["event_precision"] is not None]
    for r in points:
        own = "its own" in r["rationales"]
        ax.errorbar(r["event_precision"], r["accuracy"], yerr=[[r["accuracy"] - r["low"]], [r["high"] - r["accuracy"]]],
                    fmt="s" if own else "o", color="tab:red" if own else "tab:blue", capsize=4)
        ax.annotate(r["rationales"].removeprefix("import:"), (r["event_precision"], r["accuracy"]),
                    textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.set_xlabel("event precision of the Stage I rationales (measured against the event logs)")
    ax.set_ylabel("test accuracy")
    seeds = sorted({s for r in table for s in r["seeds"]})
    ax.set_title(f"RB-FT against rationale truth (seeds {', '.join(map(str, seeds))})", fontsize=10)
    fig.text(0.01, 0.01, "; ".join(sorted({r["where"] for r in table})), fontsize=6, wrap=True)
    ax.set_xlim(-0.05, 1.05)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def curve_points(store: Store, run: dict) -> list[tuple[int, float]]:
    """(step, validation accuracy) of a run's label training; a run recorded as the same as another
    (`same_as`: the same training, not redone) has that run's curve."""
    source = (run.get("metrics") or {}).get("same_as") or run["id"]
    return [(e["done"], e["data"]["accuracy"]) for e in store.events(source, "eval") if e["stage"] in CURVE_STAGES]


def learning_curves(store: Store, path: Path, experiment: str | None = None) -> None:
    """Validation accuracy against the step, for SFT, SFT with the total budget and RB-FT's Stage II."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4))
    colours = {}
    for run in _baseline(store, experiment):
        points = curve_points(store, run)
        if not points:
            continue
        name = run["arm"] if run["arm"] != "rbft" else f"rbft Stage II ({(run['config'].get('rationales') or 'own').removeprefix('import:')})"
        colour = colours.setdefault(name, f"C{len(colours)}")
        ax.plot(*zip(*points), marker=".", color=colour, alpha=0.8,
                label=name if name not in [line.get_label() for line in ax.lines] else None)
    ax.set_xlabel("optimizer step of the stage")
    ax.set_ylabel("validation accuracy")
    ax.set_title("validation accuracy while training (one line per seed)", fontsize=10)
    if ax.lines:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(store: Store, task: str, out: str | Path, experiment: str | None = None) -> list[dict]:
    """truth_curve.md, truth_curve.png, learning_curves.png and truth_curve.json in `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = rows(store, task, experiment)
    (out / "truth_curve.json").write_text(json.dumps(table, indent=2))
    (out / "truth_curve.md").write_text(markdown(table))
    truth_figure(table, out / "truth_curve.png")
    learning_curves(store, out / "learning_curves.png", experiment)
    return table
