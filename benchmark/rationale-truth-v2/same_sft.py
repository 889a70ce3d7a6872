"""Issue 37's SFT at 600 steps is the plateau run (plateau.json), not trained again.

The plateau run is SFT on the same split, seed, 600 steps, learning rate, 5% warmup, cosine, batch,
LoRA and validation every 60 steps; SFT uses no Stage I setting. Its run (row, predictions and
validation events) is copied from plateau-project.db into the experiment's project, and recorded
in the experiment as its SFT with `same_as` naming it, as zero-shot's repeats are. Run from the
repository root with the experiment's benchmark flags:

    PYTHONPATH=. python benchmark/rationale-truth-v2/same_sft.py benchmark --data ... --seeds 0 ...
"""
import sqlite3
import sys
from pathlib import Path

from rbft.cli import build_parser
from rbft.cli.common import build_config
from rbft.config import to_dict
from rbft.project import open_project
from rbft.recipes.experiment import experiment_name, record_same_as

HERE = Path(__file__).parent
SOURCE = "exp-ef9853e9/sft/s0"
SAME = ("max_steps", "learning_rate", "warmup_ratio", "batch_size", "grad_accum", "lora_r", "lora_alpha",
        "lora_dropout", "eval_every")

cfg = build_config(build_parser().parse_args(sys.argv[1:]))
store = open_project(HERE / "project")
if not store.db["runs"].count_where("id = ?", [SOURCE]):
    db = store.db.conn
    db.execute("attach database ? as plateau", [str(HERE / "plateau-project.db")])
    with db:
        for table, key in (("runs", "id"), ("predictions", "run_id"), ("events", "run_id")):
            columns = ", ".join(c for c in store.db[table].columns_dict if c != "id" or table != "events")
            db.execute(f"insert into {table} ({columns}) select {columns} from plateau.{table} where {key} = ?",
                       [SOURCE])
    db.execute("detach database plateau")
old = store.run(SOURCE)
assert old["status"] == "done" and old["config"]["seeds"] == [0], SOURCE
assert all(old["config"]["stage2"][k] == to_dict(cfg)["stage2"][k] for k in SAME), SOURCE
name = experiment_name(cfg, store)
run_id = f"{name}/sft/s0"
if store.db["runs"].count_where("id = ?", [run_id]):
    print(run_id, "recorded before")
else:
    record_same_as(store, old, "sft", 0, cfg, name)
    print(run_id, "=", SOURCE, f"accuracy {old['metrics']['accuracy']:.3f}")
sqlite3.connect(HERE / "project" / "project.db").execute("pragma wal_checkpoint(full)")
