"""The managed local PostgreSQL server: real PostgreSQL binaries on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from flowbus.devstack.ports import free_port
from flowbus.devstack.postgres import DatabaseServerError, PostgresServer
from flowbus.devstack.server import process_cmdline, read_pid

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    with PostgresServer(tmp_path_factory.mktemp("pg") / "data", fast_unsafe=True) as running:
        yield running


async def fetch_one(dsn: str, query: str) -> object:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


async def test_server_answers_queries_with_the_requested_settings(server: PostgresServer) -> None:
    dsn = server.dsn("postgres")
    assert await fetch_one(dsn, "SELECT 1") == 1
    assert await fetch_one(dsn, "SHOW max_connections") == "200"
    assert await fetch_one(dsn, "SHOW shared_buffers") == "256MB"
    assert await fetch_one(dsn, "SHOW fsync") == "off"
    assert await fetch_one(dsn, "SHOW listen_addresses") == "127.0.0.1"


async def test_ensure_database_creates_it_once(server: PostgresServer) -> None:
    assert server.ensure_database("orders") is True
    assert server.ensure_database("orders") is False
    assert await fetch_one(server.dsn("orders"), "SELECT current_database()") == "orders"


def test_url_names_asyncpg_driver_port_and_database(server: PostgresServer) -> None:
    assert server.url() == f"postgresql+asyncpg://postgres@127.0.0.1:{server.port}/flowbus"
    assert server.url("x").endswith(f":{server.port}/x")


async def test_data_survives_a_restart_on_the_same_data_dir(tmp_path: Path) -> None:
    pg = PostgresServer(tmp_path / "data", fast_unsafe=True)
    pg.start()
    conn = await asyncpg.connect(pg.dsn("postgres"))
    await conn.execute("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
    await conn.close()
    pid = pg.pid
    assert pid is not None
    pg.stop()
    pg.stop()
    assert process_cmdline(pid) is None

    with PostgresServer(tmp_path / "data", fast_unsafe=True) as restarted:
        assert await fetch_one(restarted.dsn("postgres"), "SELECT v FROM kept") == "still here"


def run_then_kill_runner(*args: str) -> None:
    """Start ``python -m flowbus.devstack.postgres run`` and SIGKILL it once ready."""
    command = [sys.executable, "-m", "flowbus.devstack.postgres", "run", *args]
    runner = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert runner.stdout is not None
    assert "ready" in runner.stdout.readline()
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait()


async def test_start_replaces_a_server_left_by_a_killed_run(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run_then_kill_runner("--fast-unsafe", "--port", str(free_port()), "--data-dir", str(data))
    orphan = read_pid(data / "postmaster.pid")
    assert orphan is not None
    assert process_cmdline(orphan) is not None

    with PostgresServer(data, fast_unsafe=True) as pg:
        assert process_cmdline(orphan) is None
        assert await fetch_one(pg.dsn("flowbus"), "SELECT 1") == 1


def test_start_fails_clearly_when_the_port_is_taken(server: PostgresServer, tmp_path: Path) -> None:
    with pytest.raises(DatabaseServerError, match=f"port {server.port} .* already in use"):
        PostgresServer(tmp_path / "data", port=server.port).start()
