#!/bin/sh
# Test bodies are single-quoted and use variables and functions defined here:
# shellcheck disable=SC2016,SC2034,SC2317
test_description='enterprise-sync stops on a budget, resumes, survives kill -9 and rivals, and converges to what one uninterrupted run gives'
# shellcheck source=tests/test-lib.sh
. "$(dirname "$0")/test-lib.sh"

start_postgres
start_emulator --page-cap 500 --rate-limit 0 --import-limit 0

# batch_size 20: a set's B writes go out in several /batch requests, and
# the A phase works 20 rows a set, so a stop can land between them.
cat >cw.conf <<'EOF'
[mailerlite]
rate_limit = 0
import_rate_limit = 0
page_size = 500
retries = 2
[table]
name = public.clients
[fields]
first_name = name
last_name = last_name
company = company
[sync]
batch_size = 20
EOF

# reset_sides N SHARED: both sides empty and crosswalk's schema fresh, then
# N contacts on each side, SHARED of them on both (scripts/sample-data:
# every 7th shared contact drifted in B, seeded now, so B is newer), and
# edits on both sides with fixed times, so that the outcome of the
# "newest" policies is the same whenever the data is set up:
#   - A: every 11th shared contact gets a new company, at 2026-12-01
#     (newer than B: pushed);
#   - B: every 13th shared contact gets a new last name, at 2027-01-01
#     (newer than A: pulled);
#   - B: every 17th shared contact gets a new first name at 2027-01-02.
reset_sides() {
    ml_control POST reset >/dev/null &&
    ml_control POST config '{"page_cap": 500, "rate_limit": 0, "import_limit": 0}' >/dev/null &&
    psql_q "SET client_min_messages = warning;
            DROP SCHEMA IF EXISTS sync CASCADE; DROP TABLE IF EXISTS public.clients" &&
    crosswalk-migrate -q -c cw.conf &&
    load_sample "$1" "$1" "$2" &&
    psql_q "UPDATE public.clients SET company = 'A edit ' || i, updated_at = '2026-12-01 00:00:00+00'
            FROM generate_series(0, $2 - 1) i
            WHERE i % 11 = 1 AND id = md5('client-' || i)::uuid" &&
    awk -v shared="$2" 'BEGIN {
        for (i = 0; i < shared; i++) {
            if (i % 13 == 2)
                printf "{\"email\":\"contact%d@example.com\",\"fields\":{\"last_name\":\"B edit %d\"},\"updated_at\":\"2027-01-01 00:00:00\"}\n", i, i
            if (i % 17 == 4)
                printf "{\"email\":\"contact%d@example.com\",\"fields\":{\"name\":\"B name %d\"},\"updated_at\":\"2027-01-02 00:00:00\"}\n", i, i
        }
    }' >"$TRASH/.edits.ndjson" &&
    ml_control POST subscribers @"$TRASH/.edits.ndjson" >/dev/null &&
    ml_control DELETE log >/dev/null
}

# dump_sides PREFIX: PREFIX-a (the table, sorted, without its updated_at,
# which a pull sets to the time of the write), PREFIX-b (every subscriber
# without its id and timestamps, which differ from one set-up to the next,
# sorted) and PREFIX-x (the crosswalk's A keys and emails).
dump_sides() {
    psql_q "SELECT id, email, first_name, last_name, company FROM public.clients ORDER BY id" \
        >"$1-a" &&
    ml_control GET subscribers >"$TRASH/.dump.jsonl" &&
    jq -c -S "del(.id, .created_at, .updated_at, .subscribed_at, .unsubscribed_at,
                  .opted_in_at) | .groups |= (map(.name) | sort)" "$TRASH/.dump.jsonl" |
        sort >"$1-b" &&
    psql_q "SELECT a_id, email FROM sync.integration_crosswalk" | sort >"$1-x"
}

# same_as PREFIX: both sides and the crosswalk are as in the dumps PREFIX-*.
same_as() {
    dump_sides now &&
    test_cmp "$1-a" now-a &&
    test_cmp "$1-b" now-b &&
    test_cmp "$1-x" now-x
}

# sync_rounds MAX ARGS...: run enterprise-sync ARGS until it exits 0, at
# most MAX times; each run's output in round-N.json and round-N.err, and
# the number of runs in $rounds. Any exit but 0 and 3 stops it.
sync_rounds() {
    sr_max=$1
    shift
    rounds=0
    while :; do
        rounds=$((rounds + 1))
        enterprise-sync -c cw.conf "$@" >round-$rounds.json 2>round-$rounds.err
        sr_code=$?
        test "$sr_code" = 0 && return 0
        if test "$sr_code" != 3; then
            echo "round $rounds exited $sr_code" >&2
            cat round-$rounds.err >&2
            return 1
        fi
        if test "$rounds" -ge "$sr_max"; then
            echo "still not done after $rounds rounds" >&2
            return 1
        fi
    done
}

# full_status MEMBER: sync_status.fullSync.MEMBER.
full_status() {
    psql_q "SELECT value->'fullSync'->>'$1' FROM sync.sync_state WHERE key = 'sync_status'"
}

# wait_until PID 'SQL condition': until the condition (on fullSync of the
# run of process PID, as f) holds, polling the database.
wait_until() {
    wu_tries=0
    while :; do
        wu_now=$(psql_q "SELECT ($2) FROM (SELECT value->'fullSync' AS f FROM sync.sync_state
                         WHERE key = 'sync_status') s
                         WHERE f->>'runner' LIKE 'pid $1 on %'" 2>/dev/null)
        test "$wu_now" = t && return 0
        if ! kill -0 "$1" 2>/dev/null; then
            echo "process $1 ended before: $2" >&2
            return 1
        fi
        wu_tries=$((wu_tries + 1))
        if test "$wu_tries" -gt 400; then
            echo "process $1 never got to: $2" >&2
            full_status recordsProcessed >&2
            return 1
        fi
        sleep 0.05
    done
}

# batches_done: /api/batch requests answered since the log was cleared.
batches_done() {
    ml_control GET log | jq -s '[.[] | select(.path == "/api/batch" and .status == 200)] | length'
}

slow_batches() {
    ml_control DELETE faults >/dev/null &&
    ml_control POST faults '{"rules":[{"method":"POST","path_prefix":"/api/batch",
                                      "kind":"latency","ms":'"$1"',"count":-1}]}' >/dev/null
}

no_duplicates_in_b() {
    ml_control GET subscribers | jq -r .email | sort | uniq -d >"$TRASH/.dups" &&
    test_must_be_empty "$TRASH/.dups"
}

# ---- stops on a budget: --max-records, --max-duration, --cursor

test_expect_success 'setup: one uninterrupted run over 1,500 contacts a side' '
    reset_sides 1500 1200 &&
    enterprise-sync -c cw.conf --max-records 100000 --max-duration 0 >out.json 2>err &&
    test_json_eq out.json .done true &&
    test_json_eq out.json .nextCursor null &&
    test_json_eq out.json .errors 0 &&
    test_json_eq out.json .recordsProcessed 1800 &&
    test_json_eq out.json .onlyInB 300 &&
    test_json_eq out.json .created.inB 300 &&
    test_json_eq out.json ".updated.toB > 0 and .updated.toA > 0" true &&
    dump_sides small &&
    test_line_count = 1500 small-x &&
    expected_crosswalk >expect &&
    crosswalk_rows >actual &&
    test_cmp expect actual &&
    links_are_whole &&
    no_duplicates_in_b &&
    grep -c "A edit" small-b >pushed &&
    test "$(cat pushed)" -gt 80 &&
    grep -c "B edit" small-a >pulled &&
    test "$(cat pulled)" -gt 80
'

test_expect_success '--max-records stops with exit 3, done false and a nextCursor' '
    reset_sides 1500 1200 &&
    test_expect_code 3 enterprise-sync -c cw.conf --max-records 400 >out.json 2>err &&
    test_json_eq out.json .done false &&
    test_json_eq out.json ".nextCursor | type" string &&
    test_json_eq out.json .recordsProcessed 400 &&
    test_grep "max-records" out.json &&
    psql_q "SELECT count(*) FROM sync.sync_state WHERE key = '\''cursor:enterprise'\''" >actual &&
    echo 1 >expect &&
    test_cmp expect actual &&
    links_are_whole
'

test_expect_success 'plain re-runs resume and end as the uninterrupted run did' '
    sync_rounds 12 --max-records 400 &&
    test "$rounds" -ge 4 &&
    test_json_eq round-$rounds.json .done true &&
    test_json_eq round-$rounds.json .nextCursor null &&
    test_grep "resuming pass" round-1.err &&
    jq -s "map(.recordsProcessed) | add" out.json round-*.json >total &&
    echo 1800 >expect &&
    test_cmp expect total &&
    same_as small &&
    links_are_whole &&
    no_duplicates_in_b &&
    psql_q "SELECT count(*) FROM sync.sync_state WHERE key = '\''cursor:enterprise'\''" >actual &&
    echo 0 >expect &&
    test_cmp expect actual
'

test_expect_success '--max-duration stops with exit 3; re-runs end as the uninterrupted run did' '
    reset_sides 1500 1200 &&
    slow_batches 150 &&
    test_expect_code 3 enterprise-sync -c cw.conf --max-duration 1 --max-records 100000 \
        >out.json 2>err &&
    test_json_eq out.json .done false &&
    test_json_eq out.json ".nextCursor | type" string &&
    test_grep "max-duration" out.json &&
    test_json_eq out.json ".recordsProcessed < 1800" true &&
    sync_rounds 30 --max-duration 1 --max-records 100000 &&
    test "$rounds" -ge 2 &&
    ml_control DELETE faults &&
    same_as small &&
    links_are_whole &&
    no_duplicates_in_b
'

test_expect_success 'each nextCursor given back with --cursor resumes there' '
    reset_sides 1500 1200 &&
    test_expect_code 3 enterprise-sync -c cw.conf --max-records 350 >cur.json &&
    n=1 &&
    while test "$n" -lt 15
    do
        jq -r .nextCursor cur.json >cursor &&
        # Only the cursor given on the command line can say where to go on.
        psql_q "DELETE FROM sync.sync_state WHERE key = '\''cursor:enterprise'\''" &&
        enterprise-sync -c cw.conf --max-records 350 --cursor "$(cat cursor)" >cur.json 2>err
        code=$? &&
        n=$((n + 1)) &&
        if test "$code" = 0
        then
            break
        fi &&
        test "$code" = 3 &&
        test_grep "resuming pass" err || return 1
    done &&
    test "$code" = 0 &&
    test "$n" -ge 5 &&
    test_json_eq cur.json .done true &&
    same_as small &&
    links_are_whole &&
    no_duplicates_in_b
'

test_expect_success 'SIGTERM mid-run: exit 3, cursor saved, the next run finishes' '
    reset_sides 1500 1200 &&
    slow_batches 200 &&
    { enterprise-sync -c cw.conf --max-records 100000 --max-duration 0 >out.json 2>err & pid=$!; } &&
    wait_until $pid "(f->>'\''recordsProcessed'\'')::int >= 500" &&
    kill -TERM $pid &&
    test_expect_code 3 wait $pid &&
    test_json_eq out.json .done false &&
    test_json_eq out.json ".nextCursor | type" string &&
    test_grep "signal" out.json &&
    psql_q "SELECT count(*) FROM sync.sync_state WHERE key = '\''cursor:enterprise'\''" >actual &&
    echo 1 >expect &&
    test_cmp expect actual &&
    full_status status >actual &&
    echo paused >expect &&
    test_cmp expect actual &&
    links_are_whole &&
    ml_control DELETE faults &&
    enterprise-sync -c cw.conf --max-records 100000 >out2.json 2>err2 &&
    test_grep "resuming pass" err2 &&
    test_json_eq out2.json .done true &&
    same_as small &&
    links_are_whole &&
    no_duplicates_in_b
'

test_expect_success 'after a full pass a new pass only lists subscribers' '
    ml_control DELETE log &&
    enterprise-sync -c cw.conf --max-records 100000 >again.json 2>err &&
    test_json_eq again.json .done true &&
    test_json_eq again.json .updatesApplied 0 &&
    test_json_eq again.json .created "{\"inA\":0,\"inB\":0}" &&
    test_json_eq again.json .linked 0 &&
    test_json_eq again.json .errors 0 &&
    test_json_eq again.json .unchanged 1500 &&
    ml_control GET log >log.jsonl &&
    jq -c "select(.method != \"GET\" or .path != \"/api/subscribers\") | [.method, .path]" \
        log.jsonl >other &&
    test_must_be_empty other &&
    list_pages log.jsonl >pages &&
    test_line_count = 4 pages &&
    same_as small
'

# ---- kill -9 at any point loses nothing

test_expect_success 'setup: one uninterrupted run over 5,000 contacts a side' '
    reset_sides 5000 4500 &&
    enterprise-sync -c cw.conf --max-records 100000 --max-duration 0 >out.json 2>err &&
    test_json_eq out.json .done true &&
    test_json_eq out.json .errors 0 &&
    test_json_eq out.json .created.inB 500 &&
    dump_sides big &&
    test_line_count = 5000 big-x &&
    links_are_whole &&
    no_duplicates_in_b
'

test_expect_success 'kill -9 after the first page is committed' '
    reset_sides 5000 4500 &&
    slow_batches 150 &&
    { enterprise-sync -c cw.conf --max-records 100000 --max-duration 0 >/dev/null 2>&1 & pid=$!; } &&
    wait_until $pid "(f->>'\''recordsProcessed'\'')::int >= 500" &&
    kill -KILL $pid &&
    test_expect_code 137 wait $pid &&
    links_are_whole &&
    psql_q "SELECT count(*) FROM sync.sync_state WHERE key = '\''cursor:enterprise'\''" >actual &&
    echo 1 >expect &&
    test_cmp expect actual
'

test_expect_success 'kill -9 in the middle of a set: B written, nothing committed' '
    ml_control DELETE log &&
    slow_batches 700 &&
    # One request a /batch, so that the set in hand spans many batches and
    # is still writing when two of them are done.
    { enterprise-sync -c cw.conf --max-records 100000 --max-duration 0 --batch-size 1 \
        >/dev/null 2>&1 & pid=$!; } &&
    n=0 &&
    while test "$(batches_done)" -lt 2
    do
        n=$((n + 1)) &&
        test "$n" -lt 200 &&
        sleep 0.05 || return 1
    done &&
    kill -KILL $pid &&
    test_expect_code 137 wait $pid &&
    # The set in hand was not committed, yet some of its B writes were made.
    psql_q "SELECT count(*) FROM sync.sync_log WHERE run_id = (SELECT run_id FROM sync.sync_log
            WHERE action = '\''job_started'\'' ORDER BY id DESC LIMIT 1) AND action <> '\''job_started'\''" >actual &&
    echo 0 >expect &&
    test_cmp expect actual &&
    ml_control GET log >log.jsonl &&
    jq -s "[.[] | select(.path == \"/api/batch\" and .status == 200)] | length" log.jsonl >n &&
    test "$(cat n)" -ge 2 &&
    links_are_whole
'

test_expect_success 'kill -9 during the A phase' '
    slow_batches 150 &&
    { enterprise-sync -c cw.conf --max-records 100000 --max-duration 0 >/dev/null 2>&1 & pid=$!; } &&
    wait_until $pid "f->>'\''phase'\'' = '\''a'\'' AND (SELECT value->>'\''ak'\'' FROM sync.sync_state
                     WHERE key = '\''cursor:enterprise'\'') IS NOT NULL" &&
    kill -KILL $pid &&
    test_expect_code 137 wait $pid &&
    links_are_whole
'

test_expect_success 'after the kills, re-runs converge to the uninterrupted run'\''s state' '
    ml_control DELETE faults &&
    sync_rounds 5 --max-records 100000 --max-duration 0 &&
    test_json_eq round-$rounds.json .done true &&
    same_as big &&
    no_duplicates_in_b &&
    links_are_whole &&
    expected_crosswalk >expect &&
    crosswalk_rows >actual &&
    test_cmp expect actual
'

# ---- one run at a time

test_expect_success 'a second run while one holds the lock exits 75 naming the holder' '
    psql_q "UPDATE public.clients SET company = '\''rival '\'' || left(id::text, 8), updated_at = now()
            WHERE email LIKE '\''contact1%'\''" &&
    slow_batches 500 &&
    { enterprise-sync -c cw.conf --restart --max-records 100000 >first.json 2>first.err & pid=$!; } &&
    wait_until $pid "f->>'\''status'\'' = '\''running'\''" &&
    test_expect_code 75 enterprise-sync -c cw.conf >out.json 2>err &&
    test_must_be_empty out.json &&
    test_grep "another run holds the lock" err &&
    test_grep "pid [0-9][0-9]* (enterprise-sync)" err &&
    kill -TERM $pid &&
    test_expect_code 3 wait $pid &&
    ml_control DELETE faults
'

test_done
