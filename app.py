"""RB-FT Studio. `python app.py` opens the bundled sample project; `python app.py --project PATH` another.

Also the Hugging Face Spaces `app_file`. Binds to 127.0.0.1 unless told otherwise. Projects live in
`projects/` beside this file, or in RBFT_PROJECTS, or in a Space's persistent storage (/data).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import sysconfig
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
                        "to your network: then set RBFT_PASSWORD, or RBFT_EDITORS on a Space, to choose "
                        "who may change the studio (docs/studio.md); visitors see it read-only)")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)),
                   help="port (default 7860)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    return p.parse_args(argv)


def is_gradio_loop_report(unraisable) -> bool:
    """The one harmless report a Space's log would show: gradio.utils.safe_get_lock makes an event loop
    per lock when Blocks are built and never closes it; when the garbage collector takes such a loop,
    it may close the loop's self-pipe socket first, and then the loop's __del__ raises
    "ValueError: Invalid file descriptor: -1". Matched by its type, message, the function that raised it
    and every frame lying in the standard library, so that any other report still prints."""
    if unraisable.exc_type is not ValueError or str(unraisable.exc_value) != "Invalid file descriptor: -1":
        return False
    if unraisable.object is not asyncio.BaseEventLoop.__del__:
        return False
    stdlib, tb, frames = Path(sysconfig.get_paths()["stdlib"]).resolve(), unraisable.exc_traceback, 0
    while tb is not None:
        if not Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(stdlib):
            return False
        tb, frames = tb.tb_next, frames + 1
    return frames > 0


def silence_gradio_loop_report() -> None:
    """Leave exactly that report out of the log; every other unraisable exception goes to the hook before."""
    before = sys.unraisablehook

    def hook(unraisable):
        if not is_gradio_loop_report(unraisable):
            before(unraisable)
    sys.unraisablehook = hook


def main(argv=None) -> None:
    args = parse_args(argv)
    silence_gradio_loop_report()
    from rbft.recipes.sample import create_sample
    from rbft.recipes.space import storage
    from rbft.store import ProjectError
    from rbft.toyworld.shipped import fetch_if_missing
    from studio.access import AccessError, from_env
    from studio.app import create_app, launch

    where = storage(HERE / "projects")
    print(where.note())
    sample = where.root / "sample"
    project = Path(args.project).expanduser().resolve() if args.project else sample
    try:
        access = from_env(args.host)
    except AccessError as e:
        raise SystemExit(f"error: {e}") from None
    print(access.summary())
    try:
        fetch_if_missing()   # the toy-world VLM's language model, where only requirements.txt is installed
        if project == sample and not (project / "project.db").exists():
            print(f"creating the sample project in {project} ...")
            print(create_sample(project).summary())
        demo = create_app(project, storage=where, access=access)
    except ProjectError as e:
        raise SystemExit(f"error: {e}") from None
    print(f"RB-FT Studio on http://{args.host}:{args.port} (project {project}); "
          "use --host 0.0.0.0 to reach it from other machines.")
    launch(demo, project.parent, host=args.host, port=args.port,
           inbrowser=not args.no_browser and not os.environ.get("SPACE_ID"), **access.launch_kwargs())


if __name__ == "__main__":
    main()
