"""`python -m rbft benchmark` end to end on the tiny model: every arm with equal budgets, the
ablations, and a report in markdown and JSON that says how it was made."""
import json

import pytest

from rbft.cli import main

pytestmark = pytest.mark.slow  # a whole CLI benchmark (three arms, report): about 6 minutes here


def test_benchmark_writes_comparable_report(tmp_path, dataset, tiny_root):
    out = tmp_path / "report"
    argv = ["benchmark", "--quiet", "--data", str(dataset), "--model", "tiny:smolvlm", "--seeds", "1", "2",
            "--stage1-max-steps", "3", "--stage2-max-steps", "2", "--num-frames", "4", "--max-side", "64",
            "--gen-max-new-tokens", "8", "--ablations", "--out", str(out)]
    assert main(argv) == 0
    data = json.loads((out / "report.json").read_text())
    arms = {a["arm"]: a for a in data["experiments"]["main"]["arms"]}
    assert list(arms) == ["zero_shot", "sft", "sft_total", "rbft"]
    assert {a["seeds"] for a in arms.values()} == {2}
    # equal budgets: RB-FT's Stage I steps count, and SFT also runs with the same total
    assert (arms["zero_shot"]["total_steps"], arms["sft"]["total_steps"], arms["sft_total"]["total_steps"],
            arms["rbft"]["total_steps"]) == (0, 2, 5, 5)
    assert all(a["peak_rss_mb"] > 0 and a["seconds"] >= 0 for a in arms.values())
    assert len(data["experiments"]) + len(data["ablations_failed"]) == 3
    assert data["command"].startswith("python -m rbft benchmark") and "--ablations" in data["command"]
    assert data["versions"]["transformers"] and data["split"]["test"] == 2
    report = (out / "report.md").read_text()
    for text in ("| sft_total | 2 | 5 |", "### rbft: test confusion matrix (summed over 2 seeds)",
                 "## Rationale ablations", "label hint kept in the Stage I training prompt", "## Versions"):
        assert text in report, text
