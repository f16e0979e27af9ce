#!/bin/sh
# Test bodies are single-quoted and use variables and functions defined here:
# shellcheck disable=SC2016,SC2034,SC2317
test_description='chunk-worker: workers, leases, rescue, order, retries, graceful stop, commands'
# shellcheck source=tests/test-lib.sh
. "$(dirname "$0")/test-lib.sh"

start_postgres

printf '[mailerlite]\nrate_limit = 0\n' >cw.conf

# cw ARGS: chunk-worker with the test's config.
cw() {
    chunk-worker -c "$TRASH/cw.conf" "$@"
}

# q SQL: psql_q with the bookkeeping schema first on the path.
q() {
    psql_q "SET search_path = sync, pg_catalog; $1"
}

# enqueue ARGS: a noop job; its id on stdout.
enqueue() {
    cw enqueue noop "$@" >"$TRASH/enqueued.json" &&
    jq -r .id "$TRASH/enqueued.json"
}

# job ID COLUMNS / chunks_of ID COLUMNS (one line per chunk, by index)
job() {
    q "SELECT $2 FROM sync_queue WHERE id = $1"
}
chunks_of() {
    q "SELECT $2 FROM chunked_sync_jobs WHERE parent_id = $1 ORDER BY chunk_index"
}

# drain: cancel every job left, so that the next test starts empty.
drain() {
    q "SELECT count(cancel_sync_job(id)) FROM sync_queue
       WHERE status IN ('pending', 'processing')" >/dev/null
}

# start_worker NAME ARGS: `chunk-worker run ARGS` in the background,
# stdout in NAME.json, stderr in NAME.err; its pid in NAME.pid.
start_worker() {
    name_=$1
    shift
    # the program itself in the background, not a shell around it: the
    # signals of the tests are for the worker
    chunk-worker -c "$TRASH/cw.conf" run "$@" >"$TRASH/$name_.json" 2>"$TRASH/$name_.err" &
    echo $! >"$TRASH/$name_.pid"
}

# wait_worker NAME: its exit status in NAME.rc.
wait_worker() {
    wait "$(cat "$TRASH/$1.pid")"
    echo $? >"$TRASH/$1.rc"
}

# start_on_chunk NAME ID ARGS: start_worker NAME ARGS, and wait until a
# chunk of job ID is in its hands.
start_on_chunk() {
    soc_name_=$1
    soc_id_=$2
    shift 2
    start_worker "$soc_name_" "$@" &&
    psql_await "SELECT EXISTS (SELECT 1 FROM sync.chunked_sync_jobs
                WHERE parent_id = $soc_id_ AND status = 'processing')"
}

# term_mid_chunk NAME ID ARGS: a worker (ARGS) signalled with SIGTERM once
# a chunk of job ID is in its hands; it must exit 3.
term_mid_chunk() {
    tmc_name_=$1
    start_on_chunk "$@" &&
    kill -TERM "$(cat "$tmc_name_.pid")" &&
    wait_worker "$tmc_name_" &&
    test "$(cat "$tmc_name_.rc")" = 3
}

test_expect_success 'setup' '
    crosswalk-migrate -q -c cw.conf
'

test_expect_success 'enqueue prints the job; status shows it pending' '
    test_when_finished drain &&
    id=$(enqueue --chunks 4 --param items=10) &&
    test_json_eq enqueued.json "[.kind, .chunks, .total_items, .ordered]" "[\"noop\",4,10,false]" &&
    cw status "$id" >status.json &&
    test_json_eq status.json "[.status, .chunks.pending, .total_chunks]" "[\"pending\",4,4]" &&
    cw status >all.json &&
    test_json_eq all.json "[.jobs[] | select(.id == $id) | .status]" "[\"pending\"]"
'

test_expect_success '4 workers over 200 chunks complete each chunk exactly once' '
    id=$(enqueue --chunks 200 --param items=200,sleep_ms=10) &&
    cw run --until-empty --concurrency 4 --kinds noop >run.json 2>run.err &&
    test_json_eq run.json "[.workers, .claimed, .completed, .failed, .lost, .end]" \
        "[4,200,200,0,0,\"empty\"]" &&
    chunks_of "$id" "status, attempts" | sort | uniq -c | sed "s/^ *//" >actual &&
    echo "200 completed|1" >expect &&
    test_cmp expect actual &&
    job "$id" "status, completed_chunks, progress, items_done" >actual &&
    echo "completed|200|100.00|200" >expect &&
    test_cmp expect actual &&
    # the work was shared
    test "$(q "SELECT count(DISTINCT worker_id) FROM chunked_sync_jobs
               WHERE parent_id = $id")" -ge 2 &&
    # one ending of the job: the report says so once
    test "$(grep -c "job $id ended: completed" run.err)" = 1
'

test_expect_success 'ordered claims never overlap nor reorder, with 3 workers' '
    id=$(enqueue --ordered --chunks 8 --param items=8,sleep_ms=150) &&
    cw run --until-empty --concurrency 3 --kinds noop >run.json 2>run.err &&
    test_json_eq run.json "[.completed, .failed]" "[8,0]" &&
    # by start time the chunks come in index order, each after the last ended
    q "SELECT chunk_index FROM chunked_sync_jobs WHERE parent_id = $id
       ORDER BY started_at" >actual &&
    test_write_lines 0 1 2 3 4 5 6 7 >expect &&
    test_cmp expect actual &&
    q "SELECT count(*) FROM chunked_sync_jobs c JOIN chunked_sync_jobs p
         ON p.parent_id = c.parent_id AND p.chunk_index = c.chunk_index - 1
       WHERE c.parent_id = $id AND c.started_at < p.completed_at" >actual &&
    echo 0 >expect &&
    test_cmp expect actual &&
    job "$id" "status, locked_by IS NULL" >actual &&
    echo "completed|t" >expect &&
    test_cmp expect actual
'

test_expect_success 'kill -9 of a worker mid-chunk: the chunk is rescued and done by another' '
    id=$(enqueue --chunks 6 --param items=6,sleep_ms=700) &&
    start_worker doomed --kinds noop --lease 3 &&
    psql_await "SELECT EXISTS (SELECT 1 FROM sync.chunked_sync_jobs
                WHERE parent_id = $id AND chunk_index = 3 AND status = '\''processing'\'')" &&
    kill -9 "$(cat doomed.pid)" &&
    wait_worker doomed &&
    test "$(cat doomed.rc)" = 137 &&
    # the legacy system stopped here for good: chunk 3 in processing
    chunks_of "$id" "status" | sed -n 4p >actual &&
    echo processing >expect &&
    test_cmp expect actual &&
    cw run --until-empty --kinds noop --rescue-interval 1 >run.json 2>run.err &&
    test_json_eq run.json "[.rescued, .completed, .failed]" "[1,3,0]" &&
    q "SELECT status, attempts, last_error LIKE '\''lease expired (owner %:%:%:%)'\''
       FROM chunked_sync_jobs WHERE parent_id = $id AND chunk_index = 3" >actual &&
    echo "completed|2|t" >expect &&
    test_cmp expect actual &&
    job "$id" status >actual &&
    echo completed >expect &&
    test_cmp expect actual
'

test_expect_success 'a chunk failing every time ends failed after max_attempts, the job partial_success' '
    id=$(enqueue --chunks 4 --max-attempts 2 --param items=4,fail_chunk=2) &&
    test_expect_code 1 cw run --until-empty --kinds noop >run.json 2>run.err &&
    test_json_eq run.json "[.completed, .retried, .failed, .ok]" "[3,1,1,false]" &&
    chunks_of "$id" "chunk_index, status, attempts" >actual &&
    test_write_lines "0|completed|1" "1|completed|1" "2|failed|2" "3|completed|1" >expect &&
    test_cmp expect actual &&
    cw status "$id" >status.json &&
    test_json_eq status.json "[.status, .chunks.failed, .failed_chunks[0].chunk_index]" \
        "[\"partial_success\",1,2]" &&
    test_json_eq status.json ".failed_chunks[0].last_error" \
        "chunk 2 failed on purpose (attempt 2)" &&
    test_grep "attempt 1 of 2.*will retry" run.err &&
    test_grep "failed for good" run.err
'

test_expect_success 'retry puts the failed chunks back, and the job completes' '
    id=$(q "SELECT id FROM sync_queue WHERE status = '\''partial_success'\''") &&
    q "UPDATE sync_queue SET params = params || '\''{\"fail_attempts\": \"1\"}'\''
       WHERE id = $id" &&
    cw retry "$id" >retry.json &&
    test_json_eq retry.json "[.requeued, .status]" "[1,\"processing\"]" &&
    cw run --until-empty --kinds noop >run.json 2>run.err &&
    test_json_eq run.json "[.completed, .failed]" "[1,0]" &&
    job "$id" status >actual &&
    echo completed >expect &&
    test_cmp expect actual
'

test_expect_success 'SIGTERM mid-chunk: the chunk in hand runs out its grace, then goes back unpenalized' '
    test_when_finished drain &&
    id=$(enqueue --chunks 1 --param items=1,sleep_ms=30000) &&
    term_mid_chunk stopped "$id" --kinds noop --grace 1 &&
    test_json_eq stopped.json "[.released, .completed, .end]" "[1,0,\"stopped\"]" &&
    chunks_of "$id" "status, attempts, worker_id IS NULL, run_at <= now()" >actual &&
    echo "pending|0|t|t" >expect &&
    test_cmp expect actual &&
    test_grep "handed back" stopped.err
'

test_expect_success 'SIGTERM: a chunk that ends within the grace completes, and no other is claimed' '
    test_when_finished drain &&
    id=$(enqueue --chunks 3 --param items=3,sleep_ms=1500) &&
    term_mid_chunk graceful "$id" --kinds noop --grace 20 &&
    test_json_eq graceful.json "[.completed, .released, .claimed]" "[1,0,1]" &&
    chunks_of "$id" "status" >actual &&
    test_write_lines completed pending pending >expect &&
    test_cmp expect actual
'

test_expect_success 'a zombie whose lease was taken over can neither heartbeat nor complete' '
    id=$(enqueue --chunks 1 --param items=1,sleep_ms=2500) &&
    start_on_chunk zombie "$id" --kinds noop --lease 2 --until-empty &&
    kill -STOP "$(cat zombie.pid)" &&
    old=$(chunks_of "$id" "lease_token") &&
    psql_await "SELECT lease_expires_at < now() FROM sync.chunked_sync_jobs
                WHERE parent_id = $id" &&
    cw rescue >rescue.json &&
    test_json_eq rescue.json .rescued 1 &&
    q "UPDATE chunked_sync_jobs SET run_at = now() WHERE parent_id = $id" &&
    cw run --until-empty --kinds noop >heir.json 2>heir.err &&
    test_json_eq heir.json .completed 1 &&
    new=$(chunks_of "$id" "lease_token") &&
    test "$new" != "$old" &&
    kill -CONT "$(cat zombie.pid)" &&
    wait_worker zombie &&
    test_json_eq zombie.json "[.lost, .completed]" "[1,0]" &&
    test_grep "lease was lost" zombie.err &&
    # the chunk stays the heir'\''s, done once
    chunks_of "$id" "status, attempts, lease_token" >actual &&
    echo "completed|2|$new" >expect &&
    test_cmp expect actual
'

test_expect_success 'cancel while a chunk runs: it stops at the next heartbeat, writing nothing' '
    id=$(enqueue --chunks 2 --param items=2,sleep_ms=20000) &&
    start_on_chunk cancelled "$id" --kinds noop --lease 3 --until-empty &&
    cw cancel "$id" >cancel.json &&
    test_json_eq cancel.json "[.cancelled, .status]" "[true,\"cancelled\"]" &&
    wait_worker cancelled &&
    test "$(cat cancelled.rc)" = 0 &&
    test_json_eq cancelled.json "[.lost, .completed]" "[1,0]" &&
    chunks_of "$id" "status, result IS NULL" >actual &&
    test_write_lines "cancelled|t" "cancelled|t" >expect &&
    test_cmp expect actual &&
    cw cancel "$id" >again.json &&
    test_json_eq again.json .cancelled false
'

test_expect_success 'progress, current stage and ETA move on the parent as chunks finish' '
    test_when_finished drain &&
    id=$(enqueue --chunks 10 --param items=10,sleep_ms=400) &&
    start_worker slow --kinds noop --until-empty &&
    psql_await "SELECT completed_chunks >= 4 FROM sync.sync_queue WHERE id = $id" &&
    cw status "$id" >mid.json &&
    wait_worker slow &&
    jq -e ".percentage > 0 and .percentage < 100 and .current_stage == \"processing\"
           and .eta_minutes > 0" mid.json &&
    cw status "$id" >end.json &&
    test_json_eq end.json "[.percentage, .current_stage, .eta_minutes, .status]" \
        "[100,\"finished\",0,\"completed\"]"
'

test_expect_success 'the completion webhook reaches a local receiver' '
    start_webhook_receiver &&
    id=$(enqueue --chunks 3 --param items=3 --webhook "$WEBHOOK_URL") &&
    cw run --until-empty --kinds noop >run.json 2>run.err &&
    test_json_eq run.json .webhooks 1 &&
    test "$(wc -l <"$WEBHOOK_LOG")" = 1 &&
    jq -c "(.body | fromjson? // .body) | [.id, .status, .chunks.completed]" "$WEBHOOK_LOG" >actual &&
    echo "[$id,\"completed\",3]" >expect &&
    test_cmp expect actual &&
    job "$id" "webhook_status, webhook_attempts" >actual &&
    echo "sent|1" >expect &&
    test_cmp expect actual
'

test_expect_success 'a worker waiting for work wakes when a job arrives' '
    test_when_finished drain &&
    start_worker idle --kinds noop --max-duration 20 &&
    psql_await "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                WHERE application_name = '\''chunk-worker'\'' AND query LIKE '\''LISTEN%'\'')" &&
    id=$(enqueue --chunks 2 --param items=2) &&
    psql_await "SELECT status = '\''completed'\'' FROM sync.sync_queue WHERE id = $id" &&
    kill -TERM "$(cat idle.pid)" &&
    wait_worker idle &&
    test_json_eq idle.json "[.completed, .end]" "[2,\"stopped\"]"
'

test_expect_success 'a worker outlives a restart of the database' '
    test_when_finished drain &&
    start_worker survivor --kinds noop --max-duration 120 &&
    psql_await "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                WHERE application_name = '\''chunk-worker'\'' AND query LIKE '\''LISTEN%'\'')" &&
    stop_postgres &&
    start_postgres &&
    id=$(enqueue --chunks 2 --param items=2) &&
    psql_await "SELECT status = '\''completed'\'' FROM sync.sync_queue WHERE id = $id" &&
    # both connections came back with their sessions
    psql_await "SELECT count(*) = 2 FROM pg_stat_activity
                WHERE application_name = '\''chunk-worker'\''" &&
    kill -TERM "$(cat survivor.pid)" &&
    wait_worker survivor &&
    test "$(cat survivor.rc)" = 3 &&
    test_json_eq survivor.json .completed 2 &&
    test_grep "reconnected to the database" survivor.err
'

test_expect_success 'prune deletes the jobs that ended, with their chunks' '
    ended=$(q "SELECT count(*) FROM sync_queue WHERE status <> ALL ('\''{pending,processing}'\'')") &&
    test "$ended" -gt 0 &&
    cw prune --older-than 0 >prune.json &&
    test_json_eq prune.json .deleted "$ended" &&
    q "SELECT count(*) FROM sync_queue WHERE status <> ALL ('\''{pending,processing}'\'')" >actual &&
    echo 0 >expect &&
    test_cmp expect actual &&
    cw prune >again.json &&
    test_json_eq again.json .deleted 0
'

test_expect_success '--check-config names the kinds this setup can work' '
    cw --check-config >check.json 2>check.err &&
    test_json_eq check.json "[.ok, .kinds]" "[true,[\"noop\"]]" &&
    test_grep "not taking push chunks: they need an API key" check.err
'

test_expect_success '--dry-run plans and reports, and takes it all back' '
    test_when_finished drain &&
    cw enqueue noop --chunks 3 --param items=3 --dry-run >dry.json &&
    test_json_eq dry.json "[.dryRun, .chunks]" "[true,3]" &&
    q "SELECT count(*) FROM sync_queue WHERE id = $(jq .id dry.json)" >actual &&
    echo 0 >expect &&
    test_cmp expect actual &&
    id=$(enqueue --chunks 2 --param items=2) &&
    cw cancel "$id" -n >dry.json &&
    test_json_eq dry.json "[.cancelled, .status, .dryRun]" "[true,\"cancelled\",true]" &&
    job "$id" status >actual &&
    echo pending >expect &&
    test_cmp expect actual &&
    test_expect_code 64 cw run --dry-run 2>err &&
    test_grep "run has no --dry-run" err
'

test_expect_success 'bad command lines and job ids are refused with the reason' '
    test_expect_code 64 cw 2>err &&
    test_grep "no command given" err &&
    test_expect_code 64 cw launch 2>err &&
    test_grep "unknown command \"launch\"" err &&
    test_expect_code 64 cw enqueue 2>err &&
    test_grep "enqueue takes one kind" err &&
    test_expect_code 64 cw enqueue warp 2>err &&
    test_grep "unknown kind \"warp\"" err &&
    test_grep "backfill, push, noop" err &&
    test_expect_code 64 cw enqueue noop --chunk-size 0 2>err &&
    test_expect_code 64 cw enqueue noop --chunks 2 --chunk-size 5 2>err &&
    test_grep "not both" err &&
    test_expect_code 64 cw enqueue noop --param sleep_ms=soon 2>err &&
    test_grep "sleep_ms must be a whole number" err &&
    test_expect_code 64 cw enqueue noop --param color=red 2>err &&
    test_grep "no parameter \"color\"" err &&
    test_expect_code 64 cw cancel 2>err &&
    test_grep "cancel takes one job id" err &&
    test_expect_code 64 cw status 12x 2>err &&
    test_grep "\"12x\" is not a job id" err &&
    test_expect_code 65 cw status 424242 2>err &&
    test_grep "there is no job 424242" err &&
    test_expect_code 65 cw cancel 424242 2>err &&
    test_expect_code 65 cw retry 424242 2>err &&
    test_expect_code 64 cw run --kinds warp 2>err &&
    test_grep "unknown kind \"warp\"" err &&
    test_expect_code 78 cw run --kinds push 2>err &&
    test_grep "the push kind needs an API key" err &&
    test_expect_code 64 cw rescue now 2>err &&
    test_expect_code 64 cw enqueue noop --webhook ftp://127.0.0.1/hook 2>err &&
    test_grep "must be an http:// or https:// URL" err &&
    test_grep "Try \"chunk-worker --help\"" err &&
    q "SELECT count(*) FROM sync_queue WHERE status = '\''pending'\''" >actual &&
    echo 0 >expect &&
    test_cmp expect actual
'

test_done
