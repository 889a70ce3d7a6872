"""Where the model looked (rbft.attention), on the tiny model of every family: when one visual token
takes all of the answer's attention, the map's maximum is that token's frame and place, found here
without the component's own mapping: from the pixels the processor put in that token (Qwen), or
from which of the tower's patches the connector reads into it (SmolVLM)."""
import numpy as np
import pytest
import torch

from rbft import models
from rbft.attention import attention_map, text_layers, visual_grid
from rbft.config import FrameConfig, ModelConfig
from rbft.frames import Clip

FAMILIES = ["smolvlm", "qwen2_vl", "qwen2_5_vl", "qwen3_vl"]
ANSWER = "The square moves left. Classification: left"


def position_coded_clip(n=4, side=64) -> Clip:
    """Red grows with the column, green with the row, blue with the frame: a patch's colour says where it is."""
    y, x = np.mgrid[0:side, 0:side]
    frames = np.stack([np.stack([x * 255 // side, y * 255 // side, np.full_like(x, 40 + 60 * f)], -1)
                       for f in range(n)]).astype(np.uint8)
    return Clip(frames, 8.0, 16, [0, 5, 10, 15])


@pytest.fixture(scope="module", params=FAMILIES)
def tiny_lm(request, tiny):
    tiny(request.param)
    return models.load(ModelConfig(model=f"tiny:{request.param}", quantization="none", dtype="float32"))


def all_attention_on(lm, position: int):
    """Hooks (run before the component's own) that give every query all its attention on `position`."""
    def hook(module, inputs, output):
        weights = torch.zeros_like(output[1])
        weights[..., position] = 1.0
        return (output[0], weights, *output[2:])
    return [a.register_forward_hook(hook) for a in text_layers(lm)]


def true_place(lm, feats, grid, j: int) -> tuple[int, int, int]:
    """(frame step, row, col) of visual token j, read without the component's mapping."""
    if lm.family.name == "smolvlm":
        # frames: the visual tokens come in one unbroken run per frame, in frame order
        ids = feats["input_ids"]
        runs = np.split(grid.positions.numpy(), np.nonzero(np.diff(grid.positions.numpy()) > 1)[0] + 1)
        step = next(i for i, r in enumerate(runs) if int(grid.positions[j]) in r)
        k = int(np.nonzero(runs[step] == int(grid.positions[j]))[0][0])
        # place: which of the tower's patches the connector reads into this token
        connector = lm.model.model.connector
        n_patches = (lm.model.config.vision_config.image_size // lm.model.config.vision_config.patch_size) ** 2
        x = torch.zeros(1, n_patches, lm.model.config.vision_config.hidden_size, requires_grad=True)
        connector(x)[0, k].sum().backward()
        used = torch.nonzero(x.grad[0].abs().sum(-1)).flatten().numpy()
        side = int(round(n_patches ** 0.5))
        rows, cols = used // side, used % side
        scale = side // grid.rows
        assert len(ids) and len(set(rows // scale)) == 1 and len(set(cols // scale)) == 1
        return step, int(rows[0] // scale), int(cols[0] // scale)
    # Qwen: the patches of merged token j are rows j*m*m .. of the processor's pixel values; their colour
    m = lm.model.config.vision_config.spatial_merge_size
    pixels = feats["pixel_values_videos"][j * m * m:(j + 1) * m * m]
    proc = lm.processor.video_processor
    c = pixels.reshape(len(pixels), 3, -1).mean((0, 2))
    rgb = (c * torch.tensor(proc.image_std) + torch.tensor(proc.image_mean)) * 255
    h, w = (int(v) for v in feats["video_grid_thw"][0][1:])
    col = int(rgb[0] / 255 * grid.cols)
    row = int(rgb[1] / 255 * grid.rows)
    # blue is 40 + 60 f: a pair of frames averages two, so its first frame is the nearest even f below
    frame = int(round((float(rgb[2]) - 40) / 60 - 0.5))
    return frame // grid.frames_per_token, row, col


def test_a_token_that_takes_all_the_attention_is_found_where_it_lies(tiny_lm):
    lm, frames, clip = tiny_lm, FrameConfig(4, 64), position_coded_clip()
    feats = models.encode(lm, "What moves?", clip, frames, answer=ANSWER)
    grid = visual_grid(lm, feats)
    assert len(grid.positions) == grid.steps * grid.rows * grid.cols
    for j in sorted({0, len(grid.positions) // 2 + 1, len(grid.positions) - 1}):
        handles = all_attention_on(lm, int(grid.positions[j]))
        try:
            result = attention_map(lm, "What moves?", clip, frames, ANSWER)
        finally:
            for h in handles:
                h.remove()
        assert result.visual_share == pytest.approx(1.0)
        found = np.unravel_index(result.maps.argmax(), result.maps.shape)
        assert tuple(int(v) for v in found) == true_place(lm, feats, grid, j), j
        assert result.maps.max() == pytest.approx(1.0)


def test_a_piece_of_the_answer_looks_from_its_own_tokens(tiny_lm):
    lm, frames, clip = tiny_lm, FrameConfig(4, 64), position_coded_clip()
    kernel = lm.model.config.get_text_config()._attn_implementation
    whole = attention_map(lm, "What moves?", clip, frames, ANSWER)
    piece = attention_map(lm, "What moves?", clip, frames, ANSWER, focus="Classification: left")
    assert 0 < piece.tokens < whole.tokens
    assert 0 <= piece.visual_share <= 1
    assert piece.maps.sum() == pytest.approx(piece.visual_share, abs=1e-5)   # the map is the video's share
    assert piece.frames == list(clip.indices[::1 if lm.family.name == "smolvlm" else 2])
    with pytest.raises(ValueError, match="not part of the answer"):
        attention_map(lm, "What moves?", clip, frames, ANSWER, focus="right")
    # the pass leaves the model as it was: its usual attention kernel, no hook
    assert lm.model.config.get_text_config()._attn_implementation == kernel
    assert all(not a._forward_hooks for a in text_layers(lm))


def test_the_cli_draws_where_the_model_looked(tmp_path, tiny, capsys):
    from rbft.cli import main
    from rbft.project import open_project
    project = str(tmp_path / "p")
    assert main(["sample", "--project", project, "--quiet"]) == 0
    video = open_project(project).videos(split="test")[0]["id"]
    out = tmp_path / "looked.png"
    assert main(["attention", "--project", project, "--video", video, "--model", "tiny:qwen2_5_vl", "--num-frames", "4",
                 "--max-side", "64", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert out.stat().st_size > 5000 and "visual share" in said and "layers 1-1" in said
    assert main(["attention", "--project", project, "--video", video, "--model", "tiny:smolvlm", "--num-frames", "4",
                 "--max-side", "64", "--answer", "It moves left. Then it stops.", "--focus", "Then it stops.",
                 "--out", str(out)]) == 0
    assert "'Then it stops.'" in capsys.readouterr().out


def test_the_studio_shows_where_the_model_looked(tmp_path, tiny):
    """Through the page's endpoints: the Rationales tab from the class and from a rationale sentence,
    and the Predict tab on an uploaded clip."""
    import socket

    from gradio_client import Client, handle_file

    from rbft.cli import main
    from rbft.project import open_project
    from studio.app import create_app, launch
    from studio.tabs.predict import BASE
    tiny("smolvlm")
    path = tmp_path / "projects" / "sample"
    assert main(["sample", "--project", str(path), "--quiet"]) == 0
    store = open_project(path)
    video = store.videos(split="train")[0]
    demo = create_app(path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _, url, _ = launch(demo, path.parent, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
    try:
        c = Client(url, verbose=False, httpx_kwargs={"timeout": 120})
        line, gallery = c.predict("tiny:smolvlm", 4, 64, video["id"], "the class it names", "",
                                  api_name="/attention_rationale")
        assert "of its attention went to the video" in line and len(gallery) == 4
        text = "A shape moves across. It stops at the edge."
        line, gallery = c.predict("tiny:smolvlm", 4, 64, video["id"], "It stops at the edge.", text,
                                  api_name="/attention_rationale")
        assert "From **It stops at the edge.**" in line and len(gallery) == 4
        with pytest.raises(Exception, match="pick a sentence"):
            c.predict("tiny:smolvlm", 4, 64, video["id"], "Not in it.", text, api_name="/attention_rationale")
        line, gallery = c.predict(handle_file(str(store.resolve(video["path"]))), BASE, "the class it names", "",
                                  api_name="/attention_predict")
        assert "of its attention went to the video" in line and gallery
    finally:
        demo.close()
