"""From configuration to working pipelines: build each source's stages, register them, and
re-queue a source's records when what shapes their text changed."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import Connection, Engine, text

from enrichment.ai_stages import build_ai_stage
from enrichment.chunking import model_tokenizer
from enrichment.config import (
    ChunkStageConfig,
    ClassifyStageConfig,
    EmbedStageConfig,
    EnrichConfig,
    LocalEmbedding,
    OpenAIEmbedding,
    RedactStageConfig,
    ResolveStageConfig,
    SourceConfig,
    SummarizeStageConfig,
    load_config,
)
from enrichment.embedders.base import Embedder
from enrichment.errors import InvalidInput
from enrichment.events import enqueue_records
from enrichment.pipeline import Pipeline, Pipelines, StageSpec, register
from enrichment.redaction import Redactor
from enrichment.retry import RetryPolicy
from enrichment.runner import Runner
from enrichment.settings import Settings
from enrichment.source_tables import quote, workspace_expression
from enrichment.stages.base import Stage
from enrichment.stages.chunk import ChunkStage
from enrichment.stages.context import ContextStage
from enrichment.stages.embed import EmbedStage
from enrichment.stages.redact import RedactStage
from enrichment.states import Reason

# Settings of how the work runs, not of what it produces: changing them must not re-queue (and
# re-embed, at a price) every record of the source.
_HOW_IT_RUNS: dict[str, Any] = {
    "stages": {
        "__all__": {
            "retry_delays": True,
            "lease_seconds": True,
            "batch_size": True,
            "embedding": {"batch_size", "timeout_seconds", "max_retries", "api_key_env", "device"},
            # AI stages: how they reach their model, and when a gated record is re-checked.
            "llm": {"timeout_seconds", "max_retries", "api_key_env", "concurrency"},
            "local": {"batch_size", "device"},
            "recheck_after_hours": True,
            "max_rechecks": True,
        }
    },
    "related": {"__all__": {"significant"}},  # which changes capture: the triggers' concern
}


def config_hash(source: SourceConfig) -> str:
    """Changes when anything that shapes the source's stored results changes: semantic
    metadata, related fields, template, chunking, embedding model. Retries, leases, batch
    sizes and timeouts are left out."""
    dumped = source.model_dump(mode="json", exclude=_HOW_IT_RUNS)
    for stage in dumped["stages"]:
        embedding = stage.get("embedding") or {}
        # torch was the only runtime before `backend` existed: left out, a source that says
        # `backend: torch` keeps the hash it had then (and its vectors), while any other
        # backend, the default onnx included, changes the hash and re-embeds.
        if embedding.get("backend") == "torch":
            del embedding["backend"]
        # The AI stages' local model gives the same vectors on torch and onnx (verified on
        # export), so their results do not depend on which; int8's approximate ones count.
        local = stage.get("local") or {}
        if local.get("backend") in ("torch", "onnx"):
            del local["backend"]
    return hashlib.sha256(json.dumps(dumped, sort_keys=True).encode()).hexdigest()[:16]


def build_embedder(
    config: LocalEmbedding | OpenAIEmbedding, *, data_dir: Path | None = None
) -> Embedder:
    """The configured embedder; local ONNX exports are cached under ``data_dir/models``
    (default: the settings' data directory)."""
    if isinstance(config, LocalEmbedding) and config.backend != "torch":
        from enrichment.embedders.local_onnx import OnnxEmbedder, default_cache_dir

        return OnnxEmbedder(
            config.model,
            backend=config.backend,
            device=config.device,
            batch_size=config.batch_size,
            cache_dir=default_cache_dir(data_dir),
        )
    if isinstance(config, LocalEmbedding):
        from enrichment.embedders.local import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(
            config.model, device=config.device, batch_size=config.batch_size
        )
    from enrichment.embedders.openai_compatible import (
        OpenAICompatibleConfig,
        OpenAICompatibleEmbedder,
    )

    key = os.environ.get(config.api_key_env)
    if not key:
        raise InvalidInput(
            "embedding.api_key_env", f"environment variable {config.api_key_env} is not set"
        )
    return OpenAICompatibleEmbedder(
        OpenAICompatibleConfig(
            model=config.model,
            base_url=config.base_url,
            api_key=SecretStr(key),
            dimensions=config.dimensions,
            send_dimensions=config.send_dimensions,
            batch_size=config.batch_size,
            timeout_seconds=config.timeout_seconds,
            max_retries=config.max_retries,
        )
    )


def build_pipeline(engine: Engine, source: SourceConfig, settings: Settings) -> Pipeline:
    specs = []
    has_chunk = source.stage("chunk") is not None
    redact_config = source.stage("redact")
    # One redactor for both: the redact stage redacts the values, context re-scans the text.
    redactor = Redactor(redact_config.redaction) if redact_config is not None else None
    for stage_config in source.stages:
        stage: Stage
        if isinstance(stage_config, RedactStageConfig):
            assert redactor is not None
            stage = RedactStage(engine, source, redactor, config_hash=config_hash(source))
        elif isinstance(stage_config, ChunkStageConfig):
            stage = ChunkStage(engine, source.name, stage_config.chunking, model_tokenizer())
        elif isinstance(stage_config, EmbedStageConfig):
            stage = EmbedStage(
                engine,
                source.name,
                build_embedder(stage_config.embedding, data_dir=settings.data_dir),
                chunk_stage="chunk" if has_chunk else None,
                store_text=source.privacy != "block",
            )
        elif isinstance(
            stage_config, ClassifyStageConfig | ResolveStageConfig | SummarizeStageConfig
        ):
            stage = build_ai_stage(engine, source, stage_config)
        else:
            stage = ContextStage(
                engine,
                source,
                config_hash=config_hash(source),
                record_stage="redact" if redactor is not None else None,
                redactor=redactor,
            )
        delays = stage_config.retry_delays  # an empty list means: no retries
        retry = RetryPolicy(
            delays=settings.retry_delays if delays is None else delays,
            jitter=settings.retry_jitter,
        )
        lease = stage_config.lease_seconds or settings.lease_seconds
        specs.append(StageSpec(stage, retry=retry, lease_seconds=lease))
    return Pipeline(source.name, tuple(specs))


def build_pipelines(engine: Engine, config: EnrichConfig, settings: Settings) -> Pipelines:
    return Pipelines(build_pipeline(engine, source, settings) for source in config.sources)


@dataclass(frozen=True)
class SyncResult:
    source: str
    stages_changed: bool
    requeued: int


def sync(engine: Engine, config: EnrichConfig, pipelines: Pipelines) -> list[SyncResult]:
    """Register every pipeline; a source whose configuration changed since it was last
    registered has all its live records re-queued (forced: every stage redoes its work)."""
    results = []
    with engine.begin() as connection:
        for source in config.sources:
            stages_changed = register(connection, pipelines[source.name])
            digest = config_hash(source)
            previous = connection.execute(
                text("SELECT metadata_hash FROM enrichment.sources WHERE name = :name"),
                {"name": source.name},
            ).scalar()
            requeued = 0
            if previous is not None and previous != digest:
                requeued = requeue_all(connection, source.name, reason=Reason.SCHEMA_CHANGED)
            connection.execute(
                text("UPDATE enrichment.sources SET metadata_hash = :hash WHERE name = :name"),
                {"hash": digest, "name": source.name},
            )
            results.append(SyncResult(source.name, stages_changed, requeued))
    return results


def requeue_all(
    connection: Connection, source: str, *, reason: Reason, workspace: str | None = None
) -> int:
    """Forced UPDATE events for every live record of ``source`` known to the queue."""
    rows = connection.execute(
        text(
            "SELECT DISTINCT record_key, workspace_id FROM enrichment.record_state "
            "WHERE source = :source AND deleted_at IS NULL "
            "AND (CAST(:workspace AS text) IS NULL OR workspace_id = CAST(:workspace AS text))"
        ),
        {"source": source, "workspace": workspace},
    ).all()
    return enqueue_records(
        connection, source, ((r.workspace_id, r.record_key) for r in rows), reason
    )


def reembed(
    connection: Connection,
    source: SourceConfig,
    *,
    workspace: str | None = None,
    ids: list[str] | None = None,
    force: bool = True,
) -> int:
    """Queue records of the source table (all, one workspace's, or the given ids) again.
    A record without a workspace is queued under ``MISSING_WORKSPACE``, like capture does, so
    it becomes a visible dead letter instead of refusing the whole request."""
    query = (
        f"SELECT {workspace_expression(quote(source.workspace_column))} AS workspace_id, "
        f"{quote(source.key_column)}::text AS record_key FROM {quote(source.table)} "
        f"WHERE (CAST(:workspace AS text) IS NULL OR {quote(source.workspace_column)}::text = "
        "CAST(:workspace AS text)) AND (CAST(:ids AS text[]) IS NULL OR "
        f"{quote(source.key_column)}::text = ANY(CAST(:ids AS text[])))"
    )
    rows = connection.execute(text(query), {"workspace": workspace, "ids": ids}).all()
    reason = Reason.MANUAL_REEMBED if force else Reason.INTEGRATION_SYNC
    return enqueue_records(
        connection, source.name, ((r.workspace_id, r.record_key) for r in rows), reason, force=force
    )


def load_runner(settings: Settings, engine: Engine) -> tuple[EnrichConfig, Runner]:
    """The configured sources as a runner: read the configuration file, build the pipelines,
    register them (re-queueing sources whose configuration changed)."""
    config = load_config(settings.config_path)
    pipelines = build_pipelines(engine, config, settings)
    sync(engine, config, pipelines)
    return config, Runner(
        engine,
        pipelines,
        batch_size=settings.batch_size,
        index_memory=settings.index_build_memory,
    )
