"""RB-FT Studio. `python app.py` opens the bundled sample project; `python app.py --project PATH` another.

Also the Hugging Face Spaces `app_file`. Binds to 127.0.0.1 unless told otherwise.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

HERE = Path(__file__).resolve().parent
SAMPLE = HERE / "projects" / "sample"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="RB-FT Studio: label videos with a fine-tuned vision-language model.")
    p.add_argument("--project", default=str(SAMPLE),
                   help="project folder (default: the bundled sample, created on first start); "
                        "other projects are folders beside it")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                   help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 exposes it "
                        "to your network, so put it behind a login or a firewall)")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)),
                   help="port (default 7860)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    from rbft.sample import create_sample
    from rbft.store import ProjectError
    from studio.app import create_app, launch

    project = Path(args.project).expanduser().resolve()
    try:
        if project == SAMPLE.resolve() and not (project / "project.db").exists():
            print(f"creating the sample project in {project} ...")
            print(create_sample(project).summary())
        demo = create_app(project)
    except ProjectError as e:
        raise SystemExit(f"error: {e}")
    print(f"RB-FT Studio on http://{args.host}:{args.port} (project {project}); "
          "use --host 0.0.0.0 to reach it from other machines.")
    launch(demo, project.parent, host=args.host, port=args.port,
           inbrowser=not args.no_browser and not os.environ.get("SPACE_ID"))


if __name__ == "__main__":
    main()
