"""Where each toy-world family keeps what the build trains, and how its image tokens lie over a clip.

SmolVLM (rbft.toyworld.base) gives each frame 4 x 4 tokens; Qwen2.5-VL (rbft.toyworld.base_qwen)
gives each pair of frames 4 x 4 tokens, both in row-major order. So the caption stage's per-token
targets are the same function of the frames a token row stands for: every frame, or the first of
each pair.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

FAMILIES = ("qwen2_5_vl", "smolvlm")


@dataclass(frozen=True)
class Layout:
    family: str
    tower: str              # the module name that ends the vision tower's path
    connector: str          # ... and the connector's (Qwen's merger lies inside its tower)
    frames_per_token: int   # frames one image token stands for in time
    token_key: str          # the config's id of the token that holds an image token's place
    side: int = 4           # image tokens per frame side
    image_size: int = 128

    def token_frames(self, indices):
        """The frames the model sees -> the frame each row of image tokens is read against."""
        return list(indices)[::self.frames_per_token]

    def trained_modules(self, with_tower: bool, with_connector: bool = True) -> list[str]:
        if self.family == "qwen2_5_vl":   # the merger lies inside the tower
            return [self.tower] if with_tower else [self.connector] if with_connector else []
        return ([self.connector] if with_connector else []) + ([self.tower] if with_tower else [])

    def assemble(self, out_dir: Path, seed: int = 0) -> Path:
        if self.family == "qwen2_5_vl":
            from .base_qwen import assemble_base
        else:
            from .base import assemble_base
        return assemble_base(out_dir, seed=seed)


LAYOUTS = {
    "smolvlm": Layout("smolvlm", "vision_model", "connector", 1, "image_token_id"),
    "qwen2_5_vl": Layout("qwen2_5_vl", "visual", "merger", 2, "video_token_id"),
}


def layout(family: str) -> Layout:
    if family not in LAYOUTS:
        raise ValueError(f"unknown toy-world family {family!r}: one of {', '.join(FAMILIES)}")
    return LAYOUTS[family]


def layout_of(base: str | Path) -> Layout:
    """The layout of an assembled base folder (older SmolVLM bases do not say their family)."""
    return layout(json.loads((Path(base) / "rbft_toyvlm.json").read_text()).get("family", "smolvlm"))


def find_module(lm, suffix: str):
    """The first module of a loaded model whose name ends with `suffix` (a Layout's tower or connector)."""
    return next(m for n, m in lm.model.named_modules() if n.endswith(suffix))
