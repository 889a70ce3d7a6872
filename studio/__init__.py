"""RB-FT Studio: the Gradio app over the `rbft` library. Wiring only: every step calls `rbft`."""
