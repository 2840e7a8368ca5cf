"""The user's source tables as configured: quoting their names in generated SQL, checking that
they and their columns exist, and the workspace a row is queued under."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import Connection, text

from enrichment.config import RelatedEntity, SourceConfig
from enrichment.errors import InvalidInput

# A row whose workspace column is NULL or empty is still queued, under this workspace, so an
# application's write never fails because of capture; the context stage dead-letters it.
MISSING_WORKSPACE = "(none)"


def quote(identifier: str) -> str:
    """A configured (already validated) table or column name, quoted for SQL."""
    return ".".join(f'"{part}"' for part in identifier.split("."))


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def workspace_expression(column_sql: str) -> str:
    """The workspace a row is queued under (see MISSING_WORKSPACE)."""
    return f"coalesce(nullif({column_sql}::text, ''), {literal(MISSING_WORKSPACE)})"


def column_types(
    connection: Connection, table: str, table_key: str, columns: Mapping[str, str]
) -> dict[str, str]:
    """SQL type of each of ``columns`` (column -> its configuration key) in ``table``, as the
    caller's transaction sees it. A missing table or column raises, naming its key."""
    if not connection.execute(
        text("SELECT to_regclass(:table) IS NOT NULL"), {"table": table}
    ).scalar_one():
        raise InvalidInput(table_key, f"table {table!r} does not exist")
    rows = connection.execute(
        text(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = CAST(:table AS regclass) AND attnum > 0 AND NOT attisdropped"
        ),
        {"table": table},
    )
    present: dict[str, str] = {name: type_name for name, type_name in rows}
    for column, key in columns.items():
        if column not in present:
            raise InvalidInput(key, f"table {table!r} has no column {column!r}")
    return {column: present[column] for column in columns}


def check_source(
    connection: Connection,
    source: SourceConfig,
    *,
    relations: Iterable[RelatedEntity],
    updated_at: bool = False,
) -> str:
    """Check the source table and the given relations' tables against the configuration, one
    query per table; returns the SQL type of the source's key column."""
    where = f"sources[{source.name}]"
    columns = {
        source.key_column: f"{where}.key_column",
        source.workspace_column: f"{where}.workspace_column",
    }
    if updated_at and source.updated_at_column:
        columns.setdefault(source.updated_at_column, f"{where}.updated_at_column")
    for column in source.columns:
        columns.setdefault(column, f"{where}.columns")
    relations = list(relations)
    for relation in relations:
        columns.setdefault(relation.join.local, f"{where}.related.{relation.name}.join.local")
    key_type = column_types(connection, source.table, f"{where}.table", columns)[source.key_column]
    for relation in relations:
        related = f"{where}.related.{relation.name}"
        remote = {relation.join.remote: f"{related}.join.remote"}
        remote.update({f: f"{related}.fields" for f in relation.fields if f not in remote})
        column_types(connection, relation.table, f"{related}.table", remote)
    return key_type
