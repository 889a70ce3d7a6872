"""The recommended real models, checked offline at the config level: each preset's dimensions build
the family's architecture (on the meta device: no weights, no download) with the published parameter
count, LoRA lands on its language model only, and the memory check refuses what will not fit."""
import re

import pytest
import torch
import transformers as tf

from rbft import fit, models, presets

CONFIGS = {"smolvlm": tf.SmolVLMConfig, "qwen2_vl": tf.Qwen2VLConfig, "qwen2_5_vl": tf.Qwen2_5_VLConfig,
           "qwen3_vl": tf.Qwen3VLConfig}


def meta_model(p: presets.Preset):
    text = dict(p.text)
    if p.family == "smolvlm":
        config = tf.SmolVLMConfig(text_config=dict(text, model_type="llama"), vision_config=p.vision,
                                  scale_factor=4 if p.vision["image_size"] == 512 else 3)
    else:
        config = CONFIGS[p.family](text_config=text, vision_config=p.vision)
        if text.get("tie_word_embeddings"):
            config.tie_word_embeddings = True
    with torch.device("meta"):
        return tf.AutoModelForImageTextToText.from_config(config)


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_preset_builds_its_family_with_the_published_size(name):
    p = presets.PRESETS[name]
    model = meta_model(p)
    assert models.detect_family(model.config.model_type).name == p.family
    params = sum(t.numel() for t in {id(t): t for t in model.parameters()}.values()) / 1e9
    assert params == pytest.approx(p.params_b, rel=0.12), f"{name}: {params:.2f}B"
    family = models.FAMILIES[p.family]
    targets = [n for n, _ in model.named_modules() if re.fullmatch(family.lora_target, n)]
    assert targets and len(targets) == 7 * p.text["num_hidden_layers"]
    assert not any("vision" in n or "visual" in n for n in targets)
    skipped = [n for n, _ in model.named_modules() if n.startswith(family.skip_quantization[0])]
    assert skipped, f"{family.skip_quantization[0]} names no module of {name}"


def test_memory_check_refuses_what_will_not_fit(monkeypatch):
    monkeypatch.setattr(fit, "available_gb", lambda device: 16.0)
    big = "Qwen/Qwen2.5-VL-7B-Instruct"
    with pytest.raises(fit.WontFit, match=r"needs about \d+\.\d GB .* but 16\.0 GB of GPU memory is free"):
        fit.check_fits(big, "cuda", quantized=False, num_frames=8, batch_size=1)
    assert fit.check_fits(big, "cuda", quantized=True, num_frames=8, batch_size=1) < 16 * 0.9
    small = "HuggingFaceTB/SmolVLM2-256M-Video-Instruct"
    assert fit.check_fits(small, "cpu", quantized=False, num_frames=8, batch_size=2) < 6
    assert fit.check_fits("some/unlisted-model", "cpu", False, 8, 1) is None


def test_estimates_grow_with_what_costs_memory():
    p = presets.PRESETS["Qwen/Qwen2-VL-2B-Instruct"]
    base = fit.estimate_gb(p, quantized=True)
    assert fit.estimate_gb(p, quantized=False) > base
    assert fit.estimate_gb(p, quantized=True, num_frames=16) > base
    assert fit.estimate_gb(p, quantized=True, batch_size=4) > base
    assert fit.estimate_gb(p, quantized=True, training=False) < base


def test_experiment_refuses_a_model_that_will_not_fit_before_loading(store, dataset, monkeypatch):
    from conftest import small_config

    from rbft.data import ingest
    from rbft.recipes.experiment import run_experiment
    ingest(store, dataset)
    monkeypatch.setattr(fit, "available_gb", lambda device: 2.0)
    cfg = small_config("Qwen/Qwen2.5-VL-7B-Instruct")
    with pytest.raises(fit.WontFit, match="but 2.0 GB of RAM is free"):
        run_experiment(store, cfg)
    assert store.runs() == []  # nothing started, nothing downloaded
