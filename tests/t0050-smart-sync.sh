#!/bin/sh
# Test bodies are single-quoted and use variables and functions defined here:
# shellcheck disable=SC2016,SC2034,SC2119,SC2120,SC2317
test_description='smart-sync syncs the contacts named by email, incrementally'
# shellcheck source=tests/test-lib.sh
. "$(dirname "$0")/test-lib.sh"

start_postgres
start_emulator --rate-limit 0 --log-bodies
# shellcheck source=tests/lib-world.sh
. "$TEST_ROOT/tests/lib-world.sh"

# ss [options] [emails]: smart-sync with cw.conf, the result in out.json.
ss() {
    smart-sync -c "$TRASH/cw.conf" "$@" >"$TRASH/out.json"
}

# entry EMAIL: the run's entry for EMAIL, compact, keys sorted.
entry() {
    jq -c -S --arg e "$1" '.out[] | select(.email == $e)' "$TRASH/out.json"
}

test_expect_success 'setup: both sides linked by a first enterprise-sync' '
    fresh
'

test_expect_success 'the legacy result: a changed contact and an untouched one' '
    a_set ann@example.com first_name Annie &&
    ss ann@example.com bob@example.com 2>err &&
    cat out.json &&
    b_id ann@example.com >ann.id &&
    jq -c -S -n --arg id "$(cat ann.id)" "{b_id: \$id, changed: true, email: \"ann@example.com\"}" >expect &&
    entry ann@example.com >actual &&
    test_cmp expect actual &&
    echo "{\"email\":\"bob@example.com\",\"reason\":\"no changes detected\",\"skipped\":true}" >expect &&
    entry bob@example.com >actual &&
    test_cmp expect actual &&
    test_json_eq out.json .ok true &&
    test_json_eq out.json .count 2 &&
    test_json_eq out.json "[keys[]] | sort" "[\"apiRequests\",\"count\",\"durationMs\",\"ok\",\"out\"]" &&
    check_both ann@example.com first_name name Annie
'

test_done
