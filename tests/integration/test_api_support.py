"""Shared by the API tests: a real `flowbus api` process for a test deployment, tokens,
problem assertions, Server-Sent Events and topic offsets."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from flowbus.devstack.ports import free_port
from tests.support.stack import REPO, Deployment

SECRET = "api-tests-shared-secret-of-enough-bytes"
ISSUER = "https://login.test/"
AUDIENCE = "flowbus-api"


def token(
    *roles: str,
    secret: str = SECRET,
    expires_in: float = 300,
    subject: str = "ada",
    **claims: Any,
) -> str:
    """A signed bearer token for the test API."""
    now = int(time.time())
    payload = {
        "sub": subject,
        "roles": list(roles),
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + int(expires_in),
        **claims,
    }
    return jwt.encode(payload, secret, algorithm="HS256")


def bearer(*roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(*roles)}"}


AUTH_ENV = {
    "FLOWBUS_API__AUTH__SECRET": SECRET,
    "FLOWBUS_API__AUTH__ISSUER": ISSUER,
    "FLOWBUS_API__AUTH__AUDIENCE": AUDIENCE,
}


@dataclass
class ApiServer:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


async def start_api(
    deployment: Deployment,
    env: dict[str, str],
    timeout: float = 30,
    health_headers: dict[str, str] | None = None,
) -> ApiServer:
    """`python -m flowbus api` with the deployment's settings and `env`, once /healthz answers."""
    port = free_port()
    log_path = deployment.work / f"api-{port}.log"
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "flowbus", "api"],
            cwd=REPO,
            env={**deployment.env(), "FLOWBUS_API__PORT": str(port), **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = ApiServer(process, port, log_path)
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=server.url) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"flowbus api exited:\n{server.log_text()[-4000:]}")
            try:
                if (await client.get("/healthz", headers=health_headers)).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    server.stop()
    raise AssertionError(f"flowbus api not up after {timeout}s:\n{server.log_text()[-4000:]}")


class InstancesOverApi:
    """Reading instances through the API, for a test's world holding an API `client`."""

    client: httpx.AsyncClient

    async def instance(self, instance_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/v1/instances/{instance_id}", headers=bearer("viewer"))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def wait_for(
        self, instance_id: str, check: Callable[[dict[str, Any]], bool], timeout: float = 20
    ) -> dict[str, Any]:
        """Poll the API until the instance (as GET returns it) passes `check`."""
        deadline = time.monotonic() + timeout
        body: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            response = await self.client.get(
                f"/v1/instances/{instance_id}", headers=bearer("viewer")
            )
            if response.status_code == 200:
                body = response.json()
                if check(body):
                    return body
            await asyncio.sleep(0.1)
        raise AssertionError(f"instance {instance_id} never got there; last seen: {body}")

    async def wait_status(self, instance_id: str, *statuses: str) -> dict[str, Any]:
        return await self.wait_for(instance_id, lambda i: i["status"] in statuses)


def problem(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    """Assert `response` is an RFC 9457 problem of this status and kind; return its body."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"] == f"https://flowbus.dev/problems/{kind}", body
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return body


@dataclass
class Sse:
    event: str | None
    id: str | None
    data: dict[str, Any]


async def sse_events(response: httpx.Response) -> AsyncIterator[Sse]:
    """Parse a `text/event-stream` response into events (comments are skipped)."""
    fields: dict[str, list[str]] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in fields:
                yield Sse(
                    event=(fields.get("event") or [None])[0],
                    id=(fields.get("id") or [None])[0],
                    data=orjson.loads("\n".join(fields["data"])),
                )
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields.setdefault(name, []).append(value.removeprefix(" "))


async def end_offsets(deployment: Deployment, *topics: str) -> dict[tuple[str, int], int]:
    """The next offset of every partition of `topics`: equal before and after means nothing
    was published."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=deployment.settings.broker_url, enable_auto_commit=False
    )
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        partitions = [
            TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()
        ]
        ends = await consumer.end_offsets(partitions)
        return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()
