#!/bin/sh
# Test bodies are single-quoted and use variables and functions defined here:
# shellcheck disable=SC2016,SC2034,SC2317
test_description='enterprise-sync on bad values, lost subscribers, bad cursors and options, and an API that fails or talks nonsense'
# shellcheck source=tests/test-lib.sh
. "$(dirname "$0")/test-lib.sh"

# 60 contacts a side, 50 shared, at 10 a page: B is walked newest first, so
# after the first pass the pages are the 10 subscribers created from A's
# own rows, then b-only59..50, then contact49..40, ..., contact9..0. A
# page's writes fit in one /batch (batch_size 20).
start_postgres
start_emulator --page-cap 10 --rate-limit 0 --import-limit 0

cat >cw.conf <<'EOF'
[mailerlite]
rate_limit = 0
import_rate_limit = 0
page_size = 10
retries = 2
[table]
name = public.clients
[fields]
first_name = name
last_name = last_name
company = company
score = score
[sync]
batch_size = 20
EOF

# A's row of sample contact I.
row() {
    echo "id = md5('client-$1')::uuid"
}

# b_field EMAIL FIELD: the subscriber's field value in B (null when absent).
b_field() {
    ml_control GET subscribers >"$TRASH/.b.jsonl" &&
    jq -r -c --arg e "$1" "select(.email == \$e) | .fields.$2" "$TRASH/.b.jsonl"
}

# shadow EMAIL: the contact's shadow, "a_snapshot|b_snapshot|synced_at".
shadow() {
    psql_q "SELECT s.a_snapshot, s.b_snapshot, s.synced_at FROM sync.sync_shadow s
            JOIN sync.integration_crosswalk c ON c.id = s.crosswalk_id WHERE c.email = '$1'"
}

# last_run_log ACTION: the emails of ACTION rows of the last run, sorted.
last_run_log() {
    psql_q "SELECT email FROM sync.sync_log WHERE action = '$1' AND run_id =
              (SELECT run_id FROM sync.sync_log WHERE action = 'job_started' ORDER BY id DESC LIMIT 1)
            ORDER BY email"
}

# state_dump FILE: everything both sides and crosswalk hold, byte for byte.
state_dump() {
    {
        ml_control GET subscribers &&
        psql_q "SELECT * FROM public.clients ORDER BY id" &&
        psql_q "SELECT * FROM sync.integration_crosswalk ORDER BY id" &&
        psql_q "SELECT * FROM sync.sync_shadow ORDER BY crosswalk_id" &&
        psql_q "SELECT key, value FROM sync.sync_state WHERE key LIKE 'cursor:%' ORDER BY key" &&
        psql_q "SELECT count(*) FROM sync.sync_log WHERE action NOT LIKE 'job_%'"
    } >"$1"
}

restore_token() {
    ml_control POST config '{"token":"test-token"}' >/dev/null
}

full_run() {
    enterprise-sync -c cw.conf --max-records 100000 --max-duration 0 "$@"
}

test_expect_success 'setup: a number field in B, a text column in A, a first full pass' '
    ml_control POST fields "{\"name\":\"score\",\"type\":\"number\"}" &&
    "$TEST_ROOT/scripts/sample-data" sql 60 50 | psql_file &&
    psql_q "ALTER TABLE public.clients ADD COLUMN score text" &&
    "$TEST_ROOT/scripts/sample-data" ndjson 60 50 >subs.ndjson &&
    ml_control POST subscribers @subs.ndjson >/dev/null &&
    crosswalk-migrate -q -c cw.conf &&
    full_run >out.json 2>err &&
    test_json_eq out.json .done true &&
    test_json_eq out.json .errors 0 &&
    test_json_eq out.json .created.inB 10 &&
    expected_crosswalk >expect &&
    crosswalk_rows >actual &&
    test_line_count = 60 actual &&
    test_cmp expect actual &&
    links_are_whole
'

# ---- record-level failures

test_expect_success 'a value B refuses (text in a number field) fails that contact only' '
    psql_q "UPDATE public.clients SET company = '\''Score Co '\'' || i, updated_at = now()
            FROM generate_series(1, 8) i WHERE id = md5('\''client-'\'' || i)::uuid" &&
    psql_q "UPDATE public.clients SET score = '\''abc'\'' WHERE $(row 5)" &&
    shadow contact5@example.com >shadow-before &&
    b_field contact5@example.com company >company-before &&
    test_expect_code 1 full_run >out.json 2>err &&
    test_json_eq out.json .done true &&
    test_json_eq out.json .errors 1 &&
    test_json_eq out.json ".failures | length" 1 &&
    test_json_eq out.json ".failures[0].email" contact5@example.com &&
    test_json_eq out.json ".failures[0] | .a_id != null and .b_id != null" true &&
    test_grep "score" out.json &&
    test_json_eq out.json .updated.toB 7 &&
    last_run_log error >actual &&
    echo contact5@example.com >expect &&
    test_cmp expect actual &&
    for i in 1 2 3 4 6 7 8
    do
        b_field contact$i@example.com company >actual &&
        echo "Score Co $i" >expect &&
        test_cmp expect actual || return 1
    done &&
    b_field contact5@example.com company >actual &&
    test_cmp company-before actual &&
    shadow contact5@example.com >shadow-after &&
    test_cmp shadow-before shadow-after &&
    links_are_whole
'

test_expect_success 'once the value is fixed, the next run syncs that contact' '
    psql_q "UPDATE public.clients SET score = '\''7'\'' WHERE $(row 5)" &&
    full_run >out.json 2>err &&
    test_json_eq out.json .errors 0 &&
    test_json_eq out.json .updated.toB 1 &&
    b_field contact5@example.com company >actual &&
    echo "Score Co 5" >expect &&
    test_cmp expect actual &&
    b_field contact5@example.com score >actual &&
    echo 7 >expect &&
    test_cmp expect actual &&
    shadow contact5@example.com >shadow-after &&
    ! test_cmp shadow-before shadow-after
'

test_expect_success 'a value longer than B takes (1,025 characters) fails that contact only' '
    psql_q "UPDATE public.clients SET company = '\''Long Co '\'' || i, updated_at = now()
            FROM generate_series(11, 18) i WHERE id = md5('\''client-'\'' || i)::uuid" &&
    psql_q "UPDATE public.clients SET company = repeat('\''x'\'', 1025) WHERE $(row 16)" &&
    shadow contact16@example.com >shadow-before &&
    test_expect_code 1 full_run >out.json 2>err &&
    test_json_eq out.json .errors 1 &&
    test_json_eq out.json ".failures | map(.email)" "[\"contact16@example.com\"]" &&
    test_json_eq out.json .updated.toB 7 &&
    last_run_log error >actual &&
    echo contact16@example.com >expect &&
    test_cmp expect actual &&
    for i in 11 12 13 14 15 17 18
    do
        b_field contact$i@example.com company >actual &&
        echo "Long Co $i" >expect &&
        test_cmp expect actual || return 1
    done &&
    b_field contact16@example.com company >actual &&
    echo "Company 16" >expect &&
    test_cmp expect actual &&
    shadow contact16@example.com >shadow-after &&
    test_cmp shadow-before shadow-after
'

test_expect_success 'once it fits (1,024 characters), the next run syncs it' '
    psql_q "UPDATE public.clients SET company = repeat('\''y'\'', 1024) WHERE $(row 16)" &&
    full_run >out.json 2>err &&
    test_json_eq out.json .errors 0 &&
    b_field contact16@example.com company >actual &&
    test "$(cat actual)" = "$(printf "%01024d" 0 | tr 0 y)"
'

test_expect_success 'a linked subscriber deleted in B is reported, not silently re-created' '
    ml_control POST delete "{\"email\":\"contact27@example.com\"}" &&
    psql_q "SELECT b_id FROM sync.integration_crosswalk WHERE email = '\''contact27@example.com'\''" >old-b-id &&
    test_line_count = 1 old-b-id &&
    psql_q "UPDATE public.clients SET company = '\''Gone Co'\'', updated_at = now() WHERE $(row 27)" &&
    test_expect_code 1 full_run >out.json 2>err &&
    test_json_eq out.json .errors 1 &&
    test_json_eq out.json ".failures[0].email" contact27@example.com &&
    test_json_eq out.json ".failures[0].b_id" "$(cat old-b-id)" &&
    test_grep "no longer exists" out.json &&
    test_json_eq out.json .created.inB 0 &&
    last_run_log error >actual &&
    echo contact27@example.com >expect &&
    test_cmp expect actual &&
    b_field contact27@example.com company >actual &&
    test_must_be_empty actual &&
    psql_q "SELECT b_id FROM sync.integration_crosswalk WHERE email = '\''contact27@example.com'\''" >actual &&
    test_cmp old-b-id actual
'

test_expect_success '--repair-missing creates it again and links it anew' '
    full_run --repair-missing >out.json 2>err &&
    test_json_eq out.json .errors 0 &&
    test_json_eq out.json .created.inB 1 &&
    b_field contact27@example.com company >actual &&
    echo "Gone Co" >expect &&
    test_cmp expect actual &&
    last_run_log repaired >actual &&
    echo contact27@example.com >expect &&
    test_cmp expect actual &&
    expected_crosswalk >expect &&
    crosswalk_rows >actual &&
    test_cmp expect actual &&
    links_are_whole &&
    ml_control GET subscribers | jq -r .email | sort | uniq -d >dups &&
    test_must_be_empty dups
'

# ---- cursors

test_expect_success 'a --cursor that is not a cursor: 65, with a hint to --restart' '
    state_dump before &&
    test_expect_code 65 enterprise-sync -c cw.conf --cursor "garbage!!" >out.json 2>err &&
    test_must_be_empty out.json &&
    test_grep "invalid cursor" err &&
    test_grep -e "--restart" err &&
    test_expect_code 65 enterprise-sync -c cw.conf --cursor "$(printf "not json" | base64 | tr "+/" "-_" | tr -d "=")" 2>err &&
    test_grep -e "--restart" err &&
    state_dump after &&
    test_cmp before after
'

test_expect_success 'a cursor of another namespace: 65' '
    test_expect_code 3 enterprise-sync -c cw.conf --namespace other --max-records 5 >other.json 2>err &&
    jq -r .nextCursor other.json >other.cursor &&
    test_expect_code 65 enterprise-sync -c cw.conf --max-records 5 --cursor "$(cat other.cursor)" >out.json 2>err &&
    test_must_be_empty out.json &&
    test_grep "namespace" err &&
    test_grep -e "--restart" err &&
    jq -r .nextCursor other.json | tr "_-" "/+" >b64 &&
    pad=$(( (4 - $(tr -d "\n" <b64 | wc -c) % 4) % 4 )) &&
    { tr -d "\n" <b64 && printf "%.${pad}s\n" "===" ; } | base64 -d >decoded &&
    jq -c ".ns = \"elsewhere\"" decoded | tr -d "\n" | base64 -w0 | tr "+/" "-_" | tr -d "=" >crafted &&
    test_expect_code 65 enterprise-sync -c cw.conf --namespace default --cursor "$(cat crafted)" 2>err &&
    test_grep "elsewhere" err
'

test_expect_success 'a cursor of another account: 65, from --cursor and from sync_state' '
    ml_control POST config "{\"token\":\"other-token\"}" >/dev/null &&
    test_when_finished restore_token &&
    (
        MAILERLITE_API_KEY=other-token &&
        export MAILERLITE_API_KEY &&
        test_expect_code 3 enterprise-sync -c cw.conf --max-records 5 >acct.json 2>err
    ) &&
    restore_token &&
    jq -r .nextCursor acct.json >acct.cursor &&
    test_expect_code 65 enterprise-sync -c cw.conf --cursor "$(cat acct.cursor)" >out.json 2>err &&
    test_must_be_empty out.json &&
    test_grep "another MailerLite account" err &&
    test_grep -e "--restart" err &&
    test_expect_code 65 enterprise-sync -c cw.conf >out.json 2>err &&
    test_grep "another MailerLite account" err &&
    test_grep "sync_state" err &&
    enterprise-sync -c cw.conf --restart --max-records 100000 >out.json 2>err &&
    test_json_eq out.json .done true
'

test_expect_success '--cursor with --restart: 64' '
    test_expect_code 64 enterprise-sync -c cw.conf --restart --cursor "$(cat acct.cursor)" >out.json 2>err &&
    test_must_be_empty out.json &&
    test_grep "cannot be combined" err
'

# ---- --max-change-ratio

test_expect_success '--max-change-ratio refuses a run that changes too much, writing nothing' '
    psql_q "UPDATE public.clients SET company = '\''Mass Co '\'' || i, updated_at = now()
            FROM generate_series(0, 39) i WHERE id = md5('\''client-'\'' || i)::uuid" &&
    state_dump before &&
    ml_control DELETE log &&
    test_expect_code 65 full_run --max-change-ratio 0.1 >out.json 2>err &&
    test_grep "max-change-ratio" err &&
    test_grep -e "--force" err &&
    state_dump after &&
    test_cmp before after
'

test_expect_success '--force applies it' '
    full_run --max-change-ratio 0.1 --force >out.json 2>err &&
    test_json_eq out.json .errors 0 &&
    test_json_eq out.json .updated.toB 40 &&
    b_field contact39@example.com company >actual &&
    echo "Mass Co 39" >expect &&
    test_cmp expect actual
'

test_expect_success 'a ratio of 0, above 1 or not a number: 64' '
    for r in 0 2 abc -0.5 ""
    do
        test_expect_code 64 enterprise-sync -c cw.conf --max-change-ratio "$r" >out.json 2>err &&
        test_must_be_empty out.json &&
        test_grep "max-change-ratio" err || return 1
    done &&
    test_expect_code 64 enterprise-sync -c cw.conf --force 2>err
'

# ---- options

test_expect_success 'a bad --direction or --max-records 0: 64' '
    test_expect_code 64 enterprise-sync -c cw.conf --direction bogus >out.json 2>err &&
    test_must_be_empty out.json &&
    test_grep "direction" err &&
    test_expect_code 64 enterprise-sync -c cw.conf --max-records 0 >out.json 2>err &&
    test_must_be_empty out.json &&
    test_grep "max-records" err &&
    test_expect_code 64 enterprise-sync -c cw.conf --max-records -3 2>err
'

# ---- the API fails

test_expect_success 'a lasting 5xx on /api/batch: 69, and the failed page left whole' '
    psql_q "UPDATE public.clients SET company = '\''Five Co '\'' || i, updated_at = now()
            FROM generate_series(0, 49) i WHERE id = md5('\''client-'\'' || i)::uuid" &&
    psql_q "SELECT c.email, s.a_snapshot, s.b_snapshot FROM sync.sync_shadow s
            JOIN sync.integration_crosswalk c ON c.id = s.crosswalk_id ORDER BY c.email" >shadows-before &&
    ml_control DELETE log &&
    ml_control POST faults "{\"rules\":[{\"method\":\"POST\",\"path_prefix\":\"/api/batch\",
        \"after\":1,\"kind\":\"status\",\"status\":503,\"count\":-1}]}" &&
    test_expect_code 69 full_run >out.json 2>err &&
    test_grep "503" err &&
    test_json_eq out.json .done false &&
    ml_control GET log >log.jsonl &&
    jq -s "[.[] | select(.path == \"/api/batch\" and .status == 503)] | length" log.jsonl >n &&
    echo 3 >expect &&
    test_cmp expect n &&
    # contact49..40 went out in the batch that passed and were committed;
    # the page of contact39..30 met the fault: nothing of it is recorded.
    ml_control GET subscribers | jq -r "select(.fields.company | test(\"^Five Co\")) | .email" |
        sort >in-b &&
    test_line_count = 10 in-b &&
    psql_q "SELECT c.email FROM sync.sync_shadow s JOIN sync.integration_crosswalk c
            ON c.id = s.crosswalk_id WHERE s.a_snapshot->'\''fields'\''->>'\''company'\'' LIKE '\''Five Co%'\''
            ORDER BY c.email" | sort >advanced &&
    test_cmp in-b advanced &&
    psql_q "SELECT c.email, s.a_snapshot, s.b_snapshot FROM sync.sync_shadow s
            JOIN sync.integration_crosswalk c ON c.id = s.crosswalk_id ORDER BY c.email" >shadows-after &&
    diff shadows-before shadows-after | sed -n "s/^> \([^|]*\)|.*/\1/p" | sort >changed &&
    test_cmp in-b changed &&
    links_are_whole &&
    psql_q "SELECT value->>'\''c'\'' IS NOT NULL FROM sync.sync_state WHERE key = '\''cursor:enterprise'\''" >actual &&
    echo t >expect &&
    test_cmp expect actual
'

test_expect_success 'with the fault gone, the next run resumes and converges' '
    ml_control DELETE faults &&
    full_run >out.json 2>err &&
    test_grep "resuming pass" err &&
    test_json_eq out.json .done true &&
    test_json_eq out.json .errors 0 &&
    ml_control GET subscribers | jq -r "select(.fields.company | test(\"^Five Co\")) | .email" >in-b &&
    test_line_count = 50 in-b &&
    expected_crosswalk >expect &&
    crosswalk_rows >actual &&
    test_cmp expect actual &&
    links_are_whole
'

test_expect_success 'a subscriber list without ids: 69 after retries, nothing written' '
    psql_q "UPDATE public.clients SET company = '\''Idless Co '\'' || i, updated_at = now()
            FROM generate_series(0, 9) i WHERE id = md5('\''client-'\'' || i)::uuid" &&
    state_dump before &&
    ml_control DELETE log &&
    ml_control POST faults "{\"rules\":[{\"method\":\"GET\",\"path_prefix\":\"/api/subscribers\",
        \"kind\":\"missing_member\",\"member\":\"data.*.id\",\"count\":-1}]}" &&
    test_expect_code 69 full_run >out.json 2>err &&
    state_dump after &&
    test_cmp before after &&
    ml_control GET log >log.jsonl &&
    jq -c "select(.path != \"/api/subscribers\") | [.method, .path]" log.jsonl >other &&
    test_must_be_empty other &&
    list_pages log.jsonl >pages &&
    test_line_count = 3 pages &&
    ml_control DELETE faults &&
    full_run >out.json 2>err &&
    test_json_eq out.json .errors 0 &&
    b_field contact9@example.com company >actual &&
    echo "Idless Co 9" >expect &&
    test_cmp expect actual
'

test_done
