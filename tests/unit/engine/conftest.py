"""Fixtures for engine specifications."""

from __future__ import annotations

import pytest

from flowbus.actions.base import ActionConfig, ActionType
from flowbus.actions.registry import ACTIONS


class ChargeConfig(ActionConfig):
    account: str
    amount: int


class Charge(ActionType):
    """An action that needs I/O: the engine asks the shell to run it."""

    name = "charge"
    config_model = ChargeConfig
    inline = False


@pytest.fixture
def external_action(monkeypatch: pytest.MonkeyPatch) -> str:
    """Register the external `charge` action for one test; returns its name."""
    monkeypatch.setitem(ACTIONS, Charge.name, Charge())
    return Charge.name
