"""Training memory: the lean path trains exactly as transformers' default path does, keeps less for
backward, and the memory model follows the real sequence and the GPU measurements."""
import pytest
import torch

from rbft import memory, models
from rbft.config import FrameConfig, ModelConfig, TrainConfig
from rbft.data import ingest
from rbft.recipes.experiment import label_examples
from rbft.train import VideoCollator, VideoTextDataset, add_lora, answer_loss


@pytest.fixture
def sample_store(store, dataset, tiny_root):
    ingest(store, dataset)
    return store


def _trainer_loss(lm, batch, lean: bool, num_items=None):
    """The loss as the Trainer computes it on each path (compute_loss_func, or the model's own)."""
    batch = dict(batch)
    if lean:
        labels = batch.pop("labels")
        return answer_loss(lm.model(**batch), labels, num_items)
    if num_items is not None:
        batch["num_items_in_batch"] = num_items
    return lm.model(**batch).loss


def _loss_and_grads(store, family: str, lean: bool, frames: FrameConfig):
    lm = models.load(ModelConfig(model=f"tiny:{family}"))
    add_lora(lm, TrainConfig(seed=0, lean=lean, gradient_checkpointing="on", lora_dropout=0.0))
    lm.model.train()
    examples = label_examples(store)[:3]
    feats = [VideoTextDataset(store, lm, examples, frames)[i] for i in range(3)]
    batch = models.to_model(lm, VideoCollator(lm.tokenizer.pad_token_id, lean=lean)(feats))
    num_items = (batch["labels"][:, 1:] != -100).sum()
    loss = _trainer_loss(lm, batch, lean, num_items)
    loss.backward()
    grads = {n: p.grad.float().clone() for n, p in lm.model.named_parameters() if p.requires_grad}
    return float(loss), grads


@pytest.mark.parametrize("family", ["smolvlm", "qwen2_5_vl"])
def test_the_lean_path_gives_the_default_paths_loss_and_lora_gradients(sample_store, family):
    frames = FrameConfig(4, 64)
    loss_default, grads_default = _loss_and_grads(sample_store, family, lean=False, frames=frames)
    loss_lean, grads_lean = _loss_and_grads(sample_store, family, lean=True, frames=frames)
    assert loss_lean == pytest.approx(loss_default, rel=1e-3)
    assert grads_lean.keys() == grads_default.keys() and any("lora_" in n for n in grads_lean)
    for name, g in grads_default.items():
        assert torch.allclose(grads_lean[name], g, rtol=2e-2, atol=1e-5), name


def _saved_bytes(lm, batch, lean: bool) -> int:
    """Bytes autograd keeps for backward during one forward (unique storages)."""
    seen, total = set(), 0

    def pack(t):
        nonlocal total
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
        return t

    batch = dict(batch)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = _trainer_loss(lm, batch, lean)
    loss.backward()
    lm.model.zero_grad(set_to_none=True)
    return total


def test_the_lean_path_keeps_less_for_backward_per_sample(sample_store):
    """Per added sample, the default path keeps the frozen vision tower's activations and every
    position's logits; the lean path keeps neither (measured on the tiny Qwen2.5-VL)."""
    frames = FrameConfig(4, 64)
    per_sample = {}
    for lean in (False, True):
        lm = models.load(ModelConfig(model="tiny:qwen2_5_vl"))
        add_lora(lm, TrainConfig(seed=0, lean=lean, gradient_checkpointing="on"))
        lm.model.train()
        examples = label_examples(sample_store)
        ds = VideoTextDataset(sample_store, lm, examples, frames)
        collate = VideoCollator(lm.tokenizer.pad_token_id, lean=lean)
        one = _saved_bytes(lm, models.to_model(lm, collate([ds[0]])), lean)
        four = _saved_bytes(lm, models.to_model(lm, collate([ds[0]] * 4)), lean)
        per_sample[lean] = (four - one) / 3
    assert per_sample[True] < 0.5 * per_sample[False]


def test_sequence_follows_the_processor_and_the_clip_size():
    """Visual tokens come from the processor's rounding: a small clip is not charged a big one's tokens."""
    lm = models.load_processor(ModelConfig(model="tiny:qwen2_5_vl"))
    big = memory.sequence(lm, FrameConfig(8, 336), 336, 336, "Which class?", "routine")
    small = memory.sequence(lm, FrameConfig(8, 336), 96, 96, "Which class?", "routine")
    assert big.visual_tokens == 4 * 12 * 12      # 8 frames -> 4 temporal patches of (336/28)^2 tokens
    assert small.visual_tokens == 4 * 3 * 3      # 96 px rounds to 84: 3 x 3 merged patches
    assert big.patches == 4 * big.visual_tokens  # 2 x 2 patches merge into one token
    assert big.tokens - small.tokens == big.visual_tokens - small.visual_tokens


def test_dims_count_the_presets_without_weights():
    d = memory.dims("Qwen/Qwen2.5-VL-7B-Instruct")
    assert d.family == "qwen2_5_vl" and d.vocab == 152064 and d.layers == 28
    total = d.lm_linear_params + d.other_params
    assert abs(total / 8.29e9 - 1) < 0.03
    assert d.lora_params_per_rank * 16 == pytest.approx(40.4e6, rel=0.02)  # r=16 on 7 projections x 28 layers


@pytest.mark.parametrize("row", memory.measured_rows(), ids=lambda r: r["id"])
def test_the_memory_model_is_within_25_percent_of_every_gpu_measurement(row):
    d = memory.dims(row["model"])
    seq = memory.Sequence(**row["sequence"])
    est = memory.estimate(d, seq, row["batch"], row["quantization"] == "nf4", lora_r=row.get("lora_r", 16),
                          lean=row["lean"], checkpointing=row.get("checkpointing", True))
    assert est.gb == pytest.approx(row["peak_gb"], rel=0.25), (est.parts, row)


def test_auto_batch_is_the_largest_divisor_that_fits():
    d = memory.dims("Qwen/Qwen2.5-VL-7B-Instruct")
    seq = memory.Sequence(tokens=637, visual_tokens=576, frames=8, patches=2304, answer_tokens=3)
    one = memory.estimate(d, seq, 1, True).gb
    per = memory.estimate(d, seq, 2, True).gb - one
    free = (one + 5.5 * per) / 0.9                 # room for 6 samples, not 7
    assert memory.largest_batch(d, seq, free, True, upto=8) == 4     # divisors of 8: 8, 4, 2, 1
    assert memory.largest_batch(d, seq, free, True, upto=12) == 6
    assert memory.largest_batch(d, seq, one * 0.5, True, upto=8) == 0


def test_auto_batch_on_cuda_backs_off_when_the_real_step_runs_out_of_memory(sample_store, monkeypatch):
    """The memory model proposes 8 per forward; the confirming step runs out of memory at 8 and 4:
    training runs 2 per forward with 4 accumulated, so the effective batch stays 8 (the GPU is faked
    here; on a GPU the step is real)."""
    from rbft import train
    lm = models.load(ModelConfig(model="tiny:qwen2_5_vl"))
    cfg = TrainConfig(batch_size=4, grad_accum=2)
    add_lora(lm, cfg)
    lm.device = "cuda"
    tried = []

    def one_step(lm_, collator, features, lean):
        tried.append(len(features))
        if len(features) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (faked)")
        return 3.0
    monkeypatch.setattr(train, "_one_step", one_step)
    monkeypatch.setattr(memory, "largest_batch", lambda *a, **k: 8)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (20e9, 80e9))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda: 0)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    frames = FrameConfig(4, 64)
    ds = VideoTextDataset(sample_store, lm, label_examples(sample_store), frames)
    plan = train.plan_batch(lm, cfg, ds, VideoCollator(lm.tokenizer.pad_token_id, lean=True))
    assert tried == [8, 4, 2]
    assert (plan.micro_batch, plan.grad_accum, plan.effective_batch) == (2, 4, 8)
    assert plan.auto and plan.backed_off_from == 8 and plan.first_step_gb == 3.0
    args = train.training_arguments(cfg, sample_store.root / "run", "cpu", plan.micro_batch)
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (2, 4)


def test_a_micro_batch_that_does_not_divide_the_batch_is_refused(sample_store):
    from rbft import train
    lm = models.load(ModelConfig(model="tiny:smolvlm"))
    lm.device = "cpu"   # on a GPU machine too: this is the CPU rule
    ds = VideoTextDataset(sample_store, lm, label_examples(sample_store), FrameConfig(4, 64))
    with pytest.raises(ValueError, match="must divide the effective batch 6"):
        train.plan_batch(lm, TrainConfig(batch_size=3, grad_accum=2, micro_batch="4"), ds,
                         VideoCollator(lm.tokenizer.pad_token_id))
    plan = train.plan_batch(lm, TrainConfig(batch_size=3, grad_accum=2), ds, VideoCollator(lm.tokenizer.pad_token_id))
    assert (plan.micro_batch, plan.grad_accum) == (3, 2)   # CPU: auto keeps today's behaviour
