"""`flowbus api`: serve the operators' HTTP API."""

from __future__ import annotations

import click

from flowbus.cli.common import fail, settings_for_cli


@click.command()
@click.option("--host", help="Address to listen on (default: setting api.host).")
@click.option("--port", type=int, help="Port to listen on (default: setting api.port).")
def api(host: str | None, port: int | None) -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json) next to the workers."""
    from flowbus.api.app import serve
    from flowbus.api.auth import AuthMisconfigured

    settings = settings_for_cli()
    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    if overrides:
        settings = settings.model_copy(update={"api": settings.api.model_copy(update=overrides)})
    try:
        serve(settings)
    except AuthMisconfigured as exc:
        raise fail(f"cannot start the API: {exc}") from None
