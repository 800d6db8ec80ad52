"""`flowbus approvals list|decide`: the inbox through the API; decisions signed here.

`decide` stays local on purpose: a decision is a token signed with the decider's key and
published to the decisions topic, so it needs the key and the broker, not the API.
"""

from __future__ import annotations

from typing import Any

import click
import orjson

from flowbus.approvals.tokens import TokenRefused, sign_decision
from flowbus.cli.api_client import ApiClient
from flowbus.cli.api_command import api_command, print_json, table
from flowbus.cli.common import fail, run, settings_for_cli

_STATUSES = ["pending", "approved", "rejected", "expired", "cancelled"]


@click.group()
def approvals() -> None:
    """Pending approvals and decisions."""


@approvals.command("list")
@click.option("--assignee", help="user:<name>, group:<name>, or a bare user name.")
@click.option("--workflow", help="Only this workflow's approvals.")
@click.option("--status", type=click.Choice(_STATUSES), default="pending", show_default=True)
@click.option("--limit", type=click.IntRange(1, 500), default=100, show_default=True)
@api_command
def list_approvals(
    api: ApiClient,
    as_json: bool,
    assignee: str | None,
    workflow: str | None,
    status: str,
    limit: int,
) -> None:
    """Approvals, oldest first (--json: one JSON array)."""
    params: dict[str, Any] = {"status": status, "limit": limit}
    if assignee is not None:
        params["assignee"] = assignee
    if workflow is not None:
        params["workflowId"] = workflow
    items = api.json("GET", "/v1/approvals", params=params)["items"]
    if as_json:
        print_json(items)
        return
    rows = [
        (
            a["approvalId"],
            f"{a['workflowId']}/{a['stepId']}",
            ",".join(a["assignees"]),
            a["quorum"],
            a["deadline"],
        )
        for a in items
    ]
    table(rows, ["APPROVAL", "STEP", "ASSIGNEES", "QUORUM", "DEADLINE"])


@approvals.command()
@click.argument("approval_id")
@click.argument("decision", type=click.Choice(["approve", "reject"]))
@click.option("--as", "user", required=True, help="Who decides (the token's sub).")
@click.option("--group", "groups", multiple=True, help="A group of the decider (repeatable).")
@click.option("--comment")
def decide(
    approval_id: str, decision: str, user: str, groups: tuple[str, ...], comment: str | None
) -> None:
    """Sign a decision with the configured key and publish it to the decisions topic."""
    from flowbus.cli.kafka import publish_bytes

    settings = settings_for_cli()
    try:
        token = sign_decision(
            settings.approvals,
            approval_id=approval_id,
            decision=decision,
            user=user,
            groups=list(groups),
        )
    except TokenRefused as exc:
        raise fail(str(exc)) from None
    body: dict[str, Any] = {"approvalId": approval_id, "decision": decision, "token": token}
    if comment:
        body["comment"] = comment
    topic = settings.topics.decisions
    partition, offset = run(
        publish_bytes(settings.broker_url, topic, approval_id, orjson.dumps(body))
    )
    click.echo(f"{decision} by {user} published to {topic}[{partition}] at offset {offset}")
