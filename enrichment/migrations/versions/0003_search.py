"""Search: lexical column and GIN index on the vector tables, row-level security by workspace,
the lexical match function and the search role.

The vector tables that exist already are rewritten once (the stored generated column is
computed for every row) under an exclusive lock; on large tables, run this in a quiet window.
New tables get the same from ``vectors.ensure_table``.

Revision ID: 0003_search
Revises: 0002_vectors
Create Date: 2026-11-22
"""

from alembic import op

revision = "0003_search"
down_revision = "0002_vectors"
branch_labels = None
depends_on = None

_LEXICAL_MATCHES = (
    "enrichment.lexical_matches(text, text, integer, text[], text[], text[], timestamptz, "
    "timestamptz, real, boolean)"
)


def upgrade() -> None:
    op.execute(
        r"""
        -- The query's words as the lexical column stores them (same configuration, so the
        -- same stemming and stop words), any of them: 'cheap flights to Lisbon' -> 'cheap' |
        -- 'flight' | 'lisbon'. Words in ``common`` (found in a large share of the chunks) are
        -- left out, as an inverse document frequency would weigh them down: they match
        -- everything and rank nothing. A query of common words only needs all of them (and
        -- lexical_matches fills up with chunks having some of them).
        -- The lexemes are quoted, so nothing the user types is tsquery syntax.
        CREATE FUNCTION enrichment.search_tsquery(query text, common text[] DEFAULT '{}')
        RETURNS tsquery
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        AS $$
            WITH lexemes AS (
                SELECT '''' || replace(replace(lexeme, '\', '\\'), '''', '''''') || ''''
                           AS quoted,
                       coalesce(lexeme = ANY(common), false) AS is_common
                FROM unnest(tsvector_to_array(to_tsvector('english'::regconfig, query)))
                     AS lexeme
            )
            SELECT coalesce(
                (SELECT string_agg(quoted, ' | ') FROM lexemes WHERE NOT is_common),
                (SELECT string_agg(quoted, ' & ') FROM lexemes),
                ''
            )::tsquery
        $$;

        -- The best lexical matches of the workspace named by the transaction's
        -- enrichment.workspace setting, and of no other: the same lock as the tables'
        -- row-level security, kept by the function itself. It runs as its owner (the tables'
        -- owner) because a policy would keep PostgreSQL from using the GIN index: the
        -- full-text match operator is not leakproof, so under row-level security it is
        -- evaluated row by row after the policy instead of in the index. Callers join the
        -- keys back to the table, through the policy, for everything they show.
        CREATE FUNCTION enrichment.lexical_matches(
            vector_table    text,
            query_text      text,
            max_rows        integer,
            sources         text[] DEFAULT NULL,
            entity_types    text[] DEFAULT NULL,
            categories      text[] DEFAULT NULL,
            updated_since   timestamptz DEFAULT NULL,
            updated_before  timestamptz DEFAULT NULL,
            common_share    real DEFAULT 0.01,
            partial         boolean DEFAULT true
        ) RETURNS TABLE (source text, record_key text, chunk_index integer, rank real)
        LANGUAGE plpgsql STABLE SECURITY DEFINER
        SET search_path = pg_catalog, pg_temp
        AS $fn$
        #variable_conflict use_column
        DECLARE
            workspace   text := current_setting('enrichment.workspace', true);
            common      text[];
            query       tsquery;
            conditions  text := '';
            matching    text;
            found_rows  bigint;
        BEGIN
            IF coalesce(workspace, '') = '' THEN
                RAISE EXCEPTION 'enrichment.workspace is not set in this transaction'
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            IF NOT EXISTS (
                SELECT 1 FROM enrichment.embedding_tables AS t WHERE t.name = vector_table
            ) THEN
                RAISE EXCEPTION 'no vector table %', quote_literal(vector_table)
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            -- Words in more than common_share of the table's chunks, from the statistics
            -- ANALYZE keeps for the planner (none before the first ANALYZE).
            common := ARRAY(
                SELECT e.lexeme
                FROM pg_stats AS s,
                     unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs)
                         AS e(lexeme, share)
                WHERE s.schemaname = 'enrichment' AND s.tablename = vector_table
                  AND s.attname = 'chunk_tsv' AND e.share > common_share
                  -- the frequencies have three more entries (minimum, maximum, nulls)
                  AND e.lexeme IS NOT NULL);
            query := enrichment.search_tsquery(query_text, common);
            IF query IS NULL OR numnode(query) = 0 OR max_rows < 1 THEN
                RETURN;  -- nothing but stop words
            END IF;
            -- Only the filters given, so each call is planned for what it asks.
            IF sources IS NOT NULL THEN
                conditions := conditions || ' AND v.source = ANY($3)';
            END IF;
            IF entity_types IS NOT NULL THEN
                conditions := conditions || ' AND v.entity_type = ANY($4)';
            END IF;
            IF categories IS NOT NULL THEN
                conditions := conditions || ' AND v.semantic_category = ANY($5)';
            END IF;
            IF updated_since IS NOT NULL THEN
                conditions := conditions
                    || ' AND coalesce(v.source_updated_at, v.updated_at) >= $6';
            END IF;
            IF updated_before IS NOT NULL THEN
                conditions := conditions
                    || ' AND coalesce(v.source_updated_at, v.updated_at) < $7';
            END IF;
            -- Ranks are ts_rank_cd scaled into [0, 1) (rank / (rank + 1)), plus 1 for the
            -- chunks that match the query proper, so those always come first.
            matching := 'SELECT v.source, v.record_key, v.chunk_index, '
                || '(%s + ts_rank_cd(v.chunk_tsv, %s, 32))::real AS rank '
                || 'FROM enrichment.' || quote_ident(vector_table) || ' AS v '
                || 'WHERE v.workspace_id = $2 AND v.chunk_tsv @@ %s' || conditions
                || ' ORDER BY rank DESC, v.source, v.record_key, v.chunk_index LIMIT %s';
            RETURN QUERY EXECUTE format(matching, '1', '$1', '$1', '$8')
                USING query, workspace, sources, entity_types, categories, updated_since,
                      updated_before, max_rows;
            GET DIAGNOSTICS found_rows = ROW_COUNT;
            -- A query of common words only needed all of them; when too few chunks have them
            -- all, the list is filled (if ``partial``) with chunks that have some of them,
            -- ranked after.
            IF partial AND found_rows < max_rows AND NOT EXISTS (
                SELECT 1 FROM unnest(tsvector_to_array(to_tsvector('english'::regconfig,
                                                                   query_text))) AS l
                WHERE l <> ALL(common)
            ) THEN
                RETURN QUERY EXECUTE format(
                    matching, '0', '$9', '$9 AND NOT v.chunk_tsv @@ $1', '$10')
                    USING query, workspace, sources, entity_types, categories, updated_since,
                          updated_before, max_rows, enrichment.search_tsquery(query_text),
                          max_rows - found_rows;
            END IF;
        END
        $fn$;
        """
        f"REVOKE ALL ON FUNCTION {_LEXICAL_MATCHES} FROM PUBLIC;"
    )
    op.execute(
        f"""
        -- The role searches run as (SET LOCAL ROLE): not the owner, so the policies apply.
        -- Roles are shared by every database of the server; it is created once, where the
        -- migrating role may create roles, and otherwise left to an administrator.
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'enrich_search') THEN
                BEGIN
                    CREATE ROLE enrich_search NOLOGIN;
                EXCEPTION
                    WHEN duplicate_object OR unique_violation THEN
                        NULL;  -- a migration of another database created it meanwhile
                    WHEN insufficient_privilege THEN
                        RAISE NOTICE 'role enrich_search not created (the migrating role '
                            'may not create roles): see docs/search.md';
                        RETURN;
                END;
            END IF;
            BEGIN
                EXECUTE 'GRANT enrich_search TO ' || quote_ident(current_user);
            EXCEPTION WHEN insufficient_privilege OR invalid_grant_operation THEN
                RAISE NOTICE 'could not let % switch to enrich_search: see docs/search.md',
                    current_user;
            END;
            GRANT USAGE ON SCHEMA enrichment TO enrich_search;
            GRANT SELECT ON enrichment.embedding_tables, enrichment.sources TO enrich_search;
            GRANT EXECUTE ON FUNCTION {_LEXICAL_MATCHES} TO enrich_search;
        END
        $$;

        -- The vector tables that exist: lexical column and index, row-level security.
        DO $$
        DECLARE
            t  record;
            q  text;
        BEGIN
            FOR t IN
                SELECT name FROM enrichment.embedding_tables
                WHERE to_regclass('enrichment.' || quote_ident(name)) IS NOT NULL
            LOOP
                q := 'enrichment.' || quote_ident(t.name);
                -- Keep the vector in the row, which the new column makes larger than 2 kB
                -- (pgvector's default storage would move it to the TOAST table).
                EXECUTE format('ALTER TABLE %s ALTER COLUMN embedding SET STORAGE MAIN', q);
                EXECUTE format(
                    'ALTER TABLE %s ADD COLUMN IF NOT EXISTS chunk_tsv tsvector GENERATED '
                    'ALWAYS AS (to_tsvector(''english''::regconfig, coalesce(chunk_text, ''''))) '
                    'STORED', q);
                EXECUTE format(
                    'CREATE INDEX IF NOT EXISTS %I ON %s USING gin (chunk_tsv)',
                    t.name || '_lexical', q);
                EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', q);
                EXECUTE format('DROP POLICY IF EXISTS workspace_isolation ON %s', q);
                EXECUTE format(
                    'CREATE POLICY workspace_isolation ON %s FOR SELECT '
                    'USING (workspace_id = current_setting(''enrichment.workspace'', true))', q);
                IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'enrich_search') THEN
                    EXECUTE format('GRANT SELECT ON %s TO enrich_search', q);
                END IF;
            END LOOP;
        END
        $$;
        """
    )


def downgrade() -> None:
    op.execute(
        f"""
        DO $$
        DECLARE
            t  record;
            q  text;
            reader boolean := EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'enrich_search');
        BEGIN
            FOR t IN
                SELECT name FROM enrichment.embedding_tables
                WHERE to_regclass('enrichment.' || quote_ident(name)) IS NOT NULL
            LOOP
                q := 'enrichment.' || quote_ident(t.name);
                EXECUTE format('DROP POLICY IF EXISTS workspace_isolation ON %s', q);
                EXECUTE format('ALTER TABLE %s DISABLE ROW LEVEL SECURITY', q);
                EXECUTE format('DROP INDEX IF EXISTS enrichment.%I', t.name || '_lexical');
                EXECUTE format('ALTER TABLE %s DROP COLUMN IF EXISTS chunk_tsv', q);
                EXECUTE format('ALTER TABLE %s ALTER COLUMN embedding SET STORAGE DEFAULT', q);
                IF reader THEN
                    EXECUTE format('REVOKE ALL ON %s FROM enrich_search', q);
                END IF;
            END LOOP;
            IF reader THEN
                REVOKE ALL ON enrichment.embedding_tables, enrichment.sources FROM enrich_search;
                REVOKE USAGE ON SCHEMA enrichment FROM enrich_search;
            END IF;
        END
        $$;
        DROP FUNCTION {_LEXICAL_MATCHES};
        DROP FUNCTION enrichment.search_tsquery(text, text[]);
        """
    )
