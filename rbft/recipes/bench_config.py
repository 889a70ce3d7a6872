"""bench's settings and the one row shape every section reports."""
from __future__ import annotations

from dataclasses import dataclass, field

SECTIONS = ("machine", "toyworld", "frames", "generate", "train", "score", "train-memory", "gpu")


DEFAULT_SECTIONS = ("machine", "toyworld", "frames", "generate", "train", "score", "gpu")   # train-memory spawns 4 processes: on request


@dataclass
class BenchConfig:
    model: str = field(default="random:smolvlm-256m", metadata={"help": "model to time (Hub id, folder, tiny:*, random:*)"})
    num_frames: int = field(default=8, metadata={"help": "frames per video"})
    max_side: int = field(default=384, metadata={"help": "frame side in pixels"})
    repeats: int = field(default=3, metadata={"help": "runs per measurement (the median is reported)"})
    batch: int = field(default=4, metadata={"help": "videos per batched generation call"})
    new_tokens: int = field(default=32, metadata={"help": "tokens generated per rationale (forced, for equal work)"})
    train_steps: int = field(default=4, metadata={"help": "LoRA steps per training measurement"})
    train_frames: list = field(default_factory=lambda: [4, 8], metadata={"help": "frame counts for training"})
    classes: int = field(default=3, metadata={"help": "class options scored per video"})
    long_video_frames: int = field(default=3000, metadata={"help": "length of the long video (frames at 25 fps)"})
    sections: list = field(default_factory=lambda: list(DEFAULT_SECTIONS),
                           metadata={"help": f"what to measure, of {', '.join(SECTIONS)} (gpu: only where CUDA is)"})
    gpu_models: list = field(default_factory=lambda: ["random:smolvlm-256m"],
                             metadata={"help": "models the gpu section trains and generates with "
                                               "(random:<recommended model id> gives its real dimensions)"})
    gpu_quantization: str = field(default="nf4", metadata={"help": "loading for the gpu section: nf4 or none"})
    gpu_batches: list = field(default_factory=lambda: [1, 4, 8], metadata={"help": "fixed batches the gpu section trains at"})
    gpu_auto_batch: int = field(default=64, metadata={"help": "effective batch of the gpu section's auto row"})
    gpu_default_path: bool = field(default=True, metadata={"help": "also train on transformers' default (not lean) path, for the before/after"})
    gpu_checkpointing: str = field(default="auto", metadata={"help": "gradient checkpointing in the gpu section: auto (on), on or off"})
    gpu_generate: bool = field(default=True, metadata={"help": "also time generation in the gpu section"})
    gpu_peak_tflops: float = field(default=989.0, metadata={"help": "the card's dense bf16 peak (H200/H100 SXM: 989), "
                                                                   "for each gpu row's share of peak"})
    toyworld_steps: int = field(default=3, metadata={"help": "timed toy-world training steps per compute type"})
    toyworld_clips: int = field(default=25, metadata={"help": "held-out clips the toy-world section captions"})


def row(section: str, what: str, value: float, unit: str, target: str = "", met=None, note: str = "") -> dict:
    return {"section": section, "what": what, "value": value, "unit": unit, "target": target, "met": met,
            "note": note}
