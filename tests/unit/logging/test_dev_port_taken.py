"""`flowbus dev` with a taken port says so in one line that names the setting to change."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowbus.devstack.ports import free_port

FLOWBUS = str(Path(sys.executable).parent / "flowbus")


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def run_dev(
    tmp_path: Path, broker_port: int, database_port: int
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "FLOWBUS_STATE_DIR": str(tmp_path / "state"),
        "FLOWBUS_BROKER_URL": f"127.0.0.1:{broker_port}",
        "FLOWBUS_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{database_port}/flowbus",
    }
    return subprocess.run(
        [FLOWBUS, "dev"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


def test_a_taken_broker_port_is_one_line_naming_broker_url(tmp_path: Path, taken_port: int) -> None:
    result = run_dev(tmp_path, taken_port, free_port())
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1
    assert f"port {taken_port} on 127.0.0.1 is already in use" in errors[0]
    assert "set broker_url to a free port, e.g. FLOWBUS_BROKER_URL=127.0.0.1:" in errors[0]


@pytest.mark.integration  # starts and stops a real broker meanwhile: a few seconds
def test_a_taken_database_port_is_one_line_naming_database_url(
    tmp_path: Path, taken_port: int
) -> None:
    result = run_dev(tmp_path, free_port(), taken_port)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1
    assert f"port {taken_port} on 127.0.0.1 is already in use" in errors[0]
    assert "set database_url to a free port, e.g. FLOWBUS_DATABASE_URL=postgresql" in errors[0]
