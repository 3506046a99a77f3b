"""Structure that should stay true as the code grows."""

import ast
import re
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"
# each wing may import from itself and from the wings before it, never from one after it
WINGS = ("core", "cli", "analysis")


def bench_modules() -> dict[str, str]:
    """``wing.module`` -> source, for every module of the three wings."""
    return {f"{path.parent.name}.{path.stem}": path.read_text()
            for wing in WINGS for path in (BENCH / wing).glob("*.py") if path.stem != "__init__"}


def bench_imports() -> dict[str, set[str]]:
    """``wing.module`` -> the bench modules it imports anywhere (inside functions too;
    type-checking-only imports left out: they never run)."""
    modules = bench_modules()
    edges = {}
    for name, text in modules.items():
        text = re.sub(r"if TYPE_CHECKING:.*?\n(?=\S)", "", text, flags=re.S)
        found = set(re.findall(r"from bench\.(\w+\.\w+) import", text)) | set(re.findall(r"import bench\.(\w+\.\w+)", text))
        for wing, names in re.findall(r"from bench\.(\w+) import ([\w, ]+)", text):
            found |= {f"{wing}.{n.strip().split(' as ')[0]}" for n in names.split(",")}
        edges[name] = found & set(modules)
    return edges


def test_the_import_graph_is_read():  # a guard for the two tests below: an empty graph would pass them
    edges = bench_imports()
    assert {"core.loop", "cli.sweep", "analysis.report"} <= set(edges)
    assert "core.model" in edges["core.loop"] and "cli.compare" in edges["analysis.report"]


def test_no_import_circle_in_bench_lazy_imports_included():
    edges = bench_imports()

    def circle_from(start, node, path):
        for following in edges[node]:
            if following == start:
                return path
            if following not in path and (found := circle_from(start, following, [*path, following])):
                return found
        return None

    circles = [circle for name in edges if (circle := circle_from(name, name, [name]))]
    assert not circles, "import circles: " + "; ".join(" -> ".join([*c, c[0]]) for c in circles)


def test_each_wing_imports_only_itself_and_the_wings_before_it():
    wrong = [f"{module} imports {imported}" for module, imported_set in bench_imports().items()
             for imported in imported_set
             if WINGS.index(imported.split(".")[0]) > WINGS.index(module.split(".")[0])]
    assert not wrong, "; ".join(sorted(wrong))


def test_the_core_knows_no_method_by_name():
    """No string in the core's code (docstrings and comments aside) is a method's name, and the
    core never imports the methods package: a method changes the core only through its hooks."""
    from bench.core.method import available_methods

    names = set(available_methods())
    found = []
    for module, text in bench_modules().items():
        if not module.startswith("core."):
            continue
        tree = ast.parse(text)
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)
                      and isinstance(node.body[0].value, ast.Constant)}
        found += [f"{module}: '{node.value}'" for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                  and node.value in names]
        found += [f"{module} imports methods" for node in ast.walk(tree)
                  if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "methods"]
    assert len(names) >= 10 and not found, found
