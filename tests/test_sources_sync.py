"""From configuration to registered pipelines: ``sync`` registers the sources and re-queues a
source's records when what shapes their text changed; ``reembed`` queues records on demand."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

from enrichment.config import EnrichConfig, parse_config
from enrichment.errors import UnknownSource
from enrichment.settings import Settings
from enrichment.source_tables import MISSING_WORKSPACE
from enrichment.sources import SyncResult, build_pipelines, config_hash, reembed, sync
from tests.helpers import fold_now, send

SETTINGS = Settings(retry_delays=(0.0,), retry_jitter=0.0)


def configuration(
    messages: dict[str, Any] | None = None, emails: dict[str, Any] | None = None
) -> EnrichConfig:
    """Two sources with only a context stage (nothing here runs a model)."""
    base = {
        "columns": ["channel", "body"],
        "entity": {"type": "message", "category": "Support communication"},
        "stages": ["context"],
    }
    return parse_config(
        {
            "sources": [
                {**base, "name": "messages", "table": "public.sync_messages", **(messages or {})},
                {**base, "name": "emails", "table": "public.sync_emails", **(emails or {})},
            ]
        }
    )


def do_sync(db: Engine, config: EnrichConfig) -> dict[str, SyncResult]:
    return {r.source: r for r in sync(db, config, build_pipelines(db, config, SETTINGS))}


def events(db: Engine) -> list[dict[str, Any]]:
    with db.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT workspace_id, source, record_ids, action, reason, force "
                "FROM enrichment.events WHERE folded_at IS NULL ORDER BY id"
            )
        ).mappings()
        return [{**row, "record_ids": sorted(row["record_ids"])} for row in rows]


def by_workspace(found: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    result = {event["workspace_id"]: event for event in found}
    assert len(result) == len(found), "one event per workspace"
    return result


@pytest.fixture
def registered(db: Engine) -> EnrichConfig:
    """Both sources synced; messages 1-3 live (1, 2 in acme, 3 in globex), 4 deleted; emails
    e1 live in acme; every event folded."""
    config = configuration()
    do_sync(db, config)
    send(db, "messages", ["1", "2", "4"], "CREATE", workspace="acme")
    send(db, "messages", ["3"], "CREATE", workspace="globex")
    send(db, "emails", ["e1"], "CREATE", workspace="acme")
    fold_now(db)
    send(db, "messages", ["4"], "DELETE", workspace="acme")
    fold_now(db)
    return config


# --- sync ----------------------------------------------------------------------------------


def test_sync_registers_every_source_with_its_stages_and_configuration_hash(db: Engine) -> None:
    config = configuration()

    results = do_sync(db, config)

    assert results == {
        "messages": SyncResult("messages", stages_changed=True, requeued=0),
        "emails": SyncResult("emails", stages_changed=True, requeued=0),
    }
    with db.connect() as connection:
        rows = connection.execute(
            text("SELECT name, stages, metadata_hash FROM enrichment.sources ORDER BY name")
        ).all()
    assert [tuple(row) for row in rows] == [
        ("emails", ["context"], config_hash(config.source("emails"))),
        ("messages", ["context"], config_hash(config.source("messages"))),
    ]


def test_syncing_an_unchanged_configuration_again_requeues_nothing(
    db: Engine, registered: EnrichConfig
) -> None:
    results = do_sync(db, registered)

    assert [(r.stages_changed, r.requeued) for r in results.values()] == [(False, 0), (False, 0)]
    assert events(db) == []


def test_a_changed_template_requeues_every_live_record_of_that_source_as_forced_events(
    db: Engine, registered: EnrichConfig
) -> None:
    changed = configuration(messages={"template": "{{ record.channel }}: {{ record.body }}"})

    results = do_sync(db, changed)

    assert results["messages"] == SyncResult("messages", stages_changed=False, requeued=3)
    assert results["emails"] == SyncResult("emails", stages_changed=False, requeued=0)
    requeued = by_workspace(events(db))
    assert requeued == {
        "acme": {
            "workspace_id": "acme",
            "source": "messages",
            "record_ids": ["1", "2"],
            "action": "UPDATE",
            "reason": "schema_changed",
            "force": True,
        },
        "globex": {
            "workspace_id": "globex",
            "source": "messages",
            "record_ids": ["3"],
            "action": "UPDATE",
            "reason": "schema_changed",
            "force": True,
        },
    }


@pytest.mark.parametrize(
    "messages",
    [
        pytest.param({"entity": {"type": "message", "category": "Email"}}, id="category"),
        pytest.param(
            {
                "entity": {
                    "type": "message",
                    "category": "Support communication",
                    "attributes": {"body": "message content"},
                }
            },
            id="attribute-label",
        ),
        pytest.param({"columns": ["body"]}, id="columns"),
    ],
)
def test_a_change_of_semantic_metadata_requeues_the_source(
    db: Engine, registered: EnrichConfig, messages: dict[str, Any]
) -> None:
    results = do_sync(db, configuration(messages=messages))

    assert results["messages"].requeued == 3
    assert {event["source"] for event in events(db)} == {"messages"}


def test_a_change_of_retry_lease_or_batch_settings_requeues_nothing(
    db: Engine, registered: EnrichConfig
) -> None:
    stages = [{"context": {"retry_delays": [5, 10], "lease_seconds": 30, "batch_size": 50}}]

    results = do_sync(db, configuration(messages={"stages": stages}))

    assert results["messages"].requeued == 0
    assert events(db) == []


def test_after_the_requeue_the_new_hash_is_stored_so_the_next_sync_requeues_nothing(
    db: Engine, registered: EnrichConfig
) -> None:
    changed = configuration(messages={"template": "{{ record.body }}"})
    do_sync(db, changed)
    fold_now(db)

    assert do_sync(db, changed)["messages"].requeued == 0
    assert events(db) == []


def test_a_requeue_reaches_records_that_are_already_pending(
    db: Engine, registered: EnrichConfig
) -> None:
    # Nothing ran: every record is still PENDING; it is requeued all the same (forced).
    results = do_sync(db, configuration(messages={"template": "{{ record.body }}"}))
    fold_now(db)

    assert results["messages"].requeued == 3
    with db.connect() as connection:
        statuses = connection.execute(
            text(
                "SELECT record_key, status, deleted_at IS NOT NULL AS deleted "
                "FROM enrichment.record_state WHERE source = 'messages' ORDER BY record_key"
            )
        ).all()
    assert [tuple(row) for row in statuses] == [
        ("1", "PENDING", False),
        ("2", "PENDING", False),
        ("3", "PENDING", False),
        ("4", "SKIPPED", True),
    ]


# --- reembed -------------------------------------------------------------------------------


@pytest.fixture
def source_rows(registered: EnrichConfig, db: Engine) -> Iterator[EnrichConfig]:
    """public.sync_messages: 1, 2 in acme, 3 in globex; no events pending."""
    with db.begin() as connection:
        connection.execute(
            text(
                """
                DROP TABLE IF EXISTS public.sync_messages;
                CREATE TABLE public.sync_messages (
                    id int PRIMARY KEY, workspace_id text, channel text, body text);
                INSERT INTO public.sync_messages VALUES
                    (1, 'acme', 'email', 'one'), (2, 'acme', 'chat', 'two'),
                    (3, 'globex', 'email', 'three');
                """
            )
        )
    yield registered
    with db.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS public.sync_messages"))


def queue_again(db: Engine, config: EnrichConfig, **filters: Any) -> int:
    with db.begin() as connection:
        return reembed(connection, config.source("messages"), **filters)


def test_reembed_queues_every_record_of_the_source_table_as_forced_manual_events(
    db: Engine, source_rows: EnrichConfig
) -> None:
    assert queue_again(db, source_rows) == 3

    requeued = by_workspace(events(db))
    assert {ws: e["record_ids"] for ws, e in requeued.items()} == {
        "acme": ["1", "2"],
        "globex": ["3"],
    }
    assert {(e["source"], e["action"], e["reason"], e["force"]) for e in requeued.values()} == {
        ("messages", "UPDATE", "manual_reembed", True)
    }


def test_reembed_of_one_workspace_queues_only_its_records(
    db: Engine, source_rows: EnrichConfig
) -> None:
    assert queue_again(db, source_rows, workspace="acme") == 2

    assert [(e["workspace_id"], e["record_ids"]) for e in events(db)] == [("acme", ["1", "2"])]


def test_reembed_of_given_ids_queues_only_those_that_exist(
    db: Engine, source_rows: EnrichConfig
) -> None:
    assert queue_again(db, source_rows, ids=["1", "3", "99"]) == 2

    assert sorted((e["workspace_id"], e["record_ids"]) for e in events(db)) == [
        ("acme", ["1"]),
        ("globex", ["3"]),
    ]


def test_reembed_filters_by_workspace_and_ids_together(
    db: Engine, source_rows: EnrichConfig
) -> None:
    assert queue_again(db, source_rows, workspace="acme", ids=["2", "3"]) == 1

    assert [(e["workspace_id"], e["record_ids"]) for e in events(db)] == [("acme", ["2"])]


@pytest.mark.parametrize(
    "filters",
    [{"workspace": "initech"}, {"ids": ["99"]}, {"workspace": "globex", "ids": ["1"]}],
    ids=["unknown-workspace", "unknown-id", "id-in-another-workspace"],
)
def test_reembed_matching_nothing_queues_nothing(
    db: Engine, source_rows: EnrichConfig, filters: dict[str, Any]
) -> None:
    assert queue_again(db, source_rows, **filters) == 0

    assert events(db) == []


def test_reembed_without_force_is_an_integration_sync_that_keeps_unchanged_work(
    db: Engine, source_rows: EnrichConfig
) -> None:
    assert queue_again(db, source_rows, ids=["1"], force=False) == 1

    [event] = events(db)
    assert (event["reason"], event["force"]) == ("integration_sync", False)


def test_reembed_of_a_source_that_was_never_synced_is_refused(db: Engine) -> None:
    config = configuration()
    with db.begin() as connection:
        connection.execute(
            text(
                "DROP TABLE IF EXISTS public.sync_messages; "
                "CREATE TABLE public.sync_messages "
                "(id int PRIMARY KEY, workspace_id text, channel text, body text); "
                "INSERT INTO public.sync_messages VALUES (1, 'acme', 'email', 'one')"
            )
        )
    try:
        with pytest.raises(UnknownSource, match="unknown source 'messages'"), db.begin() as c:
            reembed(c, config.source("messages"))
    finally:
        with db.begin() as connection:
            connection.execute(text("DROP TABLE public.sync_messages"))
    assert events(db) == []


def test_reembed_queues_a_record_without_a_workspace_under_the_missing_marker(
    db: Engine, source_rows: EnrichConfig
) -> None:
    with db.begin() as connection:
        connection.execute(
            text("INSERT INTO public.sync_messages VALUES (5, NULL, 'x', 'y'), (6, '', 'x', 'y')")
        )

    assert queue_again(db, source_rows) == 5

    queued = {ws: e["record_ids"] for ws, e in by_workspace(events(db)).items()}
    assert queued == {"acme": ["1", "2"], "globex": ["3"], MISSING_WORKSPACE: ["5", "6"]}
