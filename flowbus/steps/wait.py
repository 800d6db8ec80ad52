"""`wait` steps: for a duration, until a time, or for a correlated event.

For an event, the step subscribes to `topic` (optionally only events of `type`): an event
whose `match` query (JMESPath over the event document) equals the rendered `key` ends the
wait, and the event document becomes the step's output. An event that arrives a little
before the wait is registered is kept for a while (setting `event_buffer_ttl`) and taken
when the wait starts. With `timeout`, `onTimeout` routes an elapsed wait to a step (the
output is `{"timedOut": true}`); without `onTimeout` the step fails with a TimeoutError.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from flowbus.definitions.step import StepModel
from flowbus.definitions.types import DefinitionModel, Duration, QueryPath, TemplateValue
from flowbus.engine.effects import Subscribe, Unsubscribe
from flowbus.expressions import ExpressionError
from flowbus.steps.base import StepCall, StepType
from flowbus.times import parse_time

if TYPE_CHECKING:
    from flowbus.engine.effects import TimerKind


class EventWait(DefinitionModel):
    topic: str = Field(min_length=1)
    type: str | None = None
    match: QueryPath = Field(description="Query over the event document giving its key.")
    key: TemplateValue = Field(description="The key to wait for (a template over the instance).")


class WaitStepModel(StepModel):
    type: Literal["wait"]
    duration: Duration | None = None
    until: TemplateValue | None = Field(None, description="An RFC 3339 time (or template).")
    event: EventWait | None = None
    on_timeout: str | None = None

    @model_validator(mode="after")
    def _one_thing_to_wait_for(self) -> WaitStepModel:
        given = [k for k in ("duration", "until", "event") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("duration: give exactly one of duration, until or event")
        if self.on_timeout is not None and self.timeout is None:
            raise ValueError("onTimeout: needs a timeout")
        return self

    def successor_ids(self) -> list[str]:
        extra = [self.on_timeout] if self.on_timeout else []
        return super().successor_ids() + extra

    def waits(self) -> bool:
        return True


class WaitStep(StepType[WaitStepModel]):
    name = "wait"
    model = WaitStepModel

    def enter(self, step: WaitStepModel, call: StepCall) -> None:
        call.wait()
        if step.duration is not None:
            call.set_timer("wait", step.duration)
        elif step.until is not None:
            try:
                when = _moment(call.render(step.until))
            except (ExpressionError, ValueError) as exc:
                call.fail_with("ExpressionError", f"until: {exc}")
                return
            if when <= call.moment:
                call.complete({"waitedUntil": call.now})
                return
            call.set_timer("wait", when)
        else:
            assert step.event is not None
            key = call.render(step.event.key)
            if key is None:
                call.fail_with("ExpressionError", "event.key rendered to null")
                return
            call.state.data["key"] = str(key)
            call.add_effect(
                Subscribe(
                    step_id=step.id,
                    attempt=call.attempt,
                    topic=step.event.topic,
                    event_type=step.event.type,
                    match=step.event.match.source,
                    key=str(key),
                )
            )

    def on_timer(self, step: WaitStepModel, call: StepCall, kind: TimerKind) -> None:
        if kind == "wait":
            call.complete({"waitedUntil": call.now})

    def on_event(self, step: WaitStepModel, call: StepCall, event: dict[str, Any]) -> bool:
        if step.event is None:
            return False
        call.add_effect(Unsubscribe(step_id=step.id))
        call.complete(event)
        return True

    def on_timeout(self, step: WaitStepModel, call: StepCall) -> bool:
        if step.on_timeout is None:
            return False
        self.on_cancel(step, call)
        call.complete({"timedOut": True}, next_step=step.on_timeout)
        return True

    def on_cancel(self, step: WaitStepModel, call: StepCall) -> None:
        if step.event is not None:
            call.add_effect(Unsubscribe(step_id=step.id))


def _moment(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"expected an RFC 3339 time, got {value!r}")
    return parse_time(value)
