"""Context mappings and action paths as state-machine-triggered workflows write them
(seed 000): `context: {record_id: trigger.record_id}` and actions reading `context.x`.

There, `trigger` is the transition itself (`entity`, `field`, `to_state`, `record`,
`record_id`); in flowbus it is the event document, whose data holds the transition. So a
mapping path `trigger.<transition field>` reads `trigger.data.<field>` (`to_state` is
`to`, `from_state` is `from`). Actions there name context values by bare paths; a config
string that is exactly such a path (`context.record_id`) becomes the template
`{{ context.record_id }}` (`context` is another name of `variables` in expressions and
templates).

What a mapping reads is checked too, so no mapping silently yields null: its paths start
at `input` or `trigger`, and `trigger.<name>` must be a field of the event document.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import jmespath
import jmespath.exceptions

from flowbus.definitions.errors import Problem

TRANSITION_FIELDS = {
    "record_id": "record_id",
    "record": "record",
    "entity": "entity",
    "field": "field",
    "to_state": "to",
    "from_state": "from",
}
"""The seed's trigger fields and their names in a transition event's data."""

EVENT_DOCUMENT = frozenset(
    {"id", "source", "type", "subject", "time", "topic", "key", "headers", "data"}
)
"""The fields of the event document, which mappings and steps see as `trigger`."""

MAPPING_ROOTS = frozenset({"input", "trigger"})

_SEED_TRIGGER_PATH = re.compile(
    r"^trigger\.(" + "|".join(sorted(TRANSITION_FIELDS, key=len, reverse=True)) + r")(?=$|[.\[])"
)
_CONTEXT_PATH = re.compile(r"^context(?:\.[A-Za-z_][A-Za-z0-9_]*)+$")
_RELATIVE_AFTER_FIRST = frozenset(
    {
        "subexpression",
        "index_expression",
        "projection",
        "value_projection",
        "filter_projection",
        "flatten",
        "pipe",
    }
)


def convert(document: dict[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    """The document with seed 000's paths in flowbus's words, and what mappings cannot read."""
    result = dict(document)
    problems: list[Problem] = []
    context = document.get("context")
    if isinstance(context, dict):
        mapped = {name: _mapping_path(path) for name, path in context.items()}
        result["context"] = mapped
        for name, path in mapped.items():
            if isinstance(path, str):
                problems.extend(unread_paths(path, f"context.{name}"))
    steps = document.get("steps")
    if isinstance(steps, list):
        result["steps"] = [_step(step) for step in steps]
    return result, problems


def _mapping_path(path: Any) -> Any:
    if not isinstance(path, str):
        return path
    stripped = path.strip()
    found = _SEED_TRIGGER_PATH.match(stripped)
    if found is None:
        return path
    return f"trigger.data.{TRANSITION_FIELDS[found.group(1)]}{stripped[found.end() :]}"


def unread_paths(source: str, field: str) -> Iterator[Problem]:
    """Problems for the parts of a mapping path that can only ever read null."""
    try:
        parsed: dict[str, Any] = dict(jmespath.compile(source).parsed)
    except jmespath.exceptions.JMESPathError:
        return  # the definition model reports a path that does not compile
    for names in _root_reads(parsed):
        root = names[0]
        if root not in MAPPING_ROOTS:
            hint = (
                ": a mapping computes context, it cannot read it"
                if root == "context"
                else " (the event is `trigger`, its data `trigger.data`)"
            )
            yield Problem(
                f"{source!r} reads {root!r}, which is never set; context mappings read "
                f"`input` and `trigger`{hint}",
                field=field,
            )
        elif root == "trigger" and len(names) > 1 and names[1] not in EVENT_DOCUMENT:
            yield Problem(
                f"{source!r} reads trigger.{names[1]}, which the event document does not "
                f"have (its fields: {', '.join(sorted(EVENT_DOCUMENT))}); the event's own "
                f"fields are under trigger.data, e.g. trigger.data.{names[1]}",
                field=field,
            )


def _root_reads(node: dict[str, Any]) -> Iterator[list[str]]:
    """The leading names (up to two) of each part of a query that reads from the scope."""
    kind = node.get("type")
    children = [c for c in node.get("children", []) if isinstance(c, dict)]
    if kind == "field":
        yield [node["value"]]
    elif kind == "subexpression" and len(children) > 1 and children[0].get("type") == "field":
        second = children[1]
        names = [children[0]["value"]]
        if second.get("type") == "field":
            names.append(second["value"])
        elif second.get("type") == "index_expression":
            inner = second.get("children", [{}])[0]
            if inner.get("type") == "field":
                names.append(inner["value"])
        yield names
    elif kind in _RELATIVE_AFTER_FIRST:
        if children:
            yield from _root_reads(children[0])
    elif kind == "expref":
        return
    else:
        for child in children:
            yield from _root_reads(child)


def _step(step: Any) -> Any:
    if not isinstance(step, dict):
        return step
    result = dict(step)
    if step.get("type") == "action" and "config" in step:
        result["config"] = _context_templates(step["config"])
    compensate = step.get("compensate")
    if isinstance(compensate, dict) and "config" in compensate:
        result["compensate"] = {**compensate, "config": _context_templates(compensate["config"])}
    branches = step.get("branches")
    if isinstance(branches, list):
        result["branches"] = [
            {**b, "steps": [_step(s) for s in b["steps"]]}
            if isinstance(b, dict) and isinstance(b.get("steps"), list)
            else b
            for b in branches
        ]
    return result


def _context_templates(value: Any) -> Any:
    """Config strings that are exactly a `context.<path>` read that path, as templates do."""
    if isinstance(value, str):
        return "{{ " + value + " }}" if _CONTEXT_PATH.fullmatch(value) else value
    if isinstance(value, dict):
        return {key: _context_templates(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_context_templates(item) for item in value]
    return value
