"""Building searchable data for the search tests: source tables filled in SQL, then the real
pipeline (context → chunk → embed with the packaged model) run over them, exactly as
production fills the vector tables."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from enrichment import search_schema
from enrichment.config import EnrichConfig, LocalEmbedding, parse_config
from enrichment.database import engine_for
from enrichment.embedders.base import Embedder
from enrichment.runner import Runner
from enrichment.settings import Settings
from enrichment.sources import build_embedder, build_pipelines, sync
from tests.conftest import reset
from tests.helpers import send


@cache
def embedder() -> Embedder:
    """The embedder the pipeline's default ``local`` configuration builds (one per session:
    its model version hashes the model's files and names the runtime)."""
    return build_embedder(LocalEmbedding())


def enrich(
    engine: Engine, config_data: dict[str, Any], records: Iterable[tuple[str, str, str]]
) -> EnrichConfig:
    """Run the configured pipelines over ``records`` (source, workspace, key) until nothing
    is left (which also builds the HNSW index); every record must reach its vectors."""
    config = parse_config(config_data)
    pipelines = build_pipelines(engine, config, Settings(retry_delays=(0.0,), retry_jitter=0.0))
    sync(engine, config, pipelines)
    batches: dict[tuple[str, str], list[str]] = defaultdict(list)
    for source, workspace, key in records:
        batches[(source, workspace)].append(key)
    for (source, workspace), keys in batches.items():
        send(engine, source, keys, "CREATE", workspace=workspace)
    report = Runner(engine, pipelines).drain()
    failed = report.total("failed") + report.total("dead_lettered")
    assert failed == 0, f"{failed} records failed to enrich: {report.summary()}"
    return config


def drop_tables(engine: Engine, *tables: str) -> None:
    """Drop the test's source tables and empty the enrichment schema."""
    with engine.begin() as connection:
        for table in tables:
            connection.execute(text(f"DROP TABLE IF EXISTS {table}"))
    reset(engine)


@contextmanager
def login_role(database_url: str, engine: Engine) -> Iterator[tuple[str, Engine]]:
    """A real login role that does not own anything, with the search grants, and an engine
    connecting as it. Roles belong to the whole server: this one is dropped afterwards."""
    role = f"enrich_reader_{uuid.uuid4().hex[:8]}"
    with engine.begin() as connection:
        connection.execute(text(f"CREATE ROLE {role} LOGIN"))
        search_schema.grant_search(connection, role)
    url = make_url(database_url).set(username=role, password=None)
    reader = engine_for(url.render_as_string(hide_password=False))
    try:
        yield role, reader
    finally:
        reader.dispose()
        with engine.begin() as connection:
            connection.execute(text(f"DROP OWNED BY {role}"))  # its grants in this database
            connection.execute(text(f"DROP ROLE {role}"))
