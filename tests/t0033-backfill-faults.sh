#!/bin/sh
# Test bodies are single-quoted and use variables and functions defined here:
# shellcheck disable=SC2016,SC2034,SC2317
test_description='backfill-sync rides out a misbehaving API, or fails whole and resumes'
# shellcheck source=tests/test-lib.sh
. "$(dirname "$0")/test-lib.sh"

# 1,200 subscribers (1,000 of them also among A's 1,500 rows) at 100 a page
# and 250 a batch: 12 pages and 5 batches, so a fault can land mid-walk
# with batches committed before and after it. Two retries (three attempts)
# keep an exhausted budget under two seconds (backoff base 500 ms).
start_postgres
start_emulator --rate-limit 0 --page-cap 100
load_sample 1500 1200 1000 || BUG "could not load the sample data"

test_write_lines '[mailerlite]' 'rate_limit = 0' 'retries = 2' \
    '[sync]' 'batch_size = 250' \
    '[table]' 'name = public.clients' \
    '[fields]' 'first_name = name' 'last_name = last_name' 'company = company' >cw.conf
crosswalk-migrate -c cw.conf >migrate.out 2>migrate.err || BUG "crosswalk-migrate failed"

# inject 'RULE MEMBERS': one fault on GET /api/subscribers that spares the
# count and the first four pages (five requests) and fires on the fifth
# page, mid-walk: batch 1 is committed and batch 2 half built by then.
inject() {
    ml_control POST faults \
        "{\"rules\":[{\"method\":\"GET\",\"path_prefix\":\"/api/subscribers\",\"after\":5,$1}]}" \
        >/dev/null
}

test_expect_success 'a clean run links the 1,000 shared contacts in 12 pages, none asked twice' '
    sync_forget &&
    backfill-sync -c cw.conf >out 2>err &&
    test_json_eq out .status completed &&
    test_json_eq out .done true &&
    test_json_eq out .crosswalkCreated 1000 &&
    test_json_eq out .errors 0 &&
    crosswalk_rows >clean &&
    test_line_count = 1000 clean &&
    links_are_whole &&
    ml_control GET log >log &&
    list_pages log >pages &&
    test_line_count = 12 pages &&
    jq -r .query pages | sort | uniq -d >repeated &&
    test_must_be_empty repeated &&
    test_grep ! "retrying" err
'

# fault_is_retried NAME KIND STATUS WHY RULE: a test that one fault of KIND
# (the rule's other members in RULE) mid-walk is retried: the run completes,
# its crosswalk is the clean run's, and the page that met the fault was
# asked again at once and answered. STATUS is what the request log shows
# for the spoilt answer (null: no answer, the connection was dropped); WHY,
# the reason the retry's warning gives (empty: none expected).
fault_is_retried() {
    fr_kind=$2 fr_status=$3 fr_why=$4 fr_rule=$5
    test_expect_success "$1 mid-walk is retried and the run converges" '
        sync_forget &&
        inject "\"kind\":\"$fr_kind\"$fr_rule" &&
        backfill-sync -c cw.conf >out 2>err &&
        test_json_eq out .status completed &&
        test_json_eq out .done true &&
        test_json_eq out .errors 0 &&
        crosswalk_rows >rows &&
        test_cmp clean rows &&
        links_are_whole &&
        ml_control GET faults >faults &&
        test_json_eq faults ".rules[0].applied" 1 &&
        ml_control GET log >log &&
        list_pages log >pages &&
        test_line_count = 13 pages &&
        jq -s -c "(map(select(.fault != null)) | .[0].query) as \$q |
            (\$q | test(\"cursor=\")),
            [.[] | select(.query == \$q) | [.status, .fault]],
            ([.[] | select(.query == \$q) | .seq] | .[1] - .[0])" pages >retried &&
        test_write_lines true "[[$fr_status,\"$fr_kind\"],[200,null]]" 1 >expect &&
        test_cmp expect retried &&
        if test -n "$fr_why"; then
            test_grep -F "warning: GET /subscribers: $fr_why" err &&
            test_grep "retrying in .* (attempt 2 of 3)" err
        fi
    '
}

fault_is_retried 'a body that is not JSON' not_json 200 \
    'malformed response (the body is not JSON)' ''
fault_is_retried 'a truncated body' truncate 200 'transfer closed with' ''
fault_is_retried 'a body without data' missing_member 200 \
    'malformed response (' ',"member":"data"'
fault_is_retried 'a body without meta' missing_member 200 \
    'malformed response (' ',"member":"meta"'
fault_is_retried 'a body without meta.next_cursor' missing_member 200 \
    'malformed response (' ',"member":"meta.next_cursor"'
fault_is_retried 'an HTTP 500' status 500 'HTTP 500' ',"status":500'
fault_is_retried 'an HTML 502 from a proxy' status 502 'HTTP 502' \
    ',"status":502,"body":"<html><body>502 Bad Gateway</body></html>"'
# libcurl itself sends a request again, once, when a reused connection
# closes without an answer: crosswalk sees no failure and logs no retry.
fault_is_retried 'a dropped connection' drop null '' ''

test_expect_success 'a connection dropped twice in a row is retried by crosswalk too' '
    sync_forget &&
    inject "\"kind\":\"drop\",\"count\":2" &&
    backfill-sync -c cw.conf >out 2>err &&
    test_json_eq out .status completed &&
    crosswalk_rows >rows &&
    test_cmp clean rows &&
    ml_control GET log >log &&
    list_pages log >pages &&
    jq -s -c "(map(select(.fault != null)) | .[0].query) as \$q |
        [.[] | select(.query == \$q) | [.status, .fault]]" pages >retried &&
    echo "[[null,\"drop\"],[null,\"drop\"],[200,null]]" >expect &&
    test_cmp expect retried &&
    test_grep "warning: GET /subscribers: .*; retrying in" err
'

test_expect_success 'a 429 with Retry-After 1 is waited out and the run completes' '
    sync_forget &&
    inject "\"kind\":\"rate_limit\",\"retry_after\":1" &&
    backfill-sync -c cw.conf >out 2>err &&
    test_json_eq out .status completed &&
    test_json_eq out .errors 0 &&
    crosswalk_rows >rows &&
    test_cmp clean rows &&
    test_grep "warning: GET /subscribers: HTTP 429.*retrying in 1.0 s" err &&
    ml_control GET log >log &&
    list_pages log >pages &&
    test_line_count = 13 pages &&
    jq -s -c "(map(select(.fault != null)) | .[0]) as \$f |
        [.[] | select(.query == \$f.query) | [.status, .fault]]" pages >retried &&
    echo "[[429,\"rate_limit\"],[200,null]]" >expect &&
    test_cmp expect retried &&
    # A lower bound on the gap the emulator saw: no machine is too slow
    # for it, and a client that ignored Retry-After (its own backoff would
    # be under 0.5 s) fails it.
    jq -s -e "(map(select(.fault != null)) | .[0]) as \$f |
        [.[] | select(.query == \$f.query) | .t] | .[1] - .[0] >= 0.95" pages
'

# ---- a fault that outlasts the retries

test_expect_success 'a fault past the retry budget mid-walk: exit 69, status failed' '
    sync_forget &&
    inject "\"kind\":\"status\",\"status\":503,\"count\":-1" &&
    test_expect_code 69 backfill-sync -c cw.conf >out 2>err &&
    test_json_eq out .status failed &&
    test_json_eq out ".errors >= 1" true &&
    test_json_eq out .done false &&
    test_json_eq out ".nextCursor | type" string &&
    test_grep "error: .*GET /subscribers failed after 3 attempts: HTTP 503" err &&
    psql_q "SELECT value -> '\''backfill'\'' FROM sync.sync_state WHERE key = '\''sync_status'\''" >status &&
    test_json_eq status .status failed &&
    test_json_eq status ".errors >= 1" true &&
    test_json_eq status .completedAt null &&
    ml_control GET log >log &&
    list_pages log >pages &&
    jq -s -c "map(select(.fault != null)) | [length, (map(.query) | unique | length)]" pages >spoilt &&
    echo "[3,1]" >expect &&
    test_cmp expect spoilt &&
    jq -s -r "map(select(.fault != null)) | .[0].query" pages >failed.query
'

test_expect_success 'the batches committed before the failure are whole and match the saved cursor' '
    links_are_whole &&
    psql_q "SELECT value FROM sync.sync_state WHERE key = '\''cursor:backfill'\''" >cursor &&
    rows_done=$(jq -r .done cursor) &&
    test "$rows_done" -gt 0 &&
    test "$rows_done" -lt 1200 &&
    test_json_eq status .recordsDone "$rows_done" &&
    # B is walked newest first (ids descending): the first $rows_done ids are
    # the rows linked so far; of them, the shared contacts are linked.
    ml_control GET subscribers >b.ndjson &&
    jq -r "[.id, .email] | @tsv" b.ndjson | sort -r >b.walk &&
    head -n "$rows_done" b.walk | awk "\$2 ~ /^contact/ { print \$1 }" | sort >expect &&
    psql_q "SELECT b_id FROM sync.integration_crosswalk" | sort >actual &&
    test_cmp expect actual &&
    test_json_eq status .shadowsCreated "$(wc -l <actual | tr -d " ")" &&
    # The saved cursor is the page that failed: nothing linked is skipped
    # nor linked again by the next run.
    jq -r "\"cursor=\" + (.c | @uri)" cursor >cursor.param &&
    test_grep -F "$(cat cursor.param)" failed.query &&
    test_json_eq cursor .last null
'

test_expect_success 'once the fault is gone a re-run resumes where it failed and converges' '
    ml_control DELETE faults >/dev/null &&
    ml_control DELETE log >/dev/null &&
    backfill-sync -c cw.conf >out 2>err &&
    test_json_eq out .status completed &&
    test_json_eq out .done true &&
    test_grep "resuming backfill run" err &&
    crosswalk_rows >rows &&
    test_cmp clean rows &&
    links_are_whole &&
    ml_control GET log >log &&
    list_pages log >pages &&
    jq -s -r ".[0].query" pages >first.query &&
    test_cmp failed.query first.query &&
    jq -s -e "length < 12 and length == (1200 - $rows_done) / 100" pages &&
    psql_q "SELECT value -> '\''backfill'\'' FROM sync.sync_state WHERE key = '\''sync_status'\''" >status &&
    test_json_eq status .status completed &&
    test_json_eq status .shadowsCreated 1000 &&
    psql_q "SELECT count(*) FROM sync.sync_state WHERE key = '\''cursor:backfill'\''" >n &&
    echo 0 >expect &&
    test_cmp expect n
'

# ---- an answer that never ends

# Known breakage: nothing stops a walk whose pages lead back to themselves.
# A server whose page names itself as the next one would be walked for ever,
# and the looping cursor saved for the next run: the walk must stop.
test_expect_success 'a page that names itself as the next page is not followed for ever' '
    sync_forget &&
    jq -n -c --arg page "{\"data\":[],\"meta\":{\"next_cursor\":\"c3R1Y2s\",\"per_page\":100}}" \
        "{rules: [{method: \"GET\", path_prefix: \"/api/subscribers\", after: 5, count: -1,
                   kind: \"status\", status: 200, body: \$page}]}" >rule.json &&
    ml_control POST faults @rule.json >/dev/null &&
    test_must_fail backfill-sync -c cw.conf --max-duration 3 >out 2>err &&
    test_json_eq out .status failed &&
    test_grep "own cursor as its next page" err &&
    ml_control GET log >log &&
    list_pages log >pages &&
    test_line_count -lt 100 pages
'

test_done
