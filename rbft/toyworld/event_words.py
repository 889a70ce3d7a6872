"""Event words weighed up in the caption loss (issue 33, build 17).

Most of a caption's tokens are its connectives and the things' names ("At first, the small red
circle ..."), which the language model learns from the text alone; the few that say what happened
("bounces", "touches", "moves left") are the ones it can only get from the image tokens. So the
caption stage can give each event phrase's tokens a weight above 1, rarer kinds more
(`weight` x sqrt(commonest kind's count / this kind's count) over the training answers), and the
loss is the weighted mean of the answer tokens' cross-entropies.
"""
from __future__ import annotations

import math
import re
from collections import Counter

import torch

from .truth import EVENT_WORDS


def event_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, kind) of each phrase in `text` that the caption scorer reads as an event."""
    return [(m.start(), m.end(), kind) for kind, pattern in EVENT_WORDS.items()
            for m in re.finditer(pattern, text.lower())]


def kind_weights(answers: list[str], weight: float) -> dict[str, float]:
    """Each event kind's token weight: `weight` for the commonest kind in the answers, more for rarer ones."""
    counts = Counter(kind for a in answers for _, _, kind in event_spans(a))
    if not counts:
        return {}
    most = max(counts.values())
    return {kind: weight * math.sqrt(most / n) for kind, n in counts.items()}


def token_weights(tokenizer, text: str, start: int, weights: dict[str, float]) -> torch.Tensor:
    """One weight per token of `tokenizer(text)`: the weight of the event kind whose phrase (found in
    text[start:], the answer) a token overlaps, else 1."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    spans = [(start + a, start + b, weights.get(kind, 1.0)) for a, b, kind in event_spans(text[start:])]
    out = torch.ones(len(enc["input_ids"]))
    for i, (a, b) in enumerate(enc["offset_mapping"]):
        for s, e, w in spans:
            if a < e and s < b:
                out[i] = max(out[i].item(), w)
    return out


def weighted_answer_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The weighted mean of the next-token cross-entropies where labels are not -100 (fp32)."""
    logits, labels, weights = logits[:, :-1].float(), labels[:, 1:], weights[:, 1:].float()
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                           ignore_index=-100, reduction="none").view_as(weights)
    on = (labels != -100).float()
    return (ce * weights * on).sum() / (weights * on).sum().clamp(min=1e-6)
