"""The entity:field:to_state trigger shorthand."""

import pytest

from flowbus.matching.errors import PatternError
from flowbus.matching.index import TriggerIndex
from flowbus.matching.transition import parse_transition, transition_pattern


def transition_event(entity: str, field: str, to: str) -> dict[str, object]:
    return {
        "topic": "records",
        "type": "com.acme.record.transitioned",
        "data": {
            "entity": entity,
            "field": field,
            "from": "pending",
            "to": to,
            "record_id": "o-1",
            "record": {"id": "o-1", field: to, "amount": 250},
        },
    }


def test_parse_splits_the_three_parts() -> None:
    assert parse_transition("order:status:approved") == ("order", "status", "approved")


def test_parse_accepts_any_state() -> None:
    assert parse_transition("order:status:*") == ("order", "status", "*")


@pytest.mark.parametrize(
    ("shorthand", "reason"),
    [
        ("order:status", "needs exactly three parts"),
        ("order:status:approved:now", "needs exactly three parts"),
        ("order::approved", "field is empty"),
        (":status:approved", "entity is empty"),
        ("order:status:", "to_state is empty"),
        ("order:status :approved", "contains whitespace"),
        ("*:status:approved", "only the whole to_state may be '*'"),
        ("order:status:appr*", "only the whole to_state may be '*'"),
    ],
)
def test_parse_rejects_malformed_shorthand(shorthand: str, reason: str) -> None:
    with pytest.raises(PatternError, match=reason) as caught:
        parse_transition(shorthand)
    assert caught.value.path == f"transition {shorthand!r}"


def test_pattern_matches_on_entity_field_and_new_state() -> None:
    assert transition_pattern("order:status:approved") == {
        "data": {"entity": ["order"], "field": ["status"], "to": ["approved"]}
    }


def test_any_state_pattern_requires_only_a_new_state() -> None:
    assert transition_pattern("order:status:*") == {
        "data": {"entity": ["order"], "field": ["status"], "to": [{"exists": True}]}
    }


def test_index_triggers_on_the_named_transition_only() -> None:
    index = TriggerIndex(
        [
            ("approve", "records", transition_pattern("order:status:approved")),
            ("reject", "records", transition_pattern("order:status:rejected")),
            ("any-order-status", "records", transition_pattern("order:status:*")),
            ("invoice", "records", transition_pattern("invoice:status:approved")),
        ]
    )
    assert index.match(transition_event("order", "status", "approved")) == [
        "approve",
        "any-order-status",
    ]
    assert index.match(transition_event("order", "stage", "approved")) == []
    assert index.match(transition_event("invoice", "status", "approved")) == ["invoice"]
