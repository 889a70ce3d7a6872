"""The compute type: auto picks the faster float type on this CPU, a flag overrides it, and every
place a person reads the settings names the type and why."""
import json

import pytest
import torch

from rbft import dtypes, models
from rbft.cli import main
from rbft.config import ModelConfig

SLOW_BF16 = {"cpu": "Test CPU", "native_bf16_flags": [], "onednn_bf16": False,
             "float32_gflops": 60.0, "bfloat16_gflops": 2.5, "bf16_speedup": 0.042}
FAST_BF16 = {"cpu": "Test CPU", "native_bf16_flags": ["avx512_bf16"], "onednn_bf16": True,
             "float32_gflops": 130.0, "bfloat16_gflops": 330.0, "bf16_speedup": 2.54}


def test_auto_picks_float32_where_bfloat16_is_measured_slower():
    choice = dtypes.choose("auto", "cpu", lambda: SLOW_BF16)
    assert choice.name == "float32" and choice.dtype == torch.float32
    assert "auto" in choice.reason and "Test CPU" in choice.reason and "0.04x" in choice.reason
    assert "no native bf16" in choice.reason


def test_auto_picks_bfloat16_where_it_is_measured_faster():
    choice = dtypes.choose("auto", "cpu", lambda: FAST_BF16)
    assert choice.name == "bfloat16" and choice.dtype == torch.bfloat16
    assert "2.54x" in choice.reason and "native bf16" in choice.reason


def test_a_bare_gain_within_the_probes_noise_keeps_float32():
    assert dtypes.choose("auto", "cpu", lambda: {**SLOW_BF16, "bf16_speedup": 1.05}).name == "float32"


def test_asking_for_a_type_overrides_the_probe():
    def never():
        raise AssertionError("the probe ran although a type was asked for")
    assert dtypes.choose("bfloat16", "cpu", never).name == "bfloat16"
    assert dtypes.choose("float32", "cpu", never).reason == "float32: asked for"
    assert dtypes.choose("auto", "cuda", never).name == "bfloat16"


def test_an_unknown_type_is_refused_by_name():
    with pytest.raises(dtypes.DtypeError, match="auto, float32, bfloat16"):
        dtypes.choose("fp8", "cpu", lambda: SLOW_BF16)


def test_the_probe_runs_once_per_machine(tmp_path, monkeypatch):
    monkeypatch.setenv("RBFT_CACHE", str(tmp_path))
    calls = []

    def measure():
        calls.append(1)
        return {"float32_gflops": 50.0, "bfloat16_gflops": 5.0, "bf16_speedup": 0.1, "threads": 2}
    assert dtypes.remembered() is None
    first = dtypes.probe(measure)
    assert dtypes.probe(measure) == first and len(calls) == 1
    assert dtypes.remembered() == first
    assert first["cpu"] == dtypes.cpu_name_and_flags()[0] and "capability" in first
    saved = json.loads((tmp_path / "cpu-dtype.json").read_text())
    assert list(saved.values()) == [first]


def test_the_real_probe_measures_both_types():
    m = dtypes.measure()
    assert m["float32_gflops"] > 0 and m["bfloat16_gflops"] > 0
    # the GFLOP/s are rounded to 0.01 and the ratio to 0.001: on a busy machine bfloat16 can be 0.3 GFLOP/s
    rounding = 0.005 / m["float32_gflops"] + 0.0005
    assert m["bf16_speedup"] == pytest.approx(m["bfloat16_gflops"] / m["float32_gflops"], rel=0.01, abs=rounding)


@pytest.mark.parametrize("name", ["float32", "bfloat16"])
def test_a_model_loads_computes_and_trains_in_the_type_chosen(tiny, name):
    """Weights, the pixels fed to the model, generation and scoring all follow the type."""
    import numpy as np

    from rbft.config import FrameConfig
    from rbft.frames import Clip
    lm = models.load(ModelConfig(model=tiny("smolvlm"), dtype=name))
    assert lm.dtype == getattr(torch, name) and lm.compute.reason == f"{name}: asked for"
    assert {p.dtype for p in lm.model.parameters() if p.is_floating_point()} == {getattr(torch, name)}
    frames = FrameConfig(num_frames=2, max_side=64)
    clip = Clip(np.zeros((2, 64, 64, 3), np.uint8), 8.0, 2, [0, 1])
    batch = models.to_model(lm, models.collate([models.encode(lm, "Which?", clip, frames)], lm.tokenizer.pad_token_id))
    assert batch["pixel_values"].dtype == getattr(torch, name)
    assert len(models.score_options(lm, "Which?", clip, frames, ["a", "b"])) == 2
    info = models.model_info(lm)
    assert info["dtype"] == name and info["dtype_reason"] == lm.compute.reason
    assert info["weights"] == models.resolve(tiny("smolvlm")).name   # the folder the run's weights came from


def test_dry_run_and_the_run_record_name_the_type(tmp_path, tiny, capsys):
    project = str(tmp_path / "p")
    assert main(["sample", "--project", project, "--quiet"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["train", "--project", project, "--model", "tiny:smolvlm", "--arm", "sft", "--dtype", "bfloat16",
              "--dry-run"])
    out = capsys.readouterr().out
    assert "bfloat16 compute" in out and "compute type bfloat16: asked for" in out
    assert "--dtype bfloat16" in out   # the command line the preview teaches keeps the choice
    with pytest.raises(SystemExit):
        main(["train", "--project", project, "--model", "tiny:smolvlm", "--arm", "sft", "--dry-run"])
    out = capsys.readouterr().out
    auto = models.compute_type(ModelConfig(), "cpu")
    assert f"compute type {auto.reason}" in out


def test_the_model_line_names_the_type(monkeypatch, tmp_path):
    from studio.app import model_note_text
    monkeypatch.setenv("RBFT_CACHE", str(tmp_path))
    assert "Compute type **bfloat16** (asked for)" in model_note_text("tiny:smolvlm", "bfloat16")
    assert "measured once" in model_note_text("tiny:smolvlm", "auto")
    dtypes.probe(lambda: {"float32_gflops": 50.0, "bfloat16_gflops": 5.0, "bf16_speedup": 0.1, "threads": 2})
    assert "float32: auto on this CPU" in model_note_text("tiny:smolvlm", "auto")
