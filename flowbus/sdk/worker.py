"""The SDK worker: consumes tasks from flowbus and answers on the results topic.

One consumer in a consumer group on the tasks topic (so several workers share the load
and take over from each other) and one idempotent producer (`acks=all`). A record's
offset is committed only after every result it produced is acknowledged: at-least-once,
and a repeated workflow task is safe because it replays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import CommitFailedError

from flowbus.sdk.errors import ACTIVITY_RESULT, STEP_RESULT, Emit
from flowbus.sdk.records import HEADERS, BadRecord, decode, encode, source
from flowbus.sdk.replay import run_workflow_task
from flowbus.sdk.tasks import Task, run_activity_task
from flowbus.sdk.workflows import Workflow

log = logging.getLogger("flowbus.sdk.worker")

WORKFLOW_TASK = "flowbus.task.workflow"
ACTIVITY_TASK = "flowbus.task.activity"
REGISTER = "flowbus.command.register"


@dataclass(frozen=True)
class Topics:
    """The topics the worker uses (flowbus's `topics.*` settings)."""

    tasks: str = "flowbus.tasks"
    results: str = "flowbus.results"
    commands: str = "flowbus.commands"


class Worker:
    """Runs the given workflows and task handlers for flowbus.

    `await worker.start()` / `await worker.stop()` inside an event loop, or
    `worker.run()` to block until SIGTERM or SIGINT.
    """

    def __init__(
        self,
        broker: str = "127.0.0.1:9092",
        workflows: Iterable[Workflow] = (),
        tasks: Iterable[Task] = (),
        group: str = "flowbus-sdk",
        topics: Topics | Mapping[str, str] | None = None,
    ) -> None:
        self.broker = broker
        self.group = group
        self.topics = topics if isinstance(topics, Topics) else Topics(**dict(topics or {}))
        self.workflows: dict[tuple[str, int], Workflow] = {}
        for flow in workflows:
            self.workflows[(flow.id, flow.version)] = flow
        self.tasks: dict[str, Task] = {t.task_type: t for t in tasks}
        self.source = source()
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._loop: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect, publish each hosted workflow's definition, and start consuming."""
        producer = AIOKafkaProducer(
            bootstrap_servers=self.broker, acks="all", enable_idempotence=True
        )
        await producer.start()
        self._producer = producer
        try:
            for flow in self.workflows.values():
                await producer.send_and_wait(
                    self.topics.commands,
                    encode(REGISTER, flow.id, {"definition": flow.definition()}, self.source),
                    key=flow.id.encode(),
                    headers=HEADERS,
                )
            consumer = AIOKafkaConsumer(
                self.topics.tasks,
                bootstrap_servers=self.broker,
                group_id=self.group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            )
            await consumer.start()
        except BaseException:
            await producer.stop()
            self._producer = None
            raise
        self._consumer = consumer
        self._loop = asyncio.create_task(self._consume(consumer))
        log.info(
            "sdk worker started: %d workflows, %d task types, group %s",
            len(self.workflows),
            len(self.tasks),
            self.group,
        )

    async def stop(self) -> None:
        """Finish the batch in hand, then disconnect."""
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def wait(self) -> None:
        """Until the consuming loop ends (it ends only on `stop()` or a broker failure)."""
        if self._loop is not None:
            await self._loop

    def run(self) -> None:
        """Start, block until SIGTERM or SIGINT, then stop."""
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        assert self._loop is not None
        stopped = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({stopped, self._loop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            failure = self._loop.exception() if self._loop.done() else None
            await self.stop()
        if failure is not None:
            raise failure

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=200)
            if not batches:
                continue
            await asyncio.gather(*(self._partition(recs) for recs in _by_key(batches.values())))
            offsets = {tp: recs[-1].offset + 1 for tp, recs in batches.items()}
            try:
                await consumer.commit(offsets)
            except CommitFailedError as exc:
                log.warning("commit refused (rebalance), the tasks will come again: %s", exc)

    async def _partition(self, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        decoded: list[tuple[str, dict[str, Any]] | None] = []
        for record in records:
            try:
                decoded.append(decode(record.value))
            except BadRecord as exc:
                log.warning("skipped a record on %s: %s", self.topics.tasks, exc)
                decoded.append(None)
        for event_type, data in superseded_dropped(decoded):
            await self._run(event_type, data)

    async def handle(self, value: bytes | None) -> None:
        """Run one task record and send its results; bad records are logged and skipped."""
        try:
            event_type, data = decode(value)
        except BadRecord as exc:
            log.warning("skipped a record on %s: %s", self.topics.tasks, exc)
            return
        await self._run(event_type, data)

    async def _run(self, event_type: str, data: dict[str, Any]) -> None:
        try:
            if event_type == WORKFLOW_TASK:
                key = (str(data["workflowId"]), int(data.get("version") or 1))
                flow = self.workflows.get(key)
                emit = self._emitter(str(data["instanceId"]))
                await run_workflow_task(flow, data, emit)
            elif event_type == ACTIVITY_TASK:
                handler = self.tasks.get(str(data.get("taskType")))
                await run_activity_task(handler, data, self._emitter(str(data["instanceId"])))
            else:
                log.warning("skipped a record of type %s", event_type)
        except (KeyError, ValueError, TypeError) as exc:
            log.warning("skipped a malformed %s: %r", event_type, exc)

    def _emitter(self, instance_id: str) -> Emit:
        producer = self._producer
        assert producer is not None
        key = instance_id.encode()

        async def emit(event_type: str, data: dict[str, Any]) -> None:
            value = encode(event_type, instance_id, data, self.source)
            quick = (event_type == STEP_RESULT and data.get("status") == "started") or (
                event_type == ACTIVITY_RESULT and data.get("status") == "heartbeat"
            )
            sent = await producer.send(self.topics.results, value, key=key, headers=HEADERS)
            if quick:
                # Ordered before the next record of the instance, whose ack covers it.
                sent.add_done_callback(_report)
            else:
                await sent

        return emit


def superseded_dropped(
    records: Sequence[tuple[str, dict[str, Any]] | None],
) -> list[tuple[str, dict[str, Any]]]:
    """The decoded records of one partition without the workflow tasks that a later
    workflow task of the same instance supersedes.

    flowbus sends a task again (same id, the history as it is now) when a worker died
    holding it; the dead worker's uncommitted record then comes back too, with an older
    history. Replaying that one would run again the steps it does not list as completed;
    only the newest workflow task of an instance is worth running.
    """
    newest: dict[str, int] = {}
    for position, item in enumerate(records):
        if item is not None and item[0] == WORKFLOW_TASK:
            newest[str(item[1].get("instanceId"))] = position
    kept = []
    for position, item in enumerate(records):
        if item is None:
            continue
        event_type, data = item
        if event_type == WORKFLOW_TASK and newest[str(data.get("instanceId"))] != position:
            log.info("skipped workflow task %s: a newer one follows", data.get("taskId"))
            continue
        kept.append(item)
    return kept


def _by_key(
    batches: Iterable[Sequence[ConsumerRecord[Any, Any]]],
) -> list[list[ConsumerRecord[Any, Any]]]:
    """The batch's records grouped by partition and key (the instance id), each group in
    offset order: an instance's records run one after the other, instances side by side."""
    groups: dict[tuple[int, bytes | None], list[ConsumerRecord[Any, Any]]] = {}
    for records in batches:
        for record in records:
            groups.setdefault((record.partition, record.key), []).append(record)
    return list(groups.values())


def _report(sent: asyncio.Future[Any]) -> None:
    if not sent.cancelled() and sent.exception() is not None:
        log.error("a result record was not delivered: %s", sent.exception())
