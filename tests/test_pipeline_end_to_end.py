"""Sources to vectors end to end: triggers, context, chunk, embed with the real packaged model,
pgvector. Vectors and record state match the source after every kind of change."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

from enrichment import capture, vectors
from enrichment.config import EnrichConfig, parse_config
from enrichment.runner import Runner
from enrichment.settings import Settings
from enrichment.sources import build_pipelines, reembed, sync
from tests.helpers import states

pytestmark = pytest.mark.slow

CONFIG = {
    "sources": [
        {
            "name": "support_messages",
            "table": "public.e2e_messages",
            "columns": ["channel", "body"],
            "entity": {
                "type": "support_message",
                "category": "Support communication",
                "attributes": {
                    "body": "message content",
                    "customer.segment": "customer segment",
                    "customer.tier": "subscription tier",
                },
            },
            "related": [
                {
                    "name": "customer",
                    "table": "public.e2e_customers",
                    "join": {"local": "customer_id", "remote": "id"},
                    "fields": ["segment", "tier"],
                    "entity_type": "customer",
                }
            ],
            "stages": [
                "context",
                {"chunk": {"strategy": "recursive", "max_tokens": 64, "overlap_tokens": 8}},
                "embed",
            ],
        }
    ]
}


@pytest.fixture
def world(db: Engine) -> Iterator[tuple[EnrichConfig, Runner]]:
    with db.begin() as connection:
        connection.execute(
            text(
                """
                DROP TABLE IF EXISTS public.e2e_messages, public.e2e_customers;
                CREATE TABLE public.e2e_customers (
                    id int PRIMARY KEY, segment text, tier text, note text);
                CREATE TABLE public.e2e_messages (
                    id int PRIMARY KEY, workspace_id text NOT NULL, customer_id int,
                    channel text, body text, internal_flag boolean DEFAULT false,
                    updated_at timestamptz NOT NULL DEFAULT now());
                INSERT INTO public.e2e_customers VALUES
                    (1, 'Enterprise', 'Pro', 'x'), (2, 'SMB', 'Free', 'y');
                """
            )
        )
    config = parse_config(CONFIG)
    settings = Settings(retry_delays=(0.0,), retry_jitter=0.0)
    pipelines = build_pipelines(db, config, settings)
    runner = Runner(db, pipelines, batch_size=50)
    sync(db, config, pipelines)
    with db.begin() as connection:
        capture.install(connection, config.sources[0])
    yield config, runner
    with db.begin() as connection:
        capture.uninstall(connection, config.sources[0])
        connection.execute(text("DROP TABLE IF EXISTS public.e2e_messages, public.e2e_customers"))


def sql(db: Engine, statement: str, **params: Any) -> None:
    with db.begin() as connection:
        connection.execute(text(statement), params)


def stored(db: Engine) -> dict[tuple[str, int], dict[str, Any]]:
    with db.connect() as connection:
        table = vectors.active_table(connection)
        assert table is not None
        rows = connection.execute(
            text(
                f"SELECT record_key, chunk_index, workspace_id, chunk_text, entity_type, "
                f"semantic_category, related_entity_types, updated_at, "
                f"vector_dims(embedding) AS dims FROM {table.qualified} ORDER BY 1, 2"
            )
        ).mappings()
        return {(r["record_key"], r["chunk_index"]): dict(r) for r in rows}


def event_count(db: Engine) -> int:
    with db.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM enrichment.events")).scalar_one()


LONG = " ".join(
    f"Sentence number {i} explains the delivery problem in some detail." for i in range(30)
)


def test_records_are_enriched_and_kept_in_sync_with_their_source(world, db: Engine) -> None:
    _, runner = world
    sql(
        db,
        "INSERT INTO public.e2e_messages (id, workspace_id, customer_id, channel, body) VALUES "
        "(1, 'acme', 1, 'email', 'I am frustrated with the onboarding flow'), "
        "(2, 'acme', 2, 'chat', :long), (3, 'globex', 1, 'email', 'Where is my parcel?')",
        long=LONG,
    )
    report = runner.drain()
    assert report.total("dead_lettered") == 0
    assert {row["status"] for row in states(db, "support_messages").values()} == {"COMPLETED"}
    vectors_now = stored(db)
    first = vectors_now[("1", 0)]
    assert first["chunk_text"] == (
        "Support communication — customer segment: Enterprise, subscription tier: Pro, "
        "channel: email — message content: I am frustrated with the onboarding flow"
    )
    assert first["workspace_id"] == "acme" and first["dims"] == 384
    assert first["entity_type"] == "support_message"
    assert first["related_entity_types"] == ["customer"]
    assert vectors_now[("3", 0)]["workspace_id"] == "globex"
    long_chunks = [k for k in vectors_now if k[0] == "2"]
    assert len(long_chunks) > 3  # the long message was chunked

    # A significant change re-embeds that record only.
    sql(db, "UPDATE public.e2e_messages SET body = 'Thanks, it works now' WHERE id = 1")
    runner.drain()
    after = stored(db)
    assert after[("1", 0)]["chunk_text"].endswith("message content: Thanks, it works now")
    assert after[("3", 0)]["updated_at"] == vectors_now[("3", 0)]["updated_at"]

    # An update of columns the pipeline does not read writes no event at all.
    before = event_count(db)
    sql(db, "UPDATE public.e2e_messages SET internal_flag = true, updated_at = now()")
    assert event_count(db) == before

    # A related entity's significant change re-embeds the records that join to it.
    sql(db, "UPDATE public.e2e_customers SET segment = 'Mid-market' WHERE id = 1")
    sql(db, "UPDATE public.e2e_customers SET note = 'not read' WHERE id = 2")
    runner.drain()
    after_related = stored(db)
    assert "customer segment: Mid-market" in after_related[("1", 0)]["chunk_text"]
    assert "customer segment: Mid-market" in after_related[("3", 0)]["chunk_text"]
    assert after_related[("2", 0)]["updated_at"] == after[("2", 0)]["updated_at"]

    # Shortening a record deletes the chunks it no longer has.
    sql(db, "UPDATE public.e2e_messages SET body = 'short now' WHERE id = 2")
    runner.drain()
    assert [k for k in stored(db) if k[0] == "2"] == [("2", 0)]

    # Deleting a record deletes its vectors and leaves a tombstone.
    sql(db, "DELETE FROM public.e2e_messages WHERE id = 3")
    runner.drain()
    assert not [k for k in stored(db) if k[0] == "3"]
    tombstone = states(db, "support_messages")[("3", "embed")]
    assert tombstone["deleted_at"] is not None and tombstone["skip_reason"] == "record deleted"


def test_manual_reembed_embeds_again_even_when_nothing_changed(world, db: Engine) -> None:
    config, runner = world
    sql(
        db,
        "INSERT INTO public.e2e_messages (id, workspace_id, customer_id, channel, body) "
        "VALUES (1, 'acme', 1, 'email', 'hello'), (2, 'globex', 2, 'chat', 'bonjour')",
    )
    runner.drain()
    before = stored(db)

    with db.begin() as connection:
        assert reembed(connection, config.sources[0], workspace="acme") == 1
    report = runner.drain()

    after = stored(db)
    embed = [b for b in report.batches if b.stage == "embed"]
    assert sum(b.completed for b in embed) == 1
    assert after[("1", 0)]["updated_at"] > before[("1", 0)]["updated_at"]
    assert after[("2", 0)]["updated_at"] == before[("2", 0)]["updated_at"]


def test_unchanged_text_after_an_update_keeps_vectors_without_a_model_call(world, db) -> None:
    _, runner = world
    sql(
        db,
        "INSERT INTO public.e2e_messages (id, workspace_id, customer_id, channel, body) "
        "VALUES (1, 'acme', 1, 'email', 'hello')",
    )
    runner.drain()
    # Change a read column and change it back in one go: an event, but the same input.
    sql(db, "UPDATE public.e2e_messages SET channel = 'chat' WHERE id = 1")
    sql(db, "UPDATE public.e2e_messages SET channel = 'email' WHERE id = 1")
    report = runner.drain()

    assert report.total("unchanged") == 1
    assert not [b for b in report.batches if b.stage in ("chunk", "embed")]
