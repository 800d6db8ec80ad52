"""Runs external actions (webhooks) outside any transaction, then feeds the results back.

A job is a timer row of kind `action`. It is leased (`locked_until`) in a short
transaction, run, and its result applied in another that also deletes the row. A worker
that dies mid-call leaves the lease to expire; another worker runs the job again with the
same idempotency key. A result for a job whose row is gone (the step was cancelled or
timed out meanwhile) is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from flowbus.actions.base import ActionContext
from flowbus.actions.registry import ACTIONS
from flowbus.definitions.catalog import DefinitionCatalog
from flowbus.engine.inputs import ActionResult
from flowbus.engine.run import rfc3339
from flowbus.engine.state import ErrorInfo
from flowbus.outbox.writer import OutboxBatch
from flowbus.service.loop import WorkLoop
from flowbus.service.unit_of_work import ACTION_JOB, WorkReport
from flowbus.store.tables import timers

log = structlog.get_logger(__name__)

DEFAULT_LEASE = timedelta(seconds=330)  # longer than the longest action timeout (300 s)


class ActionRunner(WorkLoop):
    """Leases due action jobs, runs them concurrently, applies their results."""

    name = "actions"

    def __init__(
        self,
        engine: AsyncEngine,
        catalog: Callable[[], DefinitionCatalog],
        outbox: Callable[[], OutboxBatch],
        *,
        concurrency: int = 32,
        interval: float = 0.2,
        lease: timedelta = DEFAULT_LEASE,
        on_work: Callable[[WorkReport], None] = lambda report: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(engine, catalog, outbox, on_work=on_work, clock=clock)
        self._concurrency = concurrency
        self._interval = interval
        self._lease_time = lease
        self._running: set[asyncio.Task[None]] = set()
        self.completed = 0

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            for task in self._running:
                task.cancel()
            for action in ACTIONS.values():
                closer = getattr(action, "aclose", None)
                if closer is not None:
                    with contextlib.suppress(Exception):
                        await closer()

    async def round(self) -> float:
        free = self._concurrency - len(self._running)
        jobs = await self._lease(free) if free > 0 else []
        for job in jobs:
            task = asyncio.create_task(self._run_job(job))
            self._running.add(task)
            task.add_done_callback(self._finished)
        return 0.0 if jobs else self._interval

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._wake.set()

    async def _lease(self, limit: int) -> list[Any]:
        now = self._clock()
        async with self._engine.begin() as conn:
            due = (
                select(timers.c.id)
                .where(
                    and_(
                        timers.c.kind == ACTION_JOB,
                        timers.c.due_at <= now,
                        or_(timers.c.locked_until.is_(None), timers.c.locked_until < now),
                    )
                )
                .order_by(timers.c.due_at, timers.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            rows = await conn.execute(
                update(timers)
                .where(timers.c.id.in_(due.scalar_subquery()))
                .values(locked_until=now + self._lease_time)
                .returning(timers)
            )
            return list(rows)

    async def _run_job(self, job: Any) -> None:
        payload = job.payload
        action = ACTIONS.get(payload["action"])
        context = ActionContext(
            instance_id=str(job.instance_id),
            workflow_id=payload.get("workflowId", ""),
            step_id=job.step_id,
            attempt=job.attempt,
            now=rfc3339(self._clock()),
            idempotency_key=payload["idempotencyKey"],
            new_event_id=_no_events,
        )
        bound = log.bind(
            instance_id=context.instance_id,
            workflow_id=context.workflow_id,
            step_id=job.step_id,
            attempt=job.attempt,
            action=payload["action"],
        )
        output: Any = None
        error: ErrorInfo | None = None
        try:
            if action is None:
                raise LookupError(f"unknown action {payload['action']!r}")
            output = await action.execute(payload["config"], context)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = _error_info(exc, job.step_id)
            bound.info("action.failed", error_type=error.type, message=error.message)
        result = ActionResult(
            step_id=job.step_id,
            attempt=job.attempt,
            output=output,
            error=error,
            purpose=payload.get("purpose", "step"),
        )
        for delay in (0.2, 0.5, 1.0, 2.0, 5.0, None):
            try:
                await self._apply(job, result)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if delay is None:
                    bound.error("action.result_not_applied", error=str(exc).splitlines()[0])
                    return
                await asyncio.sleep(delay)
        self.completed += 1

    async def _apply(self, job: Any, result: ActionResult) -> None:
        now = self._clock()
        async with self._engine.begin() as conn:
            gone = await conn.execute(
                delete(timers).where(timers.c.id == job.id).returning(timers.c.id)
            )
            if gone.first() is None:
                return
            work = self.unit_of_work(conn, now)
            await work.deliver([(str(job.instance_id), result)])
            report = await work.flush()
        self._on_work(report)


def _no_events() -> str:
    raise RuntimeError("external actions publish no events through the engine")


def _error_info(exc: Exception, step_id: str) -> ErrorInfo:
    to_error_info = getattr(exc, "to_error_info", None)
    if callable(to_error_info):
        info = to_error_info(step_id)
        if isinstance(info, ErrorInfo):
            return info
    return ErrorInfo(
        type=type(exc).__name__, message=str(exc) or type(exc).__name__, step_id=step_id
    )
