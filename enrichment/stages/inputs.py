"""What the AI stages read: the text an earlier stage produced (context, or redact where the
pipeline redacts), and the results of earlier AI stages, for a whole batch in one query."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine

from enrichment.queue import Queue
from enrichment.stages.base import Failed, Skipped

NO_TEXT = "no text to read: the record has no content (or its privacy mode stores none)"


def stage_outputs(
    engine: Engine, source: str, stages: Sequence[str], keys: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """COMPLETED outputs of each of ``stages`` (stage -> key -> output); missing keys have
    none."""
    with engine.connect() as connection:
        queue = Queue(connection)
        return {stage: queue.outputs(source, stage, keys) for stage in dict.fromkeys(stages)}


def text_of(
    key: str, output: Mapping[str, Any] | None, stage: str, purpose: str
) -> str | Failed | Skipped:
    """The ``text`` of an upstream output, or the outcome that says why there is none."""
    if not isinstance(output, Mapping):
        return Failed("MissingInput", f"record {key!r}: no {stage!r} output to {purpose}")
    text = output.get("text")
    if not isinstance(text, str) or not text.strip():
        return Skipped(NO_TEXT)
    return text


def input_hash(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).hexdigest()
