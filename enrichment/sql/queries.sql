-- The work queue, as SQL. Every query is named (`-- name: x`) and loaded by enrichment.sql.
--
-- Invariants the queries keep (and the table's CHECK constraints enforce):
--   * next_attempt_at IS NOT NULL  <=>  the row waits to be claimed (PENDING and ready, or FAILED
--     with a retry scheduled). IN_PROGRESS, COMPLETED, SKIPPED, dead letters and PENDING rows
--     whose previous stage has not finished all have next_attempt_at NULL.
--   * status = 'IN_PROGRESS'  <=>  lease_owner IS NOT NULL.
--   * A stage's row becomes due only in the transaction that finishes the stage before it
--     (query `advance`), so stages run in their declared order.
--
-- Time: `clock.now` is the caller's time when one is passed (tests, replays) and the database's
-- statement_timestamp() otherwise, so that workers on many machines share one clock.


-- name: claim
-- Lease up to :limit due rows of one (source, stage) to :owner.
-- Index: record_state_due_idx (source, stage, next_attempt_at) WHERE next_attempt_at IS NOT NULL.
-- Lock: FOR UPDATE SKIP LOCKED, so concurrent workers take disjoint rows and never wait on
-- each other; a row locked by another claimer is simply left for the next batch.
WITH clock AS (
    SELECT coalesce(CAST(:now AS timestamptz), statement_timestamp()) AS now
),
due AS (
    SELECT r.ctid AS row_id
    FROM enrichment.record_state AS r, clock
    WHERE r.source = :source
      AND r.stage = :stage
      AND r.next_attempt_at <= clock.now
      AND (CAST(:workspace AS text) IS NULL OR r.workspace_id = CAST(:workspace AS text))
    ORDER BY r.next_attempt_at
    LIMIT :limit
    FOR UPDATE OF r SKIP LOCKED
)
UPDATE enrichment.record_state AS r
SET status = 'IN_PROGRESS',
    attempts = r.attempts + 1,
    next_attempt_at = NULL,
    lease_owner = :owner,
    lease_expires_at = clock.now + make_interval(secs => :lease_seconds),
    started_at = clock.now,
    updated_at = clock.now
FROM clock
-- Back to the locked rows by their physical address (a TID scan), whatever the batch size.
WHERE r.ctid = ANY(ARRAY(SELECT row_id FROM due))
RETURNING r.record_key, r.workspace_id, r.attempts, r.input_hash, r.requested_at,
          r.lease_expires_at;


-- name: finish
-- Mark leased rows COMPLETED or SKIPPED with their outputs, and log the attempt.
-- Fencing: only rows still leased to :owner change; a worker whose lease expired and was
-- reclaimed updates nothing and learns it from the returned keys.
-- Index: record_state_lease_owner_idx (lease_owner) finds the batch's rows directly.
WITH clock AS (
    SELECT coalesce(CAST(:now AS timestamptz), statement_timestamp()) AS now
),
outcome AS (
    SELECT *
    FROM unnest(CAST(:keys AS text[]), CAST(:statuses AS text[]), CAST(:outputs AS jsonb[]),
                CAST(:input_hashes AS text[]), CAST(:reasons AS text[]))
         AS o(record_key, status, output, input_hash, reason)
),
finished AS (
    UPDATE enrichment.record_state AS r
    SET status = o.status,
        output = o.output,
        input_hash = o.input_hash,
        skip_reason = o.reason,
        last_error_type = NULL,
        last_error_message = NULL,
        lease_owner = NULL,
        lease_expires_at = NULL,
        finished_at = clock.now,
        updated_at = clock.now
    FROM outcome AS o, clock
    WHERE r.source = :source AND r.stage = :stage AND r.record_key = o.record_key
      AND r.lease_owner = :owner
    RETURNING r.record_key, r.workspace_id, r.attempts, r.status, r.skip_reason, r.started_at,
              r.finished_at
)
INSERT INTO enrichment.attempts
    (source, stage, record_key, workspace_id, attempt, outcome, error_message, worker,
     started_at, finished_at)
SELECT :source, :stage, f.record_key, f.workspace_id, f.attempts, f.status, f.skip_reason,
       :owner, f.started_at, f.finished_at
FROM finished AS f
RETURNING record_key;


-- name: fail
-- Mark leased rows FAILED, clear their output (NULL, never a default) and log the attempt.
-- :delays holds, per row, the seconds until the next attempt, or NULL for a dead letter.
-- Fencing as in `finish`: :owner must still hold the lease.
WITH clock AS (
    SELECT coalesce(CAST(:now AS timestamptz), statement_timestamp()) AS now
),
outcome AS (
    SELECT *
    FROM unnest(CAST(:keys AS text[]), CAST(:error_types AS text[]),
                CAST(:messages AS text[]), CAST(:delays AS float8[]))
         AS o(record_key, error_type, message, delay)
),
failed AS (
    UPDATE enrichment.record_state AS r
    SET status = 'FAILED',
        output = NULL,
        input_hash = NULL,
        last_error_type = o.error_type,
        last_error_message = o.message,
        next_attempt_at = clock.now + make_interval(secs => o.delay),
        lease_owner = NULL,
        lease_expires_at = NULL,
        finished_at = clock.now,
        updated_at = clock.now
    FROM outcome AS o, clock
    WHERE r.source = :source AND r.stage = :stage AND r.record_key = o.record_key
      AND r.lease_owner = :owner
    RETURNING r.record_key, r.workspace_id, r.attempts, r.last_error_type,
              r.last_error_message, r.next_attempt_at, r.started_at, r.finished_at
)
INSERT INTO enrichment.attempts
    (source, stage, record_key, workspace_id, attempt, outcome, error_type, error_message,
     worker, started_at, finished_at, dead_lettered)
SELECT :source, :stage, f.record_key, f.workspace_id, f.attempts, 'FAILED', f.last_error_type,
       f.last_error_message, :owner, f.started_at, f.finished_at, f.next_attempt_at IS NULL
FROM failed AS f
RETURNING record_key, dead_lettered;


-- name: advance
-- Make the next stage due for records that just finished the stage before it. Runs in the
-- same transaction as `finish`, which is what makes stage order hold.
WITH clock AS (
    SELECT coalesce(CAST(:now AS timestamptz), statement_timestamp()) AS now
)
UPDATE enrichment.record_state AS r
SET next_attempt_at = clock.now,
    updated_at = clock.now
FROM clock
WHERE r.source = :source
  AND r.stage = :next_stage
  AND r.record_key = ANY(CAST(:keys AS text[]))
  AND r.status = 'PENDING'
  AND r.next_attempt_at IS NULL;

-- name: lease_next
-- `advance` and `claim` in one statement, for a worker that runs the next stage of the
-- records it just finished straight away: their next stage is leased to :owner instead of
-- made due. Runs in the transaction of `finish`. Counts as an attempt, and an expired lease
-- is reclaimed, exactly like a claim's.
WITH clock AS (
    SELECT coalesce(CAST(:now AS timestamptz), statement_timestamp()) AS now
)
UPDATE enrichment.record_state AS r
SET status = 'IN_PROGRESS',
    attempts = r.attempts + 1,
    next_attempt_at = NULL,
    lease_owner = :owner,
    lease_expires_at = clock.now + make_interval(secs => :lease_seconds),
    started_at = clock.now,
    updated_at = clock.now
FROM clock
WHERE r.source = :source
  AND r.stage = :next_stage
  AND r.record_key = ANY(CAST(:keys AS text[]))
  AND r.status = 'PENDING'
  AND r.next_attempt_at IS NULL
RETURNING r.record_key, r.workspace_id, r.attempts, r.input_hash, r.requested_at;


-- name: restore_later_stages
-- The stage's input hash equals the one of its last completion, so what the later stages did
-- then still holds: each later stage that completed before (it has an input hash) and is not
-- behind one that did not is COMPLETED again with its kept output. `unblock` then makes the
-- first remaining stage due. This is what keeps an insignificant change from re-embedding.
WITH clock AS (
    SELECT coalesce(CAST(:now AS timestamptz), statement_timestamp()) AS now
)
UPDATE enrichment.record_state AS r
SET status = 'COMPLETED', finished_at = clock.now, updated_at = clock.now
FROM clock
WHERE r.source = :source
  AND r.record_key = ANY(CAST(:keys AS text[]))
  AND r.stage_index > :stage_index
  AND r.status = 'PENDING'
  AND r.input_hash IS NOT NULL
  AND NOT EXISTS (
        SELECT 1 FROM enrichment.record_state AS gap
        WHERE gap.source = r.source AND gap.record_key = r.record_key
          AND gap.stage_index > :stage_index AND gap.stage_index < r.stage_index
          AND (gap.status <> 'PENDING' OR gap.input_hash IS NULL));


-- name: skip_later_stages
-- Gate: a stage asked that the record's remaining stages not run this time (low confidence).
WITH clock AS (
    SELECT coalesce(CAST(:now AS timestamptz), statement_timestamp()) AS now
),
gated AS (
    SELECT * FROM unnest(CAST(:keys AS text[]), CAST(:reasons AS text[])) AS g(record_key, reason)
)
UPDATE enrichment.record_state AS r
SET status = 'SKIPPED',
    skip_reason = g.reason,
    output = NULL,
    next_attempt_at = NULL,
    finished_at = clock.now,
    updated_at = clock.now
FROM gated AS g, clock
WHERE r.source = :source
  AND r.record_key = g.record_key
  AND r.stage_index > :stage_index
  AND r.status = 'PENDING';


-- name: expired_leases
-- Leases whose holder did not finish in time (crashed, stalled, partitioned).
-- Index: record_state_leased_idx (lease_expires_at) WHERE status = 'IN_PROGRESS'.
-- Lock: SKIP LOCKED so two reclaimers never take the same row; the caller fails these rows
-- with `fail` (fenced by the expired owner) in the same transaction.
SELECT r.source, r.stage, r.record_key, r.attempts, r.lease_owner
FROM enrichment.record_state AS r
WHERE r.status = 'IN_PROGRESS'
  AND r.lease_expires_at <= coalesce(CAST(:now AS timestamptz), statement_timestamp())
  AND r.source = ANY(CAST(:sources AS text[]))
ORDER BY r.lease_expires_at
LIMIT :limit
FOR UPDATE SKIP LOCKED;


-- name: fold_events
-- Fold the oldest unfolded events into record_state, one pending unit of work per record.
-- Per record, the newest event in the batch decides: CREATE/UPDATE (re)queue every stage from
-- the first, DELETE removes pending work and leaves a tombstone. Outputs and input hashes are
-- kept on requeue so a stage can recognise unchanged input. requested_at keeps the oldest
-- unserved mutation, so coalesced updates do not hide how long a record has waited.
-- Lock: the caller holds the fold advisory lock, so events apply strictly in id order.
-- Index: events_unfolded_idx (id) WHERE folded_at IS NULL.
WITH clock AS (
    SELECT coalesce(CAST(:now AS timestamptz), statement_timestamp()) AS now
),
batch AS (
    SELECT e.id, e.workspace_id, e.source, e.record_ids, e.action, e.force, e.created_at
    FROM enrichment.events AS e
    WHERE e.folded_at IS NULL
    ORDER BY e.id
    LIMIT :limit
    FOR UPDATE
),
latest AS (
    SELECT DISTINCT ON (b.source, k.record_key)
           b.source, k.record_key, b.workspace_id, b.action,
           min(b.created_at) OVER (PARTITION BY b.source, k.record_key) AS requested_at,
           bool_or(b.force) OVER (PARTITION BY b.source, k.record_key) AS force
    FROM batch AS b
    CROSS JOIN LATERAL unnest(b.record_ids) AS k(record_key)
    JOIN enrichment.sources AS s ON s.name = b.source
    ORDER BY b.source, k.record_key, b.id DESC
),
requeued AS (
    INSERT INTO enrichment.record_state AS r
        (source, record_key, stage, stage_index, workspace_id, status, attempts,
         next_attempt_at, input_hash, requested_at, created_at, updated_at)
    SELECT l.source, l.record_key, st.stage, st.ord - 1, l.workspace_id, 'PENDING', 0,
           CASE WHEN st.ord = 1 THEN clock.now END,
           -- A forced event (manual re-embed) forgets the input hash, so no stage takes its
           -- input for unchanged; otherwise the hash is kept for that comparison.
           CASE WHEN NOT l.force THEN cur.input_hash END,
           l.requested_at, clock.now, clock.now
    FROM latest AS l
    JOIN enrichment.sources AS s ON s.name = l.source
    CROSS JOIN LATERAL unnest(s.stages) WITH ORDINALITY AS st(stage, ord)
    LEFT JOIN enrichment.record_state AS cur
           ON cur.source = l.source AND cur.record_key = l.record_key AND cur.stage = st.stage
    CROSS JOIN clock
    WHERE l.action <> 'DELETE'
    ON CONFLICT (source, record_key, stage) DO UPDATE
    SET status = 'PENDING',
        attempts = 0,
        next_attempt_at = EXCLUDED.next_attempt_at,
        stage_index = EXCLUDED.stage_index,
        workspace_id = EXCLUDED.workspace_id,
        lease_owner = NULL,
        lease_expires_at = NULL,
        skip_reason = NULL,
        last_error_type = NULL,
        last_error_message = NULL,
        deleted_at = NULL,
        input_hash = EXCLUDED.input_hash,
        -- Kept while unserved: pending, leased, or failed with a retry scheduled.
        requested_at = CASE
            WHEN r.deleted_at IS NULL
                 AND (r.status IN ('PENDING', 'IN_PROGRESS')
                      OR (r.status = 'FAILED' AND r.next_attempt_at IS NOT NULL))
                THEN least(r.requested_at, EXCLUDED.requested_at)
            ELSE EXCLUDED.requested_at
        END,
        updated_at = EXCLUDED.updated_at
    RETURNING r.record_key
),
deleted AS (
    UPDATE enrichment.record_state AS r
    SET status = 'SKIPPED',
        skip_reason = 'record deleted',
        output = NULL,
        next_attempt_at = NULL,
        lease_owner = NULL,
        lease_expires_at = NULL,
        deleted_at = clock.now,
        updated_at = clock.now
    FROM latest AS l, clock
    WHERE l.action = 'DELETE' AND r.source = l.source AND r.record_key = l.record_key
    RETURNING r.source, r.record_key
),
marked AS (
    UPDATE enrichment.events AS e
    SET folded_at = clock.now,
        fold_error = CASE WHEN s.name IS NULL
                          THEN 'unknown source ' || quote_literal(b.source) END
    FROM batch AS b
    LEFT JOIN enrichment.sources AS s ON s.name = b.source
    CROSS JOIN clock
    WHERE e.id = b.id
    RETURNING e.id, e.fold_error
)
SELECT (SELECT count(*) FROM marked) AS events,
       (SELECT count(*) FROM marked WHERE fold_error IS NOT NULL) AS rejected,
       (SELECT count(*) FROM latest WHERE action <> 'DELETE') AS requeued_records,
       (SELECT count(DISTINCT (source, record_key)) FROM deleted) AS deleted_records,
       (SELECT coalesce(jsonb_agg(DISTINCT jsonb_build_array(source, record_key)), '[]')
        FROM deleted) AS deleted_keys;


-- name: enqueue_events
-- Append a batch of events in one statement, in the order given. An event whose idempotency
-- key was seen before (or earlier in the same batch) is dropped; the ids of the events
-- written come back.
-- Index: events_idempotency_key_key (idempotency_key) WHERE idempotency_key IS NOT NULL.
INSERT INTO enrichment.events
    (workspace_id, source, record_ids, action, reason, idempotency_key, payload, force)
SELECT e.workspace_id, e.source,
       ARRAY(SELECT jsonb_array_elements_text(e.record_ids)),
       e.action, e.reason, e.idempotency_key, e.payload, e.force
FROM jsonb_array_elements(CAST(:events AS jsonb)) WITH ORDINALITY AS item(value, position)
CROSS JOIN LATERAL jsonb_to_record(item.value) AS e(
    workspace_id text, source text, record_ids jsonb, action text, reason text,
    idempotency_key text, payload jsonb, force boolean)
ORDER BY item.position
ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id;


-- name: register_source
-- Declare (or re-declare) a source and its ordered stages.
INSERT INTO enrichment.sources (name, stages, updated_at)
VALUES (:name, CAST(:stages AS text[]), statement_timestamp())
ON CONFLICT (name) DO UPDATE
SET stages = EXCLUDED.stages, updated_at = EXCLUDED.updated_at
WHERE enrichment.sources.stages IS DISTINCT FROM EXCLUDED.stages
RETURNING name;


-- name: source_stages
SELECT name, stages FROM enrichment.sources ORDER BY name;


-- name: status_counts
-- Per source and stage: counts by status, backlog and the oldest unserved request.
-- pending = due now or later; waiting = PENDING behind an unfinished earlier stage.
-- Deleted records (tombstones) are not work and are left out.
SELECT r.source,
       r.stage,
       min(r.stage_index) AS stage_index,
       count(*) FILTER (WHERE r.status = 'PENDING' AND r.next_attempt_at IS NOT NULL) AS pending,
       count(*) FILTER (WHERE r.status = 'PENDING' AND r.next_attempt_at IS NULL) AS waiting,
       count(*) FILTER (WHERE r.status = 'IN_PROGRESS') AS in_progress,
       count(*) FILTER (WHERE r.status = 'COMPLETED') AS completed,
       count(*) FILTER (WHERE r.status = 'SKIPPED') AS skipped,
       count(*) FILTER (WHERE r.status = 'FAILED' AND r.next_attempt_at IS NOT NULL)
           AS retrying,
       count(*) FILTER (WHERE r.status = 'FAILED' AND r.next_attempt_at IS NULL)
           AS dead_letters,
       min(r.requested_at) FILTER (WHERE r.next_attempt_at IS NOT NULL
                                      OR r.status = 'IN_PROGRESS') AS oldest_pending_since
FROM enrichment.record_state AS r
WHERE r.deleted_at IS NULL
  AND (CAST(:source AS text) IS NULL OR r.source = CAST(:source AS text))
GROUP BY r.source, r.stage
ORDER BY r.source, min(r.stage_index);


-- name: unfolded_events
SELECT count(*) FILTER (WHERE folded_at IS NULL) AS unfolded,
       min(created_at) FILTER (WHERE folded_at IS NULL) AS oldest_unfolded,
       count(*) FILTER (WHERE fold_error IS NOT NULL) AS rejected
FROM enrichment.events
WHERE folded_at IS NULL OR fold_error IS NOT NULL;


-- name: dead_letters
-- FAILED with no attempt scheduled. Index: record_state_dead_idx.
SELECT r.source, r.stage, r.record_key, r.workspace_id, r.attempts, r.last_error_type,
       r.last_error_message, r.finished_at
FROM enrichment.record_state AS r
WHERE r.status = 'FAILED' AND r.next_attempt_at IS NULL
  AND (CAST(:source AS text) IS NULL OR r.source = CAST(:source AS text))
  AND (CAST(:stage AS text) IS NULL OR r.stage = CAST(:stage AS text))
  AND (CAST(:error_type AS text) IS NULL OR r.last_error_type = CAST(:error_type AS text))
ORDER BY r.finished_at DESC, r.source, r.record_key
LIMIT :limit;


-- name: retry_dead_letters
-- Requeue dead letters for a fresh set of attempts; the last error stays visible until the
-- next attempt replaces it.
WITH clock AS (
    SELECT coalesce(CAST(:now AS timestamptz), statement_timestamp()) AS now
)
UPDATE enrichment.record_state AS r
SET status = 'PENDING',
    attempts = 0,
    next_attempt_at = clock.now,
    updated_at = clock.now
FROM clock
WHERE r.status = 'FAILED' AND r.next_attempt_at IS NULL
  AND (CAST(:source AS text) IS NULL OR r.source = CAST(:source AS text))
  AND (CAST(:stage AS text) IS NULL OR r.stage = CAST(:stage AS text))
  AND (CAST(:error_type AS text) IS NULL OR r.last_error_type = CAST(:error_type AS text))
RETURNING r.source, r.stage, r.record_key;


-- name: stage_outputs
-- Outputs of an earlier stage for a batch of records, for stages that build on them.
-- Index: the primary key (source, record_key, stage).
SELECT r.record_key, r.output
FROM enrichment.record_state AS r
WHERE r.source = :source
  AND r.stage = :stage
  AND r.record_key = ANY(CAST(:keys AS text[]))
  AND r.status = 'COMPLETED';


-- name: drop_undeclared_stages
-- After a source's stage list changed: rows of stages it no longer declares go.
DELETE FROM enrichment.record_state AS r
USING enrichment.sources AS s
WHERE s.name = :source AND r.source = s.name AND NOT r.stage = ANY(s.stages);


-- name: reindex_stages
UPDATE enrichment.record_state AS r
SET stage_index = st.ord - 1
FROM enrichment.sources AS s
CROSS JOIN LATERAL unnest(s.stages) WITH ORDINALITY AS st(stage, ord)
WHERE s.name = :source AND r.source = s.name AND r.stage = st.stage
  AND r.stage_index <> st.ord - 1;


-- name: add_declared_stages
-- Rows for newly declared stages of every live record, PENDING and not yet due; `unblock`
-- makes them due where the stage before is finished.
WITH clock AS (
    SELECT coalesce(CAST(:now AS timestamptz), statement_timestamp()) AS now
),
live AS (
    SELECT r.record_key, min(r.workspace_id) AS workspace_id, min(r.requested_at) AS requested_at
    FROM enrichment.record_state AS r
    WHERE r.source = :source AND r.deleted_at IS NULL
    GROUP BY r.record_key
)
INSERT INTO enrichment.record_state
    (source, record_key, stage, stage_index, workspace_id, status, requested_at, created_at,
     updated_at)
SELECT :source, live.record_key, st.stage, st.ord - 1, live.workspace_id, 'PENDING',
       live.requested_at, clock.now, clock.now
FROM live
CROSS JOIN enrichment.sources AS s
CROSS JOIN LATERAL unnest(s.stages) WITH ORDINALITY AS st(stage, ord)
CROSS JOIN clock
WHERE s.name = :source
ON CONFLICT (source, record_key, stage) DO NOTHING;


-- name: unblock
-- PENDING rows (of :keys, or all) that are not due although the stage before them is
-- finished (or they are first) become due: after a stage list change, after a restore.
WITH clock AS (
    SELECT coalesce(CAST(:now AS timestamptz), statement_timestamp()) AS now
)
UPDATE enrichment.record_state AS r
SET next_attempt_at = clock.now, updated_at = clock.now
FROM clock
WHERE r.source = :source
  AND (CAST(:keys AS text[]) IS NULL OR r.record_key = ANY(CAST(:keys AS text[])))
  AND r.status = 'PENDING'
  AND r.next_attempt_at IS NULL
  AND r.deleted_at IS NULL
  AND (r.stage_index = 0 OR EXISTS (
        SELECT 1 FROM enrichment.record_state AS p
        WHERE p.source = r.source AND p.record_key = r.record_key
          AND p.stage_index = r.stage_index - 1
          AND p.status IN ('COMPLETED', 'SKIPPED')));


-- name: schedule_rechecks
-- A confidence gate skipped these records (their later stages too): record why, and when
-- they come back for another attempt. The same input gated again counts towards
-- max_rechecks; once the count reaches it no re-check is scheduled (due_at NULL: the gate is
-- final for that input, and visible here). A different input starts the count afresh.
-- Runs in the transaction that finishes the gated records.
WITH clock AS (
    SELECT coalesce(CAST(:now AS timestamptz), statement_timestamp()) AS now
),
gated AS (
    SELECT *
    FROM unnest(CAST(:keys AS text[]), CAST(:workspaces AS text[]), CAST(:reasons AS text[]),
                CAST(:input_hashes AS text[]), CAST(:after_seconds AS float8[]),
                CAST(:max_rechecks AS integer[]))
         AS g(record_key, workspace_id, reason, input_hash, after_seconds, max_rechecks)
)
INSERT INTO enrichment.rechecks AS r
    (source, record_key, stage, workspace_id, reason, input_hash, rechecks, max_rechecks,
     due_at, gated_at)
SELECT :source, g.record_key, :stage, g.workspace_id, g.reason, g.input_hash, 0,
       g.max_rechecks,
       CASE WHEN g.max_rechecks > 0 THEN clock.now + make_interval(secs => g.after_seconds) END,
       clock.now
FROM gated AS g, clock
ON CONFLICT (source, record_key, stage) DO UPDATE
SET workspace_id = EXCLUDED.workspace_id,
    reason = EXCLUDED.reason,
    input_hash = EXCLUDED.input_hash,
    rechecks = CASE WHEN r.input_hash IS NOT DISTINCT FROM EXCLUDED.input_hash
                    THEN r.rechecks ELSE 0 END,
    max_rechecks = EXCLUDED.max_rechecks,
    due_at = CASE WHEN r.input_hash IS NOT DISTINCT FROM EXCLUDED.input_hash
                       AND r.rechecks >= EXCLUDED.max_rechecks THEN NULL
                  ELSE EXCLUDED.due_at END,
    gated_at = EXCLUDED.gated_at;


-- name: take_due_rechecks
-- Re-checks that are due, taken for re-queueing in one statement: a record its gate still
-- holds (the gating stage SKIPPED with the gate's reason) counts one more re-check and comes
-- back (the caller enqueues its event in the same transaction); a record that failed or was
-- re-queued since has nothing to re-check now and keeps its count; rows of records that
-- completed or were deleted are dropped.
-- Index: rechecks_due_idx (due_at) WHERE due_at IS NOT NULL.
-- Lock: FOR UPDATE SKIP LOCKED, so two callers never re-queue the same record twice.
WITH clock AS (
    SELECT coalesce(CAST(:now AS timestamptz), statement_timestamp()) AS now
),
due AS (
    SELECT c.source, c.record_key, c.stage,
           coalesce(s.status = 'COMPLETED' OR s.deleted_at IS NOT NULL, true) AS obsolete,
           coalesce(s.status = 'SKIPPED' AND s.skip_reason = c.reason
                    AND s.deleted_at IS NULL, false) AS gated
    FROM enrichment.rechecks AS c
    CROSS JOIN clock
    LEFT JOIN enrichment.record_state AS s
           ON s.source = c.source AND s.record_key = c.record_key AND s.stage = c.stage
    WHERE c.due_at <= clock.now
      AND (CAST(:source AS text) IS NULL OR c.source = CAST(:source AS text))
      AND (CAST(:workspace AS text) IS NULL OR c.workspace_id = CAST(:workspace AS text))
    ORDER BY c.due_at
    LIMIT :limit
    FOR UPDATE OF c SKIP LOCKED
),
dropped AS (
    DELETE FROM enrichment.rechecks AS c
    USING due AS d
    WHERE c.source = d.source AND c.record_key = d.record_key AND c.stage = d.stage
      AND d.obsolete
),
taken AS (
    UPDATE enrichment.rechecks AS c
    SET rechecks = c.rechecks + CASE WHEN d.gated THEN 1 ELSE 0 END,
        requeued_at = CASE WHEN d.gated THEN clock.now ELSE c.requeued_at END,
        due_at = NULL
    FROM due AS d, clock
    WHERE c.source = d.source AND c.record_key = d.record_key AND c.stage = d.stage
      AND NOT d.obsolete
    RETURNING c.source, c.record_key, c.workspace_id, c.stage, d.gated
)
SELECT source, record_key, workspace_id, stage
FROM taken
WHERE gated
ORDER BY source, workspace_id, record_key;


-- name: gated_records
-- Records a gate holds back right now (their gating stage is SKIPPED), with their re-check:
-- when it is due, or NULL once no re-check is left for that input.
SELECT c.source, c.stage, c.record_key, c.workspace_id, c.reason, c.rechecks,
       c.max_rechecks, c.due_at, c.gated_at, c.requeued_at
FROM enrichment.rechecks AS c
JOIN enrichment.record_state AS s
  ON s.source = c.source AND s.record_key = c.record_key AND s.stage = c.stage
WHERE s.status = 'SKIPPED' AND s.skip_reason = c.reason AND s.deleted_at IS NULL
  AND (CAST(:source AS text) IS NULL OR c.source = CAST(:source AS text))
  AND (CAST(:workspace AS text) IS NULL OR c.workspace_id = CAST(:workspace AS text))
ORDER BY c.due_at NULLS LAST, c.source, c.record_key
LIMIT :limit;
