"""A real single-node Apache Kafka broker (KRaft) for development and tests.

The broker's jars are resolved from Maven Central with Maven into a cache outside the
repository and run on the installed JDK; no Docker, no Kafka distribution tarball.

Data dir layout (reused between runs, so topics and offsets survive restarts)::

    cluster.id          the KRaft cluster id, kept so a restart finds its own storage
    server.properties   written on every start (ports may change between runs)
    log4j.properties    broker logging config: everything goes to logs/server.log
    kafka.pid           pid of the running JVM, to find a broker left by a killed run
    kafka.out           JVM stdout/stderr (crashes before logging starts)
    logs/server.log     the broker log
    kraft/              the log dir (topic data and the cluster metadata log)
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import structlog

from flowbus.devstack.ports import (
    PortInUseError,
    free_port,
    port_accepts,
    process_cmdline,
    read_pid,
    run_sync,
    tail_text,
    wait_for_signal,
    wait_until,
)

__all__ = [
    "KAFKA_VERSION",
    "SCALA_VERSION",
    "BrokerError",
    "BrokerPortInUseError",
    "KafkaBroker",
    "fetch_kafka",
    "kafka_cache_root",
]

log = structlog.get_logger(__name__)

KAFKA_VERSION = "3.9.1"
SCALA_VERSION = "2.13"
SLF4J_VERSION = "1.7.36"
RELOAD4J_VERSION = "1.2.25"

_MARKER = "complete.json"
_MAVEN_TIMEOUT_S = 900
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class BrokerError(RuntimeError):
    """The local Kafka broker could not be fetched, started or stopped."""


class BrokerPortInUseError(BrokerError, PortInUseError):
    """The broker's client or controller port is taken by another process."""


def kafka_cache_root() -> Path:
    """Where broker jars are cached: ``$FLOWBUS_KAFKA_CACHE`` or ``~/.cache/flowbus/kafka``."""
    env = os.environ.get("FLOWBUS_KAFKA_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "flowbus" / "kafka"


def fetch_kafka(version: str = KAFKA_VERSION, cache_dir: Path | None = None) -> Path:
    """Resolve the Kafka broker jars with Maven and return the directory holding them.

    The jars land in ``<cache_dir>/<version>/libs`` (``cache_dir`` defaults to
    :func:`kafka_cache_root`). A completed fetch is a no-op; an interrupted one is redone.
    Concurrent callers (other processes too) serialise on a file lock.
    """
    version_dir = (cache_dir or kafka_cache_root()) / version
    libs = version_dir / "libs"
    if _cache_complete(version_dir):
        return libs
    version_dir.mkdir(parents=True, exist_ok=True)
    with (version_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _cache_complete(version_dir):
            return libs
        started = time.monotonic()
        _maven_copy_dependencies(version, version_dir, libs)
        log.info("kafka.fetched", version=version, path=str(libs), seconds=_since(started))
    return libs


def _cache_complete(version_dir: Path) -> bool:
    try:
        jars = json.loads((version_dir / _MARKER).read_text())["jars"]
    except (OSError, ValueError, KeyError):
        return False
    libs = version_dir / "libs"
    return bool(jars) and all((libs / name).is_file() for name in jars)


def _maven_copy_dependencies(version: str, version_dir: Path, libs: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("Maven (`mvn`) is not on PATH; it is needed to fetch the Kafka jars")
    (version_dir / _MARKER).unlink(missing_ok=True)
    partial = version_dir / "libs.partial"
    shutil.rmtree(partial, ignore_errors=True)
    pom = version_dir / "pom.xml"
    pom.write_text(_pom(version))
    cmd = [
        mvn,
        "-q",
        "-B",
        "-Dstyle.color=never",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={partial}",
        "-DincludeScope=runtime",
    ]
    try:
        result = subprocess.run(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=_MAVEN_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BrokerError(
            f"Maven did not finish fetching Kafka {version} in {exc.timeout} s"
        ) from exc
    jars = sorted(p.name for p in partial.glob("*.jar")) if partial.is_dir() else []
    if result.returncode != 0 or not any(j.startswith(f"kafka_{SCALA_VERSION}-") for j in jars):
        raise BrokerError(
            f"Maven failed to fetch Kafka {version} (exit {result.returncode}):\n"
            f"{_maven_tail(result.stdout)}"
        )
    shutil.rmtree(libs, ignore_errors=True)
    partial.rename(libs)
    # The marker is written last so an interrupted fetch is never mistaken for a complete one.
    tmp = version_dir / f"{_MARKER}.tmp"
    tmp.write_text(json.dumps({"version": version, "jars": jars}, indent=1))
    tmp.replace(version_dir / _MARKER)


def _maven_tail(output: str, lines: int = 30) -> str:
    """The last lines of Maven's output, minus colour codes and its generic help footer."""
    text = _ANSI.sub("", output)
    text = text.split("[ERROR] To see the full stack trace", 1)[0]
    kept = [line for line in text.splitlines() if line.strip() not in ("", "[ERROR]")]
    return "\n".join(kept[-lines:])


def _pom(version: str) -> str:
    deps = [
        ("org.apache.kafka", f"kafka_{SCALA_VERSION}", version),
        # Kafka ships no slf4j binding in its Maven dependencies; without one the broker
        # cannot log at all. reload4j is what the Kafka 3.x distribution itself uses.
        ("org.slf4j", "slf4j-reload4j", SLF4J_VERSION),
        ("ch.qos.reload4j", "reload4j", RELOAD4J_VERSION),
    ]
    dep_xml = "".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></dependency>\n"
        for g, a, v in deps
    )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0">\n'
        "  <modelVersion>4.0.0</modelVersion>\n"
        "  <groupId>dev.flowbus.devstack</groupId>\n"
        "  <artifactId>kafka-runtime</artifactId>\n"
        f"  <version>{version}</version>\n"
        "  <packaging>pom</packaging>\n"
        f"  <dependencies>\n{dep_xml}  </dependencies>\n"
        "</project>\n"
    )


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise BrokerError(
            "Java (`java`) is not on PATH and JAVA_HOME is not set; Kafka needs a JDK"
        )
    return java


def _since(started: float) -> float:
    return round(time.monotonic() - started, 2)


def _new_cluster_id() -> str:
    # Same format as Kafka's Uuid.randomUuid().toString(); generated here to save a JVM start.
    while True:
        cid = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


class KafkaBroker:
    """A single-node KRaft Kafka broker (broker and controller in one JVM) on 127.0.0.1.

    ``port``/``controller_port`` of ``None`` pick free ports. The data dir is reused
    between runs. Use as a context manager or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        controller_port: int | None = None,
        version: str = KAFKA_VERSION,
        heap: str = "512m",
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self._port = port or free_port()
        self.controller_port = controller_port or free_port()
        self.version = version
        self.heap = heap
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def port(self) -> int:
        """The client (PLAINTEXT) port."""
        return self._port

    @property
    def bootstrap_servers(self) -> str:
        """``"127.0.0.1:PORT"``, for Kafka clients."""
        return f"127.0.0.1:{self._port}"

    @property
    def log_path(self) -> Path:
        """The broker's log file."""
        return self.data_dir / "logs" / "server.log"

    @property
    def _pid_file(self) -> Path:
        return self.data_dir / "kafka.pid"

    @property
    def _properties_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def pid(self) -> int | None:
        """Process id of the JVM this object started, while it runs."""
        return self._proc.pid if self.is_running() and self._proc is not None else None

    def is_running(self) -> bool:
        """Whether the JVM this object started is still alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 90) -> None:
        """Fetch the jars if needed, start the broker and wait until it serves requests.

        Raises :class:`BrokerError` (with the tail of the broker log) when the JVM exits
        early or the broker is not ready within ``timeout`` seconds.
        """
        if self.is_running():
            return
        started = time.monotonic()
        libs = fetch_kafka(self.version)
        java = _java()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._stop_stale_broker()
        for port in (self._port, self.controller_port):
            if port_accepts(port):
                raise BrokerPortInUseError(port)
        self._write_config()
        cluster_id = self._format_storage(java, libs)

        self._log_offset = self.log_path.stat().st_size if self.log_path.is_file() else 0
        out = (self.data_dir / "kafka.out").open("ab")
        try:
            self._proc = subprocess.Popen(
                [*self._jvm_command(java, libs), "kafka.Kafka", str(self._properties_file)],
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Own session: a terminal Ctrl-C reaches only us, and we stop the broker in order.
                start_new_session=True,
            )
        finally:
            out.close()
        self._pid_file.write_text(f"{self._proc.pid}\n")
        atexit.register(self.stop)
        try:
            self._wait_ready(cluster_id, started + timeout)
        except BaseException:
            self.stop(timeout=5)
            raise
        log.info(
            "kafka.ready",
            bootstrap_servers=self.bootstrap_servers,
            data_dir=str(self.data_dir),
            seconds=_since(started),
        )

    def stop(self, timeout: float = 30) -> None:
        """Stop the broker: SIGTERM, then SIGKILL after ``timeout`` s. Idempotent."""
        proc, self._proc = self._proc, None
        atexit.unregister(self.stop)
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("kafka.kill", pid=proc.pid, after_seconds=timeout)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if read_pid(self._pid_file) == proc.pid:
            self._pid_file.unlink(missing_ok=True)
        log.info("kafka.stopped", data_dir=str(self.data_dir))

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

    def _stop_stale_broker(self) -> None:
        """Stop a broker that a killed earlier run left running on this data dir."""
        pid = read_pid(self._pid_file)
        if pid is None:
            return
        cmdline = process_cmdline(pid)
        if cmdline and "kafka.Kafka" in cmdline and str(self._properties_file) in cmdline:
            log.warning("kafka.stale_broker", pid=pid, data_dir=str(self.data_dir))
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            try:
                wait_until(lambda: process_cmdline(pid) is None, timeout=30, what="stale broker")
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                wait_until(lambda: process_cmdline(pid) is None, timeout=10, what="stale broker")
        self._pid_file.unlink(missing_ok=True)

    def _write_config(self) -> None:
        kraft = self.data_dir / "kraft"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{self._port},CONTROLLER://127.0.0.1:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self._port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(kraft),
            "metadata.log.dir": str(kraft),
            "num.partitions": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            # Fewer internal partitions than the default 50: created on first use, and a
            # single node gains nothing from more, so first group join/transaction is faster.
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.num.partitions": "10",
            "group.initial.rebalance.delay.ms": "0",
            # faust-streaming creates some of its internal topics by producing to them.
            "auto.create.topics.enable": "true",
            "delete.topic.enable": "true",
        }
        self._properties_file.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        logs = self.data_dir / "logs"
        logs.mkdir(exist_ok=True)
        (self.data_dir / "log4j.properties").write_text(
            "log4j.rootLogger=WARN, file\n"
            "log4j.appender.file=org.apache.log4j.RollingFileAppender\n"
            f"log4j.appender.file.File={logs / 'server.log'}\n"
            "log4j.appender.file.MaxFileSize=20MB\n"
            "log4j.appender.file.MaxBackupIndex=2\n"
            "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
            "log4j.logger.kafka=INFO\n"
            "log4j.logger.org.apache.kafka=INFO\n"
            "log4j.logger.kafka.request.logger=WARN\n"
            "log4j.logger.state.change.logger=WARN\n"
        )

    def _format_storage(self, java: str, libs: Path) -> str:
        """Format the KRaft log dir unless already formatted; return the cluster id."""
        meta = self.data_dir / "kraft" / "meta.properties"
        id_file = self.data_dir / "cluster.id"
        if meta.is_file():
            for line in meta.read_text().splitlines():
                if line.startswith("cluster.id="):
                    cluster_id = line.split("=", 1)[1].strip()
                    id_file.write_text(f"{cluster_id}\n")
                    return cluster_id
        cluster_id = id_file.read_text().strip() if id_file.is_file() else _new_cluster_id()
        id_file.write_text(f"{cluster_id}\n")
        cmd = [
            *self._jvm_command(java, libs),
            "kafka.tools.StorageTool",
            "format",
            "--ignore-formatted",
            "-t",
            cluster_id,
            "-c",
            str(self._properties_file),
        ]
        result = subprocess.run(
            cmd,
            cwd=self.data_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            tail = "\n".join(result.stdout.splitlines()[-30:])
            raise BrokerError(f"formatting Kafka storage in {self.data_dir} failed:\n{tail}")
        return cluster_id

    def _jvm_command(self, java: str, libs: Path) -> list[str]:
        return [
            java,
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self.data_dir / 'log4j.properties'}",
            f"-Dkafka.logs.dir={self.data_dir / 'logs'}",
            "-cp",
            f"{libs}/*",
        ]

    def _wait_ready(self, cluster_id: str, deadline: float) -> None:
        last_problem = ""

        def serving() -> bool:
            nonlocal last_problem
            self._check_alive()
            if not port_accepts(self._port):
                return False
            try:
                seen = run_sync(_cluster_id(self.bootstrap_servers))
            except Exception as exc:  # any client error just means "not ready yet"
                last_problem = f"{type(exc).__name__}: {exc}"
                return False
            if seen != cluster_id:
                last_problem = f"port {self._port} is served by another cluster ({seen})"
                return False
            return True

        try:
            wait_until(
                serving,
                timeout=max(0.0, deadline - time.monotonic()),
                interval=0.2,
                what=f"Kafka broker on {self.bootstrap_servers}",
            )
        except TimeoutError as exc:
            raise BrokerError(f"{exc}; {last_problem}\n{self._log_tail()}") from None

    def _check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            raise BrokerError(
                f"Kafka broker exited with code {self._proc.returncode} "
                f"during startup\n{self._log_tail()}"
            )

    def _log_tail(self) -> str:
        parts = []
        errors = _error_lines(self.log_path, self._log_offset)
        if errors:
            parts.append(f"--- errors in {self.log_path} ---\n{errors}")
        for path in (self.log_path, self.data_dir / "kafka.out"):
            text = tail_text(path, 15)
            if text:
                parts.append(f"--- {path} (tail) ---\n{text}")
        return "\n".join(parts)


def _error_lines(path: Path, offset: int, limit: int = 8) -> str:
    """ERROR/FATAL lines written since ``offset``, each with the line after it.

    The broker logs its cause (e.g. a port already bound) long before the tail, which is
    all shutdown noise.
    """
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    picked: list[str] = []
    for i, line in enumerate(lines):
        if "] ERROR " in line or "] FATAL " in line:
            picked.extend(lines[i : i + 2])
            if len(picked) >= 2 * limit:
                break
    return "\n".join(picked)


async def _cluster_id(bootstrap_servers: str) -> str | None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=5000)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        await admin.list_topics()
    finally:
        await admin.close()
    cid = cluster.get("cluster_id")
    return str(cid) if cid is not None else None


def _main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m flowbus.devstack.kafka")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="fetch the broker jars and print where they are")
    run = sub.add_parser("run", help="run a broker until Ctrl-C / SIGTERM")
    run.add_argument("--port", type=int, default=9092)
    run.add_argument("--controller-port", type=int, default=None)
    run.add_argument("--data-dir", type=Path, default=Path(".flowbus/kafka"))
    args = parser.parse_args(argv)
    # Logs go to stderr so `fetch` prints nothing but the path on stdout.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    try:
        if args.command == "fetch":
            print(fetch_kafka())
            return 0
        with KafkaBroker(args.data_dir, args.port, args.controller_port) as broker:
            print(f"Kafka ready on {broker.bootstrap_servers}", flush=True)
            return 0 if wait_for_signal(broker.is_running) else 1
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(_main())
