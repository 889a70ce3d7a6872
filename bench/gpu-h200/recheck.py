"""Add tokens per second and the share of the H200's dense bf16 peak (989 TFLOP/s) to every training
row of the bench.json files here, and rewrite their tables. These rows were timed before the bench
synchronized CUDA; a row implying over 70% of peak is marked not credible.

    python bench/gpu-h200/recheck.py
"""
import json
from pathlib import Path

from rbft.recipes.bench import format_bench, recheck_gpu_rows

for path in sorted(Path(__file__).parent.glob("*.json")):
    result = recheck_gpu_rows(json.loads(path.read_text()))
    path.write_text(json.dumps(result, indent=2))
    path.with_suffix(".md").write_text(format_bench(result) + "\n")
    for r in result["rows"]:
        if "share_of_peak" in r:
            print(f"{path.stem}: {r['what'].rsplit(': ', 1)[1]:<34} {r['tokens_per_s']:>8.0f} tokens/s "
                  f"{100 * r['share_of_peak']:>5.1f}% of peak{'' if r['credible'] else '  NOT CREDIBLE'}")
