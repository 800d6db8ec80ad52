"""PostgreSQL text and JSONB cannot hold the NUL character (\\u0000): inputs that carry it
are refused where they enter, with the place named, instead of failing a transaction."""

from __future__ import annotations

from typing import Any


def nul_path(value: Any, path: str = "") -> str | None:
    """The path of the first string (key or value) in a JSON value holding NUL, if any."""
    if isinstance(value, str):
        return path or "<value>" if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return where
            found = nul_path(item, where)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = nul_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None
