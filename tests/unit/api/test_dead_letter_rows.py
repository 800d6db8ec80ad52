"""What the recorder keeps of a record of the dead-letter and approvals topics: every record
becomes a row or is knowingly skipped; a dead letter's copy counts as the whole value only
when that is certain; nothing a record holds can keep its row from being stored."""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from flowbus.api.recorded import dead_letter_row, refusal_row

APPROVAL = str(uuid.uuid4())
INSTANCE = str(uuid.uuid4())


def dead_letter(**data: Any) -> bytes:
    body = {
        "reason": "input does not match inputSchema: amount: -5 is less than the minimum of 0",
        "definitionId": "orders",
        "topic": "orders",
        "partition": 3,
        "offset": 17,
        "key": "k-1",
        "value": '{"type":"order.created","amount":-5}',
        **data,
    }
    event = {
        "specversion": "1.0",
        "id": "dl-1",
        "source": "flowbus-local",
        "type": "flowbus.deadletter",
        "time": "2026-12-01T10:00:00.000Z",
        "data": body,
    }
    return orjson.dumps(event)


def row_of(value: bytes | None) -> dict[str, Any]:
    return dead_letter_row("flowbus.deadletter", 0, 5, 1764583200000, value)


def test_a_dead_letter_keeps_the_reason_the_source_and_a_whole_copy_of_the_value() -> None:
    row = row_of(dead_letter())

    assert row["kind"] == "deadletter"
    assert row["reason"].startswith("input does not match inputSchema")
    assert (row["source_topic"], row["source_partition"], row["source_offset"]) == ("orders", 3, 17)
    assert (row["topic"], row["partition"], row["offset"]) == ("flowbus.deadletter", 0, 5)
    assert row["value"] == b'{"type":"order.created","amount":-5}'
    assert row["value_complete"] is True
    assert (row["key"], row["key_complete"]) == (b"k-1", True)
    assert row["event_type"] == "order.created"
    assert row["dead_lettered_at"].isoformat() == "2026-12-01T10:00:00+00:00"


def test_a_copy_cut_at_64_kib_is_not_taken_for_the_whole_value() -> None:
    cut = '{"items": [' + '"x",' * 16_383

    row = row_of(dead_letter(value=cut[:65536]))

    assert row["value_complete"] is False
    assert row["event_type"] is None


def test_a_copy_with_replaced_bytes_or_that_is_no_json_document_is_not_whole() -> None:
    for value in ['{"name": "caf\ufffd"}', "not json", "12345"]:
        assert row_of(dead_letter(value=value))["value_complete"] is False, value


def test_a_stated_value_size_decides_whether_the_copy_is_whole() -> None:
    assert row_of(dead_letter(value="not json", valueBytes=8))["value_complete"] is True
    assert row_of(dead_letter(value='{"a": 1}', valueBytes=90_000))["value_complete"] is False


def test_a_cut_key_is_not_taken_for_the_whole_key() -> None:
    row = row_of(dead_letter(key="k" * 4096 + "… (9000 characters in all)"))

    assert row["key_complete"] is False


def test_nul_characters_are_kept_in_the_value_and_escaped_in_texts() -> None:
    row = row_of(dead_letter(reason="bad \x00 text", value='{"a": "\\u0000"}', key="k\x00"))

    assert row["reason"] == "bad \\u0000 text"
    assert row["value"] == b'{"a": "\\u0000"}'
    assert row["key"] == b"k\x00"


def test_something_unreadable_on_the_topic_is_recorded_as_unreadable() -> None:
    for value in [b"\xff not json", b"[1, 2]", None, orjson.dumps({"type": "other", "data": 1})]:
        row = row_of(value)

        assert row["kind"] == "unreadable", value
        assert row["reason"].startswith("not a flowbus dead-letter event"), value
        assert row["value_complete"] is False


def test_a_huge_reason_is_cut_to_a_bound() -> None:
    row = row_of(dead_letter(reason="r" * 100_000))

    assert len(row["reason"]) < 5000
    assert row["reason"].endswith("(100000 characters in all)")


def test_a_parked_outbox_event_is_recorded_without_a_value() -> None:
    event = {
        "type": "flowbus.outbox.parked",
        "id": "p-1",
        "time": "2026-12-01T10:00:00.000Z",
        "data": {
            "eventId": "e-1",
            "topic": "flowbus.steps",
            "key": INSTANCE,
            "bytes": 1200173,
            "reason": "MessageSizeTooLargeError",
            "error": "[Error 10] MessageSizeTooLargeError",
        },
    }

    row = row_of(orjson.dumps(event))

    assert row["kind"] == "parked"
    assert row["reason"].startswith("outbox event parked: MessageSizeTooLargeError")
    assert (row["source_topic"], row["value"], row["value_complete"]) == (
        "flowbus.steps",
        None,
        False,
    )


def refused(**data: Any) -> bytes:
    return orjson.dumps(
        {
            "type": "flowbus.approval.decision_refused",
            "id": "r-1",
            "time": "2026-12-01T10:00:00.000Z",
            "subject": INSTANCE,
            "data": {
                "approvalId": APPROVAL,
                "instanceId": INSTANCE,
                "decidedBy": "mallory",
                "decision": "approve",
                "reason": "bad signature",
                "decisionId": "d-1",
                **data,
            },
        }
    )


def test_a_refused_decision_of_a_known_approval_is_recorded() -> None:
    row = refusal_row(refused())

    assert row is not None
    assert (row["approval_id"], row["instance_id"]) == (APPROVAL, INSTANCE)
    assert (row["decided_by"], row["reason"], row["numbered"]) == (
        "mallory",
        "bad signature",
        False,
    )


def test_refusals_of_unknown_approvals_and_other_events_are_skipped() -> None:
    assert refusal_row(refused(approvalId="not-a-uuid")) is None
    assert refusal_row(refused(approvalId="x" * 900_000)) is None
    assert refusal_row(orjson.dumps({"type": "flowbus.approval.requested", "data": {}})) is None
    assert refusal_row(b"decision_refused but not json") is None
