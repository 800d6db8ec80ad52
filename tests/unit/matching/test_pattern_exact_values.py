"""Exact-value matchers: strings, numbers, booleans, null and the empty string."""

from typing import Any

from flowbus.matching.patterns import compile_pattern


def matches(pattern: dict[str, Any], data: Any) -> bool:
    return compile_pattern(pattern).matches({"topic": "t", "data": data})


def test_string_matches_equal_string() -> None:
    assert matches({"data": {"kind": ["order"]}}, {"kind": "order"})


def test_string_does_not_match_other_string() -> None:
    assert not matches({"data": {"kind": ["order"]}}, {"kind": "orders"})


def test_any_value_in_the_array_may_match() -> None:
    pattern = {"data": {"tier": ["gold", "platinum"]}}
    assert matches(pattern, {"tier": "platinum"})
    assert not matches(pattern, {"tier": "silver"})


def test_string_match_is_case_sensitive() -> None:
    assert not matches({"data": {"kind": ["order"]}}, {"kind": "Order"})


def test_all_fields_must_match() -> None:
    pattern = {"type": ["order.created"], "data": {"kind": ["retail"]}}
    assert compile_pattern(pattern).matches({"type": "order.created", "data": {"kind": "retail"}})
    assert not compile_pattern(pattern).matches({"type": "order.created", "data": {"kind": "b2b"}})


def test_integer_matches_equal_float() -> None:
    assert matches({"data": {"n": [5]}}, {"n": 5.0})


def test_exponent_notation_matches_equal_integer() -> None:
    assert matches({"data": {"n": [1e3]}}, {"n": 1000})


def test_number_does_not_match_numeric_string() -> None:
    assert not matches({"data": {"n": [5]}}, {"n": "5"})


def test_numeric_string_does_not_match_number() -> None:
    assert not matches({"data": {"n": ["5"]}}, {"n": 5})


def test_zero_matches_zero_only() -> None:
    assert matches({"data": {"n": [0]}}, {"n": 0.0})
    assert not matches({"data": {"n": [0]}}, {"n": False})
    assert not matches({"data": {"n": [0]}}, {"n": None})


def test_boolean_true_does_not_match_number_one() -> None:
    assert not matches({"data": {"flag": [True]}}, {"flag": 1})


def test_number_one_does_not_match_boolean_true() -> None:
    assert not matches({"data": {"n": [1]}}, {"n": True})


def test_booleans_match_booleans() -> None:
    assert matches({"data": {"flag": [False]}}, {"flag": False})
    assert not matches({"data": {"flag": [False]}}, {"flag": True})


def test_null_matches_json_null() -> None:
    assert matches({"data": {"reason": [None]}}, {"reason": None})


def test_null_does_not_match_missing_field() -> None:
    assert not matches({"data": {"reason": [None]}}, {})


def test_null_does_not_match_empty_string() -> None:
    assert not matches({"data": {"reason": [None]}}, {"reason": ""})


def test_empty_string_matches_empty_string_only() -> None:
    assert matches({"data": {"note": [""]}}, {"note": ""})
    assert not matches({"data": {"note": [""]}}, {"note": None})
    assert not matches({"data": {"note": [""]}}, {})


def test_missing_field_does_not_match_a_value() -> None:
    assert not matches({"data": {"kind": ["order"]}}, {"other": "order"})


def test_leaf_does_not_match_an_object_value() -> None:
    assert not matches({"data": {"kind": ["order"]}}, {"kind": {"name": "order"}})


def test_nested_objects_descend_into_the_document() -> None:
    pattern = {"data": {"customer": {"tier": ["gold"]}}}
    assert matches(pattern, {"customer": {"tier": "gold", "id": 1}})
    assert not matches(pattern, {"customer": "gold"})


def test_envelope_fields_are_matched_like_data() -> None:
    pattern = {"topic": ["orders"], "headers": {"tenant": ["acme"]}}
    assert compile_pattern(pattern).matches({"topic": "orders", "headers": {"tenant": "acme"}})


def test_empty_pattern_matches_every_document() -> None:
    assert compile_pattern({}).matches({"topic": "anything"})
