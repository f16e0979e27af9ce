#!/bin/sh
# Test bodies are single-quoted and use variables and functions defined here:
# shellcheck disable=SC2016,SC2034,SC2119,SC2120,SC2317
test_description='smart-sync behind its guards: one run at a time, the circuit breaker, the daily limit, the database health check, and --repair'
# shellcheck source=tests/test-lib.sh
. "$(dirname "$0")/test-lib.sh"

start_postgres
start_emulator --rate-limit 0 --log-bodies
# shellcheck source=tests/lib-world.sh
. "$TEST_ROOT/tests/lib-world.sh"

# Every time the guards keep is the database's: the tests move the stored
# times by SQL, and never wait for them. A run held mid-run is held by a
# lock that the test releases, never by a delay.

BREAKER=breaker:smart-sync
DAILY=daily:smart-sync
ANN=ann@example.com
BOB=bob@example.com

# guard_conf [LINE...]: cw.conf as write_conf makes it, with LINEs (more
# sections and settings) after it.
guard_conf() {
    write_conf &&
    printf '%s\n' "$@" >>"$TRASH/cw.conf"
}

# ss NAME [options] [emails]: smart-sync with cw.conf, its result in
# NAME.json and its stderr in NAME.err; its exit status.
ss() {
    ss_name_=$1
    shift
    smart-sync -c "$TRASH/cw.conf" "$@" >"$TRASH/$ss_name_.json" 2>"$TRASH/$ss_name_.err"
}

# entry NAME EMAIL: NAME.json's entry for EMAIL, compact, keys sorted.
entry() {
    jq -c -S --arg e "$2" '.out[] | select(.email == $e)' "$TRASH/$1.json"
}

# expect_entry NAME EMAIL JSON: NAME.json's entry for EMAIL is JSON.
expect_entry() {
    printf '%s\n' "$3" | jq -c -S . >"$TRASH/expect.entry" &&
    entry "$1" "$2" >"$TRASH/actual.entry" &&
    test_cmp "$TRASH/expect.entry" "$TRASH/actual.entry"
}

# expect_changed NAME EMAIL: EMAIL was written, B's subscriber its link.
expect_changed() {
    expect_entry "$1" "$2" "{\"email\": \"$2\", \"changed\": true, \"b_id\": \"$(b_id "$2")\"}"
}

# expect_skipped NAME EMAIL REASON
expect_skipped() {
    expect_entry "$1" "$2" "{\"email\": \"$2\", \"skipped\": true, \"reason\": \"$3\"}"
}

# doc KEY: the sync_state document KEY in doc.json (empty when absent).
doc() {
    psql_q "SELECT value FROM sync.sync_state WHERE key = '$1'" >"$TRASH/doc.json"
}

# move_doc KEY 'SQL jsonb expression': the document's members replaced
# by the expression's (value || expression); the document must exist.
move_doc() {
    psql_q "UPDATE sync.sync_state SET value = value || $2 WHERE key = '$1'
            RETURNING 'moved'" >"$TRASH/.moved" &&
    echo moved | test_cmp - "$TRASH/.moved"
}

# close_in_past: the open breaker's cool-down over a second ago.
close_in_past() {
    move_doc "$BREAKER" "jsonb_build_object('closesAtEpoch',
                       date_part('epoch', clock_timestamp()) - 1)"
}

# breaker_reset: no breaker document: closed, no errors.
breaker_reset() {
    psql_q "DELETE FROM sync.sync_state WHERE key = '$BREAKER'"
}

# fault_batch STATUS: every POST /api/batch answers STATUS until the
# faults are dropped.
fault_batch() {
    ml_control POST faults "{\"rules\": [{\"method\": \"POST\", \"path_prefix\": \"/api/batch\",
                             \"count\": -1, \"kind\": \"status\", \"status\": $1}]}" >/dev/null
}

no_faults() {
    ml_control DELETE faults >/dev/null
}

# clear_log: the emulator's request log emptied.
clear_log() {
    ml_control DELETE log >/dev/null
}

# no_api_requests: none since clear_log.
no_api_requests() {
    api_requests >"$TRASH/requests" &&
    test_must_be_empty "$TRASH/requests"
}

# sync_log_count: rows in sync_log.
sync_log_count() {
    psql_q "SELECT count(*) FROM sync.sync_log"
}

# ---- a run held mid-run ----

# hold_email EMAIL: a psql session in the background (BLOCKER_PID) that
# holds the advisory lock every program takes on a contact's email before
# it reconciles it (lib/crosswalk.c), so that a smart-sync of EMAIL stops
# there, with the job's lock held, until release_email.
BLOCKER_PID=
hold_email() {
    PGAPPNAME=t0051-blocker psql -X -qAt -c "SELECT pg_advisory_lock(
            pg_catalog.hashtextextended('crosswalk-email:$1', 0)); SELECT pg_sleep(600)" \
        >>"$TRASH/blocker.out" 2>&1 </dev/null 7>&- 8>&- &
    BLOCKER_PID=$!
    psql_await "SELECT EXISTS (SELECT FROM pg_stat_activity
                               WHERE application_name = 't0051-blocker' AND wait_event = 'PgSleep')"
}

# release_email: end the blocking session, however it ended.
release_email() {
    test -n "$BLOCKER_PID" || return 0
    psql_terminate "application_name = 't0051-blocker'" "$BLOCKER_PID"
    BLOCKER_PID=
}

# ss_bg NAME [options] [emails]: ss in the background; its exit status is
# in NAME.rc when it ends. BG_PIDS gathers the shells to wait for.
BG_PIDS=
ss_bg() {
    ss_bg_name_=$1
    { ss "$@"; echo $? >"$TRASH/$ss_bg_name_.rc"; } </dev/null 7>&- 8>&- &
    BG_PIDS="$BG_PIDS $!"
}

# wait_bg: wait for every ss_bg.
wait_bg() {
    for wait_bg_pid_ in $BG_PIDS; do
        wait "$wait_bg_pid_"
    done
    BG_PIDS=
    return 0
}
test_atexit 'release_email; wait_bg'

# start_holder EMAIL: smart-sync of EMAIL in the background (holder.json,
# holder.err, holder.rc), held by hold_email once it holds the job's lock;
# HOLDER_BACKEND is its server pid. finish_holder lets it go on.
start_holder() {
    hold_email "$1" &&
    ss_bg holder "$1" &&
    psql_await "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'smart-sync'
                               AND wait_event_type = 'Lock' AND wait_event = 'advisory')" &&
    HOLDER_BACKEND=$(psql_q "SELECT pid FROM pg_stat_activity
                             WHERE application_name = 'smart-sync' AND wait_event = 'advisory'") &&
    # the job's lock is the two-key one (lib/db.c), granted
    psql_q "SELECT count(*) FROM pg_locks WHERE pid = $HOLDER_BACKEND AND locktype = 'advisory'
            AND objsubid = 2 AND granted" >"$TRASH/.held" &&
    echo 1 | test_cmp - "$TRASH/.held"
}

# finish_holder: release it and wait; the holder's exit status is 0.
finish_holder() {
    release_email &&
    wait_bg &&
    echo 0 | test_cmp - "$TRASH/holder.rc"
}

# last_run_of EMAIL: SQL for the run_id of the last smart-sync run that
# ended with EMAIL in its result.
last_run_of() {
    echo "SELECT run_id FROM sync.sync_log WHERE program = 'smart-sync'
          AND action IN ('job_completed', 'job_failed')
          AND detail -> 'out' @> '[{\"email\": \"$1\"}]' ORDER BY id DESC LIMIT 1"
}

# ---- the tests ----

test_expect_success 'a second run while one holds the lock: 75, naming the holder' '
    fresh &&
    a_set $ANN first_name Annie &&
    test_when_finished "release_email; wait_bg" &&
    start_holder $ANN &&
    test_expect_code 75 ss second $BOB &&
    test_grep "error: another run holds the lock \"smart-sync:default\"" second.err &&
    test_grep "detail: It is held by server pid $HOLDER_BACKEND (smart-sync) from \[local\]" second.err &&
    test_json_eq second.json .ok false &&
    test_json_eq second.json ".error | startswith(\"another run holds the lock\")" true &&
    test_json_eq second.json ".out[0].skipped" true &&
    test_json_eq second.json ".out[0].reason | startswith(\"another run holds the lock\")" true &&
    finish_holder &&
    expect_changed holder $ANN &&
    check_both $ANN first_name name Annie &&
    # the refusal wrote nothing: no run in sync_log, nothing in the breaker
    psql_q "SELECT count(DISTINCT run_id) FROM sync.sync_log WHERE program = '\''smart-sync'\''" >actual &&
    echo 1 >expect &&
    test_cmp expect actual &&
    doc $BREAKER &&
    test_must_be_empty doc.json
'

test_expect_success 'with --wait the second run waits for the lock, then runs' '
    a_set $ANN first_name Anna &&
    test_when_finished "release_email; wait_bg" &&
    start_holder $ANN &&
    # a wait that ends before the holder does is a refusal
    test_expect_code 75 ss short --wait 1s $BOB &&
    test_grep "error: another run holds the lock" short.err &&
    ss_bg waiter --wait 30s $BOB &&
    # the waiter has asked for the lock while the holder keeps it
    psql_await "SELECT EXISTS (SELECT FROM pg_stat_activity
                               WHERE application_name = '\''smart-sync'\''
                               AND pid <> $HOLDER_BACKEND AND state = '\''idle'\''
                               AND query LIKE '\''%pg_try_advisory_lock%'\'')" &&
    test_path_is_missing waiter.rc &&
    finish_holder &&
    echo 0 | test_cmp - waiter.rc &&
    expect_skipped waiter $BOB "no changes detected" &&
    # the waiter started only after the holder had finished
    psql_q "SELECT (SELECT id FROM sync.sync_log WHERE action = '\''job_started'\''
                    AND run_id = ($(last_run_of $BOB)))
                 > (SELECT id FROM sync.sync_log WHERE action = '\''job_completed'\''
                    AND run_id = ($(last_run_of $ANN)))" >actual &&
    echo t >expect &&
    test_cmp expect actual
'

test_expect_success 'three failed runs open the breaker; the fourth is refused without a request' '
    breaker_reset &&
    guard_conf "[mailerlite]" "retries = 0" &&
    fault_batch 500 &&
    for i in 1 2 3; do
        test_expect_code 69 ss fail$i $ANN &&
        test_grep "error: MailerLite API: request POST /batch failed: HTTP 500" fail$i.err &&
        doc $BREAKER &&
        test_json_eq doc.json ".errors | length" $i || return 1
    done &&
    test_json_eq doc.json .state open &&
    test_json_eq doc.json .lastError "MailerLite API: request POST /batch failed: HTTP 500" &&
    clear_log &&
    test_expect_code 75 ss open $ANN &&
    test_grep "error: circuit breaker is open: 3 errors in the last 10 minutes" open.err &&
    test_json_eq open.json .ok false &&
    test_json_eq open.json ".error | startswith(\"circuit breaker is open\")" true &&
    test_json_eq open.json .retryAt "$(jq -r .closesAt doc.json)" &&
    test_json_eq open.json .apiRequests 0 &&
    no_api_requests &&
    # a refusal is no failure: the breaker is as it was
    cp doc.json before.json &&
    doc $BREAKER &&
    test_cmp before.json doc.json
'

test_expect_success 'a failed trial opens the breaker again; an idle one leaves it; a good one closes it' '
    close_in_past &&
    test_expect_code 69 ss trial1 $ANN &&
    test_grep "error: MailerLite API: request POST /batch failed: HTTP 500" trial1.err &&
    doc $BREAKER &&
    test_json_eq doc.json .state open &&
    test_json_eq doc.json "(.closesAtEpoch - .errors[-1]) | . > 299.99 and . < 300.01" true &&
    test_expect_code 75 ss open2 $ANN &&
    test_grep "circuit breaker is open" open2.err &&
    close_in_past &&
    no_faults &&
    # a trial that asks nothing of the API proves nothing: still half-open
    ss idle not-an-email &&
    doc $BREAKER &&
    test_json_eq doc.json .state half-open &&
    a_set $ANN first_name Anya &&
    ss trial2 $ANN &&
    test_json_eq trial2.json .ok true &&
    check_both $ANN first_name name Anya &&
    doc $BREAKER &&
    test_json_eq doc.json .state closed &&
    test_json_eq doc.json .errors "[]" &&
    ss after $ANN &&
    expect_skipped after $ANN "no changes detected"
'

test_expect_success 'a refusal by the lock counts as no error of the breaker' '
    fault_batch 500 &&
    test_expect_code 69 ss fail $ANN &&
    no_faults &&
    doc $BREAKER &&
    test_json_eq doc.json ".errors | length" 1 &&
    cp doc.json before.json &&
    test_when_finished "release_email; wait_bg" &&
    start_holder $ANN &&
    test_expect_code 75 ss refused $BOB &&
    test_grep "another run holds the lock" refused.err &&
    doc $BREAKER &&
    test_cmp before.json doc.json &&
    finish_holder &&
    doc $BREAKER &&
    test_cmp before.json doc.json
'

test_expect_success 'breaker_errors = 1: one failed run opens it' '
    breaker_reset &&
    guard_conf "[mailerlite]" "retries = 0" "[guards]" "breaker_errors = 1" &&
    fault_batch 500 &&
    test_when_finished no_faults &&
    test_expect_code 69 ss fail $ANN &&
    doc $BREAKER &&
    test_json_eq doc.json .state open &&
    test_expect_code 75 ss open $ANN &&
    test_grep "error: circuit breaker is open: 1 error in the last 10 minutes" open.err
'

# TODAY_SQL: today's UTC date by the database's clock, as the limit counts.
TODAY_SQL="to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD')"

# daily_is USED: the daily count is USED, for today.
daily_is() {
    psql_q "SELECT value ->> 'used', value ->> 'day' = $TODAY_SQL FROM sync.sync_state
            WHERE key = '$DAILY'" >"$TRASH/actual.daily" &&
    echo "$1|t" | test_cmp - "$TRASH/actual.daily"
}

# daily_to_yesterday: the stored count becomes yesterday's.
daily_to_yesterday() {
    move_doc "$DAILY" "jsonb_build_object('day', to_char((now() AT TIME ZONE 'UTC')::date - 1,
                                                      'YYYY-MM-DD'))"
}

FIVE="dan@example.com fay@example.com $ANN $BOB cat@example.com"

test_expect_success 'the daily limit: three of five processed, the rest skipped, 75' '
    fresh &&
    guard_conf "[guards]" "daily_limit = 3" &&
    a_set dan@example.com first_name Daniel &&
    a_set cat@example.com first_name Cathy &&
    test_expect_code 75 ss day1 $FIVE &&
    test_json_eq day1.json .count 5 &&
    test_json_eq day1.json "[.out[].email] | join(\" \")" "$FIVE" &&
    expect_changed day1 dan@example.com &&
    expect_skipped day1 fay@example.com "no changes detected" &&
    expect_skipped day1 $ANN "no changes detected" &&
    expect_skipped day1 $BOB "daily limit" &&
    expect_skipped day1 cat@example.com "daily limit" &&
    check_both dan@example.com first_name name Daniel &&
    test "$(b_field cat@example.com name)" = Cat &&
    daily_is 3
'

test_expect_success 'the limit used up: every contact skipped, nothing asked of the API' '
    clear_log &&
    test_expect_code 75 ss day2 $FIVE &&
    for e in $FIVE; do
        expect_skipped day2 $e "daily limit" || return 1
    done &&
    no_api_requests &&
    test "$(b_field cat@example.com name)" = Cat &&
    daily_is 3
'

test_expect_success 'a dry run is not counted' '
    daily_to_yesterday &&
    doc $DAILY &&
    cp doc.json before.json &&
    test_expect_code 75 ss dry --dry-run cat@example.com $BOB $ANN dan@example.com &&
    test_json_eq dry.json .dryRun true &&
    expect_changed dry cat@example.com &&
    expect_skipped dry dan@example.com "daily limit" &&
    test "$(b_field cat@example.com name)" = Cat &&
    doc $DAILY &&
    test_cmp before.json doc.json
'

test_expect_success 'a new day: the count starts again' '
    test_expect_code 75 ss day3 cat@example.com $BOB $ANN dan@example.com &&
    expect_changed day3 cat@example.com &&
    expect_skipped day3 dan@example.com "daily limit" &&
    check_both cat@example.com first_name name Cathy &&
    daily_is 3
'

test_expect_success 'an invalid email takes no place under the limit' '
    daily_to_yesterday &&
    ss inv "not an email" $ANN "@example.com" $BOB cat@example.com &&
    expect_skipped inv "not an email" "invalid email" &&
    expect_skipped inv "@example.com" "invalid email" &&
    expect_skipped inv $ANN "no changes detected" &&
    expect_skipped inv $BOB "no changes detected" &&
    expect_skipped inv cat@example.com "no changes detected" &&
    daily_is 3
'

test_expect_success 'too few free connections: 69, nothing written, one error more' '
    fresh &&
    guard_conf "[guards]" "min_free_connections = 100000" &&
    a_set $ANN first_name Anouk &&
    sync_log_count >before &&
    test_expect_code 69 ss busy $ANN &&
    test_grep "error: the database is unhealthy: [0-9]* free connections, under min_free_connections 100000" busy.err &&
    test_json_eq busy.json .ok false &&
    test_json_eq busy.json ".error | startswith(\"the database is unhealthy\")" true &&
    sync_log_count >after &&
    test_cmp before after &&
    no_api_requests &&
    test "$(b_field $ANN name)" = Ann &&
    doc $BREAKER &&
    test_json_eq doc.json ".errors | length" 1 &&
    test_json_eq doc.json ".lastError | startswith(\"the database is unhealthy\")" true
'

test_expect_success 'a slow database: 69 over max_db_latency_ms, a run under a looser limit' '
    start_proxy 30 &&
    test_when_finished stop_proxy &&
    guard_conf "[guards]" "max_db_latency_ms = 5" &&
    test_expect_code 69 ss slow --db "$PROXY_CONNINFO" $ANN &&
    test_grep "error: the database is unhealthy: round trip [0-9.]* ms over max_db_latency_ms 5" slow.err &&
    no_api_requests &&
    doc $BREAKER &&
    test_json_eq doc.json ".errors | length" 2 &&
    guard_conf "[guards]" "max_db_latency_ms = 5000" &&
    ss patient --db "$PROXY_CONNINFO" $ANN &&
    expect_changed patient $ANN &&
    check_both $ANN first_name name Anouk
'

# ---- --repair ----

# repaired: the sync_log rows of action "repaired", as "email|reason" lines.
repaired() {
    psql_q "SELECT email, detail ->> 'reason' FROM sync.sync_log
            WHERE action = 'repaired' ORDER BY id"
}

# expect_repaired NAME EMAIL REASON: NAME.json's run repaired EMAIL for
# REASON, and nothing else.
expect_repaired() {
    repaired >"$TRASH/actual.repaired" &&
    echo "$2|$3" | test_cmp - "$TRASH/actual.repaired" &&
    test_grep "repaired 1 contacts' links" "$TRASH/$1.err"
}

# linked_again EMAIL: the crosswalk is what both sides make it (one row
# for EMAIL among the others, matching A's key and B's id), EMAIL has a
# shadow of two snapshots, and a plain run finds nothing to do.
linked_again() {
    expected_crosswalk >"$TRASH/expect.links" &&
    crosswalk_rows | sort >"$TRASH/actual.links" &&
    test_cmp "$TRASH/expect.links" "$TRASH/actual.links" &&
    psql_q "SELECT count(*) FROM sync.integration_crosswalk x
            JOIN sync.sync_shadow s ON s.crosswalk_id = x.id
            WHERE x.email = '$1' AND jsonb_typeof(s.a_snapshot -> 'fields') = 'object'
            AND jsonb_typeof(s.b_snapshot -> 'fields') = 'object'" >"$TRASH/actual.shadow" &&
    echo 1 | test_cmp - "$TRASH/actual.shadow" &&
    ss plain_again "$1" &&
    expect_skipped plain_again "$1" "no changes detected"
}

# ANN_LINK_SQL: the id of ann's crosswalk row.
ANN_LINK_SQL="(SELECT id FROM sync.integration_crosswalk WHERE email = '$ANN')"
BOGUS_ID=123456789012345678

test_expect_success '--repair: a missing shadow is written again' '
    fresh &&
    psql_q "DELETE FROM sync.sync_shadow WHERE crosswalk_id = $ANN_LINK_SQL" &&
    crosswalk_rows >links.before &&
    ss fix --repair $ANN &&
    expect_entry fix $ANN "{\"email\": \"$ANN\", \"changed\": false, \"b_id\": \"$(b_id $ANN)\"}" &&
    expect_repaired fix $ANN "the shadow was missing" &&
    crosswalk_rows >links.after &&
    test_cmp links.before links.after &&
    linked_again $ANN
'

test_expect_success '--repair: a shadow that is no pair of snapshots is replaced' '
    fresh &&
    psql_q "UPDATE sync.sync_shadow SET a_snapshot = '\''\"x\"'\''
            WHERE crosswalk_id = $ANN_LINK_SQL" &&
    ss fix --repair $ANN &&
    expect_entry fix $ANN "{\"email\": \"$ANN\", \"changed\": false, \"b_id\": \"$(b_id $ANN)\"}" &&
    expect_repaired fix $ANN "the shadow was not a pair of snapshots" &&
    linked_again $ANN
'

test_expect_success '--repair: a link to a B id that does not exist is made again' '
    fresh &&
    psql_q "UPDATE sync.integration_crosswalk SET b_id = '\''$BOGUS_ID'\'' WHERE email = '\''$ANN'\''" &&
    test_expect_code 1 ss plain $ANN &&
    expect_entry plain $ANN \
        "{\"email\": \"$ANN\", \"error\": \"subscriber $BOGUS_ID is linked but no longer exists in MailerLite\"}" &&
    ss fix --repair $ANN &&
    expect_changed fix $ANN &&
    expect_repaired fix $ANN "the subscriber'\''s id in MailerLite changed" &&
    psql_q "SELECT detail -> '\''removed'\'' ->> '\''b_id'\'' FROM sync.sync_log
            WHERE action = '\''repaired'\''" >actual &&
    echo $BOGUS_ID >expect &&
    test_cmp expect actual &&
    linked_again $ANN
'

test_expect_success '--repair: two crosswalk rows claiming one contact are both replaced' '
    fresh &&
    psql_q "UPDATE sync.integration_crosswalk SET email = '\''ann.old@example.com'\''
            WHERE email = '\''$ANN'\'';
            INSERT INTO sync.integration_crosswalk (a_id, b_id, email)
            VALUES ('\''999'\'', '\''$BOGUS_ID'\'', '\''$ANN'\'')" &&
    ss plain $ANN &&
    expect_skipped plain $ANN "A row of the link no longer exists" &&
    ss fix --repair $ANN &&
    expect_changed fix $ANN &&
    expect_repaired fix $ANN "several crosswalk rows claimed the contact" &&
    psql_q "SELECT r ->> '\''email'\'', r ->> '\''a_id'\'' FROM sync.sync_log,
            jsonb_array_elements(detail -> '\''removed'\'') r
            WHERE action = '\''repaired'\'' ORDER BY 1" >actual &&
    test_write_lines "ann.old@example.com|1" "$ANN|999" >expect &&
    test_cmp expect actual &&
    linked_again $ANN
'

test_expect_success '--repair: an A row deleted and inserted again under a new key' '
    fresh &&
    psql_q "INSERT INTO public.clients (email, first_name, last_name, company, city, phone,
                                        status, groups, updated_at)
            SELECT '\''ann.new@example.com'\'', first_name, last_name, company, city, phone,
                   status, groups, updated_at FROM public.clients WHERE email = '\''$ANN'\'';
            DELETE FROM public.clients WHERE email = '\''$ANN'\'';
            UPDATE public.clients SET email = '\''$ANN'\'' WHERE email = '\''ann.new@example.com'\''" &&
    new_key=$(a_get $ANN id) &&
    test "$new_key" != 1 &&
    ss plain $ANN &&
    expect_skipped plain $ANN "A row of the link no longer exists" &&
    ss fix --repair $ANN &&
    expect_changed fix $ANN &&
    expect_repaired fix $ANN "the linked A row no longer exists" &&
    expect_link $ANN "$new_key" >expect &&
    psql_q "SELECT a_id, b_id, email FROM sync.integration_crosswalk WHERE email = '\''$ANN'\''" >actual &&
    test_cmp expect actual &&
    linked_again $ANN
'

test_expect_success '--repair --dry-run reports and writes nothing' '
    fresh &&
    psql_q "UPDATE sync.integration_crosswalk SET b_id = '\''$BOGUS_ID'\'' WHERE email = '\''$ANN'\''" &&
    crosswalk_rows >links.before &&
    psql_q "SELECT id, action FROM sync.sync_log ORDER BY id" >log.before &&
    b_dump >b.before &&
    clear_log &&
    ss dry --repair --dry-run $ANN &&
    cat dry.json dry.err &&
    test_json_eq dry.json .dryRun true &&
    expect_changed dry $ANN &&
    crosswalk_rows >links.after &&
    test_cmp links.before links.after &&
    psql_q "SELECT id, action FROM sync.sync_log ORDER BY id" >log.after &&
    test_cmp log.before log.after &&
    b_writes >writes &&
    test_must_be_empty writes &&
    b_dump >b.after &&
    test_cmp b.before b.after
'

test_done
