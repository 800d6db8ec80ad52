"""Which workflows an event starts: the catalog's compiled index over every trigger kind."""

from __future__ import annotations

from flowbus.definitions.catalog import DefinitionCatalog
from tests.unit.triggers.support import event_document, stored


def matched(catalog: DefinitionCatalog, document: dict[str, object]) -> list[str]:
    return [m.definition.id for m in catalog.match(document)]


def big_orders() -> DefinitionCatalog:
    return DefinitionCatalog(
        [
            stored(
                {
                    "topic": "orders",
                    "type": "order.created",
                    "pattern": {"data": {"amount": [{"numeric": [">", 100, "<=", 1000]}]}},
                },
                workflow_id="big-orders",
            )
        ]
    )


def test_type_and_pattern_must_both_hold() -> None:
    catalog = big_orders()

    assert matched(catalog, event_document(amount=500)) == ["big-orders"]
    assert matched(catalog, event_document(type_="order.updated", amount=500)) == []
    assert matched(catalog, event_document(amount=100)) == []
    assert matched(catalog, event_document(amount=1000.0)) == ["big-orders"]
    assert matched(catalog, event_document(amount="500")) == []


def test_pattern_only_applies_to_the_trigger_topic() -> None:
    assert matched(big_orders(), event_document(topic="payments", amount=500)) == []


def test_transition_trigger_matches_transition_events_to_that_state() -> None:
    catalog = DefinitionCatalog(
        [stored({"topic": "records", "transition": "order:status:approved"}, workflow_id="ship")]
    )

    def transition(entity: str, to: str) -> dict[str, object]:
        return event_document(
            topic="records",
            type_="record.transitioned",
            entity=entity,
            field="status",
            to=to,
            record_id="o-1",
        )

    assert matched(catalog, transition("order", "approved")) == ["ship"]
    assert matched(catalog, transition("order", "rejected")) == []
    assert matched(catalog, transition("invoice", "approved")) == []


def test_transition_combines_with_a_pattern_on_the_record() -> None:
    catalog = DefinitionCatalog(
        [
            stored(
                {
                    "topic": "records",
                    "transition": "order:status:approved",
                    "pattern": {"data": {"record": {"amount": [{"numeric": [">=", 1000]}]}}},
                },
                workflow_id="review-large",
            )
        ]
    )
    base = {"entity": "order", "field": "status", "to": "approved"}

    big = event_document(topic="records", **base, record={"amount": 5000})
    small = event_document(topic="records", **base, record={"amount": 5})

    assert matched(catalog, big) == ["review-large"]
    assert matched(catalog, small) == []


def test_every_workflow_whose_trigger_matches_is_started() -> None:
    catalog = DefinitionCatalog(
        [
            stored({"topic": "orders", "type": "order.created"}, workflow_id="notify"),
            stored({"topic": "orders", "pattern": {"data": {"vip": [True]}}}, workflow_id="vip"),
            stored({"topic": "orders", "type": "order.cancelled"}, workflow_id="refund"),
        ]
    )

    assert matched(catalog, event_document(vip=True)) == ["notify", "vip"]


def test_a_workflow_with_two_matching_triggers_starts_once() -> None:
    catalog = DefinitionCatalog(
        [
            stored(
                {"topic": "orders", "type": "order.created"},
                {"topic": "orders", "pattern": {"data": {"amount": [{"exists": True}]}}},
            )
        ]
    )

    [match] = catalog.match(event_document(amount=1))

    assert match.trigger is match.definition.triggers[0]


def test_schedule_triggers_are_not_in_the_event_index() -> None:
    catalog = DefinitionCatalog(
        [stored({"schedule": {"cron": "* * * * *"}}, workflow_id="nightly")]
    )

    assert matched(catalog, event_document()) == []


def test_replacing_the_active_definitions_changes_what_matches() -> None:
    catalog = DefinitionCatalog([stored({"topic": "orders", "type": "order.created"})])

    catalog.replace_active([stored({"topic": "orders", "type": "order.paid"})])

    assert matched(catalog, event_document()) == []
    assert matched(catalog, event_document(type_="order.paid")) == ["wf"]
