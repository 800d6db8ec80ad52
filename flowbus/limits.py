"""Size and nesting bounds on JSON, checked on the raw bytes before anything parses them.

A hostile document must cost milliseconds: the size is checked first (one `len`), and the
depth with a few passes of C-speed regular expressions over the bytes instead of a Python
walk over a parsed object, so a 1 MB document nested 100,000 deep is refused before a
parser or a log renderer ever recurses into it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from itertools import accumulate
from typing import Any

import orjson

# A JSON string: quotes around anything but a quote or backslash, or an escape.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
# +1 for an opening bracket, -1 for a closing one: the running sum is the depth.
_STEP = [0] * 256
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1


@cache
def _openers(count: int) -> re.Pattern[bytes]:
    return re.compile(rb"[\[{]{%d}" % count)


class LimitExceeded(ValueError):
    """A document is over a bound; the message says which bound and by how much."""

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def too_deep(raw: bytes, max_depth: int) -> bool:
    """Whether the JSON text `raw` nests objects and arrays deeper than `max_depth`.

    Tolerant of text that is not JSON (the parser will say what is wrong with it); brackets
    inside strings do not count.
    """
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return False
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", raw))
    # A plain chain of openers is the common hostile shape: found by one regex search.
    if _openers(max_depth + 1).search(brackets):
        return True
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > max_depth


@dataclass(frozen=True, slots=True)
class JsonLimits:
    """The two bounds every JSON input is held to."""

    max_bytes: int
    max_depth: int

    def check(self, raw: bytes, what: str = "document") -> None:
        """Raise `LimitExceeded` if `raw` is larger or deeper than allowed."""
        if len(raw) > self.max_bytes:
            raise LimitExceeded(
                f"{what} is {len(raw)} bytes, over the limit of {self.max_bytes}", kind="size"
            )
        if too_deep(raw, self.max_depth):
            raise LimitExceeded(
                f"{what} is nested deeper than the limit of {self.max_depth}", kind="depth"
            )

    def loads(self, raw: bytes, what: str = "document") -> Any:
        """Check `raw`, then parse it (orjson errors pass through as they are)."""
        self.check(raw, what)
        return orjson.loads(raw)


def encoded_size(value: Any) -> int:
    """Bytes of `value` as compact JSON; values orjson cannot encode count as unbounded."""
    try:
        return len(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError):
        return 1 << 62
