"""Stage I generation: a rationale for every training video, the true label given as a hint.

Resumable: each rationale is stored as soon as its batch is done, and videos that
already have one for this (prompt version, model) are skipped.
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


def generate_rationales(store: Store, lm: models.LoadedModel, frames: FrameConfig,
                        gen: GenerationConfig, prompt_id: int | None = None,
                        video_ids: list[str] | None = None, split: str | None = "train",
                        overwrite: bool = False, on_event: EventSink = ignore) -> dict:
    """Write rationales to the store; returns {prompt_id, generated, skipped, seconds}."""
    prompt = project.prompt(store, "rationale", prompt_id)
    videos = store.videos(split=split) if video_ids is None else [store.video(v) for v in video_ids]
    done = {r["video_id"] for r in store.rationales(prompt["id"], lm.name)}
    todo = [v for v in videos if overwrite or v["id"] not in done]
    skipped = len(videos) - len(todo)
    if skipped:
        on_event(Event("log", "generate", message=f"{skipped} videos already have a rationale "
                                                  f"from prompt v{prompt['version']}; skipped"))
    settings = {"generation": asdict(gen), "frames": asdict(frames), **models.model_info(lm),
                "prompt_version": prompt["version"]}
    texts = {v["id"]: project.render(store, "rationale", prompt["template"], label=v["label"])
             for v in todo}
    if todo:
        longest = max(todo, key=lambda v: len(texts[v["id"]]))
        check_context(lm, store, longest, texts[longest["id"]], frames, gen.max_new_tokens)
    start = time.time()
    progress = Progress(on_event, "generate", len(todo))
    for i in range(0, len(todo), gen.batch_size):
        batch = todo[i:i + gen.batch_size]
        clips = [project.clip(store, v, frames) for v in batch]
        outputs = models.generate(lm, [texts[v["id"]] for v in batch], clips, frames, gen)
        for video, text in zip(batch, outputs):
            store.save_rationale(video["id"], prompt["id"], lm.name, text, settings)
        progress.advance(len(batch), message=f"{progress.done + len(batch)}/{len(todo)} rationales")
    return {"prompt_id": prompt["id"], "generated": len(todo), "skipped": skipped,
            "seconds": time.time() - start}
