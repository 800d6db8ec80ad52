"""JSON bounds are checked on the raw bytes, cheaply, before any parser recurses."""

from __future__ import annotations

import orjson
import pytest

from flowbus.limits import JsonLimits, LimitExceeded, encoded_size, too_deep


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize("depth", [1, 10, 64])
def test_nesting_up_to_the_limit_passes(depth: int) -> None:
    assert not too_deep(nested(depth), 64)


@pytest.mark.parametrize("depth", [65, 300, 100_000])
def test_nesting_past_the_limit_is_refused(depth: int) -> None:
    assert too_deep(nested(depth), 64)


def test_objects_and_arrays_count_alike() -> None:
    document = orjson.dumps({"a": [{"b": [{"c": 1}]}]})
    assert not too_deep(document, 5)
    assert too_deep(document, 4)


def test_brackets_inside_strings_do_not_count() -> None:
    document = orjson.dumps({"text": "[[[[{{{{" * 100, "escaped": '\\"[[[['})
    assert not too_deep(document, 1)


def test_depth_that_needs_closing_brackets_to_see_is_found() -> None:
    # No plain chain of openers: each level opens a sibling first and closes it again.
    document = b"[[]," * 80 + b"1" + b"]" * 80
    assert too_deep(document, 64)


def test_text_that_is_not_json_is_left_to_the_parser() -> None:
    assert not too_deep(b"{{{{ not json", 64)


def test_size_is_checked_before_depth_and_says_both_numbers() -> None:
    limits = JsonLimits(max_bytes=1024, max_depth=8)
    with pytest.raises(LimitExceeded, match="2000 bytes, over the limit of 1024") as caught:
        limits.check(b" " * 2000)
    assert caught.value.kind == "size"
    with pytest.raises(LimitExceeded, match="deeper than the limit of 8") as caught:
        limits.loads(nested(9))
    assert caught.value.kind == "depth"
    assert limits.loads(b'{"a": [1]}') == {"a": [1]}


def test_encoded_size_is_the_compact_json_length() -> None:
    assert encoded_size({"a": 1}) == len(b'{"a":1}')
    assert encoded_size(object()) > 1 << 40
