#!/bin/sh
# Test bodies are single-quoted and use variables and functions defined here:
# shellcheck disable=SC2016,SC2034,SC2119,SC2317
test_description='the completion webhook of chunked jobs: one POST of the report, retries, give-up, leases, secrets'
# shellcheck source=tests/test-lib.sh
. "$(dirname "$0")/test-lib.sh"

PROBE=$TEST_ROOT/tests/helpers/webhook-probe
if ! test -x "$PROBE"; then
    skip_all="the probe is not built ($PROBE; run make)"
    test_done
fi

# Every time is the database's: the tests move webhook_next_at, never wait
# for a backoff.

start_postgres
start_webhook_receiver

printf '[database]\nretries = 0\n\n[mailerlite]\nrate_limit = 0\n' >cw.conf
VERSION=$(cat "$TEST_ROOT/VERSION")

# q SQL: psql_q with the bookkeeping schema first on the path.
q() {
    psql_q "SET search_path = sync, pg_catalog; $1"
}

# new_job CHUNKS [URL]: a job of CHUNKS chunks of 10 items (with a webhook
# to URL); its id on stdout.
new_job() {
    if test -n "${2:-}"; then
        new_job_url_="'$2'"
    else
        new_job_url_=NULL
    fi
    q "SELECT create_sync_chunks('push', $(($1 * 10)), NULL, $1,
                                 p_webhook_url => $new_job_url_)"
}

# run_chunks [FAILS]: claim every due chunk and complete it with the
# result {"n": 5} (the first FAILS of them fail for good instead), then
# finish the jobs, each in a statement of its own as a worker does.
run_chunks() {
    q "DO \$\$
       DECLARE
           c chunked_sync_jobs;
           fails integer := ${1:-0};
       BEGIN
           LOOP
               SELECT * INTO c FROM claim_next_chunk_job('test-worker', 60);
               EXIT WHEN NOT FOUND OR c.id IS NULL;
               IF fails > 0 THEN
                   PERFORM fail_chunk_job(c.id, c.lease_token, 'boom', false);
                   fails := fails - 1;
               ELSE
                   PERFORM complete_chunk_job(c.id, c.lease_token, '{\"n\": 5}');
               END IF;
           END LOOP;
       END \$\$" &&
    for run_chunks_id_ in $(q "SELECT id FROM sync_queue
                               WHERE status IN ('pending', 'processing') ORDER BY id"); do
        q "SELECT finish_sync_job($run_chunks_id_)" >/dev/null || return 1
    done
}

# job ID COLUMNS: the parent's columns.
job() {
    q "SELECT $2 FROM sync_queue WHERE id = $1"
}

# due ID: make job ID's webhook due now (skips the backoff).
due() {
    q "UPDATE sync_queue SET webhook_next_at = now() WHERE id = $1"
}

# probe NAME ARGS...: one webhook_deliver_due() call; NAME.out, NAME.err.
probe() {
    probe_name_=$1
    shift
    "$PROBE" -c "$TRASH/cw.conf" "$@" >"$probe_name_.out" 2>"$probe_name_.err"
}

# requests: how many requests the receiver logged.
requests() {
    if test -s "$WEBHOOK_LOG"; then
        wc -l <"$WEBHOOK_LOG" | tr -d " "
    else
        echo 0
    fi
}

# request N: the receiver's Nth request, as a file req.json.
request() {
    sed -n "${1}p" "$WEBHOOK_LOG" >req.json &&
    test -s req.json
}

# forget: no job left, the receiver's log (and its count) emptied.
forget() {
    q "DELETE FROM sync_queue" &&
    : >"$WEBHOOK_LOG"
}

test_expect_success 'setup: the migration installs the webhook schedule' '
    crosswalk-migrate -q -c cw.conf &&
    q "SELECT count(*) FROM information_schema.columns
       WHERE table_schema = '\''sync'\'' AND table_name = '\''sync_queue'\''
         AND column_name = '\''webhook_next_at'\''" >actual &&
    echo 1 >expect &&
    test_cmp expect actual
'

test_expect_success 'nothing due: no POST, {"attempted": 0}' '
    probe none &&
    test_json_eq none.out .attempted 0 &&
    test_must_be_empty none.err &&
    test "$(requests)" = 0
'

test_expect_success 'a job without a webhook gets nothing when it ends' '
    test_when_finished forget &&
    p=$(new_job 2) &&
    run_chunks &&
    job $p "status, webhook_status IS NULL, webhook_next_at IS NULL" >actual &&
    echo "completed|t|t" >expect &&
    test_cmp expect actual &&
    probe plain &&
    test_json_eq plain.out .attempted 0 &&
    test "$(requests)" = 0
'

test_expect_success 'a job that has not ended is never posted, even when due' '
    test_when_finished forget &&
    p=$(new_job 2 "$WEBHOOK_URL") &&
    q "SELECT id FROM claim_next_chunk_job('\''w'\'', 60)" >/dev/null &&
    q "UPDATE sync_queue SET webhook_next_at = now() - interval '\''1 min'\''" &&
    job $p "status, webhook_status" >actual &&
    echo "processing|pending" >expect &&
    test_cmp expect actual &&
    probe live &&
    test_json_eq live.out .attempted 0 &&
    test "$(requests)" = 0
'

test_expect_success 'an ended job: its report is POSTed once, with the headers' '
    test_when_finished forget &&
    p=$(new_job 3 "$WEBHOOK_URL") &&
    job $p "webhook_status, webhook_next_at IS NULL" >actual &&
    echo "pending|t" >expect &&
    test_cmp expect actual &&
    run_chunks 1 &&
    job $p "status, webhook_next_at <= now()" >actual &&
    echo "partial_success|t" >expect &&
    test_cmp expect actual &&
    probe first &&
    test_json_eq first.out .attempted 1 &&
    test "$(requests)" = 1 &&
    request 1 &&
    test_json_eq req.json .method POST &&
    test_json_eq req.json .path /hook &&
    test_json_eq req.json ".headers[\"content-type\"]" application/json &&
    test_json_eq req.json ".headers[\"user-agent\"]" "crosswalk/$VERSION" &&
    test_json_eq req.json ".headers[\"x-crosswalk-job\"]" "$p" &&
    test_json_eq req.json ".headers[\"x-crosswalk-delivery-attempt\"]" 1 &&
    test_json_eq req.json ".headers.authorization // \"none\"" none &&
    test_json_eq req.json .json.id "$p" &&
    test_json_eq req.json .json.status partial_success &&
    test_json_eq req.json .json.kind push &&
    test_json_eq req.json .json.total_chunks 3 &&
    test_json_eq req.json \
        ".json.chunks | [.pending, .processing, .completed, .failed, .cancelled, .retried]" \
        "[0,0,2,1,0,0]" &&
    test_json_eq req.json ".json.failed_chunks | map(.last_error)" "[\"boom\"]" &&
    test_json_eq req.json .json.totals.n 10 &&
    test_json_eq req.json .json.webhook.attempts 1 &&
    q "SELECT sync_job_report($p)::text" >db.json &&
    jq -S "del(.webhook, .updated_at)" <db.json >expect &&
    jq -S ".body | fromjson | del(.webhook, .updated_at)" <req.json >actual &&
    test_cmp expect actual &&
    job $p "webhook_status, webhook_attempts, webhook_last_error IS NULL,
            webhook_sent_at IS NOT NULL, webhook_next_at IS NULL" >actual &&
    echo "sent|1|t|t|t" >expect &&
    test_cmp expect actual &&
    probe again &&
    test_json_eq again.out .attempted 0 &&
    test "$(requests)" = 1
'

test_expect_success 'a cancelled job with a webhook reports its cancellation' '
    test_when_finished forget &&
    p=$(new_job 4 "$WEBHOOK_URL") &&
    q "SELECT cancel_sync_job($p)" >/dev/null &&
    probe cancelled &&
    test_json_eq cancelled.out .attempted 1 &&
    request 1 &&
    test_json_eq req.json .json.status cancelled &&
    test_json_eq req.json .json.chunks.cancelled 4 &&
    test_json_eq req.json .json.id "$p" &&
    job $p webhook_status >actual &&
    echo sent >expect &&
    test_cmp expect actual
'

test_expect_success 'HTTP 500 twice: each attempt recorded with a backoff, then sent' '
    test_when_finished forget &&
    start_webhook_receiver --fail-first 2 &&
    p=$(new_job 1 "$WEBHOOK_URL") &&
    run_chunks &&
    probe fail1 &&
    test_json_eq fail1.out .attempted 1 &&
    job $p "webhook_status, webhook_attempts, webhook_last_error, webhook_sent_at IS NULL,
            webhook_next_at > now() + interval '\''2 s'\'',
            webhook_next_at <= now() + interval '\''5 s'\''" >actual &&
    echo "pending|1|HTTP 500|t|t|t" >expect &&
    test_cmp expect actual &&
    test_grep "warning: job $p: webhook to http://127.0.0.1:$WEBHOOK_PORT/\.\.\. failed: HTTP 500; retrying in [0-9.]* s (attempt 1 of 8)" fail1.err &&
    probe early &&
    test_json_eq early.out .attempted 0 &&
    due $p &&
    probe fail2 &&
    test_json_eq fail2.out .attempted 1 &&
    job $p "webhook_status, webhook_attempts, webhook_last_error,
            webhook_next_at > now() + interval '\''4 s'\'',
            webhook_next_at <= now() + interval '\''10 s'\''" >actual &&
    echo "pending|2|HTTP 500|t|t" >expect &&
    test_cmp expect actual &&
    due $p &&
    probe sent &&
    test_json_eq sent.out .attempted 1 &&
    job $p "webhook_status, webhook_attempts, webhook_last_error IS NULL,
            webhook_sent_at IS NOT NULL" >actual &&
    echo "sent|3|t|t" >expect &&
    test_cmp expect actual &&
    test "$(requests)" = 3 &&
    jq -r ".headers[\"x-crosswalk-delivery-attempt\"]" "$WEBHOOK_LOG" >actual &&
    test_write_lines 1 2 3 >expect &&
    test_cmp expect actual &&
    jq -r ".json.id" "$WEBHOOK_LOG" | sort -u >actual &&
    echo "$p" >expect &&
    test_cmp expect actual
'

test_expect_success 'max_attempts reached: the webhook is given up as failed' '
    test_when_finished forget &&
    start_webhook_receiver --fail-first 1000 --fail-status 503 &&
    p=$(new_job 1 "$WEBHOOK_URL") &&
    run_chunks &&
    probe try1 --max-attempts 2 &&
    test_json_eq try1.out .attempted 1 &&
    due $p &&
    probe try2 --max-attempts 2 &&
    test_json_eq try2.out .attempted 1 &&
    test_grep "job $p: webhook to .* failed: HTTP 503; giving up after 2 attempts" try2.err &&
    job $p "webhook_status, webhook_attempts, webhook_last_error, webhook_next_at IS NULL,
            webhook_sent_at IS NULL" >actual &&
    echo "failed|2|HTTP 503|t|t" >expect &&
    test_cmp expect actual &&
    due $p &&
    probe after --max-attempts 2 &&
    test_json_eq after.out .attempted 0 &&
    test "$(requests)" = 2
'

test_expect_success 'a redirect is not followed: it is a failed attempt' '
    test_when_finished forget &&
    start_webhook_receiver --status 302 &&
    p=$(new_job 1 "$WEBHOOK_URL") &&
    run_chunks &&
    probe redirect &&
    job $p "webhook_status, webhook_last_error" >actual &&
    echo "pending|HTTP 302 (redirects are not followed)" >expect &&
    test_cmp expect actual &&
    test "$(requests)" = 1
'

test_expect_success 'a dead port: the error is recorded, the call still succeeds' '
    test_when_finished forget &&
    start_webhook_receiver &&
    dead=$WEBHOOK_PORT &&
    kill "$WEBHOOK_PID" && wait "$WEBHOOK_PID" &&
    p=$(new_job 1 "http://127.0.0.1:$dead/hook") &&
    run_chunks &&
    probe dead &&
    test_json_eq dead.out .attempted 1 &&
    job $p "webhook_status, webhook_attempts, webhook_last_error" >actual &&
    echo "pending|1|connection refused" >expect &&
    test_cmp expect actual &&
    test_grep "failed: connection refused; retrying" dead.err &&
    start_webhook_receiver
'

test_expect_success 'a receiver that never answers: the lease keeps others off, then "timed out"' '
    test_when_finished forget &&
    start_webhook_receiver --hang &&
    p=$(new_job 1 "$WEBHOOK_URL") &&
    run_chunks &&
    { probe hang --timeout 3 & } && hang_pid=$! &&
    i=0 &&
    while test "$(requests)" = 0 && test $i -lt 100; do
        sleep 0.1 && i=$((i + 1))
    done &&
    test "$(requests)" = 1 &&
    job $p "webhook_status, webhook_attempts,
            webhook_next_at > now() + interval '\''55 s'\''" >actual &&
    echo "pending|1|t" >expect &&
    test_cmp expect actual &&
    due_now=$(q "SELECT count(*) FROM sync_queue
                 WHERE webhook_status = '\''pending'\'' AND webhook_next_at <= now()") &&
    test "$due_now" = 0 &&
    probe meanwhile &&
    test_json_eq meanwhile.out .attempted 0 &&
    wait $hang_pid &&
    test_json_eq hang.out .attempted 1 &&
    job $p "webhook_status, webhook_attempts, webhook_last_error" >actual &&
    echo "pending|1|timed out after 3 s" >expect &&
    test_cmp expect actual &&
    start_webhook_receiver
'

test_expect_success 'credentials in the URL are sent, never logged nor recorded' '
    test_when_finished forget &&
    start_webhook_receiver --fail-first 1 &&
    p=$(new_job 1 "http://user:secret@127.0.0.1:$WEBHOOK_PORT/hook/t0k3npath?token=hushhush") &&
    run_chunks &&
    probe cred1 -v &&
    due $p &&
    probe cred2 -v &&
    job $p "webhook_status, webhook_attempts" >actual &&
    echo "sent|2" >expect &&
    test_cmp expect actual &&
    request 2 &&
    test_json_eq req.json .path /hook/t0k3npath &&
    test_json_eq req.json .query token=hushhush &&
    test_json_eq req.json .headers.authorization "Basic $(printf user:secret | base64)" &&
    cat cred1.err cred2.err >err &&
    test_grep "webhook to http://127.0.0.1:$WEBHOOK_PORT/\.\.\. failed: HTTP 500" err &&
    test_grep "webhook delivered to http://127.0.0.1:$WEBHOOK_PORT/\.\.\. (HTTP 200, attempt 2)" err &&
    test_grep ! -e secret -e hushhush -e t0k3n -e "user:" err &&
    kill "$WEBHOOK_PID" && wait "$WEBHOOK_PID" &&
    q "UPDATE sync_queue SET webhook_status = '\''pending'\'' WHERE id = $p" &&
    probe cred3 -v &&
    job $p "webhook_status, webhook_last_error, sync_job_report(id)::text" >row &&
    test_grep "^pending|connection refused|" row &&
    test_grep ! -e secret -e hushhush -e t0k3n row &&
    test_grep ! -e secret -e hushhush -e t0k3n cred3.err &&
    start_webhook_receiver
'

test_expect_success 'a huge answer is read up to the cap only' '
    test_when_finished forget &&
    start_webhook_receiver --body-bytes endless &&
    p=$(new_job 1 "$WEBHOOK_URL") &&
    run_chunks &&
    probe huge -v --timeout 30 --max-response-bytes 65536 &&
    test_json_eq huge.out .attempted 1 &&
    test_grep "job $p: the webhook.s answer is over 65536 bytes; not read further" huge.err &&
    job $p "webhook_status, webhook_attempts, webhook_last_error IS NULL" >actual &&
    echo "sent|1|t" >expect &&
    test_cmp expect actual &&
    : >"$WEBHOOK_LOG" &&
    start_webhook_receiver --body-bytes endless --fail-first 1 &&
    p=$(new_job 1 "$WEBHOOK_URL") &&
    run_chunks &&
    probe huge500 --timeout 30 --max-response-bytes 1000 &&
    job $p "webhook_status, webhook_last_error" >actual &&
    echo "pending|HTTP 500" >expect &&
    test_cmp expect actual
'

test_expect_success 'two workers at once never post the same job twice' '
    test_when_finished forget &&
    start_webhook_receiver --delay-ms 150 &&
    for i in 1 2 3 4 5 6 7 8; do
        new_job 1 "$WEBHOOK_URL" >>jobs || return 1
    done &&
    run_chunks &&
    { probe w1 --limit 20 & } && w1=$! &&
    { probe w2 --limit 20 & } && w2=$! &&
    wait $w1 && wait $w2 &&
    echo $(($(jq .attempted w1.out) + $(jq .attempted w2.out))) >actual &&
    echo 8 >expect &&
    test_cmp expect actual &&
    jq -r ".headers[\"x-crosswalk-job\"]" "$WEBHOOK_LOG" | sort -n >posted &&
    sort -n jobs >expect &&
    test_cmp expect posted &&
    q "SELECT webhook_status, webhook_attempts, count(*) FROM sync_queue
       GROUP BY 1, 2" >actual &&
    echo "sent|1|8" >expect &&
    test_cmp expect actual &&
    echo "w1 posted $(jq .attempted w1.out), w2 $(jq .attempted w2.out)"
'

test_done
