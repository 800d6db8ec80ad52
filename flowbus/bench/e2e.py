"""`flowbus bench e2e`: completed three-step instances per second, and trigger-to-completion
latency at a paced load, on a real broker and PostgreSQL started for the run.

The workflow has a condition, a set_variables and a send_event step. Each trigger event
carries the time it was sent; the bench reads `flowbus.instance.completed` back off Kafka,
so a measured latency includes consumption, the transaction, the outbox relay and the
broker round trip.

The code-first case (`--case code-first`, or `both`) runs the same shape as a code-first
workflow (`flowbus.bench.code_first`) in an SDK worker process beside the flowbus worker:
each step is checkpointed through the results topic, so an instance takes a workflow task
and six step results plus the workflow result through flowbus.
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
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import orjson
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from flowbus.bench import code_first
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

DECLARATIVE = ("bench.order", WORKFLOW["id"])
CODE_FIRST = (code_first.EVENT_TYPE, code_first.three_steps.id)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Bench:
    def __init__(self, base: Path, workers: int, sdk_workers: int, unsafe: bool) -> None:
        self.broker = KafkaBroker(base / "kafka")
        self.database = PostgresServer(base / "postgres", fast_unsafe=unsafe)
        self.base = base
        self.workers = workers
        self.sdk_workers = sdk_workers
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
        sdk = ["sdk-worker", f"{code_first.__name__}:WORKFLOWS", "--group", "bench-sdk"]
        commands = [("worker", ["worker"])] * self.workers
        commands += [("sdk-worker", sdk)] * self.sdk_workers
        for n, (name, args) in enumerate(commands):
            with (self.base / f"{name}-{n}.log").open("wb") as log:
                self.processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "flowbus", *args],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )

    def show_logs(self, lines: int = 20) -> None:
        """The last lines of every worker's log, on stderr (when a round stalls)."""
        for path in sorted(self.base.glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            click.echo(f"--- {path.name}\n" + "\n".join(tail), err=True)

    async def setup(self) -> Settings:
        workflows = self.base / "workflows"
        workflows.mkdir()
        (workflows / "bench.yaml").write_text(yaml.safe_dump(WORKFLOW))
        # The definition the SDK worker registers on start, stored beforehand with the
        # same content (so the same version) for its trigger to be live from the start.
        definition = code_first.three_steps.definition()
        (workflows / "bench-code.yaml").write_text(yaml.safe_dump(definition))
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
    workflow_id: str,
    expected: int,
    latencies: list[float],
    stages: list[tuple[float, float]],
    ready: asyncio.Event,
    done: asyncio.Event,
) -> None:
    # No group: every partition is assigned at once and its end resolved before anything
    # is sent, so no completion is missed while a group would still be forming.
    consumer = AIOKafkaConsumer(
        settings.topics.instances,
        bootstrap_servers=settings.broker_url,
        auto_offset_reset="latest",
    )
    await consumer.start()
    seen: set[str] = set()
    try:
        for _ in range(600):  # up to 30 s
            if consumer.assignment():
                break
            await asyncio.sleep(0.05)
        for partition in consumer.assignment():
            await consumer.position(partition)
        ready.set()
        while len(seen) < expected:
            batch = await consumer.getmany(timeout_ms=500)
            now = time.time()
            for records in batch.values():
                for record in records:
                    event = orjson.loads(record.value)
                    if (
                        event["type"] == "flowbus.instance.completed"
                        and event["data"].get("workflowId", workflow_id) == workflow_id
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


async def _publish(settings: Settings, kind: str, count: int, rate: float | None) -> float:
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
            body = {"type": kind, "id": f"o-{n}", "amount": n % 200, "sent": time.time()}
            futures.append(await producer.send("bench-orders", orjson.dumps(body)))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def _round(
    settings: Settings, case: tuple[str, str], count: int, rate: float | None
) -> tuple[float, list[float], list[tuple[float, float]]]:
    latencies: list[float] = []
    stages: list[tuple[float, float]] = []
    ready, done = asyncio.Event(), asyncio.Event()
    kind, workflow_id = case
    reader = asyncio.create_task(
        _completions(settings, workflow_id, count, latencies, stages, ready, done)
    )
    waiting = asyncio.create_task(ready.wait())
    await asyncio.wait({reader, waiting}, timeout=30.0, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    if reader.done():
        await reader  # it failed before it was ready: raise why
    if not ready.is_set():
        raise RuntimeError("the completion reader found no end offsets in 30 s")
    started = time.perf_counter()
    await _publish(settings, kind, count, rate)
    await asyncio.wait_for(done.wait(), timeout=max(120.0, count / 50))
    await reader
    return time.perf_counter() - started, latencies, stages


async def _run(
    bench: Bench, case: str, instances: int, latency_rate: float | None, warmup: int
) -> None:
    settings = await bench.setup()
    try:
        await _cases(bench, settings, case, instances, latency_rate, warmup)
    except TimeoutError:
        bench.show_logs()
        raise


async def _cases(
    bench: Bench,
    settings: Settings,
    case: str,
    instances: int,
    latency_rate: float | None,
    warmup: int,
) -> None:
    if case in ("declarative", "both"):
        await _declarative(settings, bench.workers, instances, latency_rate, warmup)
    if case in ("code-first", "both"):
        await _round(settings, CODE_FIRST, warmup, None)  # the SDK worker joined, warm
        elapsed, _, _ = await _round(settings, CODE_FIRST, instances, None)
        click.echo(
            f"code_first instances={instances} workers={bench.workers} "
            f"sdk_workers={bench.sdk_workers} completed_per_s={instances / elapsed:.0f} "
            f"seconds={elapsed:.2f}"
        )


async def _declarative(
    settings: Settings, workers: int, instances: int, latency_rate: float | None, warmup: int
) -> None:
    await _round(settings, DECLARATIVE, warmup, None)  # workers joined, caches and pools warm
    elapsed, _, _ = await _round(settings, DECLARATIVE, instances, None)
    throughput = instances / elapsed
    click.echo(
        f"throughput instances={instances} workers={workers} "
        f"completed_per_s={throughput:.0f} seconds={elapsed:.2f}"
    )
    rate = latency_rate or max(10.0, throughput / 2)
    count = int(rate * 10)
    _, latencies, stages = await _round(settings, DECLARATIVE, count, rate)
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
    "--case",
    type=click.Choice(["declarative", "code-first", "both"]),
    default="both",
    show_default=True,
    help="Declarative definitions, code-first workflows in an SDK worker, or both.",
)
@click.option(
    "--sdk-workers", default=1, show_default=True, help="SDK worker processes (code-first)."
)
@click.option(
    "--rate", type=float, help="Events/s of the latency round (default: half the throughput)."
)
@click.option("--unsafe", is_flag=True, help="PostgreSQL without fsync (faster, not durable).")
def e2e_command(
    instances: int, workers: int, case: str, sdk_workers: int, rate: float | None, unsafe: bool
) -> None:
    """Completed three-step instances per second, then p50/p99 latency at a paced load
    (declarative); completed three-step code-first workflows per second (code-first)."""
    sdk = sdk_workers if case != "declarative" else 0
    with (
        tempfile.TemporaryDirectory(prefix="flowbus-bench-") as base,
        Bench(Path(base), workers, sdk, unsafe) as bench,
    ):
        asyncio.run(_run(bench, case, instances, rate, warmup=200))
