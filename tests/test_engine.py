"""Stage I through a real inference server: `transformers serve` on 127.0.0.1 with the toy-world VLM,
against the same model in this process; a server killed mid-job, and the job resumed."""
import json
import socket

import numpy as np
import pytest
import torch

from rbft import data, models, project
from rbft.config import EngineConfig, FrameConfig, GenerationConfig, ModelConfig
from rbft.engine import EngineError, Server, messages, start_transformers_serve, wait_until_ready
from rbft.rationales import generate_rationales
from rbft.toyworld import shipped

pytestmark = pytest.mark.skipif(not shipped.available(), reason="the toy-world VLM cannot be assembled here")
FRAMES = FrameConfig(num_frames=4, max_side=64)
GEN = GenerationConfig(max_new_tokens=16)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def toyworld():
    return models.load(ModelConfig(model="toyworld", quantization="none"))


def serve(lm, tmp_path, port=None):
    """A server for the toy-world VLM in the loaded model's compute type; returns (process, url)."""
    port = port or free_port()
    proc = start_transformers_serve(models.resolve("toyworld"), port, "--dtype", str(lm.dtype).removeprefix("torch."),
                                    log=tmp_path / "serve.log")
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_until_ready(url, proc)
    except EngineError:
        proc.kill()
        raise
    return proc, url


@pytest.fixture
def toy_project(tmp_path, dataset):
    store = project.open_project(tmp_path / "project")
    data.ingest(store, dataset, seed=0)
    project.configure(store, domain="shapes moving on a screen")
    return store


@torch.no_grad()
def in_process_answer(lm, request: list[dict], gen: GenerationConfig) -> str:
    """The server's request run here by hand: the same messages, frames as images, greedy."""
    import base64
    import io

    from PIL import Image
    parts = []
    for part in request[0]["content"]:
        if part["type"] == "image_url":
            raw = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
            parts.append({"type": "image", "image": Image.open(io.BytesIO(raw)).convert("RGB")})
        else:
            parts.append({"type": "text", "text": part["text"]})
    inputs = lm.processor.apply_chat_template([{"role": "user", "content": parts}], add_generation_prompt=True,
                                              tokenize=True, return_dict=True, return_tensors="pt")
    inputs = {k: v.to(lm.dtype) if v.is_floating_point() else v for k, v in inputs.items()}
    out = lm.model.generate(**inputs, max_new_tokens=gen.max_new_tokens, do_sample=False,
                            repetition_penalty=gen.repetition_penalty)
    return lm.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def test_server_rationales_are_what_the_same_request_gives_in_process(toyworld, toy_project, tmp_path):
    proc, url = serve(toyworld, tmp_path)
    try:
        engine = Server(EngineConfig(engine="server", base_url=url, in_flight=4))
        assert engine.kind == "transformers" and engine.name == str(models.resolve("toyworld"))
        result = generate_rationales(toy_project, engine, FRAMES, GEN)
    finally:
        proc.kill()
    train = toy_project.videos(split="train")
    assert result["generated"] == len(train) and not result["failed"]
    rows = {r["video_id"]: r for r in toy_project.rationales(model=engine.name)}
    assert set(rows) == {v["id"] for v in train}
    settings = [json.loads(r["settings"]) for r in rows.values()]
    assert all(s["engine"] == "server" and s["server"] == url and s["model"] == engine.name for s in settings)
    prompt = project.prompt(toy_project, "rationale")
    for video in train[:3]:
        text = project.render(toy_project, "rationale", prompt["template"], label=video["label"])
        request = messages(text, project.clip(toy_project, video, FRAMES))
        assert rows[video["id"]]["text"] == in_process_answer(toyworld, request, GEN)


def test_a_killed_server_keeps_what_it_finished_and_resume_asks_for_the_rest(toyworld, toy_project, tmp_path):
    port = free_port()
    proc, url = serve(toyworld, tmp_path, port)
    cfg = EngineConfig(engine="server", base_url=url, in_flight=1, retries=1, timeout_s=60)
    engine = Server(cfg)
    train = toy_project.videos(split="train")

    def kill_after_two(event):
        if event.kind == "progress" and event.stage == "generate" and event.done == 2:
            proc.kill()
            proc.wait()
    try:
        first = generate_rationales(toy_project, engine, FRAMES, GEN, on_event=kill_after_two)
    finally:
        proc.kill()
    assert first["generated"] == 2 and len(first["failed"]) == len(train) - 2
    assert all("cannot reach the server" in reason for reason in first["failed"].values())
    kept = {r["video_id"]: r["text"] for r in toy_project.rationales(model=engine.name)}
    assert len(kept) == 2 and not set(kept) & set(first["failed"])

    proc, url = serve(toyworld, tmp_path, port)
    try:
        second = generate_rationales(toy_project, Server(cfg), FRAMES, GEN)
    finally:
        proc.kill()
    assert second["skipped"] == 2 and second["generated"] == len(train) - 2 and not second["failed"]
    after = {r["video_id"]: r["text"] for r in toy_project.rationales(model=engine.name)}
    assert set(after) == {v["id"] for v in train}
    assert all(after[v] == kept[v] for v in kept)   # nothing finished was asked for again


def test_a_server_that_cannot_be_used_says_why(tmp_path):
    with pytest.raises(EngineError, match="cannot reach the server"):
        Server(EngineConfig(engine="server", base_url=f"http://127.0.0.1:{free_port()}/v1", retries=0))
    with pytest.raises(EngineError, match="needs --base-url"):
        Server(EngineConfig(engine="server"))


def test_frames_go_to_the_server_lossless():
    import base64

    import cv2

    from rbft.engine import png_url
    from rbft.frames import Clip
    frame = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    raw = base64.b64decode(png_url(frame).split(",", 1)[1])
    back = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert np.array_equal(back, frame)
    parts = messages("what happens?", Clip(np.stack([frame] * 3), 8.0, 3, [0, 1, 2]))[0]["content"]
    assert [p["type"] for p in parts] == ["image_url"] * 3 + ["text"]


def test_the_cli_names_a_server_it_cannot_reach(tmp_path, dataset):
    import subprocess
    import sys
    store = project.open_project(tmp_path / "p")
    data.ingest(store, dataset, seed=0)
    url = f"http://127.0.0.1:{free_port()}/v1"
    done = subprocess.run([sys.executable, "-m", "rbft", "generate", "--project", str(tmp_path / "p"), "--engine",
                           "server", "--base-url", url, "--retries", "0"], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and f"the server at {url} cannot be used: cannot reach the server" in done.stderr
    assert not store.rationales()


def test_the_budget_preview_says_where_rationales_are_written(store):
    from rbft.config import ExperimentConfig
    from rbft.recipes.budget import command_line, generation_place
    cfg = ExperimentConfig()
    assert generation_place(cfg).startswith(f"written in this process by {cfg.model.model}")
    cfg.engine = EngineConfig(engine="server", base_url="http://gpu-box:8000/v1", in_flight=16)
    assert "server at http://gpu-box:8000/v1" in generation_place(cfg) and "16 requests in flight" in generation_place(cfg)
    line = command_line(store, cfg)
    assert "--engine server --base-url http://gpu-box:8000/v1 --in-flight 16" in line


def test_each_server_kind_gets_the_sampling_fields_it_reads():
    from rbft.engine import _kind, sampling
    greedy = GenerationConfig(max_new_tokens=32, repetition_penalty=1.05)
    body, extra = sampling(greedy, "vllm")
    assert body["temperature"] == 0.0 and "top_p" not in body and extra == {"repetition_penalty": 1.05}
    body, extra = sampling(greedy, "transformers")   # it refuses unknown fields (HTTP 422)
    assert extra == {} and abs(body["frequency_penalty"] - 0.05) < 1e-9 and body["max_tokens"] == 32
    body, _ = sampling(GenerationConfig(do_sample=True, temperature=0.7, top_p=0.9, seed=3), "sglang")
    assert (body["temperature"], body["top_p"], body["seed"]) == (0.7, 0.9, 3)
    assert [_kind(o) for o in ("vllm", "sglang", "local", "", "acme")] == ["vllm", "sglang", "transformers",
                                                                         "transformers", "openai"]


def test_video_url_sends_the_sampled_frames_as_one_short_video():
    import base64

    import cv2

    from rbft.frames import Clip
    frames = np.zeros((4, 64, 64, 3), np.uint8)
    for i in range(4):
        frames[i, :, 16 * i:16 * i + 16] = 255
    parts = messages("what happens?", Clip(frames, 8.0, 16, [0, 5, 10, 15]), "video_url")[0]["content"]
    assert [p["type"] for p in parts] == ["video_url", "text"]
    url = parts[0]["video_url"]["url"]
    assert url.startswith("data:video/mp4;base64,")
    import tempfile
    with tempfile.NamedTemporaryFile(suffix=".mp4") as f:
        f.write(base64.b64decode(url.split(",", 1)[1]))
        f.flush()
        cap = cv2.VideoCapture(f.name)
        decoded = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            decoded.append(frame)
    assert len(decoded) == 4
    assert all(np.argmax(d.mean((0, 2))[::16]) == i for i, d in enumerate(decoded))   # the bright band moves


def test_pool_labels_are_scored_here_and_their_rationales_written_by_the_server(toyworld, toy_project, tmp_path):
    from rbft.pool import label_pool
    from rbft.synthetic import render_clip, write_video
    for i in range(3):
        write_video(tmp_path / "unlabelled" / f"clip_{i}.mp4", render_clip(("left", "right")[i % 2], 700 + i, 64, 16))
    data.ingest(toy_project, tmp_path / "unlabelled", pool=True)
    cfg = project.settings(toy_project)
    cfg.frames = FRAMES
    project.save_settings(toy_project, cfg)
    proc, url = serve(toyworld, tmp_path)
    try:
        result = label_pool(toy_project, "base:toyworld", rationale=True, max_new_tokens=GEN.max_new_tokens,
                            engine=Server(EngineConfig(engine="server", base_url=url, in_flight=3)))
    finally:
        proc.kill()
    assert result["pool"] == 3
    rows = {r["video_id"]: r for r in toy_project.pool_predictions("base:toyworld")}
    describe = project.render(toy_project, "describe")
    for video in toy_project.videos(split="pool"):
        assert rows[video["id"]]["pred"] in toy_project.labels()          # scored here, by the run
        request = messages(describe, project.clip(toy_project, video, FRAMES))
        assert rows[video["id"]]["rationale"] == in_process_answer(toyworld, request, GEN)   # written there


def test_a_server_address_without_the_server_engine_is_refused():
    from rbft.engine import server_for
    assert server_for(EngineConfig()) is None
    with pytest.raises(EngineError, match="add --engine server"):
        server_for(EngineConfig(base_url="http://127.0.0.1:8000/v1"))
