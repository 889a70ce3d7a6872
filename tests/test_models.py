"""Every family, through the real processor, chat template, generation and scoring code."""
import pytest
import torch

from rbft import models, synthetic
from rbft.config import FrameConfig, GenerationConfig, ModelConfig
from rbft.frames import sample_frames

FAMILIES = ["qwen2_vl", "qwen2_5_vl", "qwen3_vl", "smolvlm"]
FRAMES = FrameConfig(num_frames=4, max_side=64)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    return [sample_frames(synthetic.write_video(d / f"{m}.mp4", synthetic.render_clip(m, i, 64, 16)), FRAMES)
            for i, m in enumerate(["left", "right", "fall"])]


@pytest.mark.parametrize("family", FAMILIES)
def test_answer_tokens_are_the_only_labels(tiny, clips, family):
    lm = models.load(ModelConfig(model=tiny(family)))
    ex = models.encode(lm, "Which way?", clips[0], FRAMES, answer="left")
    labelled = ex["labels"][ex["labels"] != -100]
    expected = lm.tokenizer(lm.family.answer_prefix + "left" + lm.family.end_of_turn,
                            add_special_tokens=False)["input_ids"]
    assert labelled.tolist() == expected
    assert ex["input_ids"][-len(expected):].tolist() == expected


@pytest.mark.parametrize("family", FAMILIES)
def test_batched_scoring_equals_one_at_a_time(tiny, clips, family):
    lm = models.load(ModelConfig(model=tiny(family)))
    options = ["left", "right", "fall down"]
    batched = models.score_options(lm, "Which way?", clips[1], FRAMES, options)
    single = [models.score_options(lm, "Which way?", clips[1], FRAMES, [o])[0] for o in options]
    assert batched == pytest.approx(single, abs=0.05)


@pytest.mark.parametrize("family", FAMILIES)
def test_cached_prefix_scoring_equals_full_forwards(tiny, clips, family):
    """The video is encoded once and its cache shared by the options: same scores as a full forward
    per option, with a video and then text-only (where a Qwen model's M-RoPE offset must not leak)."""
    lm = models.load(ModelConfig(model=tiny(family)))
    options = ["left", "right", "a shape falls to the bottom"]
    for clip in (clips[2], None):
        cached = models.score_options(lm, "Which way?", clip, FRAMES, options)
        full = models.score_options_full(lm, "Which way?", clip, FRAMES, options)
        assert cached == pytest.approx(full, abs=0.02)


@pytest.mark.parametrize("family", FAMILIES)
def test_left_padded_batch_generates_what_each_video_alone_does(tiny, clips, family):
    lm = models.load(ModelConfig(model=tiny(family)))
    gen = GenerationConfig(max_new_tokens=6, repetition_penalty=1.0)
    prompts = ["Describe.", "Describe the video in a lot more words, please, carefully."]
    together = models.generate(lm, prompts, clips[:2], FRAMES, gen)
    alone = [models.generate(lm, [p], [c], FRAMES, gen)[0] for p, c in zip(prompts, clips[:2])]
    assert together == alone


@pytest.mark.parametrize("family", ["qwen2_vl", "smolvlm"])
def test_nf4_quantizes_the_language_model_only(tiny, family):
    import bitsandbytes as bnb
    lm = models.load(ModelConfig(model=tiny(family), quantization="nf4"))
    four_bit = [n for n, m in lm.model.named_modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert lm.quantized and four_bit
    assert all(lm.family.text_module in n for n in four_bit)


def test_unreachable_hub_says_so_and_names_offline_options(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(models.ModelLoadError, match="tiny:smolvlm"):
        models.load(ModelConfig(model="HuggingFaceTB/SmolVLM2-256M-Video-Instruct"))


def test_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(models.ModelLoadError, match="not a model folder"):
        models.resolve(str(tmp_path))


def test_cuda_requested_without_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(models.ModelLoadError, match="no CUDA"):
        models.pick_device("cuda")


def test_gradients_flow_through_frozen_nf4_layers_on_cpu():
    """QLoRA trains LoRA weights below 4-bit layers: the input gradient must be exact."""
    import bitsandbytes as bnb
    torch.manual_seed(0)
    dense = torch.nn.Linear(64, 64, bias=False).to(torch.bfloat16)
    q = bnb.nn.Linear4bit(64, 64, bias=False, compute_dtype=torch.bfloat16, quant_type="nf4")
    q.weight = bnb.nn.Params4bit(dense.weight.data.clone(), requires_grad=False, quant_type="nf4")
    q = q.to("cpu")
    x = torch.randn(2, 7, 64, dtype=torch.bfloat16, requires_grad=True)
    q(x).float().sum().backward()
    w = bnb.functional.dequantize_4bit(q.weight.data, q.weight.quant_state).to(torch.bfloat16)
    ref = x.detach().clone().requires_grad_(True)
    (ref @ w.t()).float().sum().backward()
    assert x.grad.abs().sum() > 0
    assert torch.equal(x.grad, ref.grad)
