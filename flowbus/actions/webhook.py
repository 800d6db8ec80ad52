"""`webhook` (alias `http`): call an HTTP endpoint from a workflow step.

An external action: the shell runs it outside any database transaction. Its output is
`{"status", "headers", "body"}`, with `"bodyTruncated": true` when the body was longer
than `BODY_LIMIT` and cut, and `"bodyNotParsed": "<why>"` when a JSON response is kept as
text (invalid, nested deeper than `limits.max_depth`, or holding `\u0000`). A failed call
raises an `ActionFailed` subclass whose `to_error_info()` becomes the step's error.
"""

from __future__ import annotations

import asyncio
import codecs
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Annotated, Any, ClassVar, Literal

import httpx
import orjson
from pydantic import ConfigDict, Field, ValidationError, field_validator

from flowbus import __version__
from flowbus.actions.base import ActionConfig, ActionContext, ActionType
from flowbus.engine.state import ErrorInfo
from flowbus.limits import JsonLimits, LimitExceeded
from flowbus.storable import nul_path

BODY_LIMIT = 64 * 1024
"""Bytes of a response body kept in the step's output."""
ERROR_BODY_LIMIT = 4 * 1024
"""Bytes of a failed response's body kept in the error details."""

_OUTPUT_HEADERS = ("content-type", "location")

QueryValue = str | int | float | bool
StatusCode = Annotated[int, Field(ge=100, le=599)]


class WebhookConfig(ActionConfig):
    """Settings of one HTTP call. Strings may hold `{{ path }}` templates."""

    model_config = ConfigDict(populate_by_name=True)

    url: str = Field(
        description="http:// or https:// URL. It may start with a placeholder, in which "
        "case the scheme is checked once the placeholder is rendered."
    )
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Request headers; an `Idempotency-Key` here replaces the engine's.",
    )
    body: Any = Field(None, description="Sent as JSON; null or absent sends no body.")
    query: dict[str, QueryValue | list[QueryValue]] | None = Field(
        None, description="Query parameters, merged over those already in the URL."
    )
    timeout: float = Field(10.0, gt=0, le=300, description="Seconds for the whole call.")
    expect_status: list[StatusCode] | None = Field(
        None,
        alias="expectStatus",
        min_length=1,
        description="Statuses that count as success; any 2xx when absent.",
    )
    idempotency_key: Literal["step", "attempt"] = Field(
        "step",
        alias="idempotencyKey",
        description="`step`: one `Idempotency-Key` for the step execution, the same on every "
        "retry, so the endpoint recognises a retry of work it already did. `attempt`: a new "
        "key on every retry (`<step key>:attempt-<n>`), for endpoints that must redo the work. "
        "Either way `Flowbus-Attempt` carries the attempt number.",
    )

    @field_validator("method", mode="before")
    @classmethod
    def _upper_case_method(cls, method: Any) -> Any:
        return method.upper() if isinstance(method, str) else method

    @field_validator("url")
    @classmethod
    def _http_or_https(cls, url: str) -> str:
        if not url.startswith("{{") and not url.lower().startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return url


class ActionFailed(Exception):
    """An external action failed in a way the workflow may route on (`onError`, retry)."""

    error_type: ClassVar[str] = "ActionFailed"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details

    def to_error_info(self, step_id: str | None = None) -> ErrorInfo:
        """The step error this failure records."""
        return ErrorInfo(
            type=self.error_type,
            message=self.message,
            code=self.code,
            step_id=step_id,
            details=self.details,
        )


class ActionConfigError(ActionFailed):
    """The rendered config is not valid (a template produced a wrong value)."""

    error_type = "ActionConfigError"


class HttpStatusError(ActionFailed):
    """The endpoint answered with a status that does not count as success."""

    error_type = "HttpError"


class HttpTimeoutError(ActionFailed):
    """No complete response within the configured timeout."""

    error_type = "TimeoutError"


class HttpConnectionError(ActionFailed):
    """The request could not be delivered or its response not read."""

    error_type = "ConnectionError"


class Webhook(ActionType):
    """Send one HTTP request with a JSON body; the response becomes the step's output.

    Every request carries `Idempotency-Key`: by default the step execution's key, the
    same on every retry and rerun, so the endpoint recognises work it already did; with
    `idempotencyKey: attempt`, one key per attempt. `Flowbus-Attempt` carries the attempt
    number (1, 2, 3 on retries; a rerun after a lost worker repeats it). A key set in the
    config's `headers` replaces the engine's. Redirects are not followed and cookies are
    not kept.
    """

    name = "webhook"
    config_model = WebhookConfig
    inline = False

    def __init__(self) -> None:
        self._http: httpx.AsyncClient | None = None

    async def execute(self, config: dict[str, Any], context: ActionContext) -> Any:
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


class Http(Webhook):
    """`http`: the same action as `webhook` under another name."""

    name = "http"


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
