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
           "--toyworld-steps", "1", "--toyworld-clips", "2", "--out", str(tmp_path)]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    from rbft import dtypes
    auto = dtypes.describe_machine()["auto_picks"]
    for line in ("| frames | seek speed-up over decoding all |", "| generate | batched speed-up |",
                 "| score | batched speed-up |", f"| train | LoRA {auto}, 4 frames at 64 px, batch 1 |",
                 f"| train | QLoRA nf4 {auto}, 4 frames at 64 px, batch 1: peak RSS |",
                 f"| machine | bfloat16 over float32 (auto picks {auto}) |",
                 "| toyworld | training step, float32, batch 1, 8 frames of 128 px |",
                 "| toyworld | training step, bfloat16, batch 1, 8 frames of 128 px |"):
        assert line in result.stdout, line
    data = json.loads((tmp_path / "bench.json").read_text())
    assert {r["section"] for r in data["rows"]} == {"machine", "toyworld", "frames", "generate", "score", "memory",
                                                    "train"}
    assert data["machine_info"]["cpu"] == dtypes.cpu_name_and_flags()[0]
    assert all(r["value"] > 0 for r in data["rows"])
    assert data["settings"]["model"] == "tiny:smolvlm" and "torch" in data["versions"]
    assert (tmp_path / "bench.md").read_text().startswith("Measured ")
