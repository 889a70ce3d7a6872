"""Several processes: `torchrun` trains one run on two processes (gloo on CPU) while generation,
evaluation and everything written to the store happen once, as in a single-process run."""
import collections
import os
import socket
import subprocess
import sys

import pytest

from rbft.data import ingest
from rbft.project import open_project
from rbft.train import stage_stats

pytestmark = pytest.mark.slow  # torchrun with two training processes: about 3 minutes here

ARGS = ["--model", "tiny:smolvlm", "--arm", "rbft", "--num-frames", "4", "--max-side", "64",
        "--stage1-max-steps", "2", "--stage2-max-steps", "2", "--stage1-batch-size", "1",
        "--stage2-batch-size", "1", "--stage1-eval-every", "1", "--stage2-eval-every", "1",
        "--gen-max-new-tokens", "8", "--name", "exp", "--quiet"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_trains_on_two_processes_and_writes_once(tmp_path, dataset, tiny_root):
    store = open_project(tmp_path / "p")
    ingest(store, dataset)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", str(_port()), "-m", "rbft", "train", "--project", str(store.root), *ARGS],
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = store.runs()
    assert len(runs) == 1 and runs[0]["status"] == "done"
    events = store.events(runs[0]["id"])
    kinds = collections.Counter((e["kind"], e["stage"]) for e in events)
    assert kinds[("done", "rbft")] == 1                                  # not one per process
    assert kinds[("eval", "stage1")] == 2 and kinds[("eval", "stage2")] == 2   # every step, once
    progress = collections.Counter((e["stage"], e["done"]) for e in events if e["kind"] == "progress")
    assert progress and max(progress.values()) == 1                      # no step or batch reported twice
    assert len(store.predictions(runs[0]["id"])) == len(store.videos(split="test"))
    assert len(store.rationales()) == len(store.videos(split="train"))   # generated once
    assert done.stdout.count("accuracy") == 1                            # one process reports
    for stage in ("stage1", "stage2"):                                   # while both trained
        assert stage_stats(runs[0]["output_dir"] + "/" + stage)["processes"] == 2
