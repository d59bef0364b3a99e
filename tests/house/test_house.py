"""The house's structure: no module of engine/ or tui/ sits in an import cycle, and the README's layout
names every one of them (a module added without a word there fails here).

import-linter's acyclic-siblings contract (run by CI) looks at packages; this looks at every module,
counting imports made inside functions, which is where cycles hide in a lazily importing codebase.
"""

import re
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]


def _cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(module: str) -> None:
        nonlocal counter
        index[module] = low[module] = counter
        counter += 1
        stack.append(module)
        on_stack.add(module)
        for other in graph.find_modules_directly_imported_by(module) & modules:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return found


def test_no_module_of_engine_or_tui_is_in_an_import_cycle():
    graph = grimp.build_graph("engine", "tui")
    modules = {m for m in graph.modules if m.split(".")[0] in ("engine", "tui")}
    assert _cycles(graph, modules) == []


def test_the_cycle_finder_finds_a_cycle():
    graph = grimp.ImportGraph()
    for name in ("pkg", "pkg.a", "pkg.b", "pkg.c"):
        graph.add_module(name)
    graph.add_import(importer="pkg.a", imported="pkg.b")
    graph.add_import(importer="pkg.b", imported="pkg.a")
    graph.add_import(importer="pkg.c", imported="pkg.a")
    assert _cycles(graph, {"pkg.a", "pkg.b", "pkg.c"}) == [["pkg.a", "pkg.b"]]


def layout_words() -> set[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("## Layout\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"[a-z_]+", block))


def test_every_module_is_named_in_the_readme_layout():
    words = layout_words()
    missing = [
        str(path.relative_to(ROOT))
        for package in ("engine", "tui")
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.stem not in ("__init__", "__main__") and path.stem not in words
    ]
    assert not missing, f"README's layout does not name: {missing}"
