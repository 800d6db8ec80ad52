"""Times as flowbus writes and reads them: RFC 3339 in UTC, millisecond precision.

The one place a `datetime` becomes text and text becomes a `datetime`, for the core and
the shell alike, so every event, row and log line agrees on the format.
"""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(moment: datetime) -> str:
    """RFC 3339 in UTC with millisecond precision, as every flowbus event carries."""
    if moment.tzinfo is None:
        raise ValueError("times must carry a time zone")
    u = moment.astimezone(UTC)
    return u.strftime("%Y-%m-%dT%H:%M:%S.") + f"{u.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    """An ISO 8601 / RFC 3339 time (`Z` or an offset) as an aware `datetime`;
    `ValueError` for anything else, a time without a zone included."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment
