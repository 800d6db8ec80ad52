"""Shared by every test: the real broker and database, started once per session."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from flowbus.devstack.kafka import KafkaBroker
from flowbus.devstack.postgres import PostgresServer
from tests.support.stack import Stack


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """A real Kafka broker and PostgreSQL server for the whole session.

    Their files live outside pytest's temporary base: every pytest run makes that base
    private again (mode 0700), which would cut off the server's unprivileged user from its
    data directory in the middle of another session running beside it.
    """
    base = Path(tempfile.mkdtemp(prefix="flowbus-tests-"))
    broker = KafkaBroker(base / "kafka")
    database = PostgresServer(base / "postgres", fast_unsafe=True)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(broker.start), pool.submit(database.start)]
        errors = [f.exception() for f in futures]
    try:
        for error in errors:
            if error is not None:
                raise error
        yield Stack(broker=broker, database=database, base=base)
    finally:
        database.stop()
        broker.stop()
        shutil.rmtree(base, ignore_errors=True)
