#!/bin/sh
# Test bodies are single-quoted and use variables and functions defined here:
# shellcheck disable=SC2016,SC2034,SC2317
test_description='the guards of a scheduled job: circuit breaker, daily limit, database health'
# shellcheck source=tests/test-lib.sh
. "$(dirname "$0")/test-lib.sh"

PROBE=$TEST_ROOT/tests/helpers/guard-probe
if ! test -x "$PROBE"; then
    skip_all="the probe is not built ($PROBE; run make)"
    test_done
fi

# Every time is the database's: the tests move the stored times, never wait.

start_postgres

# conf FILE LINE...: a config that does not retry a lost connection, with
# these lines in [guards].
conf() {
    conf_file_=$1
    shift
    {
        printf '[database]\nretries = 0\n\n[guards]\n' &&
        printf '%s\n' "$@"
    } >"$TRASH/$conf_file_"
}

conf g.conf "breaker_errors = 3" "breaker_window = 10m" "breaker_cooldown = 5m" \
    "daily_limit = 10"

KEY=breaker:smart-sync
DAILY=daily:smart-sync

# probe NAME ARGS...: the probe with g.conf; NAME.out and NAME.err.
probe() {
    probe_name_=$1
    shift
    "$PROBE" -c "$TRASH/g.conf" "$@" >"$probe_name_.out" 2>"$probe_name_.err"
}

# doc KEY: the stored document, or nothing.
doc() {
    psql_q "SELECT value FROM sync.sync_state WHERE key = '$1'"
}

# store KEY 'SQL jsonb expression': replace the document.
store() {
    psql_q "INSERT INTO sync.sync_state (key, value) VALUES ('$1', $2)
            ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
}

# close_in_past KEY: move an open breaker's closesAtEpoch a second into the past.
close_in_past() {
    psql_q "UPDATE sync.sync_state SET value = value || jsonb_build_object('closesAtEpoch',
            date_part('epoch', clock_timestamp()) - 1) WHERE key = '$1'"
}

# fail_times N KEY: record N failures.
fail_times() {
    fail_times_i_=0
    while test "$fail_times_i_" -lt "$1"; do
        fail_times_i_=$((fail_times_i_ + 1))
        probe fail record "$2" fail "timeout $fail_times_i_" || return 1
    done
}

# TODAY_SQL: today's UTC date by the database's clock.
TODAY_SQL="to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD')"

test_expect_success 'install the schema' '
    crosswalk-migrate -q -c g.conf
'

test_expect_success 'a closed breaker lets runs go; a success on it writes nothing' '
    probe c0 check $KEY &&
    test_json_eq c0.out . "{\"go\":true,\"trial\":false}" &&
    probe r0 record $KEY ok &&
    doc $KEY >actual &&
    test_must_be_empty actual
'

test_expect_success 'three failures open the breaker; the fourth check is refused with 75' '
    probe f1 record $KEY fail "timeout 1" &&
    probe c1 check $KEY &&
    test_json_eq c1.out .go true &&
    probe f2 record $KEY fail "timeout 2" &&
    probe c2 check $KEY &&
    test_json_eq c2.out .go true &&
    doc $KEY >doc.json &&
    test_json_eq doc.json .state closed &&
    test_json_eq doc.json ".errors | length" 2 &&
    probe f3 record $KEY fail "could not connect: timeout 3" &&
    doc $KEY >doc.json &&
    test_json_eq doc.json .state open &&
    test_json_eq doc.json ".errors | length" 3 &&
    test_json_eq doc.json .lastError "could not connect: timeout 3" &&
    # one cool-down after the third failure, by the same clock
    test_json_eq doc.json "(.closesAtEpoch - .errors[2]) | . > 299.99 and . < 300.01" true &&
    test_expect_code 75 probe c4 check $KEY &&
    test_json_eq c4.out .go false &&
    test_json_eq c4.out .closesAt "$(jq -r .closesAt doc.json)" &&
    test_grep "error: circuit breaker is open: 3 errors in the last 10 minutes (last: could not connect: timeout 3)" c4.err &&
    test_grep "hint: Run again after $(jq -r .closesAt doc.json)" c4.err &&
    test_grep "detail: It opened at $(jq -r .openedAt doc.json)" c4.err
'

test_expect_success 'a refusal changes nothing stored' '
    doc $KEY >before.json &&
    test_expect_code 75 probe c5 check $KEY &&
    doc $KEY >after.json &&
    test_cmp before.json after.json
'

test_expect_success 'after the cool-down the breaker is half-open; a success closes it' '
    close_in_past $KEY &&
    probe c6 check $KEY &&
    test_json_eq c6.out . "{\"go\":true,\"trial\":true}" &&
    doc $KEY >doc.json &&
    test_json_eq doc.json .state half-open &&
    probe r6 record $KEY ok &&
    doc $KEY >doc.json &&
    test_json_eq doc.json .state closed &&
    test_json_eq doc.json .errors "[]" &&
    test_json_eq doc.json "has(\"closesAt\")" false &&
    probe c7 check $KEY &&
    test_json_eq c7.out . "{\"go\":true,\"trial\":false}"
'

test_expect_success 'a failure in half-open opens the breaker again' '
    fail_times 3 $KEY &&
    test_expect_code 75 probe c8 check $KEY &&
    close_in_past $KEY &&
    probe c9 check $KEY &&
    test_json_eq c9.out .trial true &&
    probe f9 record $KEY fail "still broken" &&
    doc $KEY >doc.json &&
    test_json_eq doc.json .state open &&
    test_json_eq doc.json "(.closesAtEpoch - .errors[-1]) | . > 299.99 and . < 300.01" true &&
    test_expect_code 75 probe c10 check $KEY &&
    test_grep "(last: still broken)" c10.err
'

test_expect_success 'a garbage document reads as a closed breaker, and is rewritten whole' '
    for v in "42" "\"open\"" "[1,2]" "{\"state\":42}" "{\"state\":\"open\"}" \
        "{\"state\":\"open\",\"closesAtEpoch\":\"tomorrow\"}" \
        "{\"state\":\"open\",\"closesAtEpoch\":1e400}" \
        "{\"state\":\"open\",\"closesAtEpoch\":\"NaN\"}"; do
        store $KEY "'\''$v'\''" &&
        probe g check $KEY &&
        test_json_eq g.out .go true || return 1
    done &&
    store $KEY "'\''{\"state\":42,\"errors\":[\"x\",null,-1,1e400]}'\''" &&
    probe gf record $KEY fail "first" &&
    doc $KEY >doc.json &&
    test_json_eq doc.json .state closed &&
    test_json_eq doc.json ".errors | length" 1 &&
    test_json_eq doc.json ".errors[0] | type" number
'

test_expect_success 'an open breaker whose closesAt is centuries away closes after one cool-down' '
    store $KEY "'\''{\"state\":\"open\",\"closesAtEpoch\":1e300}'\''" &&
    test_expect_code 75 probe far check $KEY &&
    psql_q "SELECT round((value ->> '\''closesAtEpoch'\'')::numeric
                - extract(epoch FROM (value ->> '\''updatedAt'\'')::timestamptz))
            FROM sync.sync_state WHERE key = '\''$KEY'\''" >actual &&
    echo 300 >expect &&
    test_cmp expect actual
'

test_expect_success 'processes recording at once lose no failure' '
    conf many.conf "breaker_errors = 1000" &&
    pids= &&
    for i in 1 2 3 4 5 6 7 8; do
        { "$PROBE" -c "$TRASH/many.conf" record breaker:many fail "p$i" >/dev/null 2>p$i.err & } &&
        pids="$pids $!" || return 1
    done &&
    for p in $pids; do
        wait "$p" || return 1
    done &&
    doc breaker:many >doc.json &&
    test_json_eq doc.json ".errors | length" 8 &&
    test_json_eq doc.json .state closed
'

test_expect_success 'the daily limit counts across calls and never goes below 0' '
    probe q0 left $DAILY &&
    test_json_eq q0.out .left 10 &&
    probe q1 charge $DAILY 3 &&
    probe q2 left $DAILY &&
    test_json_eq q2.out .left 7 &&
    probe q3 charge $DAILY 4 &&
    probe q4 left $DAILY &&
    test_json_eq q4.out .left 3 &&
    doc $DAILY >doc.json &&
    test_json_eq doc.json .used 7 &&
    psql_q "SELECT value ->> '\''day'\'' = $TODAY_SQL FROM sync.sync_state WHERE key = '\''$DAILY'\''" >actual &&
    echo t >expect &&
    test_cmp expect actual &&
    probe q5 charge $DAILY 5 &&
    probe q6 left $DAILY &&
    test_json_eq q6.out .left 0 &&
    probe q7 charge -- $DAILY -100 &&
    doc $DAILY >doc.json &&
    test_json_eq doc.json .used 0
'

test_expect_success 'a charge rolled back with its transaction is not counted' '
    probe q8 charge $DAILY 4 &&
    probe q9 charge --rollback $DAILY 5 &&
    test_json_eq q9.out .committed false &&
    probe q10 left $DAILY &&
    test_json_eq q10.out .left 6
'

test_expect_success 'a count stored for an older day counts as 0, and a charge starts today' '
    store $DAILY "'\''{\"day\":\"2000-01-01\",\"used\":9}'\''" &&
    probe q11 left $DAILY &&
    test_json_eq q11.out .left 10 &&
    probe q12 charge $DAILY 2 &&
    doc $DAILY >doc.json &&
    test_json_eq doc.json .used 2 &&
    test_json_eq doc.json ".day == \"2000-01-01\"" false
'

test_expect_success 'hostile counts: not a number or negative is 0, huge is all used' '
    for used in "\"lots\"" "-5" "null" "[3]" "2.9=8" "1e400=0" "12=0"; do
        case $used in
        *=*) want=${used#*=} && used=${used%=*} ;;
        *) want=10 ;;
        esac &&
        store $DAILY "jsonb_build_object('\''day'\'', $TODAY_SQL, '\''used'\'', '\''$used'\''::jsonb)" &&
        probe h left $DAILY &&
        test_json_eq h.out .left "$want" || return 1
    done &&
    store $DAILY "'\''[1,2]'\''" &&
    probe h1 left $DAILY &&
    test_json_eq h1.out .left 10 &&
    probe h2 charge $DAILY 1 &&
    doc $DAILY >doc.json &&
    test_json_eq doc.json .used 1 &&
    store $DAILY "jsonb_build_object('\''day'\'', $TODAY_SQL, '\''used'\'', '\''1e400'\''::jsonb)" &&
    probe h3 charge $DAILY 1 &&
    doc $DAILY >doc.json &&
    test_json_eq doc.json .used 1000000000000000
'

test_expect_success 'daily_limit 0: no limit' '
    conf nolimit.conf "daily_limit = 0" &&
    "$PROBE" -c "$TRASH/nolimit.conf" left $DAILY >out &&
    # jq reads numbers as doubles: compare the text
    test_grep "^{\"left\":9223372036854775807}$" out
'

test_expect_success 'the health check: free connections counted as the server counts them' '
    probe ok health &&
    test_json_eq ok.out ".rttMs > 0" true &&
    # the probe counted its own connection; this psql takes its place
    psql_q "SELECT current_setting('\''max_connections'\'')::int
              - current_setting('\''superuser_reserved_connections'\'')::int
              - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = '\''client backend'\'')" \
        >expect &&
    jq .freeConnections ok.out >actual &&
    test_cmp expect actual
'

test_expect_success 'an unhealthy database: 69, naming the figure and the limit' '
    conf busy.conf "min_free_connections = 100000" &&
    test_expect_code 69 "$PROBE" -c "$TRASH/busy.conf" health >out 2>err &&
    free=$(jq .freeConnections out) &&
    test_grep "error: the database is unhealthy: $free free connections, under min_free_connections 100000" err &&
    test_grep "detail: The best of three round trips of SELECT 1 took" err
'

test_done
