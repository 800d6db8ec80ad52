"""A real HTTP server for webhook tests, with scripted answers and a record of calls."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from flowbus.devstack.ports import free_port


@dataclass
class Call:
    path: str
    query: dict[str, str]
    idempotency_key: str | None
    body: Any


@dataclass
class HookServer:
    """`/ok` answers 200; `/flaky?fails=N&id=X` answers 503 for the first N calls per id;
    `/fail?status=S` always answers S; `/hang?seconds=N` answers after N seconds (or after
    `hang_seconds`, when set)."""

    port: int = 0
    hang_seconds: float | None = None
    calls: list[Call] = field(default_factory=list)
    _counts: Counter[str] = field(default_factory=Counter)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{name}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def calls_to(self, path: str, **query: str) -> list[Call]:
        return [
            c
            for c in self.calls
            if c.path == path and all(c.query.get(k) == v for k, v in query.items())
        ]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        body = await request.json() if request.can_read_body else None
        self.calls.append(
            Call(name, dict(request.query), request.headers.get("Idempotency-Key"), body)
        )
        if name == "flaky":
            ident = request.query.get("id", "")
            self._counts[ident] += 1
            if self._counts[ident] <= int(request.query.get("fails", "1")):
                return web.json_response({"error": "busy"}, status=503)
            return web.json_response({"ok": True, "calls": self._counts[ident]})
        if name == "fail":
            return web.json_response(
                {"error": "no"}, status=int(request.query.get("status", "500"))
            )
        if name == "hang":
            seconds = self.hang_seconds
            await asyncio.sleep(
                seconds if seconds is not None else float(request.query.get("seconds", "60"))
            )
        return web.json_response({"ok": True, "echo": body})
