"""context: fetch each record, its related entities one hop away and its semantic metadata, and
build the enriched text. One query per batch, whatever the number of relations."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

from sqlalchemy import Engine, text

from enrichment.config import RelatedEntity, SourceConfig
from enrichment.formatting import TextFormatter
from enrichment.source_tables import check_source, quote
from enrichment.stages.base import ClaimedRecord, Completed, Failed, StageOutcome


def _related_subquery(relation: RelatedEntity) -> str:
    fields = ", ".join(quote(field) for field in relation.fields)
    match = f"r.{quote(relation.join.remote)} = s.{quote(relation.join.local)}"
    if relation.many:
        return (
            f"(SELECT coalesce(jsonb_agg(to_jsonb(x)), '[]'::jsonb) FROM "
            f"(SELECT {fields} FROM {quote(relation.table)} AS r WHERE {match} "
            f"LIMIT {relation.limit}) AS x)"
        )
    return (
        f"(SELECT to_jsonb(x) FROM (SELECT {fields} FROM {quote(relation.table)} AS r "
        f"WHERE {match} LIMIT 1) AS x)"
    )


class ContextStage:
    name = "context"

    def __init__(self, engine: Engine, source: SourceConfig, *, config_hash: str) -> None:
        self.engine = engine
        self.source = source
        self.config_hash = config_hash
        self.formatter = TextFormatter(source)

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

    def run(self, records: Sequence[ClaimedRecord]) -> Mapping[str, StageOutcome]:
        with self.engine.connect() as connection:
            rows = {
                row.record_key: row
                for row in connection.execute(
                    text(self._query), {"keys": [record.record_key for record in records]}
                )
            }
        outcomes: dict[str, StageOutcome] = {}
        for record in records:
            row = rows.get(record.record_key)
            if row is None:
                outcomes[record.record_key] = Failed(
                    "RecordNotFound",
                    f"record {record.record_key!r} is not in {self.source.table} "
                    f"(field {self.source.key_column!r})",
                    retryable=False,
                )
                continue
            outcomes[record.record_key] = self._enrich(record, dict(row._mapping))
        return outcomes

    def _enrich(self, record: ClaimedRecord, row: Mapping[str, Any]) -> StageOutcome:
        source = self.source
        if not row["workspace_id"]:
            return Failed(
                "MissingWorkspace",
                f"record {record.record_key!r}: field {source.workspace_column!r} is empty",
                retryable=False,
            )
        related = {relation.name: row[f"rel_{relation.name}"] for relation in source.related}
        try:
            enriched = self.formatter.render(
                row["record"], related, workspace_id=row["workspace_id"]
            )
        except Exception as err:  # a template that fails on this record's values
            return Failed(
                "TemplateError",
                f"record {record.record_key!r}: the template of source {source.name!r} failed: "
                f"{type(err).__name__}: {err}",
                retryable=False,
            )
        updated_at = row["source_updated_at"]
        output = {
            "text": enriched,
            "workspace_id": row["workspace_id"],
            "entity_type": source.entity.type,
            "semantic_category": source.entity.category,
            "related_entity_types": sorted(
                {
                    relation.entity_type or relation.name
                    for relation in source.related
                    if related.get(relation.name)
                }
            ),
            "metadata": {
                key: value
                for key, value in row["record"].items()
                if isinstance(value, str | int | float | bool) and len(str(value)) <= 200
            },
            "source_updated_at": updated_at.isoformat() if updated_at else None,
        }
        # The source's own updated-at is left out: touching a row without changing what the
        # pipeline reads must not re-embed it.
        read = {key: value for key, value in output.items() if key != "source_updated_at"}
        fingerprint = json.dumps([self.config_hash, read], sort_keys=True, default=str)
        return Completed(output=output, input_hash=hashlib.sha256(fingerprint.encode()).hexdigest())
