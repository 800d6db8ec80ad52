"""A consumed batch of domain events, applied through a unit of work over in-memory tables."""

from __future__ import annotations

from typing import Any

import orjson

from flowbus.definitions.catalog import DefinitionCatalog
from flowbus.definitions.loader import validate_definition
from flowbus.envelope import RecordLimits
from flowbus.ingest.records import ConsumedRecord
from flowbus.ingest.triggers import TriggerIngest
from flowbus.limits import JsonLimits
from flowbus.service.reports import BatchReport
from flowbus.service.unit_of_work import UnitOfWork
from flowbus.store.subscriptions import WaitKey

from .fakes import NOW, FakeUnitOfWork, Tables, new_outbox

ORDERS = validate_definition(
    {
        "id": "orders",
        "triggers": [{"topic": "orders", "type": "order.created"}],
        "steps": [{"id": "note", "type": "action", "action": "log", "config": {"message": "x"}}],
    }
).model_copy(update={"version": 1})

PAYMENTS = validate_definition(
    {
        "id": "payments",
        "triggers": [{"topic": "orders", "type": "order.created"}],
        "steps": [
            {
                "id": "paid",
                "type": "wait",
                "event": {
                    "topic": "payments",
                    "type": "payment.received",
                    "match": "data.orderId",
                    "key": "{{ trigger.data.orderId }}",
                },
            }
        ],
    }
).model_copy(update={"version": 1})


class InMemoryIngest(TriggerIngest):
    def __init__(self, tables: Tables, catalog: DefinitionCatalog) -> None:
        super().__init__(
            engine=None,  # type: ignore[arg-type]
            catalog=lambda: catalog,
            outbox=new_outbox,
            consumer_group="g",
            limits=RecordLimits(JsonLimits(max_bytes=1_000_000, max_depth=64)),
            clock=lambda: NOW,
        )
        self.tables = tables
        self.catalog = catalog

    def unit_of_work(self) -> UnitOfWork:
        return FakeUnitOfWork(self.tables, self.catalog)


def record(offset: int, value: Any, topic: str = "orders") -> ConsumedRecord:
    """A record; a dict value is written as a CloudEvent."""
    if isinstance(value, dict):
        value = orjson.dumps({"specversion": "1.0", "source": "test", **value})
    return ConsumedRecord(topic, 0, offset, None, value)


def order(offset: int, order_id: str = "o-1") -> ConsumedRecord:
    event = {"type": "order.created", "id": f"e-{offset}", "data": {"orderId": order_id}}
    return record(offset, event)


async def apply(ingest: InMemoryIngest, *records: ConsumedRecord) -> BatchReport:
    return await ingest.apply(list(records))


async def test_a_matching_event_starts_its_workflow_and_records_the_offset() -> None:
    tables = Tables()
    ingest = InMemoryIngest(tables, DefinitionCatalog([ORDERS]))

    report = await apply(ingest, order(0))

    [instance] = tables.instances.values()
    assert (instance.workflow_id, instance.status) == ("orders", "completed")
    assert report.started == 1
    assert tables.offsets == {("g", ("orders", 0)): 1}
    assert tables.outbox


async def test_a_redelivered_batch_changes_nothing() -> None:
    tables = Tables()
    ingest = InMemoryIngest(tables, DefinitionCatalog([ORDERS]))
    await apply(ingest, order(0))
    written = len(tables.outbox)

    report = await apply(ingest, order(0))

    assert (report.skipped, report.started, len(tables.outbox)) == (1, 0, written)


async def test_an_event_repeated_within_a_batch_starts_its_workflow_once() -> None:
    tables = Tables()
    ingest = InMemoryIngest(tables, DefinitionCatalog([ORDERS]))
    same = {"type": "order.created", "id": "e-same", "data": {"orderId": "o-1"}}

    report = await apply(ingest, record(0, same), record(1, same))

    assert (report.started, len(tables.instances)) == (1, 1)


async def test_an_unreadable_record_is_dead_lettered_and_the_offset_moves_on() -> None:
    tables = Tables()
    ingest = InMemoryIngest(tables, DefinitionCatalog([ORDERS]))

    report = await apply(ingest, record(0, b"{not json"), order(1))

    assert (report.dead_lettered, report.started) == (1, 1)
    assert tables.offsets == {("g", ("orders", 0)): 2}
    assert any(row["topic"] == "flowbus.deadletter" for row in tables.outbox)


async def test_an_event_no_step_waits_for_yet_is_kept_for_a_wait_about_to_start() -> None:
    tables = Tables()
    catalog = DefinitionCatalog([PAYMENTS])
    catalog.set_wait_probes([PAYMENTS.model_dump(mode="json", by_alias=True)])
    ingest = InMemoryIngest(tables, catalog)
    payment = {"type": "payment.received", "id": "p-1", "data": {"orderId": "o-1"}}

    report = await apply(ingest, record(0, payment, topic="payments"))

    assert report.buffered == 1
    [(wait, event_type, _)] = tables.buffered
    assert (wait, event_type) == (WaitKey("payments", "data.orderId", "o-1"), "payment.received")


async def test_a_wait_that_starts_takes_the_event_kept_for_it() -> None:
    tables = Tables()
    catalog = DefinitionCatalog([PAYMENTS])
    catalog.set_wait_probes([PAYMENTS.model_dump(mode="json", by_alias=True)])
    ingest = InMemoryIngest(tables, catalog)
    payment = {"type": "payment.received", "id": "p-1", "data": {"orderId": "o-1"}}
    await apply(ingest, record(0, payment, topic="payments"))

    report = await apply(ingest, order(1))

    [instance] = tables.instances.values()
    assert instance.status == "completed"
    assert (report.work.applied, tables.buffered, tables.subscriptions) == (1, [], {})


async def test_an_event_reaches_the_step_waiting_for_it() -> None:
    tables = Tables()
    catalog = DefinitionCatalog([PAYMENTS])
    catalog.set_wait_probes([PAYMENTS.model_dump(mode="json", by_alias=True)])
    ingest = InMemoryIngest(tables, catalog)
    await apply(ingest, order(0))
    assert len(tables.subscriptions) == 1

    payment = {"type": "payment.received", "id": "p-1", "data": {"orderId": "o-1"}}
    report = await apply(ingest, record(0, payment, topic="payments"))

    [instance] = tables.instances.values()
    assert (instance.status, report.buffered, tables.subscriptions) == ("completed", 0, {})
