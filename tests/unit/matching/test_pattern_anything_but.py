"""anything-but in all its forms."""

from typing import Any

import pytest

from flowbus.matching.errors import PatternError
from flowbus.matching.patterns import compile_pattern

MISSING = object()


def matches(operand: Any, value: Any) -> bool:
    data = {} if value is MISSING else {"v": value}
    return compile_pattern({"data": {"v": [{"anything-but": operand}]}}).matches({"data": data})


def test_anything_but_string_excludes_that_string() -> None:
    assert not matches("cancelled", "cancelled")
    assert matches("cancelled", "open")


def test_anything_but_does_not_match_a_missing_field() -> None:
    assert not matches("cancelled", MISSING)


def test_anything_but_list_excludes_every_listed_string() -> None:
    assert not matches(["cancelled", "void"], "void")
    assert matches(["cancelled", "void"], "open")


def test_anything_but_number_compares_numerically() -> None:
    assert not matches(100, 100.0)
    assert matches(100, 101)


def test_anything_but_number_list_excludes_each_number() -> None:
    assert not matches([100, 200], 200)
    assert matches([100, 200], 300)


def test_anything_but_string_matches_values_of_other_types() -> None:
    assert matches("x", 5)
    assert matches("x", True)
    assert matches("x", None)


def test_anything_but_number_matches_numeric_string() -> None:
    assert matches(5, "5")


def test_anything_but_prefix_excludes_strings_with_that_prefix() -> None:
    assert not matches({"prefix": "test-"}, "test-1")
    assert matches({"prefix": "test-"}, "prod-1")


def test_anything_but_suffix_excludes_strings_with_that_suffix() -> None:
    assert not matches({"suffix": ".tmp"}, "a.tmp")
    assert matches({"suffix": ".tmp"}, "a.txt")


def test_anything_but_equals_ignore_case_excludes_any_casing() -> None:
    assert not matches({"equals-ignore-case": "Cancelled"}, "CANCELLED")
    assert matches({"equals-ignore-case": "Cancelled"}, "open")


def test_anything_but_equals_ignore_case_takes_a_list() -> None:
    assert not matches({"equals-ignore-case": ["A", "B"]}, "b")
    assert matches({"equals-ignore-case": ["A", "B"]}, "c")


def test_anything_but_wildcard_excludes_matching_strings() -> None:
    assert not matches({"wildcard": "*/lib/*"}, "/usr/lib/x")
    assert matches({"wildcard": "*/lib/*"}, "/usr/bin/x")


def test_anything_but_on_an_array_matches_if_any_element_is_not_excluded() -> None:
    assert matches("a", ["a", "b"])
    assert not matches("a", ["a", "a"])


def test_anything_but_does_not_match_an_empty_array() -> None:
    assert not matches("a", [])


def test_anything_but_does_not_match_an_object_value() -> None:
    assert not matches("a", {"nested": "b"})


def test_anything_but_mixed_list_is_rejected() -> None:
    with pytest.raises(PatternError, match=r"^data\.v\[0\]: anything-but takes"):
        compile_pattern({"data": {"v": [{"anything-but": ["a", 1]}]}})


def test_anything_but_empty_list_is_rejected() -> None:
    with pytest.raises(PatternError, match="anything-but takes"):
        compile_pattern({"data": {"v": [{"anything-but": []}]}})


def test_anything_but_unknown_operator_is_rejected() -> None:
    with pytest.raises(PatternError, match="anything-but takes"):
        compile_pattern({"data": {"v": [{"anything-but": {"numeric": [">", 1]}}]}})


def test_anything_but_null_is_rejected() -> None:
    with pytest.raises(PatternError, match="anything-but takes"):
        compile_pattern({"data": {"v": [{"anything-but": None}]}})
