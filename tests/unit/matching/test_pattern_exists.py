"""exists: true / false, following EventBridge's leaf-only semantics."""

from typing import Any

from flowbus.matching.patterns import compile_pattern


def matches(exists: bool, data: Any) -> bool:
    pattern = compile_pattern({"data": {"coupon": [{"exists": exists}]}})
    return pattern.matches({"data": data})


def test_exists_true_matches_a_present_value() -> None:
    assert matches(True, {"coupon": "SAVE10"})


def test_exists_true_matches_null() -> None:
    assert matches(True, {"coupon": None})


def test_exists_true_matches_empty_string() -> None:
    assert matches(True, {"coupon": ""})


def test_exists_true_does_not_match_a_missing_field() -> None:
    assert not matches(True, {})


def test_exists_false_matches_a_missing_field() -> None:
    assert matches(False, {})


def test_exists_false_does_not_match_null() -> None:
    assert not matches(False, {"coupon": None})


def test_exists_true_does_not_match_an_empty_array() -> None:
    assert not matches(True, {"coupon": []})


def test_exists_false_matches_an_empty_array() -> None:
    assert matches(False, {"coupon": []})


def test_exists_true_matches_a_non_empty_array() -> None:
    assert matches(True, {"coupon": ["A"]})


def test_exists_looks_at_leaves_only_so_an_object_does_not_exist() -> None:
    assert not matches(True, {"coupon": {"code": "A"}})
    assert matches(False, {"coupon": {"code": "A"}})


def test_exists_false_matches_when_the_parent_is_missing() -> None:
    assert compile_pattern({"data": {"coupon": [{"exists": False}]}}).matches({"topic": "t"})


def test_exists_false_matches_when_the_parent_is_a_scalar() -> None:
    assert matches(False, "just a string")


def test_exists_false_combined_with_a_value_accepts_either() -> None:
    pattern = compile_pattern({"data": {"coupon": [{"exists": False}, "VIP"]}})
    assert pattern.matches({"data": {}})
    assert pattern.matches({"data": {"coupon": "VIP"}})
    assert not pattern.matches({"data": {"coupon": "OTHER"}})
