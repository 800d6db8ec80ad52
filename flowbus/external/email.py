"""The SMTP send of the `send_email` action, declared in `flowbus.actions.send_email`.

One connection per mail (aiosmtplib), STARTTLS or TLS and the credentials of the
`[email]` settings; the password goes to the server and nowhere else (no log line, no
error, no output). Its output is `{"messageId", "accepted", "refused"}`: `refused` maps
each recipient the server turned down to its answer, when others were accepted. A send
the server refuses as a whole, or that cannot be made, raises an `ActionFailed`
subclass whose `to_error_info()` becomes the step's error.

Delivery is at least once: an attempt whose answer was lost is sent again by the retry.
Every attempt of a step execution carries the same `Message-ID` (from its idempotency
key), so the copies are recognisable as one mail.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any

import aiosmtplib

from flowbus import __version__
from flowbus.actions.base import ActionContext
from flowbus.actions.send_email import SendEmail, SendEmailConfig
from flowbus.config import EmailSettings, load_settings
from flowbus.external.base import ActionExecutor, ActionFailed, validated_config
from flowbus.times import parse_time

__all__ = [
    "EmailConnectionError",
    "EmailExecutor",
    "EmailNotConfigured",
    "EmailRefused",
    "EmailTimeoutError",
    "message_id",
]

REPLY_CHARS = 300
"""Characters of a server's answer kept in an error or an output."""

_DOMAIN = re.compile(
    r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$"
)


class EmailNotConfigured(ActionFailed):
    """The deployment names no SMTP server or no sender."""

    error_type = "EmailNotConfigured"


class EmailRefused(ActionFailed):
    """The server refused the mail (sender, every recipient, the content or the login);
    the code is its SMTP reply code."""

    error_type = "EmailRefused"


class EmailTimeoutError(ActionFailed):
    """The send did not finish within its timeout."""

    error_type = "TimeoutError"


class EmailConnectionError(ActionFailed):
    """The server could not be reached, or the connection broke (TLS included)."""

    error_type = "ConnectionError"


def message_id(idempotency_key: str, sender: str) -> str:
    """The `Message-ID` of every attempt of one step execution: a digest of its idempotency
    key at the sender's domain."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]
    domain = parseaddr(sender)[1].rpartition("@")[2]
    if not _DOMAIN.match(domain):
        domain = "flowbus.invalid"
    return f"<flowbus.{digest}@{domain}>"


class EmailExecutor(ActionExecutor):
    """Sends the mail `SendEmail` describes, through the server of `settings` (the
    deployment's `[email]` settings when none are given)."""

    action = SendEmail

    def __init__(self, settings: EmailSettings | None = None) -> None:
        self._settings = settings

    def settings(self) -> EmailSettings:
        if self._settings is None:
            self._settings = load_settings().email
        return self._settings

    async def run(self, config: dict[str, Any], context: ActionContext) -> Any:
        cfg = validated_config(SendEmailConfig, config)
        smtp = self.settings()
        sender = cfg.from_ or smtp.from_address
        if not smtp.host:
            raise EmailNotConfigured("no SMTP server configured (email.host)")
        if not sender:
            raise EmailNotConfigured("no sender: the step names no `from`, nor email.from_address")
        identity = message_id(context.idempotency_key, sender)
        message = _message(cfg, context, sender, identity)
        recipients = [parseaddr(a)[1] for a in (*cfg.to, *cfg.cc, *cfg.bcc)]
        where = f"SMTP {smtp.host}:{smtp.smtp_port()}"
        timeout = cfg.timeout or smtp.timeout
        try:
            async with asyncio.timeout(timeout):
                refused, _reply = await aiosmtplib.send(
                    message,
                    sender=parseaddr(sender)[1],
                    recipients=recipients,
                    hostname=smtp.host,
                    port=smtp.smtp_port(),
                    username=smtp.username or None,
                    password=smtp.smtp_password() if smtp.username else None,
                    use_tls=smtp.security == "tls",
                    start_tls=smtp.security == "starttls",
                    validate_certs=smtp.validate_certs,
                    cert_bundle=str(smtp.ca_file) if smtp.ca_file else None,
                    timeout=timeout,
                )
        except (TimeoutError, aiosmtplib.SMTPTimeoutError):
            raise EmailTimeoutError(f"{where}: not sent within {timeout:g}s") from None
        except aiosmtplib.SMTPRecipientsRefused as exc:
            answers = {r.recipient: _reply_text(r.code, r.message) for r in exc.recipients}
            code = str(exc.recipients[0].code) if exc.recipients else None
            raise EmailRefused(
                f"{where} refused every recipient", code=code, details={"refused": answers}
            ) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise EmailRefused(
                f"{where} answered {_reply_text(exc.code, exc.message)}", code=str(exc.code)
            ) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise EmailConnectionError(f"{where}: {_reason(exc)}") from None
        return {
            "messageId": identity,
            "accepted": [r for r in recipients if r not in refused],
            "refused": {
                r: _reply_text(answer.code, answer.message) for r, answer in refused.items()
            },
        }

    async def aclose(self) -> None:
        """Nothing is pooled: every mail has its own connection."""


def _message(
    cfg: SendEmailConfig, context: ActionContext, sender: str, identity: str
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(cfg.to)
    if cfg.cc:
        message["Cc"] = ", ".join(cfg.cc)
    if cfg.reply_to:
        message["Reply-To"] = cfg.reply_to
    message["Subject"] = cfg.subject
    message["Date"] = format_datetime(parse_time(context.now))
    message["Message-ID"] = identity
    message["Flowbus-Idempotency-Key"] = context.idempotency_key
    message["Flowbus-Attempt"] = str(context.tries)
    message["User-Agent"] = f"flowbus/{__version__}"
    message.set_content(cfg.body or "")
    if cfg.html is not None:
        message.add_alternative(cfg.html, subtype="html")
    return message


def _reply_text(code: int, message: str) -> str:
    return f"{code} {' '.join(message.split())}"[:REPLY_CHARS]


def _reason(exc: BaseException) -> str:
    return " ".join((str(exc) or type(exc).__name__).split())[:REPLY_CHARS]
