"""RB-FT: rationale-bootstrapped fine-tuning of vision-language models for video classification.

The library behind RB-FT Studio: no UI code here (`import rbft` never imports gradio).
Components in this folder (store, data, frames, prompts, models, train, evaluate, quality, ...);
what composes them into runs in `rbft.recipes`; the toy world in `rbft.toyworld`; the command
line in `rbft.cli`. docs/architecture.md draws the layers.
"""
__version__ = "0.1.0"

import logging as _logging

# bitsandbytes, imported by peft, asks on CPUs with avx512_bf16 for a kernel it downloads from the
# Hub (`pip install kernels`), at every start. We never run 4-bit on a CPU (LoRA in the CPU's float
# type instead: rbft.models), so that warning only misleads; errors from it still show.
_logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(_logging.ERROR)
