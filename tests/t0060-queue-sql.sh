#!/bin/sh
# Test bodies are single-quoted and use variables and functions defined here:
# shellcheck disable=SC2016,SC2034,SC2317
test_description='the chunk queue in SQL: claims, leases, fencing, retries, rescue, roll-up'
# shellcheck source=tests/test-lib.sh
. "$(dirname "$0")/test-lib.sh"

start_postgres

printf '[mailerlite]\nrate_limit = 0\n' >cw.conf

# q SQL: psql_q with the bookkeeping schema first on the path.
q() {
    psql_q "SET search_path = sync, pg_catalog; $1"
}

# new_job ARGS: create_sync_chunks(ARGS), the parent's id on stdout.
new_job() {
    q "SELECT create_sync_chunks($1)"
}

# claim WORKER [KINDS]: "id|token|index|attempts" of the claimed chunk, or
# nothing.
claim() {
    q "SELECT id, lease_token, chunk_index, attempts
       FROM claim_next_chunk_job('$1', 60, ${2:-NULL})"
}

# chunk ID COLUMNS: the chunk's columns.
chunk() {
    q "SELECT $2 FROM chunked_sync_jobs WHERE id = $1"
}

# job ID COLUMNS: the parent's columns.
job() {
    q "SELECT $2 FROM sync_queue WHERE id = $1"
}

# drain: cancel every job left, so that the next test starts empty.
drain() {
    q "SELECT count(cancel_sync_job(id)) FROM sync_queue
       WHERE status IN ('pending', 'processing')" >/dev/null
}

test_expect_success 'the migration installs the queue' '
    crosswalk-migrate -q -c cw.conf &&
    q "SELECT max(version) FROM schema_version" >actual &&
    echo 3 >expect &&
    test_cmp expect actual
'

test_expect_success 'create_sync_chunks splits the items into ranges, by size or by count' '
    test_when_finished drain &&
    p=$(new_job "'\''push'\'', 1000, 300") &&
    q "SELECT chunk_index, start_offset, end_offset, estimated_items, total_chunks
       FROM chunked_sync_jobs WHERE parent_id = $p ORDER BY chunk_index" >actual &&
    test_write_lines "0|0|300|300|4" "1|300|600|300|4" "2|600|900|300|4" "3|900|1000|100|4" >expect &&
    test_cmp expect actual &&
    job $p "status, total_chunks" >actual &&
    echo "pending|4" >expect &&
    test_cmp expect actual &&
    p=$(new_job "'\''push'\'', 10, NULL, 3") &&
    q "SELECT string_agg(start_offset || '\''-'\'' || end_offset, '\'','\'' ORDER BY chunk_index)
       FROM chunked_sync_jobs WHERE parent_id = $p" >actual &&
    echo "0-4,4-8,8-10" >expect &&
    test_cmp expect actual
'

test_expect_success 'bad sizes are refused with the reason' '
    test_must_fail q "SELECT create_sync_chunks('\''push'\'', 10, 0)" 2>err &&
    test_grep "the chunk size must be 1 or more" err &&
    test_must_fail q "SELECT create_sync_chunks('\''push'\'', 10, 5, 2)" 2>err &&
    test_grep "either a chunk size or a number of chunks" err &&
    test_must_fail q "SELECT create_sync_chunks('\''push'\'', -1, 5)" 2>err &&
    test_grep "total items must be 0 or more" err &&
    test_must_fail q "SELECT create_sync_chunks('\''No Such Kind'\'', 1, 5)" 2>err
'

test_expect_success 'claims go by priority, then job, then index; the attempt counts at claim' '
    test_when_finished drain &&
    low=$(new_job "'\''push'\'', 20, 10, NULL, '\''{}'\'', 200") &&
    high=$(new_job "'\''push'\'', 20, 10, NULL, '\''{}'\'', 10") &&
    claim w1 | cut -d"|" -f3,4 >actual &&
    claim w1 | cut -d"|" -f3,4 >>actual &&
    claim w1 | cut -d"|" -f3,4 >>actual &&
    test_write_lines "0|1" "1|1" "0|1" >expect &&
    test_cmp expect actual &&
    q "SELECT parent_id FROM chunked_sync_jobs WHERE status = '\''processing'\''
       ORDER BY started_at" >actual &&
    test_write_lines $high $high $low >expect &&
    test_cmp expect actual &&
    job $high "status, started_at IS NOT NULL" >actual &&
    echo "processing|t" >expect &&
    test_cmp expect actual
'

test_expect_success 'a claim takes only the kinds asked for' '
    test_when_finished drain &&
    p=$(new_job "'\''backfill'\'', 5, 5") &&
    claim w1 "'\''{push}'\''" >got &&
    test_must_be_empty got &&
    claim w1 "'\''{push,backfill}'\''" >got &&
    test_line_count = 1 got
'

test_expect_success 'every operation is fenced by the lease token' '
    p=$(new_job "'\''push'\'', 5, 5") &&
    claim w1 >got &&
    id=$(cut -d"|" -f1 got) && token=$(cut -d"|" -f2 got) &&
    q "SELECT heartbeat_chunk_job($id, $token + 1000),
              complete_chunk_job($id, $token + 1000),
              fail_chunk_job($id, $token + 1000, '\''x'\'') IS NULL,
              release_chunk_job($id, $token + 1000)" >actual &&
    echo "f|f|t|f" >expect &&
    test_cmp expect actual &&
    chunk $id status >actual &&
    echo processing >expect &&
    test_cmp expect actual &&
    q "SELECT heartbeat_chunk_job($id, $token), complete_chunk_job($id, $token, '\''{\"n\":5}'\'')" >actual &&
    echo "t|t" >expect &&
    test_cmp expect actual &&
    q "SELECT complete_chunk_job($id, $token)" >actual &&
    echo f >expect &&
    test_cmp expect actual &&
    q "SELECT roll_up_sync_job($p)" >actual &&
    echo completed >expect &&
    test_cmp expect actual &&
    job $p "progress, completed_chunks, completed_at IS NOT NULL" >actual &&
    echo "100.00|1|t" >expect &&
    test_cmp expect actual
'

test_expect_success 'a failure retries after a backoff, then fails for good at max_attempts' '
    p=$(new_job "'\''push'\'', 20, 10, NULL, '\''{}'\'', 100, false, '\''default'\'', 2") &&
    claim w1 >got &&
    id=$(cut -d"|" -f1 got) && token=$(cut -d"|" -f2 got) &&
    q "SELECT fail_chunk_job($id, $token, '\''API down'\'')" >actual &&
    echo pending >expect &&
    test_cmp expect actual &&
    chunk $id "run_at > now() + interval '\''2 s'\'', run_at < now() + interval '\''6 s'\'', last_error" >actual &&
    echo "t|t|API down" >expect &&
    test_cmp expect actual &&
    # not due yet: the next claim takes the other chunk
    claim w1 | cut -d"|" -f3 >actual &&
    echo 1 >expect &&
    test_cmp expect actual &&
    q "SELECT complete_chunk_job(id, lease_token) FROM chunked_sync_jobs
       WHERE parent_id = $p AND status = '\''processing'\''" >/dev/null &&
    q "UPDATE chunked_sync_jobs SET run_at = now() WHERE id = $id" &&
    claim w2 >got &&
    test "$(cut -d"|" -f1 got)" = "$id" &&
    test "$(cut -d"|" -f4 got)" = 2 &&
    q "SELECT fail_chunk_job($id, $(cut -d"|" -f2 got), '\''API down again'\'')" >actual &&
    echo failed >expect &&
    test_cmp expect actual &&
    q "SELECT roll_up_sync_job($p)" >actual &&
    echo partial_success >expect &&
    test_cmp expect actual &&
    job $p "completed_chunks, failed_chunks" >actual &&
    echo "1|1" >expect &&
    test_cmp expect actual
'

test_expect_success 'a job whose every chunk failed ends failed; retry puts it back' '
    test_when_finished drain &&
    p=$(new_job "'\''push'\'', 5, 5, NULL, '\''{}'\'', 100, false, '\''default'\'', 1") &&
    claim w1 >got &&
    q "SELECT fail_chunk_job($(cut -d"|" -f1 got), $(cut -d"|" -f2 got), '\''bad'\'')" >/dev/null &&
    q "SELECT roll_up_sync_job($p)" >actual &&
    echo failed >expect &&
    test_cmp expect actual &&
    q "SELECT retry_sync_job($p)" >actual &&
    echo 1 >expect &&
    test_cmp expect actual &&
    job $p status >actual &&
    echo processing >expect &&
    test_cmp expect actual &&
    claim w1 | cut -d"|" -f4 >actual &&
    echo 1 >expect &&
    test_cmp expect actual
'

test_expect_success 'an expired lease is rescued; the zombie can neither heartbeat nor complete' '
    p=$(new_job "'\''push'\'', 5, 5") &&
    claim zombie >got &&
    id=$(cut -d"|" -f1 got) && token=$(cut -d"|" -f2 got) &&
    q "UPDATE chunked_sync_jobs SET lease_expires_at = now() - interval '\''1 s'\'' WHERE id = $id" &&
    q "SELECT rescue_chunk_jobs()" >actual &&
    echo 1 >expect &&
    test_cmp expect actual &&
    chunk $id "status, last_error" >actual &&
    echo "pending|lease expired (owner zombie)" >expect &&
    test_cmp expect actual &&
    q "UPDATE chunked_sync_jobs SET run_at = now() WHERE id = $id" &&
    claim heir >got2 &&
    test "$(cut -d"|" -f1 got2)" = "$id" &&
    q "SELECT heartbeat_chunk_job($id, $token), complete_chunk_job($id, $token)" >actual &&
    echo "f|f" >expect &&
    test_cmp expect actual &&
    q "SELECT complete_chunk_job($id, $(cut -d"|" -f2 got2))" >actual &&
    echo t >expect &&
    test_cmp expect actual &&
    q "SELECT rescue_chunk_jobs()" >actual &&
    echo 0 >expect &&
    test_cmp expect actual &&
    job $p status >actual &&
    echo completed >expect &&
    test_cmp expect actual
'

test_expect_success 'rescue at max_attempts fails the chunk and rolls the job up' '
    p=$(new_job "'\''push'\'', 5, 5, NULL, '\''{}'\'', 100, false, '\''default'\'', 1") &&
    claim w1 >got &&
    q "UPDATE chunked_sync_jobs SET lease_expires_at = now() - interval '\''1 s'\''
       WHERE id = $(cut -d"|" -f1 got)" &&
    q "SELECT rescue_chunk_jobs()" >/dev/null &&
    job $p status >actual &&
    echo failed >expect &&
    test_cmp expect actual
'

test_expect_success 'release hands a chunk back without counting the attempt' '
    test_when_finished drain &&
    p=$(new_job "'\''push'\'', 5, 5") &&
    claim w1 >got &&
    q "SELECT release_chunk_job($(cut -d"|" -f1 got), $(cut -d"|" -f2 got))" >actual &&
    echo t >expect &&
    test_cmp expect actual &&
    chunk "$(cut -d"|" -f1 got)" "status, attempts, run_at <= now()" >actual &&
    echo "pending|0|t" >expect &&
    test_cmp expect actual
'

test_expect_success 'cancel: the running chunk loses its lease, the rest never run' '
    p=$(new_job "'\''push'\'', 20, 10") &&
    claim w1 >got &&
    q "SELECT cancel_sync_job($p)" >actual &&
    echo t >expect &&
    test_cmp expect actual &&
    q "SELECT heartbeat_chunk_job($(cut -d"|" -f1 got), $(cut -d"|" -f2 got))" >actual &&
    echo f >expect &&
    test_cmp expect actual &&
    claim w2 >got2 &&
    test_must_be_empty got2 &&
    q "SELECT cancel_sync_job($p), cancel_sync_job(-1)" >actual &&
    echo "f|f" >expect &&
    test_cmp expect actual
'

test_expect_success 'an ordered job: one chunk at a time, in order; a failure stops the rest' '
    p=$(new_job "'\''push'\'', 30, 10, NULL, '\''{}'\'', 100, true, '\''default'\'', 1") &&
    claim w1 >got &&
    test "$(cut -d"|" -f3 got)" = 0 &&
    claim w2 >none &&
    test_must_be_empty none &&
    job $p locked_by >actual &&
    echo w1 >expect &&
    test_cmp expect actual &&
    q "SELECT complete_chunk_job($(cut -d"|" -f1 got), $(cut -d"|" -f2 got))" >/dev/null &&
    claim w2 >got &&
    test "$(cut -d"|" -f3 got)" = 1 &&
    q "SELECT fail_chunk_job($(cut -d"|" -f1 got), $(cut -d"|" -f2 got), '\''bad'\'')" >/dev/null &&
    claim w3 >none &&
    test_must_be_empty none &&
    q "SELECT string_agg(status, '\'','\'' ORDER BY chunk_index) FROM chunked_sync_jobs
       WHERE parent_id = $p" >actual &&
    echo "completed,failed,cancelled" >expect &&
    test_cmp expect actual &&
    q "SELECT roll_up_sync_job($p)" >actual &&
    echo partial_success >expect &&
    test_cmp expect actual
'

test_expect_success 'the unique index refuses a second processing chunk of an ordered job' '
    test_when_finished drain &&
    p=$(new_job "'\''push'\'', 20, 10, NULL, '\''{}'\'', 100, true") &&
    claim w1 >/dev/null &&
    test_must_fail q "UPDATE chunked_sync_jobs SET status = '\''processing'\''
                      WHERE parent_id = $p AND chunk_index = 1" 2>err &&
    test_grep "chunked_sync_jobs_one_ordered" err
'

# worker NAME N: N rounds of a claim, then its completion in a statement of
# its own, in one psql session; "chunk_id|index" per chunk completed goes
# to NAME.log (a round that found nothing to claim completes nothing).
worker() {
    {
        echo "SET search_path = sync, pg_catalog;"
        worker_i_=0
        while test $worker_i_ -lt "$2"; do
            echo "\\set cid 0"
            echo "\\set tok 0"
            echo "SELECT id AS cid, lease_token AS tok FROM claim_next_chunk_job('$1', 60) \\gset"
            echo "SELECT id, chunk_index FROM chunked_sync_jobs WHERE id = :cid AND complete_chunk_job(:cid, :tok);"
            worker_i_=$((worker_i_ + 1))
        done
    } | psql -X -qAt 2>/dev/null >"$1.log"
}

test_expect_success '4 sessions over 200 chunks: each chunk completed exactly once' '
    p=$(new_job "'\''push'\'', 200, 1") &&
    { worker a 80 & worker b 80 & worker c 80 & worker d 80 & wait; } &&
    cat a.log b.log c.log d.log | cut -d"|" -f1 | sort -n >done &&
    test_line_count = 200 done &&
    sort -u -n done >unique &&
    test_cmp done unique &&
    q "SELECT count(*) FILTER (WHERE status = '\''completed'\''), max(attempts)
       FROM chunked_sync_jobs WHERE parent_id = $p" >actual &&
    echo "200|1" >expect &&
    test_cmp expect actual &&
    q "SELECT roll_up_sync_job($p)" >actual &&
    echo completed >expect &&
    test_cmp expect actual
'

test_expect_success '4 sessions over an ordered job: claims never overlap nor reorder' '
    p=$(new_job "'\''push'\'', 60, 1, NULL, '\''{}'\'', 100, true") &&
    rounds=0 &&
    until test "$(job $p status)" = completed
    do
        rounds=$((rounds + 1)) &&
        test $rounds -le 20 &&
        { worker a 60 & worker b 60 & worker c 60 & worker d 60 & wait; } &&
        cat a.log b.log c.log d.log >>all.log &&
        q "SELECT roll_up_sync_job($p)" >/dev/null || return 1
    done &&
    test_line_count = 60 all.log &&
    q "SELECT bool_and(prev_done <= started_at)
       FROM (SELECT started_at, lag(completed_at) OVER (ORDER BY chunk_index) AS prev_done
             FROM chunked_sync_jobs WHERE parent_id = $p) s
       WHERE prev_done IS NOT NULL" >actual &&
    echo t >expect &&
    test_cmp expect actual
'

test_expect_success 'prune deletes ended jobs with their chunks' '
    q "SELECT count(*) FROM sync_queue" >before &&
    q "SELECT prune_sync_jobs(now() + interval '\''1 s'\'')" >n &&
    test "$(cat n)" -ge 1 &&
    q "SELECT count(*) FROM sync_queue WHERE status IN ('\''completed'\'', '\''partial_success'\'',
       '\''failed'\'', '\''cancelled'\'')" >actual &&
    echo 0 >expect &&
    test_cmp expect actual &&
    q "SELECT count(*) FROM chunked_sync_jobs c WHERE NOT EXISTS
       (SELECT 1 FROM sync_queue q WHERE q.id = c.parent_id)" >actual &&
    test_cmp expect actual
'

test_done
