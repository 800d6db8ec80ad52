"""`send_email`: send one mail through the deployment's SMTP server (`[email]` settings).

An external action like `webhook`: the engine asks the shell to run it outside any
database transaction (`flowbus.external.email` sends it). Addresses, subject and bodies
may hold `{{ path }}` templates, rendered when the step runs. Its output is
`{"messageId", "accepted", "refused"}`; a failed send becomes the step's error.
"""

from __future__ import annotations

from email.utils import getaddresses, parseaddr
from typing import Any, Self

from pydantic import ConfigDict, Field, field_validator, model_validator

from flowbus.actions.base import ActionConfig, ActionType

MAX_RECIPIENTS = 100
"""Most addresses of one mail, To, Cc and Bcc together."""
MAX_BODY_CHARS = 1_000_000
"""Longest text or HTML body."""
MAX_ADDRESS_LIST_CHARS = 32_000
"""Longest string of comma-separated addresses."""


def _address_list(value: Any) -> Any:
    """A string may list several addresses, separated by commas; a list holds one each."""
    if isinstance(value, str) and len(value) > MAX_ADDRESS_LIST_CHARS:
        raise ValueError(f"longer than {MAX_ADDRESS_LIST_CHARS} characters")
    if isinstance(value, str):
        return [value] if "{{" in value else _split(value)
    return value


def _split(value: str) -> list[str]:
    # Commas inside a quoted display name ("Doe, Jane" <jane@example.com>) do not split.
    parts, current, quoted = [], "", False
    for char in value:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part.strip() for part in parts if part.strip()]


def _check_address(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError("an address may not hold a line break")
    parsed = getaddresses([value])
    address = parseaddr(value)[1]
    if len(parsed) != 1 or "@" not in address or " " in address or address.startswith("@"):
        raise ValueError(f"{value[:200]!r} is not an email address")
    return value


class SendEmailConfig(ActionConfig):
    """One mail. Strings may hold `{{ path }}` templates."""

    model_config = ConfigDict(populate_by_name=True)

    to: list[str] = Field(
        min_length=1, description="Recipients: a list, or one string of comma-separated ones."
    )
    cc: list[str] = Field(default_factory=list)
    bcc: list[str] = Field(default_factory=list, description="Sent to, never shown.")
    from_: str | None = Field(
        None, alias="from", description="Sender; `email.from_address` by default."
    )
    reply_to: str | None = Field(None, alias="replyTo")
    subject: str = Field(min_length=1, max_length=998)
    body: str | None = Field(None, max_length=MAX_BODY_CHARS, description="The text part.")
    html: str | None = Field(
        None, max_length=MAX_BODY_CHARS, description="An HTML part, beside the text."
    )
    timeout: float | None = Field(
        None, gt=0, le=600, description="Seconds for the whole send; `email.timeout` by default."
    )

    @field_validator("to", "cc", "bcc", mode="before")
    @classmethod
    def _listed(cls, value: Any) -> Any:
        return _address_list(value)

    @field_validator("to", "cc", "bcc")
    @classmethod
    def _addresses(cls, addresses: list[str]) -> list[str]:
        return [_check_address(a) for a in addresses]

    @field_validator("from_", "reply_to")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        return None if value is None else _check_address(value)

    @field_validator("subject")
    @classmethod
    def _one_line(cls, subject: str) -> str:
        if "\r" in subject or "\n" in subject:
            raise ValueError("the subject may not hold a line break")
        return subject

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.body is None and self.html is None:
            raise ValueError("body or html is required")
        if len(self.to) + len(self.cc) + len(self.bcc) > MAX_RECIPIENTS:
            raise ValueError(f"at most {MAX_RECIPIENTS} recipients (to, cc and bcc together)")
        return self


class SendEmail(ActionType):
    """Send one mail over SMTP, with STARTTLS or TLS and the credentials of the `[email]`
    settings.

    Every attempt of a step execution sends the same `Message-ID`, derived from its
    idempotency key, and carries the key in `Flowbus-Idempotency-Key`: a mail sent by an
    attempt whose answer was lost is recognisable when the retry delivers it again.
    """

    name = "send_email"
    config_model = SendEmailConfig
    inline = False
