"""embed: one model call per batch for the chunks that changed, then store the vectors with
their filter metadata in the model's vector table, in the transaction that completes the
records. Chunks whose text is unchanged keep their stored vectors."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from enrichment import vectors
from enrichment.embedders.base import Embedder, EmbeddingError, EmbeddingUnavailable, Vector
from enrichment.queue import Queue
from enrichment.stages.base import ClaimedRecord, Completed, Failed, StageOutcome
from enrichment.vectors import ChunkRow, VectorTable


class EmbedStage:
    name = "embed"

    def __init__(
        self,
        engine: Engine,
        source: str,
        embedder: Embedder,
        *,
        context_stage: str = "context",
        chunk_stage: str | None = "chunk",
        store_text: bool = True,
    ) -> None:
        self.engine = engine
        self.source = source
        self.embedder = embedder
        self.context_stage = context_stage
        self.chunk_stage = chunk_stage
        self.store_text = store_text
        self._table: VectorTable | None = None

    @property
    def table(self) -> VectorTable:
        """The vector table of this stage's model, created on first use."""
        if self._table is None:
            with self.engine.begin() as connection:
                self._table = vectors.ensure_table(
                    connection,
                    model_name=self.embedder.model_name,
                    model_version=self.embedder.model_version,
                    dimensions=self.embedder.dimensions,
                )
        return self._table

    def _chunks(self, key: str, context: Mapping[str, Any], chunked: Any) -> list[str]:
        if self.chunk_stage is None:
            text = str(context.get("text") or "").strip()
            return [text] if text else []
        return [str(chunk["text"]) for chunk in chunked.get("chunks", [])]

    def run(self, records: Sequence[ClaimedRecord]) -> Mapping[str, StageOutcome]:
        table = self.table
        keys = [record.record_key for record in records]
        with self.engine.connect() as connection:
            queue = Queue(connection)
            contexts = queue.outputs(self.source, self.context_stage, keys)
            chunked = queue.outputs(self.source, self.chunk_stage, keys) if self.chunk_stage else {}
            stored = vectors.stored_vectors(connection, table, self.source, keys)

        # A forced re-embed (or a retry after a failure) comes without an input hash: its
        # stored vectors are not trusted and everything is embedded afresh.
        trusted = {r.record_key for r in records if r.previous_input_hash is not None}
        stored = {place: found for place, found in stored.items() if place[0] in trusted}
        outcomes: dict[str, StageOutcome] = {}
        plans: dict[str, list[tuple[str, str]]] = {}  # key -> [(chunk text, hash)]
        for key in keys:
            if key not in contexts or (self.chunk_stage and key not in chunked):
                outcomes[key] = Failed(
                    "MissingInput", f"record {key!r}: no context or chunks to embed"
                )
                continue
            texts = self._chunks(key, contexts[key], chunked.get(key))
            plans[key] = [(text, vectors.text_hash(text)) for text in texts]

        # One model call for every chunk that is new or changed, each distinct text once.
        wanted = sorted(
            {
                text
                for key, plan in plans.items()
                for index, (text, digest) in enumerate(plan)
                if stored.get((key, index), ("", None))[0] != digest
            }
        )
        try:
            results = dict(zip(wanted, self.embedder.embed(wanted), strict=True)) if wanted else {}
        except EmbeddingUnavailable as err:
            failure = Failed("EmbeddingUnavailable", str(err), retryable=err.retryable)
            return {**outcomes, **{key: failure for key in plans}}

        for key, plan in plans.items():
            outcomes[key] = self._outcome(key, plan, contexts[key], stored, results)
        return outcomes

    def _outcome(
        self,
        key: str,
        plan: list[tuple[str, str]],
        context: Mapping[str, Any],
        stored: Mapping[tuple[str, int], tuple[str, Vector]],
        results: Mapping[str, Vector | EmbeddingError],
    ) -> StageOutcome:
        rows: list[ChunkRow] = []
        reused = 0
        updated_at = context.get("source_updated_at")
        for index, (text, digest) in enumerate(plan):
            previous = stored.get((key, index))
            if previous is not None and previous[0] == digest:
                vector: Vector | EmbeddingError = previous[1]
                reused += 1
            else:
                vector = results[text]
            if isinstance(vector, EmbeddingError):
                return Failed(
                    vector.error_type,
                    f"record {key!r}, chunk {index}: {vector.message}",
                    retryable=vector.retryable,
                )
            rows.append(
                ChunkRow(
                    source=self.source,
                    record_key=key,
                    chunk_index=index,
                    workspace_id=str(context["workspace_id"]),
                    chunk_text=text if self.store_text else None,
                    entity_type=str(context.get("entity_type") or self.source),
                    semantic_category=context.get("semantic_category"),
                    related_entity_types=tuple(context.get("related_entity_types") or ()),
                    metadata=context.get("metadata") or {},
                    text_hash=digest,
                    embedding=vector,
                    source_updated_at=datetime.fromisoformat(updated_at) if updated_at else None,
                )
            )
        fingerprint = "\n".join([self.embedder.model_version, *(d for _, d in plan)])
        return Completed(
            output={
                "chunks": len(rows),
                "reused": reused,
                "table": self.table.name,
                "model_version": self.embedder.model_version,
            },
            input_hash=hashlib.sha256(fingerprint.encode()).hexdigest(),
            effects=rows,
        )

    def write(self, connection: Connection, effects: Mapping[str, Any]) -> None:
        rows = [row for key in effects for row in effects[key]]
        counts = {key: len(effects[key]) for key in effects}
        vectors.write_chunks(connection, self.table, self.source, rows, counts)
