"""prefix, suffix, equals-ignore-case and wildcard."""

from typing import Any

import pytest

from flowbus.matching.errors import PatternError
from flowbus.matching.patterns import compile_pattern


def matches(matcher: Any, value: Any) -> bool:
    return compile_pattern({"data": {"v": [matcher]}}).matches({"data": {"v": value}})


def test_prefix_matches_strings_starting_with_it() -> None:
    assert matches({"prefix": "ord-"}, "ord-17")
    assert not matches({"prefix": "ord-"}, "xord-17")


def test_prefix_is_case_sensitive() -> None:
    assert not matches({"prefix": "ord-"}, "ORD-17")


def test_prefix_does_not_match_numbers() -> None:
    assert not matches({"prefix": "1"}, 17)


def test_suffix_matches_strings_ending_with_it() -> None:
    assert matches({"suffix": ".png"}, "cat.png")
    assert not matches({"suffix": ".png"}, "cat.png.bak")


def test_prefix_equals_ignore_case_folds_both_sides() -> None:
    assert matches({"prefix": {"equals-ignore-case": "ORD-"}}, "Ord-17")
    assert not matches({"prefix": {"equals-ignore-case": "ORD-"}}, "rd-17")


def test_suffix_equals_ignore_case_folds_both_sides() -> None:
    assert matches({"suffix": {"equals-ignore-case": ".PNG"}}, "cat.Png")


def test_equals_ignore_case_matches_any_casing() -> None:
    assert matches({"equals-ignore-case": "Gold"}, "GOLD")
    assert not matches({"equals-ignore-case": "Gold"}, "golden")


def test_equals_ignore_case_uses_unicode_case_folding() -> None:
    assert matches({"equals-ignore-case": "STRASSE"}, "straße")


def test_equals_ignore_case_does_not_match_non_strings() -> None:
    assert not matches({"equals-ignore-case": "true"}, True)


def test_wildcard_star_matches_any_run_of_characters() -> None:
    assert matches({"wildcard": "orders/*/lines/*"}, "orders/17/lines/3")
    assert matches({"wildcard": "orders/*/lines/*"}, "orders//lines/")
    assert not matches({"wildcard": "orders/*/lines/*"}, "orders/17/items/3")


def test_wildcard_must_match_the_whole_string() -> None:
    assert not matches({"wildcard": "a*b"}, "xa-b")
    assert not matches({"wildcard": "a*b"}, "a-bx")


def test_wildcard_escaped_star_is_literal() -> None:
    assert matches({"wildcard": "a\\*b"}, "a*b")
    assert not matches({"wildcard": "a\\*b"}, "axb")


def test_wildcard_escaped_backslash_is_literal() -> None:
    assert matches({"wildcard": "a\\\\*"}, "a\\tail")


def test_wildcard_treats_regex_characters_literally() -> None:
    assert matches({"wildcard": "v1.(x)*"}, "v1.(x)-beta")
    assert not matches({"wildcard": "v1.(x)*"}, "v1a(x)-beta")


def test_wildcard_matches_across_newlines() -> None:
    assert matches({"wildcard": "a*b"}, "a\nb")


def test_wildcard_rejects_consecutive_stars() -> None:
    with pytest.raises(PatternError, match=r"data\.v\[0\]: wildcard: consecutive"):
        compile_pattern({"data": {"v": [{"wildcard": "a**b"}]}})


def test_wildcard_rejects_other_escapes() -> None:
    with pytest.raises(PatternError, match="backslash may only escape"):
        compile_pattern({"data": {"v": [{"wildcard": "a\\nb"}]}})


def test_several_operators_in_one_field_are_alternatives() -> None:
    pattern = compile_pattern({"data": {"v": [{"prefix": "a"}, {"suffix": "z"}, "m"]}})
    assert [pattern.matches({"data": {"v": v}}) for v in ("ab", "yz", "m", "q")] == [
        True,
        True,
        True,
        False,
    ]


def test_empty_prefix_is_rejected() -> None:
    with pytest.raises(PatternError, match="prefix takes a non-empty string"):
        compile_pattern({"data": {"v": [{"prefix": ""}]}})
