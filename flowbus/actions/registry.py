"""The action registry: `action:` name -> action type. Register a new action here."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from flowbus.actions.base import ActionType
from flowbus.actions.entities import CreateRecord, SetField
from flowbus.actions.log import Log, LogMessage
from flowbus.actions.send_email import SendEmail
from flowbus.actions.send_event import SendEvent
from flowbus.actions.set_variables import SetVariables
from flowbus.actions.task import Task
from flowbus.actions.webhook import Http, Webhook

ACTIONS: dict[str, ActionType] = {
    action.name: action
    for action in (
        SendEvent(),
        SetVariables(),
        Log(),
        LogMessage(),
        Webhook(),
        Http(),
        Task(),
        SendEmail(),
        SetField(),
        CreateRecord(),
    )
}


def check_action(name: str) -> None:
    """Refuse an unknown action name, listing the known ones."""
    if name not in ACTIONS:
        raise ValueError(f"action: unknown action {name!r} (known: {', '.join(sorted(ACTIONS))})")


def check_action_config(name: str, raw: Any) -> None:
    """Validate an action's config at load; values that are still templates are checked
    after rendering, when the step runs."""
    check_action(name)
    if not isinstance(raw, dict):
        raise ValueError("config: must be an object")
    try:
        ACTIONS[name].config_model.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(('config', *(str(p) for p in err['loc'])))}: {err['msg']}"
            for err in exc.errors()
            if not _templated(raw, err["loc"])
        ]
        if problems:
            raise ValueError("; ".join(problems)) from None


def _templated(raw: Any, loc: tuple[Any, ...]) -> bool:
    value = raw
    for part in loc:
        in_dict = isinstance(value, dict) and part in value
        in_list = isinstance(value, list) and isinstance(part, int) and part < len(value)
        if in_dict or in_list:
            value = value[part]
        else:
            return False
        if isinstance(value, str) and "{{" in value:
            return True
    return False
