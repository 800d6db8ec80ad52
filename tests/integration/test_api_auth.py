"""Bearer JWTs and roles on the real API process: a missing, forged, expired or foreign
token is a 401, a token without the role a 403, both as problem documents, and a refused
request changes nothing (no record on any topic, no row)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
import pytest_asyncio

from tests.integration.test_api_support import (
    AUDIENCE,
    AUTH_ENV,
    ISSUER,
    SECRET,
    ApiServer,
    end_offsets,
    problem,
    start_api,
    token,
)
from tests.support.stack import REPO, Deployment, Stack

DEFINITION = {
    "id": "auth-orders",
    "triggers": [{"topic": "orders", "type": "order.created"}],
    "steps": [{"id": "note", "type": "action", "action": "log", "config": {"message": "hi"}}],
}


@dataclass
class Guarded:
    d: Deployment
    api: ApiServer
    client: httpx.AsyncClient


@pytest_asyncio.fixture(scope="module")
async def guarded(stack: Stack) -> AsyncIterator[Guarded]:
    deployment = await stack.deployment("auth", [DEFINITION])
    api = await start_api(deployment, AUTH_ENV)
    client = httpx.AsyncClient(base_url=api.url, timeout=10)
    try:
        yield Guarded(deployment, api, client)
    finally:
        await client.aclose()
        api.stop()


def writes(d: Deployment) -> list[tuple[str, str, dict[str, Any] | None]]:
    """A request for every kind of write, each needing operator or admin."""
    instance = "6f1c2d8e-4b5a-4c3d-9e8f-7a6b5c4d3e2f"
    return [
        ("POST", "/v1/instances", {"workflowId": "auth-orders", "input": {}}),
        ("POST", f"/v1/instances/{instance}/cancel", {}),
        ("POST", f"/v1/events/{d.topic('orders')}", {"type": "order.created"}),
        ("POST", "/v1/workflows/auth-orders/events", {"type": "order.created"}),
        ("POST", "/v1/definitions", {**DEFINITION, "name": "changed"}),
        ("PATCH", "/v1/definitions/auth-orders/versions/1", {"deprecated": True}),
        ("DELETE", "/v1/definitions/auth-orders", None),
    ]


async def snapshot(d: Deployment) -> tuple[Any, ...]:
    topics = d.settings.topics
    offsets = await end_offsets(d, topics.commands, d.topic("orders"))
    definitions = await d.fetch(
        "SELECT workflow_id, version, deprecated FROM workflow_definitions ORDER BY 1, 2"
    )
    instances = await d.fetch("SELECT count(*) AS n FROM instances")
    return offsets, [tuple(r) for r in definitions], instances[0]["n"]


async def test_a_request_without_a_token_is_401_with_a_bearer_challenge(
    guarded: Guarded,
) -> None:
    before = await snapshot(guarded.d)

    for method, path, body in [("GET", "/v1/definitions", None), *writes(guarded.d)]:
        response = await guarded.client.request(method, path, json=body)
        detail = problem(response, 401, "unauthorized")["detail"]
        assert "needs a bearer token" in detail
        assert response.headers["www-authenticate"] == "Bearer"

    assert await snapshot(guarded.d) == before


@pytest.mark.parametrize(
    ("bad_token", "reason"),
    [
        (token("admin", secret="some-other-secret-that-is-long-enough"), "Signature"),
        (token("admin", expires_in=-60), "expired"),
        (token("admin", iss="https://login.elsewhere/"), "issuer"),
        (token("admin", aud="another-service"), "Audience"),
        ("not-a-jwt", "not valid"),
    ],
    ids=["bad-signature", "expired", "wrong-issuer", "wrong-audience", "garbage"],
)
async def test_a_token_that_does_not_verify_is_401_and_changes_nothing(
    guarded: Guarded, bad_token: str, reason: str
) -> None:
    before = await snapshot(guarded.d)
    headers = {"Authorization": f"Bearer {bad_token}"}

    for method, path, body in writes(guarded.d):
        response = await guarded.client.request(method, path, json=body, headers=headers)
        assert reason in problem(response, 401, "unauthorized")["detail"]
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'

    assert await snapshot(guarded.d) == before


async def test_a_token_without_an_expiry_is_refused(guarded: Guarded) -> None:
    claims = {"sub": "ada", "roles": ["admin"], "iss": ISSUER, "aud": AUDIENCE}
    forever = jwt.encode(claims, SECRET, algorithm="HS256")

    response = await guarded.client.get(
        "/v1/definitions", headers={"Authorization": f"Bearer {forever}"}
    )

    assert '"exp"' in problem(response, 401, "unauthorized")["detail"]


@pytest.mark.parametrize(
    ("roles", "method", "path", "body", "needed"),
    [
        (("viewer",), "POST", "/v1/instances", {"workflowId": "auth-orders"}, "operator"),
        (("viewer",), "POST", "/v1/workflows/auth-orders/events", {}, "operator"),
        (("operator",), "POST", "/v1/definitions", {**DEFINITION, "name": "x"}, "admin"),
        (
            ("operator",),
            "PATCH",
            "/v1/definitions/auth-orders/versions/1",
            {"deprecated": True},
            "admin",
        ),
        (("operator",), "DELETE", "/v1/definitions/auth-orders", None, "admin"),
        (("auditor",), "GET", "/v1/definitions", None, "viewer"),
        ((), "GET", "/v1/instances", None, "viewer"),
    ],
)
async def test_a_token_without_the_operations_role_is_403_and_changes_nothing(
    guarded: Guarded,
    roles: tuple[str, ...],
    method: str,
    path: str,
    body: dict[str, Any] | None,
    needed: str,
) -> None:
    before = await snapshot(guarded.d)

    response = await guarded.client.request(
        method, path, json=body, headers={"Authorization": f"Bearer {token(*roles)}"}
    )

    detail = problem(response, 403, "forbidden")["detail"]
    assert f"needs the {needed} role" in detail
    assert await snapshot(guarded.d) == before


@pytest.mark.parametrize(
    ("role", "method", "path"),
    [
        ("viewer", "GET", "/v1/definitions/auth-orders"),
        ("operator", "GET", "/v1/instances"),
        ("admin", "GET", "/v1/definitions/auth-orders/mermaid"),
    ],
)
async def test_higher_roles_include_the_lower_ones(
    guarded: Guarded, role: str, method: str, path: str
) -> None:
    response = await guarded.client.request(
        method, path, headers={"Authorization": f"Bearer {token(role)}"}
    )

    assert response.status_code == 200


async def test_an_operator_token_is_let_through_to_publish(guarded: Guarded) -> None:
    response = await guarded.client.post(
        "/v1/instances",
        json={"workflowId": "auth-orders", "input": {}},
        headers={"Authorization": f"Bearer {token('operator')}"},
    )

    assert response.status_code == 202
    command_id = response.json()["commandId"]
    events = await guarded.d.read_events(
        [guarded.d.settings.topics.commands],
        until=lambda es: any(e["id"] == command_id for e in es),
    )
    assert next(e for e in events if e["id"] == command_id)["type"] == "flowbus.command.start"


async def test_health_and_metrics_are_open_by_default(guarded: Guarded) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert (await guarded.client.get(path)).status_code == 200, path


async def test_health_and_metrics_can_require_a_viewer_token(guarded: Guarded) -> None:
    protected = await start_api(
        guarded.d,
        {
            **AUTH_ENV,
            "FLOWBUS_API__AUTH__PROTECT_HEALTH": "true",
            "FLOWBUS_API__AUTH__PROTECT_METRICS": "true",
        },
        health_headers={"Authorization": f"Bearer {token('viewer')}"},
    )
    try:
        async with httpx.AsyncClient(base_url=protected.url) as client:
            for path in ("/healthz", "/readyz", "/metrics"):
                problem(await client.get(path), 401, "unauthorized")
                allowed = await client.get(
                    path, headers={"Authorization": f"Bearer {token('viewer')}"}
                )
                assert allowed.status_code == 200, path
    finally:
        protected.stop()


def test_the_api_refuses_to_start_with_a_secret_too_short_for_hs256(guarded: Guarded) -> None:
    began = time.monotonic()
    finished = subprocess.run(
        [sys.executable, "-m", "flowbus", "api"],
        cwd=REPO,
        env={**guarded.d.env(), "FLOWBUS_API__AUTH__SECRET": "short"},
        capture_output=True,
        timeout=60,
        check=False,
    )

    assert finished.returncode != 0
    assert "api.auth.secret has 5 bytes; HS256 needs 32 or more" in finished.stderr.decode()
    assert time.monotonic() - began < 30
