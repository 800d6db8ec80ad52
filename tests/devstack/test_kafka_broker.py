"""The managed local Kafka broker: a real KRaft broker started from Maven-fetched jars."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from flowbus.devstack.kafka import BrokerError, KafkaBroker, fetch_kafka
from flowbus.devstack.ports import free_port
from flowbus.devstack.server import process_cmdline

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    with KafkaBroker(tmp_path_factory.mktemp("kafka")) as running:
        yield running


async def create_topic(bootstrap: str, name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()


async def list_topics(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics: list[str] = await admin.list_topics()
        return topics
    finally:
        await admin.close()


def test_fetch_is_a_no_op_when_cached() -> None:
    first = fetch_kafka()
    started = time.monotonic()
    assert fetch_kafka() == first
    assert time.monotonic() - started < 1
    assert any(p.name.startswith("kafka_2.13-") for p in first.glob("*.jar"))


def test_fetch_redoes_an_interrupted_fetch(tmp_path: Path) -> None:
    libs = fetch_kafka(cache_dir=tmp_path)
    (tmp_path / "3.9.1" / "complete.json").unlink()
    next(libs.glob("kafka-clients-*.jar")).unlink()

    assert fetch_kafka(cache_dir=tmp_path) == libs
    assert any(libs.glob("kafka-clients-*.jar"))


async def test_broker_round_trips_a_message(broker: KafkaBroker) -> None:
    await create_topic(broker.bootstrap_servers, "round-trip")
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait("round-trip", b"hello", key=b"k1")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        "round-trip", bootstrap_servers=broker.bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        message = await consumer.getone()
    finally:
        await consumer.stop()
    assert (message.key, message.value) == (b"k1", b"hello")


def test_broker_listens_on_loopback_only(broker: KafkaBroker) -> None:
    assert broker.bootstrap_servers == f"127.0.0.1:{broker.port}"
    assert (
        f"PLAINTEXT://127.0.0.1:{broker.port}"
        in (broker.data_dir / "server.properties").read_text()
    )


async def test_topics_survive_a_restart_on_the_same_data_dir(tmp_path: Path) -> None:
    broker = KafkaBroker(tmp_path)
    broker.start()
    await create_topic(broker.bootstrap_servers, "kept")
    pid = broker.pid
    assert pid is not None
    broker.stop()
    assert process_cmdline(pid) is None
    assert not broker.is_running()

    with KafkaBroker(tmp_path) as restarted:
        assert "kept" in await list_topics(restarted.bootstrap_servers)


def run_then_kill_runner(*args: str) -> None:
    """Start ``python -m flowbus.devstack.kafka run`` and SIGKILL it once ready."""
    command = [sys.executable, "-m", "flowbus.devstack.kafka", "run", *args]
    runner = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert runner.stdout is not None
    assert "ready" in runner.stdout.readline()
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait()


def test_start_replaces_a_broker_left_by_a_killed_run(tmp_path: Path) -> None:
    port = free_port()
    run_then_kill_runner("--port", str(port), "--data-dir", str(tmp_path))
    orphan = int((tmp_path / "kafka.pid").read_text())
    assert process_cmdline(orphan) is not None

    with KafkaBroker(tmp_path, port=port) as broker:
        assert process_cmdline(orphan) is None
        assert broker.is_running()


def test_start_fails_clearly_when_the_port_is_taken(broker: KafkaBroker, tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match=f"port {broker.port} .* already in use"):
        KafkaBroker(tmp_path, port=broker.port).start()
