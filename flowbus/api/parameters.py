"""Checks of query parameters that their types cannot express, each a 400 problem naming the
parameter: text PostgreSQL cannot hold, and times outside the range it can."""

from __future__ import annotations

from datetime import UTC, datetime

from flowbus.api.problems import ApiProblem, ProblemItem

NUL_DETAIL = "holds the NUL character (\\u0000), which no stored value has"


def invalid_parameter(name: str, detail: str) -> ApiProblem:
    item = ProblemItem(detail=detail, parameter=name)
    return ApiProblem(
        400, "invalid-request", f"{name} {detail}", title="Invalid request", errors=[item]
    )


def storable(name: str, value: str | None) -> None:
    """Refuse text holding NUL: no stored value has it, and PostgreSQL cannot compare to it."""
    if value is not None and "\x00" in value:
        raise invalid_parameter(name, NUL_DETAIL)


def utc(name: str, moment: datetime | None) -> datetime | None:
    """`moment` in UTC (a time without a zone is taken as UTC), or a 400 when it is out of
    range once moved to UTC (`0001-01-01T00:00:00+14:00`)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise invalid_parameter(name, "is outside the range of times once in UTC") from None
