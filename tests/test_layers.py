"""The rooms of the library import only the rooms below them (read from the source, no import).

The tasks say what is asked; the pipeline runs it and the summary renders it, so the tasks
import neither; the fine-tuning builds its training set from the tasks, not from the pipeline;
the pure rooms import neither Ray nor torch.
"""

import ast
from pathlib import Path

import pytest

import crossmath

PACKAGE = Path(crossmath.__file__).parent


def imported_modules(room: str, package: Path = PACKAGE) -> dict[str, set[str]]:
    """Each module file under ``crossmath/<room>`` -> the modules it imports (top level or not)."""
    found = {}
    for path in sorted((package / room).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
        found[str(path.relative_to(package))] = names
    return found


def offending(room: str, forbidden: tuple[str, ...], package: Path = PACKAGE) -> list[str]:
    return [f"{path} imports {name}"
            for path, names in imported_modules(room, package).items()
            for name in sorted(names)
            if any(name == f or name.startswith(f + ".") for f in forbidden)]


@pytest.mark.parametrize("room, forbidden", [
    ("tasks", ("crossmath.pipeline", "crossmath.summary", "crossmath.tracking",
               "crossmath.finetuning", "crossmath.orchestration", "ray", "torch")),
    ("finetuning", ("crossmath.pipeline", "crossmath.orchestration")),
    ("pipeline", ("crossmath.finetuning", "crossmath.orchestration")),
    ("models", ("crossmath.pipeline", "crossmath.settings", "crossmath.tasks",
                "crossmath.finetuning", "crossmath.summary", "crossmath.tracking",
                "crossmath.orchestration")),
    ("core", ("crossmath.pipeline", "crossmath.summary", "crossmath.tasks", "crossmath.tracking",
              "crossmath.runtime", "ray", "torch")),
    ("puzzle", ("ray", "torch", "crossmath.settings", "crossmath.models")),
    ("drawing", ("ray", "torch")),
    ("metrics", ("ray", "torch")),
])
def test_a_room_imports_no_room_above_it(room, forbidden):
    assert imported_modules(room), f"crossmath/{room} has no modules: the test reads nothing"
    assert offending(room, forbidden) == []


def test_the_check_sees_a_forbidden_import(tmp_path):
    room = tmp_path / "room"
    room.mkdir()
    (room / "module.py").write_text("def f():\n    from crossmath.pipeline import calls\n")
    assert offending("room", ("crossmath.pipeline",), tmp_path) == [
        "room/module.py imports crossmath.pipeline"]
