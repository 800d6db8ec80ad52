"""A small order workflow (tests/workflows/order-basic.yaml) run through the engine."""

from __future__ import annotations

from pathlib import Path

from flowbus.definitions.loader import load_file
from flowbus.definitions.model import WorkflowDefinition
from flowbus.engine.core import Transition, start
from flowbus.engine.effects import PublishEvent
from flowbus.engine.state import InstanceStatus

from .support import NOW

EXAMPLE = Path(__file__).parents[2] / "workflows" / "order-basic.yaml"


def example() -> WorkflowDefinition:
    return load_file(EXAMPLE).model_copy(update={"version": 1})


def run_order(amount: float) -> Transition:
    return start(
        example(), instance_id="inst-1", input={"orderId": "o-42", "amount": amount}, now=NOW
    )


def test_large_order_is_flagged_for_review_then_confirmed() -> None:
    transition = run_order(1500.0)

    assert transition.state.completed == ["check-amount", "flag-for-review", "confirm"]
    assert transition.state.output == {"orderId": "o-42", "review": True}


def test_small_order_is_confirmed_without_review() -> None:
    transition = run_order(20.0)

    assert transition.state.completed == ["check-amount", "confirm"]
    assert transition.state.output == {"orderId": "o-42", "review": None}


def test_confirmation_is_published_keyed_by_order_with_typed_data() -> None:
    transition = run_order(1500.0)

    [event] = [e for e in transition.effects if isinstance(e, PublishEvent)]
    assert (event.topic, event.key, event.type) == (
        "order-notifications",
        "o-42",
        "order.confirmed",
    )
    assert event.data == {"orderId": "o-42", "amount": 1500.0, "review": True}


def test_example_instance_completes() -> None:
    assert run_order(1.0).state.status is InstanceStatus.COMPLETED
