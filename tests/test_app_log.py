"""The app's log: the one harmless report gradio's unclosed event loops cause is left out at start,
and every other unraisable exception still prints (a Space's log then has no traceback at all)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORTS = """import asyncio, gc, sys
import app
if sys.argv[1] == "silenced":
    app.silence_gradio_loop_report()
loop = asyncio.new_event_loop()
loop._ssock.close()   # as the garbage collector may: the self-pipe socket closed before its loop
del loop
gc.collect()

class Other:   # the same exception and message from code of ours: not the report to leave out
    def __del__(self):
        raise ValueError("Invalid file descriptor: -1")
other = Other()
del other
gc.collect()
print("still running")
"""


def run(mode: str) -> str:
    done = subprocess.run([sys.executable, "-c", REPORTS, mode], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "still running" in done.stdout, done.stderr
    return done.stderr


def test_the_event_loop_report_is_what_python_prints_without_the_hook():
    log = run("plain")
    assert "Exception ignored in: <function BaseEventLoop.__del__" in log
    assert "Exception ignored in: <function Other.__del__" in log


def test_the_app_leaves_out_exactly_that_report():
    log = run("silenced")
    assert "BaseEventLoop" not in log and "selectors.py" not in log, log
    assert "Exception ignored in: <function Other.__del__" in log   # anything else still prints
    assert log.count("Traceback") == 1
