#!/bin/sh
# Test bodies are single-quoted and use variables and functions defined here:
# shellcheck disable=SC2016,SC2034,SC2317
test_description='processes share one API budget through the database (DESIGN §7)'
# shellcheck source=tests/test-lib.sh
. "$(dirname "$0")/test-lib.sh"

PROBE=$TEST_ROOT/tests/helpers/ml-probe
if ! test -x "$PROBE"; then
    skip_all="the probe is not built ($PROBE; run make)"
    test_done
fi

# Every assertion on pacing reads the slots the database granted (its own
# clock and arithmetic), never how long anything took here.

start_postgres
start_emulator --rate-limit 0 --page-cap 100

cat >ml.conf <<EOF
[database]
retries = 0

[mailerlite]
import_rate_limit = 0
retries = 2
EOF

# probe NAME ARGS...: the probe with ml.conf; NAME.out and NAME.err.
probe() {
    probe_name_=$1
    shift
    "$PROBE" -c "$TRASH/ml.conf" "$@" >"$probe_name_.out" 2>"$probe_name_.err"
}

# db_now: the database's clock, epoch seconds.
db_now() {
    psql_q "SELECT pg_catalog.date_part('epoch', pg_catalog.clock_timestamp())"
}

# bucket_tat: the shared API bucket's tat.
bucket_tat() {
    psql_q "SELECT value ->> 'tat' FROM sync.sync_state WHERE key = 'token_bucket_state'"
}

# bucket_reset: an idle bucket.
bucket_reset() {
    psql_q "UPDATE sync.sync_state SET value = '{}' WHERE key LIKE 'token_bucket%'"
}

# bucket_hold SECONDS: the next slot is SECONDS away, so that processes
# started one after the other all queue for it and ask side by side.
bucket_hold() {
    psql_q "UPDATE sync.sync_state SET value = jsonb_build_object('tat',
        date_part('epoch', clock_timestamp()) + $1) WHERE key = 'token_bucket_state'"
}

# overlap A.out B.out JQPATH: the slots at JQPATH of the two overlap in time.
overlap() {
    jq -s -e "(.[0] | [$3]) as \$a | (.[1] | [$3]) as \$b |
        (\$a | min) < (\$b | max) and (\$b | min) < (\$a | max)" "$1" "$2" >/dev/null && return 0
    echo "the two processes did not ask side by side: $1 and $2 do not overlap" >&2
    return 1
}

# spaced FILE INTERVAL: FILE holds slots (one a line); sorted, they are all
# distinct and every one at least INTERVAL after the one before (less a
# microsecond for the text round trip of epoch seconds).
spaced() {
    sort -g "$1" | awk -v iv="$2" '
        NR > 1 && $1 - prev < iv - 1e-6 {
            printf "slots %.6f and %.6f are %.6f s apart, less than %.6f\n",
                prev, $1, $1 - prev, iv
            bad = 1
        }
        { prev = $1 }
        END { exit bad }' >&2
}

test_expect_success 'install the schema; seed 1,000 subscribers' '
    crosswalk-migrate >migrate.out &&
    test_json_eq migrate.out .latest "$(jq .to migrate.out)" &&
    ml_control POST generate "{\"count\":1000,\"email_format\":\"user%d@example.com\"}" >out &&
    test_json_eq out .inserted 1000
'

test_expect_success 'one process: consecutive slots exactly one interval apart' '
    probe one --rate-limit 1200 take 5 &&
    test_json_eq one.out .limit 1200 &&
    test_json_eq one.out "[.grants[].slot > 0] | all" true &&
    jq -r ".grants[].slot" one.out >slots &&
    test_line_count = 5 slots &&
    spaced slots "$(jq .interval one.out)" &&
    test "$(bucket_tat)" != ""
'

test_expect_success 'two processes at once get distinct slots an interval apart' '
    bucket_hold 0.5 &&
    { "$PROBE" -c "$TRASH/ml.conf" --rate-limit 1200 take 10 >a.out 2>a.err & } &&
    pid=$! &&
    probe b --rate-limit 1200 take 10 &&
    wait "$pid" &&
    overlap a.out b.out ".grants[].slot" &&
    jq -r ".grants[].slot" a.out b.out >slots &&
    test_line_count = 20 slots &&
    sort -u slots >uniq &&
    test_line_count = 20 uniq &&
    spaced slots "$(jq .interval a.out)"
'

test_expect_success 'the emulator enforcing the limit sees no 429 from two walkers' '
    ml_control POST config "{\"rate_limit\":1200}" >out &&
    test_when_finished "ml_control POST config \"{\\\"rate_limit\\\":0}\" >/dev/null" &&
    ml_control DELETE log >out &&
    bucket_hold 0.5 &&
    { "$PROBE" -c "$TRASH/ml.conf" --rate-limit 1200 walk >w1.out 2>w1.err & } &&
    pid=$! &&
    probe w2 --rate-limit 1200 walk &&
    wait "$pid" &&
    overlap w1.out w2.out ".slots[]" &&
    test_json_eq w1.out .rows 1000 &&
    test_json_eq w2.out .rows 1000 &&
    ml_control GET log >log &&
    jq -s -c "map(.status) | group_by(.) | map([.[0], length])" log >actual &&
    echo "[[200,20]]" >expect &&
    test_cmp expect actual &&
    # Every request the emulator saw took a token, and the tokens of both
    # walkers are one sequence spaced by the interval.
    test_json_eq w1.out .slotsUnknown 0 &&
    test_json_eq w2.out .slotsUnknown 0 &&
    jq -r ".slots[]" w1.out w2.out >slots &&
    test_line_count = 20 slots &&
    spaced slots "$(jq -n "60 / 1200 * 1.005")"
'

test_expect_success 'a smaller x-ratelimit-limit from the server is adopted' '
    bucket_reset &&
    ml_control POST config "{\"rate_limit\":600}" >out &&
    test_when_finished "ml_control POST config \"{\\\"rate_limit\\\":0}\" >/dev/null" &&
    probe adopt --rate-limit 100000 walk &&
    test_json_eq adopt.out .rows 1000 &&
    test_grep "the API allows 600 requests per minute, fewer than the 100000 configured" \
        adopt.err &&
    # The first request went at the configured pace; every later one at 600.
    jq -r ".slots[1:][]" adopt.out >slots &&
    test_line_count = 9 slots &&
    spaced slots "$(jq -n "60 / 600 * 1.005")"
'

test_expect_success 'a 429 pushes the shared bucket past Retry-After, for every process' '
    bucket_reset &&
    ml_control POST faults "{\"rules\":[{\"method\":\"GET\",\"path_prefix\":\"/api/subscribers\",\"kind\":\"rate_limit\",\"retry_after\":1}]}" >out &&
    before=$(db_now) &&
    test_expect_code 69 probe told --rate-limit 1200 --retries 0 count &&
    test_grep "HTTP 429 (Retry-After 1 s)" told.err &&
    tat=$(bucket_tat) &&
    awk -v t="$tat" -v b="$before" "BEGIN { exit !(t >= b + 1) }" &&
    # Another process, told nothing, gets its slot after the Retry-After.
    probe other --rate-limit 1200 take 1 &&
    slot=$(jq ".grants[0].slot" other.out) &&
    awk -v s="$slot" -v b="$before" "BEGIN { exit !(s >= b + 1) }"
'

test_expect_success 'a 429 that is retried: the retry waits, then the walk goes on' '
    bucket_reset &&
    ml_control POST faults "{\"rules\":[{\"method\":\"GET\",\"path_prefix\":\"/api/subscribers\",\"after\":3,\"kind\":\"rate_limit\",\"retry_after\":1}]}" >out &&
    before=$(db_now) &&
    probe retried --rate-limit 1200 walk &&
    test_json_eq retried.out .rows 1000 &&
    test_json_eq retried.out .requests 11 &&
    test_json_eq retried.out .slotsUnknown 1 &&
    # Page 4 took two tokens (its slots are not known); the pages after it
    # went no earlier than the Retry-After, by the database clock.
    jq -r ".slots[3:][]" retried.out >late &&
    test_line_count = 6 late &&
    awk -v b="$before" "\$1 < b + 1 { bad = 1 } END { exit bad }" late
'

test_expect_success 'an import batch takes a token from the import bucket too' '
    bucket_reset &&
    cat >imp.json <<-\EOF &&
	[{"method":"POST","path":"api/subscribers","body":{"email":"imp1@example.com"}},
	 {"method":"POST","path":"api/subscribers","body":{"email":"imp2@example.com"}}]
	EOF
    ml_control DELETE log >out &&
    probe imp --rate-limit 1200 --import-rate-limit 600 batch imp.json &&
    test_json_eq imp.out .codes "[201,201]" &&
    ml_control GET log >log &&
    test_json_eq log .import true &&
    psql_q "SELECT (value ->> '\''limit'\'') FROM sync.sync_state WHERE key = '\''token_bucket_import'\''" >actual &&
    echo 600 >expect &&
    test_cmp expect actual
'

test_expect_success 'limit 0: no database needed at all' '
    (
        PGHOST=$TRASH/no-such-socket-dir &&
        PGPORT=1 &&
        export PGHOST PGPORT &&
        probe off --rate-limit 0 take 3 &&
        test_json_eq off.out "[.grants[].slot]" "[0,0,0]" &&
        test_json_eq off.out .limit 0 &&
        probe offwalk --rate-limit 0 walk &&
        test_json_eq offwalk.out .rows 1002 &&
        test_json_eq offwalk.out .slots "[]" &&
        # The same settings with a limit do need the (missing) database.
        test_expect_code 69 probe on --rate-limit 1200 take 1 &&
        test_grep "could not connect to the database" on.err
    )
'

test_done
