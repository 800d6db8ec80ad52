"""Small helpers shared by the local Kafka broker and PostgreSQL server.

Free TCP ports, readiness waits, running a coroutine from synchronous code, reading the
tail of a log file and looking at a process by pid (Linux ``/proc``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


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


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from synchronous code and return its result.

    Works both from plain code and from inside a running event loop (an async test
    fixture, ``flowbus dev``): in the latter case the coroutine runs on its own loop in a
    worker thread, blocking the caller until done.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def tail_text(path: Path, lines: int = 40) -> str:
    """Return the last ``lines`` lines of a text file, or ``""`` if it is unreadable."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def process_cmdline(pid: int) -> list[str] | None:
    """Return the command line of a live process, or ``None`` if there is none.

    A zombie (exited, not yet reaped) counts as gone.
    """
    proc = Path("/proc") / str(pid)
    try:
        status = (proc / "status").read_text()
        raw = (proc / "cmdline").read_bytes()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("State:") and "Z" in line.split()[1:2]:
            return None
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def read_pid(path: Path) -> int | None:
    """Return the integer on the first line of a pid file, or ``None``."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(path.read_text().split()[0])
    return None


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    """Return whether something accepts TCP connections on ``host:port`` right now."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(
    check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.1
) -> None:
    """Call ``check`` until it returns true; raise ``TimeoutError`` after ``timeout`` s.

    ``check`` may raise to abort the wait early (e.g. the process being waited on died).
    """
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f} s")
        time.sleep(interval)


def wait_for_signal(alive: Callable[[], bool]) -> bool:
    """Block until SIGINT/SIGTERM arrives or ``alive()`` turns false.

    Returns ``True`` when stopped by a signal, ``False`` when ``alive()`` turned false.
    Meant for the tiny ``python -m flowbus.devstack.*`` entry points.
    """
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        if not alive():
            return False
    return True
