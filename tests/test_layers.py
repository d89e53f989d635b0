"""The package's imports run one way: from the command line down to the leaves, never back.

Every module of ``zoo/`` is parsed, and every import it makes counts, imports inside functions
included: what a module imports when one of its functions runs, it depends on. Only imports
under ``if TYPE_CHECKING:`` are left out (they never run), and the lazy loader of
``zoo/__init__.py``, which imports by computed name for the public face. Importing ``zoo.a.b``
from outside the package ``zoo.a`` runs ``zoo/a/__init__.py`` too, so it counts as importing
``zoo.a`` as well.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "zoo"

# Bottom to top. A module may import modules of its own layer or of layers below it; the
# imports within a layer must not form a cycle. A new module must be given its layer here.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "leaves",
        (
            "zoo._version",
            "zoo.text",
            "zoo.limits",
            "zoo.options",
            "zoo.files",
            "zoo.locks",
            "zoo.errors",
            "zoo.atomic",
            "zoo.preprocessing",
            "zoo.prediction",
            "zoo.devices",
            "zoo.data",
            "zoo.corruptions",
            "zoo.digits",
            "zoo.layers*",
            "zoo.metrics*",
        ),
    ),
    (
        "formats and tables",
        ("zoo.registry", "zoo.pretrained", "zoo.weights", "zoo.report", "zoo.hub", "zoo.cards"),
    ),
    ("below the models", ("zoo.sharing",)),
    ("models", ("zoo.models*",)),
    ("factory", ("zoo.factory",)),
    ("loading", ("zoo.loading",)),
    (
        "features",
        (
            "zoo.evaluation",
            "zoo.images",
            "zoo.plot",
            "zoo.temperature",
            "zoo.laplace",
            "zoo.shift",
            "zoo.comparison",
            "zoo.server",
            "zoo.training*",
        ),
    ),
    ("descriptions", ("zoo.publishing", "zoo.info")),
    ("faces", ("zoo", "zoo.cli", "zoo.__main__")),
]
# Modules that may import by a computed name: the public face's lazy loader, and the Hub client,
# which looks for the HTTP libraries huggingface_hub may be built on.
_IMPORTS_BY_NAME = {"zoo", "zoo.hub"}


def module_names() -> dict[str, Path]:
    names = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def layer_of(module: str) -> int:
    for number, (_, patterns) in enumerate(LAYERS):
        for pattern in patterns:
            stem = pattern.rstrip("*")
            if module == stem or (pattern.endswith("*") and module.startswith(stem + ".")):
                return number
    raise LookupError(module)


def imports_of(module: str, path: Path, modules: set[str]) -> set[str]:
    """The zoo modules ``module`` imports, anywhere in it but under ``if TYPE_CHECKING:``."""
    found: set[str] = set()
    for name in _imported_names(ast.parse(path.read_text(encoding="utf-8"))):
        target = _owning_module(name, modules)
        if target is None or target == module:
            continue
        found.add(target)
        found |= _packages_run(target, module)
    return found


def _imported_names(tree: ast.AST) -> Iterator[str]:
    for node in _walk_outside_type_checking(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


_TYPE_CHECKING = {"TYPE_CHECKING", "typing.TYPE_CHECKING"}


def _walk_outside_type_checking(node: ast.AST) -> Iterator[ast.AST]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and ast.unparse(child.test) in _TYPE_CHECKING:
            for orelse in child.orelse:
                yield orelse
                yield from _walk_outside_type_checking(orelse)
            continue
        yield child
        yield from _walk_outside_type_checking(child)


def _owning_module(name: str, modules: set[str]) -> str | None:
    """The module ``name`` (a module, or a name imported from one) lives in, if in zoo."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _packages_run(target: str, importer: str) -> set[str]:
    """The packages whose ``__init__`` importing ``target`` runs, seen from ``importer``."""
    packages = set()
    parts = target.split(".")
    for end in range(2, len(parts)):
        package = ".".join(parts[:end])
        if not (importer == package or importer.startswith(package + ".")):
            packages.add(package)
    return packages


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    return {name: imports_of(name, path, set(modules)) for name, path in modules.items()}


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return [
        f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for module, targets in sorted(graph.items())
        for target in sorted(targets)
        if layer_of(target) > layer_of(module)
    ]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_every_module_has_a_layer() -> None:
    unplaced = [name for name in module_names() if _has_no_layer(name)]
    assert unplaced == [], f"give these modules a layer in LAYERS: {unplaced}"


def _has_no_layer(name: str) -> bool:
    try:
        layer_of(name)
    except LookupError:
        return True
    return False


def test_imports_run_one_way_down() -> None:
    assert upward_imports(import_graph()) == []


def test_no_modules_import_each_other_in_a_circle() -> None:
    assert cycles(import_graph()) == []


def test_a_model_never_imports_what_loads_publishes_or_describes_it() -> None:
    graph = import_graph()
    above = {"zoo.factory", "zoo.loading", "zoo.publishing", "zoo.info", "zoo.evaluation"}
    for module in (name for name in graph if name.startswith("zoo.models")):
        assert graph[module] & above == set(), module


def test_only_the_public_face_imports_zoo_modules_by_computed_name() -> None:
    """No ``import_module`` or ``__import__``, however imported, and no relative import, which
    the graph above would not see."""
    for name, path in module_names().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        relative = [node for node in ast.walk(tree) if getattr(node, "level", 0)]
        assert relative == [], f"{name} imports relatively; import zoo.<module> instead"
        if name in _IMPORTS_BY_NAME:
            continue
        by_name = [
            ast.unparse(node)
            for node in ast.walk(tree)
            if (isinstance(node, ast.Call) and ast.unparse(node.func).endswith("__import__"))
            or (isinstance(node, ast.Import) and any(a.name == "importlib" for a in node.names))
            or (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("importlib"))
        ]
        assert by_name == [], f"{name} imports by name ({by_name}); import the module itself"


def test_the_public_face_imports_only_leaves_when_zoo_is_imported() -> None:
    """``zoo/__init__.py`` runs before every other module: what it imports at once must be a
    leaf, or every module would depend on it."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    modules = set(module_names())
    eager = {
        _owning_module(f"{node.module}.{alias.name}", modules)
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("zoo")
        for alias in node.names
    }
    assert eager and all(layer_of(module) == 0 for module in eager), eager


def test_the_checks_find_a_cycle_and_an_upward_import() -> None:
    """The checks above can fail: on a made-up graph with both faults, they report them."""
    graph = {"zoo.models.base": {"zoo.publishing"}, "zoo.publishing": {"zoo.models.base"}}
    assert cycles(graph) == [["zoo.models.base", "zoo.publishing"]]
    assert upward_imports(graph) == [
        "zoo.models.base (models) imports zoo.publishing (descriptions)"
    ]


@pytest.mark.parametrize(
    ("importer", "target", "run"),
    [
        ("zoo.info", "zoo.training.log", {"zoo.training"}),
        ("zoo.training.trainer", "zoo.training.log", set()),
        ("zoo.models.lenet", "zoo.models.base", set()),
    ],
)
def test_importing_a_submodule_runs_its_packages_init(
    importer: str, target: str, run: set[str]
) -> None:
    assert _packages_run(target, importer) == run


def test_a_model_loads_its_own_weights_without_importing_what_loads_or_publishes() -> None:
    """At run time too: a fresh process builds official weights from a model module alone,
    and saves them, without the factory, loading, publishing or the Hub client."""
    script = (
        "import sys, tempfile\n"
        "from zoo.models.lenet import mc_dropout_lenet\n"
        "model = mc_dropout_lenet(weights='mnist')\n"
        "model.save_pretrained(tempfile.mkdtemp())\n"
        "above = ('zoo.factory', 'zoo.loading', 'zoo.publishing', 'zoo.info', 'zoo.hub')\n"
        "print(sorted(name for name in above if name in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_evaluating_and_training_never_resolve_names() -> None:
    """Names, folders and Hub ids are resolved in the public face (zoo.evaluate, the command
    line); the evaluation and the trainer take model objects. (They reach the Hub client only
    through ``model.push_to_hub``.)"""
    graph = import_graph()
    for module in ("zoo.evaluation", "zoo.training.trainer"):
        assert reachable(graph, module) & {"zoo.loading", "zoo.publishing", "zoo.info"} == set()


def test_only_imports_that_never_run_are_left_out() -> None:
    code = (
        "if TYPE_CHECKING:\n    import zoo.info\n"
        "if not TYPE_CHECKING:\n    import zoo.publishing\n"
        "def later():\n    from zoo.loading import load\n"
    )
    assert list(_imported_names(ast.parse(code))) == ["zoo.publishing", "zoo.loading.load"]
