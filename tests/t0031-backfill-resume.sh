#!/bin/sh
# Test bodies are single-quoted and use variables and functions defined here:
# shellcheck disable=SC2016,SC2034,SC2317
test_description='backfill-sync stops cleanly, resumes where it stopped, and survives crashes, rivals and a lost database'
# shellcheck source=tests/test-lib.sh
. "$(dirname "$0")/test-lib.sh"

start_postgres
start_emulator --page-cap 100 --rate-limit 0

cat >cw.conf <<'EOF'
[database]
retries = 4
[mailerlite]
rate_limit = 0
page_size = 100
[table]
name = public.clients
[fields]
first_name = name
last_name = last_name
company = company
[sync]
batch_size = 100
EOF

# wait_for_batch N PID: until the run of process PID has committed N
# batches (it is then in the middle of its walk), polling the database. The
# status names its runner, so an earlier run's figures never count.
wait_for_batch() {
    wfb_tries=0
    while :; do
        wfb_now=$(psql_q "SELECT coalesce((value->'backfill'->>'currentBatch')::int, 0)
                          FROM sync.sync_state WHERE key = 'sync_status'
                          AND value->'backfill'->>'runner' LIKE 'pid $2 on %'" 2>/dev/null)
        test "${wfb_now:-0}" -ge "$1" && return 0
        if ! kill -0 "$2" 2>/dev/null; then
            echo "process $2 ended before its batch $1" >&2
            return 1
        fi
        wfb_tries=$((wfb_tries + 1))
        if test "$wfb_tries" -gt 300; then
            echo "currentBatch of pid $2 never reached $1 (at ${wfb_now:-nothing})" >&2
            return 1
        fi
        sleep 0.1
    done
}

# slow_walk MS: every list page takes MS milliseconds more.
slow_walk() {
    ml_control DELETE faults >/dev/null &&
    ml_control POST faults '{"rules":[{"method":"GET","path_prefix":"/api/subscribers",
                                      "kind":"latency","ms":'"$1"',"count":-1}]}' >/dev/null
}

backfill_status() {
    psql_q "SELECT value->'backfill'->>'$1' FROM sync.sync_state WHERE key = 'sync_status'"
}

test_expect_success 'setup: 3,000 subscribers in 30 pages, 2,000 of them in the table' '
    crosswalk-migrate -q -c cw.conf &&
    load_sample 3000 3000 2000 &&
    expected_crosswalk >expected-crosswalk &&
    test_line_count = 2000 expected-crosswalk
'

test_expect_success 'SIGTERM pauses the run: exit 3, cursor saved, nothing half-written' '
    slow_walk 60 &&
    ml_control DELETE log &&
    { backfill-sync -c cw.conf >out.json 2>err & pid=$!; } &&
    wait_for_batch 3 $pid &&
    kill -TERM $pid &&
    test_expect_code 3 wait $pid &&
    test_json_eq out.json .status paused &&
    test_json_eq out.json .done false &&
    jq -e ".nextCursor | type == \"string\"" out.json &&
    test_grep "signal" out.json &&
    backfill_status status >actual &&
    echo paused >expect &&
    test_cmp expect actual &&
    backfill_status paused >actual &&
    echo true >expect &&
    test_cmp expect actual &&
    psql_q "SELECT count(*) FROM sync.sync_state WHERE key = '\''cursor:backfill'\''" >actual &&
    echo 1 >expect &&
    test_cmp expect actual &&
    links_are_whole &&
    backfill_status recordsDone >records-done &&
    test "$(cat records-done)" -ge 300
'

test_expect_success 'the next run resumes from the cursor and converges' '
    ml_control DELETE faults &&
    ml_control DELETE log &&
    backfill-sync -c cw.conf >out.json 2>err &&
    test_grep "resuming backfill run" err &&
    test_json_eq out.json .status completed &&
    list_pages >pages &&
    pages_left=$((30 - $(cat records-done) / 100)) &&
    test "$(wc -l <pages)" -le $((pages_left + 1)) &&
    test "$(wc -l <pages)" -ge "$pages_left" &&
    crosswalk_rows >actual &&
    test_cmp expected-crosswalk actual &&
    links_are_whole &&
    psql_q "SELECT count(DISTINCT run_id), count(*) FILTER (WHERE action = '\''only_in_a'\''),
                   count(*) FILTER (WHERE action = '\''only_in_b'\'') FROM sync.sync_log" >actual &&
    echo "1|1000|1000" >expect &&
    test_cmp expect actual &&
    psql_q "SELECT string_agg(action, '\'','\'' ORDER BY id) FROM sync.sync_log
            WHERE action LIKE '\''job_%'\''" >actual &&
    echo job_started,job_paused,job_resumed,job_completed >expect &&
    test_cmp expect actual &&
    backfill_status recordsDone >actual &&
    echo 3000 >expect &&
    test_cmp expect actual
'

test_expect_success '--max-duration stops with exit 3, and a re-run finishes the job' '
    slow_walk 300 &&
    test_expect_code 3 backfill-sync -c cw.conf --restart --max-duration 1 >out.json &&
    test_json_eq out.json .status paused &&
    test_grep "max-duration" out.json &&
    ml_control DELETE faults &&
    backfill-sync -c cw.conf >out.json &&
    test_json_eq out.json .done true &&
    crosswalk_rows >actual &&
    test_cmp expected-crosswalk actual
'

test_expect_success 'after kill -9 a rerun refuses a run that looks alive (75)' '
    psql_q "TRUNCATE sync.integration_crosswalk CASCADE; TRUNCATE sync.sync_log" &&
    slow_walk 60 &&
    { backfill-sync -c cw.conf --restart >/dev/null 2>&1 & pid=$!; } &&
    wait_for_batch 3 $pid &&
    kill -KILL $pid &&
    test_expect_code 137 wait $pid &&
    backfill_status status >actual &&
    echo running >expect &&
    test_cmp expect actual &&
    links_are_whole &&
    test_expect_code 75 backfill-sync -c cw.conf >out.json 2>err &&
    test_must_be_empty out.json &&
    test_grep "may still be running" err &&
    test_grep "force-resume" err
'

test_expect_success '--force-resume does not take over a run updated under 90 s ago' '
    test_expect_code 75 backfill-sync -c cw.conf --force-resume >out.json 2>err &&
    test_grep "may still be running" err &&
    test_expect_code 75 backfill-sync -c cw.conf --restart 2>err &&
    test_grep "may still be running" err
'

test_expect_success 'once stale, the run is refused without --force-resume' '
    psql_q "UPDATE sync.sync_state SET value = jsonb_set(value, '\''{backfill,lastUpdatedAt}'\'',
              to_jsonb(to_char(now() AT TIME ZONE '\''UTC'\'' - interval '\''2 minutes'\'',
                               '\''YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'\'')))
            WHERE key = '\''sync_status'\''" &&
    test_expect_code 75 backfill-sync -c cw.conf 2>err &&
    test_grep "stopped updating its progress" err &&
    test_grep "updated sync_status.backfill.lastUpdatedAt 1[0-9][0-9] s ago" err &&
    test_grep "take it over with --force-resume" err &&
    test_expect_code 64 backfill-sync -c cw.conf --force-resume --restart 2>err &&
    test_grep "cannot be combined" err
'

test_expect_success '--force-resume takes a stale run over and converges' '
    ml_control DELETE faults &&
    backfill-sync -c cw.conf --force-resume >out.json 2>err &&
    test_grep "taking over" err &&
    test_grep "resuming backfill run" err &&
    test_json_eq out.json .done true &&
    crosswalk_rows >actual &&
    test_cmp expected-crosswalk actual &&
    links_are_whole &&
    psql_q "SELECT count(*) FROM sync.sync_log WHERE action = '\''only_in_a'\''" >actual &&
    echo 1000 >expect &&
    test_cmp expect actual
'

test_expect_success 'a second run while one holds the lock exits 75 naming the holder' '
    slow_walk 60 &&
    { backfill-sync -c cw.conf --restart >first.json 2>first.err & pid=$!; } &&
    wait_for_batch 1 $pid &&
    test_expect_code 75 backfill-sync -c cw.conf --restart >out.json 2>err &&
    test_grep "another run holds the lock" err &&
    test_grep "pid [0-9][0-9]* (backfill-sync)" err &&
    kill -TERM $pid &&
    test_expect_code 3 wait $pid
'

test_expect_success 'a lost database connection is re-opened and the run goes on' '
    psql_q "TRUNCATE sync.integration_crosswalk CASCADE; TRUNCATE sync.sync_log" &&
    slow_walk 60 &&
    { backfill-sync -c cw.conf --restart >out.json 2>err & pid=$!; } &&
    wait_for_batch 3 $pid &&
    psql_q "SELECT count(pg_catalog.pg_terminate_backend(pid)) > 0 FROM pg_stat_activity
            WHERE application_name = '\''backfill-sync'\''" >killed &&
    echo t >expect &&
    test_cmp expect killed &&
    wait $pid &&
    test_grep "lost the database connection" err &&
    test_json_eq out.json .done true &&
    crosswalk_rows >actual &&
    test_cmp expected-crosswalk actual &&
    links_are_whole
'

test_expect_success 'a database gone for good ends in 69 with the cursor of the last batch saved' '
    psql_q "TRUNCATE sync.integration_crosswalk CASCADE; TRUNCATE sync.sync_log" &&
    sed "s/^retries = 4/retries = 1/" cw.conf >fragile.conf &&
    slow_walk 60 &&
    { backfill-sync -c fragile.conf --restart >out.json 2>err & pid=$!; } &&
    wait_for_batch 3 $pid &&
    "$TEST_ROOT/scripts/pg-tmp" stop "$TRASH/pg" &&
    test_expect_code 69 wait $pid &&
    test_json_eq out.json .status failed &&
    test_grep "run backfill-sync again to resume" err &&
    start_postgres &&
    psql_q "SELECT value->>'\''c'\'' IS NOT NULL FROM sync.sync_state WHERE key = '\''cursor:backfill'\''" >actual &&
    echo t >expect &&
    test_cmp expect actual &&
    links_are_whole &&
    ml_control DELETE faults &&
    psql_q "UPDATE sync.sync_state SET value = jsonb_set(value, '\''{backfill,lastUpdatedAt}'\'',
              '\''\"2026-01-01T00:00:00.000Z\"'\'') WHERE key = '\''sync_status'\''" &&
    backfill-sync -c cw.conf --force-resume >out.json &&
    test_json_eq out.json .done true &&
    crosswalk_rows >actual &&
    test_cmp expected-crosswalk actual
'

test_done
