"""Write-back: a stage's results copied into columns of the source table (``ai_label``,
``ai_confidence``…), in the transaction that records the outcome, so the two never disagree.

A failed attempt, or a gate that skipped the stage, sets the columns back to NULL: a reader of
the source table never takes a stale or default value for a result. The columns must not be
ones the pipeline reads (the configuration refuses that), so writing them raises no change
event. One statement per batch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

from sqlalchemy import Connection, Engine, text

from enrichment.config import SourceConfig
from enrichment.source_tables import column_types, quote


class WriteBack:
    """Copies output fields of one stage into source columns (``columns``: field -> column)."""

    def __init__(
        self, engine: Engine, source: SourceConfig, columns: Mapping[str, str], *, key: str
    ) -> None:
        """``key`` is the stage's configuration key path, named when a column is missing."""
        self.engine = engine
        self.source = source
        self.columns = dict(columns)
        self.key = key

    @cached_property
    def _types(self) -> tuple[str, dict[str, str]]:
        """The key's and each column's SQL type, checked once (a missing column names its key)."""
        wanted = {self.source.key_column: f"sources[{self.source.name}].key_column"}
        wanted.update(
            {column: f"{self.key}.write_back.{field}" for field, column in self.columns.items()}
        )
        with self.engine.connect() as connection:
            types = column_types(connection, self.source.table, f"{self.key}.write_back", wanted)
        key_type = types.pop(self.source.key_column)
        return key_type, types

    def values(self, output: Mapping[str, Any]) -> dict[str, Any]:
        """The column values a stage output writes."""
        return {column: output.get(field) for field, column in self.columns.items()}

    def write(self, connection: Connection, rows: Mapping[str, Mapping[str, Any]]) -> None:
        """Set the columns of the records ``rows`` names (key -> column -> value)."""
        if not rows or not self.columns:
            return
        key_type, types = self._types
        declared = ", ".join(f"{quote(column)} {types[column]}" for column in types)
        assignments = ", ".join(f"{quote(column)} = v.{quote(column)}" for column in types)
        payload = [{"record_key": key, **rows[key]} for key in sorted(rows)]
        connection.execute(
            text(
                f"UPDATE {quote(self.source.table)} AS t SET {assignments} "
                f"FROM jsonb_to_recordset(CAST(:rows AS jsonb)) "
                f"AS v(record_key text, {declared}) "
                f"WHERE t.{quote(self.source.key_column)} = CAST(v.record_key AS {key_type})"
            ),
            {"rows": json.dumps(payload, default=str, allow_nan=False)},
        )

    def clear(self, connection: Connection, keys: Sequence[str]) -> None:
        """Set the columns of ``keys`` back to NULL (rows already NULL are not rewritten)."""
        if not keys or not self.columns:
            return
        key_type, types = self._types
        assignments = ", ".join(f"{quote(column)} = NULL" for column in types)
        any_set = " OR ".join(f"{quote(column)} IS NOT NULL" for column in types)
        connection.execute(
            text(
                f"UPDATE {quote(self.source.table)} SET {assignments} "
                f"WHERE {quote(self.source.key_column)} = ANY(CAST(:keys AS {key_type}[])) "
                f"AND ({any_set})"
            ),
            {"keys": list(keys)},
        )
