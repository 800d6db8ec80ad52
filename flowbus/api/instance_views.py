"""Instances as the API shows them, from their rows: summaries, the detail a page draws
(step timeline with durations, variables, children, the held state of a code-first
instance) and step executions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from flowbus.api.models import (
    CurrentStep,
    HeldState,
    InstanceDetail,
    InstanceSummary,
    StepExecution,
    StepSummary,
)
from flowbus.times import parse_time


def instance_summary(row: Any) -> InstanceSummary:
    return InstanceSummary(
        id=str(row.id),
        workflow_id=row.workflow_id,
        workflow_version=row.workflow_version,
        status=row.status,
        correlation_id=row.correlation_id,
        parent_instance_id=str(row.parent_instance_id) if row.parent_instance_id else None,
        created_at=row.created_at,
        updated_at=row.updated_at,
        completed_at=row.completed_at,
    )


def step_execution(row: Any) -> StepExecution:
    return StepExecution(
        step_id=row.step_id,
        attempt=row.attempt,
        step_type=row.step_type,
        status=row.status,
        input=row.input,
        output=row.output,
        error=row.error,
        started_at=row.started_at,
        finished_at=row.finished_at,
        duration_ms=_milliseconds(row.started_at, row.finished_at),
    )


def instance_detail(
    row: Any, history: Sequence[Any], children: Sequence[Any], level: str | None
) -> InstanceDetail:
    """The whole of one instance: `row` with its state, its step history rows, its
    children's rows and its definition's executionLog level."""
    state: dict[str, Any] = row.state
    steps: dict[str, Any] = state.get("steps", {})
    return InstanceDetail(
        **instance_summary(row).model_dump(),
        parent_step_id=row.parent_step_id,
        input=row.input,
        output=row.output,
        error=row.error,
        variables=state.get("variables", {}),
        current_steps=[
            CurrentStep(
                step_id=step_id,
                status=steps[step_id]["status"],
                attempt=steps[step_id].get("attempt", 1),
                started_at=steps[step_id]["started_at"],
            )
            for step_id in state.get("active", [])
            if step_id in steps
        ],
        history=[step_execution(r) for r in history],
        held=held_state(state),
        steps=_entered(steps, state.get("completed", [])),
        execution_log_level=cast(Any, level) if level in ("debug", "info", "error") else None,
        children=[instance_summary(c) for c in children],
    )


def held_state(state: dict[str, Any]) -> HeldState | None:
    code = state.get("code") or {}
    if not code.get("held"):
        return None
    return HeldState(
        reason=code["held"], message=code.get("held_message"), since=code.get("held_since")
    )


def _entered(steps: dict[str, Any], completed: list[str]) -> list[StepSummary]:
    """Each step's latest attempt in start order; steps one transition started together in
    the order they completed (as the history orders them)."""
    rank = {step_id: n for n, step_id in reversed(list(enumerate(completed)))}
    found = []
    for step_id, step in steps.items():
        started, finished = _time(step.get("started_at")), _time(step.get("finished_at"))
        if started is None:
            continue
        found.append(
            StepSummary(
                step_id=step_id,
                status=step.get("status", "running"),
                attempt=step.get("attempt", 1),
                started_at=started,
                finished_at=finished,
                duration_ms=_milliseconds(started, finished),
                error=step.get("error"),
            )
        )
    found.sort(key=lambda s: (s.started_at, rank.get(s.step_id, len(rank)), s.step_id))
    return found


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


def _milliseconds(started: datetime | None, finished: datetime | None) -> int | None:
    if started is None or finished is None:
        return None
    return round((finished - started).total_seconds() * 1000)
