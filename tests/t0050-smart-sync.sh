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

# shadow_b_time EMAIL: the B time the contact's shadow holds.
shadow_b_time() {
    psql_q "SELECT s.b_snapshot ->> 'updated_at' FROM sync.sync_shadow s
            JOIN sync.integration_crosswalk x ON x.id = s.crosswalk_id WHERE x.email = '$1'"
}

test_expect_success 'an edit in B in the second of the last sync is not taken for none' '
    a_set ann@example.com city Bergen &&
    ss ann@example.com &&
    check_both ann@example.com city city Bergen &&
    # B counts whole seconds: an edit in that second keeps the time
    b_edit ann@example.com \
        "{\"fields\": {\"name\": \"Annabel\"}, \"updated_at\": \"$(shadow_b_time ann@example.com)\"}" &&
    ss ann@example.com &&
    test_json_eq out.json ".out[0].changed" true &&
    check_both ann@example.com first_name name Annabel
'

# An A transaction left open: a_txn_begin SQL runs BEGIN and SQL in a
# psql session (A_TXN_PID), a_txn_commit ends it.
A_TXN_PID=
a_txn_begin() {
    mkfifo "$TRASH/a_txn" &&
    { PGAPPNAME=t0050-writer psql -X -q -v ON_ERROR_STOP=1 <"$TRASH/a_txn" \
        >"$TRASH/a_txn.out" 2>&1 7>&- 8>&- & } &&
    A_TXN_PID=$! &&
    exec 9>"$TRASH/a_txn" &&
    printf "BEGIN;\n%s;\n" "$1" >&9 &&
    psql_await "SELECT EXISTS (SELECT FROM pg_stat_activity
                WHERE application_name = 't0050-writer' AND state = 'idle in transaction')"
}
a_txn_commit() {
    test -n "$A_TXN_PID" || return 0
    echo "COMMIT;" >&9
    exec 9>&-
    wait "$A_TXN_PID"
    a_txn_status_=$?
    A_TXN_PID=
    rm -f "$TRASH/a_txn"
    return "$a_txn_status_"
}
test_atexit a_txn_commit

test_expect_success 'an edit in A committed after a sync that began later is not taken for none' '
    # its updated_at, the transaction start, comes before the sync
    a_txn_begin "UPDATE public.clients SET first_name = '\''Bobby'\'', updated_at = now()
                 WHERE email = '\''bob@example.com'\''" &&
    test_when_finished a_txn_commit &&
    b_set bob@example.com city Lima &&
    # a sync that meant to write the row would wait for the transaction
    PGOPTIONS="-c lock_timeout=10s" ss bob@example.com &&
    check_both bob@example.com city city Rome &&
    a_txn_commit &&
    ss bob@example.com &&
    test_json_eq out.json ".out[0].changed" true &&
    check_both bob@example.com first_name name Bobby
'

test_done
