"""Work queue: sources, events, record_state, attempts.

Revision ID: 0001_queue
Revises:
Create Date: 2026-11-21
"""

from alembic import op

revision = "0001_queue"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- A source and its stages in run order; events for a source not declared here are
        -- rejected at fold time with a visible fold_error.
        CREATE TABLE enrichment.sources (
            name        text PRIMARY KEY CHECK (name <> ''),
            stages      text[] NOT NULL CHECK (cardinality(stages) > 0),
            updated_at  timestamptz NOT NULL DEFAULT now()
        );

        -- The job queue of mutation events, append-only; fold_events turns them into work.
        CREATE TABLE enrichment.events (
            id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            workspace_id     text NOT NULL CHECK (workspace_id <> ''),
            source           text NOT NULL CHECK (source <> ''),
            record_ids       text[] NOT NULL CHECK (cardinality(record_ids) > 0),
            action           text NOT NULL CHECK (action IN ('CREATE', 'UPDATE', 'DELETE')),
            reason           text NOT NULL DEFAULT 'entity_changed',
            idempotency_key  text,
            payload          jsonb NOT NULL DEFAULT '{}'::jsonb,
            created_at       timestamptz NOT NULL DEFAULT now(),
            folded_at        timestamptz,
            fold_error       text
        );
        -- Re-sending an event with a key already seen is a no-op.
        CREATE UNIQUE INDEX events_idempotency_key_key
            ON enrichment.events (idempotency_key) WHERE idempotency_key IS NOT NULL;
        -- fold_events scans unfolded events in id order.
        CREATE INDEX events_unfolded_idx ON enrichment.events (id) WHERE folded_at IS NULL;

        -- One row per record per stage: the work queue itself.
        CREATE TABLE enrichment.record_state (
            source              text NOT NULL,
            record_key          text NOT NULL,
            stage               text NOT NULL,
            stage_index         smallint NOT NULL CHECK (stage_index >= 0),
            workspace_id        text NOT NULL,
            status              text NOT NULL DEFAULT 'PENDING' CHECK (
                status IN ('PENDING', 'IN_PROGRESS', 'COMPLETED', 'FAILED', 'SKIPPED')),
            attempts            integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            next_attempt_at     timestamptz,
            lease_owner         text,
            lease_expires_at    timestamptz,
            input_hash          text,
            output              jsonb,
            skip_reason         text,
            last_error_type     text,
            last_error_message  text,
            requested_at        timestamptz NOT NULL,
            started_at          timestamptz,
            finished_at         timestamptz,
            deleted_at          timestamptz,
            created_at          timestamptz NOT NULL DEFAULT now(),
            updated_at          timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (source, record_key, stage),
            CONSTRAINT record_state_lease_iff_in_progress
                CHECK ((status = 'IN_PROGRESS') = (lease_owner IS NOT NULL)),
            CONSTRAINT record_state_due_only_when_waiting
                CHECK (next_attempt_at IS NULL OR status IN ('PENDING', 'FAILED')),
            CONSTRAINT record_state_failed_has_no_output
                CHECK (status <> 'FAILED' OR output IS NULL)
        );
        -- claim: due rows of one (source, stage), oldest first. Only waiting rows are indexed.
        CREATE INDEX record_state_due_idx
            ON enrichment.record_state (source, stage, next_attempt_at)
            WHERE next_attempt_at IS NOT NULL;
        -- finish / fail: the rows of one lease (a lease token is one batch). Only leased rows
        -- are indexed, so it stays as small as the work in flight.
        CREATE INDEX record_state_lease_owner_idx
            ON enrichment.record_state (lease_owner) WHERE lease_owner IS NOT NULL;
        -- expired_leases: leased rows by expiry.
        CREATE INDEX record_state_leased_idx
            ON enrichment.record_state (lease_expires_at) WHERE status = 'IN_PROGRESS';
        -- dead_letters / retry_dead_letters.
        CREATE INDEX record_state_dead_idx
            ON enrichment.record_state (source, stage, finished_at)
            WHERE status = 'FAILED' AND next_attempt_at IS NULL;

        -- Every attempt's outcome, for failure analysis and stage latency.
        CREATE TABLE enrichment.attempts (
            id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            source            text NOT NULL,
            stage             text NOT NULL,
            record_key        text NOT NULL,
            workspace_id      text NOT NULL,
            attempt           integer NOT NULL,
            outcome           text NOT NULL CHECK (
                outcome IN ('COMPLETED', 'SKIPPED', 'FAILED')),
            error_type        text,
            error_message     text,
            dead_lettered     boolean NOT NULL DEFAULT false,
            worker            text,
            started_at        timestamptz,
            finished_at       timestamptz NOT NULL,
            duration_seconds  double precision GENERATED ALWAYS AS
                (extract(epoch FROM finished_at - started_at)) STORED
        );
        CREATE INDEX attempts_record_idx ON enrichment.attempts (source, record_key, stage);
        CREATE INDEX attempts_finished_idx ON enrichment.attempts (finished_at);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE enrichment.attempts;
        DROP TABLE enrichment.record_state;
        DROP TABLE enrichment.events;
        DROP TABLE enrichment.sources;
        """
    )
