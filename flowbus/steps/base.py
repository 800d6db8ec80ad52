"""The interface every step type implements. One step type = one small class."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from flowbus.definitions.model import StepModel

if TYPE_CHECKING:
    from flowbus.engine.effects import TimerKind
    from flowbus.engine.inputs import ActionResult, ApprovalDecision, ChildFinished
    from flowbus.engine.run import StepCall
    from flowbus.engine.state import ErrorInfo

M = TypeVar("M", bound=StepModel)


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
