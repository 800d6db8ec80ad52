"""The fluent step: `ctx.step(name, fn, *args)` configured with timeout, retry,
compensation and optional, then run (or taken from the history on replay)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, Self

from flowbus.sdk.errors import StepError, _Compensation, error_document
from flowbus.sdk.values import seconds, to_json

if TYPE_CHECKING:
    from flowbus.sdk.context import WorkflowContext


class Step:
    """A fluent step: configure it, then `await step.run()` (or `await step`)."""

    def __init__(
        self, ctx: WorkflowContext, name: str, fn: Callable[..., Any], args: tuple[Any, ...]
    ) -> None:
        self._ctx = ctx
        self._name = name
        self._fn = fn
        self._args = args
        self._timeout: float | None = None
        self._attempts = 1
        self._delay = 1.0
        self._strategy: Literal["exponential", "fixed"] = "exponential"
        self._multiplier = 2.0
        self._max_delay: float | None = None
        self._compensation: Callable[[Any], Any] | None = None
        self._optional = False

    def timeout(self, duration: str | float | timedelta) -> Self:
        """Fail an attempt that runs longer than `duration` (seconds or ISO 8601) with
        `TimeoutError`; applies to async step functions."""
        self._timeout = seconds(duration)
        return self

    def retry(
        self,
        max_attempts: int = 3,
        delay: str | float | timedelta = 1.0,
        strategy: Literal["exponential", "fixed"] = "exponential",
        multiplier: float = 2.0,
        max_delay: str | float | timedelta | None = None,
    ) -> Self:
        """Run up to `max_attempts` times, waiting `delay` before the second attempt and
        `delay * multiplier**(n-1)` (exponential, capped by `max_delay`) or `delay`
        (fixed) before later ones."""
        if max_attempts < 1:
            raise ValueError("max_attempts is at least 1")
        if strategy not in ("exponential", "fixed"):
            raise ValueError("strategy is 'exponential' or 'fixed'")
        self._attempts = max_attempts
        self._delay = seconds(delay)
        self._strategy = strategy
        self._multiplier = multiplier
        self._max_delay = seconds(max_delay) if max_delay is not None else None
        return self

    def compensate(self, fn: Callable[[Any], Any]) -> Self:
        """Undo this step if the workflow later fails or is cancelled: `fn(result)` (sync
        or async) runs with the step's result, newest step first."""
        self._compensation = fn
        return self

    def optional(self) -> Self:
        """A failure of this step is reported but neither fails the workflow nor
        compensates it; `run()` then returns `None`."""
        self._optional = True
        return self

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based)."""
        if self._strategy == "fixed":
            wait = self._delay
        else:
            wait = self._delay * self._multiplier ** (attempt - 1)
        return min(wait, self._max_delay) if self._max_delay is not None else wait

    async def run(self) -> Any:
        """The step's result: the recorded one when the history has it, else run now and
        checkpoint it. A failure raises `StepError` (or returns `None` when optional)."""
        ctx, name = self._ctx, self._name
        seq, entry = ctx._reach("step", name)
        status = entry.get("status") if entry is not None else None
        if status in ("completed", "compensated", "compensation_failed"):
            assert entry is not None
            result = entry.get("result")
            if status == "completed" and self._compensation is not None:
                ctx._compensations.append(_Compensation(name, seq, self._compensation, result))
            ctx._completed[name] = result
            return result
        if status == "failed":
            assert entry is not None
            if self._optional:
                return None
            error = entry.get("error") or {}
            raise StepError(name, str(error.get("type", "Error")), str(error.get("message", "")))
        ctx._check_halt()
        return await self._execute(seq)

    async def _execute(self, seq: int) -> Any:
        ctx, name = self._ctx, self._name
        last: Exception | None = None
        for attempt in range(1, self._attempts + 1):
            await ctx._step_record(name, seq, "started", attempt=attempt, optional=self._optional)
            ctx.current_step = name
            try:
                result = to_json(await call_user_code(self._fn, self._args, self._timeout))
            except Exception as exc:
                last = exc
                if attempt < self._attempts:
                    await asyncio.sleep(self.backoff(attempt))
                continue
            finally:
                ctx.current_step = None
            await ctx._step_record(
                name, seq, "completed", attempt=attempt, optional=self._optional, result=result
            )
            if self._compensation is not None:
                ctx._compensations.append(_Compensation(name, seq, self._compensation, result))
            ctx._completed[name] = result
            return result
        assert last is not None
        error = error_document(last)
        await ctx._step_record(
            name, seq, "failed", attempt=self._attempts, optional=self._optional, error=error
        )
        if self._optional:
            return None
        raise StepError(name, error["type"], error["message"]) from last

    def __await__(self) -> Any:
        return self.run().__await__()


async def call_user_code(fn: Callable[..., Any], args: tuple[Any, ...], limit: float | None) -> Any:
    value = fn(*args)
    if inspect.isawaitable(value):
        return await asyncio.wait_for(value, limit)
    return value
