"""`uiComponents`: what a user interface shows for an instance, chosen by condition and
ordered by priority (the definition format of seed 004).

```yaml
uiComponents:
  - componentId: workflow-progress      # which component the page draws (required)
    condition: "status == 'running'"    # CEL: shown while it holds (always, when absent)
    priority: 1                         # lower first; without one, after those that have one
    context: {title: Current Progress, layout: timeline}   # strings may be {{ path }} templates
    data: {order: "{{ input.orderId }}"}                   # optional: what the component shows
```

Conditions are CEL and `context` and `data` are templates, as everywhere in definitions.
They see `status`, the instance's status in the words of seed 004: `running` while it is
in flight (flowbus's `created`, `running`, `waiting` and `compensating`), `suspended` while
it is paused, else its final status (`completed`, `failed`, `cancelled`, `compensated`,
`timed_out`); `instance.status` is flowbus's own (e.g. `waiting`). Beside it: `input`,
`variables`, `output`, `error` (`type`, `message`, `code`, `stepId`, or null), `steps`
(outputs by step id, as in step conditions), `stepStatus` (status by step id),
`activeSteps`, `instance` (`id`, `workflowId`, `workflowVersion`, `correlationId`,
`status`) and `user` (`id`, `roles`: who is looking).

Without `data`, a component shows what its layout is for: `timeline` the steps entered so
far in start order, `card` the status and output (the variables while there is none),
`alert` the error; other layouts show nothing of their own.

Everything here is pure: a bad component (a condition that does not compile or does not
give a boolean) is reported as a problem naming it and its field, and the others still
show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flowbus.engine.state import InstanceState
from flowbus.expressions import Expression, ExpressionError, Template, TemplateError

Number = int | float
SEED_STATUS = {
    "created": "running",
    "running": "running",
    "waiting": "running",
    "compensating": "running",
    "paused": "suspended",
}
"""Seed 004 names an instance in flight `running` and a paused one `suspended`."""


@dataclass(frozen=True, slots=True)
class UiProblem:
    """What is wrong with one component: its place in the list, its id, the field, why."""

    index: int
    component_id: str | None
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class UiComponent:
    """One compiled component."""

    index: int
    component_id: str
    condition: Expression | None
    priority: Number | None
    layout: str | None
    context: Template
    data: Template | None
    source: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class StepView:
    """A step's latest attempt, as the instance's state holds it."""

    step_id: str
    status: str
    attempt: int
    started_at: str | None = None
    finished_at: str | None = None
    output: Any = None
    error: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class InstanceView:
    """What components are chosen and filled from: one instance as a page sees it."""

    instance_id: str
    workflow_id: str
    workflow_version: int
    status: str
    input: Any = None
    variables: Mapping[str, Any] = field(default_factory=dict)
    output: Any = None
    error: Mapping[str, Any] | None = None
    steps: Sequence[StepView] = ()
    """In the order they started."""
    active: Sequence[str] = ()
    correlation_id: str | None = None
    user_id: str | None = None
    user_roles: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class ShownComponent:
    """A component whose condition holds, ready to draw."""

    component_id: str
    priority: Number | None
    layout: str | None
    title: Any
    description: Any
    context: Any
    data: Any


@dataclass(frozen=True, slots=True)
class UiEvaluation:
    components: list[ShownComponent]
    problems: list[UiProblem]


def compile_components(raw: Sequence[Any]) -> tuple[list[UiComponent], list[UiProblem]]:
    """Compile a definition's `uiComponents`; the problems name each bad one."""
    compiled: list[UiComponent] = []
    problems: list[UiProblem] = []
    for index, item in enumerate(raw):
        try:
            compiled.append(_compile(index, item))
        except _Refused as refused:
            problems.append(refused.problem)
    return compiled, problems


def evaluate(components: Sequence[UiComponent], view: InstanceView) -> UiEvaluation:
    """The components whose condition holds for `view`, by priority (then list order), each
    with its context and data rendered."""
    scope = instance_scope(view)
    shown: list[tuple[UiComponent, ShownComponent]] = []
    problems: list[UiProblem] = []
    for component in components:
        try:
            if component.condition is not None and not component.condition.test(scope):
                continue
            context = component.context.render(scope)
            data = (
                component.data.render(scope)
                if component.data is not None
                else _layout_data(component.layout, view)
            )
        except ExpressionError as exc:
            problems.append(
                UiProblem(component.index, component.component_id, "condition", str(exc))
            )
            continue
        context = context if isinstance(context, dict) else {}
        shown.append(
            (
                component,
                ShownComponent(
                    component_id=component.component_id,
                    priority=component.priority,
                    layout=component.layout,
                    title=context.get("title"),
                    description=context.get("description"),
                    context=context,
                    data=data,
                ),
            )
        )
    shown.sort(key=lambda pair: _order(pair[0]))
    return UiEvaluation([s for _, s in shown], problems)


def view_of(
    state: InstanceState, user_id: str | None = None, user_roles: Sequence[str] = ()
) -> InstanceView:
    """The view of an instance's state; steps in the order they started (steps one
    transition started together in the order they completed)."""
    completed = {step_id: n for n, step_id in reversed(list(enumerate(state.completed)))}
    entered = sorted(
        state.steps.items(),
        key=lambda item: (item[1].started_at, completed.get(item[0], len(completed))),
    )
    return InstanceView(
        instance_id=state.id,
        workflow_id=state.workflow_id,
        workflow_version=state.version,
        status=state.status.value,
        input=state.input,
        variables=state.variables,
        output=state.output,
        error=_error(state.error.model_dump()) if state.error is not None else None,
        steps=[
            StepView(
                step_id=step_id,
                status=step.status.value,
                attempt=step.attempt,
                started_at=step.started_at,
                finished_at=step.finished_at,
                output=step.output,
                error=_error(step.error.model_dump()) if step.error is not None else None,
            )
            for step_id, step in entered
        ],
        active=list(state.active),
        correlation_id=state.correlation_id,
        user_id=user_id,
        user_roles=tuple(user_roles),
    )


def _error(error: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": error.get("type"),
        "message": error.get("message"),
        "code": error.get("code"),
        "stepId": error.get("step_id"),
    }


def instance_scope(view: InstanceView) -> dict[str, Any]:
    """What conditions and templates of components see."""
    return {
        "status": SEED_STATUS.get(view.status, view.status),
        "input": view.input,
        "variables": dict(view.variables),
        "output": view.output,
        "error": dict(view.error) if view.error is not None else None,
        "steps": {s.step_id: s.output for s in view.steps},
        "stepStatus": {s.step_id: s.status for s in view.steps},
        "activeSteps": list(view.active),
        "instance": {
            "id": view.instance_id,
            "workflowId": view.workflow_id,
            "workflowVersion": view.workflow_version,
            "correlationId": view.correlation_id,
            "status": view.status,
        },
        "user": {"id": view.user_id, "roles": list(view.user_roles)},
    }


def _order(component: UiComponent) -> tuple[bool, float, int]:
    priority = component.priority
    return (priority is None, priority if priority is not None else 0.0, component.index)


NOT_ENTERED = frozenset({"pending", "skipped"})
"""Step statuses of steps that never ran: a timeline leaves them out."""


def _layout_data(layout: str | None, view: InstanceView) -> Any:
    if layout == "timeline":
        return {
            "steps": [
                {
                    "stepId": s.step_id,
                    "status": s.status,
                    "attempt": s.attempt,
                    "startedAt": s.started_at,
                    "finishedAt": s.finished_at,
                    "error": dict(s.error) if s.error is not None else None,
                }
                for s in view.steps
                if s.status not in NOT_ENTERED
            ],
            "activeSteps": list(view.active),
        }
    if layout == "card":
        shown = view.output if view.output is not None else dict(view.variables)
        return {"status": view.status, "output": shown}
    if layout == "alert":
        return {"status": view.status, "error": dict(view.error) if view.error else None}
    return None


class _Refused(Exception):
    def __init__(self, problem: UiProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def _compile(index: int, item: Any) -> UiComponent:
    def refuse(field_name: str, message: str, component_id: str | None = None) -> _Refused:
        return _Refused(UiProblem(index, component_id, field_name, message))

    if not isinstance(item, Mapping):
        raise refuse("uiComponents", f"must be an object, not {type(item).__name__}")
    component_id = item.get("componentId")
    if not isinstance(component_id, str) or not component_id.strip():
        raise refuse("componentId", "a component needs a componentId (a non-empty string)")
    condition = item.get("condition")
    compiled_condition: Expression | None = None
    if condition is not None:
        try:
            compiled_condition = Expression(condition)
        except ExpressionError as exc:
            raise refuse("condition", str(exc), component_id) from None
    priority = item.get("priority")
    if priority is not None and (
        isinstance(priority, bool) or not isinstance(priority, int | float)
    ):
        raise refuse("priority", "must be a number", component_id)
    context = item.get("context", {})
    if not isinstance(context, Mapping):
        raise refuse("context", "must be an object", component_id)
    layout = context.get("layout", item.get("layout", item.get("type")))
    if layout is not None and not isinstance(layout, str):
        raise refuse("context.layout", "must be a string", component_id)
    try:
        compiled_context = Template(dict(context), "context")
        compiled_data = Template(item["data"], "data") if "data" in item else None
    except TemplateError as exc:
        where = "data" if str(exc).startswith("data") else "context"
        raise refuse(where, str(exc), component_id) from None
    return UiComponent(
        index=index,
        component_id=component_id,
        condition=compiled_condition,
        priority=priority,
        layout=layout,
        context=compiled_context,
        data=compiled_data,
        source=item,
    )
