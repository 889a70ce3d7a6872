from pathlib import Path

import pytest

from rbft.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent


def test_every_command_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, command in sub.choices.items():
        assert command.description, f"{name} has no help"
        for action in command._actions:
            assert action.help, f"{name} {action.option_strings} has no help"


@pytest.mark.slow  # a whole three-arm experiment (test_pipeline has one)
def test_sample_then_experiment_prints_the_table(tmp_path, tiny, capsys):
    project = str(tmp_path / "sample")
    assert main(["sample", "--project", project, "--quiet"]) == 0
    assert main(["experiment", "--project", project, "--model", "tiny:smolvlm", "--num-frames", "4",
                 "--max-side", "64", "--gen-max-new-tokens", "8", "--stage1-max-steps", "2",
                 "--stage2-max-steps", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "| zero_shot |" in out and "| rbft |" in out
    assert "F1 fall" in out and "F1 left" in out and "F1 right" in out


def test_dry_run_prints_the_budget_and_refuses_what_will_not_fit(tmp_path, tiny, capsys):
    """train, experiment and benchmark --dry-run: tokens, memory, batch, steps and the command, then exit
    (0 fits, 2 will not); nothing trains and nothing is written beside the data."""
    project = str(tmp_path / "sample")
    assert main(["sample", "--project", project, "--quiet"]) == 0
    capsys.readouterr()

    def dry_run(args):
        with pytest.raises(SystemExit) as exit_:
            main(args + ["--dry-run"])
        return exit_.value.code, capsys.readouterr().out

    runs = {
        "experiment": ["experiment", "--project", project, "--model", "tiny:qwen2_5_vl", "--seeds", "0", "1"],
        "train": ["train", "--project", project, "--model", "tiny:qwen2_5_vl", "--arm", "rbft"],
        "benchmark": ["benchmark", "--data", str(ROOT / "assets" / "sample" / "videos"), "--model", "tiny:smolvlm",
                      "--out", str(tmp_path / "bench")],
    }
    for verb, args in runs.items():
        code, out = dry_run(args)
        assert code == 0, out
        assert "visual tokens" in out and "peak memory" in out and "per forward" in out
        assert f"python -m rbft {verb}" in out
        if verb == "experiment":
            assert "stage1: 2 run(s)" in out
    assert not (tmp_path / "bench").exists()
    from rbft.project import open_project
    assert open_project(project).runs() == []
    code, out = dry_run(["experiment", "--project", project, "--model", "Qwen/Qwen2.5-VL-7B-Instruct",
                         "--quantization", "none", "--stage2-batch-size", "64", "--device", "cpu"])
    assert code == 2 and "will not fit" in out and "Try a smaller batch" in out


def test_bad_input_is_an_error_line_not_a_traceback(tmp_path, capsys):
    assert main(["ingest", "--project", str(tmp_path / "p"), str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.txt"
    bad.write_text("Classify {colour}")
    assert main(["prompt", "--project", str(tmp_path / "p"), "--kind", "classify", "--set", str(bad)]) == 2
    assert "unknown field" in capsys.readouterr().err


def module_imports(module: str) -> set[str]:
    """What a module of ours imports when it is imported: its top-level import statements (imports
    inside functions run later, when called), relative ones resolved."""
    import ast
    path = ROOT / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = ROOT / module.replace(".", "/") / "__init__.py"
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.parse(path.read_text()).body:   # the module's own statements, not function bodies
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names
                      if (ROOT / base.replace(".", "/") / f"{a.name}.py").exists()
                      or (ROOT / base.replace(".", "/") / a.name / "__init__.py").exists()}
        elif isinstance(node, (ast.If, ast.Try)):   # e.g. a guarded import at the top
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import):
                    found |= {a.name for a in inner.names}
    return found


def imported_closure(*modules: str) -> set[str]:
    seen, todo = set(), list(modules)
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        if m.split(".")[0] == "rbft":
            parents = [".".join(m.split(".")[:i]) for i in range(1, len(m.split(".")))]
            todo += [p for p in parents if p not in seen] + sorted(module_imports(m) - seen)
    return seen


def test_the_method_imports_neither_gradio_nor_the_toy_world():
    """`import rbft` stays light: no UI; `toyworld` resolves through rbft.names, lazily. Read from the
    import statements (importing torch to check would take a minute on a small CI machine)."""
    loaded = imported_closure("rbft.cli", "rbft.store", "rbft.models", "rbft.train", "rbft.recipes.experiment",
                              "rbft.evaluate", "rbft.recipes.benchmark", "rbft.rationale_import", "rbft.paired")
    assert "rbft.train" in loaded and "torch" in loaded and "rbft.config" in loaded   # it does follow them
    assert not [m for m in loaded if m.split(".")[0] in ("gradio", "studio")]
    assert not [m for m in loaded if m.startswith("rbft.toyworld")]
    assert "rbft.toyworld.shipped" in imported_closure("rbft.toyworld.shipped")   # and would see one
    from rbft import models, names
    assert names.PROVIDERS["toyworld"] == "rbft.toyworld.shipped"
    assert models.available("toyworld") == names.available("toyworld")
