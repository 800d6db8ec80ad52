"""The action registry: `action:` name -> action type. Register a new action here."""

from __future__ import annotations

from flowbus.actions.base import ActionType
from flowbus.actions.log import Log
from flowbus.actions.send_event import SendEvent
from flowbus.actions.set_variables import SetVariables

ACTIONS: dict[str, ActionType] = {
    action.name: action for action in (SendEvent(), SetVariables(), Log())
}


def get_action(name: str) -> ActionType:
    try:
        return ACTIONS[name]
    except KeyError:
        raise KeyError(f"unknown action {name!r}; known: {', '.join(sorted(ACTIONS))}") from None
