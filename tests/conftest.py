import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# new projects default to the tiny model in tests (the toy-world VLM is tested on its own)
os.environ.setdefault("RBFT_DEFAULT_MODEL", "tiny:smolvlm")

from rbft import synthetic  # noqa: E402
from rbft.config import ExperimentConfig, FrameConfig, GenerationConfig, ModelConfig, TrainConfig  # noqa: E402
from rbft.project import open_project  # noqa: E402
from rbft.testing import tiny_model_dir  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def job_launcher():
    """Jobs start from one warm launcher process (rbft.recipes.launcher): start its imports now."""
    from rbft.recipes import launcher
    launcher.warm_up()


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    os.environ["RBFT_TINY_DIR"] = str(root)
    return root


@pytest.fixture(scope="session")
def tiny(tiny_root):
    """family -> folder of its tiny model, built once per session."""
    return lambda family: str(tiny_model_dir(family, tiny_root))


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    """Two motion classes, five clips each."""
    return synthetic.make_dataset(tmp_path_factory.mktemp("data"), per_class=5, motions=("left", "right"),
                                  size=64, n_frames=16)


@pytest.fixture
def store(tmp_path):
    return open_project(tmp_path / "project")


def small_config(model: str, **overrides) -> ExperimentConfig:
    cfg = ExperimentConfig(
        frames=FrameConfig(num_frames=4, max_side=64),
        model=ModelConfig(model=model),
        generation=GenerationConfig(max_new_tokens=10, batch_size=3),
        stage1=TrainConfig(max_steps=3, batch_size=2, eval_every=2, save_every=2),
        stage2=TrainConfig(max_steps=3, batch_size=2, eval_every=2, save_every=2),
        arms=["zero_shot", "sft", "rbft"])
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg
