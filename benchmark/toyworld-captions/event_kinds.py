"""Do a build's captions read motion, or name events at their base rates? (issue 33's read-out)

For each event a caption claims of a thing that is in the clip, whether it is true, beside its base
rate: the share of the things in these clips that do that event. A captioner that never looks at
motion but names each kind as often as this one does would be right at the base rate; "lift" is how
far above that the claims are, with a 95% bootstrap interval over clips. Reads the per-clip captions
an evaluation file keeps (`python -m rbft toyworld ... --eval-clips 100` writes them):

    PYTHONPATH=. python benchmark/toyworld-captions/event_kinds.py \
        benchmark/toyworld-captions/eval-100-build9-qwen.json "toy-world VLM"
"""
import json
import random
import sys
from collections import Counter

from rbft.toyworld import world
from rbft.toyworld.truth import facts_from_text


def claims_by_clip(per_clip: list[dict]) -> tuple[list[list[tuple[str, bool]]], Counter, Counter, int]:
    """[(kind, true)] per clip for claims about things in the clip; true facts per kind; facts said
    right per kind; the number of things in all clips."""
    clips, true_kinds, found, things = [], Counter(), Counter(), 0
    for c in per_clip:
        true = set(world.facts(world.render(c["seed"]).events))
        present = {o for o, _ in true}
        things += len(present)
        said = set(facts_from_text(c["said"]))
        clips.append([(k, (o, k) in true) for o, k in sorted(said) if o in present])
        for _, k in true:
            true_kinds[k] += 1
        for f in true & said:
            found[f[1]] += 1
    return clips, true_kinds, found, things


def lift(clips: list, base: dict, kind: str | None = None, resamples: int = 2000) -> tuple[float, float, float]:
    """Mean of (true - base rate) over the claims (of one kind), with its bootstrap interval over clips."""
    def value(sample):
        rows = [(t, base[k]) for c in sample for k, t in c if kind in (None, k)]
        return sum(t - b for t, b in rows) / len(rows) if rows else 0.0
    rng = random.Random(0)
    boots = sorted(value([rng.choice(clips) for _ in clips]) for _ in range(resamples))
    return value(clips), boots[int(0.025 * resamples)], boots[int(0.975 * resamples) - 1]


def table(path: str, model: str) -> str:
    per_clip = json.load(open(path))[model]["per_clip"]
    clips, true_kinds, found, things = claims_by_clip(per_clip)
    base = {k: true_kinds[k] / things for k in world_kinds(true_kinds, clips)}
    said = Counter(k for c in clips for k, _ in c)
    right = Counter(k for c in clips for k, t in c if t)
    lines = [f"{model} in `{path}` ({len(per_clip)} clips, {things} things, {sum(said.values())} event claims about them):",
             "", "| event | claims | true | base rate | lift [95%] | recall |", "|---|---|---|---|---|---|"]
    for k in sorted(base, key=lambda k: (-said[k], k)):
        cell = "-"
        if said[k] >= 10:
            d, lo, hi = lift(clips, base, k)
            cell = f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]"
        lines.append(f"| {k} | {said[k]} | {right[k] / said[k] if said[k] else 0:.2f} | {base[k]:.2f} | {cell} | "
                     f"{found[k] / true_kinds[k] if true_kinds[k] else 0:.2f} |")
    d, lo, hi = lift(clips, base)
    total = sum(said.values())
    lines.append(f"| all | {total} | {sum(right.values()) / total:.3f} | "
                 f"{sum(said[k] * base[k] for k in said) / total:.3f} | **{d:+.3f} [{lo:+.3f}, {hi:+.3f}]** | |")
    return "\n".join(lines)


def world_kinds(true_kinds: Counter, clips: list) -> set:
    return set(true_kinds) | {k for c in clips for k, _ in c}


if __name__ == "__main__":
    print(table(sys.argv[1], sys.argv[2]))
