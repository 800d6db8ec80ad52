"""`set_variables`: compute values (templates) into the instance variables."""

from __future__ import annotations

from typing import Any

from flowbus.actions.base import ActionConfig, ActionContext, ActionType, InlineOutcome


class SetVariablesConfig(ActionConfig):
    model_config = ActionConfig.model_config | {"extra": "allow"}


class SetVariables(ActionType):
    """The config is a mapping of variable name to value; values may be templates."""

    name = "set_variables"
    config_model = SetVariablesConfig
    inline = True

    def run_inline(self, config: dict[str, Any], context: ActionContext) -> InlineOutcome:
        return InlineOutcome(output=dict(config), variables=dict(config))
