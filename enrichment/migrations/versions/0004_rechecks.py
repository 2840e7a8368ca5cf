"""Re-checks: records a confidence gate skipped come back for another attempt after an age.

Revision ID: 0004_rechecks
Revises: 0003_search
Create Date: 2026-11-21
"""

from alembic import op

revision = "0004_rechecks"
down_revision = "0003_search"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- One row per record and gating stage: the gate's reason, when the record comes back,
        -- and how many times it already came back for the same input. due_at NULL with
        -- rechecks = max_rechecks means the gate is final for this input (visible, not silent).
        CREATE TABLE enrichment.rechecks (
            source          text NOT NULL,
            record_key      text NOT NULL,
            stage           text NOT NULL,
            workspace_id    text NOT NULL,
            reason          text NOT NULL,
            input_hash      text,
            rechecks        integer NOT NULL DEFAULT 0 CHECK (rechecks >= 0),
            max_rechecks    integer NOT NULL CHECK (max_rechecks >= 0),
            due_at          timestamptz,
            gated_at        timestamptz NOT NULL,
            requeued_at     timestamptz,
            PRIMARY KEY (source, record_key, stage)
        );
        -- requeue_due_rechecks: rows whose re-check is due, oldest first. Only scheduled rows
        -- are indexed, so the index is as small as the re-checks waiting.
        CREATE INDEX rechecks_due_idx ON enrichment.rechecks (due_at) WHERE due_at IS NOT NULL;
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE enrichment.rechecks")
