"""Structure that should stay true as the code grows."""

import re
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def bench_imports() -> dict[str, set[str]]:
    """Module -> the bench modules it imports anywhere (inside functions too; type-checking-only
    imports left out: they never run)."""
    modules = {path.stem: path.read_text() for path in BENCH.glob("*.py")}
    edges = {}
    for name, text in modules.items():
        text = re.sub(r"if TYPE_CHECKING:.*?\n(?=\S)", "", text, flags=re.S)
        found = set(re.findall(r"from bench\.(\w+) import", text)) | set(re.findall(r"import bench\.(\w+)", text))
        for names in re.findall(r"from bench import ([\w, ]+)", text):
            found |= {n.strip().split(" as ")[0] for n in names.split(",")}
        edges[name] = found & set(modules)
    return edges


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
