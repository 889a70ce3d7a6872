"""Several processes: `torchrun` trains one run on two processes (gloo on CPU) while generation,
evaluation and everything written to the store happen once, as in a single-process run."""
import collections
import os
import socket
import subprocess
import sys

from rbft.data import ingest
from rbft.project import open_project
from rbft.train import stage_stats

ARGS = ["--model", "tiny:smolvlm", "--arm", "rbft", "--num-frames", "4", "--max-side", "64",
        "--stage1-max-steps", "2", "--stage2-max-steps", "2", "--stage1-batch-size", "1",
        "--stage2-batch-size", "1", "--stage1-eval-every", "1", "--stage2-eval-every", "1",
        "--gen-max-new-tokens", "8", "--name", "exp", "--quiet"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(tmp_path, dataset, launcher: list[str]):
    store = open_project(tmp_path / ("p" + str(len(launcher))))
    ingest(store, dataset)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    done = subprocess.run([*launcher, "-m", "rbft", "train", "--project", str(store.root), *ARGS],
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = store.runs()
    assert len(runs) == 1 and runs[0]["status"] == "done"
    events = collections.Counter((e["kind"], e["stage"]) for e in store.events(runs[0]["id"]))
    return store, runs[0], events, done.stdout


def test_torchrun_trains_on_two_processes_and_writes_once(tmp_path, dataset, tiny_root):
    store1, run1, events1, out1 = _run(tmp_path, dataset, [sys.executable])
    store2, run2, events2, out2 = _run(tmp_path, dataset, [sys.executable, "-m", "torch.distributed.run",
                                                           "--nproc_per_node", "2", "--master_port", str(_port())])
    assert events2 == events1 and events2[("done", "rbft")] == 1   # one set of events, as alone
    assert len(store2.predictions(run2["id"])) == len(store2.videos(split="test"))
    assert len(store2.rationales()) == len(store2.videos(split="train"))  # generated once
    assert out2.count("accuracy") == 1 == out1.count("accuracy")        # one process reports
    for stage in ("stage1", "stage2"):
        assert stage_stats(run2["output_dir"] + "/" + stage)["processes"] == 2
        assert stage_stats(run1["output_dir"] + "/" + stage)["processes"] == 1
