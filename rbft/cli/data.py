"""Commands that set a project up: ingest videos, the domain and class descriptions, prompts, the sample."""
from __future__ import annotations

from pathlib import Path

from .common import _sink, _store


def cmd_ingest(args):
    from ..data import ingest
    report = ingest(_store(args), args.source, seed=args.seed, on_event=_sink(args), pool=args.pool)
    print(report.summary())


def cmd_configure(args):
    from ..project import classes, configure, domain
    store = _store(args)
    descriptions = {}
    for item in args.describe or []:
        name, _, text = item.partition("=")
        descriptions[name.strip()] = text.strip()
    configure(store, args.domain, descriptions)
    print(f"domain: {domain(store)}")
    for c in classes(store):
        print(f"  {c['name']}: {c['description'] or '(no description)'}")


def cmd_prompt(args):
    from .. import project
    store = _store(args)
    if args.set:
        pid = project.save_prompt(store, args.kind, Path(args.set).read_text())
        print(f"saved {args.kind} prompt as version {store.prompt(pid)['version']} (id {pid})")
    if args.list:
        for p in store.prompts(args.kind):
            print(f"id {p['id']:>3}  {p['kind']:<9} v{p['version']}  {p['template'].splitlines()[0][:60]}")
        return
    row = project.prompt(store, args.kind)
    print(f"# {args.kind} prompt v{row['version']} (id {row['id']})\n{row['template']}")
    if args.render:
        video = store.video(args.render)
        print("# rendered for", args.render)
        print(project.render(store, args.kind, row["template"], label=video["label"]))


def cmd_sample(args):
    from ..recipes.sample import create_sample
    report = create_sample(args.project, on_event=_sink(args))
    print(report.summary())
    print(f"sample project ready in {args.project}")


def add_commands(command) -> None:
    c = command("ingest", cmd_ingest, "add videos from a folder (one subfolder per class) or a "
                "CSV/JSONL manifest (path,label[,split]); broken files are listed with the reason")
    c.add_argument("source", help="folder or manifest file")
    c.add_argument("--seed", type=int, default=0, help="seed of the stratified train/val/test split")
    c.add_argument("--pool", action="store_true", help="videos without a label (at the folder's top level, or "
                   "an empty label in the manifest) join the pool, unlabelled, instead of being refused")
    c = command("configure", cmd_configure, "set the domain and class descriptions the prompts show")
    c.add_argument("--domain", help='e.g. "smart-home security camera footage"')
    c.add_argument("--describe", nargs="+", metavar="CLASS=TEXT", help="one-line class definitions")
    c = command("prompt", cmd_prompt, "show, list or set prompt templates (each edit is a new version)")
    c.add_argument("--kind", default="rationale", choices=["rationale", "describe", "classify", "support"],
                   help="rationale (Stage I generation, label hint), describe (Stage I training), "
                        "classify (labels), support (text-only label-support check)")
    c.add_argument("--set", metavar="FILE", help="store the template in FILE as a new version")
    c.add_argument("--list", action="store_true", help="list the versions")
    c.add_argument("--render", metavar="VIDEO_ID", help="also show the prompt rendered for a video")
    command("sample", cmd_sample, "create a project from the bundled sample (the toy-world one where the "
            "toy-world VLM is the default model, else 3 synthetic motion classes)")
