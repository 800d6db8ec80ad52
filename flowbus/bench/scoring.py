"""The scoring service `flowbus bench realistic` calls from its webhook step: a small HTTP
server answering every request at once with `{"ok": true, "score": n}`.

It runs in its own process (`python -m flowbus.bench.scoring PORT`), so its work is
neither counted as the worker's nor competing with the bench's own event loop.
"""

from __future__ import annotations

import subprocess
import sys
import time
import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import orjson

from flowbus.devstack.ports import free_port, port_accepts

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def score_app(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
    """An ASGI app: the score is a stable function of the request body."""
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    payload = orjson.dumps({"ok": True, "score": zlib.crc32(body) % 1000})
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class ScoringService:
    """The server process on 127.0.0.1, started and stopped as a context manager."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/score"

    def __enter__(self) -> ScoringService:
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "flowbus.bench.scoring", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while not port_accepts(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"the scoring service did not start; see {self._log}")
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


def main() -> None:
    import uvicorn

    uvicorn.run(
        score_app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        lifespan="off",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
