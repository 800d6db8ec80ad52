"""numeric ranges and equality."""

from typing import Any

import pytest

from flowbus.matching.errors import PatternError
from flowbus.matching.patterns import compile_pattern


def matches(operands: list[Any], value: Any) -> bool:
    pattern = compile_pattern({"data": {"n": [{"numeric": operands}]}})
    return pattern.matches({"data": {"n": value}})


def test_greater_than_excludes_the_bound() -> None:
    assert not matches([">", 0], 0)
    assert matches([">", 0], 0.000001)


def test_greater_or_equal_includes_the_bound() -> None:
    assert matches([">=", 0], 0)
    assert not matches([">=", 0], -0.5)


def test_less_than_with_negative_bound() -> None:
    assert matches(["<", -10], -10.5)
    assert not matches(["<", -10], -10)


def test_combined_range_checks_both_bounds() -> None:
    assert [matches([">", 0, "<=", 5], v) for v in (0, 0.1, 5, 5.0001)] == [
        False,
        True,
        True,
        False,
    ]


def test_bounds_may_be_given_upper_first() -> None:
    assert matches(["<", 10, ">=", 2], 2)


def test_equals_compares_integers_and_floats() -> None:
    assert matches(["=", 301.8], 3.018e2)
    assert matches(["=", 1000], 1e3)


def test_numeric_string_does_not_match() -> None:
    assert not matches([">", 0], "7")


def test_booleans_are_not_numbers() -> None:
    assert not matches([">", 0], True)
    assert not matches(["=", 0], False)


def test_null_and_missing_do_not_match() -> None:
    assert not matches([">", 0], None)
    assert not compile_pattern({"data": {"n": [{"numeric": [">", 0]}]}}).matches({"data": {}})


def test_any_element_of_an_array_may_fall_in_the_range() -> None:
    assert matches([">", 100], [5, 150])
    assert not matches([">", 100], [5, 50])


def test_large_integers_compare_exactly() -> None:
    assert matches([">", 2**53], 2**53 + 1)


def test_odd_operand_count_is_rejected_with_the_path() -> None:
    with pytest.raises(PatternError) as caught:
        compile_pattern({"data": {"amount": [{"numeric": [">"]}]}})
    assert str(caught.value) == "data.amount[0]: numeric needs pairs of operator and number"
    assert caught.value.path == "data.amount[0]"


def test_unknown_operator_is_rejected() -> None:
    with pytest.raises(PatternError, match="numeric operator must be one of"):
        compile_pattern({"data": {"n": [{"numeric": ["!=", 1]}]}})


def test_string_operand_is_rejected() -> None:
    with pytest.raises(PatternError, match="pairs of operator and number"):
        compile_pattern({"data": {"n": [{"numeric": [">", "1"]}]}})


def test_boolean_operand_is_rejected() -> None:
    with pytest.raises(PatternError, match="pairs of operator and number"):
        compile_pattern({"data": {"n": [{"numeric": [">", True]}]}})


def test_two_lower_bounds_are_rejected() -> None:
    with pytest.raises(PatternError, match="more than one lower bound"):
        compile_pattern({"data": {"n": [{"numeric": [">", 1, ">=", 2]}]}})


def test_equals_combined_with_a_bound_is_rejected() -> None:
    with pytest.raises(PatternError, match="'=' cannot be combined"):
        compile_pattern({"data": {"n": [{"numeric": ["=", 1, "<", 2]}]}})


def test_empty_range_is_rejected() -> None:
    with pytest.raises(PatternError, match="numeric range is empty"):
        compile_pattern({"data": {"n": [{"numeric": [">", 5, "<", 5]}]}})


def test_infinite_bound_is_rejected() -> None:
    with pytest.raises(PatternError, match="finite"):
        compile_pattern({"data": {"n": [{"numeric": [">", float("inf")]}]}})
