"""A real local PostgreSQL server for development and tests.

Runs the PostgreSQL binaries shipped by the ``pgserver`` wheel (the ``local`` extra), or
Debian's ``/usr/lib/postgresql/*/bin``, or ``$FLOWBUS_PG_BIN``, on 127.0.0.1 with our own
settings. PostgreSQL refuses to run as root, so as root the binaries run as the
``pgserver`` system user (created like pgserver does) and the data dir is owned by it.

The data dir is the PostgreSQL data directory itself; besides the cluster files it holds
``postgres.log`` (the server's output) and, when the path is short enough, the Unix
socket. A server found still running on the data dir (left by a killed earlier run) is
stopped and started afresh, so port and settings are always the ones asked for.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from flowbus.devstack.ports import PortInUseError
from flowbus.devstack.server import Launch, LocalServer, run_sync, run_tool, serve_until_signal

__all__ = [
    "DatabasePortInUseError",
    "DatabaseServerError",
    "PostgresServer",
    "find_postgres_bin",
]

log = structlog.get_logger(__name__)

SYSTEM_USER = "pgserver"
LOCAL_EXTRA_HINT = "install the local extra: pip install 'flowbus[local]'"
SUPERUSER = "postgres"
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux, 104 on macOS


class DatabaseServerError(RuntimeError):
    """The local PostgreSQL server could not be set up, started or stopped."""


class DatabasePortInUseError(DatabaseServerError, PortInUseError):
    """The server's port is taken by another process."""


def find_postgres_bin() -> Path:
    """Return a directory holding usable ``initdb``, ``pg_ctl`` and ``postgres``.

    Tried in order: ``$FLOWBUS_PG_BIN``, the ``pgserver`` wheel's binaries, then
    Debian's ``/usr/lib/postgresql/<major>/bin`` (newest first).
    """
    candidates: list[Path] = []
    env = os.environ.get("FLOWBUS_PG_BIN")
    if env:
        candidates.append(Path(env))
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin")
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        candidates.extend(
            sorted(
                (p / "bin" for p in debian.iterdir() if p.name.isdigit()),
                key=lambda p: int(p.parent.name),
                reverse=True,
            )
        )
    for bin_dir in candidates:
        if _server_major(bin_dir) is not None:
            return bin_dir
    tried = ", ".join(str(c) for c in candidates) or "none found"
    raise DatabaseServerError(
        f"no usable PostgreSQL binaries (tried: {tried}); {LOCAL_EXTRA_HINT} or set FLOWBUS_PG_BIN"
    )


def _server_major(bin_dir: Path) -> int | None:
    if not all((bin_dir / exe).is_file() for exe in ("initdb", "pg_ctl", "postgres")):
        return None
    try:
        out = subprocess.run(
            [str(bin_dir / "postgres"), "--version"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\(PostgreSQL\) (\d+)", out)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class _RunAs:
    """Who the PostgreSQL binaries run as: ``None`` ids mean the current user."""

    uid: int | None = None
    gid: int | None = None

    def popen_kwargs(self) -> dict[str, Any]:
        if self.uid is None:
            return {}
        # extra_groups=[] drops root's supplementary groups in the child.
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def own(self, path: Path) -> None:
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid)


def _run_as_for_current_user(bin_dir: Path) -> _RunAs:
    if os.geteuid() != 0:
        return _RunAs()
    try:
        with warnings.catch_warnings():
            # Importing pgserver warns about XDG_RUNTIME_DIR on machines without one.
            warnings.simplefilter("ignore")
            from pgserver.utils import ensure_folder_permissions, ensure_user_exists
    except ImportError:
        raise DatabaseServerError(
            f"as root, PostgreSQL runs as the {SYSTEM_USER} user that pgserver sets up; "
            f"{LOCAL_EXTRA_HINT}"
        ) from None

    entry = ensure_user_exists(SYSTEM_USER)
    assert entry is not None
    install = bin_dir.parent
    if install.name == "pginstall" and not (bin_dir / "postgres").stat().st_mode & stat.S_IXOTH:
        readable = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(bin_dir, readable | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(install / "lib", readable)
    _ensure_traversable(bin_dir)
    return _RunAs(uid=entry.pw_uid, gid=entry.pw_gid)


def _ensure_traversable(path: Path) -> None:
    """Let other users pass through every directory above ``path``.

    Only the search (x) bit is added; pgserver's helper also makes them listable, which
    is more than PostgreSQL needs (e.g. for /root or pytest's 0700 temp base).
    """
    for parent in path.absolute().parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


class PostgresServer(LocalServer):
    """A PostgreSQL server on 127.0.0.1 with trust auth for the ``postgres`` superuser.

    ``port`` of ``None`` picks a free port. ``fast_unsafe=True`` turns off fsync,
    synchronous commit and full page writes: for tests, where a crash may lose data.
    The data dir is reused between runs. Use as a context manager or call :meth:`start`
    and :meth:`stop`; starting creates the cluster first if needed.
    """

    name = "PostgreSQL"
    event = "postgres"
    error = DatabaseServerError
    port_error = DatabasePortInUseError
    start_timeout = 60
    writes_pid_file = False

    def __init__(self, data_dir: Path, port: int | None = None, *, fast_unsafe: bool = False):
        super().__init__(data_dir, port)
        self.fast_unsafe = fast_unsafe
        self._bin = Path()
        self._run_as = _RunAs()

    @property
    def log_path(self) -> Path:
        """The server's log file."""
        return self.data_dir / "postgres.log"

    def url(self, database: str = "flowbus") -> str:
        """SQLAlchemy URL: ``postgresql+asyncpg://postgres@127.0.0.1:PORT/<database>``."""
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self._port}/{database}"

    def dsn(self, database: str = "flowbus") -> str:
        """libpq/asyncpg DSN: ``postgresql://postgres@127.0.0.1:PORT/<database>``."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self._port}/{database}"

    def ensure_database(self, name: str) -> bool:
        """Create database ``name`` unless it exists; return whether it was created."""
        return run_sync(_ensure_database(self.dsn("postgres"), name))

    @property
    def _pid_file(self) -> Path:
        return self.data_dir / "postmaster.pid"

    def _is_own_server(self, cmdline: list[str]) -> bool:
        # Anything else holding the pid of a dead server's leftover pid file is not ours;
        # postgres itself cleans such a file up.
        return Path(cmdline[0]).name in ("postgres", "postmaster")

    def _prepare(self) -> None:
        self._bin = find_postgres_bin()
        self._run_as = _run_as_for_current_user(self._bin)
        if self._run_as.uid is not None:
            _ensure_traversable(self.data_dir)
            self._run_as.own(self.data_dir)
        # PostgreSQL refuses a data dir that others can read.
        self.data_dir.chmod(0o700)

    def _set_up(self) -> Launch:
        self._initdb_if_needed()
        if not self.log_path.exists():
            self.log_path.touch(mode=0o600)
            self._run_as.own(self.log_path)
        return Launch(
            command=[str(self._bin / "postgres"), "-D", str(self.data_dir), *self._server_args()],
            output=self.log_path,
            cwd=Path("/"),
            options=self._run_as.popen_kwargs(),
        )

    def _probe(self) -> str | None:
        run_sync(_select_one(self.dsn("postgres")))
        return None

    def _request_stop(self, pid: int, timeout: float) -> None:
        try:
            self._pg_ctl_stop(timeout)
        except DatabaseServerError as exc:
            # SIGINT is what pg_ctl's fast mode sends; try it directly before killing.
            log.warning("postgres.pg_ctl_stop_failed", error=str(exc))
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)

    def _stop_stale(self, pid: int) -> None:
        self._pg_ctl_stop(30)

    def _server_args(self) -> list[str]:
        settings = {"max_connections": "200", "shared_buffers": "256MB"}
        if self.fast_unsafe:
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        args = ["-h", "127.0.0.1", "-p", str(self._port), "-k", str(self._socket_dir())]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        return args

    def _socket_dir(self) -> Path:
        if len(str(self.data_dir / f".s.PGSQL.{self._port}").encode()) <= _SOCKET_PATH_MAX:
            return self.data_dir
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        short = Path(tempfile.gettempdir()) / f"flowbus-pg-{digest}"
        short.mkdir(mode=0o700, exist_ok=True)
        self._run_as.own(short)
        return short

    def _initdb_if_needed(self) -> None:
        version_file = self.data_dir / "PG_VERSION"
        major = _server_major(self._bin)
        if version_file.is_file():
            existing = version_file.read_text().strip()
            if existing != str(major):
                raise DatabaseServerError(
                    f"{self.data_dir} holds a PostgreSQL {existing} cluster but the binaries "
                    f"in {self._bin} are PostgreSQL {major}; set FLOWBUS_PG_BIN or use a new "
                    "data dir"
                )
            return
        started = time.monotonic()
        self._run_tool(
            "initdb",
            "-D",
            str(self.data_dir),
            "--auth=trust",
            "-U",
            SUPERUSER,
            "--encoding=UTF8",
            # C collation: byte order, no dependence on the machine's installed locales.
            "--no-locale",
            *(["--no-sync"] if self.fast_unsafe else []),
            what="initdb",
        )
        log.info(
            "postgres.initdb",
            data_dir=str(self.data_dir),
            seconds=round(time.monotonic() - started, 2),
        )

    def _pg_ctl_stop(self, timeout: float) -> None:
        self._run_tool(
            "pg_ctl",
            "stop",
            "-D",
            str(self.data_dir),
            "-m",
            "fast",
            "-w",
            "-t",
            str(int(timeout)),
            what="pg_ctl stop",
            timeout=timeout + 10,
        )

    def _run_tool(self, tool: str, *args: str, what: str, timeout: float = 120) -> None:
        run_tool(
            [str(self._bin / tool), *args],
            what=what,
            error=DatabaseServerError,
            cwd=Path("/"),
            timeout=timeout,
            **self._run_as.popen_kwargs(),
        )


async def _select_one(dsn: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=2)
    try:
        await conn.fetchval("SELECT 1")
    finally:
        await conn.close()


async def _ensure_database(dsn: str, name: str) -> bool:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        quoted = '"' + name.replace('"', '""') + '"'
        try:
            await conn.execute(f"CREATE DATABASE {quoted}")
        except asyncpg.DuplicateDatabaseError:
            return False  # created concurrently by someone else
        return True
    finally:
        await conn.close()


def _main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m flowbus.devstack.postgres")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a server until Ctrl-C / SIGTERM")
    run.add_argument("--port", type=int, default=5432)
    run.add_argument("--data-dir", type=Path, default=Path(".flowbus/postgres"))
    run.add_argument("--database", default="flowbus", help="database to create if missing")
    run.add_argument("--fast-unsafe", action="store_true", help="fsync off etc. (tests only)")
    args = parser.parse_args(argv)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    server = PostgresServer(args.data_dir, args.port, fast_unsafe=args.fast_unsafe)

    def ready_line() -> str:
        server.ensure_database(args.database)
        return f"PostgreSQL ready: {server.url(args.database)}"

    return serve_until_signal(server, ready_line)


if __name__ == "__main__":
    sys.exit(_main())
