"""Runs external actions (webhooks) outside any transaction, then feeds the results back.

A job is a timer row of kind `action`. A worker leases due jobs in a short transaction:
it sets `locked_until` a short time ahead (`worker.action_lease`, 15 s by default) and
writes a fresh lease token into the row's payload. While the calls run, one UPDATE every
third of the lease renews `locked_until` of all the jobs this worker still holds. A worker
that dies stops renewing, so another worker runs the job again, with the same idempotency
key and attempt number, at most one lease and one poll interval after the last renewal,
however long the call's own timeout.

The fence: a result is applied by a DELETE of the job row that matches only while the row
still carries this worker's lease token, then the engine step. Results that finish while
another batch is being applied wait for it and go together in the next transaction (a
group commit), so a busy worker pays one transaction for many results. A job
taken over by another worker carries that worker's token, so the late result of a worker
presumed dead deletes nothing and changes nothing; the same holds for a job whose row is
gone because the step was cancelled or timed out meanwhile. Renewals never change the
token, so a renewal racing an apply cannot fence out a result it should not.

A result that cannot be applied because the database is unreachable is retried, with
backoff capped at `APPLY_BACKOFF_CAP`, until it is applied or fenced out; the lease keeps
being renewed whenever the database answers. Any other failure to apply is retried a few
times, then left to the lease: the job runs again, with the same key.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import InterfaceError as SqlInterfaceError
from sqlalchemy.ext.asyncio import AsyncEngine

from flowbus.actions.base import ActionContext
from flowbus.definitions.catalog import DefinitionCatalog
from flowbus.engine.inputs import ActionResult
from flowbus.engine.state import ErrorInfo
from flowbus.external.registry import EXECUTORS
from flowbus.outbox.writer import OutboxBatch
from flowbus.service.loop import WorkLoop
from flowbus.service.supervision import LONGEST_PAUSE, Backoff, first_line
from flowbus.service.unit_of_work import WorkReport
from flowbus.times import rfc3339

log = structlog.get_logger(__name__)

DEFAULT_LEASE = timedelta(seconds=15)
APPLY_BACKOFF_CAP = LONGEST_PAUSE
"""Longest pause between two tries to apply a result while the database is unreachable."""
APPLY_FAILURES = 5
"""Failures to apply a result, other than an unreachable database, before it is given up."""

_UNREACHABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.InterfaceError,
    SqlInterfaceError,
)


class ActionRunner(WorkLoop):
    """Leases due action jobs, runs them concurrently, keeps their leases, applies results."""

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
        max_json_depth: int = 64,
        on_work: Callable[[WorkReport], None] = lambda report: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(engine, catalog, outbox, on_work=on_work, clock=clock)
        self._concurrency = concurrency
        self._interval = interval
        self._lease_time = lease
        self._max_json_depth = max_json_depth
        self._running: set[asyncio.Task[None]] = set()
        self._held: set[tuple[int, str]] = set()
        """(job id, lease token) of every job this worker runs or is applying."""
        self._ready: list[_Ready] = []
        self._applying = False

    async def run(self) -> None:
        heartbeat = asyncio.create_task(self._keep_leases())
        try:
            await super().run()
        finally:
            heartbeat.cancel()
            for task in self._running:
                task.cancel()
            for action in EXECUTORS.values():
                closer = getattr(action, "aclose", None)
                if closer is not None:
                    with contextlib.suppress(Exception):
                        await closer()

    async def round(self) -> float:
        free = self._concurrency - len(self._running)
        token = uuid.uuid4().hex
        jobs = await self._lease(free, token) if free > 0 else []
        for job in jobs:
            self._held.add((job.id, token))
            task = asyncio.create_task(self._run_job(job, token))
            self._running.add(task)
            task.add_done_callback(self._finished)
        return 0.0 if jobs else self._interval

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._wake.set()

    async def _lease(self, limit: int, token: str) -> list[Any]:
        now = self._clock()
        async with self.transaction() as store:
            return await store.timers.lease_jobs(now, now + self._lease_time, limit, token)

    async def _keep_leases(self) -> None:
        """Renew the leases of the jobs this worker holds, every third of the lease."""
        pause = self._lease_time.total_seconds() / 3
        while True:
            await asyncio.sleep(pause)
            if not self._held:
                continue
            try:
                await self._renew(sorted(self._held))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("actions.lease_renewal_failed", error=first_line(exc))

    async def _renew(self, held: list[tuple[int, str]]) -> None:
        async with self.transaction() as store:
            await store.timers.renew_leases(held, self._clock() + self._lease_time)

    async def _run_job(self, job: Any, token: str) -> None:
        try:
            await self._run_and_apply(job, token)
        finally:
            self._held.discard((job.id, token))

    async def _run_and_apply(self, job: Any, token: str) -> None:
        payload = job.payload
        action = EXECUTORS.get(payload["action"])
        context = ActionContext(
            instance_id=str(job.instance_id),
            workflow_id=payload.get("workflowId", ""),
            step_id=job.step_id,
            attempt=job.attempt,
            now=rfc3339(self._clock()),
            idempotency_key=payload["idempotencyKey"],
            new_event_id=_no_events,
            tries=payload.get("tries", job.attempt),
            max_json_depth=self._max_json_depth,
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
            output = await action.run(payload["config"], context)
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
        await self._submit(_Ready(job, token, result, bound))

    async def _submit(self, ready: _Ready) -> None:
        """Apply `ready` with whatever else is ready: the first result to arrive applies
        batches until none is left; those arriving meanwhile wait for their batch."""
        self._ready.append(ready)
        if self._applying:
            await ready.done.wait()
            return
        self._applying = True
        try:
            while self._ready:
                batch, self._ready = self._ready, []
                try:
                    await self._apply_batch(batch)
                finally:
                    for item in batch:
                        item.done.set()
        finally:
            self._applying = False

    async def _apply_batch(self, batch: list[_Ready]) -> None:
        backoff, failures = Backoff(cap=APPLY_BACKOFF_CAP), 0
        while True:
            try:
                taken = await self._apply(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not _database_unreachable(exc):
                    if len(batch) > 1:  # find the result that fails on its own
                        for item in batch:
                            await self._apply_batch([item])
                        return
                    failures += 1
                    if failures >= APPLY_FAILURES:
                        batch[0].log.error("action.result_not_applied", error=first_line(exc))
                        return
                for item in batch:
                    item.log.warning("action.result_apply_retrying", error=first_line(exc))
                await backoff.pause()
                continue
            for item in batch:
                if item.job.id not in taken:
                    item.log.info(
                        "action.result_dropped", reason="job no longer leased by this worker"
                    )
            return

    async def _apply(self, batch: list[_Ready]) -> set[int]:
        """Apply the results whose jobs this worker still holds, in one transaction; the
        ids of those jobs."""
        async with self.unit_of_work(self._clock()) as uow:
            # Instances first, in id order, as every other transaction locks them.
            uow.states.update(await uow.instances.lock(str(r.job.instance_id) for r in batch))
            taken = await uow.timers.take_leased([(r.job.id, r.token) for r in batch])
            await uow.deliver(
                [(str(r.job.instance_id), r.result) for r in batch if r.job.id in taken]
            )
        self._on_work(uow.report)
        return taken


@dataclass(slots=True)
class _Ready:
    """A job's result, waiting to be applied."""

    job: Any
    token: str
    result: ActionResult
    log: Any
    done: asyncio.Event = field(default_factory=asyncio.Event)


def _database_unreachable(exc: BaseException) -> bool:
    """Whether `exc` says the database could not be reached (rather than refused the work)."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    seen: BaseException | None = exc
    for _ in range(8):  # the error and the ones it wraps; a bound, should they form a loop
        if seen is None:
            return False
        if isinstance(seen, _UNREACHABLE):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


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
