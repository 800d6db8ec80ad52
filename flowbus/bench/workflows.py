"""The workflow definitions the benchmarks run. Each puts the trigger's `sent` stamp in its
output, so the bench can tell each instance's latency from its completion event."""

from __future__ import annotations

from typing import Any

from flowbus.bench import code_first
from flowbus.bench.stack import SOURCE_TOPIC

THREE_STEPS: dict[str, Any] = {
    "id": "bench-three-steps",
    "triggers": [
        {"topic": SOURCE_TOPIC, "type": "bench.order", "transform": {"expression": "data"}}
    ],
    "steps": [
        {
            "id": "check",
            "type": "condition",
            "condition": "input.amount > 100.0",
            "onTrue": "flag",
            "onFalse": "announce",
        },
        {
            "id": "flag",
            "type": "action",
            "action": "set_variables",
            "config": {"review": True},
            "next": "announce",
        },
        {
            "id": "announce",
            "type": "action",
            "action": "send_event",
            "config": {
                "topic": "bench-out",
                "type": "bench.done",
                "data": {"id": "{{ input.id }}"},
            },
        },
    ],
    "output": {"sent": "{{ input.sent }}"},
}
"""A condition, a set_variables and a send_event: the shape `flowbus bench e2e` measures."""

DECLARATIVE = ("bench.order", THREE_STEPS["id"])
"""Trigger type and workflow id of the declarative three-step workflow."""
CODE_FIRST = (code_first.EVENT_TYPE, code_first.three_steps.id)
"""Trigger type and workflow id of the same shape as a code-first workflow."""

REALISTIC_ID = "bench-realistic"
REALISTIC_TYPE = "bench.scored-order"


def realistic(url: str, wait_seconds: float) -> dict[str, Any]:
    """Ask a scoring service (webhook), wait durably, then announce the score."""
    return {
        "id": REALISTIC_ID,
        "triggers": [
            {"topic": SOURCE_TOPIC, "type": REALISTIC_TYPE, "transform": {"expression": "data"}}
        ],
        "steps": [
            {
                "id": "score",
                "type": "action",
                "action": "webhook",
                "config": {
                    "url": url,
                    "body": {"id": "{{ input.id }}", "amount": "{{ input.amount }}"},
                    "timeout": 5,
                },
                "next": "settle",
            },
            {"id": "settle", "type": "wait", "duration": wait_seconds, "next": "announce"},
            {
                "id": "announce",
                "type": "action",
                "action": "send_event",
                "config": {
                    "topic": "bench-out",
                    "type": "bench.scored",
                    "data": {"id": "{{ input.id }}", "score": "{{ steps.score.body.score }}"},
                },
            },
        ],
        "output": {"sent": "{{ input.sent }}", "score": "{{ steps.score.body.score }}"},
    }


TIMERS_ID = "bench-timers"
TIMERS_TYPE = "bench.timer"
TIMER_STEP = "sleep"

TIMERS: dict[str, Any] = {
    "id": TIMERS_ID,
    "triggers": [{"topic": SOURCE_TOPIC, "type": TIMERS_TYPE, "transform": {"expression": "data"}}],
    "steps": [{"id": TIMER_STEP, "type": "wait", "duration": "P1D"}],
    "output": {"id": "{{ input.id }}", "sent": "{{ input.sent }}"},
}
"""One durable wait of a day; `flowbus bench timers` moves the due times to its window."""
