"""Actions as the engine runs them: inline ones at once, within their bounds; external
ones handed to the shell as a `RunAction` whose result comes back as an input."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from flowbus.actions.base import ActionContext, InlineOutcome
from flowbus.actions.registry import ACTIONS
from flowbus.definitions.step import StepModel
from flowbus.engine.effects import ActionPurpose, PublishEvent, RunAction
from flowbus.engine.state import ErrorInfo
from flowbus.engine.working import WorkingCopy
from flowbus.expressions import ExpressionError, Template

PENDING = object()
"""What `run_action` returns for an external action: the shell runs it."""


def run_action(
    work: WorkingCopy,
    step: StepModel,
    action_name: str,
    config: Template,
    *,
    purpose: ActionPurpose,
    key: str,
) -> Any:
    """Run an action for `step`: returns its output, an `ErrorInfo`, or `PENDING` when
    the shell runs it (the result arrives as an `ActionResult`)."""
    action = ACTIONS[action_name]
    scope = work.scope()
    try:
        rendered = config.render(scope)
    except ExpressionError as exc:
        return ErrorInfo(type="ExpressionError", message=str(exc), step_id=step.id)
    try:
        action.config_model.model_validate(rendered)
    except ValidationError as exc:
        return ErrorInfo(type="ActionConfigError", message=validation_message(exc), step_id=step.id)
    s = work.state.steps[step.id]
    attempt = s.attempt
    if work.definition.execution_log.level == "debug":
        work.state.steps[step.id].data["input"] = rendered
    if not action.inline:
        work.effects.append(
            RunAction(
                step_id=step.id,
                attempt=attempt,
                action=action_name,
                config=rendered,
                idempotency_key=key,
                purpose=purpose,
                tries=s.tries if purpose == "step" else 1,
            )
        )
        heartbeat = action.heartbeat(rendered)
        if heartbeat is not None and purpose == "step":
            s.data["heartbeat"] = heartbeat.total_seconds()
            work.set_timer("heartbeat", heartbeat, step)
        return PENDING
    context = ActionContext(
        instance_id=work.state.id,
        workflow_id=work.state.workflow_id,
        step_id=step.id,
        attempt=attempt,
        now=work.now,
        idempotency_key=key,
        new_event_id=work.next_published_id,
        tries=s.tries,
    )
    outcome = action.run_inline(rendered, context)
    too_large = _check_inline(work, step, outcome)
    if too_large is not None:
        return too_large
    work.state.variables.update(outcome.variables)
    work.effects.extend(outcome.effects)
    return outcome.output


def _check_inline(work: WorkingCopy, step: StepModel, outcome: InlineOutcome) -> ErrorInfo | None:
    """Bound what an inline action produced before any of it takes effect."""
    too_large = work.limits.check_output(step.id, outcome.output)
    if too_large is None and outcome.variables:
        merged = {**work.state.variables, **outcome.variables}
        too_large = work.limits.check_variables(step.id, merged)
    for effect in outcome.effects:
        if too_large is not None:
            break
        if isinstance(effect, PublishEvent):
            too_large = work.limits.check_event(step.id, effect.type, _published(effect))
    return too_large


def _published(event: PublishEvent) -> dict[str, Any]:
    """What of a published event counts towards its size: all but the envelope."""
    return {
        "topic": event.topic,
        "key": event.key,
        "type": event.type,
        "subject": event.subject,
        "data": event.data,
    }


def validation_message(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()
    )
