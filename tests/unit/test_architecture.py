"""The layers of DESIGN.md, checked: a pure core, no import circles, all SQL in store/."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowbus.definitions.loader import cycles

PACKAGE = Path(__file__).resolve().parents[2] / "flowbus"

CORE = (
    "flowbus.definitions",
    "flowbus.engine",
    "flowbus.steps",
    "flowbus.actions",
    "flowbus.expressions",
    "flowbus.matching",
    "flowbus.envelope",
    "flowbus.limits",
    "flowbus.storable",
    "flowbus.times",
)
"""The functional core: the language, the engine, step types, inline actions, expressions,
matching, the envelope, and how times are written and read."""

IO_LIBRARIES = (
    "httpx",
    "httpcore",
    "sqlalchemy",
    "asyncpg",
    "aiokafka",
    "kafka",
    "faust",
    "fastapi",
    "starlette",
    "uvicorn",
    "pgserver",
    "prometheus_client",
    "aiohttp",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def core_modules() -> list[str]:
    return [name for name in modules() if name.startswith(CORE)]


def imported(path: Path, known: set[str]) -> Iterator[str]:
    """flowbus modules `path` imports, at module level or inside functions alike (only
    imports guarded by `if TYPE_CHECKING:` are left out: they never run)."""
    tree = ast.parse(path.read_text())
    package = module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only.update(id(child) for child in ast.walk(node))
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                prefix = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*prefix, base] if base else prefix)
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module_name(path):
                yield name


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: set(imported(path, known)) for name, path in found.items()}


def test_the_core_loads_no_io_library() -> None:
    script = (
        "import importlib, json, sys\n"
        f"for name in {core_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    loaded = set(json.loads(output))
    offenders = sorted(
        name for name in loaded if name.split(".")[0] in IO_LIBRARIES and "." not in name
    )
    assert not offenders, f"the core loads I/O libraries: {offenders}"


def test_the_core_imports_nothing_from_the_shell() -> None:
    graph = import_graph()
    leaks = {
        name: sorted(
            target
            for target in graph[name]
            if not target.startswith((*CORE, "flowbus.__init__")) and target != "flowbus"
        )
        for name in core_modules()
    }
    assert not {name: targets for name, targets in leaks.items() if targets}


def test_there_are_no_import_circles() -> None:
    graph = {name: sorted(targets) for name, targets in import_graph().items()}
    assert cycles(graph) == []


SQL = re.compile(
    r"\bSELECT\s[^;]*?\sFROM\s|\bINSERT\s+INTO\s|\bUPDATE\s+\w+\s+SET\s|\bDELETE\s+FROM\s|"
    r"\bpg_try_advisory|\bpg_notify\b|\bCREATE\s+(TABLE|INDEX|DATABASE)\b"
)
QUERY_CALLS = re.compile(
    r"await\s+[\w.]+\.(execute|executemany|fetch|fetchrow|fetchval|scalar|scalars|stream)\("
)
SQL_BUILDERS = re.compile(r"^from sqlalchemy import .*\b(select|insert|update|delete|text)\b", re.M)
DEV_TOOLING = ("devstack", "bench")
"""Local servers and benchmarks: never imported at run time, free to set up their data."""


@pytest.mark.parametrize(
    "path",
    [
        p
        for p in sorted(PACKAGE.rglob("*.py"))
        if p.relative_to(PACKAGE).parts[0] not in ("store", *DEV_TOOLING)
    ],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_no_sql_outside_the_store(path: Path) -> None:
    source = path.read_text()
    strings = [
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]
    assert not [s for s in strings if SQL.search(s)], "SQL text outside store/"
    assert not QUERY_CALLS.search(source), "a query call outside store/"
    assert not SQL_BUILDERS.search(source), "a SQL statement builder outside store/"
