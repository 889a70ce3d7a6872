import numpy as np
import pytest

from rbft import project, prompts, synthetic
from rbft.config import FrameConfig
from rbft.frames import cache_path, load_clip, sample_frames, uniform_indices


def test_uniform_indices_spread_over_the_video():
    assert uniform_indices(100, 4) == [12, 37, 62, 87]
    assert uniform_indices(3, 8) == [0, 1, 2]
    assert uniform_indices(0, 8) == []


def test_sampling_resizes_and_the_cache_survives_the_video(tmp_path):
    video = synthetic.write_video(tmp_path / "v.mp4", synthetic.render_clip("fall", 1, 200, 20))
    cfg = FrameConfig(num_frames=5, max_side=50)
    clip = sample_frames(video, cfg)
    assert clip.frames.shape == (5, 50, 50, 3) and clip.frames.dtype == np.uint8
    first = load_clip(video, "ab" * 32, cfg, tmp_path / "cache")
    assert cache_path(tmp_path / "cache", "ab" * 32, cfg).exists()
    video.unlink()  # a cache hit must not touch the video
    again = load_clip(video, "ab" * 32, cfg, tmp_path / "cache")
    assert np.array_equal(first.frames, again.frames) and again.indices == first.indices


def test_unknown_and_broken_fields_are_clear_errors():
    with pytest.raises(prompts.PromptError, match=r"unknown field.*\{colour\}"):
        prompts.validate("classify", "Classify {colour} videos")
    with pytest.raises(prompts.PromptError, match="empty"):
        prompts.validate("classify", "   ")
    with pytest.raises(prompts.PromptError, match="must use {label}"):
        prompts.validate("rationale", "Describe the video in {domain}")
    with pytest.raises(prompts.PromptError, match="broken"):
        prompts.validate("classify", "Classify { this")


def test_rendered_rationale_prompt_has_label_hint_and_class_definitions(store):
    project.configure(store, "home security", {"intruder": "someone unknown enters", "normal": ""})
    text = project.render(store, "rationale", label="intruder")
    assert "home security" in text and '"intruder"' in text
    assert "- intruder: someone unknown enters" in text and "- normal" in text


def test_each_edit_is_a_new_version_and_unchanged_text_is_not(store):
    first = project.prompt(store, "classify")
    second = project.save_prompt(store, "classify", first["template"] + "\nBe brief.")
    assert store.prompt(second)["version"] == first["version"] + 1
    assert project.save_prompt(store, "classify", first["template"] + "\nBe brief.") == second
    assert project.prompt(store, "classify")["id"] == second


def test_rationale_target_replaces_any_classification_line():
    text = "A man opens the door.\nClassification: normal"
    assert prompts.rationale_target(text, "intruder") == "A man opens the door.\nClassification: intruder"
