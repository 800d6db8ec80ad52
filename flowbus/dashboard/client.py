"""The dashboard's way to the API: HTTP requests into the same process, carrying the signed-in
person's bearer token.

Every page reads and acts through the API's own routes, so it sees exactly what that token
may see, is refused exactly what the API refuses (roles, 409s for illegal transitions,
validation), and depends on the API's JSON contract only, never on its internals. The
requests go through an in-process ASGI transport: no socket, no second server.
"""

from __future__ import annotations

from typing import Any

import httpx
from starlette.types import ASGIApp

# The API answers a path it has no route for with this detail (flowbus.api.problems).
_NO_ROUTE = "no such resource:"


class ApiRefusal(Exception):
    """The API answered with an error: its status and problem detail."""

    def __init__(self, status: int, detail: str, problem: dict[str, Any], path: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.problem = problem
        self.path = path

    def __str__(self) -> str:
        return f"{self.status}: {self.detail}"

    @property
    def missing_route(self) -> bool:
        """The API does not serve this path at all (an endpoint this version lacks)."""
        return self.status in (404, 405) and self.detail.startswith(_NO_ROUTE)


class ApiClient:
    """One client per dashboard; each call names the token it acts with."""

    def __init__(self, app: ASGIApp) -> None:
        self._http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://flowbus.dashboard",
            timeout=30.0,
        )

    def as_person(self, token: str | None) -> Api:
        return Api(self._http, token)

    async def close(self) -> None:
        await self._http.aclose()


class Api:
    """The API, called as one person (or anonymously, when auth is off)."""

    def __init__(self, http: httpx.AsyncClient, token: str | None) -> None:
        self._http = http
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def get(self, path: str, params: Any = None) -> Any:
        return await self._call("GET", path, params=params)

    async def get_text(self, path: str) -> str:
        response = await self._http.get(path, headers=self._headers)
        _check(response, path)
        return response.text

    async def post(self, path: str, body: Any = None) -> Any:
        return await self._call("POST", path, json=body)

    async def patch(self, path: str, body: Any) -> Any:
        return await self._call("PATCH", path, json=body)

    async def optional(self, path: str, params: Any = None) -> Any | None:
        """GET that answers None for a resource that does not exist (404)."""
        try:
            return await self.get(path, params)
        except ApiRefusal as refusal:
            if refusal.status == 404 and not refusal.missing_route:
                return None
            raise

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._http.request(method, path, headers=self._headers, **kwargs)
        _check(response, path)
        return response.json() if response.content else None


def _check(response: httpx.Response, path: str) -> None:
    if response.status_code < 400:
        return
    try:
        problem = response.json()
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    detail = str(problem.get("detail") or response.reason_phrase)
    raise ApiRefusal(response.status_code, detail, problem, path)
