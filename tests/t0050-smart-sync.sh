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

# run_seq: the sequence number of the emulator's last logged request.
log_seq() {
    ml_control GET log | jq -s "if length == 0 then 0 else .[-1].seq end"
}

# run_log_rows: sync_log rows of the last smart-sync run, job rows aside.
run_log_rows() {
    psql_q "SELECT count(*) FROM sync.sync_log WHERE run_id = (SELECT run_id FROM sync.sync_log
            WHERE program = 'smart-sync' AND action = 'job_started' ORDER BY id DESC LIMIT 1)
            AND action NOT LIKE 'job_%'"
}

test_expect_success 'incremental: an untouched contact costs one read and writes nothing' '
    a_xmin >xmin.before &&
    ml_control DELETE log >/dev/null &&
    ss ann@example.com &&
    echo "{\"email\":\"ann@example.com\",\"reason\":\"no changes detected\",\"skipped\":true}" >expect &&
    entry ann@example.com >actual &&
    test_cmp expect actual &&
    test_json_eq out.json .apiRequests 1 &&
    b_writes >writes &&
    test_must_be_empty writes &&
    a_xmin >xmin.after &&
    test_cmp xmin.before xmin.after &&
    run_log_rows >actual &&
    echo 0 >expect &&
    test_cmp expect actual
'

test_expect_success 'a change in B is pulled into A; the next run finds nothing to do' '
    b_set bob@example.com company Bolt &&
    ss bob@example.com &&
    test_json_eq out.json ".out[0].changed" true &&
    check_both bob@example.com company company Bolt &&
    ss bob@example.com &&
    test_json_eq out.json ".out[0].reason" "no changes detected"
'

test_expect_success 'a change A made without moving updated_at is still seen; --mode full compares all' '
    psql_q "UPDATE public.clients SET company = '\''Cobalt'\'' WHERE email = '\''cat@example.com'\''" &&
    ss cat@example.com &&
    test_json_eq out.json ".out[0].changed" true &&
    check_both cat@example.com company company Cobalt &&
    ss cat@example.com &&
    test_json_eq out.json ".out[0].reason" "no changes detected" &&
    ss --mode full cat@example.com &&
    test_json_eq out.json ".out[0].changed" false
'

test_expect_success 'a B edit in the same second as the last sync is still seen' '
    b_get bob@example.com &&
    jq -r .updated_at b.json >bob.at &&
    b_set bob@example.com company Boltz "$(cat bob.at)" &&
    ss bob@example.com &&
    test_json_eq out.json ".out[0].changed" true &&
    check_both bob@example.com company company Boltz
'

test_expect_success '--mode AtoB pushes A and keeps B'\''s move for a later run' '
    a_set ann@example.com company Apex &&
    b_set ann@example.com last_name Leigh &&
    ss --mode AtoB ann@example.com &&
    test_json_eq out.json ".out[0].changed" true &&
    check_both ann@example.com company company Apex &&
    test "$(a_get ann@example.com last_name)" = Lee &&
    ss ann@example.com &&
    test_json_eq out.json ".out[0].changed" true &&
    check_both ann@example.com last_name last_name Leigh
'

test_expect_success '--mode BtoA pulls B and keeps A'\''s move for a later run' '
    a_set bob@example.com first_name Robert &&
    b_set bob@example.com last_name Ray-Smith &&
    ss --mode BtoA bob@example.com &&
    check_both bob@example.com last_name last_name Ray-Smith &&
    test "$(b_field bob@example.com name)" = Bob &&
    ss bob@example.com &&
    check_both bob@example.com first_name name Robert
'

test_expect_success 'contacts missing on one side are created there when the mode allows' '
    psql_q "INSERT INTO public.clients (id, email, first_name, status, groups)
            VALUES (20, '\''gus@example.com'\'', '\''Gus'\'', '\''active'\'', '\''{}'\'')" &&
    ss --mode BtoA gus@example.com eve@example.com nobody@example.com &&
    entry gus@example.com >gus &&
    test_json_eq gus .reason "only in A, and this run does not write to MailerLite" &&
    check_both eve@example.com first_name name Eve &&
    entry nobody@example.com >nobody &&
    test_json_eq nobody .reason "on neither side" &&
    ss gus@example.com &&
    test_json_eq out.json ".out[0].changed" true &&
    b_id gus@example.com >gus.id &&
    test_json_eq out.json ".out[0].b_id" "$(cat gus.id)" &&
    check_both gus@example.com first_name name Gus &&
    ss --mode AtoB fay@example.com &&
    test_json_eq out.json ".out[0].reason" "no changes detected"
'

test_expect_success 'a B-only contact is left alone by AtoB' '
    ml_control POST subscribers "[{\"email\":\"zoe@example.com\",\"fields\":{\"name\":\"Zoe\"}}]" >/dev/null &&
    ss --mode AtoB zoe@example.com &&
    test_json_eq out.json ".out[0].reason" "only in MailerLite, and this run does not create contacts in A" &&
    psql_q "SELECT count(*) FROM public.clients WHERE email = '\''zoe@example.com'\''" >actual &&
    echo 0 >expect &&
    test_cmp expect actual
'

test_expect_success 'input: arguments, a file and standard input, normalized and de-duplicated' '
    cat >list <<-\LIST &&
	# the pipeline'\''s changes
	ANN@example.com

	  bob@example.com  
	not-an-email
	LIST
    printf "cat@example.com\r\nann@example.com\n# done" |
        ss --file list - " Cat@Example.COM " &&
    jq -c "[.out[] | .email]" out.json >actual &&
    echo "[\"ann@example.com\",\"bob@example.com\",\"not-an-email\",\"cat@example.com\"]" >expect &&
    test_cmp expect actual &&
    test_json_eq out.json .count 4 &&
    entry not-an-email >bad &&
    test_json_eq bad . "{\"email\":\"not-an-email\",\"reason\":\"invalid email\",\"skipped\":true}"
'

test_expect_success 'input that is not text is refused whole: exit 65 naming the line, nothing done' '
    ml_control DELETE log >/dev/null &&
    psql_q "SELECT count(*) FROM sync.sync_log" >log.before &&
    printf "ann@example.com\nbob@exa\000mple.com\n" >nul.txt &&
    test_expect_code 65 smart-sync -c cw.conf - <nul.txt >out 2>err &&
    test_grep "standard input: line 2" err &&
    test_must_be_empty out &&
    perl -e "print q(x) x (10 * 1024 * 1024), qq(\n)" >long.txt &&
    test_expect_code 65 smart-sync -c cw.conf --file long.txt ann@example.com >out 2>err &&
    test_grep "long.txt: line 1" err &&
    test_expect_code 64 smart-sync -c cw.conf >out 2>err &&
    test_grep "no emails given" err &&
    smart-sync -c cw.conf --check-config >out &&
    test_json_eq out .ok true &&
    api_requests >requests &&
    test_must_be_empty requests &&
    psql_q "SELECT count(*) FROM sync.sync_log" >log.after &&
    test_cmp log.before log.after
'

test_expect_success 'an empty list is a run with nothing to do' '
    : | ss - &&
    test_json_eq out.json .count 0 &&
    test_json_eq out.json .ok true
'

test_expect_success '--dry-run plans the same and writes nothing anywhere' '
    a_set cat@example.com first_name Catherine &&
    a_xmin >xmin.before &&
    b_dump >b.before &&
    ml_control DELETE log >/dev/null &&
    ss --dry-run cat@example.com &&
    test_json_eq out.json ".out[0].changed" true &&
    test_json_eq out.json .dryRun true &&
    test_json_eq out.json ".changes[0].toB.name" "Catherine" &&
    b_writes >writes &&
    test_must_be_empty writes &&
    b_dump >b.after &&
    test_cmp b.before b.after &&
    a_xmin >xmin.after &&
    test_cmp xmin.before xmin.after &&
    ss cat@example.com &&
    check_both cat@example.com first_name name Catherine
'

test_expect_success 'a conflict is recorded and settled by the policy, as in enterprise-sync' '
    a_set ann@example.com last_name Berg &&
    b_set ann@example.com last_name Tromm &&
    ss ann@example.com &&
    conflicts | grep "^ann@example.com|last_name|" >conflict &&
    test_line_count = 1 conflict &&
    test_grep "|skip|-|none|open$" conflict &&
    test_json_eq out.json ".out[0].changed" false
'

test_expect_success 'a value B refuses: the contact'\''s entry has the error, exit 1, the others go on' '
    a_set bob@example.com first_name "$(perl -e "print q(b) x 2000")" &&
    a_set cat@example.com last_name Kimura &&
    test_expect_code 1 ss bob@example.com cat@example.com &&
    test_json_eq out.json .ok false &&
    entry bob@example.com >bob &&
    jq -e ".error | test(\"422\")" bob >/dev/null &&
    check_both cat@example.com last_name last_name Kimura &&
    a_set bob@example.com first_name Robert
'

test_expect_success 'a value the A table refuses: that contact fails, the rest of the set is written' '
    psql_q "ALTER TABLE public.clients ADD CONSTRAINT short_last_name
            CHECK (length(last_name) <= 10)" &&
    test_when_finished "psql_q \"ALTER TABLE public.clients DROP CONSTRAINT short_last_name\"" &&
    a_get gus@example.com last_name >gus.before &&
    b_set gus@example.com last_name Raymondsson-Lee &&
    b_set cat@example.com last_name Kimberly &&
    test_expect_code 1 ss gus@example.com cat@example.com &&
    entry gus@example.com >gus &&
    jq -e ".error | startswith(\"the A table refused the value\")" gus >/dev/null &&
    a_get gus@example.com last_name >gus.after &&
    test_cmp gus.before gus.after &&
    check_both cat@example.com last_name last_name Kimberly &&
    psql_q "SELECT count(*) FROM sync.sync_log WHERE action = '\''error'\''
            AND email = '\''gus@example.com'\''" >n &&
    test "$(cat n)" -ge 1
'

test_expect_success 'a managed group joined in A is assigned in B; group ids are asked for only then' '
    ml_control DELETE log >/dev/null &&
    psql_q "UPDATE public.clients SET groups = groups || '\''{Newsletter}'\'', updated_at = now()
            WHERE email = '\''ann@example.com'\''" &&
    ss ann@example.com &&
    test "$(b_groups ann@example.com)" = "Customers,Newsletter,VIP" &&
    api_requests >requests &&
    test_grep "GET /api/groups" requests &&
    ml_control DELETE log >/dev/null &&
    a_set ann@example.com last_name Lind &&
    ss ann@example.com &&
    api_requests >requests &&
    test_grep ! "/api/groups" requests
'

# advisory_locks GRANTED: how many advisory locks are held (t) or awaited (f).
advisory_locks() {
    psql_q "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted = $1"
}

# wait_for 'SHELL TEXT': until it succeeds, evaluated anew each time
# (polling, at most 30 s).
wait_for() {
    wait_for_n_=0
    until eval "$1"; do
        wait_for_n_=$((wait_for_n_ + 1))
        test $wait_for_n_ -lt 600 || return 1
        sleep 0.05
    done
}

# Another run, played by hand: it holds fay's lock, then (once public.go
# has a row) writes A and the shadow as a run that pushed "Faye" would.
cat >holder.sql <<'SQL'
BEGIN;
SELECT pg_advisory_xact_lock(hashtextextended('crosswalk-email:fay@example.com', 0));
DO $$ BEGIN
  WHILE NOT EXISTS (SELECT 1 FROM public.go) LOOP PERFORM pg_sleep(0.02); END LOOP;
END $$;
UPDATE public.clients SET first_name = 'Faye', updated_at = now()
  WHERE email = 'fay@example.com';
UPDATE sync.sync_shadow sh SET synced_at = now(),
  a_snapshot = jsonb_set(sh.a_snapshot, '{fields,name}', '"Faye"'),
  b_snapshot = jsonb_set(jsonb_set(sh.b_snapshot, '{fields,name}', '"Faye"'),
                         '{updated_at}', '"2030-01-01 00:00:00"')
  FROM sync.integration_crosswalk x
  WHERE x.id = sh.crosswalk_id AND x.email = 'fay@example.com';
COMMIT;
SQL

test_expect_success 'a B record read before another run wrote it is read again under the lock' '
    psql_q "CREATE TABLE public.go (x int)" &&
    { psql -X -q -v ON_ERROR_STOP=1 -f holder.sql >holder.out 2>&1 & holder=$!; } &&
    wait_for "test \"\$(advisory_locks true)\" -ge 1" &&
    { smart-sync -c cw.conf -v fay@example.com >racer.json 2>racer.err & racer=$!; } &&
    wait_for "test \"\$(advisory_locks false)\" -ge 1" &&
    b_edit fay@example.com "{\"fields\": {\"name\": \"Faye\"}, \"updated_at\": \"2030-01-01 00:00:00\"}" &&
    psql_q "INSERT INTO public.go VALUES (1)" &&
    wait $holder &&
    wait $racer &&
    check_both fay@example.com first_name name Faye &&
    test_grep "read 1 subscribers again" racer.err &&
    psql_q "DROP TABLE public.go"
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
