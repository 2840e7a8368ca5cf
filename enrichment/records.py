"""Reading a batch of a source's records with their related entities one hop away: one query
per batch, whatever the number of relations. The first stage of a pipeline reads through here
(context, or redact when the source's privacy mode asks for it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sqlalchemy import Engine, text

from enrichment.config import RelatedEntity, SourceConfig
from enrichment.source_tables import check_source, quote
from enrichment.stages.base import Failed


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record as the pipeline reads it: its configured columns and, per relation, the
    related row (or list of rows, or None)."""

    key: str
    workspace_id: str | None
    source_updated_at: str | None  # ISO 8601
    record: Mapping[str, Any]
    related: Mapping[str, Any]


def _related_subquery(relation: RelatedEntity) -> str:
    fields = ", ".join(quote(field) for field in relation.fields)
    match = f"r.{quote(relation.join.remote)} = s.{quote(relation.join.local)}"
    if relation.many:
        # Ordered by the fields themselves, so the list (and the input hash built from it)
        # does not change with the physical order of the rows, and LIMIT keeps the same ones.
        order = ", ".join(f"{quote(field)} NULLS LAST" for field in relation.fields)
        outer = ", ".join(f"x.{quote(field)} NULLS LAST" for field in relation.fields)
        return (
            f"(SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY {outer}), '[]'::jsonb) FROM "
            f"(SELECT {fields} FROM {quote(relation.table)} AS r WHERE {match} "
            f"ORDER BY {order} LIMIT {relation.limit}) AS x)"
        )
    return (
        f"(SELECT to_jsonb(x) FROM (SELECT {fields} FROM {quote(relation.table)} AS r "
        f"WHERE {match} LIMIT 1) AS x)"
    )


class SourceRecords:
    """The records of one configured source, read a batch at a time."""

    def __init__(self, engine: Engine, source: SourceConfig) -> None:
        self.engine = engine
        self.source = source

    @cached_property
    def _query(self) -> str:
        """Built once from the configuration, after checking the tables and columns exist."""
        source = self.source
        with self.engine.connect() as connection:
            key_type = check_source(connection, source, relations=source.related, updated_at=True)
        record = ", ".join(f"'{column}', s.{quote(column)}" for column in source.columns)
        updated = (
            f"s.{quote(source.updated_at_column)}"
            if source.updated_at_column
            else "NULL::timestamptz"
        )
        related = "".join(
            f", {_related_subquery(relation)} AS {quote('rel_' + relation.name)}"
            for relation in source.related
        )
        return (
            f"SELECT s.{quote(source.key_column)}::text AS record_key, "
            f"s.{quote(source.workspace_column)}::text AS workspace_id, "
            f"{updated} AS source_updated_at, jsonb_build_object({record}) AS record{related} "
            f"FROM {quote(source.table)} AS s "
            f"WHERE s.{quote(source.key_column)} = ANY(CAST(:keys AS {key_type}[]))"
        )

    def fetch(self, keys: Sequence[str]) -> dict[str, SourceRecord]:
        """The records of ``keys`` that exist; a missing one is left out."""
        with self.engine.connect() as connection:
            rows = connection.execute(text(self._query), {"keys": list(keys)}).mappings().all()
        fetched = {}
        for row in rows:
            updated_at = row["source_updated_at"]
            fetched[row["record_key"]] = SourceRecord(
                key=row["record_key"],
                workspace_id=row["workspace_id"],
                source_updated_at=updated_at.isoformat() if updated_at else None,
                record=row["record"],
                related={r.name: row[f"rel_{r.name}"] for r in self.source.related},
            )
        return fetched

    def not_found(self, key: str) -> Failed:
        return Failed(
            "RecordNotFound",
            f"record {key!r} is not in {self.source.table} (field {self.source.key_column!r})",
            retryable=False,
        )

    def missing_workspace(self, key: str) -> Failed:
        return Failed(
            "MissingWorkspace",
            f"record {key!r}: field {self.source.workspace_column!r} is empty",
            retryable=False,
        )
