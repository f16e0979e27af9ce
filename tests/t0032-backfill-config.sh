#!/bin/sh
# Test bodies are single-quoted and use variables and functions defined here:
# shellcheck disable=SC2016,SC2034,SC2317
test_description='backfill-sync refuses bad input with the right status and message, writing nothing'
# shellcheck source=tests/test-lib.sh
. "$(dirname "$0")/test-lib.sh"

# Small data: the runs that do work here are about what they print and
# write, not about volume. 250 subscribers, 200 of them also in A.
start_postgres
start_emulator --rate-limit 0 --page-cap 100
load_sample 300 250 200 || BUG "could not load the sample data"

# The configuration every run here starts from.
good_config() {
    test_write_lines '[mailerlite]' 'rate_limit = 0' \
        '[table]' 'name = public.clients' \
        '[fields]' 'first_name = name' 'last_name = last_name' 'company = company'
}
good_config >good.conf

# The rows in crosswalk's own tables, all together; what a refused run
# must leave at 0.
sync_rows() {
    psql_q "SELECT (SELECT count(*) FROM sync.integration_crosswalk)
                 + (SELECT count(*) FROM sync.sync_shadow)
                 + (SELECT count(*) FROM sync.sync_state)
                 + (SELECT count(*) FROM sync.sync_log)
                 + (SELECT count(*) FROM sync.sync_conflicts)"
}

# nothing_written: no row in sync.* and no API request since the log was
# last cleared.
nothing_written() {
    sync_rows >rows &&
    echo 0 >rows.expect &&
    test_cmp rows.expect rows &&
    ml_control GET log >requests &&
    test_must_be_empty requests
}

# refused STATUS ARGS...: backfill-sync exits STATUS, prints no result on
# stdout and its error on stderr (in ./err).
refused() {
    refused_status_=$1 &&
    shift &&
    test_expect_code "$refused_status_" backfill-sync "$@" >out 2>err &&
    test_must_be_empty out &&
    test_grep "backfill-sync: error: " err
}

# ---- usage errors: exit 64 before any file, database or API is touched

test_expect_success 'usage errors exit 64 with a hint to --help' '
    ml_control DELETE log >/dev/null &&
    refused 64 --batch-size 0 &&
    test_grep "error: option --batch-size: 0 is out of range" err &&
    test_grep -F "hint: Try \"backfill-sync --help\" for more information." err &&
    refused 64 -c good.conf --batch-size=0 &&
    test_grep "option --batch-size" err &&
    test_grep -F "Try \"backfill-sync --help\"" err &&
    refused 64 --max-duration garbage &&
    test_grep "error: option --max-duration: \"garbage\" is not" err &&
    test_grep -F "Try \"backfill-sync --help\"" err &&
    refused 64 --no-such-option &&
    test_grep -F "unrecognized option \"--no-such-option\"" err &&
    test_grep -F "Try \"backfill-sync --help\"" err &&
    refused 64 -c good.conf --restart --force-resume &&
    test_grep "cannot be combined" err &&
    refused 64 -c good.conf stray-argument &&
    test_grep "takes no arguments, and 1 was given" err &&
    test_grep ! -F "stray-argument" err &&
    test_grep -F "Try \"backfill-sync --help\"" err &&
    ml_control GET log >requests &&
    test_must_be_empty requests
'

test_expect_success 'the API token on the command line is refused (64) and never printed back' '
    secret=argv-token-9Qx7Lw3Zr &&
    for form in "--api-key=$secret" "--token=$secret" "--mailerlite-api-key=$secret"; do
        refused 64 -c good.conf "$form" || return 1
        test_grep "the API token cannot be given on the command line" err || return 1
        test_grep "hint: Set MAILERLITE_API_KEY" err || return 1
        test_grep ! -F "$secret" err || return 1
    done &&
    for opt in --api-key --token --mailerlite-api-key; do
        refused 64 "$opt" "$secret" -c good.conf || return 1
        test_grep -F "($opt)" err || return 1
        test_grep "api_key_file" err || return 1
        test_grep ! -F "$secret" err || return 1
    done &&
    refused 64 --api-k="$secret" &&
    test_grep "cannot be given on the command line (--api-key)" err &&
    test_grep ! -F "$secret" err
'

# ---- the config file itself

test_expect_success 'a missing config file: 78, naming the file' '
    refused 78 -c "$TRASH/no-such.conf" &&
    test_grep -F "could not open config file \"$TRASH/no-such.conf\"" err &&
    test_grep "No such file" err &&
    (
        CROSSWALK_CONFIG=$TRASH/also-missing.conf &&
        export CROSSWALK_CONFIG &&
        refused 78
    ) &&
    test_grep -F "\"$TRASH/also-missing.conf\"" err
'

# Permissions do not stop root from reading a file.
test_lazy_prereq UNREADABLE_FILES '
    echo x >unreadable-probe &&
    chmod 000 unreadable-probe &&
    ! cat unreadable-probe >/dev/null 2>&1
'

test_expect_success UNREADABLE_FILES 'an unreadable config file: 78, naming the file' '
    good_config >unreadable.conf &&
    chmod 000 unreadable.conf &&
    test_when_finished "chmod 600 unreadable.conf" &&
    refused 78 -c unreadable.conf &&
    test_grep -F "could not open config file \"unreadable.conf\"" err &&
    test_grep "Permission denied" err
'

# As root, the same case run as nobody (setpriv), where permissions count.
test_lazy_prereq SETPRIV_NOBODY '
    test "$(id -u)" = 0 &&
    setpriv --reuid=65534 --regid=65534 --clear-groups "$BIN/backfill-sync" --version
'

test_expect_success SETPRIV_NOBODY 'an unreadable config file (as nobody): 78, naming the file' '
    good_config >unreadable.conf &&
    chmod 000 unreadable.conf &&
    test_when_finished "chmod 600 unreadable.conf" &&
    test_expect_code 78 setpriv --reuid=65534 --regid=65534 --clear-groups \
        "$BIN/backfill-sync" -c "$TRASH/unreadable.conf" >out 2>err &&
    test_must_be_empty out &&
    test_grep -F "could not open config file \"$TRASH/unreadable.conf\"" err &&
    test_grep "Permission denied" err
'

# ---- the schema

test_expect_success 'no schema yet: 78 with a hint to run crosswalk-migrate; nothing created' '
    ml_control DELETE log >/dev/null &&
    refused 78 -c good.conf &&
    test_grep "schema \"sync\" is not installed" err &&
    test_grep "hint: Run \"crosswalk-migrate\"" err &&
    psql_q "SELECT count(*) FROM pg_catalog.pg_namespace WHERE nspname = '\''sync'\''" >n &&
    echo 0 >expect &&
    test_cmp expect n &&
    ml_control GET log >requests &&
    test_must_be_empty requests
'

test_expect_success 'crosswalk-migrate installs the schema' '
    crosswalk-migrate -c good.conf >out &&
    test_json_eq out .to "$(psql_q "SELECT max(version) FROM sync.schema_version")" &&
    ml_control DELETE log >/dev/null &&
    nothing_written
'

test_expect_success 'a schema behind this build: 78, naming crosswalk-migrate; nothing written' '
    # the latest migration hidden (negated), so the database looks one behind
    psql_q "UPDATE sync.schema_version SET version = -version
            WHERE version = (SELECT max(version) FROM sync.schema_version)" &&
    test_when_finished "psql_q \"UPDATE sync.schema_version SET version = -version
                                 WHERE version < 0\"" &&
    refused 78 -c good.conf &&
    test_grep "crosswalk-migrate" err &&
    nothing_written
'

test_expect_success 'a schema ahead of this build: 78, asking for an upgrade' '
    psql_q "INSERT INTO sync.schema_version (version, name)
            SELECT max(version) + 1, '\''999_future'\'' FROM sync.schema_version" &&
    test_when_finished "psql_q \"DELETE FROM sync.schema_version WHERE name = '\''999_future'\''\"" &&
    refused 78 -c good.conf &&
    test_grep "newer than this program knows" err &&
    test_grep "hint: Upgrade crosswalk" err &&
    nothing_written
'

# ---- keys and values in the file

test_expect_success 'an unknown key: 78 naming the file, the line and the key' '
    test_write_lines "[mailerlite]" "rate_limit = 0" "frobnicate = 1" >bad.conf &&
    refused 78 -c bad.conf &&
    test_grep -F "bad.conf:3: unknown key \"frobnicate\" in section [mailerlite]" err &&
    test_write_lines "[table]" "name = public.clients" "" "[tabel]" "name = x" >bad.conf &&
    refused 78 -c bad.conf &&
    test_grep -F "bad.conf:5: unknown section [tabel]" err &&
    test_write_lines "batch_size = 10" >bad.conf &&
    refused 78 -c bad.conf &&
    test_grep -F "bad.conf:1: key \"batch_size\" is outside any section (it belongs in [sync])" err &&
    nothing_written
'

test_expect_success 'a bad value: 78 naming the file, the line and the key' '
    test_write_lines "[mailerlite]" "rate_limit = 0" "[sync]" "batch_size = lots" >bad.conf &&
    refused 78 -c bad.conf &&
    test_grep -F "bad.conf:4: sync.batch_size: \"lots\" is not a number" err &&
    test_write_lines "[sync]" "batch_size = 0" >bad.conf &&
    refused 78 -c bad.conf &&
    test_grep -F "bad.conf:2: sync.batch_size: 0 is out of range" err &&
    test_write_lines "[mailerlite]" "timeout = soon" >bad.conf &&
    refused 78 -c bad.conf &&
    test_grep -F "bad.conf:2: mailerlite.timeout: \"soon\"" err &&
    nothing_written
'

test_expect_success 'the API token in the config file is refused: 78, naming the key, not echoing it' '
    for key in api_key token api_token; do
        test_write_lines "[mailerlite]" "rate_limit = 0" "$key = file-token-5Kd8Vn2" >bad.conf &&
        refused 78 -c bad.conf || return 1
        test_grep -F "bad.conf:3: mailerlite.$key: the API token is not accepted in the config file" err ||
            return 1
        test_grep "api_key_file" err || return 1
        test_grep ! -F "file-token-5Kd8Vn2" err || return 1
    done &&
    nothing_written
'

test_expect_success 'no token at all: 78 naming MAILERLITE_API_KEY and api_key_file' '
    (
        unset MAILERLITE_API_KEY &&
        refused 78 -c good.conf
    ) &&
    test_grep "no MailerLite API token" err &&
    test_grep "MAILERLITE_API_KEY" err &&
    test_grep "api_key_file" err &&
    nothing_written
'

test_expect_success 'an api_key_file readable by group or others: 78, naming the file and the mode, even with MAILERLITE_API_KEY set' '
    printf "%s\n" "$MAILERLITE_API_KEY" >key.0644 &&
    chmod 0644 key.0644 &&
    { good_config && test_write_lines "[mailerlite]" "api_key_file = $TRASH/key.0644"; } >keyfile.conf &&
    (
        unset MAILERLITE_API_KEY &&
        refused 78 -c keyfile.conf
    ) &&
    test_grep -F "API key file \"$TRASH/key.0644\" is readable by group or others (mode 0644)" err &&
    test_grep -F "hint: Run: chmod 600 $TRASH/key.0644" err &&
    test_grep ! -F "$MAILERLITE_API_KEY" err &&
    chmod 0640 key.0644 &&
    (
        unset MAILERLITE_API_KEY &&
        refused 78 -c keyfile.conf
    ) &&
    test_grep "(mode 0640)" err &&
    refused 78 -c keyfile.conf &&
    test_grep "(mode 0640)" err &&
    nothing_written
'

# ---- the A table

test_expect_success 'table.name naming a missing table: 78, naming it' '
    test_write_lines "[mailerlite]" "rate_limit = 0" "[table]" "name = public.no_such_clients" >bad.conf &&
    refused 78 -c bad.conf &&
    test_grep -F "table public.no_such_clients named by table.name does not exist" err &&
    nothing_written
'

test_expect_success 'a missing column (key, email, updated_at, [fields]): 78, naming it' '
    for setting in "key = client_id" "email = mail" "updated_at = modified"; do
        column=${setting#* = } &&
        key=${setting%% = *} &&
        test_write_lines "[mailerlite]" "rate_limit = 0" "[table]" "name = public.clients" \
            "$setting" >bad.conf &&
        refused 78 -c bad.conf || return 1
        test_grep -F "column \"$column\" named by table.$key does not exist in table public.clients" err ||
            return 1
    done &&
    { good_config && test_write_lines "nickname = nick"; } >bad.conf &&
    refused 78 -c bad.conf &&
    test_grep -F "column \"nickname\" named by [fields] nickname does not exist" err &&
    nothing_written
'

# ---- --check-config

test_expect_success '--check-config with a bad config: 78, nothing written' '
    test_write_lines "[sync]" "batch_size = lots" >bad.conf &&
    refused 78 -c bad.conf --check-config &&
    test_grep -F "bad.conf:2: sync.batch_size" err &&
    test_write_lines "[table]" "name = public.no_such_clients" >bad.conf &&
    refused 78 -c bad.conf --check-config &&
    test_grep -F "public.no_such_clients" err &&
    nothing_written
'

test_expect_success '--check-config with a good config: exit 0, no writes, no API request' '
    test_when_finished "sync_forget" &&
    backfill-sync -c good.conf --check-config >out 2>err &&
    test_json_eq out .ok true &&
    test_json_eq out .table public.clients &&
    nothing_written
'

test_expect_success '--check-config without a token: 78' '
    (
        unset MAILERLITE_API_KEY &&
        refused 78 -c good.conf --check-config
    ) &&
    test_grep "no MailerLite API token" err &&
    nothing_written
'

# ---- the token never shows

test_expect_success 'the emulator accepts only a distinctive token' '
    sync_forget &&
    secret=cw-secret-T0k3n-$$-ZqW8 &&
    ml_control POST config "{\"token\":\"$secret\",\"log_bodies\":true}" >/dev/null &&
    MAILERLITE_API_KEY=$secret &&
    export MAILERLITE_API_KEY &&
    ml_api GET "subscribers?limit=0" >count &&
    test_json_eq count .total 250
'

test_expect_success 'a normal run works and never shows the token' '
    backfill-sync -v -c good.conf >ok.out 2>ok.err &&
    test_json_eq ok.out .status completed &&
    test_json_eq ok.out .crosswalkCreated 200 &&
    psql_q "SELECT count(*) FROM sync.integration_crosswalk" >n &&
    echo 200 >expect &&
    test_cmp expect n &&
    test_grep ! -F "$secret" ok.out &&
    test_grep ! -F "$secret" ok.err
'

test_expect_success 'a failing run (API down past its retries) never shows the token' '
    { good_config && test_write_lines "[mailerlite]" "retries = 1"; } >retry1.conf &&
    ml_control POST faults "{\"rules\":[{\"method\":\"GET\",\"path_prefix\":\"/api/subscribers\",\"after\":1,\"count\":-1,\"kind\":\"status\",\"status\":503}]}" >/dev/null &&
    test_when_finished "ml_control DELETE faults >/dev/null" &&
    test_expect_code 69 backfill-sync -v -c retry1.conf --restart >fail.out 2>fail.err &&
    test_json_eq fail.out .status failed &&
    test_grep "HTTP 503" fail.err &&
    test_grep ! -F "$secret" fail.out &&
    test_grep ! -F "$secret" fail.err
'

test_expect_success 'a wrong token: the 401 is not retried, exit 78, the token not shown' '
    ml_control DELETE log >/dev/null &&
    test_expect_code 78 env MAILERLITE_API_KEY="$secret-wrong" \
        backfill-sync -v -c good.conf --restart >wrong.out 2>wrong.err &&
    test_json_eq wrong.out .status failed &&
    test_grep "refused the token (HTTP 401)" wrong.err &&
    test_grep "hint: Check MAILERLITE_API_KEY" wrong.err &&
    test_grep ! -F "$secret" wrong.out &&
    test_grep ! -F "$secret" wrong.err &&
    ml_control GET log >requests &&
    jq -s -c "map(.status)" requests >statuses &&
    echo "[401]" >expect &&
    test_cmp expect statuses
'

test_expect_success 'the token is nowhere in the database nor in the request log' '
    pg_dump --no-owner >dump.sql &&
    test_grep "integration_crosswalk" dump.sql &&
    test_grep ! -F "$secret" dump.sql &&
    psql_q "SELECT count(*) FROM sync.sync_state" >n &&
    test "$(cat n)" -gt 0 &&
    ml_control GET log >requests &&
    test_grep ! -F "$secret" requests &&
    ml_control DELETE log >/dev/null
'

test_expect_success 'an api_key_file of mode 0600 gives the token; the run works' '
    sync_forget &&
    (umask 077 && printf "%s\n" "$secret" >key.0600) &&
    { good_config && test_write_lines "[mailerlite]" "api_key_file = $TRASH/key.0600"; } >keyfile.conf &&
    (
        unset MAILERLITE_API_KEY &&
        backfill-sync -c keyfile.conf >out 2>err
    ) &&
    test_json_eq out .status completed &&
    test_json_eq out .crosswalkCreated 200 &&
    test_grep ! -F "$secret" out &&
    test_grep ! -F "$secret" err &&
    ml_control GET log >requests &&
    jq -s -c "map(.status) | unique" requests >statuses &&
    echo "[200]" >expect &&
    test_cmp expect statuses
'

test_done
