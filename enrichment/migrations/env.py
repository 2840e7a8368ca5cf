"""Alembic environment: migrations run on the connection handed in by enrichment.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

SCHEMA = "enrichment"
# One upgrade at a time, whichever process starts it; the others wait, then find nothing to do.
MIGRATION_LOCK_KEY = 0x656E7269636801  # "enrich" + 1


def run_migrations_online() -> None:
    connection = context.config.attributes["connection"]
    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    try:
        connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        connection.commit()
        context.configure(
            connection=connection,
            version_table_schema=SCHEMA,
            transactional_ddl=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
        connection.commit()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run `enrich db upgrade`")
run_migrations_online()
