"""Every record the SDK sends matches the protocol's schemas in topics/schemas/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from flowbus.sdk import run_activity_task, run_workflow_task
from flowbus.sdk.records import decode, encode
from tests.unit.sdk import test_replay as replay
from tests.unit.sdk.test_tasks import activity, charge

SCHEMAS = Path(__file__).resolve().parents[3] / "topics" / "schemas"
FILES = {
    "flowbus.result.step": "result-step.schema.json",
    "flowbus.result.workflow": "result-workflow.schema.json",
    "flowbus.result.activity": "result-activity.schema.json",
}


def validator(event_type: str) -> Draft202012Validator:
    resources = [
        (path.name, Resource.from_contents(orjson.loads(path.read_bytes())))
        for path in SCHEMAS.glob("*.schema.json")
    ]
    registry: Registry[Any] = Registry().with_resources(resources)
    schema = orjson.loads((SCHEMAS / FILES[event_type]).read_bytes())
    return Draft202012Validator(schema, registry=registry)


def check(records: list[tuple[str, dict[str, Any]]]) -> None:
    for event_type, data in records:
        errors = [e.message for e in validator(event_type).iter_errors(data)]
        assert errors == [], (event_type, data)


async def test_workflow_records_match_the_schemas() -> None:
    reserved = [replay.completed(1, "reserve", {"done": "r"})]
    cases = [
        (replay.make_saga(), replay.task()),
        (replay.make_saga(fail_at="ship"), replay.task()),
        (replay.make_saga(optional_fails=True), replay.task()),
        (replay.make_saga(), replay.task([replay.completed(1, "other", 1)])),
        (replay.make_saga(), replay.task(reserved, reason="cancel")),
        (None, replay.task()),
    ]
    for recorded, _ in replay.WAIT_CASES:
        history = [replay.completed(1, "first", 1), *recorded]
        cases.append((replay.waits, replay.task(history, workflow_id="waits")))
    for flow, data in cases:
        emit = replay.Recorder()
        await run_workflow_task(flow, data, emit)
        check(emit.records)


async def test_activity_records_match_the_schemas() -> None:
    for amount in (5, 500):
        emit = replay.Recorder()
        await run_activity_task(charge, activity({"amount": amount}), emit)
        check(emit.records)


def test_records_are_structured_cloudevents() -> None:
    value = encode("flowbus.result.step", "i-1", {"taskId": "i-1:1"}, "flowbus-sdk/host")
    event = orjson.loads(value)
    assert {"specversion", "id", "source", "type", "subject", "time", "data"} <= set(event)
    assert event["specversion"] == "1.0"
    assert decode(value) == ("flowbus.result.step", {"taskId": "i-1:1"})
