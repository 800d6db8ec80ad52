"""Executors of external actions: the I/O half of the actions the core only declares.

The engine emits a `RunAction` for an action whose declaration (in `flowbus.actions`) says
`inline = False`; the action runner finds the executor registered here under the same
name and runs it outside any database transaction. A failure the workflow may route on
is an `ActionFailed`; its `to_error_info()` becomes the step's error.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ValidationError

from flowbus.actions.base import ActionContext, ActionType
from flowbus.engine.state import ErrorInfo


class ActionExecutor(ABC):
    """Runs one external action, declared in the core as `action`."""

    action: ClassVar[type[ActionType]]

    @abstractmethod
    async def run(self, config: dict[str, Any], context: ActionContext) -> Any:
        """Run the action with its rendered config; its output, or an `ActionFailed`."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release what the executor holds (pooled connections); it may run again after."""


class ActionFailed(Exception):
    """An external action failed in a way the workflow may route on (`onError`, retry)."""

    error_type: ClassVar[str] = "ActionFailed"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details

    def to_error_info(self, step_id: str | None = None) -> ErrorInfo:
        """The step error this failure records."""
        return ErrorInfo(
            type=self.error_type,
            message=self.message,
            code=self.code,
            step_id=step_id,
            details=self.details,
        )


class ActionConfigError(ActionFailed):
    """The rendered config is not valid (a template produced a wrong value)."""

    error_type = "ActionConfigError"


Config = TypeVar("Config", bound=BaseModel)


def validated_config(model: type[Config], config: dict[str, Any]) -> Config:
    """`config` read as `model`, or an `ActionConfigError` naming each field and what is
    wrong with it: locations and messages only, since values may hold secrets."""
    try:
        return model.model_validate(config)
    except ValidationError as exc:
        raise ActionConfigError(
            "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
                for err in exc.errors()
            )
        ) from None
