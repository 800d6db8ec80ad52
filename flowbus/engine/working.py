"""The working copy of one engine transition: the instance's state, the effects so far,
and what every part of the engine does with them (events, timers, the scope expressions
see, stepping out of a step)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from datetime import datetime, timedelta
from typing import Any

from flowbus.definitions.model import WorkflowDefinition
from flowbus.definitions.step import StepModel
from flowbus.engine.effects import (
    CancelTimers,
    Channel,
    Effect,
    EmitEvent,
    RecordAttempt,
    SetTimer,
    TimerKind,
)
from flowbus.engine.errors import EngineError
from flowbus.engine.ids import event_id, published_event_id
from flowbus.engine.limits import DEFAULT_LIMITS, Limits
from flowbus.engine.state import InstanceState, StepState, StepStatus
from flowbus.steps.base import StepCall, StepType
from flowbus.steps.registry import STEP_TYPES
from flowbus.times import rfc3339

LIVE = frozenset({StepStatus.RUNNING, StepStatus.WAITING, StepStatus.RETRYING})
"""Statuses of a step that is still active."""


def engine_time(moment: datetime) -> str:
    """`moment` as events carry it; the engine takes only times that carry a zone."""
    if moment.tzinfo is None:
        raise EngineError("times given to the engine must carry a time zone")
    return rfc3339(moment)


class WorkingCopy(ABC):
    """The working copy of one transition. Owns `state`; collects `effects`."""

    def __init__(
        self,
        definition: WorkflowDefinition,
        state: InstanceState,
        now: datetime,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.definition = definition
        self.state = state
        self.limits = limits
        self.moment = now
        self.now = engine_time(now)
        self.effects: list[Effect] = []
        layout = definition.layout()
        self._steps = layout.steps
        self._branch_of = layout.branch_of
        self._step_types = STEP_TYPES
        self._ready: deque[str] = deque()

    # -- events -------------------------------------------------------------------------

    def next_event_id(self) -> str:
        self.state.seq += 1
        return event_id(self.state.id, self.state.seq)

    def next_published_id(self) -> str:
        self.state.published += 1
        return published_event_id(self.state.id, self.state.published)

    def emit(self, channel: Channel, type: str, **data: Any) -> None:
        payload = {
            "instanceId": self.state.id,
            "workflowId": self.state.workflow_id,
            "workflowVersion": self.state.version,
            "correlationId": self.state.correlation_id,
        }
        if self.state.metadata:
            payload["metadata"] = self.state.metadata
        payload.update(data)
        eid = self.next_event_id()
        self.effects.append(
            EmitEvent(
                channel=channel, id=eid, type=type, time=self.now, seq=self.state.seq, data=payload
            )
        )

    def emit_step(self, step: StepModel, kind: str, **data: Any) -> None:
        s = self.state.steps[step.id]
        self.emit(
            "steps",
            f"flowbus.step.{kind}",
            stepId=step.id,
            stepType=step.type,
            attempt=s.attempt,
            **data,
        )

    def set_timer(
        self, kind: TimerKind, after: timedelta | datetime, step: StepModel | None = None
    ) -> None:
        due = after if isinstance(after, datetime) else self.moment + after
        attempt = self.state.steps[step.id].attempt if step is not None else None
        self.effects.append(
            SetTimer(
                kind=kind,
                due_at=due,
                step_id=step.id if step else None,
                attempt=attempt,
            )
        )
        if step is not None:
            self.state.steps[step.id].data["timers"] = True

    # -- scope --------------------------------------------------------------------------

    def scope(self) -> dict[str, Any]:
        """What expressions and templates see.

        `context` is another name of `variables` (context mappings fill them, and seed
        000's actions read them as `context.x`), and `data` another name of `input` (seed
        004's conditions read it as `data.amount`).
        """
        return {
            "input": self.state.input,
            "data": self.state.input,
            "variables": self.state.variables,
            "context": self.state.variables,
            "steps": self.state.step_outputs(),
            "trigger": self.state.trigger,
            "instance": {
                "id": self.state.id,
                "workflowId": self.state.workflow_id,
                "workflowVersion": self.state.version,
                "correlationId": self.state.correlation_id,
            },
        }

    # -- lookups ------------------------------------------------------------------------

    def step(self, step_id: str) -> StepModel:
        try:
            return self._steps[step_id]
        except KeyError:
            raise EngineError(f"{self.definition.id} has no step {step_id!r}") from None

    def step_type(self, step: StepModel) -> StepType[Any]:
        return self._step_types[step.type]

    def branch_of(self, step_id: str) -> tuple[str, str] | None:
        return self._branch_of.get(step_id)

    @abstractmethod
    def call(self, step: StepModel) -> StepCall:
        """What the step's type acts through while it handles an input."""

    def schedule(self, step_id: str) -> None:
        self._ready.append(step_id)

    def record(self, step: StepModel, output: Any) -> None:
        """History of the attempt, as detailed as the definition's executionLog level says."""
        s = self.state.steps[step.id]
        level = self.definition.execution_log.level
        failed = s.status is StepStatus.FAILED
        if level == "error" and not failed:
            return
        step_input = s.data.get("input") if level == "debug" else None
        self.effects.append(
            RecordAttempt(
                step_id=step.id,
                step_type=step.type,
                attempt=s.attempt,
                status=s.status.value,
                started_at=s.started_at,
                finished_at=s.finished_at,
                input=step_input,
                output=output if level != "error" else None,
                error=s.error,
            )
        )

    # -- leaving steps ------------------------------------------------------------------

    def leave(self, step: StepModel, status: StepStatus) -> StepState:
        s = self.state.steps[step.id]
        s.status = status
        s.finished_at = self.now
        if step.id in self.state.active:
            self.state.active.remove(step.id)
        if s.data.pop("timers", False):
            self.effects.append(CancelTimers(step_id=step.id))
        return s

    def cancel_step(self, step_id: str) -> None:
        """Stop a live step (join, cancel, timeout): it cleans up after itself."""
        step = self.step(step_id)
        s = self.state.steps.get(step_id)
        if s is None or s.status not in LIVE:
            return
        self.step_type(step).on_cancel(step, self.call(step))
        self.leave(step, StepStatus.CANCELLED)
        self.emit_step(step, "cancelled")
        self.record(step, None)
