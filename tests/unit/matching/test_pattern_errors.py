"""Invalid patterns raise PatternError naming the JSON path of the bad part."""

from typing import Any

import pytest

from flowbus.matching.errors import PatternError
from flowbus.matching.patterns import compile_pattern


def error_for(pattern: Any) -> str:
    with pytest.raises(PatternError) as caught:
        compile_pattern(pattern)
    return str(caught.value)


def test_pattern_that_is_not_an_object() -> None:
    assert error_for(["type"]) == "<root>: a pattern must be a JSON object"


def test_leaf_that_is_not_an_array() -> None:
    assert error_for({"data": {"kind": "order"}}) == (
        "data.kind: must be an array of matchers or a nested pattern object"
    )


def test_empty_matcher_array() -> None:
    assert error_for({"type": []}) == "type: needs at least one matcher"


def test_empty_nested_object() -> None:
    assert error_for({"data": {}}) == "data: an empty object matches nothing; remove it"


def test_unknown_operator() -> None:
    assert error_for({"data": {"n": ["x", {"contains": "a"}]}}) == (
        "data.n[1]: unknown operator 'contains'"
    )


def test_operator_object_with_two_keys() -> None:
    assert error_for({"t": [{"prefix": "a", "suffix": "b"}]}) == (
        "t[0]: a matcher object needs exactly one operator, got ['prefix', 'suffix']"
    )


def test_array_as_a_matcher() -> None:
    assert error_for({"t": [["a"]]}) == (
        "t[0]: a matcher must be a string, number, boolean, null or operator object"
    )


def test_exists_with_a_non_boolean() -> None:
    assert error_for({"t": [{"exists": "yes"}]}) == "t[0]: exists takes true or false"


def test_prefix_with_a_number() -> None:
    assert error_for({"t": [{"prefix": 1}]}) == "t[0]: prefix takes a non-empty string"


def test_equals_ignore_case_with_a_list() -> None:
    assert error_for({"t": [{"equals-ignore-case": ["a"]}]}) == (
        "t[0]: equals-ignore-case takes a string"
    )


def test_error_inside_an_or_names_the_alternative() -> None:
    assert error_for({"data": {"$or": [{"a": ["1"]}, {"b": [{"numeric": [">"]}]}]}}) == (
        "data.$or[1].b[0]: numeric needs pairs of operator and number"
    )


def test_non_string_field_name() -> None:
    assert error_for({"data": {1: ["a"]}}) == "data: field names must be strings, got 1"


def test_pattern_error_is_a_value_error() -> None:
    assert issubclass(PatternError, ValueError)
