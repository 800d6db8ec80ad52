"""The local broker and database and the benchmarks are dev tooling: a deployment never
loads them, and `flowbus dev` without the `local` extra says how to get it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "flowbus"
DEV_TOOLING = ("flowbus.devstack", "flowbus.bench", "pgserver")


def runtime_modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[1] in ("devstack", "bench", "__main__"):
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_no_runtime_module_loads_dev_tooling() -> None:
    script = (
        "import importlib, json, sys\n"
        f"for name in {runtime_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    loaded = [name for name in json.loads(output) if name.startswith(DEV_TOOLING)]
    assert loaded == []


def test_flowbus_dev_without_the_local_extra_says_how_to_get_it(tmp_path: Path) -> None:
    hide_pgserver = (
        "import sys\n"
        "sys.modules['pgserver'] = None  # as if the extra were not installed\n"
        "sys.argv = ['flowbus', 'dev']\n"
        "from flowbus.cli.main import main\n"
        "main()\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "FLOWBUS_PG_BIN"}
    env["FLOWBUS_STATE_DIR"] = str(tmp_path / "state")
    result = subprocess.run(
        [sys.executable, "-c", hide_pgserver],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("Error: flowbus dev needs the local extra")
    assert "pip install 'flowbus[local]'" in result.stderr
    assert not (tmp_path / "state").exists()
