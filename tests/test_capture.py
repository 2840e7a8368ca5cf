"""Change capture: the statement-level triggers write one event per statement and workspace, in
the mutating transaction, for exactly the records whose pipeline input changed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text

from enrichment import capture
from enrichment.config import SourceConfig, parse_config
from enrichment.database import libpq_url
from enrichment.errors import InvalidInput
from enrichment.runner import Runner
from enrichment.settings import Settings
from enrichment.source_tables import MISSING_WORKSPACE
from enrichment.sources import build_pipelines, sync
from tests.helpers import state

SOURCE = "messages"

TABLES = """
    DROP TABLE IF EXISTS public.cap_messages, public.cap_customers, public.cap_orders,
        public.cap_tags;
    CREATE TABLE public.cap_customers (id int PRIMARY KEY, segment text, tier text, note text);
    CREATE TABLE public.cap_messages (
        id int PRIMARY KEY, workspace_id text, customer_id int, channel text, body text,
        internal_flag boolean NOT NULL DEFAULT false,
        updated_at timestamptz NOT NULL DEFAULT now());
    CREATE TABLE public.cap_orders (
        id int PRIMARY KEY, message_id int, item text, warehouse_note text);
    CREATE TABLE public.cap_tags (id int PRIMARY KEY, message_id int, tag text);
"""


def source_config(**changes: Any) -> SourceConfig:
    """messages -> customer (many-to-one), orders (one-to-many), tags (not significant)."""
    source: dict[str, Any] = {
        "name": SOURCE,
        "table": "public.cap_messages",
        "columns": ["channel", "body"],
        "entity": {"type": "support_message", "category": "Support communication"},
        "related": [
            {
                "name": "customer",
                "table": "public.cap_customers",
                "join": {"local": "customer_id", "remote": "id"},
                "fields": ["segment", "tier"],
            },
            {
                "name": "orders",
                "table": "public.cap_orders",
                "join": {"local": "id", "remote": "message_id"},
                "fields": ["item"],
                "many": True,
            },
            {
                "name": "tags",
                "table": "public.cap_tags",
                "join": {"local": "id", "remote": "message_id"},
                "fields": ["tag"],
                "many": True,
                "significant": False,
            },
        ],
        "stages": ["context"],
    }
    source.update(changes)
    return parse_config({"sources": [source]}).sources[0]


def related(**changes: Any) -> list[dict[str, Any]]:
    """The customer relation alone, changed."""
    customer: dict[str, Any] = {
        "name": "customer",
        "table": "public.cap_customers",
        "join": {"local": "customer_id", "remote": "id"},
        "fields": ["segment"],
    }
    return [{**customer, **changes}]


def sql(db: Engine, statement: str, **params: Any) -> None:
    with db.begin() as connection:
        connection.execute(text(statement), params)


def events(db: Engine) -> list[tuple[str, str, list[str], str]]:
    """(workspace, action, sorted record ids, reason) of every event, in the order written."""
    with db.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT workspace_id, action, record_ids, reason, source "
                "FROM enrichment.events ORDER BY id"
            )
        ).all()
    assert {row.source for row in rows} <= {SOURCE}
    return [
        (row.workspace_id, row.action, sorted(row.record_ids, key=int), row.reason) for row in rows
    ]


def clear_events(db: Engine) -> None:
    sql(db, "DELETE FROM enrichment.events")


def triggers(db: Engine) -> list[tuple[str, str]]:
    """(table, trigger) of every capture trigger on this module's tables (other modules'
    sources may have triggers in the same session database)."""
    with db.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT tgrelid::regclass::text AS tbl, tgname FROM pg_trigger "
                "WHERE NOT tgisinternal AND tgname LIKE 'enrich\\_%' "
                "AND tgrelid::regclass::text LIKE 'cap\\_%' ORDER BY 1, 2"
            )
        ).all()
    return [(row.tbl, row.tgname) for row in rows]


def capture_functions(db: Engine) -> list[str]:
    with db.connect() as connection:
        return list(
            connection.execute(
                text(
                    "SELECT p.proname FROM pg_proc AS p JOIN pg_namespace AS n "
                    "ON n.oid = p.pronamespace WHERE n.nspname = 'enrichment' "
                    "AND p.proname LIKE :prefix ORDER BY 1"
                ),
                {"prefix": f"capture\\_{SOURCE}%"},
            ).scalars()
        )


def install(db: Engine, source: SourceConfig) -> None:
    with db.begin() as connection:
        capture.install(connection, source)


@pytest.fixture
def tables(db: Engine) -> Iterator[Engine]:
    """The source and related tables, with customers 1 and 2, no triggers yet."""
    sql(db, TABLES)
    sql(
        db,
        "INSERT INTO public.cap_customers VALUES "
        "(1, 'Enterprise', 'Pro', 'a'), (2, 'SMB', 'Free', 'b')",
    )
    yield db
    with db.begin() as connection:
        capture.uninstall(connection, source_config())
        connection.execute(
            text(
                "DROP TABLE IF EXISTS public.cap_messages, public.cap_customers, "
                "public.cap_orders, public.cap_tags"
            )
        )


@pytest.fixture
def captured(tables: Engine) -> Engine:
    """Triggers installed; messages 1-2 in workspace acme (customer 1), 3 in globex
    (customer 2); orders of messages 1 and 3; no events left from setting up."""
    install(tables, source_config())
    sql(
        tables,
        "INSERT INTO public.cap_messages (id, workspace_id, customer_id, channel, body) VALUES "
        "(1, 'acme', 1, 'email', 'one'), (2, 'acme', 1, 'chat', 'two'), "
        "(3, 'globex', 2, 'email', 'three')",
    )
    sql(
        tables,
        "INSERT INTO public.cap_orders VALUES (10, 1, 'desk', 'x'), (11, 1, 'chair', 'y'), "
        "(30, 3, 'lamp', 'z')",
    )
    sql(tables, "INSERT INTO public.cap_tags VALUES (1, 1, 'urgent')")
    clear_events(tables)
    return tables


# --- installing ----------------------------------------------------------------------------


EXPECTED_TRIGGERS = sorted(
    (table, f"enrich_{SOURCE}{suffix}_{op}")
    for table, suffix in (
        ("cap_messages", ""),
        ("cap_customers", "__customer"),
        ("cap_orders", "__orders"),
    )
    for op in ("insert", "update", "delete")
)


def test_install_creates_triggers_on_the_source_and_its_significant_related_tables(
    tables: Engine,
) -> None:
    install(tables, source_config())

    assert triggers(tables) == EXPECTED_TRIGGERS
    assert capture_functions(tables) == [
        f"capture_{SOURCE}",
        f"capture_{SOURCE}__customer",
        f"capture_{SOURCE}__orders",
    ]


def test_installing_twice_leaves_one_set_of_triggers_that_write_one_event(
    tables: Engine,
) -> None:
    install(tables, source_config())
    install(tables, source_config())

    assert triggers(tables) == EXPECTED_TRIGGERS
    sql(tables, "INSERT INTO public.cap_messages (id, workspace_id, body) VALUES (1, 'acme', 'x')")
    assert events(tables) == [("acme", "CREATE", ["1"], "entity_changed")]


@pytest.mark.parametrize(
    "relations",
    [related(significant=False), []],
    ids=["made-insignificant", "removed-from-config"],
)
def test_reinstalling_stops_capture_of_a_relation_no_longer_significant(
    tables: Engine, relations: list[dict[str, Any]]
) -> None:
    install(tables, source_config())
    sql(
        tables,
        "INSERT INTO public.cap_messages (id, workspace_id, customer_id) VALUES (1, 'acme', 1)",
    )
    clear_events(tables)

    install(tables, source_config(related=relations))

    assert {table for table, _ in triggers(tables)} == {"cap_messages"}
    assert capture_functions(tables) == [f"capture_{SOURCE}"]
    sql(tables, "UPDATE public.cap_customers SET segment = 'Mid-market' WHERE id = 1")
    assert events(tables) == []


def test_uninstall_removes_every_trigger_and_function(captured: Engine) -> None:
    with captured.begin() as connection:
        capture.uninstall(connection, source_config())

    assert triggers(captured) == []
    assert capture_functions(captured) == []
    sql(
        captured, "INSERT INTO public.cap_messages (id, workspace_id, body) VALUES (9, 'acme', 'x')"
    )
    sql(captured, "UPDATE public.cap_customers SET segment = 'Mid-market'")
    assert events(captured) == []


def test_uninstall_also_removes_triggers_of_relations_no_longer_configured(
    captured: Engine,
) -> None:
    with captured.begin() as connection:
        capture.uninstall(connection, source_config(related=[]))

    assert triggers(captured) == []
    assert capture_functions(captured) == []


def test_uninstall_when_nothing_is_installed_is_a_no_op(tables: Engine) -> None:
    with tables.begin() as connection:
        capture.uninstall(connection, source_config())

    assert triggers(tables) == []


def test_install_sees_a_column_added_earlier_in_the_same_transaction(tables: Engine) -> None:
    with tables.begin() as connection:
        connection.execute(text("ALTER TABLE public.cap_messages ADD COLUMN subject text"))
        capture.install(connection, source_config(columns=["subject", "body"]))

    sql(tables, "UPDATE public.cap_messages SET subject = 'Hello'")  # no rows yet: no event
    sql(tables, "INSERT INTO public.cap_messages (id, workspace_id) VALUES (1, 'acme')")
    sql(tables, "UPDATE public.cap_messages SET subject = 'Hello'")
    assert events(tables) == [
        ("acme", "CREATE", ["1"], "entity_changed"),
        ("acme", "UPDATE", ["1"], "entity_changed"),
    ]


@pytest.mark.parametrize(
    ("changes", "key", "problem"),
    [
        pytest.param(
            {"table": "public.no_such_table"},
            "sources[messages].table",
            "table 'public.no_such_table' does not exist",
            id="source-table",
        ),
        pytest.param(
            {"key_column": "uuid"},
            "sources[messages].key_column",
            "table 'public.cap_messages' has no column 'uuid'",
            id="key-column",
        ),
        pytest.param(
            {"workspace_column": "tenant"},
            "sources[messages].workspace_column",
            "table 'public.cap_messages' has no column 'tenant'",
            id="workspace-column",
        ),
        pytest.param(
            {"columns": ["channel", "subject"]},
            "sources[messages].columns",
            "table 'public.cap_messages' has no column 'subject'",
            id="read-column",
        ),
        pytest.param(
            {"related": related(table="public.no_customers")},
            "sources[messages].related.customer.table",
            "table 'public.no_customers' does not exist",
            id="related-table",
        ),
        pytest.param(
            {"related": related(join={"local": "client_id", "remote": "id"})},
            "sources[messages].related.customer.join.local",
            "table 'public.cap_messages' has no column 'client_id'",
            id="join-local",
        ),
        pytest.param(
            {"related": related(join={"local": "customer_id", "remote": "customer_no"})},
            "sources[messages].related.customer.join.remote",
            "table 'public.cap_customers' has no column 'customer_no'",
            id="join-remote",
        ),
        pytest.param(
            {"related": related(fields=["segment", "revenue"])},
            "sources[messages].related.customer.fields",
            "table 'public.cap_customers' has no column 'revenue'",
            id="related-field",
        ),
    ],
)
def test_install_on_a_missing_table_or_column_names_the_config_key_and_installs_nothing(
    tables: Engine, changes: dict[str, Any], key: str, problem: str
) -> None:
    with pytest.raises(InvalidInput) as raised, tables.begin() as connection:
        capture.install(connection, source_config(**changes))

    assert raised.value.field == key
    assert raised.value.problem == problem
    assert triggers(tables) == []


def test_a_missing_related_table_of_an_insignificant_relation_is_not_checked(
    tables: Engine,
) -> None:
    install(tables, source_config(related=related(table="public.gone", significant=False)))

    assert {table for table, _ in triggers(tables)} == {"cap_messages"}


# --- the source table ----------------------------------------------------------------------


def test_a_multi_row_insert_writes_one_event_per_workspace_with_all_its_ids(
    tables: Engine,
) -> None:
    install(tables, source_config())

    sql(
        tables,
        "INSERT INTO public.cap_messages (id, workspace_id, body) VALUES "
        "(1, 'acme', 'a'), (2, 'globex', 'b'), (3, 'acme', 'c'), (4, 'acme', 'd')",
    )

    assert sorted(events(tables)) == [
        ("acme", "CREATE", ["1", "3", "4"], "entity_changed"),
        ("globex", "CREATE", ["2"], "entity_changed"),
    ]


def test_a_statement_that_touches_no_row_writes_no_event(captured: Engine) -> None:
    sql(captured, "UPDATE public.cap_messages SET body = 'x' WHERE id = 999")
    sql(captured, "DELETE FROM public.cap_messages WHERE id = 999")
    sql(captured, "INSERT INTO public.cap_messages SELECT * FROM public.cap_messages WHERE false")

    assert events(captured) == []


def test_an_update_of_only_unread_columns_writes_no_event(captured: Engine) -> None:
    sql(captured, "UPDATE public.cap_messages SET internal_flag = true, updated_at = now()")

    assert events(captured) == []


def test_an_update_that_sets_read_columns_to_their_current_values_writes_no_event(
    captured: Engine,
) -> None:
    sql(captured, "UPDATE public.cap_messages SET channel = channel, body = body")

    assert events(captured) == []


def test_an_update_of_a_read_column_writes_an_update_event_for_exactly_the_changed_rows(
    captured: Engine,
) -> None:
    # Rows 1-3 are all touched; only 1 and 3 really change (2 is already on chat).
    sql(captured, "UPDATE public.cap_messages SET channel = 'chat'")

    assert sorted(events(captured)) == [
        ("acme", "UPDATE", ["1"], "entity_changed"),
        ("globex", "UPDATE", ["3"], "entity_changed"),
    ]


def test_setting_a_read_column_to_null_counts_as_a_change(captured: Engine) -> None:
    sql(captured, "UPDATE public.cap_messages SET body = NULL WHERE id = 2")

    assert events(captured) == [("acme", "UPDATE", ["2"], "entity_changed")]


def test_moving_a_record_to_another_workspace_writes_the_event_with_the_new_workspace(
    captured: Engine,
) -> None:
    sql(captured, "UPDATE public.cap_messages SET workspace_id = 'initech' WHERE id = 1")

    assert events(captured) == [("initech", "UPDATE", ["1"], "entity_changed")]


def test_changing_a_primary_key_deletes_the_old_record_and_creates_the_new_one(
    captured: Engine,
) -> None:
    sql(captured, "UPDATE public.cap_messages SET id = 7 WHERE id = 2")

    assert events(captured) == [
        ("acme", "DELETE", ["2"], "entity_changed"),
        ("acme", "CREATE", ["7"], "entity_changed"),
    ]


def test_a_delete_writes_a_delete_event_per_workspace(captured: Engine) -> None:
    sql(captured, "DELETE FROM public.cap_messages")

    assert sorted(events(captured)) == [
        ("acme", "DELETE", ["1", "2"], "entity_changed"),
        ("globex", "DELETE", ["3"], "entity_changed"),
    ]


def test_a_rolled_back_transaction_writes_no_event(captured: Engine) -> None:
    with captured.connect() as connection:
        transaction = connection.begin()
        connection.execute(
            text("INSERT INTO public.cap_messages (id, workspace_id) VALUES (5, 'acme')")
        )
        connection.execute(text("UPDATE public.cap_messages SET body = 'changed'"))
        connection.execute(text("DELETE FROM public.cap_messages WHERE id = 3"))
        transaction.rollback()

    assert events(captured) == []


def test_the_triggers_notify_the_enrichment_channel_with_the_source_name_on_commit(
    captured: Engine,
) -> None:
    url = libpq_url(captured.url.render_as_string(hide_password=False))
    with psycopg.connect(url, autocommit=True) as listener:
        listener.execute(f"LISTEN {capture.NOTIFY_CHANNEL}")

        sql(captured, "UPDATE public.cap_messages SET body = 'changed' WHERE id = 1")

        received = list(listener.notifies(timeout=5, stop_after=1))
    assert [(n.channel, n.payload) for n in received] == [("enrichment_events", SOURCE)]


def test_a_rolled_back_change_sends_no_notification(captured: Engine) -> None:
    url = libpq_url(captured.url.render_as_string(hide_password=False))
    with psycopg.connect(url, autocommit=True) as listener:
        listener.execute(f"LISTEN {capture.NOTIFY_CHANNEL}")

        with captured.connect() as connection:
            transaction = connection.begin()
            connection.execute(text("UPDATE public.cap_messages SET body = 'changed'"))
            transaction.rollback()
        sql(captured, f"NOTIFY {capture.NOTIFY_CHANNEL}, 'marker'")  # sent after the rollback

        received = list(listener.notifies(timeout=5, stop_after=1))
    assert [n.payload for n in received] == ["marker"]


# --- related tables ------------------------------------------------------------------------


def test_a_many_to_one_related_change_requeues_exactly_the_records_that_join_to_it(
    captured: Engine,
) -> None:
    sql(captured, "UPDATE public.cap_customers SET segment = 'Mid-market' WHERE id = 1")

    assert events(captured) == [("acme", "UPDATE", ["1", "2"], "related_changed")]


def test_a_related_change_writes_one_event_per_workspace_of_the_joined_records(
    captured: Engine,
) -> None:
    sql(captured, "UPDATE public.cap_customers SET tier = 'Gold'")

    assert sorted(events(captured)) == [
        ("acme", "UPDATE", ["1", "2"], "related_changed"),
        ("globex", "UPDATE", ["3"], "related_changed"),
    ]


def test_a_one_to_many_related_change_requeues_the_record_it_belongs_to(
    captured: Engine,
) -> None:
    sql(captured, "UPDATE public.cap_orders SET item = 'standing desk' WHERE id = 10")

    assert events(captured) == [("acme", "UPDATE", ["1"], "related_changed")]


def test_inserting_and_deleting_related_rows_requeue_the_records_they_join(
    captured: Engine,
) -> None:
    sql(captured, "INSERT INTO public.cap_orders VALUES (20, 2, 'pen', NULL)")
    sql(captured, "DELETE FROM public.cap_orders WHERE id = 30")

    assert events(captured) == [
        ("acme", "UPDATE", ["2"], "related_changed"),
        ("globex", "UPDATE", ["3"], "related_changed"),
    ]


def test_moving_a_related_row_requeues_both_the_old_and_the_new_record(
    captured: Engine,
) -> None:
    sql(captured, "UPDATE public.cap_orders SET message_id = 2 WHERE id = 11")

    assert events(captured) == [("acme", "UPDATE", ["1", "2"], "related_changed")]


def test_a_related_row_no_record_joins_to_writes_no_event(captured: Engine) -> None:
    sql(captured, "INSERT INTO public.cap_customers VALUES (3, 'SMB', 'Free', NULL)")
    sql(captured, "UPDATE public.cap_customers SET segment = 'Startup' WHERE id = 3")

    assert events(captured) == []


def test_a_change_of_a_related_field_not_listed_writes_no_event(captured: Engine) -> None:
    sql(captured, "UPDATE public.cap_customers SET note = 'renewal due'")
    sql(captured, "UPDATE public.cap_orders SET warehouse_note = 'fragile'")

    assert events(captured) == []


def test_a_change_of_a_non_significant_relation_writes_no_event(captured: Engine) -> None:
    sql(captured, "UPDATE public.cap_tags SET tag = 'resolved'")
    sql(captured, "INSERT INTO public.cap_tags VALUES (2, 2, 'billing')")
    sql(captured, "DELETE FROM public.cap_tags")

    assert events(captured) == []


# --- records without a workspace -------------------------------------------------------------


@pytest.mark.parametrize("workspace", [None, ""], ids=["null", "empty"])
def test_a_record_without_a_workspace_is_queued_under_the_missing_workspace_marker(
    captured: Engine, workspace: str | None
) -> None:
    sql(
        captured,
        "INSERT INTO public.cap_messages (id, workspace_id, customer_id) VALUES (5, :ws, 1)",
        ws=workspace,
    )
    sql(captured, "UPDATE public.cap_customers SET segment = 'Mid-market' WHERE id = 1")

    created, *related_changed = events(captured)
    assert created == (MISSING_WORKSPACE, "CREATE", ["5"], "entity_changed")
    assert sorted(related_changed) == sorted(
        [
            ("acme", "UPDATE", ["1", "2"], "related_changed"),
            (MISSING_WORKSPACE, "UPDATE", ["5"], "related_changed"),
        ]
    )


def test_removing_a_records_workspace_does_not_refuse_the_applications_write(
    captured: Engine,
) -> None:
    sql(captured, "UPDATE public.cap_messages SET workspace_id = NULL WHERE id = 1")

    assert events(captured) == [(MISSING_WORKSPACE, "UPDATE", ["1"], "entity_changed")]


def test_a_record_without_a_workspace_becomes_a_dead_letter_of_the_context_stage(
    captured: Engine,
) -> None:
    config = parse_config({"sources": [source_config().model_dump()]})
    pipelines = build_pipelines(captured, config, Settings(retry_delays=(0.0,)))
    sync(captured, config, pipelines)
    sql(captured, "INSERT INTO public.cap_messages (id, workspace_id, body) VALUES (5, NULL, 'x')")

    Runner(captured, pipelines).drain()

    failed = state(captured, SOURCE, "5", "context")
    assert (failed["status"], failed["last_error_type"]) == ("FAILED", "MissingWorkspace")
    assert failed["next_attempt_at"] is None  # not retried: a dead letter
    assert failed["last_error_message"] == "record '5': field 'workspace_id' is empty"
