-- crosswalk schema, version 1: the identity map, shadows, state, audit log
-- and conflicts. Applied by crosswalk-migrate inside one transaction with
-- search_path set to the bookkeeping schema (default "sync"), so names here
-- are unqualified. Column names follow the existing deployments' queries.

CREATE TABLE schema_version (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per contact known on both sides: A's key, B's id, the email.
-- The pin lets a later email change on one side be followed, not duplicated.
CREATE TABLE integration_crosswalk (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    a_id        text NOT NULL,
    b_id        text NOT NULL,
    email       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT integration_crosswalk_email_key UNIQUE (email),
    CONSTRAINT integration_crosswalk_a_id_key UNIQUE (a_id),
    CONSTRAINT integration_crosswalk_b_id_key UNIQUE (b_id),
    CONSTRAINT integration_crosswalk_email_normalized
        CHECK (email = lower(btrim(email)) AND email <> ''),
    CONSTRAINT integration_crosswalk_b_id_digits CHECK (b_id ~ '^[0-9]{1,20}$')
);

-- Per crosswalk row, the mapped values each side held at the last sync:
-- the base of every 3-way decision. Hashes let integrity checks and
-- incremental runs compare without reading the documents.
CREATE TABLE sync_shadow (
    crosswalk_id bigint PRIMARY KEY
        REFERENCES integration_crosswalk (id) ON DELETE CASCADE,
    a_snapshot  jsonb NOT NULL,
    b_snapshot  jsonb NOT NULL,
    a_hash      text GENERATED ALWAYS AS (md5(a_snapshot::text)) STORED,
    b_hash      text GENERATED ALWAYS AS (md5(b_snapshot::text)) STORED,
    synced_at   timestamptz NOT NULL DEFAULT now()
);

-- Small documents by key: sync_status (sections backfill, fullSync,
-- lastSync, statistics), cursors, token_bucket_state, breaker, counters.
CREATE TABLE sync_state (
    key         text PRIMARY KEY,
    value       jsonb NOT NULL DEFAULT '{}',
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Audit trail: one row per action taken on a record or a job.
CREATE TABLE sync_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    logged_at   timestamptz NOT NULL DEFAULT now(),
    program     text NOT NULL,
    run_id      text,
    namespace   text NOT NULL DEFAULT 'default',
    level       text NOT NULL DEFAULT 'info'
        CHECK (level IN ('info', 'warning', 'error')),
    action      text NOT NULL,
    email       text,
    a_id        text,
    b_id        text,
    detail      jsonb
);
CREATE INDEX sync_log_logged_at ON sync_log USING brin (logged_at);
CREATE INDEX sync_log_run ON sync_log (run_id, action);

-- Field-level conflicts: both values, the base, the policy and the outcome.
CREATE TABLE sync_conflicts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    crosswalk_id  bigint REFERENCES integration_crosswalk (id) ON DELETE SET NULL,
    email         text NOT NULL,
    field         text NOT NULL,
    a_value       jsonb,
    b_value       jsonb,
    base_value    jsonb,
    policy        text NOT NULL
        CHECK (policy IN ('skip', 'a-wins', 'b-wins', 'newest')),
    applied_value jsonb,
    winner        text CHECK (winner IN ('a', 'b', 'none')),
    program       text,
    run_id        text,
    namespace     text NOT NULL DEFAULT 'default',
    detected_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at   timestamptz
);
CREATE INDEX sync_conflicts_open ON sync_conflicts (email) WHERE resolved_at IS NULL;
