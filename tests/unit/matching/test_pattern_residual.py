"""Anchors, residual patterns and shared compilation, which the index builds on."""

from flowbus.matching.patterns import Anchor, PatternCompiler, compile_pattern, residual_pattern


def test_exact_string_leaves_are_field_anchors() -> None:
    pattern = compile_pattern({"type": ["a", "b"], "data": {"kind": ["k"], "n": [1]}})
    assert pattern.anchors == (
        Anchor(((("type",), frozenset({"a", "b"})),), field=True),
        Anchor(((("data", "kind"), frozenset({"k"})),), field=True),
    )


def test_leaves_mixing_operators_do_not_anchor() -> None:
    assert compile_pattern({"type": ["a", {"prefix": "b"}]}).anchors == ()


def test_or_anchors_on_one_field_per_alternative() -> None:
    pattern = compile_pattern({"$or": [{"type": ["a"]}, {"type": ["b"], "n": [1]}]})
    assert pattern.anchors == (Anchor(((("type",), frozenset({"a", "b"})),), field=False),)


def test_or_without_an_anchor_in_every_alternative_does_not_anchor() -> None:
    assert compile_pattern({"$or": [{"type": ["a"]}, {"n": [1]}]}).anchors == ()


def test_residual_drops_checked_fields_and_emptied_objects() -> None:
    pattern = {"type": ["a"], "data": {"kind": ["k"]}, "subject": [{"prefix": "s"}]}
    assert residual_pattern(pattern, [("type",), ("data", "kind")]) == {
        "subject": [{"prefix": "s"}]
    }


def test_residual_keeps_or_branches_whole() -> None:
    pattern = {"$or": [{"type": ["a"]}, {"type": ["b"]}]}
    assert residual_pattern(pattern, [("type",)]) == pattern


def test_residual_keeps_leaves_that_are_not_exact_strings() -> None:
    pattern = {"type": ["a", {"prefix": "b"}]}
    assert residual_pattern(pattern, [("type",)]) == pattern


def test_pattern_with_every_field_checked_is_trivial() -> None:
    assert compile_pattern(residual_pattern({"type": ["a"]}, [("type",)])).trivial
    assert not compile_pattern({"type": ["a"]}).trivial


def test_compiler_shares_identical_conditions() -> None:
    compiler = PatternCompiler()
    first = compiler.compile({"data": {"amount": [{"numeric": [">", 100]}]}})
    second = compiler.compile({"data": {"amount": [{"numeric": [">", 100]}]}})
    assert first.matches is second.matches


def test_compiler_tells_integer_float_and_boolean_apart() -> None:
    compiler = PatternCompiler()
    one = compiler.compile({"n": [1]})
    true = compiler.compile({"n": [True]})
    assert one.matches({"n": 1.0})
    assert not true.matches({"n": 1.0})
