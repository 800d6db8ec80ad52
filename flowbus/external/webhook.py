"""The HTTP call of the `webhook` (alias `http`) action, declared in
`flowbus.actions.webhook`.

Its output is `{"status", "headers", "body"}`, with `"bodyTruncated": true` when the body
was longer than `BODY_LIMIT` and cut, and `"bodyNotParsed": "<why>"` when a JSON response
is kept as text (invalid, nested deeper than `limits.max_depth`, or holding `\u0000`). A
failed call raises an `ActionFailed` subclass whose `to_error_info()` becomes the step's
error.
"""

from __future__ import annotations

import asyncio
import codecs
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx
import orjson
from pydantic import ValidationError

from flowbus import __version__
from flowbus.actions.base import ActionContext
from flowbus.actions.webhook import Http, Webhook, WebhookConfig
from flowbus.external.base import ActionConfigError, ActionExecutor, ActionFailed
from flowbus.limits import JsonLimits, LimitExceeded
from flowbus.storable import nul_path

__all__ = [
    "BODY_LIMIT",
    "ERROR_BODY_LIMIT",
    "ActionConfigError",
    "HttpConnectionError",
    "HttpExecutor",
    "HttpStatusError",
    "HttpTimeoutError",
    "WebhookExecutor",
]

BODY_LIMIT = 64 * 1024
"""Bytes of a response body kept in the step's output."""
ERROR_BODY_LIMIT = 4 * 1024
"""Bytes of a failed response's body kept in the error details."""

_OUTPUT_HEADERS = ("content-type", "location")


class HttpStatusError(ActionFailed):
    """The endpoint answered with a status that does not count as success."""

    error_type = "HttpError"


class HttpTimeoutError(ActionFailed):
    """No complete response within the configured timeout."""

    error_type = "TimeoutError"


class HttpConnectionError(ActionFailed):
    """The request could not be delivered or its response not read."""

    error_type = "ConnectionError"


class WebhookExecutor(ActionExecutor):
    """Sends the request `Webhook` describes, over one connection pool per executor."""

    action = Webhook

    def __init__(self) -> None:
        self._http: httpx.AsyncClient | None = None

    async def run(self, config: dict[str, Any], context: ActionContext) -> Any:
        cfg = _validated(config)
        try:
            url = httpx.URL(cfg.url)
        except httpx.InvalidURL:
            url = httpx.URL()
        if url.scheme not in ("http", "https") or not url.host:
            raise ActionConfigError("url: must be an http:// or https:// URL with a host")
        if cfg.query:
            url = url.copy_merge_params(cfg.query)
        where = f"{cfg.method} {url.copy_with(query=None, fragment=None, userinfo=b'')}"
        key = context.idempotency_key
        if cfg.idempotency_key == "attempt":
            key = f"{key}:attempt-{context.tries}"
        headers = httpx.Headers(
            {
                "User-Agent": f"flowbus/{__version__}",
                "Idempotency-Key": key,
                "Flowbus-Attempt": str(context.tries),
            }
        )
        headers.update(cfg.headers)
        request = self._client().build_request(
            cfg.method, url, headers=headers, json=cfg.body, timeout=cfg.timeout
        )
        try:
            async with asyncio.timeout(cfg.timeout):
                response, content = await self._send(request)
        except (httpx.TimeoutException, TimeoutError):
            raise HttpTimeoutError(f"{where}: no response within {cfg.timeout:g}s") from None
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise HttpConnectionError(f"{where}: {reason}") from None

        expected = cfg.expect_status
        succeeded = response.status_code in expected if expected else response.is_success
        if not succeeded:
            wanted = ", ".join(map(str, expected)) if expected else "2xx"
            raise HttpStatusError(
                f"{where} answered {response.status_code}, expected {wanted}",
                code=str(response.status_code),
                details={
                    "status": response.status_code,
                    **_text_body(response, content, ERROR_BODY_LIMIT),
                },
            )
        return {
            "status": response.status_code,
            "headers": {
                name: response.headers[name] for name in _OUTPUT_HEADERS if name in response.headers
            },
            **_body(response, content, JsonLimits(BODY_LIMIT, context.max_json_depth)),
        }

    async def aclose(self) -> None:
        """Close the pooled connections; the next call opens new ones."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            # One pool shared by every workflow instance: keep no cookies between them.
            no_cookies = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
            self._http = httpx.AsyncClient(cookies=no_cookies)
        return self._http

    async def _send(self, request: httpx.Request) -> tuple[httpx.Response, bytes]:
        """Send and read the body up to one byte past `BODY_LIMIT`, to tell it was cut."""
        response = await self._client().send(request, stream=True)
        content = bytearray()
        try:
            async for chunk in response.aiter_bytes():
                content += chunk
                if len(content) > BODY_LIMIT:
                    break
        finally:
            await response.aclose()
        return response, bytes(content[: BODY_LIMIT + 1])


class HttpExecutor(WebhookExecutor):
    """`http`: the same call as `webhook` under another name."""

    action = Http


def _validated(config: dict[str, Any]) -> WebhookConfig:
    try:
        return WebhookConfig.model_validate(config)
    except ValidationError as exc:
        # Only locations and messages: input values may hold secrets (header values).
        raise ActionConfigError(
            "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
                for err in exc.errors()
            )
        ) from None


def _text_body(response: httpx.Response, content: bytes, limit: int) -> dict[str, Any]:
    """`{"body": text}` of at most `limit` bytes, cut on a character boundary and marked.

    NUL becomes U+FFFD: PostgreSQL cannot store it, and the output must be storable.
    """
    decoder = codecs.getincrementaldecoder(response.encoding or "utf-8")(errors="replace")
    cut = len(content) > limit
    # Not final when cut: a character whose bytes run past the limit is left out whole.
    text = decoder.decode(content[:limit], final=not cut).replace("\x00", "\ufffd")
    return {"body": text, "bodyTruncated": True} if cut else {"body": text}


def _body(response: httpx.Response, content: bytes, limits: JsonLimits) -> dict[str, Any]:
    """Parsed JSON for a complete JSON response within `limits`, else the text."""
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    is_json = media_type == "application/json" or media_type.endswith("+json")
    if not is_json or len(content) > BODY_LIMIT:
        return _text_body(response, content, BODY_LIMIT)
    try:
        value = limits.loads(content, "the JSON body")
    except LimitExceeded as exc:
        reason = str(exc)
    except orjson.JSONDecodeError as exc:
        reason = f"the JSON body is not valid JSON: {exc}"
    else:
        # JSON carries NUL only escaped: the walk runs only when the escape is there.
        unstorable = nul_path(value) if b"\\u0000" in content else None
        if unstorable is None:
            return {"body": value}
        reason = f"the JSON body holds \\u0000 at {unstorable}, which cannot be stored"
    return {**_text_body(response, content, BODY_LIMIT), "bodyNotParsed": reason}
