"""Errors raised while compiling trigger patterns."""

from __future__ import annotations

from typing import Final

_NO_KEY: Final = object()


class PatternError(ValueError):
    """A trigger pattern (or transition shorthand) is invalid.

    ``path`` is the JSON path of the offending part of the pattern, e.g.
    ``data.amount[0]`` (``<root>`` for the pattern itself); ``reason`` says what
    is wrong there. When the pattern belongs to a :class:`TriggerIndex` entry,
    ``key`` is that entry's key and the message starts with it::

        trigger 'wf-42': data.amount[0]: numeric needs pairs of operator and number
    """

    def __init__(self, path: str, reason: str, key: object = _NO_KEY) -> None:
        prefix = "" if key is _NO_KEY else f"trigger {key!r}: "
        super().__init__(f"{prefix}{path}: {reason}")
        self.path = path
        self.reason = reason
        self.key: object = None if key is _NO_KEY else key

    def for_key(self, key: object) -> PatternError:
        """The same error, attributed to the index entry ``key``."""
        return PatternError(self.path, self.reason, key)
