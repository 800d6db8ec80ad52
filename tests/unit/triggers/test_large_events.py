"""Events inside the record limits (64 deep, 1 MB, 100,000 keys) cost milliseconds in
matching, transforms and input validation, against the example workflows."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from flowbus.definitions.catalog import DefinitionCatalog
from flowbus.definitions.loader import load_path
from flowbus.envelope import RecordLimits, parse_record
from flowbus.ingest.triggers import StartRefused, workflow_input
from flowbus.limits import JsonLimits
from flowbus.matching.patterns import compile_pattern
from tests.unit.triggers.support import event_document, stored

EXAMPLES = Path(__file__).resolve().parents[3] / "config" / "workflows"
LIMITS = RecordLimits(JsonLimits(max_bytes=1_000_000, max_depth=64))
BUDGET = 0.1  # CPU seconds, generous: the real cost is a few ms (a quadratic path: seconds)


def examples() -> DefinitionCatalog:
    definitions = [d.model_copy(update={"version": 1}) for d in load_path(EXAMPLES)]
    return DefinitionCatalog(definitions)


def many_keys(count: int = 100_000) -> dict[str, int]:
    return {f"{i:x}": 0 for i in range(count)}


def deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def timed(work: Callable[[], Any]) -> tuple[Any, float]:
    """The result and the CPU seconds it took: CPU time, unlike the clock, does not grow
    while other processes hold the machine's cores."""
    began = time.process_time()
    result = work()
    return result, time.process_time() - began


def through_triggers(catalog: DefinitionCatalog, body: dict[str, Any]) -> list[str]:
    """Read the record, match it and build each matched workflow's input: what the ingest does."""
    raw = orjson.dumps(body)
    assert len(raw) <= 1_000_000
    document = parse_record("orders", 0, 1, b"k", raw, [], LIMITS).match_document()
    outcomes = []
    for match in catalog.match(document):
        try:
            value = workflow_input(match, document)
            problems = catalog.input_errors(match.definition, value)
            outcomes.append(f"{match.definition.id}: {len(problems)} problem(s)")
        except StartRefused as exc:
            outcomes.append(f"{match.definition.id}: {exc}")
    return outcomes


@pytest.mark.parametrize(
    "body",
    [
        {"type": "order.created", "order_id": "o-1", "amount": 5, "items": [deep(61)]},
        {"type": "order.created", "order_id": "o-1", "amount": 5, "customer": deep(61)},
        {"type": "order.created", "order_id": deep(61), "amount": 5},
        {"type": "invoice.issued", "invoice_id": deep(61), "total": 5},
    ],
    ids=["deep-items", "deep-customer", "deep-order-id", "deep-invoice"],
)
def test_an_event_nested_to_the_limit_is_cheap(body: dict[str, Any]) -> None:
    outcomes, seconds = timed(lambda: through_triggers(examples(), body))

    assert outcomes
    assert seconds < BUDGET


@pytest.mark.parametrize(
    "body",
    [
        {"type": "order.created", "order_id": "o-1", "amount": 5, **many_keys()},
        {"type": "order.created", "order_id": "o-1", "amount": 5, "customer": many_keys()},
        {"type": "order.created", "order_id": many_keys(60_000), "amount": many_keys(40_000)},
        {"type": "invoice.issued", "invoice_id": many_keys(), "total": 5},
    ],
    ids=["top-level", "customer", "invalid-input", "invoice"],
)
def test_a_megabyte_event_with_100_000_keys_is_cheap(body: dict[str, Any]) -> None:
    catalog = examples()
    outcomes, seconds = timed(lambda: through_triggers(catalog, body))

    assert outcomes
    assert seconds < BUDGET


def test_a_wildcard_costs_linear_time_on_a_megabyte_of_near_misses() -> None:
    catalog = DefinitionCatalog(
        [stored({"topic": "orders", "pattern": {"data": {"path": [{"wildcard": "*a*a*a*b"}]}}})]
    )
    document = event_document(path="a" * 1_000_000)

    matches, seconds = timed(lambda: catalog.match(document))

    assert matches == []
    assert seconds < BUDGET


@pytest.mark.parametrize("seed", range(5))
def test_a_wildcard_matches_what_its_regular_expression_matches(seed: int) -> None:
    pick = random.Random(seed)
    for _ in range(300):
        wildcard = "".join(pick.choice("ab*") for _ in range(pick.randint(0, 6)))
        wildcard = re.sub(r"\*+", "*", wildcard)
        value = "".join(pick.choice("ab") for _ in range(pick.randint(0, 8)))
        expected = re.fullmatch(".*".join(map(re.escape, wildcard.split("*"))), value, re.DOTALL)
        pattern = compile_pattern({"v": [{"wildcard": wildcard}]})

        assert pattern.matches({"v": value}) is (expected is not None), (wildcard, value)
