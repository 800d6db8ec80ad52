"""$or at the root and nested under fields."""

import pytest

from flowbus.matching.errors import PatternError
from flowbus.matching.patterns import compile_pattern


def test_root_or_matches_if_any_alternative_matches() -> None:
    pattern = compile_pattern({"$or": [{"type": ["a"]}, {"source": ["s"]}]})
    assert pattern.matches({"type": "a", "source": "x"})
    assert pattern.matches({"type": "x", "source": "s"})
    assert not pattern.matches({"type": "x", "source": "x"})


def test_or_is_anded_with_sibling_fields() -> None:
    pattern = compile_pattern({"type": ["a"], "$or": [{"source": ["s"]}, {"subject": ["j"]}]})
    assert pattern.matches({"type": "a", "subject": "j"})
    assert not pattern.matches({"type": "b", "subject": "j"})


def test_or_nested_under_a_field_applies_to_that_object() -> None:
    pattern = compile_pattern(
        {
            "data": {
                "$or": [{"amount": [{"numeric": [">", 100]}]}, {"customer": {"tier": ["gold"]}}],
            }
        }
    )
    assert pattern.matches({"data": {"amount": 150}})
    assert pattern.matches({"data": {"amount": 5, "customer": {"tier": "gold"}}})
    assert not pattern.matches({"data": {"amount": 5, "customer": {"tier": "silver"}}})


def test_alternatives_may_hold_several_fields() -> None:
    pattern = compile_pattern(
        {"$or": [{"type": ["a"], "source": ["s"]}, {"type": ["b"]}]},
    )
    assert pattern.matches({"type": "a", "source": "s"})
    assert not pattern.matches({"type": "a", "source": "t"})
    assert pattern.matches({"type": "b"})


def test_or_inside_an_alternative_nests() -> None:
    pattern = compile_pattern(
        {"$or": [{"type": ["a"], "$or": [{"n": [1]}, {"n": [2]}]}, {"type": ["b"]}]},
    )
    assert pattern.matches({"type": "a", "n": 2})
    assert not pattern.matches({"type": "a", "n": 3})


def test_two_or_groups_must_both_match() -> None:
    pattern = compile_pattern(
        {
            "$or": [{"a": ["1"]}, {"b": ["1"]}],
            "data": {"$or": [{"c": ["1"]}, {"d": ["1"]}]},
        }
    )
    assert pattern.matches({"b": "1", "data": {"c": "1"}})
    assert not pattern.matches({"b": "1", "data": {"e": "1"}})


def test_or_with_a_single_alternative_is_rejected() -> None:
    with pytest.raises(PatternError, match=r"^data\.\$or: \$or needs an array of at least two"):
        compile_pattern({"data": {"$or": [{"a": ["1"]}]}})


def test_or_alternative_that_is_not_an_object_is_rejected_with_its_index() -> None:
    with pytest.raises(PatternError, match=r"^\$or\[1\]: a pattern must be a JSON object"):
        compile_pattern({"$or": [{"a": ["1"]}, ["b"]]})
