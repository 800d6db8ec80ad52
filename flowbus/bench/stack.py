"""The deployment a benchmark runs against: a broker and a PostgreSQL server started for the
run, the bench's workflow definitions stored, and worker processes started and stopped.

PostgreSQL runs with durable settings (fsync on) unless `unsafe` is asked for.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import click
import yaml
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from flowbus.bench import code_first
from flowbus.bench.measure import cpu_seconds
from flowbus.config import Settings, TopicNames
from flowbus.devstack.kafka import KafkaBroker
from flowbus.devstack.postgres import PostgresServer
from flowbus.devstack.stack import prepare

SOURCE_TOPIC = "bench-orders"
GROUP = "bench"
WORKER = "worker"
SDK_WORKER = "sdk-worker"


@dataclass(frozen=True)
class WorkerProcess:
    kind: str
    """`worker` (a flowbus worker) or `sdk-worker` (the code-first bench workflows)."""
    process: subprocess.Popen[bytes]
    log: Path


class BenchStack:
    """Use as `with BenchStack(base, unsafe=...) as stack:`, then `await stack.deploy(...)`."""

    def __init__(self, base: Path, *, unsafe: bool = False) -> None:
        self.base = base
        self.broker = KafkaBroker(base / "kafka")
        self.database = PostgresServer(base / "postgres", fast_unsafe=unsafe)
        self.workers: list[WorkerProcess] = []
        self._settings: Settings | None = None
        self._env: dict[str, str] = {}
        self._started = 0

    def __enter__(self) -> BenchStack:
        with ThreadPoolExecutor(max_workers=2) as pool:
            for future in [pool.submit(self.broker.start), pool.submit(self.database.start)]:
                future.result()
        self.database.ensure_database("bench")
        return self

    def __exit__(self, *_: object) -> None:
        self.stop_workers()
        self.database.stop()
        self.broker.stop()

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            raise RuntimeError("deploy() first")
        return self._settings

    @property
    def dsn(self) -> str:
        """libpq DSN of the bench database, for the benchmarks' own SQL."""
        return self.database.dsn("bench")

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.dsn)

    async def deploy(self, workflows: Mapping[str, dict[str, Any]]) -> Settings:
        """Migrate, create the topics and store `workflows` (file stem -> definition)."""
        directory = self.base / "workflows"
        directory.mkdir(exist_ok=True)
        for stem, definition in workflows.items():
            (directory / f"{stem}.yaml").write_text(yaml.safe_dump(definition))
        self._settings = Settings(
            deployment="bench",
            broker_url=self.broker.bootstrap_servers,
            database_url=self.database.url("bench"),
            source_topics=[SOURCE_TOPIC],
            workflows_dir=directory,
            consumer_group=GROUP,
            topics=TopicNames(),
            log_format="json",
            log_level="warning",
        )
        await prepare(self._settings, directory)
        self._env = dict(os.environ)
        self._env.update(
            FLOWBUS_BROKER_URL=self._settings.broker_url,
            FLOWBUS_DATABASE_URL=self._settings.database_url,
            FLOWBUS_SOURCE_TOPICS=f'["{SOURCE_TOPIC}"]',
            FLOWBUS_WORKFLOWS_DIR=str(directory),
            FLOWBUS_CONSUMER_GROUP=GROUP,
            FLOWBUS_LOG_LEVEL="warning",
            FLOWBUS_LOG_FORMAT="json",
            FLOWBUS_DEPLOYMENT="bench",
        )
        return self._settings

    async def start_workers(self, workers: int, sdk_workers: int = 0) -> None:
        """Start worker processes (and SDK workers hosting `flowbus.bench.code_first`)."""
        await asyncio.to_thread(self._start, workers, sdk_workers)

    def _start(self, workers: int, sdk_workers: int) -> None:
        sdk = [SDK_WORKER, f"{code_first.__name__}:WORKFLOWS", "--group", "bench-sdk"]
        commands = [(WORKER, [WORKER])] * workers + [(SDK_WORKER, sdk)] * sdk_workers
        for kind, args in commands:
            self._started += 1
            path = self.base / f"{kind}-{self._started}.log"
            with path.open("wb") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "flowbus", *args],
                    env=self._env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            self.workers.append(WorkerProcess(kind, process, path))

    def stop_workers(self) -> None:
        """Stop every worker process (SIGTERM, then SIGKILL after 20 s)."""
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.process.wait(20)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
        self.workers = []

    def pids(self, kind: str = WORKER) -> list[int]:
        return [w.process.pid for w in self.workers if w.kind == kind]

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by the running workers, by kind."""
        kinds = {w.kind for w in self.workers}
        return {kind: cpu_seconds(self.pids(kind)) for kind in sorted(kinds)}

    def check_workers(self) -> None:
        """Raise if a worker process has exited (its log's end goes to stderr)."""
        for worker in self.workers:
            if worker.process.poll() is not None:
                self.show_logs()
                raise click.ClickException(
                    f"{worker.log.stem} exited with {worker.process.returncode}"
                )

    async def wait_for_group(self, members: int, within: float = 60.0) -> float:
        """Wait until the workers' consumer group is stable with `members` members; seconds."""
        began = time.monotonic()
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.broker_url)
        await admin.start()
        try:
            while time.monotonic() - began < within:
                self.check_workers()
                try:
                    state, count = _group_state(await admin.describe_consumer_groups([GROUP]))
                except KafkaError:  # no coordinator until the first member joins
                    state, count = "Unknown", 0
                if state == "Stable" and count == members:
                    return time.monotonic() - began
                await asyncio.sleep(0.5)
        finally:
            await admin.close()
        raise click.ClickException(f"the workers' group is not {members} strong after {within:g}s")

    def show_logs(self, lines: int = 20) -> None:
        """The last lines of every worker's log, on stderr (when a round stalls)."""
        for path in sorted(self.base.glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            click.echo(f"--- {path.name}\n" + "\n".join(tail), err=True)


def _group_state(responses: list[Any]) -> tuple[str, int]:
    """The state and member count from DescribeGroups responses (error code, id, state, …)."""
    for response in responses:
        for group in response.groups:
            if group[1] == GROUP:
                state = group[2]
                return (state.decode() if isinstance(state, bytes) else str(state)), len(group[5])
    return "Unknown", 0
