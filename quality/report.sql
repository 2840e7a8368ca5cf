-- What the quality report reads besides the metrics: the reasons of recent failures and the
-- dead letters. Named queries (`-- name: x`), loaded by quality.report.


-- name: failure_reasons
-- Failed attempts since :since by source, stage and error type, most frequent first, with the
-- records they hit, how many became dead letters, when the type was last seen and its latest
-- message. Index: attempts_failed_type_idx (error_type) WHERE outcome = 'FAILED' and
-- attempts_finished_idx (finished_at).
SELECT a.source,
       a.stage,
       coalesce(a.error_type, 'unknown') AS error_type,
       count(*) AS failures,
       count(DISTINCT a.record_key) AS records,
       count(*) FILTER (WHERE a.dead_lettered) AS dead_lettered,
       max(a.finished_at) AS last_seen,
       (array_agg(a.error_message ORDER BY a.finished_at DESC, a.id DESC))[1] AS latest_message
FROM enrichment.attempts AS a
WHERE a.outcome = 'FAILED'
  AND a.finished_at >= :since
GROUP BY a.source, a.stage, coalesce(a.error_type, 'unknown')
ORDER BY failures DESC, last_seen DESC, a.source, a.stage
LIMIT :limit


-- name: dead_letter_groups
-- Dead letters (FAILED, no attempt scheduled) by source, stage and error type, largest first.
-- Index: record_state_dead_idx (source, stage, finished_at) has exactly this predicate.
SELECT r.source,
       r.stage,
       coalesce(r.last_error_type, 'unknown') AS error_type,
       count(*) AS dead_letters,
       min(r.finished_at) AS oldest,
       max(r.finished_at) AS newest
FROM enrichment.record_state AS r
WHERE r.status = 'FAILED'
  AND r.next_attempt_at IS NULL
GROUP BY r.source, r.stage, coalesce(r.last_error_type, 'unknown')
ORDER BY dead_letters DESC, r.source, r.stage
