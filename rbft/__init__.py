"""RB-FT: rationale-bootstrapped fine-tuning of vision-language models for video classification.

The library behind RB-FT Studio: no UI code here (`import rbft` never imports gradio).
Components in this folder (store, data, frames, prompts, models, train, evaluate, quality, ...);
what composes them into runs in `rbft.recipes`; the toy world in `rbft.toyworld`; the command
line in `rbft.cli`. docs/architecture.md draws the layers.
"""
__version__ = "0.1.0"
