-- Monitoring metrics, as SQL. Every query is named (`-- name: x`) and loaded by quality.sql.
--
-- Every query takes :now, the time the metrics are taken at (the caller's clock, or the
-- database's statement_timestamp() read once by quality.metrics, so that the queries of one
-- snapshot agree), and aggregates in the database: no record is loaded into Python.
--
-- Scopes: GROUPING SETS give one row per (workspace, source, stage) and its roll-ups. A NULL
-- workspace_id / source / stage in a result row means "all of them"; record_state and attempts
-- never hold a NULL in those columns, so a NULL can only come from a roll-up.
--
-- Live rows only: a deleted record (tombstone, deleted_at set) is not work and counts nowhere.


-- name: state_metrics
-- Everything record_state tells, in one sequential scan of the live rows (the aggregates need
-- them all), hash-aggregated per (workspace, source, stage) and rolled up from those few rows.
--
-- Per stage row: progress, backlog and its oldest request, dead letters, retries by age,
-- leases past expiry, rows over their retry limit, and the confidence of AI stage outputs
-- (the `confidence` column: output->'confidence' when a number in 0..1).
-- Retry limits: :limit_sources / :limit_stages / :limit_retries per stage, :max_retries for
-- the others; a row is over its limit when its retries (attempts - 1) exceed it.
--
-- Per record: the row of its last stage stands for it. That row is served last, so its
-- requested_at is the record's oldest change not yet served and, once the record is complete,
-- its finished_at is when the record was enriched. A record is complete when none of its rows
-- is unfinished (anti-join with `unfinished`, read through record_state_unfinished_idx, which
-- holds only unfinished rows). Fresh (within the SLA): complete within :sla_seconds of its
-- change, or not complete yet and its change younger than that. Stale: neither.
-- Mutation-to-enriched latencies of the records completed in the window travel as arrays to
-- the roll-up, where their percentiles are taken per scope.
WITH limits AS (
    SELECT *
    FROM unnest(CAST(:limit_sources AS text[]), CAST(:limit_stages AS text[]),
                CAST(:limit_retries AS int[])) AS l(source, stage, max_retries)
),
unfinished AS (
    SELECT DISTINCT u.source, u.record_key
    FROM enrichment.record_state AS u
    WHERE u.status NOT IN ('COMPLETED', 'SKIPPED') AND u.deleted_at IS NULL
),
live AS (
    SELECT r.workspace_id,
           r.source,
           r.stage,
           r.status IN ('COMPLETED', 'SKIPPED') AS finished,
           -- The backlog as `enrich status` counts it: due, running, or failed with a retry
           -- ahead. PENDING rows behind an unfinished earlier stage are in that stage's backlog.
           r.next_attempt_at IS NOT NULL OR r.status = 'IN_PROGRESS' AS in_backlog,
           r.status = 'FAILED' AND r.next_attempt_at IS NULL AS dead_letter,
           r.status = 'FAILED' AND r.next_attempt_at IS NOT NULL AS retrying,
           r.status = 'IN_PROGRESS' AND r.lease_expires_at < CAST(:now AS timestamptz) AS stuck,
           r.attempts - 1 > coalesce(l.max_retries, :max_retries) AS over_retry_limit,
           CASE WHEN r.status IN ('COMPLETED', 'SKIPPED') THEN r.confidence END AS confidence,
           extract(epoch FROM CAST(:now AS timestamptz) - r.requested_at) AS age,
           r.stage_index = cardinality(s.stages) - 1 AS is_record,
           r.stage_index = cardinality(s.stages) - 1 AND u.record_key IS NULL AS complete,
           extract(epoch FROM r.finished_at - r.requested_at) AS latency,
           r.finished_at > CAST(:now AS timestamptz) - make_interval(secs => :window_seconds)
               AS finished_in_window,
           r.requested_at > CAST(:now AS timestamptz) - make_interval(secs => :window_seconds)
               AS requested_in_window
    FROM enrichment.record_state AS r
    JOIN enrichment.sources AS s ON s.name = r.source
    LEFT JOIN limits AS l ON l.source = r.source AND l.stage = r.stage
    LEFT JOIN unfinished AS u ON u.source = r.source AND u.record_key = r.record_key
    WHERE r.deleted_at IS NULL
),
fine AS (
    SELECT workspace_id,
           source,
           stage,
           count(*) AS rows,
           count(*) FILTER (WHERE finished) AS finished,
           count(*) FILTER (WHERE in_backlog) AS backlog,
           max(age) FILTER (WHERE in_backlog) AS oldest_pending_age,
           count(*) FILTER (WHERE dead_letter) AS dead_letters,
           count(*) FILTER (WHERE stuck) AS stuck,
           count(*) FILTER (WHERE over_retry_limit) AS over_retry_limit,
           -- Failed rows waiting for a retry, by how long their record has waited for its
           -- enrichment (steps of the retry schedule: 5 min, 30 min, 2 h, 24 h).
           count(*) FILTER (WHERE retrying) AS retrying,
           count(*) FILTER (WHERE retrying AND age < 300) AS retry_age_0_5m,
           count(*) FILTER (WHERE retrying AND age >= 300 AND age < 1800) AS retry_age_5m_30m,
           count(*) FILTER (WHERE retrying AND age >= 1800 AND age < 7200) AS retry_age_30m_2h,
           count(*) FILTER (WHERE retrying AND age >= 7200 AND age < 86400) AS retry_age_2h_24h,
           count(*) FILTER (WHERE retrying AND age >= 86400) AS retry_age_24h_plus,
           count(confidence) AS confidence_count,
           sum(confidence) AS confidence_sum,
           count(*) FILTER (WHERE confidence >= :high_confidence) AS high_confidence,
           -- Ten buckets of width 0.1; a confidence of exactly 1 falls in the last one.
           count(*) FILTER (WHERE confidence < 0.1) AS confidence_bucket_0,
           count(*) FILTER (WHERE confidence >= 0.1 AND confidence < 0.2) AS confidence_bucket_1,
           count(*) FILTER (WHERE confidence >= 0.2 AND confidence < 0.3) AS confidence_bucket_2,
           count(*) FILTER (WHERE confidence >= 0.3 AND confidence < 0.4) AS confidence_bucket_3,
           count(*) FILTER (WHERE confidence >= 0.4 AND confidence < 0.5) AS confidence_bucket_4,
           count(*) FILTER (WHERE confidence >= 0.5 AND confidence < 0.6) AS confidence_bucket_5,
           count(*) FILTER (WHERE confidence >= 0.6 AND confidence < 0.7) AS confidence_bucket_6,
           count(*) FILTER (WHERE confidence >= 0.7 AND confidence < 0.8) AS confidence_bucket_7,
           count(*) FILTER (WHERE confidence >= 0.8 AND confidence < 0.9) AS confidence_bucket_8,
           count(*) FILTER (WHERE confidence >= 0.9) AS confidence_bucket_9,
           count(*) FILTER (WHERE is_record) AS records,
           count(*) FILTER (WHERE complete) AS complete,
           count(*) FILTER (WHERE complete AND finished_in_window) AS completed_in_window,
           count(*) FILTER (WHERE is_record AND requested_in_window) AS requested_in_window,
           count(*) FILTER (WHERE (complete AND latency <= :sla_seconds)
                               OR (is_record AND NOT complete AND age <= :sla_seconds)) AS fresh,
           count(*) FILTER (WHERE is_record AND NOT complete AND age > :sla_seconds) AS stale,
           array_agg(latency) FILTER (WHERE complete AND finished_in_window) AS latencies
    FROM live
    GROUP BY workspace_id, source, stage
),
rolled AS (
    -- Counts are sums of the per-scope counts (0 on an empty queue, not NULL); the mean
    -- confidence is the sum over the count, the oldest age the maximum.
    SELECT workspace_id,
           source,
           stage,
           coalesce(sum(rows), 0) AS rows,
           coalesce(sum(finished), 0) AS finished,
           coalesce(sum(backlog), 0) AS backlog,
           max(oldest_pending_age) AS oldest_pending_age,
           coalesce(sum(dead_letters), 0) AS dead_letters,
           coalesce(sum(stuck), 0) AS stuck,
           coalesce(sum(over_retry_limit), 0) AS over_retry_limit,
           coalesce(sum(retrying), 0) AS retrying,
           coalesce(sum(retry_age_0_5m), 0) AS retry_age_0_5m,
           coalesce(sum(retry_age_5m_30m), 0) AS retry_age_5m_30m,
           coalesce(sum(retry_age_30m_2h), 0) AS retry_age_30m_2h,
           coalesce(sum(retry_age_2h_24h), 0) AS retry_age_2h_24h,
           coalesce(sum(retry_age_24h_plus), 0) AS retry_age_24h_plus,
           coalesce(sum(confidence_count), 0) AS confidence_count,
           sum(confidence_sum) / nullif(sum(confidence_count), 0) AS confidence_mean,
           coalesce(sum(high_confidence), 0) AS high_confidence,
           coalesce(sum(confidence_bucket_0), 0) AS confidence_bucket_0,
           coalesce(sum(confidence_bucket_1), 0) AS confidence_bucket_1,
           coalesce(sum(confidence_bucket_2), 0) AS confidence_bucket_2,
           coalesce(sum(confidence_bucket_3), 0) AS confidence_bucket_3,
           coalesce(sum(confidence_bucket_4), 0) AS confidence_bucket_4,
           coalesce(sum(confidence_bucket_5), 0) AS confidence_bucket_5,
           coalesce(sum(confidence_bucket_6), 0) AS confidence_bucket_6,
           coalesce(sum(confidence_bucket_7), 0) AS confidence_bucket_7,
           coalesce(sum(confidence_bucket_8), 0) AS confidence_bucket_8,
           coalesce(sum(confidence_bucket_9), 0) AS confidence_bucket_9,
           coalesce(sum(records), 0) AS records,
           coalesce(sum(complete), 0) AS complete,
           coalesce(sum(completed_in_window), 0) AS completed_in_window,
           coalesce(sum(requested_in_window), 0) AS requested_in_window,
           coalesce(sum(fresh), 0) AS fresh,
           coalesce(sum(stale), 0) AS stale
    FROM fine
    GROUP BY GROUPING SETS ((workspace_id, source, stage), (source, stage), (workspace_id, source),
                            (source), ())
)
SELECT rolled.*, latency.p50 AS mutation_latency_p50, latency.p95 AS mutation_latency_p95
FROM rolled
LEFT JOIN LATERAL (
    -- Percentiles need the values, not partial aggregates: unnest the scope's arrays. Only
    -- records completed in the window are in them, and only record scopes (stage NULL) ask.
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) AS p50,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY x) AS p95
    FROM fine AS f
    CROSS JOIN LATERAL unnest(f.latencies) AS x
    WHERE rolled.stage IS NULL
      AND f.source = coalesce(rolled.source, f.source)
      AND f.workspace_id = coalesce(rolled.workspace_id, f.workspace_id)
) AS latency ON true;


-- name: attempt_metrics
-- Attempts that finished in the window (:window_seconds before :now): how many, how many
-- failed, how many finished their stage, and how long they took (claim to outcome, so a batch's
-- records share their batch's time).
-- Index: attempts_finished_idx (finished_at) reads only the window.
WITH recent AS (
    SELECT a.workspace_id, a.source, a.stage, a.outcome, a.duration_seconds
    FROM enrichment.attempts AS a
    WHERE a.finished_at > CAST(:now AS timestamptz) - make_interval(secs => :window_seconds)
      AND a.finished_at <= CAST(:now AS timestamptz)
)
SELECT workspace_id,
       source,
       stage,
       count(*) AS attempts,
       count(*) FILTER (WHERE outcome = 'FAILED') AS failed,
       count(*) FILTER (WHERE outcome IN ('COMPLETED', 'SKIPPED')) AS succeeded,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_seconds) AS latency_p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_seconds) AS latency_p95
FROM recent
GROUP BY GROUPING SETS ((workspace_id, source, stage), (source, stage), (workspace_id, source),
                        (source), ());


-- name: peak_throughput
-- The highest record throughput each record-level scope reached in the lookback: the
-- observed capacity. Index: metric_snapshots_name_taken_idx (name, taken_at).
SELECT s.workspace_id, s.source, max(s.value) AS peak
FROM enrichment.metric_snapshots AS s
WHERE s.name = 'throughput_per_hour'
  AND s.stage IS NULL
  AND s.taken_at > CAST(:now AS timestamptz) - make_interval(secs => :lookback_seconds)
  AND s.taken_at <= CAST(:now AS timestamptz)
GROUP BY s.workspace_id, s.source;


-- name: now
SELECT coalesce(CAST(:now AS timestamptz), statement_timestamp()) AS now;


-- name: queue_progress
-- Is the queue draining? The backlog now and its oldest change, what finished recently, and
-- the backlog of the last snapshot taken at least :stall_seconds ago (NULL without one).
-- Indexes: record_state_due_idx (next_attempt_at IS NOT NULL) and record_state_leased_idx
-- (IN_PROGRESS) hold exactly the backlog; attempts_finished_idx the recent attempts;
-- metric_snapshots_name_taken_idx the past backlog.
WITH clock AS (
    SELECT coalesce(CAST(:now AS timestamptz), statement_timestamp()) AS now
),
backlog AS (
    SELECT r.requested_at
    FROM enrichment.record_state AS r
    WHERE r.next_attempt_at IS NOT NULL
    UNION ALL
    SELECT r.requested_at
    FROM enrichment.record_state AS r
    WHERE r.status = 'IN_PROGRESS'
)
SELECT clock.now,
       (SELECT count(*) FROM backlog) AS backlog,
       (SELECT min(requested_at) FROM backlog) AS oldest_requested_at,
       (SELECT count(*)
        FROM enrichment.attempts AS a
        WHERE a.finished_at > clock.now - make_interval(secs => :stall_seconds)
          AND a.outcome IN ('COMPLETED', 'SKIPPED')) AS finished_recently,
       (SELECT count(*)
        FROM enrichment.record_state AS r
        WHERE r.status = 'IN_PROGRESS' AND r.lease_expires_at < clock.now) AS stuck,
       (SELECT s.value
        FROM enrichment.metric_snapshots AS s
        WHERE s.name = 'backlog_size'
          AND s.workspace_id IS NULL AND s.source IS NULL AND s.stage IS NULL
          AND s.taken_at <= clock.now - make_interval(secs => :stall_seconds)
        ORDER BY s.taken_at DESC
        LIMIT 1) AS backlog_before
FROM clock;


-- name: error_totals
-- Failed attempts ever, by error type: a counter for Prometheus (monotonic while attempts are
-- kept). Index: attempts_failed_type_idx (error_type) WHERE outcome = 'FAILED', index-only.
SELECT coalesce(a.error_type, 'unknown') AS error_type, count(*) AS failures
FROM enrichment.attempts AS a
WHERE a.outcome = 'FAILED'
GROUP BY 1;


-- name: reprocessing_totals
-- Records sent through the pipeline again, by reason: events other than a plain entity
-- change (related change, schema change, integration sync, manual re-embed, reprocess), per
-- record id; and retries (attempts after the first). Counters for Prometheus.
-- Indexes: events_reprocess_idx and attempts_retry_idx hold only those rows.
SELECT e.reason, sum(cardinality(e.record_ids)) AS records
FROM enrichment.events AS e
WHERE e.reason <> 'entity_changed'
GROUP BY e.reason
UNION ALL
SELECT 'retry', count(*)
FROM enrichment.attempts AS a
WHERE a.attempt > 1;
