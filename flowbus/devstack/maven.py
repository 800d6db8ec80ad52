"""Jars from Maven Central, resolved by Maven into a cache directory, once.

A completed fetch is a no-op; an interrupted one is redone. Concurrent callers (other
processes too) serialise on a file lock.
"""

from __future__ import annotations

import fcntl
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

Artifact = tuple[str, str, str]
"""``(groupId, artifactId, version)``."""

_MARKER = "complete.json"
_MAVEN_TIMEOUT_S = 900
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def fetch_jars(
    artifacts: list[Artifact],
    into: Path,
    *,
    what: str,
    expect: str,
    error: type[Exception],
) -> Path:
    """Resolve ``artifacts`` and their runtime dependencies into ``<into>/libs``.

    ``expect`` is the prefix of a jar the result must hold; ``what`` names the fetch in
    messages. Raises ``error`` when Maven is missing or fails.
    """
    libs = into / "libs"
    if _cache_complete(into):
        return libs
    into.mkdir(parents=True, exist_ok=True)
    with (into / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _cache_complete(into):
            return libs
        started = time.monotonic()
        _copy_dependencies(artifacts, into, what=what, expect=expect, error=error)
        seconds = round(time.monotonic() - started, 2)
        log.info("maven.fetched", what=what, path=str(libs), seconds=seconds)
    return libs


def _cache_complete(into: Path) -> bool:
    try:
        jars = json.loads((into / _MARKER).read_text())["jars"]
    except (OSError, ValueError, KeyError):
        return False
    libs = into / "libs"
    return bool(jars) and all((libs / name).is_file() for name in jars)


def _copy_dependencies(
    artifacts: list[Artifact], into: Path, *, what: str, expect: str, error: type[Exception]
) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise error(f"Maven (`mvn`) is not on PATH; it is needed to fetch {what}")
    (into / _MARKER).unlink(missing_ok=True)
    partial = into / "libs.partial"
    shutil.rmtree(partial, ignore_errors=True)
    pom = into / "pom.xml"
    pom.write_text(_pom(artifacts, into.name))
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
        raise error(f"Maven did not finish fetching {what} in {exc.timeout} s") from exc
    jars = sorted(p.name for p in partial.glob("*.jar")) if partial.is_dir() else []
    if result.returncode != 0 or not any(j.startswith(expect) for j in jars):
        raise error(
            f"Maven failed to fetch {what} (exit {result.returncode}):\n"
            f"{_maven_tail(result.stdout)}"
        )
    libs = into / "libs"
    shutil.rmtree(libs, ignore_errors=True)
    partial.rename(libs)
    # The marker is written last so an interrupted fetch is never mistaken for a complete one.
    tmp = into / f"{_MARKER}.tmp"
    tmp.write_text(json.dumps({"version": into.name, "jars": jars}, indent=1))
    tmp.replace(into / _MARKER)


def _maven_tail(output: str, lines: int = 30) -> str:
    """The last lines of Maven's output, minus colour codes and its generic help footer."""
    text = _ANSI.sub("", output)
    text = text.split("[ERROR] To see the full stack trace", 1)[0]
    kept = [line for line in text.splitlines() if line.strip() not in ("", "[ERROR]")]
    return "\n".join(kept[-lines:])


def _pom(artifacts: list[Artifact], version: str) -> str:
    dep_xml = "".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></dependency>\n"
        for g, a, v in artifacts
    )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0">\n'
        "  <modelVersion>4.0.0</modelVersion>\n"
        "  <groupId>dev.flowbus.devstack</groupId>\n"
        "  <artifactId>runtime</artifactId>\n"
        f"  <version>{version}</version>\n"
        "  <packaging>pom</packaging>\n"
        f"  <dependencies>\n{dep_xml}  </dependencies>\n"
        "</project>\n"
    )
