"""`python -m rbft bench` runs every section and writes its table and JSON (tiny model, short settings)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a whole `python -m rbft bench` run: about 4 minutes here

ROOT = Path(__file__).resolve().parent.parent


def test_bench_prints_and_writes_its_table(tmp_path, tiny_root):
    cmd = [sys.executable, "-m", "rbft", "bench", "--quiet", "--model", "tiny:smolvlm", "--max-side", "64",
           "--repeats", "1", "--long-video-frames", "300", "--train-frames", "4", "--train-steps", "3",
           "--out", str(tmp_path)]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    for line in ("| frames | seek speed-up over decoding all |", "| generate | batched speed-up |",
                 "| score | batched speed-up |", "| train | LoRA bf16, 4 frames at 64 px, batch 1 |",
                 "| train | QLoRA nf4, 4 frames at 64 px, batch 1: peak RSS |"):
        assert line in result.stdout, line
    data = json.loads((tmp_path / "bench.json").read_text())
    assert {r["section"] for r in data["rows"]} == {"frames", "generate", "score", "memory", "train"}
    assert all(r["value"] > 0 for r in data["rows"])
    assert data["settings"]["model"] == "tiny:smolvlm" and "torch" in data["versions"]
    assert (tmp_path / "bench.md").read_text().startswith("Measured ")
