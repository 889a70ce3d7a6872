"""The follow-up's SFT runs (docs/rationale-truth.md, "Stage II at 180 label steps").

SFT at 180 steps is the first experiment's "SFT with the total budget" trained again: the same seed,
data, 180 steps, learning rate, 5% warmup, batch and LoRA. So each seed's run is recorded in the
follow-up experiment with that run's predictions and `same_as`, as zero-shot's repeats are, instead
of being trained again. Run from the repository root, with the follow-up's benchmark flags:

    PYTHONPATH=. python benchmark/rationale-truth-long/same_sft.py benchmark --data ... --seeds 0 1 2 ...
"""
import sys

from rbft.cli import build_parser
from rbft.cli.common import build_config
from rbft.config import to_dict
from rbft.project import open_project
from rbft.recipes.experiment import experiment_name, record_same_as

FIRST = "exp-c7fee33f"   # the first experiment's main arms (SFT with the total budget among them)
SAME = ("learning_rate", "warmup_ratio", "batch_size", "grad_accum", "lora_r", "lora_alpha", "lora_dropout")

cfg = build_config(build_parser().parse_args(sys.argv[1:]))
store = open_project("benchmark/rationale-truth/project")
name = experiment_name(cfg, store)
for seed in cfg.seeds:
    run_id, old_id = f"{name}/sft/s{seed}", f"{FIRST}/sft_total/s{seed}"
    old = store.run(old_id)
    assert old["status"] == "done" and old["metrics"]["total_steps"] == cfg.stage2.max_steps, old_id
    assert all(old["config"]["stage2"][k] == to_dict(cfg)["stage2"][k] for k in SAME), old_id
    if store.db["runs"].count_where("id = ?", [run_id]):
        print(run_id, "recorded before")
        continue
    record_same_as(store, old, "sft", seed, cfg, name)
    print(run_id, "=", old_id, f"accuracy {old['metrics']['accuracy']:.3f}")
