"""The toy-world VLM in the paper's family (issue 33): Qwen2.5-VL's architecture around the real
SmolLM2-135M-Instruct computes SmolLM2's own text logits, loads through the Auto classes and the
studio's model path, and its tower's pretraining sees frames exactly as the processor cuts them,
with targets that agree with the renderer's tracks."""
import json

import numpy as np
import pytest
import torch

from rbft.frames import uniform_indices
from rbft.toyworld import base_qwen, sight_qwen, weights, world
from rbft.toyworld.motion import DIRECTIONS

PROMPTS = ["What is the capital of France?", "Describe a red circle that moves to the left.", "Hello!",
           "Name three colours, then count to five."]


@pytest.fixture(scope="module")
def smollm2_and_qwen():
    try:
        weights.gguf_file()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    import copy
    torch.set_num_threads(max(1, torch.get_num_threads()))
    tok, lm = base_qwen.load_smollm2(base_qwen.SPECIALS)
    smollm2 = copy.deepcopy(lm).eval()
    return tok, smollm2, base_qwen.build_model(tok, lm).eval()


def chat(tok, prompts):
    return [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
            for p in prompts]


def test_its_language_model_is_smollm2_exactly(smollm2_and_qwen, tmp_path):
    tok, smollm2, qwen = smollm2_and_qwen
    tok.padding_side = "left"
    batch = tok(chat(tok, PROMPTS), return_tensors="pt", padding=True)
    with torch.no_grad():
        want = smollm2(**batch).logits
        got = qwen(**batch).logits
    on = batch["attention_mask"].bool()
    assert (want[on] - got[..., :want.shape[-1]][on]).abs().max() <= 1e-5
    with torch.no_grad():
        one = tok(chat(tok, PROMPTS[:1]), return_tensors="pt")
        assert torch.equal(smollm2.generate(**one, max_new_tokens=16, do_sample=False),
                           qwen.generate(**one, max_new_tokens=16, do_sample=False))
    # saved and loaded back through the Auto classes, with no custom code: the same logits
    import transformers as tf
    qwen.save_pretrained(tmp_path)
    base_qwen.processor(tok).save_pretrained(tmp_path)
    loaded = tf.AutoModelForImageTextToText.from_pretrained(tmp_path, dtype=torch.float32).eval()
    processor = tf.AutoProcessor.from_pretrained(tmp_path)
    assert type(loaded).__name__ == "Qwen2_5_VLForConditionalGeneration"
    with torch.no_grad():
        again = loaded(**batch).logits
    assert (want[on] - again[..., :want.shape[-1]][on]).abs().max() <= 1e-5
    # the chat template: text turns exactly as SmolLM2's own template writes them; video turns marked
    for p in PROMPTS:
        ours = processor.apply_chat_template([{"role": "user", "content": [{"type": "text", "text": p}]}],
                                             add_generation_prompt=True, tokenize=False)
        assert ours == chat(tok, [p])[0]   # tok: SmolLM2's tokenizer with its own template
    # 8 frames of 128 px: 4 pairs x 16 tokens, no upsampling
    video = np.zeros((8, 128, 128, 3), np.uint8)
    text = processor.apply_chat_template([{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Hi"}]}],
                                         add_generation_prompt=True)
    feats = processor(text=[text], videos=[video], return_tensors="pt")
    assert feats["video_grid_thw"].tolist() == [[4, 16, 16]]
    assert int((feats["input_ids"] == loaded.config.video_token_id).sum()) == 64
    with torch.no_grad():
        assert loaded(**feats).logits.shape[1] == feats["input_ids"].shape[1]


def test_patches_are_cut_as_the_processor_cuts_them():
    import transformers as tf
    size = {"shortest_edge": 128 * 128, "longest_edge": 128 * 128}
    processor = tf.Qwen2VLVideoProcessor(size=size, patch_size=8, merge_size=4, temporal_patch_size=2,
                                         image_mean=base_qwen.MEAN, image_std=base_qwen.STD, do_sample_frames=False)
    clip = world.render(5)
    frames = clip.frames[uniform_indices(len(clip.frames), 8)]
    want = processor(videos=[frames], return_tensors="pt")
    got, grid = sight_qwen.patchify(frames)
    assert grid.tolist() == want["video_grid_thw"].tolist()
    assert (got - want["pixel_values_videos"]).abs().max() < 1e-5


def test_the_towers_output_is_in_the_patches_order():
    """One attention window covers a whole frame, so the tower's per-patch output (before the merger)
    keeps the processor's order, which the targets follow."""
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import get_vision_window_index
    grid = torch.tensor([[4, 16, 16]])
    index, _ = get_vision_window_index(grid, spatial_merge_size=base_qwen.VISION["spatial_merge_size"],
                                       window_size=base_qwen.VISION["window_size"],
                                       patch_size=base_qwen.VISION["patch_size"])
    assert torch.equal(index, torch.arange(4 * 16))


def test_pair_targets_follow_the_renderers_tracks():
    checked = {"direction": 0, "speed": 0, "patches": 0}
    for seed in range(900_000, 900_030):
        clip = world.render(seed, labels=True)
        ids = list(uniform_indices(len(clip.frames), 8))
        example = sight_qwen.clip_example(clip, ids)
        names = [f"the {t['size']} {t['color']} {t['shape']}" for t in clip.things]
        targets = example["targets"].reshape(4, len(names), -1)
        order = sight_qwen.patch_order(4, 16, 16)
        for pair in range(4):
            first, second = ids[2 * pair], ids[2 * pair + 1]
            for k, name in enumerate(names):
                t = dict(zip(sight_qwen.KEYS, targets[pair, k].tolist()))
                assert t["shape"] == world.SHAPES.index(clip.things[k]["shape"])
                (x1, y1, r1, s1), (x2, y2, _, s2) = clip.tracks[name][first], clip.tracks[name][second]
                if not (s1 and s2):
                    assert t["direction"] == sight_qwen.IGNORE
                    continue
                way = DIRECTIONS[t["direction"]]
                if way in ("left", "right"):
                    assert (x2 - x1 > 0) == (way == "right") and abs(x2 - x1) >= abs(y2 - y1)
                elif way in ("up", "down"):
                    assert (y2 - y1 > 0) == (way == "down") and abs(y2 - y1) >= abs(x2 - x1)
                checked["direction"] += 1
                if way != "still":
                    per_frame = np.hypot(x2 - x1, y2 - y1) / (second - first)
                    assert sight_qwen.SPEEDS[t["speed"]] == ("fast" if per_frame >= sight_qwen.FAST else "slow")
                    checked["speed"] += 1
                # the patches said to show this thing lie on it: within its radius (plus a patch) of its centre
                cells = np.nonzero(example["group"].numpy() == pair * len(names) + k)[0]
                flat = order[cells] - pair * 256
                rows, cols = flat // 16, flat % 16
                centre = np.array([y1 * 16, x1 * 16])
                dist = np.hypot(rows + 0.5 - centre[0], cols + 0.5 - centre[1])
                reach = max(r1, clip.tracks[name][second][2]) * 16 + np.hypot(x2 - x1, y2 - y1) * 16 + 1.5
                assert (dist <= reach).all()
                checked["patches"] += len(cells)
    assert checked["direction"] > 100 and checked["speed"] > 50 and checked["patches"] > 1000


def test_a_few_pretraining_steps_lower_the_loss():
    import transformers as tf
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel
    torch.manual_seed(0)
    config = tf.Qwen2_5_VLVisionConfig(**{**base_qwen.VISION, "depth": 1, "fullatt_block_indexes": [0]},
                                       out_hidden_size=64)
    model = sight_qwen.PairPretraining(Qwen2_5_VisionTransformerPretrainedModel._from_config(config))
    batch = sight_qwen.collate([sight_qwen.PairDataset(500_000, 4, 8)[i] for i in range(4)])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss = model(**batch)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.8
    report = sight_qwen.pair_accuracy(model, 900_000, 2, 8)
    assert report["thing_pairs"] > 0 and set(report["shape"]) == {"pooled", "patch_vote", "commonest_class_rate", "n"}


@pytest.mark.slow  # a short Qwen-family build, shipped and assembled again: minutes here
def test_a_short_qwen_build_trains_every_stage_and_its_parts_assemble(tmp_path):
    """Base, pair tower, merger from words, captions with the motion read-out; then the shipped parts
    (tower, merger and LoRA in the adapter, the four vision tokens' embeddings) assemble into a
    Qwen2.5-VL folder that answers like the build's own model."""
    from safetensors import safe_open

    from rbft import models
    from rbft.config import FrameConfig, ModelConfig
    from rbft.frames import Clip
    from rbft.toyworld.build import BuildConfig, build, load_build
    from rbft.toyworld.shipped import model_dir, package
    try:
        weights.gguf_file()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    work, events = tmp_path / "work", []
    cfg = BuildConfig(family="qwen2_5_vl", clips=10, sight_steps=3, sight_batch_size=2, steps=3, save_every=2,
                      num_frames=4, event_word_weight=2.0)
    adapter = build(work, cfg, on_event=events.append)
    assert [e.stage for e in events if e.kind == "loss"] == ["sight"] * 3 + ["toyworld"] * 3
    assert any(e.message.startswith("event word weights in the caption loss: ") for e in events if e.kind == "log")
    report = json.loads((work / "sight" / "sight.json").read_text())
    assert report["thing_pairs"] > 0 and 0 <= report["direction"]["pooled"] <= 1
    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as f:
        names = list(f.keys())
    # the merger stays at its word start: it ships beside the adapter, which holds LoRA alone
    assert not any("merger" in n for n in names) and any("lora_A" in n and "language_model" in n for n in names)
    record = json.loads((work / "build.json").read_text())
    assert build(work, cfg) == adapter   # run again (as `--ship` does): nothing trains, the record stays the build's
    assert json.loads((work / "build.json").read_text()) == record
    with pytest.raises(ValueError, match="holds a qwen2_5_vl build"):
        build(work, BuildConfig(family="smolvlm"))
    parts = package(work, tmp_path / "parts")
    assert json.loads((parts / "manifest.json").read_text())["family"] == "qwen2_5_vl"
    assert (parts / "connector.safetensors").exists()
    folder = model_dir(parts, cache_root=tmp_path / "cache")
    built, shipped = load_build(work), models.load(ModelConfig(model=str(folder)))
    assert shipped.family.name == "qwen2_5_vl"
    clip = world.render(123)
    idx = [0, 5, 10, 15]
    video = Clip(clip.frames[idx], clip.fps, 16, idx)
    options = ["a red circle", "a blue square", "a green triangle"]
    frames = FrameConfig(num_frames=4, max_side=128)
    a = models.score_options(built, "Describe what happens in this video.", video, frames, options)
    b = models.score_options(shipped, "Describe what happens in this video.", video, frames, options)
    assert np.allclose(a, b, atol=0.5), (a, b)


def test_each_family_builds_with_its_own_recipe_unless_told_otherwise():
    from rbft.toyworld.build import BuildConfig, family_config
    qwen = family_config("qwen2_5_vl")
    assert (qwen.sight_steps, qwen.sight_batch_size, qwen.sight_learning_rate, qwen.motion_weight,
            qwen.train_vision, qwen.train_connector) == (4500, 16, 3e-3, 0.1, False, False)
    assert (qwen.steps, qwen.word_start_motion, qwen.event_word_weight) == (2400, 0.5, 1.0)   # build 16's caption stage
    assert family_config("qwen2_5_vl", sight_steps=3).sight_steps == 3
    assert family_config() == BuildConfig() == qwen   # the shipped family is the default
    smol = family_config("smolvlm")
    assert (smol.sight_steps, smol.motion_weight, smol.train_vision, smol.train_connector) == (1500, 1.0, True, True)
    assert (smol.steps, smol.word_start_motion) == (600, 0.0)   # builds 1-6 had no motion words in a word start
    with pytest.raises(ValueError, match="unknown toy-world family"):
        family_config("llava")


def test_the_caption_stage_can_give_the_connector_its_own_rate(tmp_path):
    """--connector-learning-rate: the connector's parameters (found by module name, as PEFT wraps
    them) get their own AdamW group; everything else trained keeps the stage's rate."""
    import transformers as tf
    from torch import nn

    from rbft.toyworld.motion_stage import _motion_classes
    _, trainer_class = _motion_classes()
    model = nn.ModuleDict({"visual": nn.ModuleDict({"merger": nn.Linear(2, 2), "blocks": nn.Linear(2, 2)}),
                           "language_model": nn.Linear(2, 2)})
    model["visual"]["blocks"].requires_grad_(False)
    args = tf.TrainingArguments(output_dir=str(tmp_path), learning_rate=5e-4, use_cpu=True, report_to=[])
    trainer = trainer_class(model=model, args=args, head=nn.Linear(2, 2), layer=model["language_model"],
                            image_token_id=0, weight=0.1, connector_lr=2e-5, connector="merger")
    groups = sorted((g["lr"], len(g["params"])) for g in trainer.create_optimizer().param_groups)
    assert groups == [(2e-5, 2), (5e-4, 2)]   # merger weight + bias; the language model's; the frozen none


def test_the_motion_path_is_trained_beside_the_word_start_and_held_near_a_words_norm(tmp_path):
    """--motion-path: LoRA on the merger's last linear (its word start frozen under it), whose output
    the caption loss may use up to the cap and no further: the penalty is 0 within it, quadratic beyond."""
    import transformers as tf
    from peft import LoraConfig, get_peft_model
    from torch import nn

    from rbft.toyworld.motion_stage import PATH_TARGET, _motion_classes, path_penalty
    assert path_penalty(torch.full((3, 4), 0.5), cap=1.0).item() == 0.0             # norm 1.0: at the cap
    assert path_penalty(torch.tensor([[2.0, 0.0], [0.5, 0.0]]), cap=1.0).item() == pytest.approx(0.5)
    model = nn.ModuleDict({"visual": nn.ModuleDict({"merger": nn.ModuleDict({"mlp": nn.Sequential(
        nn.Linear(4, 4), nn.GELU(), nn.Linear(4, 4))})}), "language_model": nn.Linear(4, 4)})
    start = model["visual"]["merger"]["mlp"][2].weight.clone()
    model = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=PATH_TARGET))
    path = next(m for n, m in model.named_modules() if n.endswith("merger.mlp.2"))
    assert [n for n, p in model.named_parameters() if p.requires_grad] == [
        "base_model.model.visual.merger.mlp.2.lora_A.default.weight",
        "base_model.model.visual.merger.mlp.2.lora_B.default.weight"]
    _, trainer_class = _motion_classes()
    args = tf.TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[])
    trainer = trainer_class(model=model, args=args, head=nn.Linear(2, 2), layer=model.base_model.model["language_model"],
                            image_token_id=0, weight=0.1, path=path, path_cap=0.1)
    with torch.no_grad():
        path.lora_B["default"].weight.fill_(1.0)
        path(torch.ones(3, 4))
    assert trainer.path_out.shape == (3, 4) and path_penalty(trainer.path_out, 0.1).item() > 0
    assert torch.equal(path.base_layer.weight, start)   # the word start itself is not trained


def test_the_word_starts_motion_words_say_the_pairs_motion_outside_the_object_words(smollm2_and_qwen):
    """--word-start-motion: each thing's motion in a pair, in the captions' words, added to the word
    start's targets without their part along any size, colour or shape word (which the language
    model reads as objects: build 9's start passes on no motion, a probe of direction 0.458 after it)."""
    from types import SimpleNamespace

    from rbft.toyworld.word_start import motion_words, object_basis, off_objects, word_vector
    tok, _, qwen = smollm2_and_qwen
    lm = SimpleNamespace(tokenizer=tok, model=qwen)
    row = dict.fromkeys(sight_qwen.KEYS, sight_qwen.IGNORE)
    assert motion_words([row[k] for k in sight_qwen.KEYS]) == ""          # not seen in both frames
    row.update(direction=DIRECTIONS.index("left"), size_change=sight_qwen.SIZE_CHANGES.index("grew"), turned=1,
               touches=0)
    assert motion_words([row[k] for k in sight_qwen.KEYS]) == "moves left getting bigger rotates"
    row.update(direction=DIRECTIONS.index("still"), size_change=sight_qwen.SIZE_CHANGES.index("same"), turned=0,
               touches=1)
    assert motion_words([row[k] for k in sight_qwen.KEYS]) == "stays still touches"
    basis = object_basis(lm)
    assert torch.allclose(basis @ basis.T, torch.eye(len(basis)), atol=1e-4)
    red = word_vector(lm, "red")
    assert (red - basis.T @ (basis @ red)).norm() < 1e-3 * red.norm()     # the object words are in its span
    words = word_vector(lm, "moves left")
    moved = off_objects(words, basis)
    assert (basis @ moved).abs().max() < 1e-4 * moved.norm()
    assert moved.norm().item() == pytest.approx(words.norm().item(), rel=1e-4)


def test_event_words_weigh_more_in_the_caption_loss_and_rarer_kinds_most(smollm2_and_qwen):
    """--event-word-weight: the tokens of the phrases the caption scorer reads as events weigh
    `weight` (the commonest kind) or more (rarer kinds); the rest 1. All weights 1 is the plain loss."""
    from rbft.toyworld.build import BuildConfig, build
    from rbft.toyworld.event_words import kind_weights, token_weights, weighted_answer_loss
    tok, _, _ = smollm2_and_qwen
    answers = ["At first, the small red circle stays still.", "Then, the large blue square stays still.",
               "Next, the small red circle touches the large blue square."]
    weights = kind_weights(answers, 2.0)
    assert weights == {"stays still": 2.0, "touches": pytest.approx(2.0 * 2 ** 0.5)}
    prefix = "<|im_start|>assistant\n"
    text = prefix + answers[2]
    w = token_weights(tok, text, len(prefix), weights)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    heavy = [tok.decode([i]).strip() for i, x in zip(ids, w.tolist()) if x != 1.0]
    assert heavy == ["touches"] and w.max().item() == pytest.approx(2.0 * 2 ** 0.5)
    said = "the red circle stays still -> "   # words before the answer's start are never weighed
    assert token_weights(tok, said + "ok", len(said), weights).tolist() == [1.0] * len(tok(said + "ok")["input_ids"])
    logits, labels = torch.randn(2, 6, 11), torch.tensor([[-100, -100, 3, 4, 5, -100], [-100, 1, 2, 3, 4, 5]])
    plain = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1))
    assert weighted_answer_loss(logits, labels, torch.ones(2, 6)).item() == pytest.approx(plain.item(), rel=1e-6)
    up = torch.ones(2, 6)
    up[1, 2] = 5.0   # the token labelled 2 (predicted at position 1) weighs 5
    ce = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1),
                                           ignore_index=-100, reduction="none")
    on = labels[:, 1:].reshape(-1) != -100
    expect = (ce * up[:, 1:].reshape(-1))[on].sum() / up[:, 1:].reshape(-1)[on].sum()
    assert weighted_answer_loss(logits, labels, up).item() == pytest.approx(expect.item(), rel=1e-6)
    with pytest.raises(ValueError, match="needs a motion weight above 0"):
        build("unused", BuildConfig(event_word_weight=2.0, motion_weight=0.0))
