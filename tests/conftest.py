"""Shared by every test: the real broker and database, started once per session."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from flowbus.devstack.kafka import KafkaBroker
from flowbus.devstack.postgres import PostgresServer
from tests.support.stack import Stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A real Kafka broker and PostgreSQL server for the whole session."""
    base = tmp_path_factory.mktemp("stack")
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
