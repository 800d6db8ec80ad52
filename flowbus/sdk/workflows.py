"""`@workflow`: an async function registered as a code-first workflow definition."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from flowbus.sdk.values import iso_duration

if TYPE_CHECKING:
    from flowbus.sdk.context import WorkflowContext

WorkflowFunction = Callable[["WorkflowContext", Any], Awaitable[Any]]


@dataclass(frozen=True)
class Workflow:
    """A registered code-first workflow: the function and the definition flowbus stores."""

    id: str
    version: int
    fn: WorkflowFunction
    timeout: str = "PT24H"
    deprecated: bool = False
    triggers: tuple[dict[str, Any], ...] = ()
    input_model: type[BaseModel] | None = None

    def definition(self) -> dict[str, Any]:
        """The declarative document flowbus stores for this workflow (`kind: code`)."""
        schema: dict[str, Any] = (
            self.input_model.model_json_schema() if self.input_model is not None else {}
        )
        return {
            "id": self.id,
            "version": self.version,
            "kind": "code",
            "timeout": self.timeout,
            "deprecated": self.deprecated,
            "triggers": [dict(t) for t in self.triggers],
            "inputSchema": schema,
        }

    def parse_input(self, raw: Any) -> Any:
        """The task's input as the function receives it: validated into the input model
        when there is one, the JSON value as it came otherwise."""
        if self.input_model is None:
            return raw
        return self.input_model.model_validate(raw if raw is not None else {})

    async def __call__(self, ctx: WorkflowContext, input: Any) -> Any:
        return await self.fn(ctx, input)


def pydantic_hint(fn: Callable[..., Any], position: int) -> type[BaseModel] | None:
    """The pydantic model in the type hint of `fn`'s parameter at `position`, if any."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        return None
    params = list(inspect.signature(fn).parameters)
    if len(params) <= position:
        return None
    hint = hints.get(params[position])
    if isinstance(hint, type) and issubclass(hint, BaseModel):
        return hint
    return None


def workflow(
    id: str,
    version: int = 1,
    timeout: str | float = "PT24H",
    deprecated: bool = False,
    triggers: Sequence[dict[str, Any]] = (),
    input_model: type[BaseModel] | None = None,
) -> Callable[[WorkflowFunction], Workflow]:
    """Register `async def fn(ctx: WorkflowContext, input: Model)` as workflow `id`.

    The input model is `input_model`, or the pydantic model in the type hint of the second
    parameter; its JSON schema becomes the definition's `inputSchema`. `triggers` use the
    same trigger language as declarative definitions.
    """
    if version < 1:
        raise ValueError("a workflow version starts at 1")

    def register(fn: WorkflowFunction) -> Workflow:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"workflow {id!r} must be an async function")
        model = input_model if input_model is not None else pydantic_hint(fn, 1)
        return Workflow(
            id=id,
            version=version,
            fn=fn,
            timeout=iso_duration(timeout),
            deprecated=deprecated,
            triggers=tuple(dict(t) for t in triggers),
            input_model=model,
        )

    return register
