"""The layout's rules, read from the source with `ast` (no import, no TensorFlow).

- Each subpackage of derive/ imports only the subpackages its row of ALLOWED names;
  the table has no cycle, so imports flow one way: cli -> report -> symbolic, exact,
  tape -> models, problem -> common, and render reads the facts, never the reverse.
- No two modules import each other, directly or around a loop. Every import counts:
  at the top, inside a function, or under ``if TYPE_CHECKING``.
- Only derive/tape/ imports TensorFlow.
- No module is longer than MAX_LINES; LONGER lists any exception with its reason.
- Each subpackage's ``__init__.py`` is a docstring only (importing one module never
  loads its neighbours), saying the package's job and, on a line ``May import: ...``,
  the same subpackages as ALLOWED.

docs/architecture.md explains the rules.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "derive"

# subpackage -> the subpackages it may import (besides itself)
ALLOWED: dict[str, frozenset[str]] = {
    "common": frozenset(),
    "models": frozenset({"common"}),
    "problem": frozenset({"models", "common"}),
    "symbolic": frozenset({"problem", "models", "common"}),
    "tape": frozenset({"problem", "models", "common"}),
    "exact": frozenset({"symbolic", "tape", "problem", "models", "common"}),
    "report": frozenset({"exact", "symbolic", "tape", "problem", "models", "common"}),
    "render": frozenset({"report", "exact", "symbolic", "problem", "models", "common"}),
    "handouts": frozenset(
        {"render", "report", "exact", "symbolic", "tape", "problem", "models", "common"}
    ),
    "cli": frozenset(
        {"handouts", "render", "report", "exact", "symbolic", "tape", "problem", "models", "common"}
    ),
}
# The package's own front: derive/__init__.py (derive.build_report, and the renderer a
# Report shows itself with in Jupyter) and derive/__main__.py. Nothing imports them.
FRONT = {"derive", "derive.__main__"}
FRONT_MAY_IMPORT = frozenset({"cli", "report", "render", "common"})

MAX_LINES = 400
LONGER: dict[str, str] = {}  # "derive/x/y.py": "why it may be longer"

TENSORFLOW = ("tensorflow", "keras", "tf_keras")


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


@cache
def imports(name: str) -> tuple[str, ...]:
    """Every module `name` imports, anywhere in its text, as dotted names; outside
    derive only the top-level name (``tensorflow``)."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    package = name if _is_package(name) else name.rpartition(".")[0]
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target in MODULES and _is_package(target):
                # `from ..exact import reference`: the module, if it is one
                subs = [f"{target}.{alias.name}" for alias in node.names]
                found += [sub for sub in subs if sub in MODULES] or [target]
            else:
                found.append(target)
    return tuple(
        module if module.split(".")[0] == "derive" else module.split(".")[0] for module in found
    )


def subpackage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else None


def test_every_module_sits_in_a_subpackage_or_is_the_front() -> None:
    strays = [name for name in MODULES if name not in FRONT and subpackage(name) is None]
    assert not strays, f"modules outside the subpackages: {strays}"
    folders = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert folders == set(ALLOWED)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_import_of_derive_names_a_module_that_exists(module: str) -> None:
    # Type-only imports are never run: a stale path there would go unnoticed.
    missing = [t for t in imports(module) if t.split(".")[0] == "derive" and t not in MODULES]
    assert not missing, f"{module} imports modules that do not exist: {missing}"


def test_the_table_of_allowed_imports_has_no_cycle() -> None:
    done: set[str] = set()

    def visit(package: str, path: tuple[str, ...]) -> None:
        assert package not in path, f"cycle: {' -> '.join((*path, package))}"
        if package not in done:
            for other in ALLOWED[package]:
                visit(other, (*path, package))
            done.add(package)

    for package in ALLOWED:
        visit(package, ())


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_follow_the_table(module: str) -> None:
    own = subpackage(module)
    allowed = FRONT_MAY_IMPORT if module in FRONT else ALLOWED[own] | {own}
    wrong = []
    for target in imports(module):
        if target in FRONT:
            wrong.append(f"{target} (the package's front; nothing imports it)")
        elif target.startswith("derive.") and subpackage(target) not in allowed:
            wrong.append(target)
    assert not wrong, f"{module} ({own or 'front'}) may not import {wrong}"


def test_no_import_cycle_between_modules() -> None:
    graph = {
        name: {target for target in imports(name) if target in MODULES and target != name}
        for name in MODULES
    }
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                loop = [*path[path.index(target) :], target]
                raise AssertionError(f"import cycle: {' -> '.join(loop)}")
            if target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_only_the_tape_imports_tensorflow() -> None:
    importers = sorted(
        name
        for name in MODULES
        if subpackage(name) != "tape" and set(imports(name)) & set(TENSORFLOW)
    )
    assert not importers, f"TensorFlow imported outside derive/tape: {importers}"


def test_modules_are_short_enough_to_read_in_one_sitting() -> None:
    lengths = {
        str(path.relative_to(PACKAGE.parent)): len(path.read_text(encoding="utf-8").splitlines())
        for path in MODULES.values()
    }
    long = {path: n for path, n in lengths.items() if n > MAX_LINES and path not in LONGER}
    assert not long, f"over {MAX_LINES} lines: {long}"
    stale = [path for path in LONGER if lengths.get(path, 0) <= MAX_LINES]
    assert not stale, f"listed as longer but are not: {stale}"


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_subpackage_says_its_job_and_what_it_may_import(package: str) -> None:
    init = PACKAGE / package / "__init__.py"
    tree = ast.parse(init.read_text(encoding="utf-8"))
    docstring = ast.get_docstring(tree)
    assert docstring, f"{init} has no docstring"
    assert all(
        isinstance(node, ast.Expr)
        or (isinstance(node, ast.ImportFrom) and node.module == "__future__")
        for node in tree.body
    ), f"{init} should hold its docstring only"
    line = re.search(r"^May import: (.*)$", docstring, re.M)
    assert line, f"{init} has no line 'May import: ...'"
    named = set(re.findall(r"\b[a-z]+\b", line.group(1))) - {"nothing", "and", "only"}
    assert named == ALLOWED[package], f"{init} says {sorted(named)}"


def test_the_package_list_ships_every_subpackage() -> None:
    # `pip install .` (not only -e) must carry every subpackage: pyproject lists them.
    tomllib = pytest.importorskip("tomllib")
    pyproject = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(pyproject["tool"]["setuptools"]["packages"])
    assert {"derive", *(f"derive.{package}" for package in ALLOWED)} <= listed
