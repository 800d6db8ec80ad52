"""How every background loop of the worker survives errors: one backoff policy, and one
supervisor that restarts a loop whose round failed.

Backoff: the first pause is 0.1 s, each failure in a row doubles it up to 5 s, and a
jitter of up to a quarter spreads the workers that failed together (a pause at the cap
stays at the cap). A success starts the count again.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

log = structlog.get_logger(__name__)

FIRST_PAUSE = 0.1
LONGEST_PAUSE = 5.0


@dataclass(slots=True)
class Backoff:
    """Pauses between tries of something that keeps failing."""

    first: float = FIRST_PAUSE
    cap: float = LONGEST_PAUSE
    failures: int = field(default=0, init=False)

    def next_pause(self) -> float:
        """Count a failure; the pause before the next try."""
        pause: float = self.first * 2.0 ** min(self.failures, 32)
        self.failures += 1
        if pause >= self.cap:
            return self.cap
        return min(self.cap, pause * (1 + random.random() / 4))

    async def pause(self) -> None:
        """Count a failure and sleep before the next try."""
        await asyncio.sleep(self.next_pause())

    def reset(self) -> None:
        self.failures = 0


def first_line(error: BaseException) -> str:
    text = str(error)
    return text.splitlines()[0] if text else type(error).__name__


async def supervise(name: str, loop: Callable[[], Awaitable[None]]) -> None:
    """Run `loop` forever: when it raises, log it and start it again after a backoff.
    An error escaping a background loop would stop the whole worker."""
    backoff = Backoff()
    while True:
        try:
            await loop()
            backoff.reset()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("loop.restarting", loop=name, error=first_line(exc))
            await backoff.pause()
