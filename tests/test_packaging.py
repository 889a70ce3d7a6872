"""The package as pip sees it: pyproject.toml and requirements*.txt name the same pins (a Space
installs requirements.txt, `pip install -e .` installs pyproject's), and the `rbft` command is the
same entry point as `python -m rbft`."""
import re
import tomllib
from pathlib import Path

import rbft

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def requirements(name: str) -> set[str]:
    """The requirement lines of a requirements file, without comments, blanks and -r includes."""
    lines = (re.sub(r"#.*", "", line).strip() for line in (ROOT / name).read_text().splitlines())
    return {line.replace(" ", "") for line in lines if line and not line.startswith("-r")}


def test_requirements_txt_and_pyproject_name_the_same_pins():
    assert requirements("requirements.txt") == set(PYPROJECT["project"]["dependencies"])


def test_the_dev_extra_is_requirements_dev_txt():
    assert requirements("requirements-dev.txt") == set(PYPROJECT["project"]["optional-dependencies"]["dev"])


def test_the_version_comes_from_the_package():
    assert PYPROJECT["project"]["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "rbft.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", rbft.__version__)


def test_the_rbft_command_is_python_m_rbft():
    module, func = PYPROJECT["project"]["scripts"]["rbft"].split(":")
    assert (module, func) == ("rbft.cli", "main")
    main_py = (ROOT / "rbft" / "__main__.py").read_text()
    assert "from .cli import main" in main_py and "sys.exit(main())" in main_py


def test_pip_install_e_gives_the_rbft_command(tmp_path):
    """`pip install -e .` in a fresh venv beside this interpreter's packages (only the build backend
    comes from the registry): `rbft --help` answers as `python -m rbft --help` does."""
    import subprocess
    import sys
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(pip + ["--no-deps", "-e", str(ROOT)], check=True, cwd=tmp_path,
                   capture_output=True, timeout=300)
    command = subprocess.run([str(venv / "bin" / "rbft"), "--help"], cwd=tmp_path, capture_output=True,
                             text=True, timeout=300)
    module = subprocess.run([sys.executable, "-m", "rbft", "--help"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert command.returncode == 0 and module.returncode == 0, command.stderr + module.stderr
    assert command.stdout.startswith("usage: rbft ") and module.stdout.startswith("usage: python -m rbft ")
    assert command.stdout.split("positional arguments:")[1] == module.stdout.split("positional arguments:")[1]
