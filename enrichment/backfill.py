"""Backfills: queue a source (or a workspace, or some records) again, and switch searches to
a new model's table once it is filled."""

from __future__ import annotations

from sqlalchemy import text

from enrichment import vectors
from enrichment.config import SourceConfig
from enrichment.runner import Runner
from enrichment.sources import reembed
from enrichment.stages.embed import EmbedStage


def queue(
    runner: Runner,
    source: SourceConfig,
    *,
    workspace: str | None = None,
    ids: list[str] | None = None,
    force: bool = True,
) -> int:
    """Queue the records and fold them at once; returns how many records are now due (the
    denominator of the backfill's progress)."""
    with runner.engine.begin() as connection:
        queued = reembed(connection, source, workspace=workspace, ids=ids, force=force)
    runner.fold_events()
    with runner.engine.connect() as connection:
        due = connection.execute(
            text(
                "SELECT count(DISTINCT record_key) FROM enrichment.record_state "
                "WHERE source = :source AND status IN ('PENDING', 'FAILED') "
                "AND next_attempt_at IS NOT NULL AND deleted_at IS NULL "
                "AND (CAST(:workspace AS text) IS NULL OR workspace_id = CAST(:workspace AS text))"
            ),
            {"source": source.name, "workspace": workspace},
        ).scalar_one()
    return max(int(due), queued if force else 0)


def activate_filled_table(runner: Runner, source: str) -> str | None:
    """Switch searches to the source's table when it is a new model's (``building``) one;
    returns its name, or None when there was nothing to switch."""
    embed = next(
        (s.stage for s in runner.pipelines[source].stages if isinstance(s.stage, EmbedStage)),
        None,
    )
    if embed is None:
        return None
    with runner.engine.begin() as connection:
        states = {table.name: table.state for table in vectors.tables(connection)}
        if states.get(embed.table.name) != "building":
            return None
        return vectors.activate(connection, embed.table.name).name
