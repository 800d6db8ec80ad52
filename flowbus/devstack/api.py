"""The API with the dashboard, as `flowbus dev` runs it: a `flowbus api` process on
127.0.0.1 with auth off (everyone on this machine acts as admin), logging to a file."""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

from flowbus.devstack.ports import PortInUseError
from flowbus.devstack.server import Launch, LocalServer


class ApiServerError(RuntimeError):
    """The API process did not start or answer."""


class ApiPortInUseError(PortInUseError):
    """The API's port is taken by another process."""


class DevApi(LocalServer):
    """`flowbus api` for development, with the settings of the environment it starts from."""

    name = "flowbus API"
    event = "api"
    error = ApiServerError
    port_error = ApiPortInUseError
    start_timeout = 60.0
    ready_interval = 0.2

    def __init__(self, data_dir: Path, port: int) -> None:
        super().__init__(data_dir, port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def _pid_file(self) -> Path:
        return self.data_dir / "api.pid"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "api.log"

    def _is_own_server(self, cmdline: list[str]) -> bool:
        return cmdline[-3:] == ["-m", "flowbus", "api"]

    def _prepare(self) -> None:
        return None

    def _set_up(self) -> Launch:
        env = {
            **os.environ,
            "FLOWBUS_API__AUTH__ENABLED": "false",
            "FLOWBUS_API__HOST": "127.0.0.1",
            "FLOWBUS_API__PORT": str(self.port),
        }
        return Launch(
            command=[sys.executable, "-m", "flowbus", "api"],
            output=self.log_path,
            cwd=Path.cwd(),
            options={"env": env},
        )

    def _probe(self) -> str | None:
        with urllib.request.urlopen(f"{self.url}healthz", timeout=2) as response:
            return None if response.status == 200 else f"/healthz answered {response.status}"
