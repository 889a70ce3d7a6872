"""The merger's output norms before and after a caption stage (issue 33, builds 9 and 10: with --motion-path, "path" is the merged LoRA's own part): python benchmark/toyworld-qwen/merger_norms.py WORK [WORK ...]"""
import sys, torch
from pathlib import Path
from peft import PeftModel
from rbft import models
from rbft.config import ModelConfig
from rbft.toyworld import build as tb, sight_qwen, world
from rbft.toyworld.family import find_module
from rbft.frames import uniform_indices
for w in sys.argv[1:]:
    work = Path(w)
    lm = models.load(ModelConfig(model=str(work / "base"), quantization="none", dtype="auto"))
    tb.load_vision(lm, work / "sight" / tb.VISION_FILE)
    tb.load_connector(lm, work / "align" / tb.CONNECTOR_FILE)
    start = None
    with torch.no_grad():
        def norms():
            out = []
            for n in range(10):
                clip = world.render(800000 + n)
                ids = uniform_indices(len(clip.frames), 8)
                pv, grid = sight_qwen.patchify(clip.frames[ids])
                out.append(find_module(lm, "visual")(pv.to(lm.dtype), grid_thw=grid).pooler_output.float())
            return torch.cat(out)
        start = norms()
        lm.model = PeftModel.from_pretrained(lm.model, str(work / "run" / "adapter")).merge_and_unload()
        after = norms()
    emb = find_module(lm, "embed_tokens").weight.float().norm(dim=-1).median()
    print(work.name, "word-start token norm", round(float(start.norm(dim=-1).median()), 2), "after", round(float(after.norm(dim=-1).median()), 2),
          "max", round(float(after.norm(dim=-1).max()), 2), "embedding norm median", round(float(emb), 2),
          "path (after - start) norm median", round(float((after - start).norm(dim=-1).median()), 2),
          "cos(start, after) median", round(float(torch.nn.functional.cosine_similarity(start, after).median()), 3))
