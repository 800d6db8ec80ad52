"""Durations and JSON values as the worker protocol carries them."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import orjson
from pydantic import BaseModel

_DURATION = re.compile(
    r"^P(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def seconds(duration: str | float | timedelta) -> float:
    """Seconds in an ISO 8601 duration (`PT2S`, `P1DT2H`), a number of seconds or a
    `timedelta`; `ValueError` for anything else."""
    if isinstance(duration, timedelta):
        return duration.total_seconds()
    if isinstance(duration, bool):
        raise ValueError(f"{duration!r} is not a duration")
    if isinstance(duration, int | float):
        if duration < 0:
            raise ValueError(f"{duration!r} is a negative duration")
        return float(duration)
    found = _DURATION.match(duration)
    if found is None or duration in ("P", "PT") or duration.endswith("T"):
        raise ValueError(f"{duration!r} is not an ISO 8601 duration such as PT2S")
    parts = {k: float(v) for k, v in found.groupdict().items() if v is not None}
    return (
        parts.get("days", 0.0) * 86400
        + parts.get("hours", 0.0) * 3600
        + parts.get("minutes", 0.0) * 60
        + parts.get("seconds", 0.0)
    )


def iso_duration(duration: str | float | timedelta) -> str:
    """The ISO 8601 form of a duration: text is checked and kept, numbers become `PT<n>S`."""
    if isinstance(duration, str):
        seconds(duration)
        return duration
    value = seconds(duration)
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return f"PT{text}S"


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def to_json(value: Any) -> Any:
    """`value` as the plain JSON value a record carries (pydantic models are dumped), so
    code sees the same value on the first run and on every replay."""
    return orjson.loads(dumps(value))


def dumps(value: Any) -> bytes:
    """`value` as JSON bytes; pydantic models are dumped in JSON mode."""
    return orjson.dumps(value, default=_default)
