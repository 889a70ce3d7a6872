"""Is RB-FT's attention more grounded than SFT's? For every finished arm of a testbed benchmark (the
runs the truth curve compares), the attention from the class each run named to the video, on the
same test clips: the share on the things the label depends on (rbft.toyworld.grounding) and the
visual share; each arm against SFT as a paired difference over clips and seeds with a 95% interval.

One attention pass per clip and run; each run's measures are kept in OUT/grounding/ as it finishes,
so a stopped report resumes (`python -m rbft grounding --project P --task floor --out OUT`)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from .. import models, paired, project
from ..attention import attention_map
from ..config import ExperimentConfig, from_dict
from ..events import EventSink, Progress, ignore
from ..export import run_adapter
from ..store import Store
from ..toyworld.grounding import ground
from ..toyworld.truth import seed_of
from .truth_curve import compared_groups

MEASURES = ("on_deciding", "chance", "on_things", "things_chance", "visual_share")


def _cache(out: Path, run_id: str) -> Path:
    return out / "grounding" / (re.sub(r"[^A-Za-z0-9._-]+", "_", run_id) + ".json")


def measure_run(store: Store, run: dict, task: str, out: Path, clips: int | None = None,
                on_event: EventSink = ignore) -> dict[str, dict]:
    """{video id: grounding measures} of one finished run, from the class it predicted for each test
    clip whose class some things decide; read from OUT/grounding/ when measured before."""
    source = store.run((run.get("metrics") or {}).get("same_as") or run["id"])   # zero-shot is scored once
    path = _cache(out, source["id"])
    if path.exists():
        return json.loads(path.read_text())
    cfg = from_dict(ExperimentConfig, source["config"])
    adapter = None if source["arm"] == "zero_shot" else run_adapter(store, source["id"])
    lm = models.load(cfg.model, adapter=adapter)
    prompt = project.render(store, "classify")
    named = {p["video_id"]: p["pred"] for p in store.predictions(source["id"])}
    videos = [v for v in store.videos(split="test") if v["id"] in named and seed_of(v["path"]) is not None]
    videos = videos[:clips] if clips else videos
    progress = Progress(on_event, f"grounding {source['id']}", len(videos))
    measures = {}
    for video in videos:
        clip = project.clip(store, video, cfg.frames)
        result = attention_map(lm, prompt, clip, cfg.frames, named[video["id"]])
        g = ground(result, clip.indices, seed_of(video["path"]), task)
        if g is not None:
            measures[video["id"]] = vars(g)
        progress.advance()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(measures))
    tmp.replace(path)
    return measures


def _by_seed(measured: dict[str, dict[str, dict]], group: list[dict], key: str) -> dict[int, dict[str, float]]:
    return {r["seed"]: {v: m[key] for v, m in measured[r["id"]].items()} for r in group}


def rows(store: Store, task: str, out: str | Path, experiment: str | None = None, clips: int | None = None,
         on_event: EventSink = ignore) -> list[dict]:
    """One row per arm (each RB-FT rationale set its own arm): mean grounding and visual share, and
    each against SFT's, paired over the clips and seeds both have."""
    out = Path(out)
    groups = compared_groups(store, experiment)
    measured = {r["id"]: measure_run(store, r, task, out, clips, on_event) for g in groups.values() for r in g}
    sft = groups.get(("sft", ""), [])
    table = []
    for (arm, rationales), group in groups.items():
        values = [m for r in group for m in measured[r["id"]].values()]
        row = {"arm": arm, "rationales": rationales or ("its own" if arm.startswith("rbft") else ""),
               "seeds": sorted(r["seed"] for r in group), "clips": len(values)}
        row |= {k: float(np.mean([m[k] for m in values])) if values else None for k in MEASURES}
        for key in ("on_deciding", "visual_share"):
            row[f"{key}_against_sft"] = None if arm == "sft" or not sft else paired.paired_difference(
                _by_seed(measured, group, key), _by_seed(measured, sft, key))
        table.append(row)
    order = {"zero_shot": 0, "sft": 1, "sft_total": 2}
    return sorted(table, key=lambda r: (order.get(r["arm"], 3), r["rationales"]))


def markdown(table: list[dict]) -> str:
    head = ("| arm | Stage I rationales | seeds | clips | attention on the deciding things | even spread would give | "
            "on any thing | even spread | visual share | on the deciding things minus SFT [95%] | "
            "visual share minus SFT [95%] |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in table:
        def f(key, r=r):
            return "-" if r[key] is None else f"{r[key]:.3f}"
        lines.append(f"| {r['arm']} | {r['rationales'] or '-'} | {', '.join(map(str, r['seeds']))} | {r['clips']} | "
                     f"{f('on_deciding')} | {f('chance')} | {f('on_things')} | {f('things_chance')} | "
                     f"{f('visual_share')} | "
                     + (" (baseline) | (baseline) |" if r["arm"] == "sft" else
                        f" {paired.format_difference(r['on_deciding_against_sft'])} | "
                        f"{paired.format_difference(r['visual_share_against_sft'])} |"))
    return "\n".join(lines) + "\n"


def figure(table: list[dict], path: Path) -> None:
    """Each arm's share of attention on the deciding things, beside what an even spread gives."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    names = [r["arm"] + (f"\n{r['rationales'].removeprefix('import:')}" if r["rationales"] else "") for r in table]
    x = np.arange(len(table))
    ax.bar(x - 0.2, [r["on_deciding"] or 0 for r in table], 0.4, label="attention on the deciding things")
    ax.bar(x + 0.2, [r["chance"] or 0 for r in table], 0.4, color="tab:gray", label="an even spread")
    for i, r in enumerate(table):
        d = r["on_deciding_against_sft"]
        if d:
            ax.annotate(f"{d['difference']:+.3f}\n[{d['low']:+.3f}, {d['high']:+.3f}]", (i - 0.2, r["on_deciding"]),
                        ha="center", va="bottom", fontsize=6)
    ax.set_xticks(x, names, fontsize=7)
    ax.set_ylabel("share of the class token's visual attention")
    ax.set_title("where the class token looked (test clips whose class some things decide)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(store: Store, task: str, out: str | Path, experiment: str | None = None, clips: int | None = None,
          on_event: EventSink = ignore) -> list[dict]:
    """grounding.md, grounding.json and grounding.png in `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = rows(store, task, out, experiment, clips, on_event)
    (out / "grounding.json").write_text(json.dumps(table, indent=2))
    (out / "grounding.md").write_text(markdown(table))
    figure(table, out / "grounding.png")
    return table
