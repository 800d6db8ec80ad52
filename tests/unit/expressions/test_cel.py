"""CEL conditions: compiled once, evaluated against a scope, no side effects."""

from __future__ import annotations

from typing import Any

import pytest

from flowbus.expressions import Expression, ExpressionError

SCOPE: dict[str, Any] = {
    "input": {"count": 3, "price": 9.5, "name": "Ada", "items": [{"sku": "A"}], "none": None},
    "variables": {"review": True},
}


@pytest.mark.parametrize("source", ["1 +", "input.count >", "(true"])
def test_expression_that_does_not_parse_is_refused(source: str) -> None:
    with pytest.raises(ExpressionError, match="Syntax error"):
        Expression(source)


@pytest.mark.parametrize("source", ["", "   "])
def test_empty_expression_is_refused(source: str) -> None:
    with pytest.raises(ExpressionError, match="non-empty string"):
        Expression(source)


def test_expression_keeps_its_source() -> None:
    assert Expression("input.count > 1").source == "input.count > 1"


def test_evaluate_returns_the_value() -> None:
    assert Expression("input.count * 2").evaluate(SCOPE) == 6


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("input.count > 2", True),
        ("input.name == 'Ada'", True),
        ("input.items[0].sku == 'A'", True),
        ("variables.review && input.count < 3", False),
        ("input.none == null", True),
        ("has(input.missing)", False),
        ("size(input.items) == 1", True),
    ],
)
def test_test_gives_the_condition_outcome(source: str, expected: bool) -> None:
    assert Expression(source).test(SCOPE) is expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("input.count > 2.5", True),
        ("input.count == 3.0", True),
        ("input.price > 9", True),
        ("input.price < 9", False),
    ],
)
def test_ints_and_doubles_compare_by_value(source: str, expected: bool) -> None:
    assert Expression(source).test(SCOPE) is expected


@pytest.mark.parametrize("source", ["input.count", "input.name", "input.items"])
def test_test_requires_a_boolean(source: str) -> None:
    with pytest.raises(ExpressionError, match="not a boolean"):
        Expression(source).test(SCOPE)


def test_missing_field_is_an_evaluation_error_naming_the_expression() -> None:
    with pytest.raises(ExpressionError, match=r"^'input.missing > 1': .*missing"):
        Expression("input.missing > 1").evaluate(SCOPE)


def test_undefined_variable_is_an_evaluation_error() -> None:
    with pytest.raises(ExpressionError, match="Undefined variable"):
        Expression("trigger.type == 'x'").evaluate(SCOPE)


def test_mixing_strings_and_numbers_is_an_evaluation_error() -> None:
    with pytest.raises(ExpressionError, match="TypeError"):
        Expression("input.name + 1").evaluate(SCOPE)


def test_division_by_zero_is_an_evaluation_error() -> None:
    with pytest.raises(ExpressionError, match="division by zero"):
        Expression("input.count / 0").evaluate(SCOPE)
