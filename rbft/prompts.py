"""Prompt templates: plain text with named {fields}, validated before any model runs.

Kinds:
  rationale  Stage I generation: the video's true label is given as a hint.
  describe   Stage I training: the same reasoning from the video alone.
  classify   Stage II, direct SFT, zero-shot and evaluation: answer with the class name.
  support    text only: which class does a rationale point to (the label-support stat).
"""
from __future__ import annotations

import re
import string
from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "prompts"
KINDS = ("rationale", "describe", "classify", "support")
FIELDS = {
    "rationale": {"domain", "classes", "class_definitions", "label"},
    "describe": {"domain", "classes", "class_definitions"},
    "classify": {"domain", "classes", "class_definitions"},
    "support": {"domain", "classes", "class_definitions", "rationale"},
}
REQUIRED = {"rationale": {"label"}, "support": {"rationale"}}
CLASSIFICATION_LINE = re.compile(r"^\s*\**\s*classification\s*\**\s*:.*$", re.IGNORECASE | re.MULTILINE)


class PromptError(ValueError):
    """A template that cannot be rendered, said plainly."""


def default_template(kind: str) -> str:
    if kind not in KINDS:
        raise PromptError(f"unknown prompt kind {kind!r}; kinds are {', '.join(KINDS)}")
    return (ASSETS / f"{kind}.txt").read_text()


def template_fields(template: str) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as e:
        raise PromptError(f"the template has a broken {{field}}: {e}. "
                          "Write a literal brace as {{ or }}.") from None


def validate(kind: str, template: str) -> None:
    if kind not in KINDS:
        raise PromptError(f"unknown prompt kind {kind!r}; kinds are {', '.join(KINDS)}")
    if not template.strip():
        raise PromptError(f"the {kind} template is empty")
    used = template_fields(template)
    unknown = used - FIELDS[kind]
    if "" in unknown:
        raise PromptError("the template has an empty {} field; name it, e.g. {label}")
    if unknown:
        raise PromptError(f"unknown field(s) {', '.join('{' + u + '}' for u in sorted(unknown))} in the "
                          f"{kind} template; available: "
                          f"{', '.join('{' + f + '}' for f in sorted(FIELDS[kind]))}")
    missing = REQUIRED.get(kind, set()) - used
    if missing:
        raise PromptError(f"the {kind} template must use {', '.join('{' + m + '}' for m in missing)}")


def class_definitions(classes: list[dict]) -> str:
    """'- name: description' lines; a class without a description is listed by name."""
    return "\n".join(f"- {c['name']}: {c['description']}" if c.get("description") else f"- {c['name']}"
                     for c in classes)


def render(kind: str, template: str, *, domain: str, classes: list[dict], **values: str) -> str:
    validate(kind, template)
    fields = {"domain": domain or "video classification",
              "classes": ", ".join(c["name"] for c in classes),
              "class_definitions": class_definitions(classes), **values}
    return template.format(**{k: fields[k] for k in template_fields(template)})


def strip_classification(text: str) -> str:
    """A rationale's reasoning without any 'Classification: ...' line."""
    return CLASSIFICATION_LINE.sub("", text).strip()


def rationale_target(rationale: str, label: str) -> str:
    """The Stage I training target: the reasoning, then the true label's classification line."""
    return f"{strip_classification(rationale)}\nClassification: {label}"
