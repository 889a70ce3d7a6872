"""Two builds' captions of the same held-out clips, side by side and paired (issue 33's table rows).

Each model is FILE:NAME, an evaluation file that `python -m rbft toyworld ... --eval-clips 100` wrote
and the model's name in it ("toy-world VLM" is that build itself):

    PYTHONPATH=. python benchmark/toyworld-captions/compare_evals.py \
        "benchmark/toyworld-captions/eval-100-build17-qwen.json:toy-world VLM" \
        "benchmark/toyworld-captions/eval-100-build16-qwen.json:parts in assets/toyworld (toyworld-eee75b20d147)"

prints each model's scores, then the first minus each other, per clip, with 95% bootstrap intervals.
"""
import json
import sys

from rbft.toyworld.evaluation import PAIRED_MEASURES, paired_captions

SHOWN = ("object_precision", "object_recall", "color_precision", "color_recall", "shape_precision", "shape_recall",
         "event_precision", "event_recall", "event_kind_precision", "event_kind_recall", "hallucination_rate",
         "temporal_order_accuracy", "order_pairs")


def load(spec: str) -> tuple[str, dict]:
    path, name = spec.split(":", 1)
    return spec, json.load(open(path))[name]


def main(specs: list[str]) -> None:
    models = [load(s) for s in specs]
    for spec, r in models:
        print(spec)
        print("  " + ", ".join(f"{k} {r[k]:.3f}" if isinstance(r[k], float) else f"{k} {r[k]}" for k in SHOWN))
    (first, a), rest = models[0], models[1:]
    for spec, b in rest:
        print(f"{first} minus {spec}:")
        pairs = paired_captions(a, b)
        for k in PAIRED_MEASURES:
            d = pairs[k]
            print(f"  {k}: {d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] over {d['clips']} clips")


if __name__ == "__main__":
    main(sys.argv[1:])
