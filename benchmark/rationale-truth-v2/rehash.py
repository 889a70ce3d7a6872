"""Point the committed project at a split built again (`python -m rbft testbed floor ...`).

The testbed renders the same pixels every time, but OpenCV's WebM muxer writes a fresh segment id
into each file, so the files' sha256 differ from the ones in project.db and `ingest` would add the
clips a second time under new ids (and break the pairing with the finished runs). This script first
checks that the files on disk are the clips the finished runs saw: zero-shot's scores of some test
clips, computed again from these files, must equal the stored ones. Then it stores the files' new
sha256 under the same video ids. Run from the repository root:

    PYTHONPATH=. python benchmark/rationale-truth-v2/rehash.py [--clips 12]
"""
import argparse
from pathlib import Path

from rbft import models
from rbft.config import FrameConfig, ModelConfig
from rbft.evaluate import classify
from rbft.frames import file_sha256
from rbft.project import open_project

HERE = Path(__file__).parent
ZERO_SHOT = "exp-9bd502a6/zero_shot/s0"

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--clips", type=int, default=12, help="test clips whose zero-shot scores are checked")
args = parser.parse_args()

store = open_project(HERE / "project")
videos = store.videos()
missing = [v["path"] for v in videos if not store.resolve(v["path"]).exists()]
if missing:
    raise SystemExit(f"{len(missing)} clips are missing, e.g. {missing[0]}: build the split first")
stale = {v["id"]: file_sha256(store.resolve(v["path"])) for v in videos}
stale = {vid: sha for vid, sha in stale.items() if sha != store.video(vid)["sha256"]}
print(f"{len(videos)} clips, {len(stale)} with new file bytes")
if stale:
    run = store.run(ZERO_SHOT)
    stored = {p["video_id"]: p["scores"] for p in store.predictions(ZERO_SHOT)}
    test = store.videos(split="test")[: args.clips]
    lm = models.load(ModelConfig(**run["config"]["model"]))
    rows = classify(store, lm, test, FrameConfig(**run["config"]["frames"]))
    gap = max(abs(r["scores"][c] - stored[r["video_id"]][c]) for r in rows for c in r["scores"])
    print(f"zero-shot on {len(rows)} test clips from these files: max |score - stored| = {gap:.2e}")
    if gap > 1e-4:
        raise SystemExit("these are not the clips the finished runs saw: nothing changed")
    with store.db.conn:
        for vid, sha in stale.items():
            store.db["videos"].update(vid, {"sha256": sha})
    print(f"stored the new sha256 of {len(stale)} clips (ids unchanged)")
