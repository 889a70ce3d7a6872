"""Stage I generation: a rationale for every training video, the true label given as a hint.

Resumable: each rationale is stored as soon as it is written (in process: its batch; on a server:
its request), and videos that already have one for this (prompt version, model) are skipped. A clip
the server fails on is reported with the reason and left for the next run.
"""
from __future__ import annotations

import time
from dataclasses import asdict

from . import models, project
from .config import FrameConfig, GenerationConfig
from .events import Event, EventSink, Progress, ignore
from .prompts import PromptError
from .store import Store


def check_context(lm: models.LoadedModel, store: Store, video: dict, prompt_text: str,
                  frames: FrameConfig, max_new_tokens: int) -> int:
    """Tokens of prompt + video + answer; a clear error before any generation if over the context."""
    feats = models.encode(lm, prompt_text, project.clip(store, video, frames), frames)
    used = int(feats["input_ids"].shape[0]) + max_new_tokens
    config = getattr(lm.model.config, "text_config", lm.model.config)
    limit = getattr(config, "max_position_embeddings", None)
    if limit and used > limit:
        raise PromptError(f"the prompt with its video is {used - max_new_tokens} tokens and the answer may "
                          f"add {max_new_tokens}: over the model's context of {limit} tokens. Shorten the "
                          "template or the class descriptions, or use fewer or smaller frames.")
    return used


def generate_rationales(store: Store, lm, frames: FrameConfig,
                        gen: GenerationConfig, prompt_id: int | None = None,
                        video_ids: list[str] | None = None, split: str | None = "train",
                        overwrite: bool = False, on_event: EventSink = ignore) -> dict:
    """Write rationales to the store with `lm`, a loaded model or an engine (rbft.engine); returns
    {prompt_id, generated, skipped, failed: {video id: reason}, seconds}."""
    from .engine import InProcess
    engine = InProcess(lm) if isinstance(lm, models.LoadedModel) else lm
    prompt = project.prompt(store, "rationale", prompt_id)
    videos = store.videos(split=split) if video_ids is None else [store.video(v) for v in video_ids]
    done = {r["video_id"] for r in store.rationales(prompt["id"], engine.name)}
    todo = [v for v in videos if overwrite or v["id"] not in done]
    skipped = len(videos) - len(todo)
    if skipped:
        on_event(Event("log", "generate", message=f"{skipped} videos already have a rationale "
                                                  f"from prompt v{prompt['version']}; skipped"))
    settings = {"generation": asdict(gen), "frames": asdict(frames), **engine.info(),
                "prompt_version": prompt["version"]}
    texts = {v["id"]: project.render(store, "rationale", prompt["template"], label=v["label"])
             for v in todo}
    if todo and isinstance(engine, InProcess):   # a server says so itself, per clip
        longest = max(todo, key=lambda v: len(texts[v["id"]]))
        check_context(engine.lm, store, longest, texts[longest["id"]], frames, gen.max_new_tokens)
    start = time.time()
    progress = Progress(on_event, "generate", len(todo))
    failed: dict[str, str] = {}

    def finished(i: int, text: str | None, reason: str | None) -> None:
        video = todo[i]
        if reason is None:
            store.save_rationale(video["id"], prompt["id"], engine.name, text, settings)
        else:
            failed[video["id"]] = reason
            on_event(Event("log", "generate", message=f"{video['id']}: no rationale: {reason}"))
        progress.advance(message=f"{progress.done + 1}/{len(todo)} rationales"
                                 + (f", {len(failed)} failed" if failed else ""))

    requests = [(texts[v["id"]], lambda v=v: project.clip(store, v, frames)) for v in todo]
    if todo:
        on_event(Event("log", "generate", message=f"{len(todo)} rationales {engine.where}"))
    engine.run(requests, frames, gen, finished)
    if failed:
        on_event(Event("log", "generate", message=f"{len(failed)} of {len(todo)} clips got no rationale; "
                                                  "run again to ask for exactly those"))
    return {"prompt_id": prompt["id"], "generated": len(todo) - len(failed), "skipped": skipped,
            "failed": failed, "seconds": time.time() - start}
