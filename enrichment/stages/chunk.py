"""chunk: split each record's enriched text into chunks that fit the embedding model, counted
with the model's own tokenizer."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

from sqlalchemy import Engine

from enrichment.chunking import ChunkingConfig, Tokenizer, chunk_texts
from enrichment.queue import Queue
from enrichment.stages.base import ClaimedRecord, Completed, Failed, StageOutcome


class ChunkStage:
    name = "chunk"

    def __init__(
        self,
        engine: Engine,
        source: str,
        config: ChunkingConfig,
        tokenizer: Tokenizer,
        *,
        text_stage: str = "context",
    ) -> None:
        self.engine = engine
        self.source = source
        self.config = config
        self.tokenizer = tokenizer
        self.text_stage = text_stage
        self._settings = config.model_dump_json()

    def run(self, records: Sequence[ClaimedRecord]) -> Mapping[str, StageOutcome]:
        keys = [record.record_key for record in records]
        with self.engine.connect() as connection:
            upstream = Queue(connection).outputs(self.source, self.text_stage, keys)
        outcomes: dict[str, StageOutcome] = {}
        ready = [key for key in keys if isinstance(upstream.get(key), dict)]
        for key in keys:
            if key not in ready:
                outcomes[key] = Failed(
                    "MissingInput",
                    f"record {key!r}: no {self.text_stage!r} output to chunk",
                )
        texts = [str(upstream[key].get("text") or "") for key in ready]
        chunked = chunk_texts(texts, self.config, self.tokenizer)
        for key, chunks in zip(ready, chunked, strict=True):
            # The whole upstream output, not just its text: the embed stage also stores the
            # record's metadata (workspace, entity type), which must not go stale.
            upstream_json = json.dumps(upstream[key], sort_keys=True, default=str)
            digest = hashlib.sha256(f"{self._settings}\n{upstream_json}".encode()).hexdigest()
            outcomes[key] = Completed(
                output={
                    "chunks": [
                        {"text": c.text, "start": c.start, "end": c.end, "tokens": c.tokens}
                        for c in chunks
                    ]
                },
                input_hash=digest,
            )
        return outcomes
