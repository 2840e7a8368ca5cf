"""Vectors: pgvector, the registry of embedding tables, forced re-embeds, metadata hashes.

Revision ID: 0002_vectors
Revises: 0001_queue
Create Date: 2026-11-21
"""

from alembic import op

revision = "0002_vectors"
down_revision = "0001_queue"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE EXTENSION IF NOT EXISTS vector;

        -- A forced event (manual re-embed) makes every stage redo its work even when its input
        -- hash is unchanged.
        ALTER TABLE enrichment.events ADD COLUMN force boolean NOT NULL DEFAULT false;

        -- Hash of what shapes a source's enriched text (semantic metadata, template, related
        -- fields): when it changes, every record of the source is re-queued.
        ALTER TABLE enrichment.sources ADD COLUMN metadata_hash text;

        -- One vector table per embedding model version (blue-green): 'building' while it is
        -- filled, 'active' when search reads it (at most one), 'retired' after a switch.
        CREATE TABLE enrichment.embedding_tables (
            name           text PRIMARY KEY,
            model_name     text NOT NULL,
            model_version  text NOT NULL UNIQUE,
            dimensions     integer NOT NULL CHECK (dimensions > 0),
            state          text NOT NULL DEFAULT 'building'
                           CHECK (state IN ('building', 'active', 'retired')),
            created_at     timestamptz NOT NULL DEFAULT now(),
            activated_at   timestamptz,
            retired_at     timestamptz
        );
        CREATE UNIQUE INDEX embedding_tables_one_active
            ON enrichment.embedding_tables ((true)) WHERE state = 'active';
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DO $$
        DECLARE t text;
        BEGIN
            FOR t IN SELECT name FROM enrichment.embedding_tables LOOP
                EXECUTE format('DROP TABLE IF EXISTS enrichment.%I', t);
            END LOOP;
        END $$;
        DROP TABLE enrichment.embedding_tables;
        ALTER TABLE enrichment.sources DROP COLUMN metadata_hash;
        ALTER TABLE enrichment.events DROP COLUMN force;
        """
    )
