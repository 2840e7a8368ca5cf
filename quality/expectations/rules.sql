-- The integrity rules of the quality report, as SQL, run by Great Expectations in PostgreSQL.
--
-- Two kinds of block:
--   * assets (`*_rows`, `stored_*`): what a suite looks at. `record_state` is the table itself;
--     `vectors` and `stored_text` are unions built from the registry of vector tables.
--   * rules: an UnexpectedRowsExpectation each. `{batch}` is the suite's asset (Great
--     Expectations substitutes it); a rule returns the rows that break it, so a passing rule
--     returns none. Rules return keys and figures, never stored text: their rows go into the
--     report and its e-mail.
--     Great Expectations gives `{batch}` an alias of its own unless the query contains the word
--     JOIN, so a rule reads it as `(SELECT * FROM {batch}) AS x` and joins with commas,
--     LATERAL and subqueries only (rules.py refuses a rule that says JOIN).
--
-- `:name` is a value filled in before Great Expectations sees the query (quality.expectations
-- renders it as a literal or a quoted identifier); there are no bind parameters left by then.
-- Time is the database's (statement_timestamp()), like the queue's.


-- name: stuck_records
-- Rule on record_state: no record incomplete for more than :max_age_seconds. A record is
-- incomplete while one of its stages is not COMPLETED or SKIPPED (pending, waiting, running,
-- retrying or dead-lettered); its age is that of its oldest unserved request.
-- Index: record_state_unfinished_idx (source, workspace_id, requested_at) has exactly this
-- predicate, so only unfinished rows are read.
SELECT r.source,
       r.record_key,
       r.workspace_id,
       (array_agg(r.stage ORDER BY r.stage_index))[1] AS stage,
       (array_agg(r.status ORDER BY r.stage_index))[1] AS status,
       min(r.requested_at) AS requested_at,
       round(CAST(extract(epoch FROM statement_timestamp() - min(r.requested_at)) / 3600
                  AS numeric), 1) AS hours_waiting
FROM (SELECT * FROM {batch}) AS r
WHERE r.status NOT IN ('COMPLETED', 'SKIPPED')
  AND r.deleted_at IS NULL
  AND r.requested_at < statement_timestamp() - make_interval(secs => :max_age_seconds)
GROUP BY r.source, r.record_key, r.workspace_id
ORDER BY min(r.requested_at), r.source, r.record_key


-- name: over_retry_limit
-- Rule on record_state: nobody over the retry limit. A row's retries are its attempts after
-- the first; the limit is the stage's (:limit_sources, :limit_stages, :limit_retries, from the
-- configuration) or :max_retries.
WITH limits AS (
    SELECT *
    FROM unnest(:limit_sources, :limit_stages, :limit_retries) AS l(source, stage, max_retries)
)
SELECT r.source, r.stage, r.record_key, r.workspace_id, r.status, r.attempts,
       r.max_retries + 1 AS max_attempts
FROM (
    SELECT b.*,
           coalesce((SELECT l.max_retries FROM limits AS l
                     WHERE l.source = b.source AND l.stage = b.stage), :max_retries)
               AS max_retries
    FROM (SELECT * FROM {batch}) AS b
    WHERE b.deleted_at IS NULL
) AS r
WHERE r.attempts - 1 > r.max_retries
ORDER BY r.source, r.stage, r.record_key


-- name: low_confidence_stages
-- Rule on record_state: in every stage whose outputs carry a confidence (AI stages such as
-- classify), more than :min_rate of the scored records have confidence >= :high_confidence.
-- Scored: a finished row whose output->'confidence' is a JSON number within 0..1.
SELECT r.source,
       r.stage,
       count(*) AS scored,
       count(*) FILTER (WHERE CAST(r.output ->> 'confidence' AS float8) >= :high_confidence)
           AS high_confidence,
       round(CAST(count(*) FILTER (WHERE CAST(r.output ->> 'confidence' AS float8)
                                         >= :high_confidence) AS numeric) / count(*), 3)
           AS rate
FROM (SELECT * FROM {batch}) AS r
WHERE r.status IN ('COMPLETED', 'SKIPPED')
  AND r.deleted_at IS NULL
  AND jsonb_typeof(r.output -> 'confidence') = 'number'
  AND CAST(r.output ->> 'confidence' AS float8) BETWEEN 0 AND 1
GROUP BY r.source, r.stage
HAVING CAST(count(*) FILTER (WHERE CAST(r.output ->> 'confidence' AS float8)
                                   >= :high_confidence) AS float8) / count(*) <= :min_rate
ORDER BY r.source, r.stage


-- name: confidence_scored
-- Whether any stage output carries a confidence: without one, the confidence rule does not
-- apply (it would pass on no rows, which says nothing).
SELECT EXISTS (
    SELECT 1
    FROM enrichment.record_state AS r
    WHERE r.status IN ('COMPLETED', 'SKIPPED')
      AND r.deleted_at IS NULL
      AND jsonb_typeof(r.output -> 'confidence') = 'number'
      AND CAST(r.output ->> 'confidence' AS float8) BETWEEN 0 AND 1
) AS scored


-- name: vector_tables
-- The registered vector tables the rules read, with the type of their embedding column
-- (pgvector's vector or halfvec, or a real[] / double precision[] array).
SELECT t.name,
       t.state,
       t.dimensions,
       format_type(a.atttypid, a.atttypmod) AS embedding_type,
       a.atttypid IS NOT NULL AS has_embedding
FROM enrichment.embedding_tables AS t
LEFT JOIN pg_attribute AS a
       ON a.attrelid = to_regclass(format('enrichment.%I', t.name))
      AND a.attname = 'embedding'
      AND NOT a.attisdropped
WHERE to_regclass(format('enrichment.%I', t.name)) IS NOT NULL
ORDER BY t.created_at, t.name


-- name: vector_rows
-- Asset `vectors`, one branch per active or building vector table (a retired table is no
-- longer read or kept current). :dimensions_of and :finite are expressions for the table's
-- embedding type: pgvector's own types refuse NaN and infinity on write, so only an array
-- column can hold one; the check still reads every row of every type.
SELECT :vector_table AS vector_table,
       v.source,
       v.record_key,
       v.chunk_index,
       v.workspace_id,
       :dimensions AS expected_dimensions,
       :dimensions_of AS dimensions,
       :finite AS finite
FROM :table AS v


-- name: no_vector_rows
-- Asset `vectors` when no vector table is registered: the same columns, no rows.
SELECT CAST(NULL AS text) AS vector_table,
       CAST(NULL AS text) AS source,
       CAST(NULL AS text) AS record_key,
       CAST(NULL AS integer) AS chunk_index,
       CAST(NULL AS text) AS workspace_id,
       CAST(NULL AS integer) AS expected_dimensions,
       CAST(NULL AS integer) AS dimensions,
       CAST(NULL AS boolean) AS finite
WHERE false


-- name: wrong_dimension
-- Rule on vectors: every vector has its table's dimension.
SELECT v.vector_table, v.source, v.record_key, v.chunk_index, v.workspace_id, v.dimensions,
       v.expected_dimensions
FROM (SELECT * FROM {batch}) AS v
WHERE v.dimensions IS DISTINCT FROM v.expected_dimensions
ORDER BY v.vector_table, v.source, v.record_key, v.chunk_index


-- name: non_finite_vectors
-- Rule on vectors: no NaN or infinite component.
SELECT v.vector_table, v.source, v.record_key, v.chunk_index, v.workspace_id
FROM (SELECT * FROM {batch}) AS v
WHERE v.finite IS NOT TRUE
ORDER BY v.vector_table, v.source, v.record_key, v.chunk_index


-- name: workspace_mismatch
-- Rule on vectors: a vector's workspace is its record's workspace in record_state, and the
-- record is there and live (a vector never outlives its record; deletes remove vectors).
-- The NOT EXISTS is an anti-join on the primary key of record_state (source, record_key,
-- stage); only the vectors it keeps are looked at again to say what is wrong.
SELECT v.vector_table,
       v.source,
       v.record_key,
       v.workspace_id,
       array_to_string(s.workspaces, ', ') AS state_workspaces,
       CASE
           WHEN s.state_rows = 0 THEN 'no record state'
           WHEN s.workspaces IS NULL THEN 'record deleted'
           ELSE 'workspace differs'
       END AS problem
FROM (SELECT DISTINCT vector_table, source, record_key, workspace_id FROM {batch}) AS v,
     LATERAL (
         SELECT count(*) AS state_rows,
                array_agg(DISTINCT r.workspace_id) FILTER (WHERE r.deleted_at IS NULL)
                    AS workspaces
         FROM enrichment.record_state AS r
         WHERE r.source = v.source AND r.record_key = v.record_key
     ) AS s
WHERE NOT EXISTS (
    SELECT 1
    FROM enrichment.record_state AS live
    WHERE live.source = v.source
      AND live.record_key = v.record_key
      AND live.workspace_id = v.workspace_id
      AND live.deleted_at IS NULL
)
ORDER BY v.vector_table, v.source, v.record_key


-- name: stored_vector_text
-- Asset `stored_text`, one branch per registered vector table (retired ones too: their text
-- is still stored): the chunk text kept beside each vector.
SELECT 'vector table' AS location,
       :vector_table AS container,
       v.source,
       v.record_key,
       v.workspace_id,
       v.chunk_text AS content
FROM :table AS v
WHERE v.chunk_text IS NOT NULL


-- name: stored_output_text
-- Asset `stored_text`: every string anywhere in a live stage output (texts, chunk texts,
-- labels, summaries, metadata values).
SELECT 'stage output' AS location,
       r.stage AS container,
       r.source,
       r.record_key,
       r.workspace_id,
       s.value #>> '{}' AS content
FROM enrichment.record_state AS r
CROSS JOIN LATERAL jsonb_path_query(r.output, 'strict $.** ? (@.type() == "string")')
     AS s(value)
WHERE r.output IS NOT NULL
  AND r.deleted_at IS NULL


-- name: pii_in_stored_text
-- Rule on stored_text: no PII pattern. One row per place and record, naming the kinds of
-- pattern found (never the text). The patterns, case-insensitive where it matters:
--   e-mail address   local@domain.tld
--   card number      13 to 19 digits, optionally grouped by spaces or dashes, that pass the
--                    Luhn check (most long numbers that are not card numbers fail it)
--   phone number     +country then 8 to 15 digits, or a grouped national number
--                    such as 555-123-4567 and (555) 123 4567
--   US SSN           123-45-6789
-- Cost: each text is read once and tested against cheap gates first (an '@' for an address,
-- three digits in a row for the others), so most text never reaches the costly expressions;
-- every kind found becomes a row, and rows are grouped per place and record.
SELECT found.location, found.container, found.source, found.record_key, found.workspace_id,
       string_agg(DISTINCT found.kind, ', ' ORDER BY found.kind) AS patterns
FROM (
    SELECT stored.location, stored.container, stored.source, stored.record_key,
           stored.workspace_id,
           unnest(ARRAY[
               CASE WHEN strpos(stored.content, '@') > 0
                         AND stored.content ~* '[a-z0-9._%+-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}'
                    THEN 'e-mail address' END,
               CASE WHEN stored.content ~ '[0-9]{3}' AND EXISTS (
                         SELECT 1
                         FROM regexp_matches(
                                  stored.content,
                                  '(?:^|[^0-9])([0-9](?:[ -]?[0-9]){12,18})(?![0-9])', 'g')
                              AS m(found)
                         -- Luhn: from the right, every second digit doubled (minus 9 above 9).
                         WHERE (SELECT sum(CASE WHEN d.position % 2 = 0
                                                THEN CAST(d.digit AS int) * 2
                                                     - CASE WHEN CAST(d.digit AS int) >= 5
                                                            THEN 9 ELSE 0 END
                                                ELSE CAST(d.digit AS int) END) % 10 = 0
                                FROM unnest(string_to_array(
                                         reverse(regexp_replace(m.found[1], '[^0-9]', '', 'g')),
                                         NULL)) WITH ORDINALITY AS d(digit, position)))
                    THEN 'card number' END,
               CASE WHEN stored.content ~ '[0-9]{3}'
                         AND (stored.content ~ '\+[0-9](?:[ .()-]{0,2}[0-9]){7,14}(?![0-9])'
                              OR stored.content
                                 ~ '(?:^|[^0-9])\(?[0-9]{3}\)?[ .-][0-9]{3}[ .-][0-9]{4}(?![0-9])')
                    THEN 'phone number' END,
               CASE WHEN stored.content ~ '(?:^|[^0-9])[0-9]{3}-[0-9]{2}-[0-9]{4}(?![0-9])'
                    THEN 'US SSN' END
           ]) AS kind
    FROM (SELECT * FROM {batch}) AS stored
    WHERE stored.content ~ '[0-9@]'  -- no digit and no '@': no pattern can match
) AS found
WHERE found.kind IS NOT NULL
GROUP BY found.location, found.container, found.source, found.record_key, found.workspace_id
ORDER BY found.location, found.container, found.source, found.record_key
