"""Settings: `FLOWBUS_*` environment variables over `config/flowbus.toml` defaults."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_CONFIG_FILE = Path(__file__).resolve().parent.parent / "config" / "flowbus.toml"


def config_file() -> Path:
    """The TOML defaults file: `FLOWBUS_CONFIG` if set, else the repository's `config/`."""
    return Path(os.environ.get("FLOWBUS_CONFIG", DEFAULT_CONFIG_FILE))


class TopicNames(BaseModel):
    """Names of the topics flowbus itself reads and writes."""

    instances: str = "flowbus.instances"
    steps: str = "flowbus.steps"
    approvals: str = "flowbus.approvals"
    decisions: str = "flowbus.decisions"
    commands: str = "flowbus.commands"
    deadletter: str = "flowbus.deadletter"
    tasks: str = "flowbus.tasks"
    results: str = "flowbus.results"


class ApprovalSettings(BaseModel):
    """How decision tokens are verified (and signed, by `flowbus approvals decide`)."""

    issuer: str = "flowbus"
    audience: str = "flowbus-decisions"
    hs256_secret: SecretStr = SecretStr("")
    hs256_secret_file: Path | None = Field(
        None, description="A file holding the HS256 secret (used when hs256_secret is empty)."
    )
    public_keys: list[Path] = Field(
        default_factory=list, description="PEM public keys for RS256/ES256 tokens."
    )
    jwks_file: Path | None = None
    signing_algorithm: Literal["HS256", "RS256", "ES256"] = "HS256"
    signing_key_file: Path | None = Field(
        None, description="PEM private key for signing RS256/ES256 decisions from the CLI."
    )
    leeway: float = Field(5.0, ge=0, description="Seconds of clock skew allowed on exp.")

    def shared_secret(self) -> str:
        secret = self.hs256_secret.get_secret_value()
        if not secret and self.hs256_secret_file is not None and self.hs256_secret_file.is_file():
            secret = self.hs256_secret_file.read_text().strip()
        return secret


class WorkerSettings(BaseModel):
    """Tuning of the worker's hot paths."""

    batch_size: int = Field(500, ge=1)
    batch_window: float = Field(0.01, gt=0)
    relay_batch_size: int = Field(1000, ge=1)
    relay_poll_interval: float = Field(0.2, gt=0)
    timer_poll_interval: float = Field(0.2, gt=0)
    timer_batch_size: int = Field(200, ge=1)
    purge_interval: float = Field(
        60.0, gt=0, description="Seconds between purges of instances past their retention."
    )
    action_concurrency: int = Field(32, ge=1)
    action_lease: float = Field(
        15.0,
        gt=0,
        description="Seconds a running action's lease lasts; its worker renews it every "
        "third of that while the call runs, so a job whose worker died runs again within "
        "this plus the poll interval, whatever the call's timeout.",
    )
    workflow_task_timeout: float = Field(
        60.0,
        gt=0,
        description="Seconds a code-first workflow task may go without a result from an SDK "
        "worker before it is sent again (the worker died, or hosts no such version).",
    )
    web_port: int = Field(0, ge=0)
    metrics_port: int = Field(0, ge=0, description="Prometheus exposition port; 0 disables it.")
    metrics_host: str = "127.0.0.1"


class LimitSettings(BaseModel):
    """Bounds on what flowbus accepts and produces; each is a clear answer when exceeded.

    Consumed records past a bound are dead-lettered with the reason; API bodies answer
    413 or 400; a step whose output or variables would pass a bound fails with the typed
    error `PayloadTooLarge`; an outcome event the broker would refuse is never written.
    """

    max_record_bytes: int = Field(
        1_000_000,
        ge=1024,
        description="Largest consumed record value (events, commands, decisions).",
    )
    max_depth: int = Field(
        64,
        ge=4,
        le=512,
        description="Deepest nesting of JSON objects and arrays accepted anywhere.",
    )
    max_key_bytes: int = Field(4096, ge=64, description="Largest consumed record key.")
    max_headers: int = Field(64, ge=1, description="Most headers on a consumed record.")
    max_header_bytes: int = Field(
        65536, ge=256, description="Largest total of a consumed record's header names and values."
    )
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Largest HTTP API request body.")
    max_step_output_bytes: int = Field(
        256 * 1024, ge=1024, description="Largest JSON output of one step (action results)."
    )
    max_variables_bytes: int = Field(
        512 * 1024, ge=1024, description="Largest JSON of an instance's variables."
    )
    max_event_bytes: int = Field(
        900_000,
        ge=1024,
        description="Largest outcome event written to the outbox; keep it under the broker's "
        "message.max.bytes (1 MiB by default).",
    )
    request_timeout: float = Field(
        30.0, gt=0, description="Seconds an HTTP API request may take (live streams excepted)."
    )
    log_value_chars: int = Field(
        512, ge=64, description="Longest rendering of one log field; longer values are cut."
    )


class ApiAuthSettings(BaseModel):
    """Bearer JWTs: HS256 with a shared secret, or RS256/ES256 with a public key (PEM)."""

    enabled: bool = Field(True, description="False lets every request in as admin (dev only).")
    algorithm: Literal["HS256", "RS256", "ES256"] = "HS256"
    secret: SecretStr | None = Field(None, description="HS256 shared secret, 32 bytes or more.")
    public_key: str | None = Field(None, description="RS256/ES256 public key, PEM text.")
    public_key_file: Path | None = None
    issuer: str | None = None
    audience: str | None = None
    leeway: float = Field(0.0, ge=0, description="Seconds of clock skew allowed on exp/nbf.")
    roles_claim: str = "roles"
    protect_health: bool = Field(False, description="Require a viewer token for /healthz, /readyz.")
    protect_metrics: bool = Field(False, description="Require a viewer token for /metrics.")


class ApiSettings(BaseModel):
    """The HTTP API process (`flowbus api`)."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    auth: ApiAuthSettings = Field(default_factory=ApiAuthSettings)
    stream_queue_size: int = Field(
        1000, ge=1, description="Events a live stream holds for a slow client before pausing."
    )


class EmailSettings(BaseModel):
    """The SMTP server `send_email` actions send through. The password is never logged."""

    host: str = Field("", description="SMTP server; empty: `send_email` steps fail, unsent.")
    port: int = Field(
        0, ge=0, le=65535, description="0: 465 with `tls`, 587 with `starttls`, 25 with `none`."
    )
    security: Literal["starttls", "tls", "none"] = Field(
        "starttls",
        description="`starttls`: upgrade the connection, refuse a server that cannot; `tls`: "
        "TLS from the first byte (SMTPS); `none`: plain text (a relay on the same host).",
    )
    username: str | None = None
    password: SecretStr = SecretStr("")
    password_file: Path | None = Field(
        None, description="A file holding the password (used when `password` is empty)."
    )
    validate_certs: bool = True
    ca_file: Path | None = Field(None, description="PEM bundle to verify the server against.")
    from_address: str = Field("", description="Sender of every mail whose step names no `from`.")
    timeout: float = Field(30.0, gt=0, le=600, description="Seconds for one whole send.")

    def smtp_password(self) -> str | None:
        """The password, from the setting or its file; None when there is none."""
        secret = self.password.get_secret_value()
        if not secret and self.password_file is not None and self.password_file.is_file():
            secret = self.password_file.read_text().strip()
        return secret or None

    def smtp_port(self) -> int:
        """The configured port, or the usual one for the security mode."""
        return self.port or {"tls": 465, "starttls": 587, "none": 25}[self.security]


class Settings(BaseSettings):
    """All of flowbus's configuration. See `config/flowbus.toml` for the meaning of each key."""

    model_config = SettingsConfigDict(
        env_prefix="FLOWBUS_", env_nested_delimiter="__", extra="ignore"
    )

    deployment: str = "flowbus-local"
    broker_url: str = "127.0.0.1:9092"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5433/flowbus"
    state_dir: Path = Path(".flowbus")
    source_topics: list[str] = Field(default_factory=lambda: ["orders", "payments"])
    workflows_dir: Path = Path("config/workflows")
    consumer_group: str = "flowbus"
    log_format: Literal["console", "json"] = "console"
    log_level: str = "info"
    topics: TopicNames = Field(default_factory=TopicNames)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    approvals: ApprovalSettings = Field(default_factory=ApprovalSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    email: EmailSettings = Field(default_factory=EmailSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = config_file()
        if path.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and the TOML file, with explicit overrides on top."""
    return Settings(**overrides)
