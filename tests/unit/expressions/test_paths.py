"""JMESPath queries: compiled once, searched over any JSON value."""

from __future__ import annotations

import re
from typing import Any

import pytest

from flowbus.expressions import Path, PathError

DATA: dict[str, Any] = {
    "data": {"order_id": "o-1", "amount": 12, "items": [{"sku": "A"}, {"sku": "B"}]},
    "type": "order.created",
}


def test_dot_path_selects_a_value() -> None:
    assert Path("data.order_id").search(DATA) == "o-1"


def test_missing_path_is_null() -> None:
    assert Path("data.customer.name").search(DATA) is None


def test_multiselect_hash_builds_an_object() -> None:
    path = Path("{orderId: data.order_id, amount: data.amount, kind: type}")

    assert path.search(DATA) == {"orderId": "o-1", "amount": 12, "kind": "order.created"}


def test_multiselect_list_builds_a_list() -> None:
    assert Path("[data.order_id, data.amount]").search(DATA) == ["o-1", 12]


def test_projection_collects_from_every_element() -> None:
    assert Path("data.items[*].sku").search(DATA) == ["A", "B"]


@pytest.mark.parametrize("source", ["data..order_id", "data.items[", "{orderId: }"])
def test_query_that_does_not_compile_is_refused_naming_it(source: str) -> None:
    with pytest.raises(PathError, match="^" + re.escape(repr(source))):
        Path(source)


@pytest.mark.parametrize("source", ["", "  "])
def test_empty_query_is_refused(source: str) -> None:
    with pytest.raises(PathError, match="non-empty string"):
        Path(source)


def test_function_given_the_wrong_type_is_a_search_error() -> None:
    with pytest.raises(PathError, match="length"):
        Path("length(data.amount)").search(DATA)
