"""Reading consumed Kafka records as events, and writing CloudEvents."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from flowbus.envelope import BadEvent, DomainEvent, RecordLimits, cloudevent, parse_record
from flowbus.limits import JsonLimits

Headers = list[tuple[str, bytes | None]]

LIMITS = RecordLimits(JsonLimits(max_bytes=1_000_000, max_depth=64))

STRUCTURED: dict[str, Any] = {
    "specversion": "1.0",
    "id": "evt-1",
    "source": "/shop",
    "type": "order.created",
    "subject": "order/o-1",
    "time": "2024-05-06T07:08:09Z",
    "datacontenttype": "application/json",
    "dataschema": "https://example.com/order.json",
    "data": {"order_id": "o-1"},
    "tenant": "acme",
}

BINARY_HEADERS: Headers = [
    ("ce_specversion", b"1.0"),
    ("ce_id", b"evt-2"),
    ("ce_source", b"/billing"),
    ("ce_type", b"invoice.paid"),
    ("ce_subject", b"invoice/9"),
    ("ce_time", b"2024-05-06T07:08:09Z"),
    ("ce_tenant", b"acme"),
    ("content-type", b"application/json"),
]


def read(
    value: bytes | None, headers: Headers | None = None, key: bytes | None = b"k-1"
) -> DomainEvent:
    return parse_record("orders", 2, 41, key, value, headers, LIMITS)


def without(headers: Headers, *names: str) -> Headers:
    return [(name, raw) for name, raw in headers if name not in names]


# -- plain JSON -------------------------------------------------------------------------


def test_plain_json_takes_its_type_from_the_body() -> None:
    event = read(b'{"type": "order.created", "order_id": "o-1"}')

    assert event.type == "order.created"
    assert event.data == {"type": "order.created", "order_id": "o-1"}
    assert not event.is_cloudevent


def test_plain_json_id_is_the_record_position() -> None:
    assert read(b"{}").id == "orders-2-41"


def test_plain_json_dedupe_key_is_the_record_position() -> None:
    assert read(b"{}").dedupe_key == "kafka:orders:2:41"


def test_plain_json_without_string_type_has_no_type() -> None:
    assert read(b'{"type": 5}').type is None
    assert read(b"[1, 2]").type is None


def test_plain_json_keeps_key_and_text_headers() -> None:
    event = read(b"{}", [("trace", b"t-1"), ("empty", None), ("binary", b"\xff\xfe")])

    assert event.key == "k-1"
    assert event.headers == {"trace": "t-1"}


def test_record_without_key_has_no_key() -> None:
    assert read(b"{}", key=None).key is None


def test_value_that_is_not_json_is_a_bad_event() -> None:
    with pytest.raises(BadEvent, match="value is not JSON"):
        read(b"order created")


def test_record_without_value_is_a_bad_event() -> None:
    with pytest.raises(BadEvent, match="record has no value"):
        read(None)


# -- structured CloudEvents -------------------------------------------------------------


def test_structured_cloudevent_is_read_from_the_body() -> None:
    event = read(orjson.dumps(STRUCTURED))

    assert event.is_cloudevent
    assert (event.id, event.source, event.type) == ("evt-1", "/shop", "order.created")
    assert (event.subject, event.time) == ("order/o-1", "2024-05-06T07:08:09Z")
    assert event.data == {"order_id": "o-1"}


def test_structured_cloudevent_extensions_are_the_unknown_attributes() -> None:
    assert read(orjson.dumps(STRUCTURED)).extensions == {"tenant": "acme"}


def test_structured_cloudevent_dedupe_key_is_source_and_id() -> None:
    assert read(orjson.dumps(STRUCTURED)).dedupe_key == "ce:/shop:evt-1"


def test_structured_cloudevent_with_other_specversion_is_a_bad_event() -> None:
    with pytest.raises(BadEvent, match=r"unsupported CloudEvents specversion '0\.3'"):
        read(orjson.dumps(STRUCTURED | {"specversion": "0.3"}))


def test_structured_cloudevent_without_required_attributes_is_a_bad_event() -> None:
    body = {k: v for k, v in STRUCTURED.items() if k not in ("id", "type")}

    with pytest.raises(BadEvent, match=r"lacks required attribute\(s\): id, type"):
        read(orjson.dumps(body))


def test_structured_cloudevent_attribute_that_is_not_a_string_is_missing() -> None:
    with pytest.raises(BadEvent, match=r"lacks required attribute\(s\): source"):
        read(orjson.dumps(STRUCTURED | {"source": 7}))


def test_structured_cloudevent_with_empty_id_is_a_bad_event() -> None:
    with pytest.raises(BadEvent, match="id"):
        read(orjson.dumps(STRUCTURED | {"id": ""}))


# -- binary-mode CloudEvents ------------------------------------------------------------


def test_binary_cloudevent_is_read_from_ce_headers() -> None:
    event = read(b'{"invoice": 9}', BINARY_HEADERS)

    assert event.is_cloudevent
    assert (event.id, event.source, event.type) == ("evt-2", "/billing", "invoice.paid")
    assert (event.subject, event.time) == ("invoice/9", "2024-05-06T07:08:09Z")
    assert event.data == {"invoice": 9}


def test_binary_cloudevent_extensions_are_the_other_ce_headers() -> None:
    assert read(b"{}", BINARY_HEADERS).extensions == {"tenant": "acme"}


def test_binary_cloudevent_dedupe_key_is_source_and_id() -> None:
    assert read(b"{}", BINARY_HEADERS).dedupe_key == "ce:/billing:evt-2"


def test_binary_cloudevent_without_value_has_no_data() -> None:
    assert read(None, BINARY_HEADERS).data is None


def test_binary_cloudevent_data_that_is_not_json_is_a_bad_event() -> None:
    with pytest.raises(BadEvent, match="binary CloudEvent data is not JSON"):
        read(b"invoice paid", BINARY_HEADERS)


def test_binary_cloudevent_with_other_specversion_is_a_bad_event() -> None:
    headers = [("ce_specversion", b"0.3"), *without(BINARY_HEADERS, "ce_specversion")]

    with pytest.raises(BadEvent, match=r"unsupported CloudEvents specversion '0\.3'"):
        read(b"{}", headers)


def test_binary_cloudevent_without_required_headers_is_a_bad_event() -> None:
    with pytest.raises(BadEvent, match=r"lacks required header\(s\): ce_id, ce_source"):
        read(b"{}", without(BINARY_HEADERS, "ce_id", "ce_source"))


def test_binary_cloudevent_dataschema_is_not_an_extension() -> None:
    headers = [*BINARY_HEADERS, ("ce_dataschema", b"https://example.com/invoice.json")]

    assert read(b"{}", headers).extensions == {"tenant": "acme"}


# -- the document triggers see ----------------------------------------------------------


def test_match_document_has_attributes_position_and_data() -> None:
    event = read(orjson.dumps(STRUCTURED), [("content-type", b"application/cloudevents+json")])

    assert event.match_document() == {
        "id": "evt-1",
        "source": "/shop",
        "type": "order.created",
        "subject": "order/o-1",
        "time": "2024-05-06T07:08:09Z",
        "topic": "orders",
        "key": "k-1",
        "headers": {"content-type": "application/cloudevents+json"},
        "data": {"order_id": "o-1"},
    }


def test_match_document_of_plain_json_has_no_cloudevent_source() -> None:
    document = read(b'{"type": "order.created"}').match_document()

    assert (document["id"], document["source"], document["type"]) == (
        "orders-2-41",
        None,
        "order.created",
    )


# -- writing CloudEvents ----------------------------------------------------------------


def test_cloudevent_is_structured_json_with_specversion_and_content_type() -> None:
    event = cloudevent(
        id="e-1", source="flowbus", type="t", time="2024-01-01T00:00:00.000Z", data=[1]
    )

    assert event == {
        "specversion": "1.0",
        "id": "e-1",
        "source": "flowbus",
        "type": "t",
        "time": "2024-01-01T00:00:00.000Z",
        "datacontenttype": "application/json",
        "data": [1],
    }


def test_cloudevent_has_a_subject_only_when_given() -> None:
    common: dict[str, Any] = {"id": "e-1", "source": "s", "type": "t", "time": "now", "data": None}

    assert "subject" not in cloudevent(**common)
    assert cloudevent(**common, subject="inst-1")["subject"] == "inst-1"


def test_cloudevent_carries_extensions_as_attributes() -> None:
    event = cloudevent(
        id="e-1", source="s", type="t", time="now", data=None, extensions={"flowbusseq": 3}
    )

    assert event["flowbusseq"] == 3


def test_cloudevent_written_is_read_back_as_the_same_event() -> None:
    written = cloudevent(
        id="e-1", source="flowbus", type="t", time="now", data={"a": 1}, subject="inst-1"
    )

    event = read(orjson.dumps(written))

    assert (event.id, event.source, event.type, event.subject, event.data) == (
        "e-1",
        "flowbus",
        "t",
        "inst-1",
        {"a": 1},
    )
    assert event.extensions == {}


def test_a_nul_character_is_a_bad_event_naming_where_it_is() -> None:
    with pytest.raises(BadEvent, match=r"data\.note contains a NUL character"):
        parse_record("orders", 0, 1, None, b'{"type": "t", "note": "a\\u0000b"}', [], LIMITS)


def test_an_escaped_backslash_before_u0000_is_plain_text() -> None:
    event = parse_record("orders", 0, 1, None, b'{"note": "a\\\\u0000b"}', [], LIMITS)

    assert event.data == {"note": "a\\u0000b"}
