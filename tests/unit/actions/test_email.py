"""The `send_email` action against a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from flowbus.actions.base import ActionContext
from flowbus.actions.registry import check_action_config
from flowbus.config import EmailSettings
from flowbus.external.base import ActionConfigError
from flowbus.external.email import (
    EmailConnectionError,
    EmailExecutor,
    EmailNotConfigured,
    EmailRefused,
    EmailTimeoutError,
    message_id,
)
from flowbus.external.registry import EXECUTORS


@dataclass
class Received:
    """One mail as the server took it: envelope and parsed message."""

    sender: str
    recipients: list[str]
    message: EmailMessage
    tls: bool


@dataclass
class MailServer:
    """Takes every mail, refuses recipients starting with `nobody`, and records logins."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.startswith("nobody"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        tls = session.ssl is not None
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message, tls))
        return "250 OK queued"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login, password = data.login.decode(), data.password.decode()
        self.logins.append((login, password))
        return AuthResult(success=password == "s3cret", handled=False)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Any]]:
    """Start SMTP servers on 127.0.0.1 for one test: `await serve(**smtp_options)`."""
    servers: list[asyncio.Server] = []

    async def start(*, implicit_tls: ssl.SSLContext | None = None, **options: Any) -> MailServer:
        mail = MailServer()
        options.setdefault("auth_require_tls", False)
        server = await asyncio.get_running_loop().create_server(
            lambda: SMTP(mail, hostname="mail.test", authenticator=mail.authenticate, **options),
            "127.0.0.1",
            0,
            ssl=implicit_tls,
        )
        servers.append(server)
        mail.port = server.sockets[0].getsockname()[1]
        return mail

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


def context(tries: int = 1, *, key: str = "inst-1:mail") -> ActionContext:
    return ActionContext(
        instance_id="inst-1",
        workflow_id="welcome",
        step_id="mail",
        attempt=tries,
        now="2024-05-01T12:00:00Z",
        idempotency_key=key,
        new_event_id=lambda: "evt-1",
        tries=tries,
    )


def smtp(mail: MailServer, **settings: Any) -> EmailExecutor:
    settings.setdefault("security", "none")
    settings.setdefault("from_address", "flows@example.com")
    return EmailExecutor(EmailSettings(host="127.0.0.1", port=mail.port, **settings))


MAIL = {"to": "ada@example.com", "subject": "Welcome!", "body": "Welcome to our platform!"}


async def test_a_mail_reaches_the_server_with_its_headers_and_body(serve: Any) -> None:
    mail = await serve()

    output = await smtp(mail).run(MAIL, context())

    [got] = mail.received
    assert (got.sender, got.recipients) == ("flows@example.com", ["ada@example.com"])
    assert (got.message["From"], got.message["To"], got.message["Subject"]) == (
        "flows@example.com",
        "ada@example.com",
        "Welcome!",
    )
    assert got.message.get_content().strip() == "Welcome to our platform!"
    assert got.message["Date"] == "Wed, 01 May 2024 12:00:00 +0000"
    assert output == {
        "messageId": message_id("inst-1:mail", "flows@example.com"),
        "accepted": ["ada@example.com"],
        "refused": {},
    }


async def test_cc_is_shown_and_bcc_only_receives(serve: Any) -> None:
    mail = await serve()
    config = {**MAIL, "to": "Ada <ada@example.com>, bob@example.com", "cc": ["cy@example.com"]}

    await smtp(mail).run({**config, "bcc": "audit@example.com"}, context())

    [got] = mail.received
    assert got.recipients == [
        "ada@example.com",
        "bob@example.com",
        "cy@example.com",
        "audit@example.com",
    ]
    assert got.message["To"] == "Ada <ada@example.com>, bob@example.com"
    assert got.message["Cc"] == "cy@example.com"
    assert "Bcc" not in got.message
    assert "audit" not in got.message.as_string()


async def test_an_html_body_goes_beside_the_text(serve: Any) -> None:
    mail = await serve()

    await smtp(mail).run({**MAIL, "html": "<p>Welcome!</p>"}, context())

    [got] = mail.received
    assert got.message.get_content_type() == "multipart/alternative"
    text, html = (part.get_content().strip() for part in got.message.iter_parts())
    assert (text, html) == ("Welcome to our platform!", "<p>Welcome!</p>")


async def test_every_try_of_a_step_execution_sends_the_same_message_id(serve: Any) -> None:
    mail = await serve()
    executor = smtp(mail)

    for tries in (1, 2):
        await executor.run(MAIL, context(tries))
    await executor.run(MAIL, context(key="inst-1:mail:2"))

    first, retry, rerun = (r.message for r in mail.received)
    assert first["Message-ID"] == retry["Message-ID"] != rerun["Message-ID"]
    assert first["Message-ID"].endswith("@example.com>")
    assert (retry["Flowbus-Idempotency-Key"], retry["Flowbus-Attempt"]) == ("inst-1:mail", "2")


async def test_some_refused_recipients_are_listed_in_the_output(serve: Any) -> None:
    mail = await serve()

    output = await smtp(mail).run({**MAIL, "to": ["ada@example.com", "nobody@x.test"]}, context())

    assert output["accepted"] == ["ada@example.com"]
    assert output["refused"] == {"nobody@x.test": "550 5.1.1 no such user"}


async def test_every_recipient_refused_fails_the_step_with_the_reply_code(serve: Any) -> None:
    mail = await serve()

    with pytest.raises(EmailRefused) as caught:
        await smtp(mail).run({**MAIL, "to": "nobody@x.test"}, context())

    error = caught.value.to_error_info("mail")
    assert (error.type, error.code) == ("EmailRefused", "550")
    assert mail.received == []


async def test_credentials_come_from_the_settings(serve: Any, tmp_path: Path) -> None:
    mail = await serve()
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")

    await smtp(mail, username="flows", password_file=secret).run(MAIL, context())

    assert mail.logins == [("flows", "s3cret")]
    assert len(mail.received) == 1


async def test_a_refused_login_fails_without_the_password_in_the_error(serve: Any) -> None:
    mail = await serve()
    executor = smtp(mail, username="flows", password=SecretStr("wrong-horse"))

    with pytest.raises(EmailRefused) as caught:
        await executor.run(MAIL, context())

    error = caught.value.to_error_info("mail")
    assert error.code == "535"
    assert "wrong-horse" not in f"{error.message} {error.details}"


async def test_starttls_upgrades_the_connection(serve: Any, certificate: tuple[Path, Path]) -> None:
    mail = await serve(tls_context=server_tls(certificate), require_starttls=True)

    await smtp(mail, security="starttls", ca_file=certificate[0]).run(MAIL, context())

    assert [r.tls for r in mail.received] == [True]


async def test_starttls_is_required_when_configured(serve: Any) -> None:
    mail = await serve()

    with pytest.raises(EmailConnectionError, match="STARTTLS"):
        await smtp(mail, security="starttls").run(MAIL, context())

    assert mail.received == []


async def test_tls_from_the_first_byte(serve: Any, certificate: tuple[Path, Path]) -> None:
    mail = await serve(implicit_tls=server_tls(certificate))

    await smtp(mail, security="tls", ca_file=certificate[0]).run(MAIL, context())

    assert len(mail.received) == 1


async def test_an_untrusted_certificate_is_refused(
    serve: Any, certificate: tuple[Path, Path]
) -> None:
    mail = await serve(implicit_tls=server_tls(certificate))

    with pytest.raises(EmailConnectionError):
        await smtp(mail, security="tls").run(MAIL, context())


async def test_a_server_that_does_not_answer_times_out() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    executor = EmailExecutor(
        EmailSettings(host="127.0.0.1", port=port, security="none", from_address="f@example.com")
    )
    try:
        with pytest.raises(EmailTimeoutError, match=r"not sent within 0\.3s"):
            await executor.run({**MAIL, "timeout": 0.3}, context())
    finally:
        server.close()


async def test_an_unreachable_server_is_a_connection_error(serve: Any) -> None:
    mail = await serve()
    mail.port = 1  # nothing listens there
    executor = smtp(mail)

    with pytest.raises(EmailConnectionError) as caught:
        await executor.run(MAIL, context())

    assert caught.value.to_error_info().type == "ConnectionError"


async def test_without_a_server_the_step_fails_unsent() -> None:
    with pytest.raises(EmailNotConfigured, match=r"email\.host"):
        await EmailExecutor(EmailSettings(from_address="f@example.com")).run(MAIL, context())


async def test_without_a_sender_the_step_fails_unsent(serve: Any) -> None:
    mail = await serve()

    with pytest.raises(EmailNotConfigured, match="from_address"):
        await smtp(mail, from_address="").run(MAIL, context())


async def test_a_step_from_replaces_the_configured_sender(serve: Any) -> None:
    mail = await serve()

    await smtp(mail).run({**MAIL, "from": "Billing <billing@example.org>"}, context())

    [got] = mail.received
    assert (got.sender, got.message["From"]) == (
        "billing@example.org",
        "Billing <billing@example.org>",
    )


async def test_a_rendered_address_that_is_not_one_fails_the_step() -> None:
    with pytest.raises(ActionConfigError, match="to"):
        await EmailExecutor(EmailSettings()).run({**MAIL, "to": "not-an-address"}, context())


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({**MAIL, "subject": "hi\r\nBcc: x@example.com"}, "config.subject: .*line break"),
        ({**MAIL, "to": "ada@example.com\nBcc: x@example.com"}, "config.to: .*line break"),
        ({**MAIL, "to": []}, "config.to: "),
        ({**MAIL, "to": "a@example.com," * 10_000}, "config.to: .*longer than 32000"),
        ({"to": "ada@example.com", "subject": "s"}, "config: .*body or html is required"),
        ({**MAIL, "cc": [f"u{n}@example.com" for n in range(100)]}, "config: .*at most 100"),
    ],
)
def test_invalid_configs_are_refused_at_load(config: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        check_action_config("send_email", config)


def test_templated_addresses_are_checked_when_the_step_runs() -> None:
    check_action_config("send_email", {**MAIL, "to": "{{variables.email}}"})


def test_the_worker_finds_the_executor_with_the_deployment_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLOWBUS_EMAIL__HOST", "smtp.example.com")
    monkeypatch.setenv("FLOWBUS_EMAIL__PASSWORD", "s3cret")
    executor = EmailExecutor()

    assert isinstance(EXECUTORS["send_email"], EmailExecutor)
    assert executor.settings().host == "smtp.example.com"
    assert "s3cret" not in repr(executor.settings())
