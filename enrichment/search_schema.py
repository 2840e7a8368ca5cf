"""The database side of search: the lexical column of a vector table, row-level security keyed
by a per-transaction workspace setting, and the search role that is subject to it.

Two locks keep a search inside one workspace. The first is the application's: every search
query filters on ``workspace_id``. The second is PostgreSQL's: a vector table shows a role that
is not its owner only the rows whose ``workspace_id`` equals the transaction's
``enrichment.workspace`` setting, so a query that forgets the filter still sees one workspace.

The owner of the vector tables (the role that runs the migrations and the pipeline) is not
subject to the policy: it writes batches that span workspaces and deletes records wherever
they are. Searches therefore run as another role, ``enrich_search`` by default, which can only
read (see docs/search.md for the set-up). Migration 0003 creates it where the migrating role
may create roles; :func:`grant_search` grants another role the same rights.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

SCHEMA = "enrichment"
WORKSPACE_SETTING = "enrichment.workspace"
DEFAULT_SEARCH_ROLE = "enrich_search"
POLICY = "workspace_isolation"
LEXICAL_COLUMN = "chunk_tsv"
TEXT_SEARCH_CONFIG = "english"
LEXICAL_FUNCTION = (
    "enrichment.lexical_matches(text, text, integer, text[], text[], text[], timestamptz, "
    "timestamptz, real, boolean)"
)

# The text-search document of a chunk, computed by PostgreSQL on every write. Stored (not
# virtual, PostgreSQL 18's default) so that it can be indexed and ranked without re-parsing.
LEXICAL_COLUMN_DDL = (
    f"{LEXICAL_COLUMN} tsvector GENERATED ALWAYS AS "
    f"(to_tsvector('{TEXT_SEARCH_CONFIG}'::regconfig, coalesce(chunk_text, ''))) STORED"
)


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def lexical_index_name(table: str) -> str:
    return f"{table}_lexical"


def prepare_table(connection: Connection, table: str) -> None:
    """Make a new vector table searchable and protected: the GIN index of its lexical column,
    the vector kept in the row, row-level security with the workspace policy, and SELECT for
    every search role (the roles that may read the table registry). Safe to run again."""
    qualified = f"{SCHEMA}.{quote_identifier(table)}"
    connection.execute(
        text(
            f"""
            CREATE INDEX IF NOT EXISTS {quote_identifier(lexical_index_name(table))}
                ON {qualified} USING gin ({LEXICAL_COLUMN});
            -- The lexical column makes a row of a 384-dimension vector larger than the 2 kB
            -- at which PostgreSQL moves values out of line, and pgvector's default (EXTERNAL)
            -- would move the vector: every exact scan would then fetch it from the TOAST
            -- table. MAIN keeps it in the row and moves the texts out first.
            ALTER TABLE {qualified} ALTER COLUMN embedding SET STORAGE MAIN;
            ALTER TABLE {qualified} ENABLE ROW LEVEL SECURITY;
            -- Only reading is granted to anyone but the owner, and only the rows of the
            -- workspace this transaction declared. No setting: no rows.
            DROP POLICY IF EXISTS {POLICY} ON {qualified};
            CREATE POLICY {POLICY} ON {qualified} FOR SELECT
                USING (workspace_id = current_setting('{WORKSPACE_SETTING}', true));
            """
        )
    )
    for role in search_roles(connection):
        connection.execute(text(f"GRANT SELECT ON {qualified} TO {quote_identifier(role)}"))


def search_roles(connection: Connection) -> list[str]:
    """Roles other than the owner that may read the table registry: they are the ones that
    search, so every vector table, including the next model's, is readable by them."""
    rows = connection.execute(
        text(
            """
            SELECT DISTINCT r.rolname
            FROM pg_class AS c
            CROSS JOIN LATERAL aclexplode(c.relacl) AS a
            JOIN pg_roles AS r ON r.oid = a.grantee
            WHERE c.oid = 'enrichment.embedding_tables'::regclass
              AND a.privilege_type = 'SELECT' AND a.grantee <> c.relowner
            ORDER BY r.rolname
            """
        )
    )
    return [row.rolname for row in rows]


def grant_search(connection: Connection, role: str) -> None:
    """Let ``role`` search: read the registries and every vector table (through the workspace
    policy) and call the lexical function. The role itself must exist and must not own the
    tables, be a superuser or have BYPASSRLS, or the policy would not apply to it."""
    quoted = quote_identifier(role)
    connection.execute(
        text(
            f"""
            GRANT USAGE ON SCHEMA {SCHEMA} TO {quoted};
            GRANT SELECT ON {SCHEMA}.embedding_tables, {SCHEMA}.sources TO {quoted};
            GRANT EXECUTE ON FUNCTION {LEXICAL_FUNCTION} TO {quoted};
            """
        )
    )
    for table in _vector_tables(connection):
        connection.execute(text(f"GRANT SELECT ON {SCHEMA}.{quote_identifier(table)} TO {quoted}"))


def revoke_search(connection: Connection, role: str) -> None:
    quoted = quote_identifier(role)
    for table in _vector_tables(connection):
        connection.execute(text(f"REVOKE ALL ON {SCHEMA}.{quote_identifier(table)} FROM {quoted}"))
    connection.execute(
        text(
            f"""
            REVOKE ALL ON FUNCTION {LEXICAL_FUNCTION} FROM {quoted};
            REVOKE ALL ON {SCHEMA}.embedding_tables, {SCHEMA}.sources FROM {quoted};
            REVOKE USAGE ON SCHEMA {SCHEMA} FROM {quoted};
            """
        )
    )


def _vector_tables(connection: Connection) -> list[str]:
    # Tables that are registered and exist (a registry row may outlive a dropped table).
    rows = connection.execute(
        text(
            "SELECT name FROM enrichment.embedding_tables "
            "WHERE to_regclass('enrichment.' || quote_ident(name)) IS NOT NULL ORDER BY name"
        )
    )
    return [row.name for row in rows]
