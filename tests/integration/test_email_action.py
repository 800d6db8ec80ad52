"""`send_email` on the real stack: a worker sends a step's mail to an SMTP server on
127.0.0.1 with the deployment's `[email]` settings (its password in no log line), and
the instance completes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP

from tests.integration.conftest import DeploymentFactory
from tests.unit.actions.test_email import MailServer

WELCOME = {
    "id": "welcome",
    "triggers": [{"topic": "orders", "type": "user.registered"}],
    "steps": [
        {
            "id": "send_welcome",
            "type": "action",
            "action": "send_email",
            "config": {
                "to": "{{ input.email }}",
                "subject": "Welcome, {{ input.name }}!",
                "body": "Welcome to our platform!",
            },
            "next": "log_success",
        },
        {
            "id": "log_success",
            "type": "action",
            "action": "log_message",
            "config": {"message": "Welcome email sent successfully", "level": "info"},
        },
    ],
}


@pytest.fixture
async def mail() -> AsyncIterator[MailServer]:
    server = MailServer()
    listening = await asyncio.get_running_loop().create_server(
        lambda: SMTP(
            server, hostname="mail.test", authenticator=server.authenticate, auth_require_tls=False
        ),
        "127.0.0.1",
        0,
    )
    server.port = listening.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listening.close()
        await listening.wait_closed()


async def test_a_workflow_mails_through_the_configured_server_and_completes(
    deploy: DeploymentFactory, mail: MailServer
) -> None:
    d = await deploy("email", [WELCOME])
    worker = await d.start_worker(
        extra_env={
            "FLOWBUS_EMAIL__USERNAME": "flows",
            "FLOWBUS_EMAIL__PASSWORD": "s3cret",
            "FLOWBUS_EMAIL__HOST": "127.0.0.1",
            "FLOWBUS_EMAIL__PORT": str(mail.port),
            "FLOWBUS_EMAIL__SECURITY": "none",
            "FLOWBUS_EMAIL__FROM_ADDRESS": "flows@example.com",
        }
    )

    await d.publish(
        d.topic("orders"), [{"type": "user.registered", "email": "ada@example.com", "name": "Ada"}]
    )
    events = await d.read_events(
        [d.settings.topics.instances, d.settings.topics.steps],
        until=lambda seen: any(e["type"] == "flowbus.instance.completed" for e in seen),
        timeout=60,
    )

    instance_id = events[0]["subject"]
    [got] = mail.received
    assert got.recipients == ["ada@example.com"]
    assert got.message["Subject"] == "Welcome, Ada!"
    assert got.message["Flowbus-Idempotency-Key"] == f"{instance_id}:send_welcome"
    sent: list[dict[str, Any]] = [
        e
        for e in events
        if e["type"] == "flowbus.step.completed" and e["data"]["stepId"] == "send_welcome"
    ]
    assert len(sent) == 1
    assert mail.logins == [("flows", "s3cret")]
    assert "s3cret" not in worker.log_text()
