"""ingest -> generate -> Stage I -> Stage II -> evaluate, for every family, and resume after a crash."""
import pytest
import torch
from conftest import small_config

from rbft import export, models, quality
from rbft.data import ingest
from rbft.recipes import experiment
from rbft.train import EventCallback


# every family end to end, all slow (test_models covers each family's processor, generation and scoring;
# test_pool, test_studio and the crash test below train in the default run)
@pytest.mark.parametrize("family", [pytest.param("qwen2_vl", marks=pytest.mark.slow),
                                    pytest.param("qwen2_5_vl", marks=pytest.mark.slow),
                                    pytest.param("qwen3_vl", marks=pytest.mark.slow),
                                    pytest.param("smolvlm", marks=pytest.mark.slow)])
def test_experiment_runs_every_arm(store, dataset, tiny, family, tmp_path):
    ingest(store, dataset)
    cfg = small_config(tiny(family))
    name = experiment.run_experiment(store, cfg)
    runs = {r["arm"]: r for r in store.runs(name)}
    assert set(runs) == {"zero_shot", "sft", "rbft"} and all(r["status"] == "done" for r in runs.values())
    n_test = len(store.videos(split="test"))
    for run in runs.values():
        assert len(store.predictions(run["id"])) == n_test
        assert run["metrics"]["n"] == n_test
    assert runs["rbft"]["metrics"]["steps"] == {"stage1": 3, "stage2": 3}
    # Stage I trained on one rationale per training video, generated with the label hint
    gen = quality.latest_generator(store)
    assert len(store.rationales(gen["prompt_id"], gen["model"])) == len(store.videos(split="train"))
    # live events: losses and validation confusion matrices for each stage
    events = store.events(runs["rbft"]["id"], kind="eval")
    assert {e["stage"] for e in events} == {"stage1", "stage2"}
    assert all(len(e["data"]["confusion"]) == 2 for e in events)
    assert store.events(runs["rbft"]["id"], kind="loss")
    table = experiment.format_table(experiment.summarize(store, name))
    assert "| rbft |" in table and "| sft |" in table and "| zero_shot |" in table
    out = export.export_adapter(store, runs["rbft"]["id"], tmp_path / "adapter")
    assert (out / "adapter_config.json").exists() and (out / "adapter_model.safetensors").exists()


@pytest.mark.slow  # a second experiment
def test_finished_runs_are_not_redone(store, dataset, tiny):
    ingest(store, dataset)
    cfg = small_config(tiny("smolvlm"), arms=["sft"])
    name = experiment.run_experiment(store, cfg)
    first = store.run(f"{name}/sft/s0")
    experiment.run_experiment(store, cfg)
    assert store.run(f"{name}/sft/s0")["finished_at"] == first["finished_at"]


def test_zero_shot_is_scored_once_for_every_seed(store, dataset, tiny, monkeypatch):
    ingest(store, dataset)
    cfg = small_config(tiny("smolvlm"), arms=["zero_shot"], seeds=[0, 1, 2])
    scored = []
    original = experiment.evaluate
    monkeypatch.setattr(experiment, "evaluate", lambda *a, **k: scored.append(a[2]) or original(*a, **k))
    name = experiment.run_experiment(store, cfg)
    assert scored == ["test"]
    runs = [store.run(f"{name}/zero_shot/s{seed}") for seed in (0, 1, 2)]
    assert all(r["status"] == "done" for r in runs)
    first = store.predictions(runs[0]["id"])
    assert len(first) == len(store.videos(split="test"))
    for copy in runs[1:]:
        assert copy["metrics"]["same_as"] == runs[0]["id"]
        assert copy["metrics"]["accuracy"] == runs[0]["metrics"]["accuracy"]
        assert [(p["video_id"], p["pred"], p["scores"]) for p in store.predictions(copy["id"])] == \
            [(p["video_id"], p["pred"], p["scores"]) for p in first]


def test_an_experiment_will_not_resume_on_other_weights(store, dataset, tiny):
    """New toy-world parts change what `toyworld` loads: resuming must not pair runs of two models."""
    ingest(store, dataset)
    cfg = small_config(tiny("smolvlm"), arms=["zero_shot"], seeds=[0])
    name = experiment.run_experiment(store, cfg)
    first = store.run(f"{name}/zero_shot/s0")
    assert first["metrics"]["weights"] == models.weights_name(tiny("smolvlm"))
    store.finish_run(first["id"], dict(first["metrics"], weights="toyworld-0123456789ab"))
    cfg.seeds = [0, 1]
    with pytest.raises(ValueError, match="used toyworld-0123456789ab.*new experiment"):
        experiment.run_experiment(store, cfg)
    assert [r["id"] for r in store.runs(name)] == [first["id"]]
    store.finish_run(first["id"], first["metrics"])   # the same weights again: it resumes
    experiment.run_experiment(store, cfg)
    assert store.run(f"{name}/zero_shot/s1")["status"] == "done"


def test_a_crashed_training_resumes_from_its_checkpoint(store, dataset, tiny, monkeypatch):
    ingest(store, dataset)
    cfg = small_config(tiny("qwen2_vl"), arms=["sft"])
    cfg.stage2.max_steps, cfg.stage2.save_every = 4, 2
    original = EventCallback.on_step_end

    def crash_at_step_3(self, args, state, control, **kw):
        original(self, args, state, control, **kw)
        if state.global_step == 3:
            raise RuntimeError("simulated crash")

    monkeypatch.setattr(EventCallback, "on_step_end", crash_at_step_3)
    with pytest.raises(RuntimeError, match="simulated"):
        experiment.run_experiment(store, cfg, name="crash")
    assert store.run("crash/sft/s0")["status"] == "failed"
    monkeypatch.setattr(EventCallback, "on_step_end", original)
    experiment.run_experiment(store, cfg, name="crash")
    run = store.run("crash/sft/s0")
    assert run["status"] == "done"
    logs = [e["message"] for e in store.events(run["id"], kind="log")]
    assert any("resuming from checkpoint-2" in m for m in logs)
    steps = [e["done"] for e in store.events(run["id"], kind="loss")]
    assert steps[-1] == 4 and 3 in steps  # step 3 trained again after the resume


@pytest.mark.parametrize("crash", ["stage2_start", "test_scoring"])
def test_an_rbft_run_cut_off_between_stages_resumes_to_the_same_model(store, dataset, tiny, monkeypatch, crash):
    """Cut off after Stage I (before Stage II's first checkpoint) or after Stage II (while scoring the
    test split), an RB-FT run resumes from the saved adapters: its Stage II continues Stage I's LoRA
    and its test scores are those of a run that was never cut off."""
    from safetensors.torch import load_file
    ingest(store, dataset)
    cfg = small_config(tiny("smolvlm"), arms=["rbft"])
    cfg.stage1.learning_rate = cfg.stage2.learning_rate = 3e-3   # Stage I must move the weights
    experiment.run_experiment(store, cfg, name="whole")
    if crash == "stage2_start":
        original = EventCallback.on_step_end

        def crash_in_stage2(self, args, state, control, **kw):
            original(self, args, state, control, **kw)
            if self.stage == "stage2":
                raise RuntimeError("simulated crash")
        monkeypatch.setattr(EventCallback, "on_step_end", crash_in_stage2)
    else:
        original = experiment.evaluate

        def crash_on_test(store_, lm, split, *a, **k):
            if split == "test":
                raise RuntimeError("simulated crash")
            return original(store_, lm, split, *a, **k)
        monkeypatch.setattr(experiment, "evaluate", crash_on_test)
    with pytest.raises(RuntimeError, match="simulated"):
        experiment.run_experiment(store, cfg, name="cut")
    monkeypatch.undo()
    experiment.run_experiment(store, cfg, name="cut")
    logs = [e["message"] for e in store.events("cut/rbft/s0", kind="log")]
    assert any("stage1: already trained" in m for m in logs)
    whole, cut = (store.root / "runs" / n / "rbft-s0" / "stage2" / "adapter" / "adapter_model.safetensors"
                  for n in ("whole", "cut"))
    a, b = load_file(str(whole)), load_file(str(cut))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    for p, q in zip(store.predictions("whole/rbft/s0"), store.predictions("cut/rbft/s0")):
        assert p["pred"] == q["pred"]
        assert all(abs(p["scores"][c] - q["scores"][c]) < 1e-5 for c in p["scores"])


def test_generation_resumes_where_it_stopped(store, dataset, tiny):
    from rbft import models
    from rbft.rationales import generate_rationales
    ingest(store, dataset)
    cfg = small_config(tiny("smolvlm"))
    lm = models.load(cfg.model)
    train = [v["id"] for v in store.videos(split="train")]
    first = generate_rationales(store, lm, cfg.frames, cfg.generation, video_ids=train[:2])
    second = generate_rationales(store, lm, cfg.frames, cfg.generation, video_ids=train)
    assert first["generated"] == 2 and second == {**second, "generated": len(train) - 2, "skipped": 2}


@pytest.mark.slow  # more steps than the others
def test_sft_lowers_the_training_loss(store, dataset, tiny):
    ingest(store, dataset)
    cfg = small_config(tiny("qwen2_vl"), arms=["sft"])
    cfg.stage2.max_steps, cfg.stage2.learning_rate, cfg.stage2.eval_every = 24, 3e-3, 0
    experiment.run_experiment(store, cfg, name="learn")
    losses = [e["data"]["loss"] for e in store.events("learn/sft/s0", kind="loss")]
    assert sum(losses[-4:]) < 0.85 * sum(losses[:4])  # frozen or broken gradients would not move it


def test_qlora_nf4_trains_on_cpu(store, dataset, tiny):
    ingest(store, dataset)
    cfg = small_config(tiny("smolvlm"), arms=["sft"])
    cfg.model.quantization = "nf4"
    cfg.stage2.eval_every = 0
    experiment.run_experiment(store, cfg, name="qlora")
    run = store.run("qlora/sft/s0")
    assert run["status"] == "done" and run["metrics"]["quantized_4bit"] is True
    assert [e["done"] for e in store.events(run["id"], kind="loss")] == [1, 2, 3]
