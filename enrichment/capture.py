"""Change capture: statement-level triggers that turn source mutations into queue events.

One event per statement and workspace (not per row), written in the mutating transaction, so
a committed change always has its event and a rolled-back one never does. An UPDATE that
changes no column the pipeline reads writes no event. A change of a related entity's fields
(when marked significant) re-queues the source records that join to it.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from enrichment.config import RelatedEntity, SourceConfig
from enrichment.stages.context import column_type, quote

NOTIFY_CHANNEL = "enrichment_events"


def _function(source: SourceConfig, suffix: str = "") -> str:
    return f'enrichment."capture_{source.name}{suffix}"'


def _trigger(source: SourceConfig, op: str, suffix: str = "") -> str:
    return f'"enrich_{source.name}{suffix}_{op}"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _source_function(source: SourceConfig) -> str:
    key, ws = quote(source.key_column), quote(source.workspace_column)
    read = [quote(c) for c in dict.fromkeys([source.workspace_column, *source.columns])]
    old_cols = ", ".join(f"o.{c}" for c in read)
    new_cols = ", ".join(f"x.{c}" for c in read)
    name = _literal(source.name)

    def insert(rows: str, action: str, where: str = "") -> str:
        return (
            "INSERT INTO enrichment.events (workspace_id, source, record_ids, action, reason) "
            f"SELECT x.{ws}::text, {name}, array_agg(x.{key}::text), '{action}', 'entity_changed' "
            f"FROM {rows} AS x {where} GROUP BY x.{ws}::text;"
        )

    return f"""
CREATE OR REPLACE FUNCTION {_function(source)}() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {insert("new_rows", "CREATE")}
    ELSIF TG_OP = 'DELETE' THEN
        {insert("old_rows", "DELETE")}
    ELSE
        -- Changed rows only: an UPDATE that touches no column the pipeline reads is no work.
        {
        insert(
            "new_rows",
            "UPDATE",
            f"WHERE EXISTS (SELECT 1 FROM old_rows AS o WHERE o.{key} = x.{key} "
            f"AND ({old_cols}) IS DISTINCT FROM ({new_cols}))",
        )
    }
        -- A changed key is the old record gone and a new one created.
        {
        insert(
            "old_rows",
            "DELETE",
            f"WHERE NOT EXISTS (SELECT 1 FROM new_rows AS n WHERE n.{key} = x.{key})",
        )
    }
        {
        insert(
            "new_rows",
            "CREATE",
            f"WHERE NOT EXISTS (SELECT 1 FROM old_rows AS o WHERE o.{key} = x.{key})",
        )
    }
    END IF;
    PERFORM pg_notify('{NOTIFY_CHANNEL}', {name});
    RETURN NULL;
END
$fn$;
"""


def _related_function(source: SourceConfig, relation: RelatedEntity) -> str:
    key, ws = quote(source.key_column), quote(source.workspace_column)
    local, remote = quote(relation.join.local), quote(relation.join.remote)
    fields = ", ".join(quote(f) for f in dict.fromkeys([relation.join.remote, *relation.fields]))
    changed = {
        "INSERT": f"SELECT {remote} FROM new_rows",
        "DELETE": f"SELECT {remote} FROM old_rows",
        "UPDATE": (
            f"SELECT {remote} FROM (SELECT {fields} FROM new_rows EXCEPT "
            f"SELECT {fields} FROM old_rows) AS added UNION "
            f"SELECT {remote} FROM (SELECT {fields} FROM old_rows EXCEPT "
            f"SELECT {fields} FROM new_rows) AS removed"
        ),
    }

    def insert(op: str) -> str:
        return (
            "INSERT INTO enrichment.events (workspace_id, source, record_ids, action, reason) "
            f"SELECT s.{ws}::text, {_literal(source.name)}, array_agg(DISTINCT s.{key}::text), "
            f"'UPDATE', 'related_changed' FROM {quote(source.table)} AS s "
            f"WHERE s.{local} IN ({changed[op]}) GROUP BY s.{ws}::text;"
        )

    return f"""
CREATE OR REPLACE FUNCTION {_function(source, "__" + relation.name)}() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {insert("INSERT")}
    ELSIF TG_OP = 'DELETE' THEN
        {insert("DELETE")}
    ELSE
        {insert("UPDATE")}
    END IF;
    PERFORM pg_notify('{NOTIFY_CHANNEL}', {_literal(source.name)});
    RETURN NULL;
END
$fn$;
"""


def _create_triggers(
    table: str, function: str, source: SourceConfig, suffix: str = ""
) -> list[str]:
    statements = []
    for op, referencing in (
        ("insert", "REFERENCING NEW TABLE AS new_rows"),
        ("update", "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"),
        ("delete", "REFERENCING OLD TABLE AS old_rows"),
    ):
        trigger = _trigger(source, op, suffix)
        statements.append(f"DROP TRIGGER IF EXISTS {trigger} ON {quote(table)}")
        statements.append(
            f"CREATE TRIGGER {trigger} AFTER {op.upper()} ON {quote(table)} {referencing} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )
    return statements


def install(connection: Connection, source: SourceConfig) -> None:
    """Install (or replace) the triggers of a source and its significant relations.
    Safe to run again; checks the configured tables and columns exist first."""
    engine = connection.engine
    where = f"sources[{source.name}]"
    for column in (source.key_column, source.workspace_column, *source.columns):
        column_type(engine, source.table, column, key=f"{where}.columns")
    statements = [_source_function(source)]
    statements += _create_triggers(source.table, _function(source), source)
    for relation in source.related:
        if not relation.significant:
            continue
        for column in (relation.join.remote, *relation.fields):
            column_type(engine, relation.table, column, key=f"{where}.related.{relation.name}")
        suffix = "__" + relation.name
        statements.append(_related_function(source, relation))
        statements += _create_triggers(relation.table, _function(source, suffix), source, suffix)
    for statement in statements:
        connection.execute(text(statement))


def uninstall(connection: Connection, source: SourceConfig) -> None:
    """Remove the source's triggers and functions (those of all its relations too)."""
    targets = [(source.table, "")] + [(r.table, "__" + r.name) for r in source.related]
    for table, suffix in targets:
        exists = connection.execute(
            text("SELECT to_regclass(:t) IS NOT NULL"), {"t": table}
        ).scalar_one()
        if exists:
            for op in ("insert", "update", "delete"):
                connection.execute(
                    text(f"DROP TRIGGER IF EXISTS {_trigger(source, op, suffix)} ON {quote(table)}")
                )
        connection.execute(text(f"DROP FUNCTION IF EXISTS {_function(source, suffix)}()"))
