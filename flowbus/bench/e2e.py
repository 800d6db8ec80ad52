"""`flowbus bench e2e`: completed three-step instances per second, and trigger-to-completion
latency at a paced load, on a real broker and PostgreSQL started for the run.

The workflow has a condition, a set_variables and a send_event step. Each trigger event
carries the time it was sent; the bench reads `flowbus.instance.completed` back off Kafka,
so a measured latency includes consumption, the transaction, the outbox relay and the
broker round trip.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import orjson
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from flowbus.config import Settings, TopicNames
from flowbus.devstack.kafka import KafkaBroker
from flowbus.devstack.postgres import PostgresServer
from flowbus.devstack.stack import prepare

WORKFLOW: dict[str, Any] = {
    "id": "bench-three-steps",
    "triggers": [
        {"topic": "bench-orders", "type": "bench.order", "transform": {"expression": "data"}}
    ],
    "steps": [
        {
            "id": "check",
            "type": "condition",
            "condition": "input.amount > 100.0",
            "onTrue": "flag",
            "onFalse": "announce",
        },
        {
            "id": "flag",
            "type": "action",
            "action": "set_variables",
            "config": {"review": True},
            "next": "announce",
        },
        {
            "id": "announce",
            "type": "action",
            "action": "send_event",
            "config": {
                "topic": "bench-out",
                "type": "bench.done",
                "data": {"id": "{{ input.id }}"},
            },
        },
    ],
    "output": {"sent": "{{ input.sent }}"},
}


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Bench:
    def __init__(self, base: Path, workers: int, unsafe: bool) -> None:
        self.broker = KafkaBroker(base / "kafka")
        self.database = PostgresServer(base / "postgres", fast_unsafe=unsafe)
        self.base = base
        self.workers = workers
        self.processes: list[subprocess.Popen[bytes]] = []
        self.settings: Settings | None = None

    def __enter__(self) -> Bench:
        with ThreadPoolExecutor(max_workers=2) as pool:
            for future in [pool.submit(self.broker.start), pool.submit(self.database.start)]:
                future.result()
        self.database.ensure_database("bench")
        return self

    def __exit__(self, *_: object) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        self.database.stop()
        self.broker.stop()

    def _start_workers(self, env: dict[str, str]) -> None:
        for n in range(self.workers):
            with (self.base / f"worker-{n}.log").open("wb") as log:
                self.processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "flowbus", "worker"],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )

    async def setup(self) -> Settings:
        workflows = self.base / "workflows"
        workflows.mkdir()
        (workflows / "bench.yaml").write_text(yaml.safe_dump(WORKFLOW))
        self.settings = Settings(
            deployment="bench",
            broker_url=self.broker.bootstrap_servers,
            database_url=self.database.url("bench"),
            source_topics=["bench-orders"],
            workflows_dir=workflows,
            consumer_group="bench",
            topics=TopicNames(),
            log_format="json",
            log_level="warning",
        )
        await prepare(self.settings, workflows)
        env = dict(os.environ)
        env.update(
            FLOWBUS_BROKER_URL=self.settings.broker_url,
            FLOWBUS_DATABASE_URL=self.settings.database_url,
            FLOWBUS_SOURCE_TOPICS='["bench-orders"]',
            FLOWBUS_WORKFLOWS_DIR=str(workflows),
            FLOWBUS_CONSUMER_GROUP="bench",
            FLOWBUS_LOG_LEVEL="warning",
            FLOWBUS_LOG_FORMAT="json",
            FLOWBUS_DEPLOYMENT="bench",
        )
        await asyncio.to_thread(self._start_workers, env)
        return self.settings


async def _completions(
    settings: Settings,
    expected: int,
    latencies: list[float],
    stages: list[tuple[float, float]],
    done: asyncio.Event,
) -> None:
    consumer = AIOKafkaConsumer(
        settings.topics.instances,
        bootstrap_servers=settings.broker_url,
        group_id=f"bench-reader-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="latest",
    )
    await consumer.start()
    seen: set[str] = set()
    try:
        while len(seen) < expected:
            batch = await consumer.getmany(timeout_ms=500)
            now = time.time()
            for records in batch.values():
                for record in records:
                    event = orjson.loads(record.value)
                    if (
                        event["type"] == "flowbus.instance.completed"
                        and event["subject"] not in seen
                    ):
                        seen.add(event["subject"])
                        sent = float(event["data"]["output"]["sent"])
                        applied = datetime.fromisoformat(event["time"].replace("Z", "+00:00"))
                        latencies.append(now - sent)
                        stages.append((applied.timestamp() - sent, now - applied.timestamp()))
    finally:
        done.set()
        await consumer.stop()


async def _publish(settings: Settings, count: int, rate: float | None) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=settings.broker_url, linger_ms=2)
    await producer.start()
    started = time.perf_counter()
    try:
        futures = []
        for n in range(count):
            if rate:
                delay = started + n / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            body = {"type": "bench.order", "id": f"o-{n}", "amount": n % 200, "sent": time.time()}
            futures.append(await producer.send("bench-orders", orjson.dumps(body)))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def _round(
    settings: Settings, count: int, rate: float | None
) -> tuple[float, list[float], list[tuple[float, float]]]:
    latencies: list[float] = []
    stages: list[tuple[float, float]] = []
    done = asyncio.Event()
    reader = asyncio.create_task(_completions(settings, count, latencies, stages, done))
    await asyncio.sleep(1.0)  # the reader is assigned before anything is sent
    started = time.perf_counter()
    await _publish(settings, count, rate)
    await asyncio.wait_for(done.wait(), timeout=max(120.0, count / 50))
    await reader
    return time.perf_counter() - started, latencies, stages


async def _run(bench: Bench, instances: int, latency_rate: float | None, warmup: int) -> None:
    settings = await bench.setup()
    await _round(settings, warmup, None)  # workers joined, caches and pools warm
    elapsed, _, _ = await _round(settings, instances, None)
    throughput = instances / elapsed
    click.echo(
        f"throughput instances={instances} workers={bench.workers} "
        f"completed_per_s={throughput:.0f} seconds={elapsed:.2f}"
    )
    rate = latency_rate or max(10.0, throughput / 2)
    count = int(rate * 10)
    _, latencies, stages = await _round(settings, count, rate)
    ms = [v * 1000 for v in latencies]
    applied = [a * 1000 for a, _ in stages]
    relayed = [r * 1000 for _, r in stages]
    click.echo(
        f"latency rate_per_s={rate:.0f} instances={count} p50_ms={statistics.median(ms):.1f} "
        f"p99_ms={_percentile(ms, 0.99):.1f} max_ms={max(ms):.1f} "
        f"applied_p50_ms={statistics.median(applied):.1f} "
        f"applied_p99_ms={_percentile(applied, 0.99):.1f} "
        f"relayed_p50_ms={statistics.median(relayed):.1f} "
        f"relayed_p99_ms={_percentile(relayed, 0.99):.1f}"
    )


@click.command("e2e")
@click.option(
    "--instances", default=5000, show_default=True, help="Instances for the throughput round."
)
@click.option("--workers", default=1, show_default=True, help="Worker processes.")
@click.option(
    "--rate", type=float, help="Events/s of the latency round (default: half the throughput)."
)
@click.option("--unsafe", is_flag=True, help="PostgreSQL without fsync (faster, not durable).")
def e2e_command(instances: int, workers: int, rate: float | None, unsafe: bool) -> None:
    """Completed three-step instances per second, then p50/p99 latency at a paced load."""
    with (
        tempfile.TemporaryDirectory(prefix="flowbus-bench-") as base,
        Bench(Path(base), workers, unsafe) as bench,
    ):
        asyncio.run(_run(bench, instances, rate, warmup=200))
