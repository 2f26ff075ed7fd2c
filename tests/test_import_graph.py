"""The import graph of ``crossmath/`` has no cycle, and no import inside a function hides one.

Read from the source with ``ast`` (nothing is imported): an edge for each ``import`` of a
crossmath module, and for the packages such an import runs on the way (importing
``crossmath.pipeline.calls`` runs ``crossmath/pipeline/__init__.py``). Imports under
``if TYPE_CHECKING:`` never run and are left out. Imports inside functions (kept there so that
the driver does not load torch, Ray or MLflow) count too: were one of them closing a cycle,
moving it to the top of its module would break the import, so it would only be hiding it.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "crossmath"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


@functools.cache  # each file read once for all the tests here
def imports_of(name: str, *, in_functions: bool) -> frozenset[str]:
    """Every module name module ``name`` imports, crossmath's or not (with those in functions
    or not); ``from a import b`` gives both ``a`` and ``a.b``."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue  # annotations only: never imported at run time
            at_top = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, (ast.Import, ast.ImportFrom)) and (at_top or in_functions):
                found.update(_targets(child, package))
            visit(child, at_top)

    visit(ast.parse(path.read_text(encoding="utf-8")), True)
    return frozenset(found)


def imported(name: str, *, in_functions: bool) -> set[str]:
    """The crossmath modules module ``name`` imports (with those in functions or not)."""
    found = {target for target in imports_of(name, in_functions=in_functions) if target in MODULES}
    for target in list(found):  # the packages an import runs on its way to the module
        parts = target.split(".")
        for end in range(2, len(parts)):
            parent = ".".join(parts[:end])
            if parent in MODULES and not name.startswith(parent + "."):
                found.add(parent)
    found.discard(name)
    return found


def _targets(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: from the module's package, up level - 1
        parents = package.split(".")[:len(package.split(".")) - node.level + 1]
        base = ".".join([*parents, base] if base else parents)
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(graph[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while not component or component[-1] != module:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


@pytest.mark.parametrize("in_functions", [False, True], ids=["module level", "with lazy imports"])
def test_the_import_graph_has_no_cycle(in_functions):
    graph = {name: imported(name, in_functions=in_functions) for name in MODULES}
    assert sum(map(len, graph.values())) > len(MODULES)  # the graph was read
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle_through_a_lazy_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({**graph, "c": set()}) == []


# --- the doors stay light ----------------------------------------------------------------------

HEAVY = ("torch", "transformers", "peft", "mlflow", "ray")  # seconds of CPU to import, together
# Commands whose door (every option checked) is reached without any of them: a wrong option, a
# ``crossmath check`` and ``--help`` answer in about a second. The job's own heavy modules load
# in ``main``, past the door (``crossmath.report`` reads MLflow as its job, so is left out).
LIGHT_COMMANDS = ("crossmath.run", "crossmath.train", "crossmath.serve", "crossmath.score",
                  "crossmath.render", "crossmath.generate", "crossmath.lint", "crossmath.cli")


def loaded_on_import(name: str) -> set[str]:
    """The crossmath modules that importing ``name`` runs: its module-level imports, followed."""
    loaded, waiting = set(), [name]
    while waiting:
        module = waiting.pop()
        if module not in loaded:
            loaded.add(module)
            waiting.extend(imported(module, in_functions=False))
    return loaded


def heavy_imports(name: str) -> list[str]:
    """Each module-level import of a ``HEAVY`` package on the way of importing ``name``."""
    return sorted(f"{module} imports {target}" for module in loaded_on_import(name)
                  for target in imports_of(module, in_functions=False)
                  if target.split(".")[0] in HEAVY)


@pytest.mark.parametrize("command", LIGHT_COMMANDS)
def test_a_command_reaches_its_door_without_torch_ray_or_mlflow(command):
    assert len(loaded_on_import(command)) > 5  # the imports were followed
    assert heavy_imports(command) == []


def test_the_check_sees_a_heavy_import_on_the_way():
    assert "crossmath.finetuning.modeling imports torch" in heavy_imports("crossmath.finetuning.job")
