"""Many rows in one statement: `INSERT ... SELECT ... FROM unnest(...)`, with one array
parameter per column.

The driver runs an `INSERT ... RETURNING` (or an upsert) once per row when given many
rows; an array per column keeps one round trip and one cached plan for any batch size, and
the rows keep the order given (`WITH ORDINALITY`), so sequences number them in that order.
JSONB values travel as JSON text, serialized once with orjson.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import BigInteger, DateTime, Integer, LargeBinary, Table, Text, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.sql.elements import TextClause

_ARRAY_TYPES: tuple[tuple[type[Any], str], ...] = (
    (JSONB, "text"),
    (UUID, "uuid"),
    (BigInteger, "bigint"),
    (Integer, "integer"),
    (DateTime, "timestamptz"),
    (LargeBinary, "bytea"),
    (Text, "text"),
)


class JsonText(str):
    """A JSONB value already serialized (pydantic's `model_dump_json`, say)."""


class Unnest:
    """`table`'s `columns` as one array parameter each, unnested back into rows."""

    def __init__(self, table: Table, columns: Sequence[str]) -> None:
        self.columns = tuple(columns)
        self.json = frozenset(c for c in columns if isinstance(table.c[c].type, JSONB))
        names = ", ".join(columns)
        arrays = ", ".join(f"CAST(:{c} AS {_array_type(table, c)}[])" for c in columns)
        casts = ", ".join(f"CAST({c} AS jsonb) AS {c}" if c in self.json else c for c in columns)
        self.rows = f"SELECT {casts} FROM unnest({arrays}) WITH ORDINALITY AS u({names}, n)"
        """The rows, typed as the table's columns, in the order given (`ORDER BY n`)."""

    def parameters(self, rows: Iterable[Mapping[str, Any]]) -> dict[str, list[Any]]:
        """One list per column; JSONB values as JSON text (None is JSON null)."""
        listed = list(rows)
        found: dict[str, list[Any]] = {}
        for column in self.columns:
            values = [row[column] for row in listed]
            if column in self.json:
                values = [v if isinstance(v, JsonText) else _json(v) for v in values]
            found[column] = values
        return found


class BulkInsert(Unnest):
    """An INSERT of many rows into `table`'s `columns`, then `tail` (ON CONFLICT ...,
    RETURNING ...); rows are inserted in the order given."""

    def __init__(self, table: Table, columns: Sequence[str], tail: str = "") -> None:
        super().__init__(table, columns)
        self.statement: TextClause = text(
            f"INSERT INTO {table.name} AS t ({', '.join(columns)}) {self.rows} ORDER BY n {tail}"
        )


class BulkUpdate(Unnest):
    """An UPDATE of many rows of `table`, found by `key`, setting the other `columns`."""

    def __init__(self, table: Table, key: str, columns: Sequence[str]) -> None:
        super().__init__(table, [key, *columns])
        assignments = ", ".join(f"{c} = v.{c}" for c in columns)
        self.statement: TextClause = text(
            f"UPDATE {table.name} AS t SET {assignments} FROM ({self.rows}) AS v"
            f" WHERE t.{key} = v.{key}"
        )


def _array_type(table: Table, column: str) -> str:
    kind = table.c[column].type
    for sql_type, name in _ARRAY_TYPES:
        if isinstance(kind, sql_type):
            return name
    raise TypeError(f"no array type for {table.name}.{column} ({kind!r})")


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()
