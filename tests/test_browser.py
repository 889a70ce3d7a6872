"""A real browser (Debian's chromium, headless, driven by Playwright) clicks through every tab of the
studio on the sample project, runs a short experiment on the tiny model, and waits for the live
confusion matrix. Screenshots go to $RBFT_SCREENSHOTS (default: the test's temp folder).

CI installs chromium (.ci/run) and sets RBFT_REQUIRE_BROWSER=1, so there a missing browser fails
instead of skipping.
"""
import os
import shutil
import socket
from pathlib import Path

import pytest
from conftest import small_config

from rbft import project
from rbft.recipes.sample import create_sample

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def chromium_path():
    for candidate in ("/usr/lib/chromium/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


pytestmark = pytest.mark.slow  # the whole studio clicked through, a real experiment: minutes on 2 cores


def browser_or_skip():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    path = chromium_path()
    if sync_playwright is None or path is None:
        why = "playwright is not installed" if sync_playwright is None else "no chromium executable"
        if os.environ.get("RBFT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"the browser test is required here but {why}")
        pytest.skip(why)
    return sync_playwright, path


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, tiny_root):
    from studio.app import create_app, launch
    root = tmp_path_factory.mktemp("browser-projects")
    create_sample(root / "sample")
    store = project.open_project(root / "sample")
    project.save_settings(store, small_config("tiny:smolvlm"))
    demo = create_app(root / "sample")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _, url, _ = launch(demo, root, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
    yield url, root
    demo.close()


def test_click_through_every_tab_and_train(app_url, tmp_path):
    sync_playwright, chromium = browser_or_skip()
    app_url, app_root = app_url
    shots = Path(os.environ.get("RBFT_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        page.goto(app_url)

        def tab(name):
            page.get_by_role("tab", name=name).click()

        def shot(name):
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

        def job_bar(text, timeout=240_000):
            page.locator("#job-bar").get_by_text(text).wait_for(timeout=timeout)

        # Data: the sample's 24 clips in 3 classes, with the table and the per-class chart
        page.get_by_text("24 videos in 3 classes").wait_for()
        assert page.get_by_role("gridcell", name="fall").count() > 0 or page.get_by_text("fall").count() > 0
        shot("1-data")

        # Rationales: the frames the model sees, the template with its fields, a trial on 3 videos
        tab("Rationales")
        page.locator("#template textarea").wait_for()
        assert "{label}" in page.locator("#template textarea").input_value()
        page.get_by_text("Fields: {class_definitions}").wait_for()
        page.get_by_role("button", name="Try on N training videos").click()
        job_bar("generate · done")
        page.get_by_role("button", name="Next ▶").click()
        page.get_by_role("button", name="◀ Previous").click()
        page.locator("#rationale-info").get_by_text("generated").first.wait_for()
        # the clip itself plays in the page (webm, served from the project folder)
        page.wait_for_function("() => [...document.querySelectorAll('video')].some("
                               "v => v.currentSrc.includes('.webm') && v.readyState >= 2)", timeout=20_000)
        shot("2-rationales")

        # Quality: stats of the trial's rationales
        tab("Quality")
        page.get_by_role("button", name="Refresh").first.click()
        page.get_by_text("ALL", exact=True).first.wait_for()
        shot("3-quality")
        # one click on a worst example opens it in the Rationales tab
        worst_video = page.locator('#worst-examples [data-testid="cell-0-0"]')
        worst_id = worst_video.inner_text().strip()
        worst_video.click()
        page.get_by_role("tab", name="Rationales", selected=True).wait_for()
        page.locator("#rationale-info").get_by_text("status").first.wait_for()
        store = project.open_project(Path(app_root) / "sample")
        video = store.video(worst_id)
        page.locator("#rationale-info").get_by_text(Path(video["path"]).name).wait_for()

        # an annotator's notes, imported from a file, become a rationale set shown beside the video
        notes = tmp_path / "annotator notes.csv"
        named = store.videos(split="train")[:2]
        notes.write_text("file,text\n" + "".join(f"{Path(v['path']).name},Seen by a person: it moves.\n"
                                                  for v in named))
        page.get_by_text("Import rationales from a file").click()
        page.locator("#import-file input[type=file]").set_input_files(str(notes))
        page.locator("#import-file").get_by_text("annotator notes.csv").wait_for()
        page.locator("#import-rationales").click()
        page.locator("#import-message").get_by_text("2 rationales imported as import:annotator notes").wait_for()
        page.locator("#rationale-info").get_by_text("import:annotator notes").first.wait_for(timeout=30_000)
        assert len(store.rationales(model="import:annotator notes")) == 2
        shot("2b-imported-rationales")

        # where the model looked: each frame under the attention of the class it names
        page.get_by_text("Where the model looked").first.click()
        page.locator("#rationales-look").click()
        page.locator("#rationales-look-share").get_by_text("of its attention went to the video").wait_for(timeout=60_000)
        assert page.locator("#rationales-look-gallery img").count() >= 4
        shot("2c-where-it-looked")

        # Train: a short experiment; the live confusion matrix appears at the first evaluation
        tab("Train")
        # the budget preview follows the settings: a bigger batch is a bigger estimate, before any run
        preview = page.locator("#budget-preview")
        batch = page.get_by_label("Batch size")
        batch.fill("2")
        batch.press("Enter")
        preview.get_by_text("2 per forward").first.wait_for(timeout=120_000)  # the first reads the processor
        preview.get_by_text("the same from a terminal").wait_for()
        before = preview.inner_text()
        batch.fill("6")
        batch.press("Enter")
        preview.get_by_text("6 per forward").first.wait_for()
        assert "peak memory" in preview.inner_text() and preview.inner_text() != before
        shot("4-train-budget")
        batch.fill("2")
        batch.press("Enter")
        preview.get_by_text("2 per forward").first.wait_for()
        page.get_by_role("button", name="Run experiment").click()
        page.locator("#live-confusion table.rbft-confusion").wait_for(timeout=600_000)
        shot("4-train-running")
        # three arms, each loading the model and scoring the test split: 6 minutes on 2 busy cores
        job_bar("experiment · done", timeout=900_000)
        page.locator("#live-confusion").get_by_text("stage2").wait_for()
        page.locator("#loss-plot img").wait_for()  # the loss curves, drawn from the runs' events
        shot("5-train-done")

        # Results: three arms side by side, each with its confusion matrix
        tab("Results")
        page.get_by_role("button", name="Refresh").last.click()
        page.locator("#results-confusion table.rbft-confusion").nth(2).wait_for()
        assert page.locator("#results-confusion table.rbft-confusion").count() == 3
        for arm in ("zero_shot", "sft", "rbft"):
            assert page.locator("#results-confusion").get_by_text(f"{arm}: test").count() == 1
        shot("6-results")

        # Predict: upload a clip, get class probabilities for the sample's classes
        tab("Predict")
        sample_clip = next(Path(__file__).resolve().parent.parent.glob("assets/sample/videos/left/*.webm"))
        page.locator("input[type=file]").last.set_input_files(str(sample_clip))
        page.get_by_role("button", name="Predict").click()
        page.locator("#predict-label").get_by_text("left").first.wait_for(timeout=120_000)
        shot("7-predict")
        browser.close()
