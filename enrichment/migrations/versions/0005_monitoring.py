"""Monitoring: metric snapshots (trends), alert state, and the indexes the metrics read through.

Revision ID: 0005_monitoring
Revises: 0004_rechecks
Create Date: 2026-11-21
"""

from alembic import op

revision = "0005_monitoring"
down_revision = "0004_rechecks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- Every metric of every monitor run, in long format: one row per (time, scope, metric).
        -- A NULL workspace_id / source / stage means "all of them" (the rolled-up scope), so
        -- the overall completeness is the row with all three NULL. Append-only; old rows are
        -- pruned by the monitor (retention_days).
        CREATE TABLE enrichment.metric_snapshots (
            taken_at      timestamptz NOT NULL,
            workspace_id  text,
            source        text,
            stage         text,
            name          text NOT NULL CHECK (name <> ''),
            value         double precision NOT NULL
        );
        -- Trends: one metric over a time range (reports, the capacity peak).
        CREATE INDEX metric_snapshots_name_taken_idx
            ON enrichment.metric_snapshots (name, taken_at);
        -- Pruning by age: rows arrive in time order, so a BRIN index is a few pages.
        CREATE INDEX metric_snapshots_taken_brin
            ON enrichment.metric_snapshots USING brin (taken_at);

        -- Alert state: one row per episode of a rule breaching its threshold in one scope.
        -- An episode is 'firing' from first_seen until the metric is back within bounds
        -- ('resolved'); notified_status / notified_severity record what the channels were
        -- last told, so a notification goes out on a change only, and a failed delivery is
        -- sent again on the next run.
        CREATE TABLE enrichment.alerts (
            id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            rule               text NOT NULL,
            metric             text NOT NULL,
            scope              text NOT NULL,
            workspace_id       text,
            source             text,
            stage              text,
            severity           text NOT NULL CHECK (severity IN ('warning', 'critical')),
            status             text NOT NULL CHECK (status IN ('firing', 'resolved')),
            comparison         text NOT NULL CHECK (comparison IN ('below', 'above')),
            value              double precision,
            threshold          double precision NOT NULL,
            message            text NOT NULL,
            first_seen         timestamptz NOT NULL,
            last_seen          timestamptz NOT NULL,
            resolved_at        timestamptz,
            notified_at        timestamptz,
            notified_status    text CHECK (notified_status IN ('firing', 'resolved')),
            notified_severity  text CHECK (notified_severity IN ('warning', 'critical')),
            notify_error       text,
            updated_at         timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT alerts_resolved_has_time
                CHECK ((status = 'resolved') = (resolved_at IS NOT NULL))
        );
        -- At most one firing episode per rule and scope; evaluation finds it here.
        CREATE UNIQUE INDEX alerts_firing_key
            ON enrichment.alerts (rule, scope) WHERE status = 'firing';
        -- Episodes whose channels may still need telling: firing, or resolved after a
        -- notification that said firing.
        CREATE INDEX alerts_unsettled_idx
            ON enrichment.alerts (id) WHERE status = 'firing' OR notified_status = 'firing';
        -- History, newest first (`enrich alerts list`, the report).
        CREATE INDEX alerts_last_seen_idx ON enrichment.alerts (last_seen DESC);

        -- Failed attempts by error type (Prometheus errors_total): an index-only count.
        CREATE INDEX attempts_failed_type_idx
            ON enrichment.attempts (error_type) WHERE outcome = 'FAILED';

        -- Retries (attempts after the first) and re-processing events, for the Prometheus
        -- reprocessing counter; both hold only those rows.
        CREATE INDEX attempts_retry_idx ON enrichment.attempts (attempt) WHERE attempt > 1;
        CREATE INDEX events_reprocess_idx
            ON enrichment.events (reason) WHERE reason <> 'entity_changed';

        -- Records with a stage not finished: completeness is "no row here". Only unfinished
        -- rows are indexed, so it is as small as the work outstanding.
        CREATE INDEX record_state_unfinished_idx
            ON enrichment.record_state (source, record_key)
            WHERE status NOT IN ('COMPLETED', 'SKIPPED') AND deleted_at IS NULL;

        -- The confidence an AI stage reported (output->'confidence', a JSON number in 0..1;
        -- NULL otherwise), kept beside the output so the metrics read a float instead of
        -- de-TOASTing every stage's output (context and chunk outputs hold whole texts).
        -- Computed when output is written; claims and leases do not touch it.
        ALTER TABLE enrichment.record_state ADD COLUMN confidence double precision
            GENERATED ALWAYS AS (
                -- Nested CASE: the cast runs only on a number (CASE keeps this order), so no
                -- output can make the queue's write fail.
                CASE WHEN jsonb_typeof(output -> 'confidence') = 'number' THEN
                    CASE WHEN CAST(output -> 'confidence' AS numeric) BETWEEN 0 AND 1
                         THEN CAST(CAST(output -> 'confidence' AS numeric) AS double precision)
                    END
                END
            ) STORED;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        ALTER TABLE enrichment.record_state DROP COLUMN confidence;
        DROP INDEX enrichment.record_state_unfinished_idx;
        DROP INDEX enrichment.events_reprocess_idx;
        DROP INDEX enrichment.attempts_retry_idx;
        DROP INDEX enrichment.attempts_failed_type_idx;
        DROP TABLE enrichment.alerts;
        DROP TABLE enrichment.metric_snapshots;
        """
    )
