"""One local server process: the building block of the local Kafka broker and PostgreSQL.

A :class:`LocalServer` owns the lifecycle both servers share. Starting stops a server that
a killed earlier run left on the same data dir (found through its pid file), refuses a
port another process holds, launches the server in its own session with its output in a
log file and waits, up to a deadline, until it answers; when it dies or stays silent the
error carries the tail of its log. Stopping asks politely, then sends SIGKILL.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar

import structlog

from flowbus.devstack.ports import PortInUseError, free_port, port_accepts

log = structlog.get_logger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Launch:
    """How to run a server: its command line, where its output goes, and as whom."""

    command: list[str]
    output: Path
    cwd: Path
    options: dict[str, Any] = field(default_factory=dict)
    """Extra ``subprocess.Popen`` arguments (``user``, ``group``, ...)."""


class LocalServer(ABC):
    """A server process on 127.0.0.1 that this object starts, waits for and stops.

    Subclasses say what the server is (:attr:`name`, its errors, its pid file), how to get
    it ready to launch (:meth:`_prepare`) and how to tell that it answers
    (:meth:`_probe`). Use as a context manager or call :meth:`start` and :meth:`stop`.
    """

    name: ClassVar[str]
    """What the server is called in messages, e.g. ``"Kafka broker"``."""
    event: ClassVar[str]
    """Prefix of the log events, e.g. ``"kafka"``."""
    error: ClassVar[type[RuntimeError]]
    port_error: ClassVar[type[PortInUseError]]
    start_timeout: ClassVar[float]
    ready_interval: ClassVar[float] = 0.1
    writes_pid_file: ClassVar[bool] = True
    """Whether we write :attr:`_pid_file` (``False``: the server writes its own)."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = Path(data_dir).absolute()
        self._port = port or free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        """The TCP port on 127.0.0.1 clients connect to."""
        return self._port

    @property
    def pid(self) -> int | None:
        """Process id of the server this object started, while it runs."""
        return self._proc.pid if self.is_running() and self._proc is not None else None

    def is_running(self) -> bool:
        """Whether the server this object started is still alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float | None = None) -> None:
        """Start the server and wait until it answers (``timeout`` s, else the default).

        Raises :attr:`error` (with the tail of the server's log) when the server exits
        early or does not answer in time, and :attr:`port_error` when a port it needs is
        taken by another process.
        """
        if self.is_running():
            return
        started = time.monotonic()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._prepare()
        self._replace_stale()
        for port in self._ports():
            if port_accepts(port):
                raise self.port_error(port)
        launch = self._set_up()
        with launch.output.open("ab") as out:
            self._proc = subprocess.Popen(
                launch.command,
                cwd=launch.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Own session: a terminal Ctrl-C reaches only us, and we stop the server in order.
                start_new_session=True,
                **launch.options,
            )
        if self.writes_pid_file:
            self._pid_file.write_text(f"{self._proc.pid}\n")
        atexit.register(self.stop)
        try:
            self._wait_ready(started + (self.start_timeout if timeout is None else timeout))
        except BaseException:
            self.stop(timeout=5)
            raise
        log.info(
            f"{self.event}.ready",
            address=f"127.0.0.1:{self._port}",
            data_dir=str(self.data_dir),
            seconds=round(time.monotonic() - started, 2),
        )

    def stop(self, timeout: float = 30) -> None:
        """Stop the server: a graceful stop, then SIGKILL after ``timeout`` s. Idempotent."""
        proc, self._proc = self._proc, None
        atexit.unregister(self.stop)
        if proc is None:
            return
        if proc.poll() is None:
            self._request_stop(proc.pid, timeout)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning(f"{self.event}.kill", pid=proc.pid, after_seconds=timeout)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self.writes_pid_file and read_pid(self._pid_file) == proc.pid:
            self._pid_file.unlink(missing_ok=True)
        log.info(f"{self.event}.stopped", data_dir=str(self.data_dir))

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    @abstractmethod
    def _pid_file(self) -> Path:
        """Holds the pid of the running server, so a later run can find it."""

    @property
    @abstractmethod
    def log_path(self) -> Path:
        """The server's log file."""

    @abstractmethod
    def _is_own_server(self, cmdline: list[str]) -> bool:
        """Whether a live process with this command line is our server on this data dir."""

    @abstractmethod
    def _prepare(self) -> None:
        """Find what the server runs on; runs before a stale server is looked for."""

    @abstractmethod
    def _set_up(self) -> Launch:
        """Write configuration and storage for a launch; runs once the ports are free."""

    @abstractmethod
    def _probe(self) -> str | None:
        """``None`` when the server answers, else what is still wrong.

        Any exception counts as "not ready yet", its text as what is wrong.
        """

    def _ports(self) -> tuple[int, ...]:
        return (self._port,)

    def _request_stop(self, pid: int, timeout: float) -> None:
        """Ask the server started as ``pid`` (a session leader) to shut down."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)

    def _stop_stale(self, pid: int) -> None:
        """Stop a server of ours that this object did not start (the caller awaits its exit)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        try:
            wait_until(lambda: process_cmdline(pid) is None, timeout=30, what=f"stale {self.name}")
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _log_tail(self) -> str:
        text = tail_text(self.log_path, 30)
        return f"--- {self.log_path} (tail) ---\n{text}" if text else ""

    def _replace_stale(self) -> None:
        """Stop a server that a killed earlier run left running on this data dir."""
        pid = read_pid(self._pid_file)
        if pid is None:
            return
        cmdline = process_cmdline(pid)
        if cmdline and self._is_own_server(cmdline):
            log.warning(f"{self.event}.stale_server", pid=pid, data_dir=str(self.data_dir))
            self._stop_stale(pid)
            wait_until(lambda: process_cmdline(pid) is None, timeout=10, what=f"stale {self.name}")
        if self.writes_pid_file:
            self._pid_file.unlink(missing_ok=True)

    def _wait_ready(self, deadline: float) -> None:
        last_problem = ""

        def answering() -> bool:
            nonlocal last_problem
            if self._proc is not None and self._proc.poll() is not None:
                raise self.error(
                    f"{self.name} exited with code {self._proc.returncode} during startup\n"
                    f"{self._log_tail()}"
                )
            try:
                problem = self._probe()
            except Exception as exc:  # any client error just means "not ready yet"
                problem = f"{type(exc).__name__}: {exc}"
            if problem is None:
                return True
            last_problem = problem
            return False

        try:
            wait_until(
                answering,
                timeout=max(0.0, deadline - time.monotonic()),
                interval=self.ready_interval,
                what=f"{self.name} on 127.0.0.1:{self._port}",
            )
        except TimeoutError as exc:
            raise self.error(f"{exc}; {last_problem}\n{self._log_tail()}") from None


def run_tool(
    command: list[str],
    *,
    what: str,
    error: type[Exception],
    cwd: Path,
    timeout: float = 120,
    **options: Any,
) -> None:
    """Run a server's command-line tool to completion.

    Raises ``error`` with the tail of the output when it fails or overruns ``timeout``.
    """
    try:
        result = subprocess.run(
            command,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
            **options,
        )
    except subprocess.TimeoutExpired as exc:
        raise error(f"{what} did not finish in {timeout:.0f} s") from exc
    if result.returncode != 0:
        output = "\n".join(result.stdout.splitlines()[-30:])
        raise error(f"{what} failed (exit {result.returncode}):\n{output}")


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

    A zombie (exited, not yet reaped) counts as gone. Reads Linux ``/proc``.
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


def serve_until_signal(server: LocalServer, ready_line: Callable[[], str]) -> int:
    """Run ``server`` until SIGINT/SIGTERM, printing ``ready_line()`` once it answers.

    The ``python -m flowbus.devstack.*`` entry points: exit 0 when stopped by a signal,
    1 when the server died or could not start.
    """
    stop = threading.Event()
    try:
        with server:
            print(ready_line(), flush=True)
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            while not stop.wait(1.0):
                if not server.is_running():
                    return 1
            return 0
    except server.error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
