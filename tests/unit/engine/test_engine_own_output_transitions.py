"""`next` transitions of a step decide on that step's own output."""

from __future__ import annotations

from flowbus.engine.inputs import ActionResult, EventReceived

from .support import Instance, at, log_step, webhook_step

OWN_OUTPUT_NOT_IN_SCOPE = (
    "StepCall.complete resolves `next` before Run.complete_step stores the output, so "
    "`steps.<own id>` is null in the step's own transitions (flowbus/engine/run.py:703-714)"
)


def test_action_step_transitions_see_the_actions_output() -> None:
    raw = {
        "id": "route",
        "steps": [
            webhook_step(
                "call",
                next=[{"to": "ok", "condition": "steps.call.status == 200"}, {"to": "other"}],
            ),
            log_step("ok"),
            log_step("other"),
        ],
    }
    instance = Instance(raw)

    instance.apply(ActionResult("call", 1, output={"status": 200}), at(1))

    assert instance.state.completed == ["call", "ok"]


def test_event_wait_transitions_see_the_received_event() -> None:
    raw = {
        "id": "route",
        "steps": [
            {
                "id": "await-payment",
                "type": "wait",
                "event": {"topic": "payments", "match": "data.orderId", "key": "o-7"},
                "next": [
                    {"to": "large", "condition": "steps['await-payment'].data.amount > 100"},
                    {"to": "small"},
                ],
            },
            log_step("large"),
            log_step("small"),
        ],
    }
    instance = Instance(raw)

    instance.apply(EventReceived("await-payment", {"data": {"amount": 500}}), at(1))

    assert instance.state.completed == ["await-payment", "large"]
