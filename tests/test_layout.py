"""The map of the code holds: no import circle, layers that import only downwards, short modules, a
short README that links every docs/ page. See docs/architecture.md."""
from import_graph import ROOT, cycles, graph, modules

LAYERS = ["components", "toyworld", "recipes", "cli", "studio"]   # each imports only its own layer and lower
MAX_LINES = 450


def layer(module: str) -> str:
    if module.startswith("studio"):
        return "studio"
    if module.startswith("rbft.cli") or module == "rbft.__main__":
        return "cli"
    if module.startswith("rbft.recipes"):
        return "recipes"
    if module.startswith("rbft.toyworld"):
        return "toyworld"
    return "components"


def test_no_import_circle_lazy_imports_included():
    assert cycles(graph()) == []


def test_a_lower_layer_never_imports_a_higher_one():
    upward = [f"{a} ({layer(a)}) imports {b} ({layer(b)})" for a, targets in graph().items() for b in targets
              if LAYERS.index(layer(b)) > LAYERS.index(layer(a))]
    assert upward == []


def test_the_checks_see_circles_and_upward_imports():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    g = graph()
    assert "rbft.recipes.experiment" in g["rbft.cli.runs"]           # lazy imports inside functions count
    assert "rbft.train" in g["rbft.recipes.experiment"] and layer("rbft.train") == "components"


def test_no_module_over_450_lines():
    long = {name: n for name, path in modules().items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_readme_is_an_entry_page_that_links_every_docs_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 16 * 1024
    assert readme.startswith("---\ntitle: RB-FT Studio\nsdk: gradio")
    pages = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))
    assert pages and [p for p in pages if f"]({p})" not in readme] == []
    for page in pages:   # and each page's own links to other pages resolve
        text = (ROOT / page).read_text()
        for target in [t.split(")")[0] for t in text.split("](")[1:]]:
            if target.endswith(".md") and not target.startswith("http"):
                assert (ROOT / "docs" / target).resolve().exists() or (ROOT / target).exists(), (page, target)
