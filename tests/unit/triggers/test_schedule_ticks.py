"""Schedule triggers: next ticks in a time zone (DST included) and the misfire policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from flowbus.definitions.cron import CronError, CronSchedule
from flowbus.definitions.triggers import Schedule
from flowbus.timers.schedules import (
    Tick,
    plan_ticks,
    schedule_input,
    schedule_instance_id,
    tick_document,
)

BERLIN = ZoneInfo("Europe/Berlin")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def ticks(expression: str, start: datetime, count: int, zone: str = "Europe/Berlin") -> list[str]:
    """The next `count` ticks after `start`, as local ISO times."""
    cron = CronSchedule(expression, zone)
    found, at = [], start
    for _ in range(count):
        at = cron.next_after(at)
        found.append(at.astimezone(ZoneInfo(zone)).isoformat())
    return found


def test_cron_fields_are_read_in_the_time_zone() -> None:
    [tick] = ticks("0 9 * * *", utc(2026, 1, 15, 12), 1)

    assert tick == "2026-01-16T09:00:00+01:00"
    assert CronSchedule("0 9 * * *", "Europe/Berlin").next_after(utc(2026, 1, 15, 12)) == utc(
        2026, 1, 16, 8
    )


def test_next_tick_is_strictly_after_the_instant() -> None:
    cron = CronSchedule("*/5 * * * *")

    assert cron.next_after(utc(2026, 1, 1, 10, 5)) == utc(2026, 1, 1, 10, 10)
    assert cron.next_after(utc(2026, 1, 1, 10, 4, 59, 999999)) == utc(2026, 1, 1, 10, 5)


def test_six_fields_put_seconds_first() -> None:
    cron = CronSchedule("*/2 * * * * *")

    assert cron.next_after(utc(2026, 1, 1, 10, 0, 1)) == utc(2026, 1, 1, 10, 0, 2)
    assert CronSchedule("30 0 * * * *").next_after(utc(2026, 1, 1, 10)) == utc(
        2026, 1, 1, 10, 0, 30
    )


def test_daily_tick_in_the_hour_skipped_in_spring_runs_at_the_change() -> None:
    assert ticks("30 2 * * *", datetime(2026, 3, 27, 12, tzinfo=BERLIN), 4) == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]


def test_daily_tick_in_the_hour_repeated_in_autumn_runs_once() -> None:
    assert ticks("30 2 * * *", datetime(2026, 10, 23, 12, tzinfo=BERLIN), 4) == [
        "2026-10-24T02:30:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
        "2026-10-27T02:30:00+01:00",
    ]


def test_daily_tick_after_the_autumn_change_keeps_its_wall_time() -> None:
    assert ticks("0 3 * * *", datetime(2026, 10, 24, 12, tzinfo=BERLIN), 2) == [
        "2026-10-25T03:00:00+01:00",
        "2026-10-26T03:00:00+01:00",
    ]


def test_wildcard_hour_schedule_runs_through_the_repeated_hour() -> None:
    assert ticks("*/30 * * * *", datetime(2026, 10, 25, 1, 45, tzinfo=BERLIN), 5) == [
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T02:30:00+01:00",
        "2026-10-25T03:00:00+01:00",
    ]


def test_wildcard_hour_schedule_skips_nothing_but_the_missing_hour_in_spring() -> None:
    assert ticks("*/30 * * * *", datetime(2026, 3, 29, 1, 15, tzinfo=BERLIN), 3) == [
        "2026-03-29T01:30:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T03:30:00+02:00",
    ]


def test_ticks_are_at_least_as_far_apart_as_elapsed_time_allows_in_new_york() -> None:
    found = ticks(
        "0 * * * *",
        datetime(2026, 11, 1, 0, 30, tzinfo=ZoneInfo("America/New_York")),
        4,
        zone="America/New_York",
    )

    assert found == [
        "2026-11-01T01:00:00-04:00",
        "2026-11-01T01:00:00-05:00",
        "2026-11-01T02:00:00-05:00",
        "2026-11-01T03:00:00-05:00",
    ]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * *", "needs 5 fields"),
        ("61 * * * *", "out of range"),
        ("0 0 30 2 *", "matches no date"),
        ("*/0 * * * *", "invalid range"),
    ],
)
def test_invalid_cron_expressions_are_refused(expression: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        CronSchedule(expression)


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(CronError, match="unknown time zone 'Nowhere/Special'"):
        CronSchedule("* * * * *", "Nowhere/Special")


def every_minute(**fields: Any) -> Schedule:
    return Schedule.model_validate({"cron": "* * * * *", **fields})


def test_a_due_tick_fires_and_the_next_one_becomes_due() -> None:
    plan = plan_ticks(every_minute(), due=utc(2026, 1, 1, 10, 0), now=utc(2026, 1, 1, 10, 0, 0, 5))

    assert plan.fire == [Tick(utc(2026, 1, 1, 10, 0))]
    assert plan.next_due == utc(2026, 1, 1, 10, 1)
    assert not plan.skipped


def test_nothing_fires_before_the_tick_is_due() -> None:
    plan = plan_ticks(every_minute(), due=utc(2026, 1, 1, 10, 1), now=utc(2026, 1, 1, 10, 0, 59))

    assert (plan.fire, plan.next_due) == ([], utc(2026, 1, 1, 10, 1))


def test_late_ticks_within_grace_each_fire() -> None:
    plan = plan_ticks(
        every_minute(grace="PT5M"), due=utc(2026, 1, 1, 10, 0), now=utc(2026, 1, 1, 10, 2, 30)
    )

    assert [t.at for t in plan.fire] == [utc(2026, 1, 1, 10, m) for m in (0, 1, 2)]
    assert not any(t.misfired for t in plan.fire)
    assert plan.next_due == utc(2026, 1, 1, 10, 3)


def test_fire_once_starts_one_instance_for_all_missed_ticks_then_the_on_time_ones() -> None:
    plan = plan_ticks(
        every_minute(misfire="fire_once", grace="PT1M"),
        due=utc(2026, 1, 1, 8, 0),
        now=utc(2026, 1, 1, 10, 0, 30),
    )

    assert plan.fire == [Tick(utc(2026, 1, 1, 8, 0), misfired=True), Tick(utc(2026, 1, 1, 10, 0))]
    assert plan.next_due == utc(2026, 1, 1, 10, 1)


def test_skip_starts_nothing_for_missed_ticks() -> None:
    plan = plan_ticks(
        every_minute(misfire="skip", grace="PT1M"),
        due=utc(2026, 1, 1, 8, 0),
        now=utc(2026, 1, 1, 10, 0, 30),
    )

    assert plan.fire == [Tick(utc(2026, 1, 1, 10, 0))]
    assert plan.skipped
    assert plan.next_due == utc(2026, 1, 1, 10, 1)


def test_skip_with_no_on_time_tick_only_moves_next_due_on() -> None:
    hourly = Schedule.model_validate({"cron": "0 * * * *", "misfire": "skip"})

    plan = plan_ticks(hourly, due=utc(2026, 1, 1, 8), now=utc(2026, 1, 1, 10, 30))

    assert (plan.fire, plan.skipped, plan.next_due) == ([], True, utc(2026, 1, 1, 11))


def test_a_schedule_far_behind_catches_up_over_several_rounds() -> None:
    seconds = Schedule.model_validate({"cron": "* * * * * *", "grace": "PT1H"})
    now = utc(2026, 1, 1, 10, 30)

    first = plan_ticks(seconds, due=utc(2026, 1, 1, 10), now=now)
    second = plan_ticks(seconds, due=first.next_due, now=now)

    assert len(first.fire) == 100
    assert second.fire[0].at == first.fire[-1].at + timedelta(seconds=1)


def test_instance_id_derives_from_workflow_and_tick_only() -> None:
    at = utc(2026, 1, 1, 10)

    assert schedule_instance_id("nightly", at) == schedule_instance_id("nightly", at)
    assert schedule_instance_id("nightly", at) != schedule_instance_id("nightly", utc(2026, 1, 2))
    assert schedule_instance_id("nightly", at) != schedule_instance_id("hourly", at)


def test_tick_document_and_default_input() -> None:
    schedule = Schedule.model_validate({"cron": "0 9 * * *", "timezone": "Europe/Berlin"})
    document = tick_document("report", 2, schedule, Tick(utc(2026, 1, 1, 8), misfired=True))

    assert document["type"] == "flowbus.schedule.tick"
    assert document["time"] == "2026-01-01T08:00:00.000Z"
    assert schedule_input(schedule, document) == {
        "scheduledTime": "2026-01-01T08:00:00.000Z",
        "cron": "0 9 * * *",
        "timezone": "Europe/Berlin",
        "misfired": True,
    }


def test_schedule_input_replaces_the_tick_data() -> None:
    schedule = Schedule.model_validate({"cron": "0 9 * * *", "input": {"report": "daily"}})
    document = tick_document("report", 0, schedule, Tick(utc(2026, 1, 1, 9)))

    assert schedule_input(schedule, document) == {"report": "daily"}
