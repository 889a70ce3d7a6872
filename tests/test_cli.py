import subprocess
import sys
from pathlib import Path


from rbft.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent


def test_every_command_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, command in sub.choices.items():
        assert command.description, f"{name} has no help"
        for action in command._actions:
            assert action.help, f"{name} {action.option_strings} has no help"


def test_import_rbft_does_not_import_gradio():
    code = "import sys, rbft.cli, rbft.experiment, rbft.store; print('gradio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def test_sample_then_experiment_prints_the_table(tmp_path, tiny):
    project = str(tmp_path / "sample")
    assert main(["sample", "--project", project, "--quiet"]) == 0
    cmd = [sys.executable, "-m", "rbft", "experiment", "--project", project, "--model", "tiny:smolvlm",
           "--num-frames", "4", "--max-side", "64", "--gen-max-new-tokens", "8",
           "--stage1-max-steps", "2", "--stage2-max-steps", "2", "--quiet"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "| zero_shot |" in out.stdout and "| rbft |" in out.stdout
    assert "F1 fall" in out.stdout and "F1 left" in out.stdout and "F1 right" in out.stdout


def test_dry_run_prints_the_budget_and_refuses_what_will_not_fit(tmp_path, tiny):
    """train, experiment and benchmark --dry-run: tokens, memory, batch, steps and the command, then exit
    (0 fits, 2 will not); nothing trains and nothing is written beside the data."""
    project = str(tmp_path / "sample")
    assert main(["sample", "--project", project, "--quiet"]) == 0
    base = [sys.executable, "-m", "rbft"]
    runs = {
        "experiment": ["experiment", "--project", project, "--model", "tiny:qwen2_5_vl", "--seeds", "0", "1"],
        "train": ["train", "--project", project, "--model", "tiny:qwen2_5_vl", "--arm", "rbft"],
        "benchmark": ["benchmark", "--data", str(ROOT / "assets" / "sample" / "videos"), "--model", "tiny:smolvlm",
                      "--out", str(tmp_path / "bench")],
    }
    for verb, args in runs.items():
        out = subprocess.run(base + args + ["--dry-run"], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        assert "visual tokens" in out.stdout and "peak memory" in out.stdout and "per forward" in out.stdout
        assert f"python -m rbft {verb}" in out.stdout
    assert "stage1: 2 run(s)" in subprocess.run(base + runs["experiment"] + ["--dry-run"], cwd=ROOT,
                                                 capture_output=True, text=True).stdout
    assert not (tmp_path / "bench").exists()
    from rbft.project import open_project
    assert open_project(project).runs() == []
    huge = subprocess.run(base + ["experiment", "--project", project, "--model", "Qwen/Qwen2.5-VL-7B-Instruct",
                                  "--quantization", "none", "--stage2-batch-size", "64", "--device", "cpu",
                                  "--dry-run"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert huge.returncode == 2 and "will not fit" in huge.stdout and "Try a smaller batch" in huge.stdout


def test_bad_input_is_an_error_line_not_a_traceback(tmp_path, capsys):
    assert main(["ingest", "--project", str(tmp_path / "p"), str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.txt"
    bad.write_text("Classify {colour}")
    assert main(["prompt", "--project", str(tmp_path / "p"), "--kind", "classify", "--set", str(bad)]) == 2
    assert "unknown field" in capsys.readouterr().err


def test_the_method_never_imports_the_toy_world():
    """`toyworld` resolves through rbft.names, lazily: the method's modules load without the toy world."""
    import subprocess
    import sys
    code = ("import sys, rbft.models, rbft.train, rbft.experiment, rbft.evaluate, rbft.benchmark; "
            "print(sorted(m for m in sys.modules if m.startswith('rbft.toyworld')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    from rbft import models, names
    assert names.PROVIDERS["toyworld"] == "rbft.toyworld.model"
    assert models.available("toyworld") == names.available("toyworld")
