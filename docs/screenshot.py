"""Take docs/rationales-tab.png: the studio on a fresh copy of the bundled sample, Rationales tab.
Needs Debian's chromium and playwright (requirements-dev.txt).

    python docs/screenshot.py
"""
import socket
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from rbft.recipes.sample import create_sample  # noqa: E402
from studio.app import create_app, launch  # noqa: E402

with tempfile.TemporaryDirectory() as tmp:
    create_sample(Path(tmp) / "sample")
    demo = create_app(Path(tmp) / "sample")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _, url, _ = launch(demo, Path(tmp), host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(120_000)
        page.goto(url)
        page.get_by_role("tab", name="Rationales").click()
        page.locator("#rationale-info").wait_for()
        page.wait_for_timeout(4000)   # the frames and the truth line draw
        page.screenshot(path=str(ROOT / "docs" / "rationales-tab.png"), full_page=False)
        browser.close()
    demo.close()
print("written docs/rationales-tab.png")
