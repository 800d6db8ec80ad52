"""A real single-node Apache Kafka broker (KRaft) for development and tests.

The broker's jars are resolved from Maven Central with Maven into a cache outside the
repository (:mod:`flowbus.devstack.maven`) and run on the installed JDK; no Docker, no
Kafka distribution tarball.

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

import base64
import os
import shutil
import sys
from pathlib import Path

import structlog

from flowbus.devstack.maven import fetch_jars
from flowbus.devstack.ports import PortInUseError, free_port, port_accepts
from flowbus.devstack.server import (
    Launch,
    LocalServer,
    run_sync,
    run_tool,
    serve_until_signal,
    tail_text,
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

KAFKA_VERSION = "3.9.1"
SCALA_VERSION = "2.13"
SLF4J_VERSION = "1.7.36"
RELOAD4J_VERSION = "1.2.25"


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
    artifacts = [
        ("org.apache.kafka", f"kafka_{SCALA_VERSION}", version),
        # Kafka ships no slf4j binding in its Maven dependencies; without one the broker
        # cannot log at all. reload4j is what the Kafka 3.x distribution itself uses.
        ("org.slf4j", "slf4j-reload4j", SLF4J_VERSION),
        ("ch.qos.reload4j", "reload4j", RELOAD4J_VERSION),
    ]
    return fetch_jars(
        artifacts,
        (cache_dir or kafka_cache_root()) / version,
        what=f"Kafka {version}",
        expect=f"kafka_{SCALA_VERSION}-",
        error=BrokerError,
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


def _new_cluster_id() -> str:
    # Same format as Kafka's Uuid.randomUuid().toString(); generated here to save a JVM start.
    while True:
        cid = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


class KafkaBroker(LocalServer):
    """A single-node KRaft Kafka broker (broker and controller in one JVM) on 127.0.0.1.

    ``port``/``controller_port`` of ``None`` pick free ports. The data dir is reused
    between runs. Use as a context manager or call :meth:`start` and :meth:`stop`;
    starting fetches the jars first if needed.
    """

    name = "Kafka broker"
    event = "kafka"
    error = BrokerError
    port_error = BrokerPortInUseError
    start_timeout = 90
    ready_interval = 0.2

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        controller_port: int | None = None,
        version: str = KAFKA_VERSION,
        heap: str = "512m",
    ) -> None:
        super().__init__(data_dir, port)
        self.controller_port = controller_port or free_port()
        self.version = version
        self.heap = heap
        self._java = ""
        self._libs = Path()
        self._cluster_id = ""
        self._log_offset = 0

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

    def _ports(self) -> tuple[int, ...]:
        return (self._port, self.controller_port)

    def _is_own_server(self, cmdline: list[str]) -> bool:
        return "kafka.Kafka" in cmdline and str(self._properties_file) in cmdline

    def _prepare(self) -> None:
        self._libs = fetch_kafka(self.version)
        self._java = _java()

    def _set_up(self) -> Launch:
        self._write_config()
        self._cluster_id = self._format_storage()
        self._log_offset = self.log_path.stat().st_size if self.log_path.is_file() else 0
        return Launch(
            command=[*self._jvm_command(), "kafka.Kafka", str(self._properties_file)],
            output=self.data_dir / "kafka.out",
            cwd=self.data_dir,
        )

    def _probe(self) -> str | None:
        if not port_accepts(self._port):
            return f"nothing accepts connections on port {self._port} yet"
        seen = run_sync(_cluster_id(self.bootstrap_servers))
        if seen != self._cluster_id:
            return f"port {self._port} is served by another cluster ({seen})"
        return None

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

    def _format_storage(self) -> str:
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
        run_tool(
            [
                *self._jvm_command(),
                "kafka.tools.StorageTool",
                "format",
                "--ignore-formatted",
                "-t",
                cluster_id,
                "-c",
                str(self._properties_file),
            ],
            what=f"formatting Kafka storage in {self.data_dir}",
            error=BrokerError,
            cwd=self.data_dir,
        )
        return cluster_id

    def _jvm_command(self) -> list[str]:
        return [
            self._java,
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self.data_dir / 'log4j.properties'}",
            f"-Dkafka.logs.dir={self.data_dir / 'logs'}",
            "-cp",
            f"{self._libs}/*",
        ]

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
    if args.command == "run":
        broker = KafkaBroker(args.data_dir, args.port, args.controller_port)
        return serve_until_signal(broker, lambda: f"Kafka ready on {broker.bootstrap_servers}")
    try:
        print(fetch_kafka())
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
