"""Change capture: statement-level triggers that turn source mutations into queue events.

One event per statement and workspace (not per row), written in the mutating transaction, so
a committed change always has its event and a rolled-back one never does. An UPDATE that
changes no column the pipeline reads writes no event. A change of a related entity's fields
(when marked significant) re-queues the source records that join to it.

A record with no workspace is queued under ``source_tables.MISSING_WORKSPACE``, not refused: the
application's write must never fail because of capture, and the context stage reports the record
as a dead letter ("MissingWorkspace") where it can be seen.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from enrichment.config import RelatedEntity, SourceConfig
from enrichment.notifications import NOTIFY_CHANNEL
from enrichment.source_tables import check_source, literal, quote, workspace_expression

# Every trigger and function installed for a source, whatever configuration installed them:
# relations since removed or made insignificant must stop capturing too.
_INSTALLED = """
WITH functions AS (
    SELECT p.oid, p.proname FROM pg_proc AS p
    JOIN pg_namespace AS n ON n.oid = p.pronamespace
    WHERE n.nspname = 'enrichment'
      AND (p.proname = :function OR starts_with(p.proname, :function || '__'))
)
SELECT statement FROM (
    SELECT 1 AS step, format('DROP TRIGGER %I ON %s', t.tgname, t.tgrelid::regclass) AS statement
    FROM pg_trigger AS t JOIN functions AS f ON f.oid = t.tgfoid
    UNION ALL
    SELECT 2, format('DROP FUNCTION enrichment.%I()', f.proname) FROM functions AS f
) AS drops
ORDER BY step  -- triggers before the functions they execute
"""


def _function(source: SourceConfig, suffix: str = "") -> str:
    return f'enrichment."capture_{source.name}{suffix}"'


def _trigger(source: SourceConfig, op: str, suffix: str = "") -> str:
    return f'"enrich_{source.name}{suffix}_{op}"'


def _source_function(source: SourceConfig) -> str:
    key, ws = quote(source.key_column), quote(source.workspace_column)
    read = [quote(c) for c in dict.fromkeys([source.workspace_column, *source.columns])]
    old_cols = ", ".join(f"o.{c}" for c in read)
    new_cols = ", ".join(f"x.{c}" for c in read)
    name = literal(source.name)

    def insert(rows: str, action: str, where: str = "") -> str:
        return (
            "INSERT INTO enrichment.events (workspace_id, source, record_ids, action, reason) "
            f"SELECT {workspace_expression(f'x.{ws}')}, {name}, array_agg(x.{key}::text), "
            f"'{action}', 'entity_changed' FROM {rows} AS x {where} GROUP BY 1;"
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
            f"SELECT {workspace_expression(f's.{ws}')}, {literal(source.name)}, "
            f"array_agg(DISTINCT s.{key}::text), 'UPDATE', 'related_changed' "
            f"FROM {quote(source.table)} AS s WHERE s.{local} IN ({changed[op]}) GROUP BY 1;"
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
    PERFORM pg_notify('{NOTIFY_CHANNEL}', {literal(source.name)});
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


def _drop_installed(connection: Connection, source: SourceConfig) -> None:
    statements = connection.execute(
        text(_INSTALLED), {"function": f"capture_{source.name}"}
    ).scalars()
    for statement in list(statements):
        connection.execute(text(statement))


def install(connection: Connection, source: SourceConfig) -> None:
    """Install the triggers of a source and its significant relations, replacing whatever was
    installed for the source before (so a relation removed or made insignificant stops
    capturing). Safe to run again; checks the configured tables and columns exist first, in
    the caller's transaction."""
    significant = [relation for relation in source.related if relation.significant]
    check_source(connection, source, relations=significant)
    _drop_installed(connection, source)
    statements = [_source_function(source)]
    statements += _create_triggers(source.table, _function(source), source)
    for relation in significant:
        suffix = "__" + relation.name
        statements.append(_related_function(source, relation))
        statements += _create_triggers(relation.table, _function(source, suffix), source, suffix)
    for statement in statements:
        connection.execute(text(statement))


def uninstall(connection: Connection, source: SourceConfig) -> None:
    """Remove every trigger and function installed for the source (those of relations no
    longer configured too). Nothing installed is not an error."""
    _drop_installed(connection, source)
