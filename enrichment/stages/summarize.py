"""summarize: a summary of 1-3 sentences and at most 300 characters of each record's text
(local: the most central sentences; llm: a chat model's JSON answer), with a quality score
in 0..1 (see enrichment/summarization.py).

Every summary is re-checked for PII before it is stored: ``pii_check`` gets the summary and
returns it with any PII replaced by typed placeholders, and how many it replaced. A check that
fails stores no summary (a retryable failure: seed 003's "if redaction fails, store only
metadata"). With the source's privacy mode ``block`` no summary text is stored at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine

from enrichment.stages.base import ClaimedRecord, Completed, Failed, Skipped, StageOutcome
from enrichment.stages.inputs import input_hash, stage_outputs, text_of
from enrichment.summarization import (
    Summarizer,
    Summary,
    clip,
    quality_score,
    quality_signals,
)
from enrichment.writeback import WriteBack

PiiCheck = Callable[[str], tuple[str, int]]
"""The summary's PII re-check: text in, (text with PII replaced by placeholders, how many)
out. It raises when it cannot check; the summary is then not stored."""

BLOCKED = "privacy mode block: no summary text is stored"


class SummarizeStage:
    name = "summarize"

    def __init__(
        self,
        engine: Engine,
        source: str,
        summarizer: Summarizer,
        *,
        text_stage: str = "context",
        confidence_stage: str | None = "classify",
        pii_check: PiiCheck | None = None,
        store_text: bool = True,
        max_characters: int = 300,
        write_back: WriteBack | None = None,
    ) -> None:
        self.engine = engine
        self.source = source
        self.summarizer = summarizer
        self.text_stage = text_stage
        self.confidence_stage = confidence_stage
        self.pii_check = pii_check
        self.store_text = store_text
        self.max_characters = max_characters
        self.write_back = write_back

    def run(self, records: Sequence[ClaimedRecord]) -> Mapping[str, StageOutcome]:
        if not self.store_text:
            return {record.record_key: Skipped(BLOCKED) for record in records}
        keys = [record.record_key for record in records]
        stages = [self.text_stage] + ([self.confidence_stage] if self.confidence_stage else [])
        upstream = stage_outputs(self.engine, self.source, stages, keys)
        outcomes: dict[str, StageOutcome] = {}
        texts: dict[str, str] = {}
        for key in keys:
            found = text_of(key, upstream[self.text_stage].get(key), self.text_stage, "summarize")
            if isinstance(found, str):
                texts[key] = found
            else:
                outcomes[key] = found
        asked = list(texts)
        summaries = self.summarizer.summarize([texts[key] for key in asked])
        attempts = {record.record_key: record.attempt for record in records}
        confidences = upstream.get(self.confidence_stage or "", {})
        version = self.summarizer.version
        for key, summary in zip(asked, summaries, strict=True):
            if not isinstance(summary, Summary):
                outcomes[key] = Failed(
                    summary.error_type, f"record {key!r}: {summary.message}", summary.retryable
                )
                continue
            classified = confidences.get(key)
            confidence = classified.get("confidence") if isinstance(classified, Mapping) else None
            outcomes[key] = self._outcome(
                key, summary, texts[key], confidence, attempts[key], version
            )
        return outcomes

    def _outcome(
        self,
        key: str,
        summary: Summary,
        text: str,
        confidence: float | None,
        attempt: int,
        version: str,
    ) -> StageOutcome:
        checked, found = summary.text, 0
        if self.pii_check is not None:
            try:
                checked, found = self.pii_check(summary.text)
            except Exception as err:  # the message may quote the text: only its type is kept
                return Failed(
                    "PiiCheckFailed",
                    f"record {key!r}: the summary's PII re-check failed ({type(err).__name__}); "
                    "no summary is stored",
                )
            checked = clip(checked, self.max_characters)  # placeholders may lengthen it
        signals = quality_signals(
            summary=checked, confidence=confidence, attempt=attempt, pii_found=found
        )
        output: dict[str, Any] = {
            "summary": checked,
            "quality": quality_score(signals),
            "signals": {name: round(value, 4) for name, value in signals.items()},
            "sentences": summary.sentences,
            "characters": len(checked),
            "pii_checked": self.pii_check is not None,
            "pii_found": found,
            "backend": self.summarizer.backend,
            "model": self.summarizer.model,
            "version": version,
        }
        return Completed(
            output=output,
            input_hash=input_hash(version, confidence, text),
            effects=self.write_back.values(output) if self.write_back else None,
        )

    def write(self, connection: Connection, effects: Mapping[str, Any]) -> None:
        if self.write_back is not None:
            rows = {key: value for key, value in effects.items() if value is not None}
            self.write_back.write(connection, rows)

    def forget(self, connection: Connection, keys: Sequence[str]) -> None:
        if self.write_back is not None:
            self.write_back.clear(connection, keys)
