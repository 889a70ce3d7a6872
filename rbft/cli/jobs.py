"""Background jobs: run or list them, and the warm launcher the studio starts."""
from __future__ import annotations

from .common import _store


def cmd_launcher(args):
    from ..recipes.jobs import run_in_project
    from ..recipes.launcher import serve
    serve(run_in_project)


def cmd_job(args):
    from ..recipes import jobs
    store = _store(args)
    if args.job_id:
        jobs.run_job(store, args.job_id)
        return
    jobs.refresh(store)
    for j in store.jobs():
        print(f"{j['id']:<32} {j['kind']:<11} {j['status']:<12} {j['error'] or ''}")


def add_commands(command) -> None:
    c = command("job", cmd_job, "run a recorded background job (what the studio starts), "
                "or list the project's jobs")
    c.add_argument("job_id", nargs="?", help="the job to run here (default: list the jobs)")
    command("launcher", cmd_launcher, "start job processes from one warm process (what the studio runs; "
            "reads one JSON line per job on stdin)", project=False)
