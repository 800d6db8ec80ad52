"""Instance pages are keyset-paginated on (created_at, id) behind an opaque cursor."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from flowbus.store.queries import BadCursor, decode_cursor, encode_cursor


def test_a_cursor_round_trips_the_position() -> None:
    created = datetime(2026, 11, 21, 22, 0, 0, 123456, tzinfo=UTC)
    instance_id = str(uuid.uuid4())

    assert decode_cursor(encode_cursor(created, instance_id)) == (created, instance_id)


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        "WyJub3QgYSB0aW1lIiwgIngiXQ",  # ["not a time", "x"]
        "WyIyMDI2LTExLTIxVDIyOjAwOjAwIiwgIngiXQ",  # naive time, bad id
        "e30",  # {}
    ],
)
def test_a_cursor_the_api_did_not_hand_out_is_refused(cursor: str) -> None:
    with pytest.raises(BadCursor):
        decode_cursor(cursor)
