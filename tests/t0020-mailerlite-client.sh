#!/bin/sh
# Test bodies are single-quoted and use variables and functions defined here:
# shellcheck disable=SC2016,SC2034,SC2317
test_description='the MailerLite client walks, retries and fails as DESIGN §7 and §9 say'
# shellcheck source=tests/test-lib.sh
. "$(dirname "$0")/test-lib.sh"

PROBE=$TEST_ROOT/tests/helpers/ml-probe
if ! test -x "$PROBE"; then
    skip_all="the probe is not built ($PROBE; run make)"
    test_done
fi

# A token nobody else uses, so that finding it anywhere means it leaked.
TOKEN=cw-secret-$$-q8Zr3XkT
# No rate limit in the emulator here (t0021 tests pacing); lists capped at
# 100 a page, as the real API is known to allow.
start_emulator --rate-limit 0 --page-cap 100 --token "$TOKEN"
MAILERLITE_API_KEY=$TOKEN
export MAILERLITE_API_KEY

# No bucket (so no database), few retries: the tests stay fast.
cat >ml.conf <<EOF
[mailerlite]
rate_limit = 0
import_rate_limit = 0
retries = 3
EOF

# probe NAME ARGS...: run the probe with ml.conf; stdout in NAME.out,
# stderr in NAME.err; the probe's exit status.
probe() {
    probe_name_=$1
    shift
    "$PROBE" -c "$TRASH/ml.conf" "$@" >"$probe_name_.out" 2>"$probe_name_.err"
}

# fault RULE...: replace the emulator's faults by these rules (JSON objects).
fault() {
    fault_rules_=$(printf '%s,' "$@")
    ml_control DELETE faults >/dev/null &&
        ml_control POST faults "{\"rules\":[${fault_rules_%,}]}" >/dev/null
}

# log_reset, then log_get FILE: the API requests since the reset.
log_reset() {
    ml_control DELETE log >/dev/null
}
log_get() {
    ml_control GET log >"$1"
}

test_expect_success 'seed 2,500 subscribers' '
    ml_control POST generate \
        "{\"count\":2500,\"email_format\":\"user%d@example.com\",\"fields\":{\"name\":\"First %d\"}}" \
        >out &&
    test_json_eq out .inserted 2500
'

test_expect_success 'a walk at page cap 100: 25 requests, every id once, newest first' '
    log_reset &&
    probe walk walk &&
    test_json_eq walk.out .rows 2500 &&
    test_json_eq walk.out .duplicates 0 &&
    test_json_eq walk.out .ids_sorted_desc true &&
    test_json_eq walk.out .pages 25 &&
    test_json_eq walk.out .requests 25 &&
    test_json_eq walk.out .pageCap 100 &&
    log_get log &&
    test_line_count = 25 log &&
    jq -r "[.method, .path, .status] | @tsv" log | sort | uniq -c >actual &&
    printf "     25 GET\t/api/subscribers\t200\n" >expect &&
    test_cmp expect actual
'

test_expect_success 'it asked for page_size once, then for the cap per_page reported' '
    jq -r .query log >queries &&
    head -n 1 queries >first &&
    echo "limit=1000" >expect &&
    test_cmp expect first &&
    sed 1d queries | sed "s/&cursor=.*//" | sort | uniq -c >rest &&
    echo "     24 limit=100" >expect &&
    test_cmp expect rest &&
    test_grep "at most 100 subscribers a page" walk.err
'

test_expect_success 'links.next is never followed: every request sends its own parameters' '
    log_reset &&
    probe walk --include-groups --status active --limit 100 walk &&
    test_json_eq walk.out .rows 2500 &&
    log_get log &&
    test_line_count = 25 log &&
    jq -r .query log >queries &&
    grep -c "^limit=100&" queries >n &&
    echo 25 >expect && test_cmp expect n &&
    grep -c "&include=groups&filter%5Bstatus%5D=active$" queries >n &&
    echo 25 >expect && test_cmp expect n &&
    grep -c "cursor=" queries >n &&
    echo 24 >expect && test_cmp expect n
'

test_expect_success 'a cap restored from an earlier run is used from the first request' '
    log_reset &&
    probe walk --page-cap 100 walk &&
    test_json_eq walk.out .requests 25 &&
    log_get log &&
    jq -r .query log | grep -c "^limit=100" >n &&
    echo 25 >expect &&
    test_cmp expect n
'

test_expect_success 'in reject mode a 422 on limit: fall back to 100 once and remember it' '
    ml_control POST config "{\"page_cap_mode\":\"reject\"}" >out &&
    test_when_finished "ml_control POST config \"{\\\"page_cap_mode\\\":\\\"clamp\\\"}\" >/dev/null" &&
    log_reset &&
    probe walk walk &&
    test_json_eq walk.out .rows 2500 &&
    test_json_eq walk.out .duplicates 0 &&
    test_json_eq walk.out .requests 26 &&
    test_json_eq walk.out .pageCap 100 &&
    log_get log &&
    jq -r "[(.query | sub(\"&cursor=.*\"; \"\")), .status] | @tsv" log | uniq -c >actual &&
    printf "      1 limit=1000\t422\n     25 limit=100\t200\n" >expect &&
    test_cmp expect actual &&
    test_grep "refused a larger limit" walk.err
'

test_expect_success 'a 5xx in the middle of a walk is retried and the walk stays whole' '
    fault "{\"method\":\"GET\",\"path_prefix\":\"/api/subscribers\",\"after\":5,\"count\":2,\"kind\":\"status\",\"status\":502}" &&
    log_reset &&
    probe walk walk &&
    test_json_eq walk.out .rows 2500 &&
    test_json_eq walk.out .duplicates 0 &&
    test_json_eq walk.out .ids_sorted_desc true &&
    test_json_eq walk.out .requests 27 &&
    log_get log &&
    jq -c "select(.status != 200) | [.seq, .status]" log >actual &&
    printf "[6,502]\n[7,502]\n" >expect &&
    test_cmp expect actual &&
    jq -r "select(.seq >= 6 and .seq <= 8) | .query" log | sort -u >q &&
    test_line_count = 1 q &&
    test_grep "HTTP 502; retrying" walk.err
'

# once KIND WHAT [extra JSON members]: the next GET /api/subscribers gets the
# fault; the probe retries it and succeeds; stderr names WHAT.
once() {
    fault "{\"method\":\"GET\",\"path_prefix\":\"/api/subscribers\",\"kind\":\"$1\"${3:-}}" &&
        log_reset &&
        probe count count &&
        test_json_eq count.out .total 2500 &&
        test_json_eq count.out .requests 2 &&
        log_get log &&
        jq -c "[.fault, .status]" log >actual &&
        test_write_lines "[\"$1\",${4:-200}]" "[null,200]" >expect &&
        test_cmp expect actual &&
        test_grep "$2.*retrying in" count.err
}

test_expect_success 'a body that is not JSON is retried, then succeeds' '
    once not_json "the body is not JSON"
'

test_expect_success 'a body without the documented member is retried, then succeeds' '
    once missing_member "total is missing" ",\"member\":\"total\""
'

test_expect_success 'a truncated body is retried, then succeeds' '
    once truncate "transfer closed"
'

test_expect_success 'a 503 is retried, then succeeds' '
    once status "HTTP 503" ",\"status\":503" 503
'

test_expect_success 'a dropped connection is retried, then succeeds' '
    once drop "Empty reply from server" "" null
'

test_expect_success 'a malformed list page names the member that is missing' '
    fault "{\"method\":\"GET\",\"path_prefix\":\"/api/subscribers\",\"kind\":\"missing_member\",\"member\":\"data\"}" &&
    probe walk walk &&
    test_json_eq walk.out .rows 2500 &&
    test_grep "malformed response (data is missing)" walk.err
'

# budget KIND WHAT [extra JSON members]: every GET /api/subscribers gets the
# fault; after one retry the probe fails with 69, naming WHAT, and prints
# no result.
budget() {
    fault "{\"method\":\"GET\",\"path_prefix\":\"/api/subscribers\",\"count\":-1,\"kind\":\"$1\"${3:-}}" &&
        log_reset &&
        test_expect_code 69 probe count --retries 1 count &&
        test_must_be_empty count.out &&
        test_grep "error: MailerLite API: request GET /subscribers failed after 2 attempts: .*$2" \
            count.err &&
        test_grep "detail: The attempts over .* s: .*$2.* (2 times)\.$" count.err &&
        log_get log &&
        test_line_count = 2 log
}

test_expect_success 'after the retry budget: not JSON fails with 69' '
    budget not_json "the body is not JSON"
'

test_expect_success 'after the retry budget: a missing member fails with 69' '
    budget missing_member "total is missing" ",\"member\":\"total\""
'

test_expect_success 'after the retry budget: a truncated body fails with 69' '
    budget truncate "transfer closed"
'

test_expect_success 'after the retry budget: a 500 fails with 69' '
    budget status "HTTP 500"
'

test_expect_success 'after the retry budget: dropped connections fail with 69' '
    budget drop "Empty reply from server"
'

test_expect_success 'after the retry budget: 429s fail with 69' '
    budget rate_limit "HTTP 429 (Retry-After 0 s)" ",\"retry_after\":0"
'

test_expect_success 'a 429 with Retry-After is waited out' '
    fault "{\"method\":\"GET\",\"path_prefix\":\"/api/subscribers\",\"kind\":\"rate_limit\",\"retry_after\":1}" &&
    log_reset &&
    probe count count &&
    test_json_eq count.out .total 2500 &&
    test_grep "HTTP 429 (Retry-After 1 s); retrying in 1.0 s" count.err &&
    log_get log &&
    jq -c "[.fault, .status]" log >actual &&
    test_write_lines "[\"rate_limit\",429]" "[null,200]" >expect &&
    test_cmp expect actual &&
    # The retry left no earlier than Retry-After said (a lower bound, which
    # a slow machine only makes larger).
    jq -s -e ".[1].t - .[0].t >= 0.95" log
'

test_expect_success 'HTTP 401: exit 78, one request, never retried' '
    ml_control DELETE faults >/dev/null &&
    log_reset &&
    test_expect_code 78 env MAILERLITE_API_KEY=not-the-token \
        "$PROBE" -c "$TRASH/ml.conf" count >bad.out 2>bad.err &&
    test_must_be_empty bad.out &&
    test_grep "error: the MailerLite API refused the token (HTTP 401)" bad.err &&
    test_grep "detail: The server said: Unauthenticated." bad.err &&
    test_grep "hint: Check MAILERLITE_API_KEY" bad.err &&
    log_get log &&
    jq -c "[.status]" log >actual &&
    echo "[401]" >expect &&
    test_cmp expect actual
'

test_expect_success 'no token at all: exit 78 before any request' '
    log_reset &&
    test_expect_code 78 env -u MAILERLITE_API_KEY \
        "$PROBE" -c "$TRASH/ml.conf" count >none.out 2>none.err &&
    test_grep "no MailerLite API token" none.err &&
    log_get log &&
    test_must_be_empty log
'

test_expect_success 'a token on the command line is refused with 64' '
    test_expect_code 64 "$PROBE" -c "$TRASH/ml.conf" --api-key "$TOKEN" count \
        >argv.out 2>argv.err &&
    test_grep "cannot be given on the command line" argv.err
'

test_expect_success 'a response over max_response_bytes fails cleanly, without a retry' '
    cat ml.conf >small.conf &&
    echo "max_response_bytes = 4096" >>small.conf &&
    log_reset &&
    test_expect_code 69 "$PROBE" -c "$TRASH/small.conf" walk >big.out 2>big.err &&
    test_must_be_empty big.out &&
    test_grep "error: MailerLite API: response to GET /subscribers is larger than 4096 bytes" \
        big.err &&
    test_grep "hint: Raise max_response_bytes" big.err &&
    log_get log &&
    test_line_count = 1 log &&
    "$PROBE" -c "$TRASH/small.conf" get user7@example.com >small.out 2>small.err &&
    test_json_eq small.out .data.email user7@example.com
'

test_expect_success 'upsert: 201 created, then 200 found, same id' '
    probe up1 upsert "{\"email\":\"  New.One@Example.COM \",\"fields\":{\"name\":\"New\"}}" &&
    test_json_eq up1.out .status 201 &&
    test_json_eq up1.out .created true &&
    test_json_eq up1.out .data.email new.one@example.com &&
    probe up2 upsert "{\"email\":\"new.one@example.com\"}" &&
    test_json_eq up2.out .status 200 &&
    test_json_eq up2.out .created false &&
    test_json_eq up2.out .data.id "$(jq -r .data.id up1.out)" &&
    test_json_eq up2.out .data.fields.name New
'

test_expect_success 'upsert: a 422 is the record outcome (exit 1), not retried' '
    log_reset &&
    test_expect_code 1 probe bad upsert "{\"email\":\"not-an-email\"}" &&
    test_json_eq bad.out .status 422 &&
    test_json_eq bad.out ".errors.email | length" 1 &&
    test_json_eq bad.out ".message | type" string &&
    log_get log &&
    test_line_count = 1 log
'

test_expect_success 'get by id and by email; a missing one is not found' '
    id=$(jq -r .data.id up1.out) &&
    probe g1 get "$id" &&
    test_json_eq g1.out .found true &&
    test_json_eq g1.out .data.email new.one@example.com &&
    probe g2 get New.One@example.com &&
    test_json_eq g2.out .data.id "$id" &&
    probe g3 get nobody@example.com &&
    test_json_eq g3.out .found false &&
    test_json_eq g3.out .data null
'

test_expect_success 'a batch answers in order' '
    cat >reqs.json <<-EOF &&
	[{"method":"POST","path":"api/subscribers","body":{"email":"b1@example.com"}},
	 {"method":"POST","path":"api/subscribers","body":{"email":"bad"}},
	 {"method":"GET","path":"api/subscribers/$id"}]
	EOF
    log_reset &&
    test_expect_code 1 probe batch batch reqs.json &&
    test_json_eq batch.out .codes "[201,422,200]" &&
    test_json_eq batch.out "[.successful, .failed]" "[2,1]" &&
    test_json_eq batch.out .requests 1 &&
    log_get log &&
    jq -c "[.path, .status, .batch, .import]" log >actual &&
    echo "[\"/api/batch\",200,3,false]" >expect &&
    test_cmp expect actual
'

test_expect_success 'a batch answer without its responses is retried' '
    fault "{\"method\":\"POST\",\"path_prefix\":\"/api/batch\",\"kind\":\"missing_member\",\"member\":\"responses\"}" &&
    log_reset &&
    test_expect_code 1 probe batch batch reqs.json &&
    test_json_eq batch.out .codes "[200,422,200]" &&
    test_json_eq batch.out .requests 2 &&
    test_grep "malformed response (responses is missing)" batch.err &&
    log_get log &&
    jq -c "[.path, .fault]" log >actual &&
    test_write_lines "[\"/api/batch\",\"missing_member\"]" "[\"/api/batch\",null]" >expect &&
    test_cmp expect actual
'

test_expect_success 'count honours filter[status]' '
    ml_control DELETE faults >/dev/null &&
    ml_control POST edit "{\"email\":\"user9@example.com\",\"status\":\"unsubscribed\"}" >out &&
    probe cnt --status unsubscribed count &&
    test_json_eq cnt.out .total 1
'

test_expect_success 'the token appears in nothing the probe printed nor in any URL' '
    ls ./*.out ./*.err >files &&
    test_line_count -gt 20 files &&
    ml_control GET log >log &&
    if grep -l -F "$TOKEN" ./*.out ./*.err log; then
        echo "the token leaked into the files above" >&2 &&
        false
    fi
'

test_done
