"""Where text is generated: in this process (models.generate, in fixed batches), or on an inference
server that speaks OpenAI's chat completions API (vLLM, SGLang, `transformers serve`).

A server batches continuously and keeps its attention cache paged, so it is fed many requests at
once (EngineConfig.in_flight) and does the scheduling itself. A request that fails after the client's
retries (openai's own, with backoff) is reported with the server's reason and the rest go on; the
caller stores each answer as it arrives, so a stopped job keeps what it finished and a resumed one
asks only for what is missing. The API key is read from the environment variable the config names,
never stored or logged.
"""
from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from .config import EngineConfig, FrameConfig, GenerationConfig
from .frames import Clip

# (prompt, a function that loads its clip): clips are loaded by the worker that sends them, so that
# thousands of requests do not hold thousands of decoded clips
Request = tuple[str, Callable[[], Clip]]
# called once per request as it finishes: (index, text or None, the reason it failed or None)
OnDone = Callable[[int, str | None, str | None], None]


class EngineError(RuntimeError):
    """A server that cannot be used at all (unreachable, no such model), with what to do about it."""


def png_url(frame: np.ndarray) -> str:
    """An RGB frame as a lossless data URL: the server sees exactly the pixels sampled here."""
    import cv2
    ok, data = cv2.imencode(".png", frame[..., ::-1])
    if not ok:
        raise ValueError("cannot encode a frame as PNG")
    return "data:image/png;base64," + base64.b64encode(data.tobytes()).decode()


def video_url(clip: Clip) -> str:
    """The sampled frames as a short mp4 data URL (vLLM's and SGLang's `video_url`); lossy, unlike the
    PNG frames, and the server samples it again (all of it, at most its own frame limit)."""
    from .synthetic import write_video
    with tempfile.TemporaryDirectory() as tmp:
        path = write_video(Path(tmp) / "clip.mp4", clip.frames[..., ::-1], fps=max(clip.fps, 1.0))
        return "data:video/mp4;base64," + base64.b64encode(path.read_bytes()).decode()


def messages(prompt: str, clip: Clip | None, frames_as: str = "images") -> list[dict]:
    """One user turn as the studio sends it in process: the video first, then the prompt."""
    parts: list[dict] = []
    if clip is not None and frames_as == "video_url":
        parts.append({"type": "video_url", "video_url": {"url": video_url(clip)}})
    elif clip is not None:
        parts += [{"type": "image_url", "image_url": {"url": png_url(f)}} for f in clip.frames]
    return [{"role": "user", "content": parts + [{"type": "text", "text": prompt}]}]


def sampling(gen: GenerationConfig, kind: str) -> tuple[dict, dict]:
    """The request's sampling settings (greedy is temperature 0) and the fields outside OpenAI's API.
    vLLM and SGLang take `repetition_penalty` as given; `transformers serve` refuses unknown fields
    and reads frequency_penalty as repetition_penalty - 1."""
    body = {"max_tokens": gen.max_new_tokens, "temperature": gen.temperature if gen.do_sample else 0.0,
            "seed": gen.seed}
    if gen.do_sample:
        body["top_p"] = gen.top_p
    if kind == "transformers":
        return {**body, "frequency_penalty": gen.repetition_penalty - 1.0}, {}
    return body, {"repetition_penalty": gen.repetition_penalty}


def failure_reason(e: BaseException) -> str:
    """What a user reads beside a clip that got no answer."""
    import openai
    if isinstance(e, openai.APIStatusError):
        return f"the server answered HTTP {e.status_code}: {e.message}"
    if isinstance(e, openai.APITimeoutError):
        return "the server did not answer in time (raise --timeout-s or lower --in-flight)"
    if isinstance(e, openai.APIConnectionError):
        return f"cannot reach the server: {e.__cause__ or e}"
    return f"{type(e).__name__}: {e}"


class InProcess:
    """models.generate on a loaded model, gen.batch_size clips a call (left padded)."""

    where = "in this process"

    def __init__(self, lm):
        self.lm = lm
        self.name = lm.name

    def info(self) -> dict:
        from . import models
        return {**models.model_info(self.lm), "engine": "in-process"}

    def run(self, requests: Sequence[Request], frames: FrameConfig, gen: GenerationConfig, on_done: OnDone) -> None:
        from . import models
        for start in range(0, len(requests), gen.batch_size):
            batch = requests[start:start + gen.batch_size]
            texts = models.generate(self.lm, [p for p, _ in batch], [load() for _, load in batch], frames, gen)
            for i, text in enumerate(texts):
                on_done(start + i, text, None)


class Server:
    """An OpenAI-compatible inference server, `in_flight` requests at a time."""

    def __init__(self, cfg: EngineConfig):
        import openai
        if not cfg.base_url:
            raise EngineError("the server engine needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        self.cfg = cfg
        self.client = openai.OpenAI(base_url=cfg.base_url, api_key=os.environ.get(cfg.api_key_env) or "EMPTY",
                                    max_retries=cfg.retries, timeout=cfg.timeout_s)
        try:
            listed = self.client.models.list().data
        except openai.OpenAIError as e:
            raise EngineError(f"the server at {cfg.base_url} cannot be used: {failure_reason(e)}") from None
        names = [m.id for m in listed]
        if cfg.server_model and names and cfg.server_model not in names:
            raise EngineError(f"the server at {cfg.base_url} has no model {cfg.server_model!r}; it serves "
                              f"{', '.join(names)}")
        if not cfg.server_model and not names:
            raise EngineError(f"the server at {cfg.base_url} lists no model: give one with --server-model")
        self.name = cfg.server_model or names[0]
        owner = next((getattr(m, "owned_by", "") or "" for m in listed if m.id == self.name), "")
        self.kind = cfg.server_kind if cfg.server_kind != "auto" else _kind(owner)
        self.where = f"on the server at {cfg.base_url} ({self.kind}, model {self.name})"

    def info(self) -> dict:
        return {"model": self.name, "engine": "server", "server": self.cfg.base_url, "server_kind": self.kind,
                "frames_as": self.cfg.frames_as}

    def complete(self, prompt: str, clip: Clip | None, gen: GenerationConfig) -> str:
        body, extra = sampling(gen, self.kind)
        answer = self.client.chat.completions.create(model=self.name, messages=messages(prompt, clip, self.cfg.frames_as),
                                                     extra_body=extra or None, **body)
        return (answer.choices[0].message.content or "").strip()

    def submit(self, requests: Sequence[Request], gen: GenerationConfig) -> list[Future]:
        """Start every request, `in_flight` at a time; each future gives its text or raises."""
        pool = ThreadPoolExecutor(max(1, self.cfg.in_flight))
        futures = [pool.submit(lambda r=r: self.complete(r[0], r[1](), gen)) for r in requests]
        pool.shutdown(wait=False)   # what is queued still runs
        return futures

    def run(self, requests: Sequence[Request], frames: FrameConfig, gen: GenerationConfig, on_done: OnDone) -> None:
        futures = {f: i for i, f in enumerate(self.submit(requests, gen))}
        for future in as_completed(futures):
            text, reason = outcome(future)
            on_done(futures[future], text, reason)


def outcome(future: Future) -> tuple[str | None, str | None]:
    """(text, None) or (None, the reason it failed): a failed request is recorded, the others go on."""
    try:
        return future.result(), None
    except Exception as e:
        return None, failure_reason(e)


def _kind(owned_by: str) -> str:
    """vLLM and SGLang name themselves as the owner of what they serve; transformers serve says "local"."""
    owned_by = owned_by.lower()
    return next((k for k in ("vllm", "sglang") if k in owned_by), "transformers" if owned_by in ("", "local", "huggingface") else "openai")


def server_for(cfg: EngineConfig) -> Server | None:
    """The server the settings name, or None for in-process generation; an address given without
    `--engine server` is an error, not silently ignored."""
    if cfg.engine == "server":
        return Server(cfg)
    if cfg.base_url:
        raise EngineError(f"a server address is given ({cfg.base_url}) but the engine is {cfg.engine}: "
                          "add --engine server, or leave the address out")
    return None


def engine_for(cfg: EngineConfig, load_model: Callable[[], object]):
    """The engine the settings ask for; the model is loaded only for in-process generation."""
    return server_for(cfg) or InProcess(load_model())


def start_transformers_serve(model: str | Path, port: int, *args: str, log: Path | None = None):
    """`transformers serve MODEL` on 127.0.0.1:port as a child process (its own `openai` dependency
    must be installed); wait_until_ready tells when it answers. For tests, the bench and trying the
    server engine on one machine."""
    import subprocess
    import sys
    code = "import sys; from transformers.cli.transformers import main; sys.argv[0] = 'transformers'; sys.exit(main())"
    out = open(log, "ab") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen([sys.executable, "-c", code, "serve", str(model), "--host", "127.0.0.1",
                                 "--port", str(port), *args], stdout=out, stderr=subprocess.STDOUT)
    finally:
        if log:
            out.close()   # the child has its own copy


def wait_until_ready(base_url: str, process=None, timeout_s: float = 180.0) -> None:
    """Until the server lists its models; an EngineError if it exits or the time runs out."""
    import time

    import httpx
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if process is not None and process.poll() is not None:
            raise EngineError(f"the server exited with code {process.returncode} before it answered")
        try:
            if httpx.get(base_url.rstrip("/") + "/models", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise EngineError(f"the server at {base_url} did not answer within {timeout_s:.0f} s")
