"""`flowbus approvals list|decide`: pending approvals, and signed decisions for operators."""

from __future__ import annotations

from typing import Any

import click
import orjson

from flowbus.approvals.tokens import TokenRefused, sign_decision
from flowbus.cli.common import fail, run, settings_for_cli
from flowbus.store.approvals import pending_approvals
from flowbus.store.database import create_engine


@click.group()
def approvals() -> None:
    """Pending approvals and decisions."""


@approvals.command("list")
@click.option("--assignee", help="user:<name>, group:<name>, or a bare user name.")
@click.option("--workflow", help="Only this workflow's approvals.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def list_approvals(assignee: str | None, workflow: str | None, as_json: bool) -> None:
    """Pending approvals, oldest first."""
    settings = settings_for_cli()

    async def load() -> list[dict[str, Any]]:
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            async with engine.connect() as conn:
                return await pending_approvals(conn, assignee=assignee, workflow_id=workflow)
        finally:
            await engine.dispose()

    for item in run(load()):
        if as_json:
            click.echo(orjson.dumps(item).decode())
        else:
            click.echo(
                f"{item['approvalId']}  {item['workflowId']}/{item['stepId']}  "
                f"assignees={','.join(item['assignees'])}  quorum={item['quorum']}  "
                f"deadline={item['deadline'] or '-'}"
            )


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
