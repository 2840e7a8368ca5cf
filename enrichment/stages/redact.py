"""redact: the first stage of a source whose privacy mode is ``redact``. It reads each record
with its related entities (one query per batch), replaces personal data and secrets in every
value with typed placeholders and stores only the redacted record, with counts by kind. The
context stage renders the enriched text from this output instead of reading the source table,
so no later stage, stored output, chunk, embedding or summary ever sees the original values.

A record that cannot be redacted (a value too long to scan, a detector failing) is stored as
metadata only (``privacy: block``): no text of it goes further.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from enrichment.config import SourceConfig
from enrichment.records import SourceRecord, SourceRecords
from enrichment.redaction import RedactionError, Redactor, merge_counts
from enrichment.stages.base import ClaimedRecord, Completed, StageOutcome

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RedactedRecord:
    """The redact stage's output, as the context stage reads it back. ``record`` is None when
    the record was blocked (``error`` says which field failed, never its value)."""

    record: SourceRecord | None
    workspace_id: str | None
    source_updated_at: str | None
    redactions: Mapping[str, int] = field(default_factory=dict)
    redacted_fields: Sequence[str] = ()
    error: Mapping[str, Any] | None = None

    @property
    def blocked(self) -> bool:
        return self.record is None

    def to_output(self) -> dict[str, Any]:
        output: dict[str, Any] = {
            "workspace_id": self.workspace_id,
            "source_updated_at": self.source_updated_at,
            "privacy": "block" if self.record is None else "redact",
            "redactions": dict(self.redactions),
            "redacted_fields": list(self.redacted_fields),
        }
        if self.record is not None:
            output["record"] = dict(self.record.record)
            output["related"] = dict(self.record.related)
        if self.error is not None:
            output["redaction_error"] = dict(self.error)
        return output

    @classmethod
    def from_output(cls, key: str, output: Mapping[str, Any]) -> RedactedRecord:
        record = None
        if output.get("privacy") != "block":
            record = SourceRecord(
                key=key,
                workspace_id=output.get("workspace_id"),
                source_updated_at=output.get("source_updated_at"),
                record=output.get("record") or {},
                related=output.get("related") or {},
            )
        return cls(
            record=record,
            workspace_id=output.get("workspace_id"),
            source_updated_at=output.get("source_updated_at"),
            redactions=output.get("redactions") or {},
            redacted_fields=output.get("redacted_fields") or (),
            error=output.get("redaction_error"),
        )


def redact_record(redactor: Redactor, source: SourceRecord) -> RedactedRecord:
    """Every value of the record and of its related rows, redacted. Fields are named by their
    path (``body``, ``customer.email``) so the counts can say where personal data was found."""
    counts: Counter[str] = Counter()
    fields: set[str] = set()
    record = {}
    for column, value in source.record.items():
        redacted = redactor.redact_values(value, field=column)
        record[column] = redacted.value
        counts.update(redacted.counts)
        fields |= redacted.fields
    related = {}
    for relation, value in source.related.items():
        redacted = redactor.redact_values(value, field=relation)
        related[relation] = redacted.value
        counts.update(redacted.counts)
        fields |= redacted.fields
    return RedactedRecord(
        record=SourceRecord(
            source.key, source.workspace_id, source.source_updated_at, record, related
        ),
        workspace_id=source.workspace_id,
        source_updated_at=source.source_updated_at,
        redactions=merge_counts(counts),
        redacted_fields=sorted(fields),
    )


class RedactStage:
    name = "redact"

    def __init__(
        self, engine: Engine, source: SourceConfig, redactor: Redactor, *, config_hash: str
    ) -> None:
        self.source = source
        self.redactor = redactor
        self.config_hash = config_hash
        self.records = SourceRecords(engine, source)

    def run(self, records: Sequence[ClaimedRecord]) -> Mapping[str, StageOutcome]:
        fetched = self.records.fetch([record.record_key for record in records])
        outcomes: dict[str, StageOutcome] = {}
        totals: Counter[str] = Counter()
        for claimed in records:
            key = claimed.record_key
            source = fetched.get(key)
            if source is None:
                outcomes[key] = self.records.not_found(key)
                continue
            if not source.workspace_id:
                outcomes[key] = self.records.missing_workspace(key)
                continue
            redacted = self._redact(source)
            totals.update(redacted.redactions)
            outcomes[key] = self._completed(redacted)
        if totals:
            log.info(
                "redact %s: %d records, replaced %s",
                self.source.name,
                len(records),
                ", ".join(f"{kind}={count}" for kind, count in sorted(totals.items())),
            )
        return outcomes

    def _redact(self, source: SourceRecord) -> RedactedRecord:
        try:
            return redact_record(self.redactor, source)
        except Exception as err:  # whatever went wrong, the record's text must not go on
            field_name = err.field if isinstance(err, RedactionError) else None
            problem = err.problem if isinstance(err, RedactionError) else None
            # Only the type, the field and our own description: an exception's message may
            # quote the value it failed on.
            log.warning(
                "redact %s: record %r could not be redacted (%s in field %r); stored as "
                "metadata only",
                self.source.name,
                source.key,
                type(err).__name__,
                field_name,
            )
            return RedactedRecord(
                record=None,
                workspace_id=source.workspace_id,
                source_updated_at=source.source_updated_at,
                error={"type": type(err).__name__, "field": field_name, "problem": problem},
            )

    def _completed(self, redacted: RedactedRecord) -> Completed:
        output = redacted.to_output()
        # The hash of what is stored (redacted), never of the original values: a hash of a
        # short value (a phone number) could be reversed by trying them all. Personal data
        # that changed without changing the redacted record changes nothing downstream.
        read = {key: value for key, value in output.items() if key != "source_updated_at"}
        fingerprint = json.dumps([self.config_hash, read], sort_keys=True, default=str)
        return Completed(output=output, input_hash=hashlib.sha256(fingerprint.encode()).hexdigest())
