"""A definition's triggers in words, from its document as the API returns it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

_DAYS = ("Sundays", "Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays")


def _code(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def cron_words(cron: str) -> str:
    """Common cron shapes in words; anything else as the expression itself."""
    fields = cron.split()
    if len(fields) != 5:
        return f"on the cron schedule “{cron}”"
    minute, hour, day, month, weekday = fields
    rest_any = day == "*" and month == "*"
    if rest_any and weekday == "*" and hour == "*":
        if minute == "*":
            return "every minute"
        if minute.startswith("*/") and minute[2:].isdigit():
            return f"every {int(minute[2:])} minutes"
        if minute.isdigit():
            return f"every hour at minute {int(minute)}"
    if rest_any and minute.isdigit() and hour.isdigit():
        at = f"{int(hour):02d}:{int(minute):02d}"
        if weekday == "*":
            return f"every day at {at}"
        if weekday.isdigit() and int(weekday) <= 7:
            return f"on {_DAYS[int(weekday) % 7]} at {at}"
        if weekday in ("1-5", "MON-FRI", "mon-fri"):
            return f"on weekdays at {at}"
    return f"on the cron schedule “{cron}”"


def trigger_words(trigger: Mapping[str, Any]) -> str:
    """One sentence saying when the trigger starts an instance and with what input."""
    schedule = trigger.get("schedule")
    if isinstance(schedule, Mapping):
        cron = str(schedule.get("cron", ""))
        zone = schedule.get("timezone") or "UTC"
        text = f"Starts {cron_words(cron)} ({zone} time)"
        if schedule.get("misfire") == "skip":
            text += "; ticks missed while no worker ran are skipped"
        if "input" in schedule:
            text += f", with the input {_code(schedule['input'])}"
        return text + "."
    topic = trigger.get("topic")
    parts = [
        f"Starts on each event on topic “{topic}”"
        if topic
        else "Starts on each event on any source topic"
    ]
    if trigger.get("type"):
        parts.append(f" of type “{trigger['type']}”")
    transition = trigger.get("transition")
    if isinstance(transition, str) and transition.count(":") == 2:
        entity, field, state = transition.split(":")
        target = "any state" if state == "*" else f"“{state}”"
        parts.append(f" that moves a {entity}'s {field} to {target}")
    if trigger.get("pattern") is not None:
        parts.append(f" matching the pattern {_code(trigger['pattern'])}")
    text = "".join(parts)
    transform = trigger.get("transform")
    if isinstance(transform, Mapping) and transform.get("expression"):
        language = "JSONata" if transform.get("type") == "jsonata" else "JMESPath"
        text += f"; its input is the {language} {transform['expression']}"
    else:
        text += "; its input is the event's data"
    if trigger.get("correlation"):
        text += f"; correlation id: {trigger['correlation']}"
    text += "."
    if trigger.get("description"):
        text += f" {trigger['description']}"
    return text


def triggers_words(document: Mapping[str, Any]) -> list[str]:
    triggers = document.get("triggers")
    if not isinstance(triggers, list) or not triggers:
        return ["No trigger: instances start from the API, the commands topic or a parent."]
    return [trigger_words(t) for t in triggers if isinstance(t, Mapping)]
