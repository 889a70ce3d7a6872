"""RB-FT: rationale-bootstrapped fine-tuning of vision-language models for video classification.

The library behind RB-FT Studio: no UI code here (`import rbft` never imports gradio).
Modules: data (ingest), frames, prompts, models, rationales, quality, train, evaluate,
experiment, predict, export, store, events, config, testing (tiny offline models).
"""
__version__ = "0.1.0"
