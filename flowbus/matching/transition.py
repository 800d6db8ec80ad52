"""The ``entity:field:to_state`` trigger shorthand for state-machine transitions.

A workflow can be triggered by a record's state-machine transition, written
as ``"order:status:approved"``: the ``status`` field of an ``order`` record
moved to ``approved``. The shorthand expands to an ordinary pattern, so
:class:`~flowbus.matching.index.TriggerIndex` indexes it like any other.

The transition event
--------------------
Whatever produces transitions publishes one event per transition, as plain
JSON or as a CloudEvent (whose ``type`` may be anything; only ``data`` is
matched). Its body, the match document's ``data``, is::

    {
      "entity": "order",        # entity (table) whose record changed
      "field": "status",        # the state-machine field
      "from": "pending",        # previous state, null when the record was created
      "to": "approved",         # new state
      "record_id": "o-1",       # id of the record
      "record": {"id": "o-1", "amount": 250, "status": "approved", ...}
    }

``record`` is the record after the transition, so workflow context mappings
such as ``trigger.record.amount`` can read it.

The shorthand
-------------
Exactly three non-empty parts separated by ``:``, without whitespace. The
last part may be ``*`` for "any new state" (``"order:status:*"``); entity and
field must be named, and ``*`` is not a wildcard inside a name.

>>> transition_pattern("order:status:approved")
{'data': {'entity': ['order'], 'field': ['status'], 'to': ['approved']}}
"""

from __future__ import annotations

from typing import Any, Final

from flowbus.matching.errors import PatternError

__all__ = ["ANY_STATE", "parse_transition", "transition_pattern"]

ANY_STATE: Final = "*"
"""The ``to_state`` that matches a transition to any state."""


def parse_transition(shorthand: str) -> tuple[str, str, str]:
    """Split ``"entity:field:to_state"`` into its parts; raise :class:`PatternError` if malformed.

    ``to_state`` may be :data:`ANY_STATE` (``"*"``).
    """
    where = f"transition {shorthand!r}"
    if not isinstance(shorthand, str):
        raise PatternError(where, "must be a string 'entity:field:to_state'")
    parts = shorthand.split(":")
    if len(parts) != 3:
        raise PatternError(where, "needs exactly three parts, 'entity:field:to_state'")
    for name, part in zip(("entity", "field", "to_state"), parts, strict=True):
        if not part:
            raise PatternError(where, f"{name} is empty")
        if any(char.isspace() for char in part):
            raise PatternError(where, f"{name} {part!r} contains whitespace")
        if "*" in part and not (name == "to_state" and part == ANY_STATE):
            raise PatternError(where, f"{name} {part!r}: only the whole to_state may be '*'")
    entity, field, to_state = parts
    return entity, field, to_state


def transition_pattern(shorthand: str) -> dict[str, Any]:
    """The pattern matching the transition events that ``shorthand`` names."""
    entity, field, to_state = parse_transition(shorthand)
    to_matcher: Any = {"exists": True} if to_state == ANY_STATE else to_state
    return {"data": {"entity": [entity], "field": [field], "to": [to_matcher]}}
