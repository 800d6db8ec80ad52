"""`webhook` (alias `http`): call an HTTP endpoint from a workflow step.

An external action: the engine asks the shell to run it, outside any database
transaction (`flowbus.external.webhook` makes the call). Its output is
`{"status", "headers", "body"}`; a failed call becomes the step's error.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator

from flowbus.actions.base import ActionConfig, ActionType

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


class Http(Webhook):
    """`http`: the same action as `webhook` under another name."""

    name = "http"
