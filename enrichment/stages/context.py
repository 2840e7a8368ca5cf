"""context: fetch each record, its related entities one hop away and its semantic metadata, and
build the enriched text. One query per batch, whatever the number of relations.

Privacy modes: with ``none`` the stage reads the source table itself. With ``redact`` it reads
the redact stage's output (the redacted record) instead, and scans the rendered text once more,
so a value a template put together (``{{ user }}@{{ domain }}``) is caught too. With ``block``
(the source's mode, or a record the redact stage could not redact) it stores metadata only: no
text, no column values; the later stages find nothing to chunk or embed, and a record that had
vectors loses them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine

from enrichment.config import SourceConfig
from enrichment.errors import InvalidInput
from enrichment.formatting import TextFormatter
from enrichment.queue import Queue
from enrichment.records import SourceRecord, SourceRecords
from enrichment.redaction import RedactionError, Redactor, merge_counts
from enrichment.stages.base import ClaimedRecord, Completed, Failed, StageOutcome
from enrichment.stages.redact import RedactedRecord


class ContextStage:
    name = "context"

    def __init__(
        self,
        engine: Engine,
        source: SourceConfig,
        *,
        config_hash: str,
        record_stage: str | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        if source.privacy == "redact" and (record_stage is None or redactor is None):
            raise InvalidInput(
                f"sources[{source.name}].stages",
                "privacy 'redact' needs a redact stage before context, so that the context "
                "stage never reads a record that is not redacted",
            )
        self.engine = engine
        self.source = source
        self.config_hash = config_hash
        self.record_stage = record_stage
        self.redactor = redactor
        self.records = SourceRecords(engine, source)
        self.formatter = TextFormatter(source)

    def run(self, records: Sequence[ClaimedRecord]) -> Mapping[str, StageOutcome]:
        keys = [record.record_key for record in records]
        if self.record_stage is None:
            return self._from_source(keys)
        with self.engine.connect() as connection:
            upstream = Queue(connection).outputs(self.source.name, self.record_stage, keys)
        outcomes: dict[str, StageOutcome] = {}
        for key in keys:
            output = upstream.get(key)
            if not isinstance(output, dict):
                outcomes[key] = Failed(
                    "MissingInput", f"record {key!r}: no {self.record_stage!r} output to render"
                )
                continue
            redacted = RedactedRecord.from_output(key, output)
            if redacted.record is None:
                outcomes[key] = self._metadata_only(
                    key, redacted.workspace_id, redacted.source_updated_at, redacted.error
                )
            else:
                outcomes[key] = self._enrich(redacted.record, redacted.redactions)
        return outcomes

    def _from_source(self, keys: Sequence[str]) -> dict[str, StageOutcome]:
        fetched = self.records.fetch(keys)
        outcomes: dict[str, StageOutcome] = {}
        for key in keys:
            record = fetched.get(key)
            if record is None:
                outcomes[key] = self.records.not_found(key)
            elif self.source.privacy == "block":
                outcomes[key] = self._metadata_only(
                    key, record.workspace_id, record.source_updated_at, None
                )
            else:
                outcomes[key] = self._enrich(record, None)
        return outcomes

    def _enrich(self, row: SourceRecord, redactions: Mapping[str, int] | None) -> StageOutcome:
        source = self.source
        if not row.workspace_id:
            return self.records.missing_workspace(row.key)
        try:
            enriched = self.formatter.render(row.record, row.related, workspace_id=row.workspace_id)
        except Exception as err:  # a template that fails on this record's values
            detail = f"{type(err).__name__}: {err}"
            if self.redactor is not None:  # the message may quote a value
                detail = self._scrub(detail)
            return Failed(
                "TemplateError",
                f"record {row.key!r}: the template of source {source.name!r} failed: {detail}",
                retryable=False,
            )
        output: dict[str, Any] = {
            "text": enriched,
            "workspace_id": row.workspace_id,
            "entity_type": source.entity.type,
            "semantic_category": source.entity.category,
            "related_entity_types": sorted(
                {
                    relation.entity_type or relation.name
                    for relation in source.related
                    if row.related.get(relation.name)
                }
            ),
            "metadata": {
                key: value
                for key, value in row.record.items()
                if isinstance(value, str | int | float | bool) and len(str(value)) <= 200
            },
            "source_updated_at": row.source_updated_at,
        }
        if self.redactor is not None:
            try:
                rescanned = self.redactor.redact(enriched, field="text")
            except RedactionError as err:
                return self._metadata_only(
                    row.key,
                    row.workspace_id,
                    row.source_updated_at,
                    {"type": type(err).__name__, "field": err.field, "problem": err.problem},
                )
            output["text"] = rescanned.text
            output["privacy"] = "redact"
            output["redactions"] = merge_counts(redactions or {}, rescanned.counts)
        return self._completed(output)

    def _metadata_only(
        self,
        key: str,
        workspace_id: str | None,
        updated_at: str | None,
        error: Mapping[str, Any] | None,
    ) -> StageOutcome:
        """What a blocked record keeps: where it belongs and what kind of entity it is, never
        its text or column values."""
        if not workspace_id:
            return self.records.missing_workspace(key)
        output: dict[str, Any] = {
            "text": None,
            "privacy": "block",
            "workspace_id": workspace_id,
            "entity_type": self.source.entity.type,
            "semantic_category": self.source.entity.category,
            "related_entity_types": [],
            "metadata": {},
            "source_updated_at": updated_at,
        }
        if error is not None:
            output["redaction_error"] = dict(error)
        return self._completed(output)

    def _scrub(self, message: str) -> str:
        assert self.redactor is not None
        try:
            return self.redactor.redact(message).text
        except RedactionError:
            return "(message withheld: too long to redact)"

    def _completed(self, output: dict[str, Any]) -> Completed:
        # The source's own updated-at is left out: touching a row without changing what the
        # pipeline reads must not re-embed it.
        read = {key: value for key, value in output.items() if key != "source_updated_at"}
        fingerprint = json.dumps([self.config_hash, read], sort_keys=True, default=str)
        return Completed(output=output, input_hash=hashlib.sha256(fingerprint.encode()).hexdigest())
