"""TCP ports of the local servers: picking a free one, seeing whether one is taken."""

from __future__ import annotations

import socket


class PortInUseError(RuntimeError):
    """A port a local server must listen on is taken by another process."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        super().__init__(f"port {port} on {host} is already in use")
        self.port = port


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that is free right now.

    The port is released before returning, so another process could take it first;
    good enough for local development and tests.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    """Return whether something accepts TCP connections on ``host:port`` right now."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
