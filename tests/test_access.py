"""Who may change a shared studio (studio.access), tried through gradio_client as browsers would:
a visitor who is not allowed is refused by the server when starting a job, editing a rationale or
exporting labels, and sees the studio; an allowed user (the password, or a Hugging Face account on
the editors list) can do all three. No project file but the videos is served to anyone."""
import socket
import time

import httpx
import pytest
from conftest import small_config
from gradio_client import Client

from rbft import project, synthetic
from rbft.project import open_project
from rbft.recipes import jobs
from studio import access as A


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def projects(tmp_path_factory, tiny_root):
    """A projects folder with one project of 6 labelled clips."""
    from rbft.data import ingest
    root = tmp_path_factory.mktemp("projects")
    store = open_project(root / "shared")
    project.save_settings(store, small_config("tiny:smolvlm"))
    clips = synthetic.make_dataset(root / "shared" / "videos", per_class=3, motions=("left", "right"),
                                   size=64, n_frames=16)
    ingest(store, clips, seed=0)
    return root


def serve(root, access: A.Access):
    from studio.app import create_app, launch
    demo = create_app(root / "shared", access=access)
    _, url, _ = launch(demo, root, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True,
                       **access.launch_kwargs())
    return demo, url


def client(url, **kwargs) -> Client:
    return Client(url, verbose=False, httpx_kwargs={"timeout": 60}, **kwargs)


def first_video_and_prompt(root):
    store = open_project(root / "shared")
    return store.videos(split="train")[0]["id"], project.prompt(store, "rationale")["id"]


def wait_idle(store, timeout=240):
    job = jobs.active(store)
    return jobs.wait(store, job["id"], timeout_s=timeout) if job else store.jobs(limit=1)[0]


def refused(call) -> str:
    with pytest.raises(Exception) as e:
        call()
    assert "read-only for you" in str(e.value)
    return str(e.value)


def check_visitor_is_refused(c: Client, root):
    """Starting a job, editing a rationale and exporting labels are refused; browsing is not."""
    store = open_project(root / "shared")
    video_id, prompt_id = first_video_and_prompt(root)
    before = (len(store.jobs()), len(store.rationales()))
    refused(lambda: c.predict("tiny:smolvlm", 4, 64, prompt_id, 1, api_name="/try_rationales"))
    refused(lambda: c.predict(video_id, prompt_id, "my own words", api_name="/edit_rationale"))
    refused(lambda: c.predict(None, api_name="/pool_export"))
    refused(lambda: c.predict("bfloat16", api_name="/set_dtype"))
    refused(lambda: c.predict("http://127.0.0.1:9/v1", api_name="/set_server"))
    assert (len(store.jobs()), len(store.rationales())) == before      # nothing started, nothing written
    assert project.settings(store).model.dtype == "auto"
    assert "6 videos in 2 classes" in c.predict(api_name="/reload")[5]  # the studio is still there to see
    c.predict(video_id, prompt_id, "rationale", "", api_name="/show_video")


def check_editor_can(c: Client, root):
    store = open_project(root / "shared")
    video_id, prompt_id = first_video_and_prompt(root)
    info = c.predict(video_id, prompt_id, "A square moves to the left.", api_name="/edit_rationale")
    assert "status **edited**" in info
    files = c.predict(None, api_name="/pool_export")
    assert sorted(f.rsplit("/", 1)[-1] for f in files) == ["label_studio_config.xml", "label_studio_tasks.json",
                                                          "labels.csv", "labels.jsonl"]
    assert "Started job-" in c.predict("tiny:smolvlm", 4, 64, prompt_id, 1, api_name="/try_rationales")
    job = wait_idle(store)
    assert job["status"] == "done", job["error"]
    from rbft.project import settings
    assert "written by the server at `http://127.0.0.1:9/v1`" in c.predict("http://127.0.0.1:9/v1", api_name="/set_server")
    assert (settings(store).engine.engine, settings(store).engine.base_url) == ("server", "http://127.0.0.1:9/v1")
    c.predict("", api_name="/set_server")   # back to in process, as the other checks expect
    assert settings(store).engine.engine == "in-process"


# ---- where the settings come from


def test_settings_come_from_the_environment():
    assert A.from_env("127.0.0.1", {}).mode == "local"
    assert A.from_env("0.0.0.0", {}).mode == "open"
    assert A.from_env("127.0.0.1", {"SPACE_ID": "me/studio"}).mode == "open"   # a Space is public
    assert A.from_env("0.0.0.0", {"RBFT_PASSWORD": "pw"}) == A.Access("password", password="pw")
    space = {"SPACE_ID": "me/studio", "OAUTH_CLIENT_ID": "x", "RBFT_EDITORS": "Alice, acme-lab"}
    assert A.from_env("0.0.0.0", space) == A.Access("editors", editors=("alice", "acme-lab"))
    with pytest.raises(A.AccessError, match="only on a Space"):
        A.from_env("0.0.0.0", {"RBFT_EDITORS": "alice"})
    with pytest.raises(A.AccessError, match="hf_oauth: true"):
        A.from_env("0.0.0.0", {"SPACE_ID": "me/studio", "RBFT_EDITORS": "alice"})
    with pytest.raises(A.AccessError, match="not both"):
        A.from_env("0.0.0.0", {**space, "RBFT_PASSWORD": "pw"})


def test_app_py_refuses_settings_that_cannot_work(monkeypatch):
    import app
    monkeypatch.setenv("RBFT_EDITORS", "alice")
    monkeypatch.delenv("SPACE_ID", raising=False)
    with pytest.raises(SystemExit, match="only on a Space"):
        app.main(["--host", "0.0.0.0", "--no-browser"])


def test_every_endpoint_is_sorted_into_writes_or_reads(projects):
    """A new endpoint must be sorted before the app starts, so none is left open by accident."""
    from studio.app import create_app
    demo = create_app(projects / "shared")
    names = {A.endpoint_kind(f.api_name) for f in demo.fns.values()}
    assert names == {"read", "write"}
    sorted_names = {f.api_name for f in demo.fns.values()}
    assert A.WRITES <= sorted_names, "a name in WRITES is no endpoint of the app"
    demo.fns[0].api_name = "new_button"
    with pytest.raises(A.AccessError, match="new_button"):
        A.protect(demo, A.Access("password", password="pw"))


# ---- through the server


def test_password_visitor_is_read_only_and_password_user_is_not(projects):
    demo, url = serve(projects, A.Access("password", password="correct horse"))
    try:
        with pytest.raises(ValueError, match="Could not login"):
            client(url, auth=("owner", "wrong"))
        visitor = client(url, auth=(A.VISITOR, "anything"))
        note, *greyed = visitor.predict(api_name="/access")   # the client sees the header's boxes, not buttons
        assert "Read-only" in note
        assert greyed and all(u == {"interactive": False, "__type__": "update"} for u in greyed)
        check_visitor_is_refused(visitor, projects)
        refused(lambda: visitor.predict("new project", api_name="/open_project"))   # creating one writes
        assert not (projects / "new project").exists()
        assert visitor.predict("shared", api_name="/open_project")["value"] == "shared"  # opening one reads
        owner = client(url, auth=("owner", "correct horse"))
        note, *left_alone = owner.predict(api_name="/access")
        assert "Signed in as **owner**" in note and all("interactive" not in u for u in left_alone)
        check_editor_can(owner, projects)
    finally:
        demo.close()


@pytest.fixture
def mocked_hub_login(monkeypatch):
    """gradio's sign-in as it runs off a Space (its mocked routes), with the user it signs in as ours
    to choose: `login(name, orgs)` returns that browser's session cookie."""
    import gradio.oauth
    info = {"access_token": "t", "token_type": "bearer", "scope": "openid profile", "userinfo": {}}
    monkeypatch.setattr(gradio.oauth, "_get_mocked_oauth_info", lambda: info)

    def login(url, name, orgs=()):
        info["userinfo"] = {"sub": "1", "preferred_username": name, "name": name.title(),
                            "profile": f"https://huggingface.co/{name}", "picture": "",
                            "orgs": [{"preferred_username": o, "name": o.title()} for o in orgs]}
        first = httpx.get(url + "login/huggingface", follow_redirects=False)
        back = httpx.get(url.rstrip("/") + first.headers["location"], follow_redirects=False)
        return {"Cookie": "session=" + back.cookies["session"]}
    return login


def test_hugging_face_editors_may_change_it_and_others_see_it(projects, mocked_hub_login):
    demo, url = serve(projects, A.Access("editors", editors=("alice", "acme-lab")))
    try:
        anonymous = client(url)
        assert "sign in with Hugging Face" in anonymous.predict(api_name="/access")[0]
        check_visitor_is_refused(anonymous, projects)
        mallory = client(url, headers=mocked_hub_login(url, "mallory", orgs=["other-lab"]))
        assert "mallory is not one of this studio's editors" in mallory.predict(api_name="/access")[0]
        check_visitor_is_refused(mallory, projects)
        bob = client(url, headers=mocked_hub_login(url, "bob", orgs=["acme-lab"]))   # in an allowed org
        assert "Signed in as **bob**" in bob.predict(api_name="/access")[0]
        check_editor_can(bob, projects)
    finally:
        demo.close()


def test_an_open_public_studio_says_so_at_the_top(projects):
    demo, url = serve(projects, A.Access("open"))
    try:
        assert "Anyone who can reach this page can change this studio" in client(url).predict(api_name="/access")[0]
    finally:
        demo.close()
    assert A.Access("local").note(None, None) == ""   # on 127.0.0.1 only: nothing to say
    assert "WARNING anyone" in A.Access("open").summary()   # and the log at start says it too


def test_only_the_videos_of_a_project_are_served(projects):
    demo, url = serve(projects, A.Access("open"))
    try:
        shared = (projects / "shared").resolve()
        video = next((shared / "videos").rglob("*.mp4"), None) or next((shared / "videos").rglob("*.*"))
        assert httpx.get(f"{url}gradio_api/file={video}").status_code == 200
        assert httpx.get(f"{url}gradio_api/file={shared / 'project.db'}").status_code == 403
        c = client(url)
        c.predict("later", api_name="/open_project")   # a project made while the studio runs
        time.sleep(0.1)
        assert httpx.get(f"{url}gradio_api/file={(projects / 'later').resolve() / 'project.db'}").status_code == 403
    finally:
        demo.close()
