"""The house's structure: no module of engine/ or tui/ sits in an import cycle, docs/design.md's layout
names every one of them, and the README's layout names every folder (a module or a folder added
without its word there fails here).

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


PACKAGES = ("engine", "tui")


def layout_block(doc: Path) -> str:
    """The text of a markdown file's "## Layout" section, up to the next "## " heading."""
    text = doc.read_text()
    assert "## Layout\n" in text, f"{doc.relative_to(ROOT)} has no '## Layout' section"
    return text.split("## Layout\n", 1)[1].split("\n## ", 1)[0]


def layout_words(doc: Path) -> set[str]:
    return set(re.findall(r"[a-z_]+", layout_block(doc)))


def unnamed_modules(root: Path, words: set[str]) -> list[str]:
    """Every module file under root's packages whose name is not among the words."""
    return [
        path.relative_to(root).as_posix()
        for package in PACKAGES
        for path in sorted((root / package).rglob("*.py"))
        if "__pycache__" not in path.parts and path.stem != "__init__" and path.stem not in words
    ]


def unnamed_folders(root: Path, block: str) -> list[str]:
    """Every folder of Python files under root's packages (the packages included) whose path, as
    `engine/data/`, is not written in the block."""
    folders = sorted(
        {
            path.parent.relative_to(root).as_posix() + "/"
            for package in PACKAGES
            for path in (root / package).rglob("*.py")
            if "__pycache__" not in path.parts
        }
    )
    written = set(re.findall(r"[a-z_]+(?:/[a-z_]+)*/", block))
    return [folder for folder in folders if folder not in written]


def test_every_module_is_named_in_the_design_layout():
    missing = unnamed_modules(ROOT, layout_words(ROOT / "docs" / "design.md"))
    assert not missing, f"docs/design.md's layout does not name: {missing}"


def test_every_folder_is_named_in_the_readme_layout():
    missing = unnamed_folders(ROOT, layout_block(ROOT / "README.md"))
    assert not missing, f"README's layout does not name the folders: {missing}"


def test_a_module_or_folder_without_its_word_is_found(tmp_path):
    for name in ("engine/__init__.py", "engine/old.py", "engine/new/__init__.py", "engine/new/fresh.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    (tmp_path / "tui").mkdir()
    (tmp_path / "tui" / "__init__.py").write_text("")
    block = "    engine/   old\n    tui/      the console\n"
    assert unnamed_modules(tmp_path, set(re.findall(r"[a-z_]+", block))) == ["engine/new/fresh.py"]
    assert unnamed_folders(tmp_path, block) == ["engine/new/"]
    # a folder's name alone is not enough: its path is what the README writes
    assert unnamed_folders(tmp_path, block + "    new    a new folder\n") == ["engine/new/"]
    assert unnamed_folders(tmp_path, block + "      engine/new/  a new folder\n") == []
