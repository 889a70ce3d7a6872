"""Does accuracy follow truth? RB-FT's rationale sets against each other, paired over the test clips
and the seeds both have, with a 95% bootstrap interval (rbft.paired). Run from the repository root:

    PYTHONPATH=. python benchmark/rationale-truth-v2/between_sets.py [benchmark/rationale-truth-v2/project]
"""
import sys

from rbft import paired
from rbft.project import open_project
from rbft.recipes.truth_curve import compared_groups

SETS = {"true": "import:oracle_p0", "half true": "import:oracle_p0.5", "false": "import:oracle_p1", "own": ""}
PAIRS = [("true", "false"), ("true", "half true"), ("half true", "false"), ("own", "true"), ("own", "false")]

store = open_project(sys.argv[1] if len(sys.argv) > 1 else "benchmark/rationale-truth-v2/project")
groups = compared_groups(store)   # the truth curve's runs
correct = {name: paired.correct_by_seed(store, groups.get(("rbft", key), []), "rbft") for name, key in SETS.items()}
print("| RB-FT on | minus RB-FT on | seeds | difference [95% interval] |\n|---|---|---|---|")
for a, b in PAIRS:
    d = paired.paired_difference(correct[a], correct[b])
    if d:
        seeds = ", ".join(str(s) for s in sorted(set(correct[a]) & set(correct[b])))
        print(f"| {a} | {b} | {seeds} | {paired.format_difference(d)} |")
