"""The workflow context: replaying a workflow function against its recorded history.

A workflow task carries the history of every step and wait the code reached before. The
function runs from the top; each step or wait takes the next position (`seq`) and, when
the history has an outcome there, returns it without running anything. The first step
past the history runs and is checkpointed (its result sent and acknowledged before the
code goes on); the first wait past the history ends the task with outcome `waiting`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

from flowbus.sdk.errors import (
    STEP_RESULT,
    Emit,
    NonDeterminism,
    StepError,
    _Compensation,
    _Halt,
    _Suspend,
    error_document,
)
from flowbus.sdk.steps import Step, call_user_code
from flowbus.sdk.values import iso_duration, to_json


class WorkflowLog(logging.LoggerAdapter[logging.Logger]):
    """A logger carrying the instance, workflow and step ids; silent while replaying, so a
    line is written once, when the code it describes first runs."""

    def __init__(self, ctx: WorkflowContext) -> None:
        super().__init__(logging.getLogger("flowbus.sdk.workflow"), {})
        self._ctx = ctx

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        ids = {
            "instance_id": self._ctx.run_id,
            "workflow_id": self._ctx.workflow_id,
            "step_id": self._ctx.current_step,
        }
        kwargs["extra"] = {**ids, **(kwargs.get("extra") or {})}
        return msg, kwargs

    def isEnabledFor(self, level: int) -> bool:
        return not self._ctx.replaying and self.logger.isEnabledFor(level)


class WorkflowContext:
    """What a workflow function receives: its identity, deterministic time, steps and
    durable waits. Everything it returns is the same on every replay of the same point."""

    def __init__(self, task: Mapping[str, Any], emit: Emit, *, halt_on_new: bool = False) -> None:
        self.run_id: str = str(task["instanceId"])
        """The instance id."""
        self.workflow_id: str = str(task["workflowId"])
        self.version: int = int(task.get("version") or 1)
        self.task_id: str = str(task["taskId"])
        self.current_step: str | None = None
        """The step whose function is running, for log lines."""
        started = task.get("startedAt")
        self._started = _moment(started) if started else datetime.now(UTC)
        now = task.get("now")
        self._now = _moment(now) if now else datetime.now(UTC)
        self._emit = emit
        self._halt_on_new = halt_on_new
        self._history: dict[int, dict[str, Any]] = {}
        for entry in task.get("history") or ():
            self._history[int(entry["seq"])] = dict(entry)
        self._last_recorded = max(self._history, default=0)
        self._seq = 0
        self._reached: set[int] = set()
        self._completed: dict[str, Any] = {}
        self._started_low: dict[str, int] = {}
        self._compensations: list[_Compensation] = []
        self._interrupt: BaseException | None = None
        self.log = WorkflowLog(self)
        """A logger bound with the instance, workflow and step ids."""

    # --- identity and time -------------------------------------------------------------

    def workflow_time(self) -> datetime:
        """When the instance started (the task's `startedAt`): the same on every replay."""
        return self._started

    def elapsed(self) -> timedelta:
        """Time from the instance's start to this task (the task's `now`)."""
        return self._now - self._started

    def idempotency_key(self, name: str | None = None) -> str:
        """A key for the side effect of step `name` (default: the step whose function is
        running): `<instance id>:<name>`, the same on every attempt, every replay and every
        worker, so the system a step calls can drop a repeat of a call it already did (a
        worker that dies mid-step leaves the step to run again)."""
        step = name if name is not None else self.current_step
        if not step:
            raise ValueError("idempotency_key needs a step name outside a running step")
        return f"{self.run_id}:{step}"

    @property
    def replaying(self) -> bool:
        """True while the code is still inside the recorded history."""
        return self._seq < self._last_recorded

    # --- steps -------------------------------------------------------------------------

    def step(self, name: str, fn: Callable[..., Any], *args: Any) -> Step:
        """A step running `fn(*args)` (sync or async); configure it, then `await .run()`."""
        return Step(self, name, fn, args)

    def is_step_completed(self, name: str) -> bool:
        """Whether step `name` completed, in this task or a recorded one."""
        return name in self._completed or self._recorded_step(name) is not None

    def get_step_result(self, name: str) -> Any:
        """The result of completed step `name`, or `None`."""
        if name in self._completed:
            return self._completed[name]
        entry = self._recorded_step(name)
        return entry.get("result") if entry is not None else None

    async def record_step_start(self, name: str) -> None:
        """Checkpoint that step `name` starts (for hand-written steps and retry loops)."""
        seq, _ = self._reach("step", name)
        self._check_halt()
        self._started_low[name] = seq
        await self._step_record(name, seq, "started", attempt=1)

    async def record_step_complete(self, name: str, result: Any = None) -> None:
        """Checkpoint step `name` as completed with `result` (a JSON value or model)."""
        seq = self._low_seq(name)
        value = to_json(result)
        await self._step_record(name, seq, "completed", attempt=1, result=value)
        self._completed[name] = value

    async def record_step_failure(self, name: str, error: BaseException | str) -> None:
        """Checkpoint step `name` as failed with `error` (an exception or a message)."""
        seq = self._low_seq(name)
        document = (
            error_document(error)
            if isinstance(error, BaseException)
            else {"type": "Error", "message": str(error)}
        )
        await self._step_record(name, seq, "failed", attempt=1, error=document)

    # --- durable waits -----------------------------------------------------------------

    async def sleep(self, duration: str | float | timedelta, name: str | None = None) -> None:
        """A durable timer: the task ends and the code goes on once `duration` passed."""
        await self._wait("timer", name, {"duration": iso_duration(duration)})

    async def wait_for_event(
        self,
        topic: str,
        match: str | None = None,
        key: Any = None,
        type: str | None = None,
        timeout: str | float | timedelta | None = None,  # noqa: ASYNC109 - a durable timeout
        name: str | None = None,
    ) -> Any:
        """Wait for an event on `topic` (only of `type`, when given) whose `match` query
        (JMESPath over the event document, e.g. `data.orderId`) equals `key`, as the
        declarative event wait does; returns the event document. An event that came a
        little early is taken from flowbus's buffer. A timeout raises `StepError` with
        type `TimeoutError`."""
        spec: dict[str, Any] = {"topic": topic}
        if type is not None:
            spec["type"] = type
        if match is not None:
            spec["match"] = match
        if key is not None:
            spec["key"] = to_json(key)
        if timeout is not None:
            spec["timeout"] = iso_duration(timeout)
        return await self._wait("event", name, spec)

    async def approval(
        self,
        name: str,
        assignees: list[str] | None = None,
        quorum: int | None = None,
        deadline: str | float | timedelta | None = None,
        summary: str | None = None,
    ) -> Any:
        """Ask `assignees` for an approval, as the declarative `approval` step does;
        returns the decision. A refusal or a passed deadline raises `StepError`."""
        spec: dict[str, Any] = {"assignees": list(assignees or [])}
        if quorum is not None:
            spec["quorum"] = quorum
        if deadline is not None:
            spec["deadline"] = iso_duration(deadline)
        if summary is not None:
            spec["summary"] = summary
        return await self._wait("approval", name, spec)

    async def child(
        self,
        workflow_id: str,
        input: Any = None,
        version: int | None = None,
        name: str | None = None,
    ) -> Any:
        """Run workflow `workflow_id` as a child instance and return its output."""
        spec: dict[str, Any] = {"workflowId": workflow_id, "input": to_json(input)}
        if version is not None:
            spec["version"] = version
        return await self._wait("child", name, spec)

    # --- the replay machinery ----------------------------------------------------------

    def _reach(
        self, kind: str, name: str, wait_kind: str | None = None
    ) -> tuple[int, dict[str, Any] | None]:
        seq = self._seq + 1
        self._seq = seq
        self._reached.add(seq)
        entry = self._history.get(seq)
        if entry is not None:
            recorded_kind = entry.get("waitKind") if entry.get("kind") == "wait" else None
            if (
                entry.get("kind") != kind
                or entry.get("name") != name
                or (wait_kind is not None and recorded_kind not in (None, wait_kind))
            ):
                self._interrupt = NonDeterminism(
                    seq,
                    _describe(entry.get("kind"), entry.get("name"), recorded_kind),
                    _describe(kind, name, wait_kind),
                )
                raise self._interrupt
        return seq, entry

    def _check_halt(self) -> None:
        if self._halt_on_new:
            self._interrupt = _Halt()
            raise self._interrupt

    async def _wait(self, kind: str, name: str | None, spec: dict[str, Any]) -> Any:
        wait_name = name or f"{kind}-{self._seq + 1}"
        seq, entry = self._reach("wait", wait_name, kind)
        status = entry.get("status") if entry is not None else None
        if entry is not None and status == "completed":
            return entry.get("result")
        if entry is not None and status == "failed":
            error = entry.get("error") or {}
            raise StepError(
                wait_name, str(error.get("type", "Error")), str(error.get("message", ""))
            )
        if entry is not None and status == "timed_out":
            raise StepError(wait_name, "TimeoutError", f"{kind} wait {wait_name!r} timed out")
        self._check_halt()
        self._interrupt = _Suspend({"name": wait_name, "seq": seq, "kind": kind, **spec})
        raise self._interrupt

    def _recorded_step(self, name: str) -> dict[str, Any] | None:
        for seq, entry in self._history.items():
            if (
                entry.get("kind") == "step"
                and entry.get("name") == name
                and entry.get("status") == "completed"
            ):
                self._reached.add(seq)
                self._seq = max(self._seq, seq)
                return entry
        return None

    def _low_seq(self, name: str) -> int:
        seq = self._started_low.pop(name, None)
        if seq is None:
            seq, _ = self._reach("step", name)
            self._check_halt()
        return seq

    def _unreached(self) -> tuple[int, dict[str, Any]] | None:
        for seq in sorted(self._history):
            if seq not in self._reached:
                return seq, self._history[seq]
        return None

    async def _step_record(
        self,
        name: str,
        seq: int,
        status: str,
        *,
        attempt: int,
        optional: bool = False,
        result: Any = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        data: dict[str, Any] = {
            "taskId": self.task_id,
            "instanceId": self.run_id,
            "name": name,
            "seq": seq,
            "status": status,
            "attempt": attempt,
            "optional": optional,
        }
        if status in ("completed", "compensated"):
            data["result"] = result
        if error is not None:
            data["error"] = error
        await self._emit(STEP_RESULT, data)

    async def _run_compensations(self) -> bool:
        """Every registered compensation, newest step first; True when all succeeded."""
        succeeded = True
        for item in reversed(self._compensations):
            self.current_step = item.name
            try:
                await call_user_code(item.fn, (item.result,), None)
            except Exception as exc:
                succeeded = False
                await self._step_record(
                    item.name,
                    item.seq,
                    "compensation_failed",
                    attempt=1,
                    error=error_document(exc),
                )
            else:
                await self._step_record(
                    item.name, item.seq, "compensated", attempt=1, result=item.result
                )
            finally:
                self.current_step = None
        return succeeded


def _describe(kind: Any, name: Any, wait_kind: str | None) -> str:
    if kind == "wait" and wait_kind:
        return f"wait {name!r} ({wait_kind})"
    return f"{kind} {name!r}"


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
