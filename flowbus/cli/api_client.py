"""A small synchronous client of the flowbus HTTP API, for the operations commands."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

TOKEN_VARIABLE = "FLOWBUS_API_TOKEN"
URL_VARIABLE = "FLOWBUS_API_URL"
DEFAULT_URL = "http://127.0.0.1:8080"


@dataclass
class ApiError(Exception):
    """An error answer of the API (its problem document), or no answer at all."""

    status: int | None
    title: str
    detail: str
    errors: list[dict[str, Any]] = field(default_factory=list)

    def __str__(self) -> str:
        head = f"{self.status} {self.title}: " if self.status else ""
        lines = [head + self.detail]
        for item in self.errors:
            where = item.get("pointer") or item.get("parameter") or ""
            if item.get("stepId"):
                where = f"step {item['stepId']!r}" + (
                    f" {item['field']}" if item.get("field") else ""
                )
            lines.append(f"  - {where + ': ' if where else ''}{item.get('detail')}")
        return "\n".join(lines)


@dataclass
class StreamedEvent:
    event: str | None
    id: str | None
    data: Any


class ApiClient:
    """Calls one deployment's API with an optional bearer token."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 30) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        content_type: str | None = None,
        params: Any = None,
    ) -> httpx.Response:
        """Send a request; raise `ApiError` unless it succeeded."""
        headers = {"Content-Type": content_type} if content_type else None
        try:
            response = self._http.request(
                method, path, json=json, content=content, params=params, headers=headers
            )
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        if response.is_error:
            raise _error(response)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.call(method, path, **kwargs).json()

    def stream(self, path: str, params: Any = None) -> Iterator[StreamedEvent]:
        """The Server-Sent Events of `path`, until the server ends the stream."""
        try:
            with self._http.stream("GET", path, params=params, timeout=None) as response:
                if response.is_error:
                    response.read()
                    raise _error(response)
                fields: dict[str, list[str]] = {}
                for line in response.iter_lines():
                    if line == "":
                        if "data" in fields:
                            yield StreamedEvent(
                                event=_first(fields, "event"),
                                id=_first(fields, "id"),
                                data=orjson.loads("\n".join(fields["data"])),
                            )
                        fields = {}
                    elif not line.startswith(":"):
                        name, _, value = line.partition(":")
                        fields.setdefault(name, []).append(value.removeprefix(" "))
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None

    def _unreachable(self, exc: httpx.TransportError) -> ApiError:
        """One line saying which address failed and which setting names it."""
        url = str(self._http.base_url).rstrip("/")
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, httpx.TimeoutException):
            what = f"the flowbus API at {url} did not answer in time ({reason})"
        else:
            what = f"cannot reach the flowbus API at {url} ({reason})"
        return ApiError(
            None, "Unreachable", f"{what}: set --api-url or {URL_VARIABLE} to where it runs"
        )


def _first(fields: dict[str, list[str]], name: str) -> str | None:
    values = fields.get(name)
    return values[0] if values else None


def _error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return ApiError(response.status_code, response.reason_phrase, response.text[:500])
    return ApiError(
        response.status_code,
        str(body.get("title", response.reason_phrase)),
        str(body.get("detail", "")),
        [e for e in body.get("errors") or [] if isinstance(e, dict)],
    )
