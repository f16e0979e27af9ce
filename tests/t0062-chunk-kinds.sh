#!/bin/sh
# Test bodies are single-quoted and use variables and functions defined here:
# shellcheck disable=SC2016,SC2034,SC2317
test_description='chunk-worker kinds end to end: backfill as backfill-sync does it, push, errors, retries, cancel'
# shellcheck source=tests/test-lib.sh
. "$(dirname "$0")/test-lib.sh"

# The world: scripts/sample-data's 3,300 contacts a side, 2,600 shared.
# The backfill part runs with the emulator enforcing 120 requests a minute
# and the workers pacing themselves through the shared bucket (page_size
# 500: seven list pages a walk, so the limit never binds, but every
# request waits for its slot); the push part with every limit off, and no
# retries in the client, so that an API down fails a chunk at once.
start_postgres
start_emulator --rate-limit 120 --import-limit 0 --log-bodies

# conf FILE RATE_LIMIT RETRIES
conf() {
    cat >"$TRASH/$1" <<-EOF
	[mailerlite]
	rate_limit = $2
	import_rate_limit = 0
	page_size = 500
	retries = $3
	[table]
	name = public.clients
	[fields]
	first_name = name
	last_name = last_name
	company = company
	EOF
}
conf cw.conf 120 5
conf push.conf 0 0

# cw ARGS: chunk-worker with the backfill part's settings; push ARGS: with
# the push part's.
cw() {
    chunk-worker -c "$TRASH/cw.conf" "$@"
}
push() {
    chunk-worker -c "$TRASH/push.conf" "$@"
}

# links_dump: every crosswalk row with its shadow's snapshots, by email
# (synced_at and the ids of the bookkeeping rows left out).
links_dump() {
    psql_q "SELECT c.a_id, c.b_id, c.email, s.a_snapshot, s.b_snapshot
            FROM sync.integration_crosswalk c
            LEFT JOIN sync.sync_shadow s ON s.crosswalk_id = c.id
            ORDER BY c.email"
}

# chunks JOB COLUMNS: the job's chunks' columns, one line each, by index.
chunks() {
    psql_q "SELECT $2 FROM sync.chunked_sync_jobs WHERE parent_id = $1 ORDER BY chunk_index"
}

# job JOB COLUMNS: the parent's columns.
job() {
    psql_q "SELECT $2 FROM sync.sync_queue WHERE id = $1"
}

# b_writes: the inner /batch requests and direct requests that write, as
# "METHOD path" lines, since the log was cleared.
b_writes() {
    ml_control GET log |
        jq -r 'if .path == "/api/batch" then .body.requests[] else . end
               | select(.method != "GET") | "\(.method) \(.path)"'
}

# b_company EMAIL: B's company of the subscriber.
b_company() {
    jq -r --arg e "$1" 'select(.email == $e) | .fields.company // "<null>"' "$TRASH/b.jsonl"
}

# max_in_window LOG SECONDS: the most requests LOG shows arriving within
# one window of SECONDS, the emulator's (t - SECONDS, t].
max_in_window() {
    jq -r .t "$1" | sort -g | awk -v w="$2" '
        { t[NR] = $1; while (t[NR] - t[lo + 1] >= w) lo++; if (NR - lo > most) most = NR - lo }
        END { print most + 0 }'
}

# min_gap LOG: the shortest time between two requests of LOG, in seconds.
min_gap() {
    jq -r .t "$1" | sort -g | awk '
        NR > 1 { g = $1 - prev; if (min == "" || g < min) min = g } { prev = $1 }
        END { printf "%.3f\n", min == "" ? 999 : min }'
}

# new_rows PREFIX N KEY_PREFIX: N rows only A has, PREFIX<i>@example.org,
# with keys KEY_PREFIX<i> (twelve digits): keys chosen to sort after every
# sample key, so that they fall in a push job's last chunk.
new_rows() {
    psql_q "INSERT INTO public.clients (id, email, first_name, last_name, company)
            SELECT ('$3' || lpad(i::text, 12, '0'))::uuid, '$1' || i || '@example.org',
                   'New', 'Row' || i, 'New Co'
            FROM generate_series(0, $2 - 1) i"
}

# nothing_committed PREFIX: no crosswalk row, log row or new shadow for the
# emails starting with PREFIX (the shadows counted in shadows.before).
nothing_committed() {
    psql_q "SELECT count(*) FROM sync.integration_crosswalk WHERE email LIKE '$1%'" >actual &&
    echo 0 >expect &&
    test_cmp expect actual &&
    psql_q "SELECT count(*) FROM sync.sync_shadow" >shadows.after &&
    test_cmp shadows.before shadows.after &&
    psql_q "SELECT count(*) FROM sync.sync_log WHERE email LIKE '$1%'" >actual &&
    test_cmp expect actual
}

# ---------------------------------------------------------------------------
# 1. backfill: what backfill-sync builds, in ordered chunks.

test_expect_success 'setup: 3,300 contacts a side, 2,600 of them shared' '
    crosswalk-migrate -q -c cw.conf &&
    load_sample 3300 3300 2600 &&
    ml_control DELETE log >/dev/null
'

test_expect_success 'backfill-sync links the sample: the reference' '
    backfill-sync -c cw.conf >bs.json 2>bs.err &&
    test_json_eq bs.json .status completed &&
    test_json_eq bs.json .matched 2600 &&
    test_json_eq bs.json .crosswalkCreated 2600 &&
    test_json_eq bs.json .shadowsCreated 2600 &&
    links_are_whole &&
    links_dump >links.expect &&
    test_line_count = 2600 links.expect &&
    ml_control GET log >bs-log.jsonl &&
    list_pages bs-log.jsonl | jq -r .query >bs-pages &&
    test_line_count = 7 bs-pages
'

# Chunks of 900 at 500 subscribers a page: each chunk reads two pages (it
# stops once it has its share), the last one the rest of the list.
test_expect_success 'the bookkeeping forgotten, a backfill job is enqueued in 4 ordered chunks' '
    sync_forget &&
    psql_q "SELECT count(*) FROM sync.integration_crosswalk" >actual &&
    echo 0 >expect &&
    test_cmp expect actual &&
    cw enqueue backfill --chunk-size 900 >enq.json &&
    test_json_eq enq.json .kind backfill &&
    test_json_eq enq.json .chunks 4 &&
    test_json_eq enq.json .total_items 3300 &&
    test_json_eq enq.json .ordered true &&
    BACKFILL=$(jq -r .id enq.json) &&
    chunks $BACKFILL "chunk_index, status, start_offset, end_offset" >actual &&
    test_write_lines "0|pending|0|900" "1|pending|900|1800" "2|pending|1800|2700" \
        "3|pending|2700|3300" >expect &&
    test_cmp expect actual
'

test_expect_success 'three workers run it: the same crosswalk and shadows as backfill-sync' '
    cw run --until-empty --concurrency 3 >run.json 2>run.err &&
    test_json_eq run.json .workers 3 &&
    test_json_eq run.json .claimed 4 &&
    test_json_eq run.json .completed 4 &&
    test_json_eq run.json .failed 0 &&
    test_json_eq run.json .retried 0 &&
    test_json_eq run.json .lost 0 &&
    test_json_eq run.json .end empty &&
    links_are_whole &&
    links_dump >links.actual &&
    test_cmp links.expect links.actual
'

test_expect_success 'sync_status.backfill and the audit trail say what backfill-sync said' '
    psql_q "SELECT value->'\''backfill'\'' FROM sync.sync_state
            WHERE key = '\''sync_status'\''" >status.json &&
    for f in status matched crosswalkCreated shadowsCreated onlyInA onlyInB; do
        test_json_eq status.json ".$f" "$(jq -r ".$f" bs.json)" || return 1
    done &&
    test_json_eq status.json "[.phase, .currentBatch, .totalBatches, .runner]" \
        "[\"done\",4,4,\"chunk-worker job $BACKFILL\"]" &&
    jq -e ".startedAt and .completedAt" status.json &&
    # one run id for the job, as for one backfill-sync run
    psql_q "SELECT count(*) FROM sync.sync_log WHERE action = '\''only_in_a'\''
              AND run_id = (SELECT params->>'\''run_id'\'' FROM sync.sync_queue
                            WHERE id = $BACKFILL)" >actual &&
    jq -r .onlyInA bs.json >expect &&
    test_cmp expect actual
'

test_expect_success 'the chunks read the seven pages backfill-sync read, each once, two a chunk' '
    ml_control GET log >cw-log.jsonl &&
    list_pages cw-log.jsonl | jq -r .query >cw-pages &&
    test_cmp bs-pages cw-pages &&
    chunks $BACKFILL "result->>'\''rows'\'', result->>'\''walked'\''" >actual &&
    test_write_lines "1000|false" "1000|false" "1000|false" "300|true" >expect &&
    test_cmp expect actual
'

test_expect_success 'the API saw no 429, at most 120 requests in any 60 s, each in its own slot' '
    cat bs-log.jsonl cw-log.jsonl >all-log.jsonl &&
    jq -c "select(.status != 200)" all-log.jsonl >refused &&
    test_must_be_empty refused &&
    max_in_window all-log.jsonl 60 >most &&
    echo "at most $(cat most) requests in 60 s" &&
    test "$(cat most)" -le 120 &&
    # The enqueue'\''s count and the workers'\'' pages, from three processes,
    # spaced by the one bucket (60 s / 120 = 0.5 s), never back to back.
    test_line_count = 8 cw-log.jsonl &&
    min_gap cw-log.jsonl >gap &&
    echo "shortest gap $(cat gap) s" &&
    awk "{ exit !(\$1 >= 0.25) }" gap &&
    psql_q "SELECT value->>'\''limit'\'' FROM sync.sync_state
            WHERE key = '\''token_bucket_state'\''" >actual &&
    echo 120 >expect &&
    test_cmp expect actual
'

# ---------------------------------------------------------------------------
# 2. The job's end and report.

test_expect_success 'the job completed, 100 %, every chunk completed once, in order' '
    job $BACKFILL "status, completed_chunks, failed_chunks" >actual &&
    echo "completed|4|0" >expect &&
    test_cmp expect actual &&
    cw status $BACKFILL >status.json &&
    test_json_eq status.json .status completed &&
    test_json_eq status.json ".percentage == 100" true &&
    test_json_eq status.json ".chunks.completed == .total_chunks" true &&
    test_json_eq status.json .chunks.completed 4 &&
    test_json_eq status.json ".chunks.pending + .chunks.processing + .chunks.failed
                              + .chunks.cancelled + .chunks.retried" 0 &&
    test_json_eq status.json .totals.rows 3300 &&
    test_json_eq status.json .totals.matched 2600 &&
    test_json_eq status.json .totals.crosswalkCreated 2600 &&
    chunks $BACKFILL "chunk_index, status, attempts" >actual &&
    test_write_lines "0|completed|1" "1|completed|1" "2|completed|1" "3|completed|1" >expect &&
    test_cmp expect actual &&
    # Ordered: each chunk started after the one before it completed.
    psql_q "SELECT count(*) FROM sync.chunked_sync_jobs c
            JOIN sync.chunked_sync_jobs p ON p.parent_id = c.parent_id
                                         AND p.chunk_index = c.chunk_index - 1
            WHERE c.parent_id = $BACKFILL AND c.started_at < p.completed_at" >actual &&
    echo 0 >expect &&
    test_cmp expect actual
'

# ---------------------------------------------------------------------------
# 3. push: A's new and changed rows to B, by key range.

test_expect_success 'setup: every limit off; rows edited in A since the backfill' '
    ml_control POST config "{\"rate_limit\": 0, \"import_limit\": 0}" >/dev/null &&
    psql_q "UPDATE public.clients SET company = '\''Pushed '\'' || i, updated_at = now()
            FROM generate_series(100, 139) i
            WHERE i % 7 <> 5 AND id = md5('\''client-'\'' || i)::uuid" &&
    psql_q "SELECT lower(trim(email)) FROM public.clients WHERE company LIKE '\''Pushed %'\''
            ORDER BY 1" >edited &&
    test_line_count = 34 edited &&
    psql_q "SELECT email FROM public.clients WHERE email LIKE '\''a-only%'\'' ORDER BY 1" >new &&
    test_line_count = 700 new &&
    ml_control DELETE log >/dev/null
'

test_expect_success 'push by two workers: new rows created, changed rows updated, no other write' '
    push enqueue push --chunk-size 500 >enq.json &&
    test_json_eq enq.json .chunks 7 &&
    test_json_eq enq.json .ordered false &&
    test_json_eq enq.json ".params.bounds | length" 6 &&
    PUSH=$(jq -r .id enq.json) &&
    push run --until-empty --concurrency 2 >run.json 2>run.err &&
    test_json_eq run.json .workers 2 &&
    test_json_eq run.json .completed 7 &&
    test_json_eq run.json .failed 0 &&
    job $PUSH status >actual &&
    echo completed >expect &&
    test_cmp expect actual &&
    push status $PUSH >status.json &&
    test_json_eq status.json .totals.createdInB 700 &&
    test_json_eq status.json .totals.updatedInB 34 &&
    test_json_eq status.json .totals.errors 0 &&
    test_json_eq status.json .totals.rows 734 &&
    b_writes >writes &&
    grep -v "^PUT " writes | sort | uniq -c | sed "s/^ *//" >actual &&
    echo "700 POST api/subscribers" >expect &&
    test_cmp expect actual &&
    ml_control GET log | jq -r "select(.path == \"/api/batch\") | .body.requests[]
        | select(.method == \"POST\") | .body.email" | sort >actual &&
    test_cmp new actual &&
    grep "^PUT " writes | sed "s,^PUT api/subscribers/,," | sort >actual &&
    psql_q "SELECT c.b_id FROM sync.integration_crosswalk c
            JOIN public.clients a ON a.id::text = c.a_id
            WHERE a.company LIKE '\''Pushed %'\''" | sort >expect &&
    test_line_count = 34 expect &&
    test_cmp expect actual
'

test_expect_success 'push: both sides agree, the crosswalk and shadows are whole' '
    ml_control GET subscribers >b.jsonl &&
    test_line_count = 4000 b.jsonl &&
    jq -r .email b.jsonl | sort | uniq -d >dups &&
    test_must_be_empty dups &&
    for e in $(cat edited)
    do
        b_company $e >actual &&
        psql_q "SELECT company FROM public.clients WHERE lower(trim(email)) = '\''$e'\''" >expect &&
        test_cmp expect actual || return 1
    done &&
    b_company a-only2600@example.org >actual &&
    echo "Company $((2600 % 97))" >expect &&
    test_cmp expect actual &&
    expected_crosswalk >expect &&
    crosswalk_rows >actual &&
    test_line_count = 3300 actual &&
    test_cmp expect actual &&
    links_are_whole &&
    psql_q "SELECT count(*) FROM sync.sync_shadow s
            JOIN sync.integration_crosswalk c ON c.id = s.crosswalk_id
            WHERE s.a_snapshot->'\''fields'\''->>'\''company'\'' LIKE '\''Pushed %'\''
              AND s.b_snapshot->'\''fields'\''->>'\''company'\''
                  = s.a_snapshot->'\''fields'\''->>'\''company'\''" >actual &&
    echo 34 >expect &&
    test_cmp expect actual
'

test_expect_success 'a second push finds nothing to do and writes nothing' '
    ml_control DELETE log >/dev/null &&
    links_dump >links.before &&
    push enqueue push --chunk-size 500 >enq.json &&
    PUSH2=$(jq -r .id enq.json) &&
    push run --until-empty --concurrency 2 >run.json 2>run.err &&
    test_json_eq run.json .completed 7 &&
    push status $PUSH2 >status.json &&
    test_json_eq status.json .status completed &&
    test_json_eq status.json .totals.rows 0 &&
    ml_control GET log >log.jsonl &&
    test_must_be_empty log.jsonl &&
    links_dump >links.after &&
    test_cmp links.before links.after
'

# ---------------------------------------------------------------------------
# 4. A value B refuses: a record-level error; the chunk completes.

test_expect_success 'a value B refuses fails that contact only; its chunk completes with the error' '
    ml_control DELETE log >/dev/null &&
    psql_q "UPDATE public.clients SET company = '\''Second '\'' || i, updated_at = now()
            FROM generate_series(200, 219) i WHERE id = md5('\''client-'\'' || i)::uuid" &&
    psql_q "UPDATE public.clients SET first_name = repeat('\''b'\'', 2000), updated_at = now()
            WHERE id = md5('\''client-11'\'')::uuid" &&
    psql_q "SELECT s.a_snapshot, s.b_snapshot FROM sync.sync_shadow s
            JOIN sync.integration_crosswalk c ON c.id = s.crosswalk_id
            WHERE c.email = '\''contact11@example.com'\''" >shadow.before &&
    push enqueue push --chunks 4 >enq.json &&
    BAD=$(jq -r .id enq.json) &&
    # done, with a record-level failure: exit 1 (DESIGN §3)
    test_expect_code 1 push run --until-empty --concurrency 2 >run.json 2>run.err &&
    test_json_eq run.json .completed 4 &&
    test_json_eq run.json .failed 0 &&
    test_json_eq run.json .recordErrors 1 &&
    push status $BAD >status.json &&
    test_json_eq status.json .status completed &&
    test_json_eq status.json .chunks.completed 4 &&
    test_json_eq status.json .totals.errors 1 &&
    test_json_eq status.json .totals.updatedInB 20 &&
    chunks $BAD "status, result->>'\''errors'\'', result->'\''errorList'\''->0->>'\''email'\''" |
        grep "|1|" >actual &&
    echo "completed|1|contact11@example.com" >expect &&
    test_cmp expect actual &&
    chunks $BAD "result->'\''errorList'\''->0->>'\''error'\''" | grep . >error &&
    test_grep 422 error &&
    ml_control GET subscribers >b.jsonl &&
    for i in $(seq 200 219)
    do
        b_company contact$i@example.com >actual &&
        echo "Second $i" >expect &&
        test_cmp expect actual || return 1
    done &&
    jq -r "select(.email == \"contact11@example.com\") | .fields.name" b.jsonl >actual &&
    echo Bob >expect &&
    test_cmp expect actual &&
    psql_q "SELECT s.a_snapshot, s.b_snapshot FROM sync.sync_shadow s
            JOIN sync.integration_crosswalk c ON c.id = s.crosswalk_id
            WHERE c.email = '\''contact11@example.com'\''" >shadow.after &&
    test_cmp shadow.before shadow.after &&
    # Put the value back: the contact is as its shadow says again.
    psql_q "UPDATE public.clients SET first_name = '\''Bob'\''
            WHERE id = md5('\''client-11'\'')::uuid"
'

# ---------------------------------------------------------------------------
# 5. The API down: the chunk fails, is rolled back, and retried later.

# The API goes down once the chunk has read B: its write batch fails inside
# the chunk's open transaction. The worker is stopped (SIGTERM) as soon as
# the chunk is pending again: its backoff (2.5 s at the least) keeps it
# from being claimed meanwhile.
test_expect_success 'the API down mid-chunk: the chunk goes back to pending with a backoff' '
    ml_control DELETE log >/dev/null &&
    new_rows down 30 ffffffff-0000-0000-0000- &&
    psql_q "SELECT count(*) FROM sync.sync_shadow" >shadows.before &&
    ml_control POST faults "{\"rules\":[{\"method\":\"POST\",\"path_prefix\":\"/api/batch\",
                                      \"after\":1,\"kind\":\"status\",\"status\":500,
                                      \"count\":-1}]}" >/dev/null &&
    push enqueue push --chunk-size 1000 >enq.json &&
    test_json_eq enq.json .chunks 4 &&
    DOWN=$(jq -r .id enq.json) &&
    { chunk-worker -c push.conf run >run.json 2>run.err & } &&
    pid=$! &&
    test_when_finished "kill $pid 2>/dev/null || :" &&
    psql_await "SELECT status = '\''pending'\'' AND attempts = 1 FROM sync.chunked_sync_jobs
                WHERE parent_id = $DOWN AND chunk_index = 3" &&
    kill -TERM $pid &&
    { wait $pid; echo $? >run.status; } &&
    echo 3 >expect &&
    test_cmp expect run.status &&
    test_json_eq run.json .completed 3 &&
    test_json_eq run.json .retried 1 &&
    test_json_eq run.json .end stopped &&
    chunks $DOWN "chunk_index, status, attempts, run_at > now(), last_error IS NOT NULL" >actual &&
    test_write_lines "0|completed|1|f|f" "1|completed|1|f|f" "2|completed|1|f|f" \
        "3|pending|1|t|t" >expect &&
    test_cmp expect actual &&
    chunks $DOWN last_error | tail -n 1 >last_error &&
    test_grep 500 last_error &&
    job $DOWN status >actual &&
    echo processing >expect &&
    test_cmp expect actual &&
    test_grep "will retry" run.err &&
    # The read of the 30 rows, then the first write batch, refused: the
    # chunk stopped there.
    ml_control GET log | jq -r "select(.path == \"/api/batch\") | .status" >actual &&
    test_write_lines 200 500 >expect &&
    test_cmp expect actual
'

test_expect_success 'nothing of the failed chunk is in the database' '
    nothing_committed down
'

test_expect_success 'the API back and the chunk due, a re-run completes it' '
    ml_control DELETE faults >/dev/null &&
    psql_q "UPDATE sync.chunked_sync_jobs SET run_at = now()
            WHERE parent_id = $DOWN AND status = '\''pending'\''" &&
    push run --until-empty >run.json 2>run.err &&
    test_json_eq run.json .completed 1 &&
    chunks $DOWN "status, attempts" | tail -n 1 >actual &&
    echo "completed|2" >expect &&
    test_cmp expect actual &&
    job $DOWN status >actual &&
    echo completed >expect &&
    test_cmp expect actual &&
    push status $DOWN >status.json &&
    test_json_eq status.json .totals.createdInB 30 &&
    test_json_eq status.json .chunks.retried 1 &&
    ml_control GET subscribers >b.jsonl &&
    jq -r "select(.email | startswith(\"down\")) | .email" b.jsonl >in-b &&
    test_line_count = 30 in-b &&
    expected_crosswalk >expect &&
    crosswalk_rows >actual &&
    test_line_count = 3330 actual &&
    test_cmp expect actual &&
    links_are_whole
'

# ---------------------------------------------------------------------------
# 6. Cancel while a chunk runs: the lease is lost, nothing is committed.

# slow_push PREFIX UUID MS LEASE NAME: 120 new rows in A (emails PREFIX...,
# keys UUID...), every /batch MS late, and a push job of them (its id in
# JOB) worked in the background by a worker with --lease LEASE (its pid in
# pid; its JSON in NAME.json, its stderr in NAME.err). The shadows are
# counted first in shadows.before; the log is cleared.
slow_push() {
    ml_control DELETE log >/dev/null &&
    new_rows "$1" 120 "$2" &&
    psql_q "SELECT count(*) FROM sync.sync_shadow" >shadows.before &&
    ml_control POST faults "{\"rules\":[{\"method\":\"POST\",\"path_prefix\":\"/api/batch\",
                                      \"kind\":\"latency\",\"ms\":$3,\"count\":-1}]}" \
        >/dev/null &&
    push enqueue push --chunk-size 1000 >enq.json &&
    JOB=$(jq -r .id enq.json) &&
    { chunk-worker -c push.conf run --until-empty --lease "$4" >"$5.json" 2>"$5.err" & } &&
    pid=$!
}

test_expect_success 'a job cancelled while its chunk runs: lease lost, nothing committed' '
    test_when_finished "ml_control DELETE faults >/dev/null" &&
    # Every /batch 1 s late: the chunk of 120 new rows takes some 6 s, and
    # a lease of 3 s is renewed every second.
    slow_push slow ffffffff-ffff-ffff-ffff- 1000 3 cancel-run &&
    SLOW=$JOB &&
    test_when_finished "kill $pid 2>/dev/null || :" &&
    psql_await "SELECT status = '\''processing'\'' FROM sync.chunked_sync_jobs
                WHERE parent_id = $SLOW AND chunk_index = 3" &&
    sleep 1 &&
    push cancel $SLOW >cancel.json &&
    { wait $pid; echo $? >run.status; } &&
    test_json_eq cancel.json .cancelled true &&
    test_json_eq cancel.json .status cancelled &&
    echo 0 >expect &&
    test_cmp expect run.status &&
    test_json_eq cancel-run.json .lost 1 &&
    test_json_eq cancel-run.json .completed 3 &&
    test_grep "lease was lost" cancel-run.err &&
    job $SLOW status >actual &&
    echo cancelled >expect &&
    test_cmp expect actual &&
    chunks $SLOW "chunk_index, status" | tail -n 1 >actual &&
    echo "3|cancelled" >expect &&
    test_cmp expect actual &&
    push status $SLOW >status.json &&
    test_json_eq status.json .status cancelled &&
    nothing_committed slow
'

# write_batches: the /batch requests that wrote (a POST or PUT inside),
# since the log was cleared.
write_batches() {
    ml_control GET log |
        jq -c 'select(.path == "/api/batch")
                  | select([.body.requests[].method] | any(. == "POST" or . == "PUT"))' |
        wc -l | tr -d " "
}

test_expect_success 'cancelled during its writes to B, a chunk sends no further batch' '
    test_when_finished "ml_control DELETE faults >/dev/null" &&
    # Every /batch 2 s late; a lease of 2 s is renewed every 0.7 s. The
    # 120 creates take three batches: cancelled once the first is answered,
    # the chunk lets the one in flight end and sends no third.
    slow_push late eeeeeeee-eeee-eeee-eeee- 2000 2 late-run &&
    LATE=$JOB &&
    test_when_finished "kill $pid 2>/dev/null || :" &&
    tries=0 &&
    until test "$(write_batches)" -ge 1; do
        tries=$((tries + 1)) &&
        test "$tries" -le 300 || return 1
        sleep 0.1
    done &&
    push cancel $LATE >cancel.json &&
    { wait $pid; echo $? >run.status; } &&
    test_json_eq late-run.json .lost 1 &&
    write_batches >actual &&
    echo 2 >expect &&
    test_cmp expect actual &&
    nothing_committed late
'

# ---------------------------------------------------------------------------
# 7. Bad input.

test_expect_success 'an unknown kind is a usage error that names the kinds' '
    test_expect_code 64 push enqueue nosuchkind >out 2>err &&
    test_must_be_empty out &&
    test_grep "unknown kind \"nosuchkind\"" err &&
    test_grep "backfill, push, noop" err
'

test_expect_success 'chunk sizes: 0, or both --chunks and --chunk-size: 64; over the kind'\''s 1000 a chunk: 65' '
    test_expect_code 64 push enqueue push --chunk-size 0 >out 2>err &&
    test_must_be_empty out &&
    test_expect_code 65 push enqueue push --chunk-size 5000 >out 2>err &&
    test_must_be_empty out &&
    test_grep "1000" err &&
    test_expect_code 65 push enqueue push --chunks 3 >out 2>err &&
    test_must_be_empty out &&
    test_grep "1000" err &&
    test_expect_code 64 push enqueue push --chunks 2 --chunk-size 5 >out 2>err &&
    test_must_be_empty out &&
    test_grep "not both" err
'

test_expect_success 'status of no job: 65 "there is no job"; a job id that is no number: 64' '
    test_expect_code 65 push status 999999 >out 2>err &&
    test_must_be_empty out &&
    test_grep "there is no job 999999" err &&
    test_expect_code 64 push status abc >out 2>err &&
    test_must_be_empty out &&
    test_grep "job id" err
'

test_expect_success 'a parameter the kind does not take is a usage error; nothing is enqueued' '
    psql_q "SELECT count(*) FROM sync.sync_queue" >before &&
    test_expect_code 64 push enqueue push --param bogus=1 >out 2>err &&
    test_must_be_empty out &&
    test_grep "bogus" err &&
    psql_q "SELECT count(*) FROM sync.sync_queue" >after &&
    test_cmp before after
'

# ---------------------------------------------------------------------------
# 8. Managed groups: a worker asks B for their ids once per job, not once a
# chunk. The small world of t0040 (it replaces this file's tables).

# shellcheck source=tests/lib-world.sh
. "$TEST_ROOT/tests/lib-world.sh"

test_expect_success 'push with managed groups: one GET /groups for all the chunks of a worker' '
    fresh &&
    a_set ann@example.com groups "{Customers,Newsletter}" &&
    a_set cat@example.com groups "{}" &&
    a_set dan@example.com groups "{Newsletter}" &&
    chunk-worker -c "$TRASH/cw.conf" enqueue push --chunk-size 1 >enq.json &&
    test_json_eq enq.json .chunks 5 &&
    chunk-worker -c "$TRASH/cw.conf" run --until-empty >run.json 2>run.err &&
    test_json_eq run.json "[.completed, .failed, .recordErrors]" "[5,0,0]" &&
    api_requests | grep -c "^GET /api/groups" >actual &&
    echo 1 >expect &&
    test_cmp expect actual &&
    test "$(b_groups ann@example.com)" = Customers,Newsletter,VIP &&
    test "$(b_groups cat@example.com)" = "" &&
    test "$(b_groups dan@example.com)" = Newsletter
'

test_done
