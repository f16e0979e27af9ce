#!/bin/sh
# Test bodies are single-quoted and use variables and functions defined here:
# shellcheck disable=SC2016,SC2034,SC2317
test_description='backfill-sync links both sides by email, in batches, with shadows and an audit trail'
# shellcheck source=tests/test-lib.sh
. "$(dirname "$0")/test-lib.sh"

start_postgres
start_emulator --page-cap 100 --rate-limit 0

cat >cw.conf <<'EOF'
[mailerlite]
rate_limit = 0
page_size = 1000
[table]
name = public.clients
[fields]
first_name = name
last_name = last_name
company = company
EOF

reset_both_sides() {
    ml_control POST reset >/dev/null &&
    ml_control POST config '{"page_cap": '"$1"', "rate_limit": 0}' >/dev/null &&
    psql_q "SET client_min_messages = warning;
            DROP SCHEMA IF EXISTS sync CASCADE; DROP TABLE IF EXISTS public.clients" &&
    crosswalk-migrate -q -c cw.conf
}

test_expect_success 'setup: 24,222 subscribers, 17,000 of them also in the table' '
    reset_both_sides 100 &&
    "$TEST_ROOT/scripts/sample-data" sql 24222 17000 | psql_file &&
    "$TEST_ROOT/scripts/sample-data" ndjson 24222 17000 >subs.ndjson &&
    ml_control POST subscribers @subs.ndjson >loaded &&
    test_json_eq loaded .inserted 24222 &&
    ml_control DELETE log
'

test_expect_success 'a backfill at page cap 100 reads B in exactly 243 list requests' '
    backfill-sync -c cw.conf >out.json 2>err &&
    test_json_eq out.json .status completed &&
    test_json_eq out.json .done true &&
    test_json_eq out.json .matched 17000 &&
    test_json_eq out.json .crosswalkCreated 17000 &&
    test_json_eq out.json .shadowsCreated 17000 &&
    test_json_eq out.json .onlyInA 7222 &&
    test_json_eq out.json .onlyInB 7222 &&
    test_json_eq out.json .skipped 0 &&
    test_json_eq out.json .errors 0 &&
    test_json_eq out.json .batches 49 &&
    test_json_eq out.json .nextCursor null &&
    test_json_eq out.json .apiRequests 244 &&
    ml_control GET log >log.jsonl &&
    list_pages log.jsonl >pages &&
    test_line_count = 243 pages &&
    jq -e ".durationMs | type == \"number\"" out.json
'

test_expect_success 'every list request carries our limit; links.next is never followed' '
    jq -s "[.[] | select(.path == \"/api/subscribers\") | .query
            | select(test(\"(^|&)limit=(100|1000)(&|\$)\") | not)] | length" log.jsonl >actual &&
    echo 1 >expect &&
    test_cmp expect actual &&
    jq -r "select(.path == \"/api/subscribers\") | .status" log.jsonl | sort -u >actual &&
    echo 200 >expect &&
    test_cmp expect actual
'

test_expect_success 'the crosswalk pairs each A key with the B id of the same email' '
    expected_crosswalk >expect &&
    crosswalk_rows >actual &&
    test_line_count = 17000 actual &&
    test_cmp expect actual
'

test_expect_success 'mixed-case A emails are matched by their normalized form' '
    psql_q "SELECT count(*) FROM public.clients a
            JOIN sync.integration_crosswalk c ON c.a_id = a.id::text
            WHERE a.email <> c.email" >actual &&
    echo 1700 >expect &&
    test_cmp expect actual
'

test_expect_success 'every link has a shadow holding both sides, drift included' '
    psql_q "SELECT count(*) FROM sync.integration_crosswalk c
            JOIN sync.sync_shadow s ON s.crosswalk_id = c.id" >actual &&
    echo 17000 >expect &&
    test_cmp expect actual &&
    psql_q "SELECT s.a_snapshot, s.b_snapshot FROM sync.sync_shadow s
            JOIN sync.integration_crosswalk c ON c.id = s.crosswalk_id
            WHERE c.email = '\''contact5@example.com'\''" >snap &&
    cut -d "|" -f1 snap | jq -e ".fields.last_name == \"Last5\" and .fields.name == \"Femi\"
                          and .email == \"contact5@example.com\"" &&
    cut -d "|" -f2 snap | jq -e ".fields.last_name == \"Changed5\" and .status == \"active\"" &&
    psql_q "SELECT count(*) FROM sync.sync_shadow
            WHERE a_snapshot->'\''fields'\'' <> b_snapshot->'\''fields'\''" >actual &&
    echo 2428 >expect &&
    test_cmp expect actual
'

test_expect_success 'sync_status.backfill tells the whole story' '
    psql_q "SELECT value FROM sync.sync_state WHERE key = '\''sync_status'\''" >status.json &&
    jq -e ".backfill | .status == \"completed\" and .phase == \"done\" and .paused == false
           and .currentBatch == 49 and .totalBatches == 49 and .shadowsCreated == 17000
           and .errors == 0 and (.startedAt | test(\"Z\$\"))
           and (.completedAt >= .startedAt) and (.lastUpdatedAt >= .startedAt)" status.json &&
    psql_q "SELECT count(*) FROM sync.sync_state WHERE key LIKE '\''cursor:%'\''" >actual &&
    echo 0 >expect &&
    test_cmp expect actual
'

test_expect_success 'every link, contact on one side only and the job itself are logged' '
    psql_q "SELECT action, count(*), count(DISTINCT run_id) FROM sync.sync_log
            GROUP BY 1 ORDER BY 1" >actual &&
    test_write_lines "job_completed|1|1" "job_started|1|1" "linked|17000|1" \
        "only_in_a|7222|1" "only_in_b|7222|1" >expect &&
    test_cmp expect actual &&
    psql_q "SELECT detail FROM sync.sync_log WHERE action = '\''job_completed'\''" >detail.json &&
    jq -e ".status == \"completed\" and .matched == 17000" detail.json &&
    psql_q "SELECT count(*) FROM sync.sync_log l JOIN sync.integration_crosswalk c
            ON (c.a_id, c.b_id, c.email) = (l.a_id, l.b_id, l.email) WHERE l.action = '\''linked'\''" >actual &&
    echo 17000 >expect &&
    test_cmp expect actual &&
    psql_q "SELECT count(*) FROM public.clients" >actual &&
    echo 24222 >expect &&
    test_cmp expect actual &&
    jq -s "[.[] | select(.method != \"GET\")] | length" log.jsonl >actual &&
    echo 0 >expect &&
    test_cmp expect actual
'

test_expect_success 'a completed backfill is not run again without --restart' '
    ml_control DELETE log &&
    backfill-sync -c cw.conf >out.json &&
    test_json_eq out.json .done true &&
    test_json_eq out.json .apiRequests 0 &&
    test_grep "restart" out.json &&
    list_pages >pages &&
    test_must_be_empty pages
'

test_expect_success '--restart walks again, adds nothing and keeps every shadow' '
    psql_q "SELECT crosswalk_id, a_hash, b_hash, synced_at FROM sync.sync_shadow" | sort >before &&
    backfill-sync -c cw.conf --restart --quiet >out.json &&
    test_must_be_empty out.json &&
    psql_q "SELECT crosswalk_id, a_hash, b_hash, synced_at FROM sync.sync_shadow" | sort >after &&
    test_cmp before after &&
    psql_q "SELECT count(*) FROM sync.integration_crosswalk" >actual &&
    echo 17000 >expect &&
    test_cmp expect actual
'

test_expect_success 'at page cap 1000 the same walk takes 25 list requests' '
    reset_both_sides 1000 &&
    "$TEST_ROOT/scripts/sample-data" sql 24222 17000 | psql_file &&
    ml_control POST subscribers @subs.ndjson >/dev/null &&
    ml_control DELETE log &&
    backfill-sync -c cw.conf --batch-size 5000 >out.json &&
    test_json_eq out.json .matched 17000 &&
    test_json_eq out.json .batches 5 &&
    list_pages >pages &&
    test_line_count = 25 pages
'

test_expect_success 'the page cap learned from a 422 is remembered for the next run' '
    reset_both_sides 100 &&
    ml_control POST config "{\"page_cap_mode\": \"reject\"}" >/dev/null &&
    "$TEST_ROOT/scripts/sample-data" sql 300 200 | psql_file &&
    "$TEST_ROOT/scripts/sample-data" ndjson 300 200 >small.ndjson &&
    ml_control POST subscribers @small.ndjson >/dev/null &&
    ml_control DELETE log &&
    backfill-sync -c cw.conf >out.json &&
    test_json_eq out.json .matched 200 &&
    ml_control GET log >log.jsonl &&
    jq -s "[.[] | select(.status == 422)] | length" log.jsonl >actual &&
    echo 1 >expect &&
    test_cmp expect actual &&
    psql_q "SELECT value->>'\''cap'\'' FROM sync.sync_state WHERE key = '\''mailerlite_page_cap'\''" >actual &&
    echo 100 >expect &&
    test_cmp expect actual &&
    ml_control DELETE log &&
    backfill-sync -c cw.conf --restart >out.json &&
    ml_control GET log >log.jsonl &&
    jq -s "[.[] | select(.status == 422)] | length" log.jsonl >actual &&
    echo 0 >expect &&
    test_cmp expect actual
'

test_expect_success 'setup: bad and duplicate emails on both sides' '
    reset_both_sides 100 &&
    psql_q "CREATE TABLE public.clients (id uuid PRIMARY KEY, email text, first_name text,
              last_name text, company text, updated_at timestamptz NOT NULL DEFAULT now());
            INSERT INTO public.clients (id, email, first_name) VALUES
              (md5('\''1'\'')::uuid, '\''ok@example.com'\'', '\''Ok'\''),
              (md5('\''2'\'')::uuid, '\''Twin@Example.com'\'', '\''Twin1'\''),
              (md5('\''3'\'')::uuid, '\''twin@example.com '\'', '\''Twin2'\''),
              (md5('\''4'\'')::uuid, '\'''\'', '\''Empty'\''),
              (md5('\''5'\'')::uuid, NULL, '\''Null'\''),
              (md5('\''6'\'')::uuid, '\''not an email'\'', '\''Bad'\''),
              (md5('\''7'\'')::uuid, '\''bdup@example.com'\'', '\''Bdup'\''),
              (md5('\''8'\'')::uuid, '\''a-only@example.com'\'', '\''Aonly'\''),
              (md5('\''9'\'')::uuid, '\''mixed@example.com'\'', '\''Mixed'\'')" &&
    cat >subs.ndjson <<-\EOF &&
	{"email":"ok@example.com","fields":{"name":"Ok"}}
	{"email":"twin@example.com","fields":{"name":"Twin"}}
	{"email":"bdup@example.com","fields":{"name":"B1"}}
	{"email":"b-only@example.com","fields":{"name":"Bonly"}}
	{"email":"not-an-email","fields":{"name":"Bad"}}
	{"email":" Mixed@Example.COM","fields":{"name":"Mixed"}}
	EOF
    ml_control POST subscribers @subs.ndjson >/dev/null
'

test_expect_success 'invalid and duplicate emails are skipped, counted and logged; the run goes on' '
    backfill-sync -c cw.conf >out.json &&
    test_json_eq out.json .status completed &&
    test_json_eq out.json .matched 3 &&
    psql_q "SELECT email FROM sync.integration_crosswalk ORDER BY 1" >actual &&
    test_write_lines bdup@example.com mixed@example.com ok@example.com >expect &&
    test_cmp expect actual &&
    psql_q "SELECT action, detail->>'\''side'\'', detail->>'\''reason'\'', coalesce(email, '\''-'\'')
            FROM sync.sync_log ORDER BY 1, 2, 3, 4" >log.txt &&
    test_grep -F "skipped|a|duplicate email in A|twin@example.com" log.txt &&
    test_grep -F "skipped|b|duplicate email in A|twin@example.com" log.txt &&
    test_grep -F "skipped|a|empty email|-" log.txt &&
    test_grep -F "skipped|a|invalid email|not an email" log.txt &&
    test_grep -F "skipped|b|invalid email|not-an-email" log.txt &&
    test_grep -F "only_in_b|||b-only@example.com" log.txt &&
    test_grep -F "only_in_a|||a-only@example.com" log.txt &&
    test_json_eq out.json .onlyInA 1 &&
    test_json_eq out.json .onlyInB 1 &&
    jq -e ".skipped >= 6" out.json
'

test_expect_success '--dry-run computes the same plan and writes nothing' '
    reset_both_sides 100 &&
    "$TEST_ROOT/scripts/sample-data" sql 1000 700 | psql_file &&
    "$TEST_ROOT/scripts/sample-data" ndjson 1000 700 >subs.ndjson &&
    ml_control POST subscribers @subs.ndjson >/dev/null &&
    psql_q "SELECT count(*) FROM sync.sync_state" >state.before &&
    backfill-sync -c cw.conf --dry-run --batch-size 100 >dry.json &&
    test_json_eq dry.json .dryRun true &&
    test_json_eq dry.json .matched 700 &&
    test_json_eq dry.json .crosswalkCreated 700 &&
    test_json_eq dry.json .onlyInA 300 &&
    test_json_eq dry.json .onlyInB 300 &&
    psql_q "SELECT (SELECT count(*) FROM sync.integration_crosswalk)
                 + (SELECT count(*) FROM sync.sync_shadow)
                 + (SELECT count(*) FROM sync.sync_log)" >actual &&
    echo 0 >expect &&
    test_cmp expect actual &&
    psql_q "SELECT count(*) FROM sync.sync_state" >state.after &&
    test_cmp state.before state.after &&
    backfill-sync -c cw.conf --batch-size 100 >real.json &&
    for k in matched crosswalkCreated shadowsCreated onlyInA onlyInB skipped batches; do
        jq ".$k" dry.json >expect &&
        jq ".$k" real.json >actual &&
        test_cmp expect actual || return 1
    done
'

test_expect_success 'a namespace keeps its own status and cursor' '
    backfill-sync -c cw.conf --namespace staging --batch-size 100 >out.json &&
    test_json_eq out.json .crosswalkCreated 0 &&
    test_json_eq out.json .matched 700 &&
    psql_q "SELECT key FROM sync.sync_state WHERE key LIKE '\''sync_status%'\'' ORDER BY 1" >actual &&
    test_write_lines sync_status sync_status:staging >expect &&
    test_cmp expect actual
'

test_done
