-- crosswalk schema, version 3: what chunk-worker adds to the queue of
-- version 2. The end check a worker runs after each completion (cheap: the
-- indexes of live chunks), the report `chunk-worker status` prints and the
-- completion webhook posts, and the webhook's retry schedule.

ALTER TABLE sync_queue ADD COLUMN webhook_next_at timestamptz;

-- Due deliveries, oldest first; a parent leaves it once sent or given up.
CREATE INDEX sync_queue_webhook_due ON sync_queue (webhook_next_at)
    WHERE webhook_status = 'pending';

-- Finish a parent whose chunks have all ended, after the completion that
-- ended the last one has committed: rolled up (and its webhook scheduled)
-- when no chunk is pending or processing, left alone otherwise. Cheap
-- enough to run after every chunk: it reads only the indexes of live
-- chunks, and locks the parent only once they are empty, so that of two
-- workers finishing the last chunks at once exactly one ends the job.
-- Idle workers are told (they may be waiting for the queue to empty).
-- Returns the parent's status when it ended in this call, else null.
CREATE FUNCTION finish_sync_job(p_parent_id bigint)
RETURNS text LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    st text;
BEGIN
    IF EXISTS (SELECT 1 FROM chunked_sync_jobs
               WHERE parent_id = p_parent_id AND status = 'pending')
       OR EXISTS (SELECT 1 FROM chunked_sync_jobs
                  WHERE parent_id = p_parent_id AND status = 'processing') THEN
        RETURN NULL;
    END IF;
    SELECT status INTO st FROM sync_queue WHERE id = p_parent_id FOR UPDATE;
    IF st IS NULL OR st NOT IN ('pending', 'processing') THEN
        RETURN NULL;
    END IF;
    st := roll_up_sync_job(p_parent_id);
    IF st IN ('pending', 'processing') THEN
        RETURN NULL;
    END IF;
    PERFORM pg_notify('crosswalk_chunks', 'end');
    RETURN st;
END $$;

-- Every end of a parent (roll-up, cancel) schedules its webhook at once,
-- and a webhook set pending again starts its attempts afresh.
CREATE FUNCTION sync_queue_schedule_webhook()
RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    -- A job made live again (retry_sync_job) gets a full set of attempts.
    IF NEW.webhook_status = 'pending' AND OLD.webhook_status IS DISTINCT FROM 'pending' THEN
        NEW.webhook_attempts := 0;
        NEW.webhook_last_error := NULL;
    END IF;
    IF NEW.webhook_url IS NOT NULL AND NEW.webhook_status = 'pending'
       AND NEW.status IN ('completed', 'partial_success', 'failed', 'cancelled')
       AND (OLD.status IN ('pending', 'processing') OR OLD.webhook_status IS DISTINCT FROM 'pending')
    THEN
        NEW.webhook_next_at := now();
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER sync_queue_schedule_webhook
    BEFORE UPDATE OF status, webhook_status ON sync_queue
    FOR EACH ROW EXECUTE FUNCTION sync_queue_schedule_webhook();

-- The numbers of a job's completed chunks' results, summed member by
-- member ({"rows": 3300, "matched": 2600, ...}); {} when there are none.
CREATE FUNCTION sync_job_totals(p_parent_id bigint)
RETURNS jsonb LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT coalesce(jsonb_object_agg(t.key, t.total), '{}')
    FROM (SELECT e.key, sum((e.value)::text::numeric) AS total
          FROM chunked_sync_jobs c,
               jsonb_each(CASE WHEN jsonb_typeof(c.result) = 'object'
                               THEN c.result ELSE '{}' END) e
          WHERE c.parent_id = p_parent_id AND c.status = 'completed'
            AND jsonb_typeof(e.value) = 'number'
          GROUP BY e.key) t
$$;

-- A job as one JSON document: its status, progress (percentage, current
-- stage, ETA), chunks by status, the failed chunks with their last errors
-- (the first 100), the chunks' results summed where they are numbers, and
-- the webhook's state. null when the job does not exist.
CREATE FUNCTION sync_job_report(p_parent_id bigint)
RETURNS jsonb LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT jsonb_build_object(
        'id', q.id, 'kind', q.kind, 'status', q.status, 'namespace', q.namespace,
        'priority', q.priority, 'ordered', q.ordered, 'params', q.params,
        'percentage', q.progress, 'current_stage', q.current_stage,
        'eta_minutes', q.eta_minutes,
        'total_chunks', q.total_chunks, 'total_items', q.total_items,
        'items_done', q.items_done,
        'chunks', (SELECT jsonb_build_object(
                       'pending', count(*) FILTER (WHERE c.status = 'pending'),
                       'processing', count(*) FILTER (WHERE c.status = 'processing'),
                       'completed', count(*) FILTER (WHERE c.status = 'completed'),
                       'failed', count(*) FILTER (WHERE c.status = 'failed'),
                       'cancelled', count(*) FILTER (WHERE c.status = 'cancelled'),
                       'retried', count(*) FILTER (WHERE c.attempts > 1))
                   FROM chunked_sync_jobs c WHERE c.parent_id = q.id),
        'failed_chunks', coalesce((SELECT jsonb_agg(jsonb_build_object(
                       'chunk_index', f.chunk_index, 'attempts', f.attempts,
                       'last_error', f.last_error) ORDER BY f.chunk_index)
                   FROM (SELECT * FROM chunked_sync_jobs c
                         WHERE c.parent_id = q.id AND c.status = 'failed'
                         ORDER BY c.chunk_index LIMIT 100) f), '[]'),
        'totals', sync_job_totals(q.id),
        'created_at', q.created_at, 'started_at', q.started_at,
        'completed_at', q.completed_at, 'updated_at', q.updated_at,
        'webhook', CASE WHEN q.webhook_url IS NOT NULL THEN jsonb_build_object(
                       'status', q.webhook_status, 'attempts', q.webhook_attempts,
                       'last_error', q.webhook_last_error, 'sent_at', q.webhook_sent_at) END)
    FROM sync_queue q WHERE q.id = p_parent_id
$$;
