"""RB-FT Studio. `python app.py` opens the bundled sample project; `python app.py --project PATH` another.

Also the Hugging Face Spaces `app_file`. Binds to 127.0.0.1 unless told otherwise. Projects live in
`projects/` beside this file, or in RBFT_PROJECTS, or in a Space's persistent storage (/data).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

HERE = Path(__file__).resolve().parent


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="RB-FT Studio: label videos with a fine-tuned vision-language model.")
    p.add_argument("--project", default=None,
                   help="project folder (default: the bundled sample, created on first start in the projects "
                        "folder: projects/ here, RBFT_PROJECTS, or /data/rbft-projects on a Space with "
                        "persistent storage); other projects are folders beside it")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                   help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 exposes it "
                        "to your network, so put it behind a login or a firewall)")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)),
                   help="port (default 7860)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    from rbft.recipes.sample import create_sample
    from rbft.recipes.space import storage
    from rbft.store import ProjectError
    from rbft.toyworld.shipped import fetch_if_missing
    from studio.app import create_app, launch

    where = storage(HERE / "projects")
    print(where.note())
    sample = where.root / "sample"
    project = Path(args.project).expanduser().resolve() if args.project else sample
    try:
        fetch_if_missing()   # the toy-world VLM's language model, where only requirements.txt is installed
        if project == sample and not (project / "project.db").exists():
            print(f"creating the sample project in {project} ...")
            print(create_sample(project).summary())
        demo = create_app(project, storage=where)
    except ProjectError as e:
        raise SystemExit(f"error: {e}")
    print(f"RB-FT Studio on http://{args.host}:{args.port} (project {project}); "
          "use --host 0.0.0.0 to reach it from other machines.")
    launch(demo, project.parent, host=args.host, port=args.port,
           inbrowser=not args.no_browser and not os.environ.get("SPACE_ID"))


if __name__ == "__main__":
    main()
