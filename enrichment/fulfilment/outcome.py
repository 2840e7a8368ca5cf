"""What an enrichment run made of the fulfilment demo data, read back from the database: how
many exceptions are enriched, gated for a re-check or dead-lettered, how often the written-back
label agrees with the generator's ground truth (overall and above the confidence gate), the
personal data the redact stage replaced, and a few enriched exceptions to look at.

The ground truth is read here, for showing the outcome; the pipeline never reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection, text

from enrichment.fulfilment.schema import SCHEMA

SOURCE = "fulfilment_exceptions"
SAMPLE_SIZE = 3

_PER_EXCEPTION = f"""
SELECT e.id, e.workspace_id, t.exception_type AS truth, e.ai_label, e.ai_confidence,
       e.ai_action, e.ai_summary,
       bool_or(s.stage = 'embed' AND s.status = 'COMPLETED') AS enriched,
       bool_or(s.stage = 'classify' AND s.status = 'SKIPPED') AS gated,
       bool_or(s.status = 'FAILED' AND s.next_attempt_at IS NULL) AS dead_lettered
FROM {SCHEMA}.exceptions AS e
JOIN {SCHEMA}.exception_truth AS t ON t.exception_id = e.id
LEFT JOIN enrichment.record_state AS s
       ON s.source = :source AND s.record_key = e.id::text
GROUP BY e.id, t.exception_type
"""

# Counted in the database: a scale run holds a million exceptions.
_COUNTS = f"""
SELECT count(*) AS exceptions,
       count(*) FILTER (WHERE enriched) AS enriched,
       count(*) FILTER (WHERE gated AND NOT enriched) AS gated,
       count(*) FILTER (WHERE dead_lettered AND NOT (enriched OR gated)) AS dead_lettered,
       count(ai_label) AS labelled,
       count(*) FILTER (WHERE ai_label = truth) AS labels_right,
       count(*) FILTER (WHERE confident) AS confident,
       count(*) FILTER (WHERE confident AND ai_label = truth) AS confident_right
FROM (SELECT *, ai_confidence >= CAST(:gate AS real) AS confident
      FROM ({_PER_EXCEPTION}) AS e) AS x
"""

# The first enriched exception of each true type, up to :samples of them.
_SAMPLES = f"""
SELECT * FROM (
    SELECT DISTINCT ON (truth) id, workspace_id, truth, ai_label, ai_confidence, ai_action,
           ai_summary
    FROM ({_PER_EXCEPTION}) AS x
    WHERE enriched
    ORDER BY truth, id
) AS first_of_each
ORDER BY id
LIMIT :samples
"""

_REDACTIONS = """
SELECT kind, sum(count::int)::bigint
FROM enrichment.record_state AS s,
     jsonb_each_text(s.output -> 'redactions') AS r(kind, count)
WHERE s.source = :source AND s.stage = 'redact' AND s.status = 'COMPLETED'
GROUP BY kind
ORDER BY 2 DESC, 1
"""


@dataclass(frozen=True)
class EnrichedException:
    """One exception as the pipeline left it, with its true type beside it."""

    id: int
    workspace_id: str
    true_type: str
    label: str | None
    confidence: float | None
    action: str | None
    summary: str | None


@dataclass(frozen=True)
class DemoOutcome:
    """Counts over every exception of the demo tables, and a few enriched ones."""

    exceptions: int
    enriched: int
    gated: int
    dead_lettered: int
    labelled: int
    labels_right: int
    confident: int
    confident_right: int
    gate: float | None
    redactions: Mapping[str, int] = field(default_factory=dict)
    samples: tuple[EnrichedException, ...] = ()

    @property
    def pending(self) -> int:
        """Neither enriched, gated nor dead-lettered: still on its way (0 after a full run)."""
        return self.exceptions - self.enriched - self.gated - self.dead_lettered

    @property
    def accuracy(self) -> float | None:
        return self.labels_right / self.labelled if self.labelled else None

    @property
    def confident_accuracy(self) -> float | None:
        return self.confident_right / self.confident if self.confident else None

    def to_json(self) -> dict[str, Any]:
        return {
            "exceptions": self.exceptions,
            "enriched": self.enriched,
            "gated": self.gated,
            "dead_lettered": self.dead_lettered,
            "pending": self.pending,
            "labelled": self.labelled,
            "labels_right": self.labels_right,
            "accuracy": self.accuracy,
            "gate": self.gate,
            "confident": self.confident,
            "confident_right": self.confident_right,
            "confident_accuracy": self.confident_accuracy,
            "redactions": dict(self.redactions),
            "samples": [asdict(sample) for sample in self.samples],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DemoOutcome:
        """The inverse of ``to_json`` (a flow run returns the outcome as JSON)."""
        derived = {"pending", "accuracy", "confident_accuracy", "samples"}
        fields = {name: value for name, value in data.items() if name not in derived}
        samples = tuple(EnrichedException(**sample) for sample in data.get("samples", ()))
        return cls(**fields, samples=samples)

    def render(self) -> str:
        """Markdown: the counts, the labels against the ground truth, the samples."""
        overall = _share(self.labels_right, self.labelled)
        above = _share(self.confident_right, self.confident)
        below = _share(self.labels_right - self.confident_right, self.labelled - self.confident)
        gated = (
            f"{self.gated:,} below the confidence gate ({self.gate:g}: their resolution, summary "
            "and vectors wait for a re-check)"
            if self.gate is not None
            else "no confidence gate"
        )
        labels = f"Labels against the generator's ground truth: {overall} right"
        if self.gate is not None:
            labels += f"; with confidence ≥ {self.gate:g}: {above} right; below it: {below}"
        lines = [
            f"**{self.exceptions:,} exceptions**: {self.enriched:,} enriched and searchable, "
            f"{gated}, {self.dead_lettered:,} dead-lettered"
            + (f", {self.pending:,} still pending" if self.pending else "")
            + ".",
            "",
            labels + ".",
        ]
        if self.redactions:
            found = ", ".join(f"{kind} {count:,}" for kind, count in self.redactions.items())
            lines += [
                "",
                f"Personal data replaced before any text was stored or embedded: {found}.",
            ]
        if self.samples:
            lines += [
                "",
                "| exception | workspace | label (confidence) | true type | action | summary |",
                "|---|---|---|---|---|---|",
            ]
            for sample in self.samples:
                label = (
                    f"{sample.label} ({sample.confidence:.2f})"
                    if sample.label is not None and sample.confidence is not None
                    else "-"
                )
                summary = (sample.summary or "-").replace("|", "\\|").replace("\n", " ")
                lines.append(
                    f"| {sample.id} | {sample.workspace_id} | {label} | {sample.true_type} | "
                    f"{sample.action or '-'} | {summary} |"
                )
        return "\n".join(lines)


def _share(part: int, whole: int) -> str:
    return f"{part:,}/{whole:,} ({part / whole:.0%})" if whole else "none"


def outcome(
    connection: Connection,
    *,
    gate: float | None,
    source: str = SOURCE,
    samples: int = SAMPLE_SIZE,
) -> DemoOutcome:
    """The demo's outcome as the database holds it now. ``gate`` is the classify stage's
    ``min_confidence`` (None: no gate, nothing counts as confident); the samples are the first
    enriched exception of each true type (up to ``samples``), so they show different labels,
    actions and summaries."""
    params = {"source": source, "gate": gate, "samples": samples}
    counts = connection.execute(text(_COUNTS), params).mappings().one()
    shown = tuple(
        EnrichedException(
            id=row["id"],
            workspace_id=row["workspace_id"],
            true_type=row["truth"],
            label=row["ai_label"],
            confidence=row["ai_confidence"],
            action=row["ai_action"],
            summary=row["ai_summary"],
        )
        for row in connection.execute(text(_SAMPLES), params).mappings()
    )
    redactions = {
        kind: int(count)
        for kind, count in connection.execute(text(_REDACTIONS), {"source": source}).all()
    }
    return DemoOutcome(
        **{name: int(value) for name, value in counts.items()},
        gate=gate,
        redactions=redactions,
        samples=shown,
    )
