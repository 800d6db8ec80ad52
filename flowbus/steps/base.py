"""The interface every step type implements, and what it may act through. One step type =
one small class."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from flowbus.definitions.step import StepModel
from flowbus.engine.effects import Channel, Effect, TimerKind
from flowbus.engine.inputs import ActionResult, ApprovalDecision, ChildFinished
from flowbus.engine.state import ErrorInfo, StepState
from flowbus.expressions import Template

M = TypeVar("M", bound=StepModel)


class Follow(Enum):
    """Continue by the step's own `next` (the default of `StepCall.complete`)."""

    NEXT = "next"


class StepCall(Protocol):
    """What a step type may do to its instance while it handles an input.

    The engine gives one to every hook; through it the step completes, fails, waits,
    sets timers or asks for effects, and never touches the instance any other way.
    """

    @property
    def step(self) -> StepModel: ...

    @property
    def now(self) -> str:
        """The transition's time, as events carry it (RFC 3339)."""
        ...

    @property
    def moment(self) -> datetime:
        """The transition's time."""
        ...

    @property
    def instance_id(self) -> str: ...

    @property
    def state(self) -> StepState:
        """The step's own state; `data` is the step type's to keep what it needs."""
        ...

    @property
    def attempt(self) -> int: ...

    def scope(self) -> dict[str, Any]:
        """What expressions and templates see."""
        ...

    def render(self, template: Template, extra: dict[str, Any] | None = None) -> Any:
        """`template` rendered over the scope (and `extra`)."""
        ...

    def complete(self, output: Any, *, next_step: str | Follow | None = Follow.NEXT) -> None:
        """Finish the step; continue at `next_step`, or by the step's `next` if not given.

        An output over the limits fails the step with `PayloadTooLarge` instead.
        """
        ...

    def fail(self, error: ErrorInfo) -> None: ...

    def fail_with(
        self, error_type: str, message: str, code: str | None = None, details: Any = None
    ) -> None: ...

    def wait(self) -> None:
        """The step now waits for an input from outside (timer, event, child, decision)."""
        ...

    def set_timer(self, kind: TimerKind, after: timedelta | datetime) -> None: ...

    def add_effect(self, effect: Effect) -> None: ...

    def emit(self, channel: Channel, type: str, **data: Any) -> None:
        """An outcome event about this step."""
        ...

    def run_action(self, action_name: str, config: Template) -> None:
        """Run the step's action: inline ones now, external ones through the shell."""
        ...

    def start_branch(self, first_step_id: str) -> None: ...

    def cancel_branch(self, branch_id: str) -> None:
        """Stop a branch of this (parallel) step: its live steps and the ones queued."""
        ...

    def output_of(self, step_id: str) -> Any:
        """The output of a completed step (None otherwise)."""
        ...


class StepType(ABC, Generic[M]):
    """Semantics of one `type` of step.

    The engine calls `enter` when the step becomes active, and the `on_*` hooks when an
    input for it arrives. Through the `StepCall` the step completes, fails, waits, sets
    timers or asks for effects; it never does I/O itself. Retries, timeouts, failure
    routing and compensation are the engine's, the same for every type.
    """

    name: ClassVar[str]
    model: ClassVar[type[StepModel]]

    @abstractmethod
    def enter(self, step: M, call: StepCall) -> None: ...

    def on_action_result(self, step: M, call: StepCall, result: ActionResult) -> None:
        """An external action this step asked for finished."""

    def on_timer(self, step: M, call: StepCall, kind: TimerKind) -> None:
        """A timer this step set fired (retries and step timeouts are the engine's)."""

    def on_event(self, step: M, call: StepCall, event: dict[str, Any]) -> bool:
        """An event for this step arrived; return whether the step took it."""
        return False

    def on_child_finished(self, step: M, call: StepCall, finished: ChildFinished) -> None:
        """A subflow this step started ended."""

    def on_decision(self, step: M, call: StepCall, decision: ApprovalDecision) -> None:
        """A decision on this step's approval arrived."""

    def on_stale_decision(self, step: M, call: StepCall, decision: ApprovalDecision) -> None:
        """A decision arrived while this step is not live (its approval closed, or never
        opened): it changes nothing, though the step may say so."""

    def on_branch_ended(
        self, step: M, call: StepCall, branch_id: str, error: ErrorInfo | None
    ) -> None:
        """A branch of this (parallel) step ran to its end, or failed with `error`."""

    def on_timeout(self, step: M, call: StepCall) -> bool:
        """The step's `timeout` elapsed; return True if the step routed it itself
        (otherwise the engine fails the try with a TimeoutError)."""
        return False

    def on_cancel(self, step: M, call: StepCall) -> None:
        """The step is being stopped: release what it holds (subscriptions, children)."""
