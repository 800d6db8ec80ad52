"""The hostile-input suite runs on the real broker and database, like the integration suite."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "hostile" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
