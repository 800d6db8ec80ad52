"""A consumed record is held to its limits before any part of it is decoded or parsed."""

from __future__ import annotations

import base64
import time
from typing import Any

import orjson
import pytest

from flowbus.envelope import BadEvent, DomainEvent, RecordLimits, parse_record
from flowbus.limits import JsonLimits

Headers = list[tuple[str, bytes | None]]

LIMITS = RecordLimits(JsonLimits(max_bytes=1_000_000, max_depth=64))
BINARY: Headers = [
    ("ce_specversion", b"1.0"),
    ("ce_id", b"evt-2"),
    ("ce_source", b"/billing"),
    ("ce_type", b"invoice.paid"),
]


def read(
    value: bytes | None,
    headers: Headers | None = None,
    key: bytes | None = b"k-1",
    limits: RecordLimits = LIMITS,
) -> DomainEvent:
    return parse_record("orders", 0, 7, key, value, headers, limits)


def nested(depth: int) -> bytes:
    return b'{"type": "t", "data": ' + b"[" * depth + b"]" * depth + b"}"


def structured(**fields: Any) -> bytes:
    return orjson.dumps(
        {"specversion": "1.0", "id": "e-1", "source": "/shop", "type": "order.created", **fields}
    )


def refused(value: bytes | None, headers: Headers | None = None, **kwargs: Any) -> str:
    """The reason the record is refused, which must come within a few milliseconds of CPU
    (CPU time: the clock also counts the time other processes hold the cores)."""
    began = time.process_time()
    with pytest.raises(BadEvent) as caught:
        read(value, headers, **kwargs)
    assert time.process_time() - began < 0.05
    return str(caught.value)


# -- the value ---------------------------------------------------------------------------


def test_a_value_over_the_size_limit_is_refused_naming_both_sizes() -> None:
    assert refused(b" " * 5_000_000) == ("value is 5000000 bytes, over the limit of 1000000")


def test_a_value_at_the_size_limit_is_read() -> None:
    value = b'{"pad": "' + b"x" * (1_000_000 - 11) + b'"}'

    assert len(read(value).data["pad"]) == 1_000_000 - 11


@pytest.mark.parametrize("depth", [65, 300, 100_000])
def test_a_value_nested_past_the_depth_limit_is_refused(depth: int) -> None:
    assert refused(nested(depth)) == "value is nested deeper than the limit of 64"


def test_a_value_nested_to_the_depth_limit_is_read() -> None:
    assert read(nested(63)).data["data"] is not None


def test_the_depth_of_binary_cloudevent_data_is_bounded() -> None:
    reason = refused(b"[" * 100_000 + b"]" * 100_000, BINARY)

    assert reason == "binary CloudEvent data is nested deeper than the limit of 64"


def test_a_value_that_is_not_json_is_refused_saying_so() -> None:
    assert refused(b"\xff\xfe not json").startswith("value is not JSON: ")


def test_the_limits_are_the_ones_given() -> None:
    small = RecordLimits(JsonLimits(max_bytes=2048, max_depth=4))

    assert refused(b" " * 4096, limits=small).endswith("over the limit of 2048")
    assert refused(nested(5), limits=small).endswith("deeper than the limit of 4")


# -- key and headers --------------------------------------------------------------------


def test_a_key_over_its_limit_is_refused() -> None:
    reason = refused(b"{}", key=b"k" * 5000)

    assert reason == "record key is 5000 bytes, over the limit of 4096"


def test_a_huge_header_is_refused_before_it_is_decoded() -> None:
    headers = [*BINARY, ("ce_subject", b"s" * 2_000_000)]

    assert refused(b"{}", headers).startswith("record headers are 2000")
    assert refused(b"{}", headers).endswith("bytes, over the limit of 65536")


def test_too_many_headers_are_refused() -> None:
    headers: Headers = [(f"h{i}", b"") for i in range(10_000)]

    assert refused(b"{}", headers) == "record has 10000 headers, over the limit of 64"


def test_headers_within_their_limits_are_read() -> None:
    headers = [*BINARY, ("ce_subject", b"s" * 60_000)]

    assert read(b"{}", headers).subject == "s" * 60_000


# -- data_base64 ------------------------------------------------------------------------


def test_data_base64_is_decoded_as_json_data() -> None:
    encoded = base64.b64encode(b'{"invoice": 9}').decode()

    assert read(structured(data_base64=encoded)).data == {"invoice": 9}


def test_decoded_data_base64_is_held_to_the_depth_limit() -> None:
    encoded = base64.b64encode(b"[" * 100_000 + b"]" * 100_000).decode()

    assert refused(structured(data_base64=encoded)) == (
        "CloudEvent data_base64 (decoded) is nested deeper than the limit of 64"
    )


def test_data_base64_that_is_not_base64_is_refused() -> None:
    assert refused(structured(data_base64="not base64!")) == (
        "CloudEvent data_base64 is not valid base64"
    )


def test_data_base64_of_another_content_type_is_refused() -> None:
    encoded = base64.b64encode(b"\x89PNG").decode()

    reason = refused(structured(data_base64=encoded, datacontenttype="image/png"))

    assert (
        reason == "CloudEvent data_base64 holds 'image/png', not JSON; flowbus reads only JSON data"
    )


def test_data_and_data_base64_together_are_refused() -> None:
    assert refused(structured(data={}, data_base64="e30=")) == (
        "CloudEvent has both data and data_base64"
    )


def test_a_nul_inside_data_base64_is_refused_naming_where() -> None:
    encoded = base64.b64encode(b'{"note": "a\\u0000b"}').decode()

    assert refused(structured(data_base64=encoded)).startswith("data.note contains a NUL")


# -- reasons quote, never copy ----------------------------------------------------------


def test_a_huge_specversion_is_quoted_short_in_the_reason() -> None:
    reason = refused(orjson.dumps({"specversion": "9" * 500_000, "id": "e"}))

    assert len(reason) < 200


def test_a_huge_binary_specversion_header_is_quoted_short() -> None:
    headers = [("ce_specversion", b"9" * 50_000), *BINARY[1:]]

    assert len(refused(b"{}", headers)) < 200
