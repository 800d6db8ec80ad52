"""The SDK installs into a team's service without the engine's dependencies."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("sqlalchemy", "asyncpg", "faust", "fastapi", "starlette", "uvicorn", "pgserver", "httpx")


def test_importing_the_sdk_loads_no_engine_dependency() -> None:
    script = (
        "import sys, flowbus.sdk, flowbus.sdk.worker\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""
