"""The package's layout keeps its promises: the checks of the layout issue.

- No import cycle between modules, counting imports inside functions (a
  package's ``__init__`` counts as a module that imports what it
  re-exports).
- No module imports another module's private (``_name``) names.
- No function is longer than 80 lines.
- No module imports from a later stage of the data path (`DATA_PATH`).
- The module tree follows the data path, and a new CAM method is one
  registered subclass.
- No hidden per-model cache: no module- or class-level weak dictionary and
  no `functools` cache over a function taking a model (per-model state is
  an `explain_attn.graph.ModelState`, built and passed in the open), and
  only `explain_attn.graph` keeps a state on a model.
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
    """``(imported module, names)`` of every import of our package.

    Every import counts, at module level or inside a function: a cycle
    hidden in a function is still a cycle. ``from package import name``
    imports ``package`` (its ``__init__`` runs) and, when ``name`` is a
    submodule, that submodule too.
    """
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
            yield node.module, plain


def _packages_run_first(name, target):
    """The packages whose ``__init__`` runs when ``name`` imports ``target``.

    Importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` first,
    except the packages that contain the importer (they already run).
    """
    parts = target.split(".")
    for end in range(1, len(parts)):
        package = ".".join(parts[:end])
        if not name.startswith(package + "."):
            yield package


def _graph():
    modules = _modules()
    graph = {}
    private = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        edges = set()
        for target, names in _imports(tree, modules):
            for imported in [target, *_packages_run_first(name, target)]:
                if imported != name and imported in modules:
                    edges.add(imported)
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


def test_the_import_graph_counts_function_and_package_imports():
    modules = _modules()
    inside = ast.parse(
        "def f():\n    from explain_attn.data import synthetic\n"
    )
    found = [target for target, _ in _imports(inside, modules)]
    assert found == ["explain_attn.data.synthetic", "explain_attn.data"]
    # Importing a submodule runs its package's ``__init__`` first, unless
    # the importer is inside that package.
    runs = _packages_run_first(
        "explain_attn.report.build", "explain_attn.data.x"
    )
    assert list(runs) == ["explain_attn.data"]
    assert not list(
        _packages_run_first("explain_attn.data.a", "explain_attn.data.b")
    )


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


DATA_PATH = [
    # What every stage may use: the version, stage records, devices,
    # argument checks and run options, atomic writes, progress lines, maps
    # drawn over images, shards and their parts' checks.
    {
        "explain_attn",
        "stages",
        "devices",
        "options",
        "writing",
        "progress",
        "overlays",
        "sharding",
    },
    {"data"},
    # Pure functions over arrays: any later stage may score with them.
    {"metrics"},
    # Reading a Keras model's calls, nested models and traced layers
    # opened.
    {"graph", "tracing", "batching"},
    # Attention layers, and attention found in a model's graph.
    {"attention"},
    {"models"},
    {"explanations"},
    {"faithfulness"},
    {"report"},
    {"notebook"},
    {"cli", "__main__"},
]
"""The stages of the data path, earliest first: a module imports only from
its own stage and earlier ones."""


def _stage(module):
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else parts[0]
    for index, names in enumerate(DATA_PATH):
        if top in names:
            return index
    raise AssertionError(f"{module} is in no stage of DATA_PATH")


def test_the_stage_checker_finds_a_late_import():
    assert _stage("explain_attn.data.loaders") < _stage("explain_attn.report")
    assert _stage("explain_attn.graph") < _stage("explain_attn.attention.kinds")
    assert _stage("explain_attn") == _stage("explain_attn.devices")


def test_no_module_imports_from_a_later_stage():
    graph, _ = _graph()
    late = [
        f"{name} imports {target}"
        for name, targets in graph.items()
        for target in sorted(targets)
        if _stage(target) > _stage(name)
    ]
    assert late == []


_WEAK = {"WeakKeyDictionary", "WeakValueDictionary", "WeakSet"}
_CACHES = {"cache", "lru_cache", "cached_property"}
_MODEL_WORDS = ("model", "state", "network", "clone", "backbone", "entry")


def _name(node):
    """``"b"`` of ``a.b``, ``b`` or ``a.b(...)``."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    return getattr(node, "id", "")


def _hidden_caches(source, module="module"):
    """Weak dictionaries at module or class level, and `functools` caches
    over functions with a parameter naming a model, in ``source``."""
    tree = ast.parse(source)
    scopes = [tree, *(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef))]
    for scope in scopes:
        for node in scope.body:
            value = getattr(node, "value", None)
            if isinstance(node, ast.Assign | ast.AnnAssign) and value:
                if isinstance(value, ast.Call) and _name(value) in _WEAK:
                    yield f"{module}:{node.lineno} {_name(value)}"
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        cached = [d for d in node.decorator_list if _name(d) in _CACHES]
        arguments = [
            a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg)
        ]
        if cached and any(w in a for a in arguments for w in _MODEL_WORDS):
            yield f"{module}:{node.lineno} cache over {node.name}"


def test_the_cache_checker_finds_hidden_caches():
    source = (
        "import functools, weakref\n"
        "_STATES = weakref.WeakKeyDictionary()\n"
        "class Keeper:\n"
        "    kept = WeakValueDictionary()\n"
        "@functools.lru_cache(maxsize=None)\n"
        "def graph_of(model):\n"
        "    return model\n"
        "@functools.cache\n"
        "def schema():\n"
        "    return {}\n"
        "def local():\n"
        "    seen = weakref.WeakKeyDictionary()\n"
    )
    assert list(_hidden_caches(source)) == [
        "module:2 WeakKeyDictionary",
        "module:4 WeakValueDictionary",
        "module:6 cache over graph_of",
    ]


def test_no_hidden_per_model_cache():
    found = [
        cache
        for name, path in _modules().items()
        for cache in _hidden_caches(path.read_text(encoding="utf-8"), name)
    ]
    assert found == []


def test_only_the_graph_module_keeps_a_state_on_a_model():
    # The one place a `ModelState` lives besides the calls it is passed
    # to: ``model.explain_attn_state``, set by `graph.model_state`.
    keepers = sorted(
        name
        for name, path in _modules().items()
        if "STATE_ATTRIBUTE" in path.read_text(encoding="utf-8")
        or "explain_attn_state" in path.read_text(encoding="utf-8")
    )
    assert keepers == ["explain_attn.graph"]
