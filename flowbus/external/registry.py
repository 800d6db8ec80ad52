"""The executor registry: external `action:` name -> what runs it. Register one here,
next to its declaration in `flowbus.actions.registry`."""

from __future__ import annotations

from flowbus.external.base import ActionExecutor
from flowbus.external.email import EmailExecutor
from flowbus.external.webhook import HttpExecutor, WebhookExecutor

EXECUTORS: dict[str, ActionExecutor] = {
    executor.action.name: executor
    for executor in (WebhookExecutor(), HttpExecutor(), EmailExecutor())
}
