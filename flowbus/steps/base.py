"""The interface every step type implements. One step type = one small class."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

from flowbus.definitions.model import StepModel

if TYPE_CHECKING:
    from flowbus.engine.inputs import ActionResult
    from flowbus.engine.run import StepCall

M = TypeVar("M", bound=StepModel)


class StepType(ABC, Generic[M]):
    """Semantics of one `type` of step.

    The engine calls `enter` when the step becomes active and `on_action_result` when an
    action the step asked for finishes. Through the `StepCall` the step completes, fails,
    runs actions or moves on; it never does I/O itself.
    """

    name: ClassVar[str]
    model: ClassVar[type[StepModel]]

    @abstractmethod
    def enter(self, step: M, call: StepCall) -> None: ...

    def on_action_result(self, step: M, call: StepCall, result: ActionResult) -> None:
        raise NotImplementedError(f"{self.name} steps run no actions")
