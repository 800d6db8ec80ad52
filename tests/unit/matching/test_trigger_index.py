"""TriggerIndex: many patterns, only the matching keys, in entry order."""

import random
from typing import Any

import pytest

from flowbus.matching.errors import PatternError
from flowbus.matching.index import TriggerIndex
from flowbus.matching.patterns import compile_pattern


def event(topic: str = "orders", type_: str = "order.created", **data: Any) -> dict[str, Any]:
    return {"id": "e-1", "topic": topic, "type": type_, "data": data}


def test_returns_only_the_keys_of_matching_patterns() -> None:
    index = TriggerIndex(
        (f"wf-{i}", "orders", {"type": [f"type-{i}"], "data": {"n": [{"numeric": [">", 10]}]}})
        for i in range(1000)
    )
    assert index.match(event(type_="type-7", n=11)) == ["wf-7"]
    assert index.match(event(type_="type-7", n=10)) == []
    assert index.match(event(type_="type-unknown", n=11)) == []


def test_len_counts_entries() -> None:
    assert len(TriggerIndex([("a", None, {}), ("b", "t", {"type": ["x"]})])) == 2


def test_topic_restricts_an_entry_to_that_topic() -> None:
    index = TriggerIndex([("on-orders", "orders", {"type": ["order.created"]})])
    assert index.match(event(topic="orders")) == ["on-orders"]
    assert index.match(event(topic="payments")) == []


def test_entry_without_topic_listens_on_every_topic() -> None:
    index = TriggerIndex(
        [("anywhere", None, {"type": ["order.created"]}), ("orders", "orders", {})]
    )
    assert index.match(event(topic="orders")) == ["anywhere", "orders"]
    assert index.match(event(topic="elsewhere")) == ["anywhere"]
    assert index.match({"type": "order.created"}) == ["anywhere"]


Entry = tuple[Any, str | None, dict[str, Any]]


def test_results_follow_entry_order() -> None:
    entries: list[Entry] = [
        ("z", "orders", {"data": {"n": [{"numeric": [">", 0]}]}}),
        ("a", "orders", {"type": ["order.created"]}),
        ("m", None, {"type": [{"prefix": "order."}]}),
        ("b", "orders", {"type": ["order.created"], "data": {"n": [1]}}),
    ]
    assert TriggerIndex(entries).match(event(n=1)) == ["z", "a", "m", "b"]


def test_patterns_without_an_exact_field_are_still_evaluated() -> None:
    entries: list[Entry] = [
        ("exact", "orders", {"type": ["order.created"]}),
        ("prefix", "orders", {"type": [{"prefix": "order."}]}),
        ("big", "orders", {"data": {"amount": [{"numeric": [">", 100]}]}}),
    ]
    entries += [(f"other-{i}", "orders", {"type": [f"t{i}"]}) for i in range(100)]
    index = TriggerIndex(entries)
    assert index.match(event(type_="order.cancelled", amount=500)) == ["prefix", "big"]


def test_many_patterns_evaluate_only_a_few_candidates() -> None:
    index = TriggerIndex(
        (i, "orders", {"type": [f"type-{i % 400}"], "data": {"n": [{"numeric": [">", i]}]}})
        for i in range(2000)
    )
    # Only the five patterns on type-3 are evaluated, not the 2000.
    assert index._candidates(event(type_="type-3", n=0)) == [3, 403, 803, 1203, 1603]


def test_several_entries_with_one_key_report_it_once() -> None:
    index = TriggerIndex(
        [("k", "orders", {"type": ["order.created"]}), ("k", "orders", {"data": {"n": [1]}})]
    )
    assert index.match(event(n=1)) == ["k"]


def test_exact_patterns_match_without_evaluation_on_plain_documents() -> None:
    index = TriggerIndex([("k", "orders", {"type": ["order.created"], "data": {"kind": ["a"]}})])
    assert index.match(event(kind="a")) == ["k"]
    assert index.match(event(kind="b")) == []


def test_anchor_values_met_by_different_array_elements_do_not_match() -> None:
    pattern = {"data": {"items": {"sku": ["A"], "kind": ["x"]}}}
    index = TriggerIndex(
        [("k", None, pattern)] + [(i, None, {"type": [f"t{i}"]}) for i in range(9)]
    )
    split = {"items": [{"sku": "A", "kind": "y"}, {"sku": "B", "kind": "x"}]}
    together = {"items": [{"sku": "B", "kind": "y"}, {"sku": "A", "kind": "x"}]}
    assert index.match({"data": split}) == []
    assert index.match({"data": together}) == ["k"]


def test_or_alternatives_on_the_indexed_field_are_all_found() -> None:
    index = TriggerIndex(
        [("either", None, {"$or": [{"type": ["a"]}, {"type": ["b"], "data": {"n": [1]}}]})]
        + [(i, None, {"type": [f"t{i}"]}) for i in range(9)]
    )
    assert index.match({"type": "a"}) == ["either"]
    assert index.match({"type": "b", "data": {"n": 1}}) == ["either"]
    assert index.match({"type": "b", "data": {"n": 2}}) == []


def test_array_valued_indexed_field_finds_each_element() -> None:
    index = TriggerIndex([(i, None, {"tags": [f"tag-{i}"]}) for i in range(10)])
    assert index.match({"tags": ["tag-7", "tag-2", "none"]}) == [2, 7]


def test_invalid_pattern_names_the_entry_key() -> None:
    with pytest.raises(PatternError) as caught:
        TriggerIndex([("ok", None, {}), ("wf-42", None, {"data": {"n": [{"numeric": [">"]}]}})])
    assert str(caught.value) == (
        "trigger 'wf-42': data.n[0]: numeric needs pairs of operator and number"
    )
    assert caught.value.key == "wf-42"
    assert caught.value.path == "data.n[0]"


def test_invalid_topic_names_the_entry_key() -> None:
    with pytest.raises(PatternError, match="trigger 'k': <topic>: must be a string or None"):
        TriggerIndex([("k", 5, {})])  # type: ignore[list-item]


# A differential check: on random patterns and documents the index must agree
# with evaluating every pattern, whatever the tree looks like.
_VALUES = ["a", "b", "c", "d"]


def _random_leaf(rng: random.Random) -> list[Any]:
    kind = rng.randrange(6)
    if kind <= 2:
        return rng.sample(_VALUES, rng.randint(1, 2))
    if kind == 3:
        return [{"prefix": rng.choice(_VALUES)}]
    if kind == 4:
        return [{"numeric": [">", rng.randint(0, 3)]}]
    return [{"exists": rng.random() < 0.5}]


def _random_object(rng: random.Random, depth: int) -> dict[str, Any]:
    pattern: dict[str, Any] = {}
    for key in rng.sample(["k1", "k2", "k3", "arr"], rng.randint(1, 3)):
        pattern[key] = (
            _random_object(rng, depth + 1)
            if depth < 2 and rng.random() < 0.3
            else _random_leaf(rng)
        )
    if depth < 2 and rng.random() < 0.15:
        pattern["$or"] = [_random_object(rng, depth + 1) for _ in range(2)]
    return pattern


def _random_value(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth < 2 and roll < 0.25:
        return {
            key: _random_value(rng, depth + 1) for key in rng.sample(["k1", "k2", "k3", "arr"], 3)
        }
    if depth < 2 and roll < 0.35:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return rng.choice([*_VALUES, 0, 2, 5, None, True])


def test_index_agrees_with_evaluating_every_pattern() -> None:
    rng = random.Random(1)
    entries = [(i, rng.choice(["t1", "t2", None]), _random_object(rng, 0)) for i in range(400)]
    compiled = [(key, topic, compile_pattern(pattern)) for key, topic, pattern in entries]
    index = TriggerIndex(entries)
    for _ in range(600):
        doc = {
            key: _random_value(rng, 1) for key in ["k1", "k2", "k3", "arr"] if rng.random() < 0.8
        }
        doc["topic"] = rng.choice(["t1", "t2", "t3"])
        expected = [
            key
            for key, topic, pattern in compiled
            if topic in (None, doc["topic"]) and pattern.matches(doc)
        ]
        assert index.match(doc) == expected, doc
