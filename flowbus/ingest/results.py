"""The results topic: what SDK workers and task workers answer (`topics/sdk-protocol.md`).

`flowbus.result.step` and `flowbus.result.workflow` records of code-first instances reach
the engine as `StepReported` and `TaskEnded`; the engine applies only those carrying the
instance's current task id (the others are logged here as stale and change nothing).

A `flowbus.result.activity` record ends or keeps alive one attempt of a `task` step:
`completed` and `failed` reach the engine as that attempt's `ActionResult`, in the batch's
transaction; `heartbeat` pushes the attempt's heartbeat timer back by the step's
`heartbeat`. The fence is the attempt: a result whose task id and attempt are not the
step's running attempt (a late answer of a worker presumed dead, a duplicate) is ignored,
counted and logged, and changes nothing. A record that is not a readable CloudEvent of a
known result type, does not match its schema, or names no stored instance goes to the
dead-letter topic with the reason.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from flowbus.engine.inputs import ActionResult, EngineInput, StepReported, TaskEnded
from flowbus.engine.state import ErrorInfo, InstanceState, StepStatus
from flowbus.envelope import DomainEvent
from flowbus.external.task import activity_task_id
from flowbus.ingest.batch import Batch, BatchIngest
from flowbus.ingest.records import ConsumedRecord

log = structlog.get_logger(__name__)

ACTIVITY_RESULT = "flowbus.result.activity"
STEP_RESULT = "flowbus.result.step"
WORKFLOW_RESULT = "flowbus.result.workflow"


class _Record(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class ResultError(_Record):
    """What went wrong, as a worker reports it."""

    type: str = Field("TaskFailed", min_length=1, max_length=200)
    message: str = Field("the task worker reported a failure", max_length=8192)
    code: str | None = Field(None, max_length=200)
    details: Any = None

    def to_error_info(self, step_id: str | None) -> ErrorInfo:
        return ErrorInfo(
            type=self.type,
            message=self.message,
            code=self.code,
            step_id=step_id,
            details=self.details,
        )


class _Result(_Record):
    """What every result names: the task it answers and the task's instance."""

    task_id: str = Field(min_length=1, max_length=1000)
    instance_id: uuid.UUID


class ActivityResult(_Result):
    step_id: str = Field(min_length=1, max_length=200)
    attempt: int = Field(ge=1)
    status: Literal["completed", "failed", "heartbeat"]
    output: Any = None
    error: ResultError | None = None


class StepResult(_Result):
    name: str = Field(min_length=1, max_length=200)
    seq: int = Field(ge=1)
    status: Literal["started", "completed", "failed", "compensated", "compensation_failed"]
    result: Any = None
    error: ResultError | None = None
    attempt: int = Field(1, ge=1)
    optional: bool = False


class WorkflowResult(_Result):
    outcome: Literal[
        "completed", "failed", "waiting", "compensated", "nondeterministic", "unsupported"
    ]
    output: Any = None
    error: ResultError | None = None
    wait: dict[str, Any] | None = None


READERS: dict[str, type[_Result]] = {
    ACTIVITY_RESULT: ActivityResult,
    STEP_RESULT: StepResult,
    WORKFLOW_RESULT: WorkflowResult,
}


class ResultIngest(BatchIngest):
    """Applies batches of task workers' results, in topic order."""

    async def handle(self, batch: Batch) -> None:
        readable: list[tuple[ConsumedRecord, DomainEvent, _Result]] = []
        for record, event in batch.events:
            try:
                result = _read(event)
            except ValueError as exc:
                batch.dead_letter(record, str(exc))
                continue
            readable.append((record, event, result))
        ids = {str(r.instance_id) for _, _, r in readable}
        wanted = ids - set(batch.uow.states)
        batch.uow.states.update(await batch.uow.instances.lock(wanted))
        for record, event, result in readable:
            instance_id = str(result.instance_id)
            state = batch.uow.states.get(instance_id)
            if state is None:
                batch.dead_letter(record, f"unknown instance {instance_id}")
                continue
            if isinstance(result, ActivityResult):
                await self._activity(batch, state, event, result)
            else:
                await self._code_first(batch, state, event, result)

    async def _code_first(
        self, batch: Batch, state: InstanceState, event: DomainEvent, result: _Result
    ) -> None:
        code = state.code
        stale = None
        if code is None:
            stale = "the instance is not code-first"
        elif result.task_id != f"{state.id}:{code.task}" or not code.open:
            stale = f"task {result.task_id!r} is not the current one ({state.id}:{code.task})"
        if stale is not None:
            _ignore(batch, stale, state, event, task_id=result.task_id, type=event.type)
            return
        value: EngineInput
        if isinstance(result, StepResult):
            value = StepReported(
                task_id=result.task_id,
                name=result.name,
                seq=result.seq,
                status=result.status,
                result=result.result,
                error=result.error.to_error_info(result.name) if result.error else None,
                attempt=result.attempt,
                optional=result.optional,
            )
        else:
            assert isinstance(result, WorkflowResult)
            value = TaskEnded(
                task_id=result.task_id,
                outcome=result.outcome,
                output=result.output,
                error=result.error.to_error_info(None) if result.error else None,
                wait=result.wait,
            )
        await batch.uow.deliver([(state.id, value)])

    async def _activity(
        self, batch: Batch, state: InstanceState, event: DomainEvent, result: ActivityResult
    ) -> None:
        stale = _stale_activity(state, result)
        if stale is not None:
            where = {"step_id": result.step_id, "attempt": result.attempt}
            _ignore(
                batch, stale, state, event, **where, task_id=result.task_id, status=result.status
            )
            return
        uow = batch.uow
        if result.status == "heartbeat":
            seconds = state.steps[result.step_id].data.get("heartbeat")
            if isinstance(seconds, int | float):
                due = uow.now + timedelta(seconds=seconds)
                step_id, attempt = result.step_id, result.attempt
                await uow.timers.postpone(state.id, "heartbeat", step_id, attempt, due)
            return
        error = None
        if result.status == "failed":
            error = (result.error or ResultError()).to_error_info(result.step_id)
        action_result = ActionResult(
            step_id=result.step_id,
            attempt=result.attempt,
            output=result.output if error is None else None,
            error=error,
        )
        await uow.deliver([(state.id, action_result)])


def _read(event: DomainEvent) -> _Result:
    """The result a consumed event carries; `ValueError` with the reason if none."""
    model = READERS.get(event.type or "")
    if model is None:
        known = ", ".join(sorted(READERS))
        raise ValueError(f"not a result record: type {event.type!r} (known: {known})")
    try:
        return model.model_validate(event.data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'data'}: {err['msg']}"
            for err in exc.errors()[:5]
        )
        raise ValueError(f"{event.type} does not match its schema: {problems}") from None


def _stale_activity(state: InstanceState, result: ActivityResult) -> str | None:
    """Why `result` is not for the running attempt of its step; None when it is."""
    current = state.steps.get(result.step_id)
    if current is None:
        return f"the instance has no step {result.step_id!r} running"
    if result.task_id != activity_task_id(state.id, result.step_id, result.attempt):
        return f"task id {result.task_id!r} does not name attempt {result.attempt}"
    if current.attempt != result.attempt:
        return f"attempt {result.attempt} is not the current one ({current.attempt})"
    if current.status is not StepStatus.RUNNING or result.step_id not in state.active:
        return f"the attempt has ended ({current.status.value})"
    return None


def _ignore(
    batch: Batch, reason: str, state: InstanceState, event: DomainEvent, **fields: Any
) -> None:
    """Count and log a result that no longer applies; it changes nothing."""
    batch.report.stale += 1
    log.info("result.stale", reason=reason, instance_id=state.id, offset=event.offset, **fields)
