"""A live instance stream releases events in flowbusseq order: 1..n, no gaps, no repeats,
whatever order the topics deliver them in."""

from __future__ import annotations

from typing import Any

from flowbus.api.streams import SequenceOrder


def event(seq: int) -> dict[str, Any]:
    return {"id": f"e{seq}", "flowbusseq": seq}


def seqs(events: list[dict[str, Any]]) -> list[int]:
    return [e["flowbusseq"] for e in events]


def test_events_in_order_are_released_at_once() -> None:
    order = SequenceOrder()

    assert seqs(order.push(event(1))) == [1]
    assert seqs(order.push(event(2))) == [2]


def test_an_early_event_waits_for_the_ones_before_it() -> None:
    order = SequenceOrder()

    assert order.push(event(2)) == []
    assert order.push(event(3)) == []
    assert order.waiting
    assert seqs(order.push(event(1))) == [1, 2, 3]
    assert not order.waiting


def test_repeats_and_events_before_the_resume_point_are_dropped() -> None:
    order = SequenceOrder(after=3)

    assert order.push(event(2)) == []
    assert seqs(order.push(event(4))) == [4]
    assert order.push(event(4)) == []


def test_a_gap_that_cannot_be_filled_is_skipped() -> None:
    order = SequenceOrder()
    order.push(event(3))
    order.push(event(5))

    assert seqs(order.skip_gap()) == [3]
    assert seqs(order.push(event(4))) == [4, 5]


def test_events_without_a_sequence_number_are_ignored() -> None:
    assert SequenceOrder().push({"id": "x"}) == []
