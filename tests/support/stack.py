"""Test deployments on the real broker and database: each test gets its own database,
topics and consumer group, workers run as real `flowbus worker` processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from flowbus.config import Settings, TopicNames
from flowbus.devstack.kafka import KafkaBroker
from flowbus.devstack.postgres import PostgresServer
from flowbus.devstack.stack import prepare

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Stack:
    broker: KafkaBroker
    database: PostgresServer
    base: Path

    async def deployment(
        self,
        name: str,
        definitions: Iterable[dict[str, Any]],
        source_topics: Iterable[str] = ("orders",),
    ) -> Deployment:
        """A fresh deployment: its own database, topic names and consumer group.

        Topic names in the definitions (trigger topics and `send_event` topics) are
        rewritten to the deployment's own, as `Deployment.topic(name)` gives them.
        """
        suffix = uuid.uuid4().hex[:8]
        work = self.base / f"deploy-{suffix}"
        workflows = work / "workflows"
        workflows.mkdir(parents=True)
        for definition in definitions:
            document = _rename_topics(definition, suffix)
            (workflows / f"{document['id']}.json").write_bytes(orjson.dumps(document))
        db_name = f"t_{name.replace('-', '_')}_{suffix}"[:60]
        await asyncio.to_thread(self.database.ensure_database, db_name)
        topics = TopicNames(
            instances=f"{suffix}.instances",
            steps=f"{suffix}.steps",
            approvals=f"{suffix}.approvals",
            decisions=f"{suffix}.decisions",
            commands=f"{suffix}.commands",
            deadletter=f"{suffix}.deadletter",
            tasks=f"{suffix}.tasks",
            results=f"{suffix}.results",
        )
        settings = Settings(
            deployment=f"test-{name}",
            broker_url=self.broker.bootstrap_servers,
            database_url=self.database.url(db_name),
            source_topics=[f"{suffix}.{t}" for t in source_topics],
            workflows_dir=workflows,
            consumer_group=f"flowbus-{suffix}",
            topics=topics,
            log_format="json",
        )
        deployment = Deployment(
            settings=settings, dsn=self.database.dsn(db_name), work=work, suffix=suffix
        )
        await prepare(settings, workflows)
        return deployment


def _rename_topics(definition: dict[str, Any], suffix: str) -> dict[str, Any]:
    document = orjson.loads(orjson.dumps(definition))
    for trigger in document.get("triggers", []):
        if "topic" in trigger:
            trigger["topic"] = f"{suffix}.{trigger['topic']}"

    def rename(call: dict[str, Any]) -> None:
        config = call.get("config")
        if call.get("action") == "send_event" and isinstance(config, dict):
            config["topic"] = f"{suffix}.{config['topic']}"
        if call.get("action") in ("set_field", "create_record") and isinstance(config, dict):
            # The entity's topic, `entities.<entity>` unless the step names one.
            topic = config.get("topic") or f"entities.{config.get('entity')}"
            config["topic"] = f"{suffix}.{topic}"

    def visit(steps: list[dict[str, Any]]) -> None:
        for step in steps:
            rename(step)
            if isinstance(step.get("compensate"), dict):
                rename(step["compensate"])
            if isinstance(step.get("event"), dict):
                step["event"]["topic"] = f"{suffix}.{step['event']['topic']}"
            for branch in step.get("branches", []):
                visit(branch.get("steps", []))

    visit(document.get("steps", []))
    return document


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown, no offset commit, no flush."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Deployment:
    settings: Settings
    dsn: str
    work: Path
    suffix: str
    workers: list[Worker] = field(default_factory=list)

    def topic(self, name: str) -> str:
        """The test's own name of a source topic."""
        return f"{self.suffix}.{name}"

    def env(self) -> dict[str, str]:
        s = self.settings
        env = dict(os.environ)
        env.update(
            {
                "FLOWBUS_DEPLOYMENT": s.deployment,
                "FLOWBUS_BROKER_URL": s.broker_url,
                "FLOWBUS_DATABASE_URL": s.database_url,
                "FLOWBUS_SOURCE_TOPICS": orjson.dumps(s.source_topics).decode(),
                "FLOWBUS_WORKFLOWS_DIR": str(s.workflows_dir),
                "FLOWBUS_CONSUMER_GROUP": s.consumer_group,
                "FLOWBUS_LOG_FORMAT": "json",
                "FLOWBUS_LOG_LEVEL": "info",
                "FLOWBUS_TOPICS": s.topics.model_dump_json(),
            }
        )
        return env

    async def start_worker(
        self,
        wait_assigned: bool = True,
        timeout: float = 60,
        extra_env: dict[str, str] | None = None,
    ) -> Worker:
        log_path = self.work / f"worker-{len(self.workers)}.log"
        with log_path.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "flowbus", "worker"],
                cwd=REPO,
                env={**self.env(), **(extra_env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = Worker(process, log_path)
        self.workers.append(worker)
        if wait_assigned:
            await self.wait_for_log(worker, "worker.partitions_assigned", timeout)
        return worker

    async def wait_for_log(self, worker: Worker, needle: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in worker.log_text():
                return
            if worker.process.poll() is not None:
                raise AssertionError(
                    f"worker exited with {worker.process.returncode}:\n{worker.log_text()[-4000:]}"
                )
            await asyncio.sleep(0.1)
        raise AssertionError(
            f"no {needle!r} in worker log after {timeout}s:\n{worker.log_text()[-4000:]}"
        )

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()

    async def publish(
        self,
        topic: str,
        values: Iterable[bytes | dict[str, Any]],
        key: str | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.settings.broker_url, acks="all")
        await producer.start()
        try:
            futures = []
            for value in values:
                raw = value if isinstance(value, bytes) else orjson.dumps(value)
                futures.append(
                    await producer.send(
                        topic, value=raw, key=key.encode() if key else None, headers=headers or []
                    )
                )
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    async def read_events(
        self,
        topics: Iterable[str],
        until: Callable[[list[dict[str, Any]]], bool],
        timeout: float = 30,
    ) -> list[dict[str, Any]]:
        """Read `topics` from the beginning until `until(events)` holds (or fail on timeout).

        Each event is the decoded record value plus `_topic`, `_key` and `_offset`.
        """
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.broker_url, enable_auto_commit=False
        )
        await consumer.start()
        events: list[dict[str, Any]] = []
        try:
            partitions = []
            for topic in topics:
                await consumer._client.force_metadata_update()
                ids = consumer.partitions_for_topic(topic) or set()
                partitions.extend(TopicPartition(topic, p) for p in ids)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            deadline = time.monotonic() + timeout
            while not until(events):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"timed out after {timeout}s with {len(events)} events; last: {events[-3:]}"
                    )
                batch = await consumer.getmany(timeout_ms=int(min(remaining, 0.5) * 1000))
                for records in batch.values():
                    for record in records:
                        event = orjson.loads(record.value)
                        event["_topic"] = record.topic
                        event["_key"] = record.key.decode() if record.key else None
                        event["_offset"] = record.offset
                        events.append(event)
        finally:
            await consumer.stop()
        return events

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.dsn)
        for kind in ("json", "jsonb"):
            await conn.set_type_codec(
                kind,
                encoder=lambda v: orjson.dumps(v).decode(),
                decoder=orjson.loads,
                schema="pg_catalog",
            )
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()


def gap_free(events: list[dict[str, Any]]) -> bool:
    """Whether an instance's numbered events (`flowbusseq`) read so far are 1..n without a
    gap: outcome topics are read separately, so a late event on one may still be missing."""
    numbers = sorted({e["flowbusseq"] for e in events if "flowbusseq" in e})
    return numbers == list(range(1, len(numbers) + 1))
