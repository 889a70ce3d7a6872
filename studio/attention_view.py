"""Where the model looked, on the Rationales, Predict and Label tabs: the frames it saw under the
attention of the class it names, or of one sentence of the rationale shown (rbft.attention)."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from rbft.attention import CLASS_CHOICE, overlays, sentences, where_it_looked

from .gpu import gpu


@dataclass
class Panel:
    look_from: gr.Dropdown
    button: gr.Button
    share: gr.Markdown
    gallery: gr.Gallery


def panel(elem_prefix: str) -> Panel:
    with gr.Accordion("Where the model looked", open=False):
        with gr.Row():
            look_from = gr.Dropdown([CLASS_CHOICE], value=CLASS_CHOICE, label="Look from", scale=4, allow_custom_value=True,
                                    info="the class it names, or a sentence of the rationale shown",
                                    elem_id=f"{elem_prefix}-look-from")
            button = gr.Button("Show where it looked", scale=1, elem_id=f"{elem_prefix}-look")
        share = gr.Markdown(elem_id=f"{elem_prefix}-look-share")
        gallery = gr.Gallery(label="Each frame under the answer's attention (brighter: more)", columns=8,
                             height=220, elem_id=f"{elem_prefix}-look-gallery")
    return Panel(look_from, button, share, gallery)


def choices(rationale: str):
    """The Look-from choices for a rationale just shown."""
    return gr.Dropdown(choices=[CLASS_CHOICE] + sentences(rationale), value=CLASS_CHOICE)


@gpu(duration=120)
def look(store, lm, clip, frames, choice: str, rationale: str):
    """(the markdown line, the gallery) for one clip."""
    looked_from, result = where_it_looked(store, lm, clip, frames, choice or CLASS_CHOICE, rationale or "")
    line = (f"From **{looked_from}** ({result.tokens} tokens, layers {result.layers[0]}-{result.layers[1]}): "
            f"**{result.visual_share:.0%}** of its attention went to the video at all.")
    return line, overlays(clip, result)
