"""Cron expressions read in a time zone: the next tick after an instant, across DST changes.

croniter walks the local wall clock (naive times, where it is exact); mapping wall times to
instants is done here, with explicit rules for the hour a DST change skips or repeats:

- A wall time the spring change skips fires at the change itself (a daily `30 2 * * *`
  in Europe/Berlin runs at 03:00 that day); several skipped ticks fire once.
- A wall time the autumn change repeats fires once, at its first occurrence, when the
  expression names its hours (`30 2 * * *`). With a wildcard hour (`*/15 * * * *`,
  `0 */2 * * *`) the schedule follows the clock and fires in both passes, so an
  every-15-minutes schedule keeps running through the repeated hour.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

_FIELD_COUNTS = (5, 6)
_HOUR_FIELD = {5: 1, 6: 2}
# No DST change anywhere moves the clock by more than this; it bounds the look-back
# needed to see the second pass of a repeated hour.
_MAX_SHIFT = timedelta(hours=3)
_MAX_CANDIDATES = 100_000
_PROBE_START = datetime(2001, 1, 1)


class CronError(ValueError):
    """A cron expression or time zone that cannot be used."""


def zone_named(name: str) -> ZoneInfo:
    """The IANA time zone `name`, or `CronError`."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise CronError(f"unknown time zone {name!r}") from None


class CronSchedule:
    """A cron expression in a time zone: five fields (minute hour day-of-month month
    day-of-week), or six with seconds first."""

    __slots__ = ("_both_passes", "_seconds", "_zone", "expression", "timezone")

    def __init__(self, expression: str, timezone: str = "UTC") -> None:
        fields = expression.split() if isinstance(expression, str) else []
        if len(fields) not in _FIELD_COUNTS:
            raise CronError(
                "needs 5 fields (minute hour day-of-month month day-of-week) or 6 (second first)"
            )
        self.expression = " ".join(fields)
        self.timezone = timezone
        self._zone = zone_named(timezone)
        self._seconds = len(fields) == 6
        self._both_passes = fields[_HOUR_FIELD[len(fields)]].startswith("*")
        try:
            self._candidates(_PROBE_START).get_next(datetime)
        except CroniterBadDateError:
            raise CronError(f"{self.expression!r} matches no date") from None
        # croniter's errors derive from ValueError, except a bad range (TypeError).
        except (ValueError, TypeError, KeyError) as exc:
            raise CronError(f"{self.expression!r}: {exc}") from None

    def next_after(self, after: datetime) -> datetime:
        """The first tick strictly after `after` (an aware datetime), in UTC."""
        if after.tzinfo is None:
            raise ValueError("`after` must be timezone-aware")
        after = after.astimezone(UTC)
        wall = after.astimezone(self._zone).replace(tzinfo=None)
        if self._both_passes:
            wall -= self._repeated_hour_near(after)
        candidates = self._candidates(wall)
        best: datetime | None = None
        for _ in range(_MAX_CANDIDATES):
            instants = self._instants(candidates.get_next(datetime))
            # The earliest instant of a wall time grows with the wall time, so once it
            # passes the best found, no later wall time can do better.
            if best is not None and instants[0] >= best:
                return best
            for instant in instants:
                if instant > after and (best is None or instant < best):
                    best = instant
            if best is not None and not self._both_passes:
                return best
        raise CronError(f"{self.expression!r}: no tick found after {after.isoformat()}")

    def _candidates(self, start: datetime) -> croniter:
        return croniter(self.expression, start, second_at_beginning=self._seconds)

    def _repeated_hour_near(self, instant: datetime) -> timedelta:
        """How far the clock goes back at a DST change close to `instant` (zero if none)."""
        before = (instant - _MAX_SHIFT).astimezone(self._zone).utcoffset() or timedelta(0)
        after = (instant + _MAX_SHIFT).astimezone(self._zone).utcoffset() or timedelta(0)
        return max(before - after, timedelta(0))

    def _instants(self, wall: datetime) -> list[datetime]:
        """The instants a local wall time stands for, earliest first (see the module doc)."""
        first = wall.replace(tzinfo=self._zone, fold=0).astimezone(UTC)
        second = wall.replace(tzinfo=self._zone, fold=1).astimezone(UTC)
        if first == second:
            return [first]
        early, late = sorted((first, second))
        if early.astimezone(self._zone).replace(tzinfo=None) == wall:
            return [early, late] if self._both_passes else [early]
        return [self._change_within(early, late)]

    def _change_within(self, low: datetime, high: datetime) -> datetime:
        """The instant in (low, high] where the zone's offset changes (to the second)."""
        offset = low.astimezone(self._zone).utcoffset()
        lo, hi = 0, int((high - low).total_seconds())
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if (low + timedelta(seconds=mid)).astimezone(self._zone).utcoffset() == offset:
                lo = mid
            else:
                hi = mid
        return low + timedelta(seconds=hi)

    def __repr__(self) -> str:
        return f"CronSchedule({self.expression!r}, {self.timezone!r})"
