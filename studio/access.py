"""Who may change a shared studio, decided in one place (environment variables, which a Space's
settings set as variables and secrets) and enforced on the server, not only on the buttons.

- `RBFT_EDITORS` (on a Space with `hf_oauth: true`): Hugging Face users or organisations, separated
  by commas, who may change anything once signed in with gradio's "Sign in with Hugging Face".
- `RBFT_PASSWORD` (anywhere): gradio's login page; any user name with this password may change
  anything, and the user name `visitor` with any password looks around read-only.
- Neither: on this machine only (127.0.0.1) everyone is the owner; on a public address anyone may
  change anything, and the page says so at the top.

Everyone else is a visitor: they browse the projects, videos, rationales and results, and every
endpoint in WRITES refuses them (starting a job, writing to the store, downloading labels).
"""
from __future__ import annotations

import hmac
import inspect
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import gradio as gr

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
VISITOR = "visitor"

# The app's endpoints by api name (a repeated listener's name has a suffix, e.g. save_header_1):
# those that start a job, write to the store or the project's settings, or hand out labels and rationales.
WRITES = {
    "import_folder", "import_uploads", "save_classes",                                    # Data
    "import_rationales", "edit_rationale", "accept_rationale", "reject_rationale",         # Rationales
    "save_prompt", "try_rationales", "generate_rationales", "regenerate_rationale",
    "score_support",                                                                       # Quality
    "run_experiment", "stop_job", "resume_job",                                            # Train
    "explain_run", "downloads",                                                            # Results
    "predict", "attention_predict", "attention_rationale", "attention_label",              # run the model
    "label_pool", "pool_accept", "pool_label_as", "pool_skip", "pool_auto_accept", "pool_export",  # Label
    "choose_model", "save_header", "set_dtype", "set_server",                             # header
}
# What a visitor may call: it only reads (open_project refuses a visitor a project that does not exist yet).
READS = {
    "refresh_list", "show", "pick_set", "show_video", "lambda", "load_template", "preview_prompt",
    "compare_prompts", "view", "quality", "open_worst", "preview", "budget_preview", "results",
    "pool_queue", "pick", "pool_threshold", "open_project", "reload_all", "reload", "job_status", "access",
    "choices",
}


class AccessError(ValueError):
    """The access settings contradict each other or cannot work where the studio runs."""


@dataclass(frozen=True)
class Access:
    mode: str                       # "local", "open", "password" or "editors"
    editors: tuple[str, ...] = ()   # Hugging Face user and organisation names, lower case
    password: str = ""

    def can_edit(self, request: gr.Request | None, profile: gr.OAuthProfile | None) -> bool:
        if self.mode in ("local", "open"):
            return True
        if self.mode == "password":
            user = getattr(request, "username", None)
            return bool(user) and user.strip().lower() != VISITOR
        return bool(profile) and bool(self.editors) and not set(accounts(profile)).isdisjoint(self.editors)

    def check_login(self, username: str, password: str) -> bool:
        """gradio's `auth=`: the password makes an editor; the user name `visitor` looks around."""
        if username.strip().lower() == VISITOR:
            return True
        return hmac.compare_digest(password.encode(), self.password.encode())

    def launch_kwargs(self) -> dict:
        if self.mode != "password":
            return {}
        return {"auth": self.check_login,
                "auth_message": "Sign in with this studio's password (any user name) to make changes, "
                                f"or as <b>{VISITOR}</b> (any password) to look around read-only."}

    def summary(self) -> str:
        """One line for the log at start."""
        return {"local": "access: this machine only (127.0.0.1)",
                "open": "access: WARNING anyone who can reach this address can change the studio "
                        "(set RBFT_PASSWORD, or RBFT_EDITORS on a Space)",
                "password": f"access: the RBFT_PASSWORD to change the studio; user '{VISITOR}' reads only",
                "editors": "access: Hugging Face accounts " + ", ".join(self.editors) + " change the studio; "
                           "everyone else reads only"}[self.mode]

    def note(self, request: gr.Request | None, profile: gr.OAuthProfile | None) -> str:
        """The line at the top of the page: who may change this studio, and whether this browser may."""
        if self.mode == "local":
            return ""
        if self.mode == "open":
            return ("⚠ **Anyone who can reach this page can change this studio**: start jobs on its machine, "
                    "edit rationales, relabel the pool and download the labels. Set `RBFT_PASSWORD` (or, on a "
                    "Space, `RBFT_EDITORS`) to choose who may: see docs/space.md.")
        if self.can_edit(request, profile):
            who = profile["preferred_username"] if profile else request.username
            return f"Signed in as **{who}**: you may change this studio."
        if self.mode == "password":
            return (f"**Read-only**: you are signed in as `{VISITOR}`. Log out and sign in with the studio's "
                    "password to make changes.")
        if profile:
            return (f"**Read-only**: {profile['preferred_username']} is not one of this studio's editors "
                    f"({', '.join(self.editors)}).")
        return "**Read-only**: sign in with Hugging Face as one of this studio's editors to make changes."


def accounts(profile: Mapping) -> list[str]:
    """The signed-in user's name and their organisations' names (from the OAuth profile), lower case."""
    names = [profile.get("preferred_username", "")] + [o.get("preferred_username", "") or o.get("name", "")
                                                       for o in profile.get("orgs", None) or []]
    return [n.lower() for n in names if n]


def from_env(host: str, env: Mapping[str, str] = os.environ) -> Access:
    """The access settings where the studio runs: a Space is public, and so is any host but this machine."""
    editors = tuple(n.lower() for n in re.split(r"[\s,]+", env.get("RBFT_EDITORS", "")) if n)
    password = env.get("RBFT_PASSWORD", "")
    on_space = bool(env.get("SPACE_ID"))
    if editors and password:
        raise AccessError("set RBFT_EDITORS (Hugging Face accounts, on a Space) or RBFT_PASSWORD, not both")
    if editors:
        if not on_space:
            raise AccessError("RBFT_EDITORS names Hugging Face accounts, and they sign in only on a Space; "
                              "elsewhere set RBFT_PASSWORD instead")
        if not env.get("OAUTH_CLIENT_ID"):
            raise AccessError("RBFT_EDITORS needs the Space's sign-in: put `hf_oauth: true` in the README's "
                              "front matter")
        return Access("editors", editors=editors)
    if password:
        return Access("password", password=password)
    return Access("local" if host in LOCAL_HOSTS and not on_space else "open")


# What a project folder holds beside its videos: the store (labels, rationales), the models and the job
# logs. None of it is served, to anyone: downloads go through the Results and Label tabs' buttons.
PRIVATE = ("project.db", "project.db-wal", "project.db-shm", "project.db-journal", "runs", "jobs", "cache",
           "exports")


def private_paths(root) -> list[str]:
    """gradio's `blocked_paths` for every project under the projects folder `root` (the folder serves
    the videos to the players)."""
    from pathlib import Path
    return [str(Path(p).resolve().parent / name) for p in sorted(Path(root).glob("*/project.db")) for name in PRIVATE]


def endpoint_kind(api_name: str | None) -> str:
    """'write', 'read' or 'unknown' for one of the app's endpoints."""
    base = re.sub(r"_\d+$", "", api_name or "")
    return "write" if base in WRITES else "read" if base in READS else "unknown"


def editors_only(fn: Callable, access: Access) -> Callable:
    """`fn` behind the check: gradio hands the wrapper the request and the signed-in profile (by their
    annotations) ahead of the event's inputs, and a visitor's call is refused before `fn` runs."""
    from gradio.utils import get_type_hints

    def guarded(_access_request, _access_profile, *args, **kwargs):
        if not access.can_edit(_access_request, _access_profile):
            raise gr.Error("This studio is read-only for you: " + (
                "sign in with an editor's Hugging Face account" if access.mode == "editors"
                else "sign in with the studio's password") + " to change anything.")
        return fn(*args, **kwargs)

    signature = inspect.signature(fn)
    guarded.__name__ = getattr(fn, "__name__", "guarded")
    guarded.__signature__ = signature.replace(parameters=[
        inspect.Parameter("_access_request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=gr.Request),
        inspect.Parameter("_access_profile", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                          annotation=gr.OAuthProfile | None),
        *signature.parameters.values()])
    guarded.__annotations__ = {**get_type_hints(fn), "_access_request": gr.Request,
                               "_access_profile": gr.OAuthProfile | None}
    return guarded


def protect(demo: gr.Blocks, access: Access) -> list:
    """Put every write endpoint of `demo` behind the check; returns the components that trigger them
    (the page greys them out for a visitor). An endpoint in neither list is an error: a new one must
    be sorted into WRITES or READS before the app starts."""
    served = [f for f in demo.fns.values() if f.fn is not None]   # a browser-only (js) event runs nothing here
    unknown = [f.api_name for f in served if endpoint_kind(f.api_name) == "unknown"]
    if unknown:
        raise AccessError(f"endpoints not sorted into studio.access WRITES or READS: {unknown}")
    triggers = []
    for f in served:
        if endpoint_kind(f.api_name) != "write":
            continue
        if access.mode not in ("local", "open"):
            f.fn = editors_only(f.fn, access)
        for block_id, _ in f.targets:
            block = demo.blocks.get(block_id)
            if isinstance(block, gr.components.Component) and all(block is not t for t in triggers):
                triggers.append(block)   # by identity: gradio's components compare equal by their settings
    return triggers
