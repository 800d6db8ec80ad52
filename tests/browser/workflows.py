"""The workflows the browser tests run, besides the shipped examples of config/workflows/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]


def examples() -> list[dict[str, Any]]:
    """The shipped examples: what a newcomer sees after `make dev`."""
    return [
        yaml.safe_load(path.read_text())
        for path in sorted((REPO / "config" / "workflows").glob("*.yaml"))
    ]


def log(step_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "type": "action",
        "action": "log",
        "config": {"message": step_id},
        **extra,
    }


def parked(step_id: str, next_step: str) -> dict[str, Any]:
    """A step that waits for a `payments` event about the input's orderId."""
    return {
        "id": step_id,
        "type": "wait",
        "event": {"topic": "payments", "match": "data.orderId", "key": "{{ input.orderId }}"},
        "next": next_step,
    }


ORDER_INPUT = {
    "type": "object",
    "required": ["orderId"],
    "properties": {
        "orderId": {"type": "string", "description": "The order's id."},
        "amount": {"type": "number", "minimum": 0},
        "express": {"type": "boolean"},
    },
}

QUICK = {
    "id": "quick-order",
    "name": "Quick order",
    "description": "Three steps, done in a blink.",
    "triggers": [{"topic": "orders", "type": "quick.created", "correlation": "data.orderId"}],
    "inputSchema": ORDER_INPUT,
    "steps": [
        {
            "id": "note",
            "type": "action",
            "action": "set_variables",
            "config": {"seen": "{{ input.orderId }}"},
            "next": "check",
        },
        log("check", next="done"),
        log("done"),
    ],
}

HANG_SECONDS = 6


def progress() -> dict[str, Any]:
    """Seed 004's uiComponents example, verbatim, on a workflow whose middle step (a timer
    of a few seconds) keeps it in flight for a while: `running` in seed 004's words."""
    return {
        "id": "ui-progress",
        "name": "Order with progress views",
        "inputSchema": ORDER_INPUT,
        "uiComponents": [
            {
                "componentId": "workflow-progress",
                "condition": "status == 'running'",
                "priority": 1,
                "context": {"title": "Current Progress", "layout": "timeline"},
            },
            {
                "componentId": "workflow-summary",
                "condition": "status == 'completed'",
                "priority": 1,
                "context": {"title": "Workflow Summary", "layout": "card"},
            },
            {
                "componentId": "error-view",
                "condition": "status == 'failed'",
                "priority": 2,
                "context": {"title": "Error Details", "layout": "alert"},
            },
        ],
        "steps": [
            {
                "id": "prepare",
                "type": "action",
                "action": "set_variables",
                "config": {"orderId": "{{ input.orderId }}"},
                "next": "pack",
            },
            {"id": "pack", "type": "wait", "duration": f"PT{HANG_SECONDS}S", "next": "ship"},
            log("ship"),
        ],
        "output": {"orderId": "{{ variables.orderId }}", "packed": "yes"},
    }


SAGA = {
    "id": "saga-order",
    "name": "Order with compensation",
    "inputSchema": ORDER_INPUT,
    "steps": [
        {
            "id": "reserve",
            "type": "action",
            "action": "set_variables",
            "config": {"reserved": True},
            "compensate": {"action": "log", "config": {"message": "reservation released"}},
            "next": "await-payment",
        },
        parked("await-payment", "finish"),
        log("finish"),
    ],
}

EXPENSE = {
    "id": "expense-approval",
    "name": "Expense approval",
    "triggers": [{"topic": "orders", "type": "expense.submitted"}],
    "inputSchema": {"type": "object", "required": ["orderId", "amount"]},
    "steps": [
        {
            "id": "manager-approval",
            "type": "approval",
            "assignees": ["user:grace", "group:finance"],
            "quorum": "any",
            "deadline": "PT1H",
            "summary": {"expense": "{{ input.orderId }}", "amount": "{{ input.amount }}"},
            "onReject": "refused",
            "next": "pay",
        },
        log("pay"),
        log("refused"),
    ],
}

LATE = {
    "id": "late-workflow",
    "name": "Stored after its first start command",
    "steps": [log("only")],
}


def definitions() -> list[dict[str, Any]]:
    return [*examples(), QUICK, progress(), SAGA, EXPENSE]
