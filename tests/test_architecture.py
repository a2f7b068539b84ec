"""The package's layout keeps its promises: the checks of the layout issue.

- No import cycle between modules, counting imports inside functions (a
  package's ``__init__`` counts as a module that imports what it
  re-exports).
- No module imports another module's private (``_name``) names.
- No function is longer than 80 lines.
- The module tree follows the data path, and a new CAM method is one
  registered subclass.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "explain_attn"
MAX_FUNCTION_LINES = 80


def _module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules():
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(tree, modules):
    """``(imported module, names)`` of every import of our package."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("explain_attn"):
                    yield alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module:
            if not node.module.startswith("explain_attn"):
                continue
            plain = []
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in modules:
                    yield submodule, []
                else:
                    plain.append(alias.name)
            if plain:
                yield node.module, plain


def _graph():
    modules = _modules()
    graph = {}
    private = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        edges = set()
        for target, names in _imports(tree, modules):
            if target != name and target in modules:
                edges.add(target)
            private += [
                f"{name} imports {target}.{n}"
                for n in names
                if n.startswith("_") and not n.startswith("__")
            ]
        graph[name] = edges
    return graph, private


def _cycle(graph):
    """Returns one import cycle as a list of modules, or ``None``."""
    state = {}

    def visit(node, trail):
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return [*trail[trail.index(target) :], target]
            if target not in state:
                found = visit(target, [*trail, target])
                if found:
                    return found
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [node])
            if found:
                return found
    return None


def test_the_checker_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_between_modules():
    graph, _ = _graph()
    assert len(graph) > 30
    assert _cycle(graph) is None


def test_no_module_imports_private_names_of_another():
    _, private = _graph()
    assert private == []


def _long_functions():
    for name, path in _modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                # From ``def`` to the last line, docstring included.
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    yield f"{name}.{node.name}: {length} lines"


def test_no_function_longer_than_80_lines():
    assert list(_long_functions()) == []


@pytest.mark.parametrize(
    "package",
    [
        "data",
        "models",
        "attention",
        "explanations",
        "metrics",
        "faithfulness",
        "report",
    ],
)
def test_the_tree_follows_the_data_path(package):
    assert (PACKAGE / package / "__init__.py").is_file()
    # Every module of the package says what it is for.
    for path in (PACKAGE / package).glob("*.py"):
        assert ast.get_docstring(ast.parse(path.read_text())), path
