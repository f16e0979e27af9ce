-- crosswalk schema, version 2: the chunk queue (QUEUE.md). Parent jobs in
-- sync_queue, their chunks in chunked_sync_jobs (the legacy names), and the
-- SQL functions any client can drive the queue with. Ownership of a chunk is
-- a committed row state with a fencing token, never a session lock, so a
-- dead worker's chunk is recovered by one guarded UPDATE.
--
-- Applied with search_path set to the bookkeeping schema; every function
-- keeps that path (SET search_path FROM CURRENT), whatever the caller's.

CREATE SEQUENCE chunk_lease_token_seq;

CREATE TABLE sync_queue (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind              text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_-]{0,62}$'),
    status            text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'processing', 'completed', 'partial_success',
                          'failed', 'cancelled')),
    priority          integer NOT NULL DEFAULT 100,
    ordered           boolean NOT NULL DEFAULT false,
    namespace         text NOT NULL DEFAULT 'default',
    params            jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(params) = 'object'),
    sync_from         timestamptz,
    sync_to           timestamptz,
    total_items       bigint CHECK (total_items >= 0),
    total_chunks      integer NOT NULL CHECK (total_chunks >= 0),
    completed_chunks  integer NOT NULL DEFAULT 0,
    failed_chunks     integer NOT NULL DEFAULT 0,
    items_done        bigint NOT NULL DEFAULT 0,
    progress          numeric(5, 2) NOT NULL DEFAULT 0,   -- percent of chunks finished
    current_stage     text,
    eta_minutes       numeric,
    webhook_url       text CHECK (webhook_url ~ '^https?://'),
    webhook_status    text CHECK (webhook_status IN ('pending', 'sent', 'failed')),
    webhook_attempts  integer NOT NULL DEFAULT 0,
    webhook_last_error text,
    webhook_sent_at   timestamptz,
    locked_by         text,          -- ordered jobs: the worker holding the parent
    result            jsonb,
    created_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    completed_at      timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sync_queue_live ON sync_queue (priority, id)
    WHERE status IN ('pending', 'processing');
CREATE INDEX sync_queue_finished ON sync_queue (completed_at)
    WHERE status IN ('completed', 'partial_success', 'failed', 'cancelled');

CREATE TABLE chunked_sync_jobs (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    parent_id          bigint NOT NULL REFERENCES sync_queue (id) ON DELETE CASCADE,
    chunk_index        integer NOT NULL CHECK (chunk_index >= 0),
    total_chunks       integer NOT NULL,
    start_offset       bigint NOT NULL,
    end_offset         bigint NOT NULL,
    estimated_items    bigint,
    ordered            boolean NOT NULL DEFAULT false,   -- the parent's, for the index below
    status             text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    attempts           integer NOT NULL DEFAULT 0,
    max_attempts       integer NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 1000),
    worker_id          text,
    run_at             timestamptz NOT NULL DEFAULT now(),
    lease_token        bigint,
    lease_expires_at   timestamptz,    -- not indexed: heartbeats stay HOT updates
    last_error         text,
    result             jsonb,
    processing_time_ms bigint,
    started_at         timestamptz,
    completed_at       timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chunked_sync_jobs_chunk UNIQUE (parent_id, chunk_index),
    CHECK (end_offset >= start_offset)
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.02,
        autovacuum_analyze_scale_factor = 0.02);

-- Only live work is indexed: finished chunks never enter the claim's index.
CREATE INDEX chunked_sync_jobs_pending ON chunked_sync_jobs (parent_id, chunk_index)
    WHERE status = 'pending';
CREATE INDEX chunked_sync_jobs_processing ON chunked_sync_jobs (parent_id)
    WHERE status = 'processing';
-- The safety net of ordered jobs: one processing chunk per parent.
CREATE UNIQUE INDEX chunked_sync_jobs_one_ordered ON chunked_sync_jobs (parent_id)
    WHERE status = 'processing' AND ordered;

-- A parent with its chunks: [start, end) ranges of total_items split in
-- chunks of chunk_size (or total_chunks chunks when chunk_size is null),
-- and one NOTIFY for the whole job. Returns the parent's id.
CREATE FUNCTION create_sync_chunks(
    p_kind text, p_total_items bigint, p_chunk_size bigint DEFAULT NULL,
    p_total_chunks integer DEFAULT NULL, p_params jsonb DEFAULT '{}',
    p_priority integer DEFAULT 100, p_ordered boolean DEFAULT false,
    p_namespace text DEFAULT 'default', p_max_attempts integer DEFAULT 5,
    p_webhook_url text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    parent bigint;
    size bigint;
    n integer;
BEGIN
    IF p_total_items IS NULL OR p_total_items < 0 THEN
        RAISE EXCEPTION 'total items must be 0 or more, not %', p_total_items
            USING ERRCODE = '22023';
    END IF;
    IF (p_chunk_size IS NULL) = (p_total_chunks IS NULL) THEN
        RAISE EXCEPTION 'give either a chunk size or a number of chunks'
            USING ERRCODE = '22023';
    END IF;
    IF p_chunk_size IS NOT NULL AND p_chunk_size < 1 THEN
        RAISE EXCEPTION 'the chunk size must be 1 or more, not %', p_chunk_size
            USING ERRCODE = '22023';
    END IF;
    IF p_total_chunks IS NOT NULL AND p_total_chunks NOT BETWEEN 1 AND 1000000 THEN
        RAISE EXCEPTION 'the number of chunks must be 1 to 1000000, not %', p_total_chunks
            USING ERRCODE = '22023';
    END IF;
    IF p_total_chunks IS NOT NULL THEN
        n := p_total_chunks;
        size := greatest(1, (p_total_items + n - 1) / n);
    ELSE
        size := p_chunk_size;
        n := greatest(1, ((p_total_items + size - 1) / size)::integer);
    END IF;
    INSERT INTO sync_queue (kind, priority, ordered, namespace, params, total_items,
                            total_chunks, webhook_url, webhook_status, current_stage)
    VALUES (p_kind, p_priority, p_ordered, p_namespace, coalesce(p_params, '{}'),
            p_total_items, n, p_webhook_url,
            CASE WHEN p_webhook_url IS NOT NULL THEN 'pending' END, 'queued')
    RETURNING id INTO parent;
    INSERT INTO chunked_sync_jobs (parent_id, chunk_index, total_chunks, start_offset,
                                   end_offset, estimated_items, ordered, max_attempts)
    SELECT parent, i, n, least(i * size, p_total_items), least((i + 1) * size, p_total_items),
           least((i + 1) * size, p_total_items) - least(i * size, p_total_items),
           p_ordered, p_max_attempts
    FROM generate_series(0, n - 1) AS i;
    PERFORM pg_notify('crosswalk_chunks', parent::text);
    RETURN parent;
END $$;

-- The retry delay after attempt n: 5 s doubling up to 10 min, with jitter
-- (half to all of it), so failing chunks of many jobs do not retry in step.
CREATE FUNCTION chunk_backoff(p_attempts integer)
RETURNS interval LANGUAGE sql VOLATILE SET search_path FROM CURRENT AS $$
    SELECT least(interval '10 minutes',
                 interval '5 seconds' * power(2, least(greatest(p_attempts, 1) - 1, 20)))
           * (0.5 + random() / 2)
$$;

-- What a failed attempt leaves a chunk (fail_chunk_job, and the rescue of
-- an expired lease): pending again after a backoff while attempts remain
-- and a retry is wanted, else failed for good.
CREATE FUNCTION chunk_after_failure(
    p_attempts integer, p_max_attempts integer, p_retry boolean, p_run_at timestamptz,
    OUT status text, OUT run_at timestamptz, OUT completed_at timestamptz)
LANGUAGE sql VOLATILE SET search_path FROM CURRENT AS $$
    SELECT CASE WHEN again THEN 'pending' ELSE 'failed' END,
           CASE WHEN again THEN now() + chunk_backoff(p_attempts) ELSE p_run_at END,
           CASE WHEN again THEN NULL ELSE now() END
    FROM (SELECT p_retry AND p_attempts < p_max_attempts AS again) d
$$;

-- Chunks' started_at and completed_at are clock_timestamp(): the moment of
-- the claim or completion, not its transaction's start, so that they order
-- the work as it happened.

-- Claim the next chunk: the first pending one (by the parent's priority,
-- then parent and index) whose time has come, of a live parent of the given
-- kinds (null: any). An ordered job offers only its lowest pending chunk,
-- and only while none of its chunks is processing or failed. The attempt
-- is counted here, so a chunk that kills its worker still reaches
-- max_attempts. Returns the chunk with its lease token, or no row.
CREATE FUNCTION claim_next_chunk_job(
    p_worker_id text, p_lease_seconds double precision DEFAULT 60,
    p_kinds text[] DEFAULT NULL)
RETURNS SETOF chunked_sync_jobs LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    claimed chunked_sync_jobs;
BEGIN
    -- Parents in priority order (a small index of live parents), and in
    -- each the first due chunk by the index of pending chunks: no sort of
    -- every pending chunk, however many there are.
    WITH next AS MATERIALIZED (
        SELECT c.id
        FROM sync_queue q
        CROSS JOIN LATERAL (
            SELECT c.id FROM chunked_sync_jobs c
            WHERE c.parent_id = q.id AND c.status = 'pending' AND c.run_at <= now()
              AND (NOT q.ordered OR (
                    c.chunk_index = (SELECT min(o.chunk_index) FROM chunked_sync_jobs o
                                     WHERE o.parent_id = q.id AND o.status = 'pending')
                    AND NOT EXISTS (SELECT 1 FROM chunked_sync_jobs o
                                    WHERE o.parent_id = q.id
                                      AND o.status IN ('processing', 'failed'))))
            ORDER BY c.chunk_index
            LIMIT 1
            FOR UPDATE OF c SKIP LOCKED) c
        WHERE q.status IN ('pending', 'processing')
          AND (p_kinds IS NULL OR q.kind = ANY (p_kinds))
        ORDER BY q.priority, q.id
        LIMIT 1)
    UPDATE chunked_sync_jobs c
    SET status = 'processing', attempts = c.attempts + 1, worker_id = p_worker_id,
        lease_token = nextval('chunk_lease_token_seq'),
        lease_expires_at = now() + make_interval(secs => p_lease_seconds),
        started_at = clock_timestamp()
    FROM next
    WHERE c.id = next.id
    RETURNING c.* INTO claimed;
    IF claimed.id IS NULL THEN
        RETURN;
    END IF;
    -- The parent row is written only when it changes (its first claim, or
    -- an ordered job's new holder): claims of one job must not queue on
    -- its row lock, nor leave a new row version each.
    UPDATE sync_queue
    SET status = 'processing', started_at = coalesce(started_at, now()),
        locked_by = CASE WHEN ordered THEN p_worker_id ELSE locked_by END,
        current_stage = 'processing', updated_at = now()
    WHERE id = claimed.parent_id
      AND (status = 'pending'
           OR (status = 'processing' AND ordered AND locked_by IS DISTINCT FROM p_worker_id));
    RETURN NEXT claimed;
EXCEPTION WHEN unique_violation THEN
    -- Another worker holds this ordered job's one processing chunk.
    RETURN;
END $$;

-- Extend a lease. Returns false when the lease is lost (expired and
-- rescued, taken over, or the job cancelled): the worker then stops and
-- writes nothing more.
CREATE FUNCTION heartbeat_chunk_job(
    p_chunk_id bigint, p_lease_token bigint, p_lease_seconds double precision DEFAULT 60)
RETURNS boolean LANGUAGE sql SET search_path FROM CURRENT AS $$
    WITH hb AS (
        UPDATE chunked_sync_jobs
        SET lease_expires_at = now() + make_interval(secs => p_lease_seconds)
        WHERE id = p_chunk_id AND status = 'processing' AND lease_token = p_lease_token
        RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM hb)
$$;

-- Complete a chunk under its lease. Returns false when the lease was lost.
-- The parent is rolled up by a separate statement once this commits.
CREATE FUNCTION complete_chunk_job(
    p_chunk_id bigint, p_lease_token bigint, p_result jsonb DEFAULT NULL,
    p_processing_time_ms bigint DEFAULT NULL)
RETURNS boolean LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    parent bigint;
BEGIN
    UPDATE chunked_sync_jobs
    SET status = 'completed', completed_at = clock_timestamp(), result = p_result,
        processing_time_ms = coalesce(p_processing_time_ms,
            (extract(epoch FROM clock_timestamp() - started_at) * 1000)::bigint),
        lease_expires_at = NULL
    WHERE id = p_chunk_id AND status = 'processing' AND lease_token = p_lease_token
    RETURNING parent_id INTO parent;
    IF parent IS NULL THEN
        RETURN false;
    END IF;
    UPDATE sync_queue SET locked_by = NULL WHERE id = parent AND ordered;
    RETURN true;
END $$;

-- Fail a chunk under its lease: back to pending after a backoff, or failed
-- for good at max_attempts (or when p_retry is false). A chunk of an
-- ordered job that fails for good fails the job: the chunks after it are
-- cancelled, never run past it. Returns the chunk's new status, or null
-- when the lease was lost.
CREATE FUNCTION fail_chunk_job(
    p_chunk_id bigint, p_lease_token bigint, p_error text, p_retry boolean DEFAULT true)
RETURNS text LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    c chunked_sync_jobs;
BEGIN
    UPDATE chunked_sync_jobs
    SET (status, run_at, completed_at) =
            (SELECT * FROM chunk_after_failure(attempts, max_attempts, p_retry, run_at)),
        last_error = left(p_error, 2000), lease_expires_at = NULL
    WHERE id = p_chunk_id AND status = 'processing' AND lease_token = p_lease_token
    RETURNING * INTO c;
    IF c.id IS NULL THEN
        RETURN NULL;
    END IF;
    UPDATE sync_queue SET locked_by = NULL WHERE id = c.parent_id AND ordered;
    IF c.status = 'failed' AND c.ordered THEN
        UPDATE chunked_sync_jobs SET status = 'cancelled', completed_at = now(),
            last_error = 'an earlier chunk of this ordered job failed'
        WHERE parent_id = c.parent_id AND status = 'pending';
    END IF;
    RETURN c.status;
END $$;

-- Hand a chunk back without penalty (a worker shutting down): pending now,
-- the attempt not counted. Returns false when the lease was lost.
CREATE FUNCTION release_chunk_job(p_chunk_id bigint, p_lease_token bigint)
RETURNS boolean LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    parent bigint;
BEGIN
    UPDATE chunked_sync_jobs
    SET status = 'pending', attempts = greatest(attempts - 1, 0), run_at = now(),
        lease_expires_at = NULL, worker_id = NULL
    WHERE id = p_chunk_id AND status = 'processing' AND lease_token = p_lease_token
    RETURNING parent_id INTO parent;
    IF parent IS NULL THEN
        RETURN false;
    END IF;
    UPDATE sync_queue SET locked_by = NULL WHERE id = parent AND ordered;
    PERFORM pg_notify('crosswalk_chunks', parent::text);
    RETURN true;
END $$;

-- The parent's progress from its chunks, and its end once no chunk is left
-- to run: completed when every chunk completed, failed when none did,
-- partial_success otherwise. Run after the statement that finished a chunk
-- has committed (inside it, concurrent completers would each miss the
-- others' commits). Returns the parent's status.
CREATE FUNCTION roll_up_sync_job(p_parent_id bigint)
RETURNS text LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    st text;
BEGIN
    WITH counts AS (
        SELECT count(*) AS total,
               count(*) FILTER (WHERE status = 'completed') AS done,
               count(*) FILTER (WHERE status = 'failed') AS failed,
               count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
               count(*) FILTER (WHERE status IN ('pending', 'processing')) AS live,
               coalesce(sum(estimated_items) FILTER (WHERE status = 'completed'), 0) AS items,
               avg(processing_time_ms) FILTER (WHERE status = 'completed') AS avg_ms,
               count(*) FILTER (WHERE status = 'processing') AS running
        FROM chunked_sync_jobs WHERE parent_id = p_parent_id)
    UPDATE sync_queue q
    SET completed_chunks = k.done, failed_chunks = k.failed, items_done = k.items,
        progress = CASE WHEN k.total = 0 THEN 100
                        ELSE round(100.0 * (k.total - k.live) / k.total, 2) END,
        eta_minutes = CASE WHEN k.live = 0 THEN 0
                           WHEN k.avg_ms IS NULL THEN NULL
                           ELSE round((k.live * k.avg_ms
                                       / greatest(k.running, 1) / 60000.0)::numeric, 2) END,
        status = CASE WHEN q.status NOT IN ('pending', 'processing') OR k.live > 0 THEN q.status
                      WHEN k.done = k.total THEN 'completed'
                      WHEN k.done = 0 THEN 'failed'
                      ELSE 'partial_success' END,
        completed_at = CASE WHEN q.status IN ('pending', 'processing') AND k.live = 0
                            THEN now() ELSE q.completed_at END,
        current_stage = CASE WHEN q.status IN ('pending', 'processing') AND k.live = 0
                             THEN 'finished' ELSE q.current_stage END,
        locked_by = CASE WHEN k.live = 0 THEN NULL ELSE q.locked_by END,
        updated_at = now()
    FROM counts k
    WHERE q.id = p_parent_id
    RETURNING q.status INTO st;
    RETURN st;
END $$;

-- Chunks whose lease expired (their worker died or stalled) go back to
-- pending with a backoff, or to failed at max_attempts; their parents are
-- rolled up. One session at a time does it (a transaction-level advisory
-- lock; another caller gets -1 at once), and doing it twice is harmless.
-- Returns how many chunks were rescued.
CREATE FUNCTION rescue_chunk_jobs()
RETURNS integer LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    n integer;
    parent bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtextextended('crosswalk-chunk-rescue', 0)) THEN
        RETURN -1;
    END IF;
    WITH expired AS MATERIALIZED (
        SELECT id FROM chunked_sync_jobs
        WHERE status = 'processing' AND lease_expires_at < now()
        FOR UPDATE SKIP LOCKED),
    moved AS (
        UPDATE chunked_sync_jobs c
        SET (status, run_at, completed_at) =
                (SELECT * FROM chunk_after_failure(c.attempts, c.max_attempts, true, c.run_at)),
            last_error = left(format('lease expired (owner %s)', c.worker_id), 2000),
            lease_expires_at = NULL
        FROM expired e
        WHERE c.id = e.id AND c.status = 'processing' AND c.lease_expires_at < now()
        RETURNING c.parent_id, c.status, c.ordered)
    SELECT count(*) INTO n FROM moved;
    -- Ordered jobs whose chunk failed for good, and every parent whose
    -- chunks are all finished, end here too.
    UPDATE chunked_sync_jobs o SET status = 'cancelled', completed_at = now(),
        last_error = 'an earlier chunk of this ordered job failed'
    WHERE o.status = 'pending' AND o.ordered
      AND EXISTS (SELECT 1 FROM chunked_sync_jobs f
                  WHERE f.parent_id = o.parent_id AND f.status = 'failed');
    UPDATE sync_queue SET locked_by = NULL
    WHERE ordered AND locked_by IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM chunked_sync_jobs c
                      WHERE c.parent_id = sync_queue.id AND c.status = 'processing');
    FOR parent IN
        SELECT q.id FROM sync_queue q
        WHERE q.status IN ('pending', 'processing')
          AND NOT EXISTS (SELECT 1 FROM chunked_sync_jobs c
                          WHERE c.parent_id = q.id AND c.status IN ('pending', 'processing'))
    LOOP
        PERFORM roll_up_sync_job(parent);
    END LOOP;
    IF n > 0 THEN
        PERFORM pg_notify('crosswalk_chunks', 'rescue');
    END IF;
    RETURN n;
END $$;

-- Cancel a job: its pending and processing chunks are cancelled (a worker
-- holding one finds its lease gone at the next heartbeat and writes
-- nothing). Returns false when the job does not exist or already ended.
CREATE FUNCTION cancel_sync_job(p_parent_id bigint)
RETURNS boolean LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE sync_queue SET status = 'cancelled', completed_at = now(), locked_by = NULL,
        current_stage = 'cancelled', updated_at = now()
    WHERE id = p_parent_id AND status IN ('pending', 'processing');
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE chunked_sync_jobs SET status = 'cancelled', completed_at = now(),
        lease_expires_at = NULL, last_error = 'the job was cancelled'
    WHERE parent_id = p_parent_id AND status IN ('pending', 'processing');
    RETURN true;
END $$;

-- Retry a job's failed (and cancelled) chunks: pending now, attempts from
-- zero, the job live again. Returns how many chunks were put back.
CREATE FUNCTION retry_sync_job(p_parent_id bigint)
RETURNS integer LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    n integer;
BEGIN
    UPDATE chunked_sync_jobs SET status = 'pending', attempts = 0, run_at = now(),
        completed_at = NULL, lease_expires_at = NULL
    WHERE parent_id = p_parent_id AND status IN ('failed', 'cancelled');
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        UPDATE sync_queue SET status = 'processing', completed_at = NULL,
            current_stage = 'retrying', webhook_status = CASE WHEN webhook_url IS NOT NULL
                THEN 'pending' END, updated_at = now()
        WHERE id = p_parent_id;
        PERFORM roll_up_sync_job(p_parent_id);
        PERFORM pg_notify('crosswalk_chunks', p_parent_id::text);
    END IF;
    RETURN n;
END $$;

-- Delete jobs that ended before p_before, their chunks with them, at most
-- p_limit jobs per call (call again while it returns p_limit).
CREATE FUNCTION prune_sync_jobs(p_before timestamptz, p_limit integer DEFAULT 1000)
RETURNS integer LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    n integer;
BEGIN
    WITH old AS (
        SELECT id FROM sync_queue
        WHERE status IN ('completed', 'partial_success', 'failed', 'cancelled')
          AND completed_at < p_before
        ORDER BY completed_at LIMIT p_limit
        FOR UPDATE SKIP LOCKED)
    DELETE FROM sync_queue q USING old WHERE q.id = old.id;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
