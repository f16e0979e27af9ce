# test-lib.sh: the library every end-to-end test (tests/tNNNN-area-what.sh)
# sources; after git's t/test-lib.sh, it runs test bodies and prints TAP
# for prove.
#
# A test file, run from the repository root by `prove -j2 tests/t*.sh` or
# alone as `sh tests/t0123-x.sh [-v] [-x] [-i] [-d]`:
#
#   #!/bin/sh
#   test_description='crosswalk-migrate installs the schema'
#   . "$(dirname "$0")/test-lib.sh"
#
#   start_postgres
#
#   test_expect_success 'a fresh database gets every migration' '
#       crosswalk-migrate >out.json &&
#       test_json_eq out.json .from 0 &&
#       psql_q "SELECT count(*) FROM sync.sync_state" >actual &&
#       echo 0 >expect &&
#       test_cmp expect actual
#   '
#
#   test_done
#
# How a body runs: it is eval'ed by the test file's own shell (so variables
# it sets are seen by later tests), in "$TRASH" (the working directory is
# restored after every test), with stdin from /dev/null and stdout and stderr
# going to a log that is printed, as "# " lines on stderr, when the test
# fails (and always with -v, --verbose or TEST_VERBOSE=1). There is no
# `set -e`: a body fails when its last command fails, so chain every command
# with && and a failure anywhere fails the test. A body whose top-level
# commands are not &&-chained is a bug in the test script and stops the file
# (chain lint; TEST_CHAIN_LINT=0 turns it off); a top-level `a || b` counts
# as broken, write `if ! a; then b; fi` instead. Use a subshell ( ... ) for
# a `cd` or an environment change meant for a few commands only, and
# `test_when_finished 'cmd'` to undo what a body set up. Call start_postgres
# and start_emulator at the top level (a failure there stops the file) or
# directly in a body, not in a subshell.
#
# Running tests:   test_expect_success, test_expect_failure, test_done,
#                  skip_all=, test_set_prereq, test_lazy_prereq,
#                  test_have_prereq, test_when_finished, test_atexit
# Assertions:      test_must_fail, test_expect_code, test_cmp,
#                  test_line_count, test_json_eq, test_must_be_empty,
#                  test_grep, test_path_is_file, test_path_is_dir,
#                  test_path_is_missing, test_write_lines
# Services:        start_postgres, stop_postgres, psql_q, psql_await,
#                  psql_terminate, start_emulator, stop_emulator, ml_control,
#                  ml_api, start_proxy, stop_proxy
# Variables:       TEST_ROOT, BIN (first in PATH), TRASH, TEST_NAME; after
#                  start_postgres PGHOST PGPORT PGUSER PGDATABASE; after
#                  start_emulator ML_PORT ML_BASE ML_PID MAILERLITE_API_URL
#                  MAILERLITE_API_KEY; after start_proxy PROXY_PID PROXY_PORT
#                  PROXY_CONNINFO
#
# Options of a test file: -v/--verbose show every body's output; -x/--trace
# trace bodies with set -x; -i/--immediate stop at the first failure;
# -d/--debug keep the trash directory (also TEST_KEEP_TRASH=1).
#
# Written for POSIX sh (dash); the test files start with #!/bin/sh.

# ---------------------------------------------------------------------------
# Where we are, and a clean environment.

LF='
'

TEST_DIRECTORY=$(cd "$(dirname "$0")" && pwd -P) || exit 1
TEST_ROOT=$(cd "$TEST_DIRECTORY/.." && pwd -P) || exit 1
TEST_NAME=$(basename "$0" .sh)
BIN=$TEST_ROOT/bin
PATH=$BIN:$PATH
export TEST_ROOT BIN PATH

# Nothing from the operator's shell may steer the programs under test: not
# their configuration, not libpq's defaults, not the token, not a proxy.
for test_var_ in $(env | sed -n \
    -e 's/^\(CROSSWALK_[A-Za-z0-9_]*\)=.*/\1/p' \
    -e 's/^\(MAILERLITE_[A-Za-z0-9_]*\)=.*/\1/p' \
    -e 's/^\(PG[A-Z][A-Za-z0-9_]*\)=.*/\1/p'); do
    unset "$test_var_"
done
unset DATABASE_URL CROSSWALK_CONFIG CROSSWALK_SCHEMA CROSSWALK_NAMESPACE \
    MAILERLITE_API_KEY MAILERLITE_API_URL \
    PGHOST PGHOSTADDR PGPORT PGDATABASE PGUSER PGPASSWORD PGPASSFILE \
    PGSERVICE PGSERVICEFILE PGOPTIONS PGAPPNAME PGSSLMODE PGREQUIRESSL \
    PGCONNECT_TIMEOUT PGCLIENTENCODING PGTARGETSESSIONATTRS PGDATA PGTZ \
    PGDATESTYLE PGSYSCONFDIR PGLOCALEDIR PSQLRC \
    http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY \
    CURL_HOME LANGUAGE
NO_PROXY='*'
no_proxy='*'
TZ=UTC
LC_ALL=C
LANG=C
export NO_PROXY no_proxy TZ LC_ALL LANG

# Sanitizer builds (make asan): a finding aborts the program, so that a
# test_must_fail sees a crash, not an ordinary failure. The operator's own
# settings come last and win.
ASAN_OPTIONS="abort_on_error=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export ASAN_OPTIONS UBSAN_OPTIONS

# ---------------------------------------------------------------------------
# Options and state.

test_verbose_=
test_trace_=
test_immediate_=
test_keep_trash_=
case ${TEST_VERBOSE:-} in '' | 0) ;; *) test_verbose_=t ;; esac
case ${TEST_KEEP_TRASH:-} in '' | 0) ;; *) test_keep_trash_=t ;; esac
for test_arg_ in "$@"; do
    case $test_arg_ in
    -v | --verbose) test_verbose_=t ;;
    -x | --trace) test_trace_=t ;;
    -i | --immediate) test_immediate_=t ;;
    -d | --debug | --keep-trash) test_keep_trash_=t ;;
    -h | --help)
        printf '%s\n' "${test_description:-$TEST_NAME}"
        echo "options: -v|--verbose -x|--trace -i|--immediate -d|--debug"
        exit 0
        ;;
    *)
        echo "error: $TEST_NAME: unknown option '$test_arg_'" >&2
        exit 1
        ;;
    esac
done

test_count=0
test_success=0
test_failure=0
test_fixed=0
test_broken=0
test_skipped=0
test_done_called_=
test_signal_=
test_exit_explained_=
test_in_body_=
test_atexit_=
test_pg_running_=
satisfied_prereq_=' '
lazily_tested_prereq_=' '
lazily_testable_prereq_=' '

# TAP goes to fd 7 (the real stdout) and messages to fd 8 (the real stderr);
# stray output at the top level of a test file goes to stderr, so it can
# never be taken for TAP.
exec 7>&1 8>&2 1>&2

say_tap_() {
    printf '%s\n' "$*" >&7
}

# Lines of a file (or stdin) as "# " comments on fd 8 or on fd $2.
test_comment_file_() {
    sed -e 's/^/# /' -e 's/^# $/#/' "$1" >&"${2:-8}"
}

# A bug in the test script itself: stop the file.
BUG() {
    echo "error: bug in the test script: $*" >&8
    test_exit_explained_=t
    exit 1
}

# A fatal problem in the environment (a service did not start).
test_fatal_() {
    echo "error: $TEST_NAME: $*" >&8
    test_exit_explained_=t
    exit 1
}

# ---------------------------------------------------------------------------
# The trash directory: each test file's own, under /tmp, reachable by the
# postgres user (pg-tmp runs the server as postgres when we are root).

TRASH=$(mktemp -d /tmp/crosswalk-test.XXXXXX) ||
    test_fatal_ "could not create a trash directory under /tmp"
chmod 0755 "$TRASH" || test_fatal_ "could not chmod $TRASH"
test_log_dir_=$TRASH/.test-log
mkdir "$test_log_dir_" || test_fatal_ "could not create $test_log_dir_"
export TRASH

test_exit_() {
    test_exit_code_=$1
    trap - EXIT
    trap '' INT TERM
    test_run_atexit_ || test_keep_trash_=t
    if test -n "$test_signal_"; then
        echo "# $TEST_NAME: interrupted by SIG$test_signal_" >&8
    elif test "$test_done_called_" != t && test -z "$test_exit_explained_"; then
        echo "# FATAL: $TEST_NAME: unexpected exit with code $test_exit_code_" >&8
        test "$test_exit_code_" != 0 || test_exit_code_=1
    fi
    if test "$test_exit_code_" != 0 || test -n "$test_keep_trash_"; then
        echo "# trash directory kept: $TRASH" >&8
    else
        cd / && rm -rf "$TRASH"
    fi
    exit "$test_exit_code_"
}
trap 'test_exit_ $?' EXIT
trap 'test_signal_=INT; exit 130' INT
trap 'test_signal_=TERM; exit 143' TERM

# test_atexit 'cmd': run cmd when the file ends, however it ends; the last
# registered runs first. Anything the commands print is shown, and keeps
# the trash directory.
test_atexit() {
    test_atexit_="{ $*
} || :
$test_atexit_"
}

test_run_atexit_() {
    test -n "$test_atexit_" || return 0
    cd "$TRASH" 2>/dev/null || cd /
    test_atexit_run_=$test_atexit_
    test_atexit_=
    {
        eval "$test_atexit_run_"
    } >"$test_log_dir_/atexit.log" 2>&1 </dev/null
    if test -s "$test_log_dir_/atexit.log"; then
        echo "# cleanup at exit said:" >&8
        test_comment_file_ "$test_log_dir_/atexit.log"
        return 1
    fi
}

if test -f /etc/crosswalk.conf; then
    echo "# warning: /etc/crosswalk.conf exists; the programs under test read it" >&8
fi

# ---------------------------------------------------------------------------
# Prerequisites: test_set_prereq NAME; test_lazy_prereq NAME 'script' (run
# once, on first use, in a subshell); test_have_prereq A,!B,...

test_set_prereq() {
    case $1 in *[!A-Za-z0-9_]* | '') BUG "bad prerequisite name '$1'" ;; esac
    satisfied_prereq_="$satisfied_prereq_$1 "
}

test_lazy_prereq() {
    case $1 in *[!A-Za-z0-9_]* | '') BUG "bad prerequisite name '$1'" ;; esac
    lazily_testable_prereq_="$lazily_testable_prereq_$1 "
    eval "test_prereq_script_$1=\$2"
}

test_have_prereq() {
    test_prereq_save_ifs_=$IFS
    IFS=,
    # shellcheck disable=SC2048,SC2086 # split A,B,C on the commas
    set -- $*
    IFS=$test_prereq_save_ifs_
    test_prereq_missing_=
    for test_prereq_ in "$@"; do
        test_prereq_negate_=
        case $test_prereq_ in
        !*)
            test_prereq_negate_=t
            test_prereq_=${test_prereq_#!}
            ;;
        esac
        case $lazily_tested_prereq_ in
        *" $test_prereq_ "*) ;;
        *)
            case $lazily_testable_prereq_ in
            *" $test_prereq_ "*)
                test_prereq_script_=
                eval "test_prereq_script_=\$test_prereq_script_$test_prereq_"
                if (cd "$TRASH" && eval "$test_prereq_script_") \
                    >/dev/null 2>&1 </dev/null 7>&- 8>&-; then
                    satisfied_prereq_="$satisfied_prereq_$test_prereq_ "
                fi
                lazily_tested_prereq_="$lazily_tested_prereq_$test_prereq_ "
                ;;
            esac
            ;;
        esac
        case $satisfied_prereq_ in
        *" $test_prereq_ "*) test_prereq_ok_=t ;;
        *) test_prereq_ok_= ;;
        esac
        if { test -n "$test_prereq_negate_" && test -n "$test_prereq_ok_"; } ||
            { test -z "$test_prereq_negate_" && test -z "$test_prereq_ok_"; }; then
            test_prereq_missing_="$test_prereq_missing_${test_prereq_missing_:+,}${test_prereq_negate_:+!}$test_prereq_"
        fi
    done
    test -z "$test_prereq_missing_"
}

# shellcheck disable=SC2016 # expanded when the prerequisite is tested
test_lazy_prereq ROOT 'test "$(id -u)" = 0'
test_lazy_prereq VALGRIND 'command -v valgrind'

# ---------------------------------------------------------------------------
# Running tests.

# The TAP description: '#' would start a directive, a newline a new line.
test_tap_desc_() {
    printf '%s' "$1" | tr '\n' ' ' | sed 's/#/\\#/g'
}

test_start_() {
    test_count=$((test_count + 1))
    test_log_=$test_log_dir_/$test_count.log
    : >"$test_log_"
}

test_finish_() {
    if test -n "$test_verbose_" && test -s "$test_log_"; then
        test_comment_file_ "$test_log_" 7
    fi
    cd "$TRASH" || test_fatal_ "the trash directory $TRASH went away"
}

# test_skip_ DESC PREREQS: true (and a skip line printed) when the test is
# not to run.
test_skip_() {
    test -n "$2" || return 1
    test_have_prereq "$2" && return 1
    test_skipped=$((test_skipped + 1))
    say_tap_ "ok $test_count # skip $(test_tap_desc_ "$1") (missing $test_prereq_missing_)"
    return 0
}

test_chain_117_() {
    return 117
}

# Eval a body in this shell with its output in the log. (A `return` in
# the body returns from here, with its status.)
test_eval_() {
    test_in_body_=t
    {
        if test -n "$test_trace_"; then
            set -x
        fi
        eval "$1"
        test_eval_ret_=$?
        { set +x; } 2>/dev/null
    } >>"$test_log_" 2>&1 </dev/null
    test_in_body_=
    return "$test_eval_ret_"
}

# test_run_ BODY: chain lint, the body, then its test_when_finished
# commands; true when all went well.
test_run_() {
    if test "${TEST_CHAIN_LINT:-1}" != 0; then
        test_trace_save_=$test_trace_
        test_trace_=
        test_eval_ "test_chain_117_ && $1$LF"
        test_chain_ret_=$?
        { set +x; } 2>/dev/null
        test_in_body_=
        test_trace_=$test_trace_save_
        if test "$test_chain_ret_" != 117; then
            cat "$test_log_" >&8
            BUG "broken &&-chain or run-away HERE-DOC in test $test_count:$LF$1"
        fi
        : >"$test_log_"
    fi
    test_cleanup_=
    test_eval_ "$1"
    test_run_ret_=$?
    { set +x; } 2>/dev/null
    test_in_body_=
    if test -n "$test_cleanup_"; then
        test_cleanup_failed_=
        test_in_body_=t
        {
            eval "$test_cleanup_"
        } >>"$test_log_" 2>&1 </dev/null
        test_in_body_=
        if test -n "$test_cleanup_failed_"; then
            echo "test_when_finished: a cleanup command failed" >>"$test_log_"
            test "$test_run_ret_" != 0 || test_run_ret_=1
        fi
        test_cleanup_=
    fi
    return "$test_run_ret_"
}

test_ok_() {
    test_success=$((test_success + 1))
    say_tap_ "ok $test_count - $(test_tap_desc_ "$1")"
}

test_failure_() {
    test_failure=$((test_failure + 1))
    say_tap_ "not ok $test_count - $(test_tap_desc_ "$1")"
    {
        echo "# failed test $test_count of $TEST_NAME: $1"
        printf '%s\n' "$2" | sed -e 's/^/#	/'
        if test -s "$test_log_"; then
            echo "# output:"
            test_comment_file_ "$test_log_" 1
        fi
    } >&8
    if test -n "$test_immediate_"; then
        say_tap_ "1..$test_count"
        test_done_called_=t
        exit 1
    fi
}

test_known_broken_ok_() {
    test_fixed=$((test_fixed + 1))
    say_tap_ "ok $test_count - $(test_tap_desc_ "$1") # TODO known breakage vanished"
}

test_known_broken_failure_() {
    test_broken=$((test_broken + 1))
    say_tap_ "not ok $test_count - $(test_tap_desc_ "$1") # TODO known breakage"
}

# test_expect_success [PREREQS] 'description' 'body'
test_expect_success() {
    test_prereq_arg_=
    if test "$#" = 3; then
        test_prereq_arg_=$1
        shift
    fi
    test "$#" = 2 || BUG "not 2 or 3 parameters to test_expect_success"
    test -z "${skip_all:-}" || test_done
    test "$test_in_body_" != t || BUG "test_expect_success inside a test body"
    test_start_
    if ! test_skip_ "$1" "$test_prereq_arg_"; then
        if test_run_ "$2"; then
            test_ok_ "$1"
        else
            test_failure_ "$1" "$2"
        fi
    fi
    test_finish_
}

# test_expect_failure [PREREQS] 'description' 'body': a known breakage,
# reported as TAP TODO; a pass says the breakage vanished.
test_expect_failure() {
    test_prereq_arg_=
    if test "$#" = 3; then
        test_prereq_arg_=$1
        shift
    fi
    test "$#" = 2 || BUG "not 2 or 3 parameters to test_expect_failure"
    test -z "${skip_all:-}" || test_done
    test "$test_in_body_" != t || BUG "test_expect_failure inside a test body"
    test_start_
    if ! test_skip_ "$1" "$test_prereq_arg_"; then
        if test_run_ "$2"; then
            test_known_broken_ok_ "$1"
        else
            test_known_broken_failure_ "$1"
        fi
    fi
    test_finish_
}

# skip_all='reason' then test_done skips the whole file (or the rest of it).
test_done() {
    test_done_called_=t
    if test -n "${skip_all:-}" && test "$test_count" = 0; then
        say_tap_ "1..0 # SKIP $skip_all"
        exit 0
    fi
    if test -n "${skip_all:-}"; then
        say_tap_ "# skipping the remaining tests: $skip_all"
    fi
    say_tap_ "1..$test_count"
    if test "$test_fixed" != 0; then
        say_tap_ "# $test_fixed known breakage(s) vanished; please update test(s)"
    fi
    if test "$test_broken" != 0; then
        say_tap_ "# still have $test_broken known breakage(s)"
    fi
    if test "$test_failure" != 0; then
        say_tap_ "# failed $test_failure among $test_count test(s)"
        exit 1
    fi
    say_tap_ "# passed all $test_count test(s)"
    exit 0
}

# test_when_finished 'cmd': inside a body, run cmd after the body, pass or
# fail; a failing cmd fails the test. The last registered runs first.
test_when_finished() {
    test "$test_in_body_" = t || BUG "test_when_finished outside a test body"
    test_cleanup_="{ $*
} || test_cleanup_failed_=t
$test_cleanup_"
}

# ---------------------------------------------------------------------------
# Assertions for bodies. Each says what went wrong on stderr (the log).

# test_must_fail CMD...: CMD exits non-zero, and not by a signal (a crash,
# a sanitizer abort) nor because it could not be run.
test_must_fail() {
    "$@"
    test_mf_code_=$?
    if test "$test_mf_code_" = 0; then
        echo "test_must_fail: command succeeded: $*" >&2
        return 1
    elif test "$test_mf_code_" -gt 128 && test "$test_mf_code_" -le 192; then
        echo "test_must_fail: died by signal $((test_mf_code_ - 128)): $*" >&2
        return 1
    elif test "$test_mf_code_" = 127; then
        echo "test_must_fail: command not found: $*" >&2
        return 1
    elif test "$test_mf_code_" = 126; then
        echo "test_must_fail: command not executable: $*" >&2
        return 1
    fi
    return 0
}

# test_expect_code N CMD...: CMD exits with status N.
test_expect_code() {
    test "$#" -ge 2 || BUG "usage: test_expect_code N command..."
    test_ec_want_=$1
    shift
    "$@"
    test_ec_got_=$?
    test "$test_ec_got_" = "$test_ec_want_" && return 0
    echo "test_expect_code: command exited with $test_ec_got_, we wanted $test_ec_want_: $*" >&2
    return 1
}

# test_cmp EXPECTED ACTUAL: the files are equal; else the diff.
test_cmp() {
    test "$#" = 2 || BUG "usage: test_cmp expected actual"
    diff -u "$1" "$2" >&2
}

# test_line_count OP N FILE: e.g. test_line_count = 3 out
test_line_count() {
    test "$#" = 3 || BUG "usage: test_line_count <op> <count> <file>"
    if ! test -f "$3"; then
        echo "test_line_count: no such file: $3" >&2
        return 1
    fi
    test_lc_n_=$(wc -l <"$3")
    test_lc_n_=$((test_lc_n_ + 0))
    if ! test "$test_lc_n_" "$1" "$2"; then
        echo "test_line_count: $3 has $test_lc_n_ line(s), wanted $1 $2:" >&2
        cat "$3" >&2
        return 1
    fi
}

# test_json_eq FILE 'jq expression' 'expected': the expression's result on
# FILE, as `jq -r -c` prints it (strings raw, other values compact JSON),
# equals expected. Use (expr | tojson) to tell "1" from 1.
test_json_eq() {
    test "$#" = 3 || BUG "usage: test_json_eq file 'jq expression' 'expected value'"
    if ! test -f "$1"; then
        echo "test_json_eq: no such file: $1" >&2
        return 1
    fi
    if ! test_je_got_=$(jq -r -c "$2" <"$1" 2>&1); then
        echo "test_json_eq: jq could not evaluate '$2' on $1: $test_je_got_" >&2
        echo "$1 is:" >&2
        cat "$1" >&2
        return 1
    fi
    test "$test_je_got_" = "$3" && return 0
    {
        echo "test_json_eq: $1: $2"
        echo "  expected: $3"
        echo "  actual:   $test_je_got_"
        echo "$1 is:"
        jq . <"$1" 2>/dev/null || cat "$1"
    } >&2
    return 1
}

# test_must_be_empty FILE
test_must_be_empty() {
    test "$#" = 1 || BUG "usage: test_must_be_empty file"
    if ! test -f "$1"; then
        echo "test_must_be_empty: no such file: $1" >&2
        return 1
    fi
    if test -s "$1"; then
        echo "test_must_be_empty: $1 is not empty:" >&2
        cat "$1" >&2
        return 1
    fi
}

# test_grep [!] [grep options] PATTERN FILE: like grep, but shows FILE when
# the pattern is (or, with !, is not) found.
test_grep() {
    test_grep_negate_=
    if test "$1" = "!"; then
        test_grep_negate_=t
        shift
    fi
    test "$#" -ge 2 || BUG "usage: test_grep [!] [options] pattern file"
    test_grep_file_=
    eval "test_grep_file_=\${$#}"
    if ! test -f "$test_grep_file_"; then
        echo "test_grep: no such file: $test_grep_file_" >&2
        return 1
    fi
    if test -z "$test_grep_negate_"; then
        grep "$@" >/dev/null && return 0
        echo "test_grep: no match for the pattern in $test_grep_file_ (grep $*):" >&2
    else
        grep "$@" >/dev/null || return 0
        echo "test_grep: unexpected match in $test_grep_file_ (grep $*):" >&2
    fi
    cat "$test_grep_file_" >&2
    return 1
}

test_path_is_file() {
    test -f "$1" && return 0
    echo "test_path_is_file: not a file: $1" >&2
    return 1
}

test_path_is_dir() {
    test -d "$1" && return 0
    echo "test_path_is_dir: not a directory: $1" >&2
    return 1
}

test_path_is_missing() {
    test -e "$1" || return 0
    echo "test_path_is_missing: exists: $1" >&2
    return 1
}

# test_write_lines A B C: one argument a line.
test_write_lines() {
    printf '%s\n' "$@"
}

# ---------------------------------------------------------------------------
# PostgreSQL: a throwaway cluster in "$TRASH/pg" (scripts/pg-tmp).

# start_postgres: start (or restart) the cluster and export PGHOST, PGPORT,
# PGUSER, PGDATABASE. At the top level a failure stops the file; in a body
# it fails the test.
start_postgres() {
    if ! test_pg_env_=$("$TEST_ROOT/scripts/pg-tmp" start "$TRASH/pg" 7>&- 8>&-); then
        test_service_failed_ "could not start PostgreSQL in $TRASH/pg" \
            "$TRASH/pg/postgres.log"
        return 1
    fi
    eval "$test_pg_env_"
    export PGHOST PGPORT PGUSER PGDATABASE
    if test -z "$test_pg_running_"; then
        test_atexit 'stop_postgres'
    fi
    test_pg_running_=t
}

# stop_postgres: stop the cluster (its data stays; start_postgres again
# brings it back).
stop_postgres() {
    test -n "$test_pg_running_" || return 0
    test_pg_running_=
    "$TEST_ROOT/scripts/pg-tmp" stop "$TRASH/pg" 7>&- 8>&-
}

# psql_q 'SQL' [psql options]: run SQL, print the rows unaligned, no header.
psql_q() {
    test "$#" -ge 1 || BUG "usage: psql_q 'SQL' [psql options]"
    test_psql_sql_=$1
    shift
    psql -X -v ON_ERROR_STOP=1 -qAt -c "$test_psql_sql_" "$@"
}

# psql_await 'SQL': poll (every 0.1 s, 30 s at the most) until SQL prints
# t, for a test that waits on what another session does; else show the
# sessions and fail.
psql_await() {
    test_await_tries_=0
    until test "$(psql_q "$1")" = t; do
        test_await_tries_=$((test_await_tries_ + 1))
        if test "$test_await_tries_" -gt 300; then
            echo "psql_await: still not true after 30 s: $1" >&2
            psql_q "SELECT pid, application_name, state, wait_event_type, wait_event, query
                    FROM pg_stat_activity WHERE backend_type = 'client backend'" >&2
            return 1
        fi
        sleep 0.1
    done
}

# psql_terminate 'CONDITION' [PID]: end the sessions of pg_stat_activity
# that CONDITION picks, then reap PID (the background psql that had one),
# however it ended. Always true.
psql_terminate() {
    psql_q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE $1" >/dev/null
    if test -n "${2:-}"; then
        wait "$2"
    fi
    return 0
}

# A service that would not start: at the top level the file stops; in a
# body the caller returns 1. $2 is a log worth showing.
test_service_failed_() {
    if test -n "${2:-}" && test -s "$2"; then
        echo "last lines of $2:" >&2
        tail -n 20 "$2" >&2
    fi
    test "$test_in_body_" = t || test_fatal_ "$1"
    echo "error: $1" >&2
}

# ---------------------------------------------------------------------------
# The MailerLite emulator (tests/fake-mailerlite) on a random loopback port.

# Run the rest with xtrace off, so the token never reaches a trace; call
# as `{ test_untrace_; } 2>/dev/null`, then test_retrace_ before returning.
test_untrace_() {
    case $- in
    *x*)
        set +x
        test_xtrace_was_on_=t
        ;;
    *) test_xtrace_was_on_= ;;
    esac
}
test_retrace_() {
    if test "$test_xtrace_was_on_" = t; then
        set -x
    fi
}

ML_EMULATOR=$TEST_ROOT/tests/fake-mailerlite/fake-mailerlite
ML_PID=

# start_emulator [args...]: start the emulator with args, wait (~10 s) for
# its port, export ML_PORT, ML_BASE, MAILERLITE_API_URL, MAILERLITE_API_KEY.
# Its output is in $TRASH/ml.log. Without a built emulator the file is
# skipped.
start_emulator() {
    { test_untrace_; } 2>/dev/null
    if ! test -x "$ML_EMULATOR"; then
        if test "$test_in_body_" = t; then
            echo "error: the MailerLite emulator is not built: $ML_EMULATOR" >&2
            test_retrace_
            return 1
        fi
        skip_all="the MailerLite emulator is not built ($ML_EMULATOR; run make)"
        test_done
    fi
    stop_emulator
    rm -f "$TRASH/ml.port"
    "$ML_EMULATOR" --port 0 --port-file "$TRASH/ml.port" --quiet "$@" \
        >>"$TRASH/ml.log" 2>&1 </dev/null 7>&- 8>&- &
    ML_PID=$!
    if test -z "$test_ml_registered_"; then
        test_atexit 'stop_emulator'
        test_ml_registered_=t
    fi
    test_ml_tries_=0
    ML_PORT=
    while :; do
        if test -s "$TRASH/ml.port"; then
            ML_PORT=$(cat "$TRASH/ml.port")
            case $ML_PORT in
            '' | *[!0-9]*) ML_PORT= ;;
            *) break ;;
            esac
        fi
        if ! kill -0 "$ML_PID" 2>/dev/null; then
            wait "$ML_PID"
            test_ml_status_=$?
            ML_PID=
            test_service_failed_ \
                "the MailerLite emulator exited with status $test_ml_status_ before it listened" \
                "$TRASH/ml.log"
            test_retrace_
            return 1
        fi
        test_ml_tries_=$((test_ml_tries_ + 1))
        if test "$test_ml_tries_" -gt 100; then
            stop_emulator
            test_service_failed_ "the MailerLite emulator wrote no port to $TRASH/ml.port within 10 s" \
                "$TRASH/ml.log"
            test_retrace_
            return 1
        fi
        sleep 0.1
    done
    ML_BASE=http://127.0.0.1:$ML_PORT
    MAILERLITE_API_URL=$ML_BASE/api
    MAILERLITE_API_KEY=test-token
    export ML_PORT ML_BASE MAILERLITE_API_URL MAILERLITE_API_KEY
    test_retrace_
}
test_ml_registered_=

# stop_emulator: stop it (TERM, then KILL after ~5 s).
stop_emulator() {
    test -n "$ML_PID" || return 0
    kill "$ML_PID" 2>/dev/null
    test_ml_tries_=0
    while kill -0 "$ML_PID" 2>/dev/null; do
        test_ml_tries_=$((test_ml_tries_ + 1))
        if test "$test_ml_tries_" -gt 50; then
            echo "stop_emulator: pid $ML_PID ignored SIGTERM; sending SIGKILL" >&2
            kill -9 "$ML_PID" 2>/dev/null
            break
        fi
        sleep 0.1
    done
    wait "$ML_PID" 2>/dev/null
    ML_PID=
    return 0
}

# ml_control METHOD PATH [BODY]: call the emulator's control endpoint
# $ML_BASE/_control/PATH and print the response (newline-terminated); BODY
# is JSON, or @file, or @- for stdin. Fails on an HTTP error.
ml_control() {
    if test "$#" -lt 2 || test "$#" -gt 3; then
        BUG "usage: ml_control METHOD PATH [JSON-body]"
    fi
    if test "$#" = 3; then
        test_ml_out_=$(curl -q -sS -f -X "$1" -H 'Content-Type: application/json' \
            --data-binary "$3" "$ML_BASE/_control/${2#/}")
    else
        test_ml_out_=$(curl -q -sS -f -X "$1" "$ML_BASE/_control/${2#/}")
    fi
    test_ml_ret_=$?
    test -z "$test_ml_out_" || printf '%s\n' "$test_ml_out_"
    return "$test_ml_ret_"
}

# ml_api METHOD PATH [BODY]: call the emulated API ($MAILERLITE_API_URL/PATH)
# with the token and print the response body (newline-terminated); fails on
# an HTTP error, the body still printed. The response headers of the last
# call are in $TRASH/ml-api.headers.
ml_api() {
    { test_untrace_; } 2>/dev/null
    if test "$#" -lt 2 || test "$#" -gt 3; then
        test_retrace_
        BUG "usage: ml_api METHOD PATH [JSON-body]"
    fi
    # The token reaches curl through a file: never on a command line (ps)
    # nor in a trace.
    (umask 077 && printf 'Authorization: Bearer %s\n' "${MAILERLITE_API_KEY:-}" \
        >"$TRASH/.ml-api.auth")
    if test "$#" = 3; then
        test_ml_out_=$(curl -q -sS --fail-with-body -X "$1" -H @"$TRASH/.ml-api.auth" \
            -H 'Accept: application/json' -H 'Content-Type: application/json' \
            -D "$TRASH/ml-api.headers" --data-binary "$3" \
            "$MAILERLITE_API_URL/${2#/}")
    else
        test_ml_out_=$(curl -q -sS --fail-with-body -X "$1" -H @"$TRASH/.ml-api.auth" \
            -H 'Accept: application/json' -D "$TRASH/ml-api.headers" \
            "$MAILERLITE_API_URL/${2#/}")
    fi
    test_ml_ret_=$?
    rm -f "$TRASH/.ml-api.auth"
    test -z "$test_ml_out_" || printf '%s\n' "$test_ml_out_"
    test_retrace_
    return "$test_ml_ret_"
}

# test_await_port_ NAME PID PORT_FILE LOG: wait (~10 s at the most) until
# the helper NAME, started as PID, has written the port it listens on to
# PORT_FILE; else say why (its LOG when it exited) and fail.
test_await_port_() {
    test_await_port_tries_=0
    until test -s "$3"; do
        if ! kill -0 "$2" 2>/dev/null; then
            echo "$1 exited before it listened:" >&2
            cat "$4" >&2
            return 1
        fi
        test_await_port_tries_=$((test_await_port_tries_ + 1))
        if test "$test_await_port_tries_" -gt 100; then
            echo "$1 wrote no port within 10 s" >&2
            return 1
        fi
        sleep 0.1
    done
}

# ---------------------------------------------------------------------------
# A slow path to the cluster (tests/helpers/latency-proxy), for the tests of
# what a program does when the database answers late.

LATENCY_PROXY=$TEST_ROOT/tests/helpers/latency-proxy
PROXY_PID=
PROXY_PORT=
PROXY_CONNINFO=
test_proxy_registered_=

# start_proxy DELAY_MS [SOCKET]: the proxy in front of the cluster's socket
# (or SOCKET), on a free port of 127.0.0.1; sets PROXY_PID, PROXY_PORT and
# PROXY_CONNINFO (libpq's conninfo for the cluster through it) once it
# listens (~10 s at the most). Its stderr is in $TRASH/proxy.log.
# It is stopped at the end of the file. Call it at the top level or
# directly in a body, not in a subshell.
start_proxy() {
    rm -f "$TRASH/proxy.port"
    "$LATENCY_PROXY" --unix "${2:-$PGHOST/.s.PGSQL.$PGPORT}" --delay-ms "$1" \
        --port-file "$TRASH/proxy.port" >>"$TRASH/proxy.log" 2>&1 </dev/null 7>&- 8>&- &
    PROXY_PID=$!
    if test -z "$test_proxy_registered_"; then
        test_atexit 'stop_proxy'
        test_proxy_registered_=t
    fi
    if ! test_await_port_ latency-proxy "$PROXY_PID" "$TRASH/proxy.port" "$TRASH/proxy.log"; then
        PROXY_PID=
        return 1
    fi
    PROXY_PORT=$(cat "$TRASH/proxy.port")
    # shellcheck disable=SC2034 # for the test files
    PROXY_CONNINFO="host=127.0.0.1 port=$PROXY_PORT user=$PGUSER dbname=$PGDATABASE connect_timeout=10"
}

# stop_proxy: SIGTERM, and wait for it; its exit status.
stop_proxy() {
    test -n "$PROXY_PID" || return 0
    kill "$PROXY_PID"
    wait "$PROXY_PID"
    test_proxy_status_=$?
    PROXY_PID=
    return "$test_proxy_status_"
}

# start_webhook_receiver [args...]: tests/helpers/webhook-receiver with args
# (--fail-first N, --hang, --delay-ms N, --body-bytes N|endless; see the
# script) on a free port of 127.0.0.1, recording each request as a JSON
# line of $TRASH/webhook.jsonl (emptying that file restarts its request
# count); a receiver already running is stopped first. Once it listens
# (~10 s at the most) WEBHOOK_PID, WEBHOOK_PORT, WEBHOOK_LOG and
# WEBHOOK_URL (http://127.0.0.1:PORT/hook) are set. Its stderr is in
# $TRASH/webhook.err. It is stopped at the end of the file; to stop it
# before: kill "$WEBHOOK_PID" && wait "$WEBHOOK_PID". Call it at the top
# level or directly in a body, not in a subshell.
start_webhook_receiver() {
    if test -n "${WEBHOOK_PID:-}" && kill "$WEBHOOK_PID" 2>/dev/null; then
        wait "$WEBHOOK_PID"
    fi
    WEBHOOK_PID=
    WEBHOOK_LOG=$TRASH/webhook.jsonl
    rm -f "$TRASH/webhook.port"
    "$TEST_ROOT/tests/helpers/webhook-receiver" --log "$WEBHOOK_LOG" \
        --port-file "$TRASH/webhook.port" "$@" \
        >>"$TRASH/webhook.err" 2>&1 </dev/null 7>&- 8>&- &
    WEBHOOK_PID=$!
    if test -z "${test_webhook_registered_:-}"; then
        # shellcheck disable=SC2016 # expanded when the file ends
        test_atexit 'if test -n "$WEBHOOK_PID" && kill "$WEBHOOK_PID" 2>/dev/null; then
            wait "$WEBHOOK_PID"; fi'
        test_webhook_registered_=t
    fi
    if ! test_await_port_ webhook-receiver "$WEBHOOK_PID" "$TRASH/webhook.port" \
        "$TRASH/webhook.err"; then
        WEBHOOK_PID=
        return 1
    fi
    WEBHOOK_PORT=$(cat "$TRASH/webhook.port")
    # shellcheck disable=SC2034 # for the test files
    WEBHOOK_URL=http://127.0.0.1:$WEBHOOK_PORT/hook
}

# ---------------------------------------------------------------------------
# crosswalk's tables and the emulator's log, for the tests of the jobs.

# programs_under_test: the names of the programs, one per cmd/*.c, each
# built into bin/.
programs_under_test() {
    for test_src_ in "$TEST_ROOT"/cmd/*.c; do
        test -e "$test_src_" && basename "$test_src_" .c
    done
}

# psql_file: run the SQL on stdin, stopping at its first error.
psql_file() {
    psql -X -q -v ON_ERROR_STOP=1 -f -
}

# load_sample A_ROWS B_ROWS SHARED: public.clients with A_ROWS contacts and
# the emulator with B_ROWS subscribers, SHARED of them on both sides
# (scripts/sample-data tells how they differ).
load_sample() {
    "$TEST_ROOT/scripts/sample-data" sql "$1" "$3" | psql_file &&
    "$TEST_ROOT/scripts/sample-data" ndjson "$2" "$3" >"$TRASH/.subscribers.ndjson" &&
    ml_control POST subscribers @"$TRASH/.subscribers.ndjson" >/dev/null
}

# sync_forget: crosswalk's tables as crosswalk-migrate left them, and the
# emulator's request log and faults cleared.
sync_forget() {
    psql_q "TRUNCATE sync.integration_crosswalk, sync.sync_shadow, sync.sync_state,
                     sync.sync_log, sync.sync_conflicts" &&
    ml_control DELETE log >/dev/null &&
    ml_control DELETE faults >/dev/null
}

# crosswalk_rows: the crosswalk as sorted "a_id|b_id|email" lines.
crosswalk_rows() {
    psql_q "SELECT a_id, b_id, email FROM sync.integration_crosswalk" | sort
}

# expected_crosswalk: what the crosswalk must be, worked out from both sides
# as they are now: each row of public.clients whose normalized email is a
# subscriber's, as sorted "a_id|b_id|email" lines.
expected_crosswalk() {
    ml_control GET subscribers >"$TRASH/.b.jsonl" &&
    jq -r '[.email, .id] | join("|")' "$TRASH/.b.jsonl" | sort >"$TRASH/.b.txt" &&
    psql_q "SELECT lower(trim(email)), id FROM public.clients" | sort >"$TRASH/.a.txt" &&
    join -t "|" "$TRASH/.a.txt" "$TRASH/.b.txt" |
        awk -F "|" '{ print $2 "|" $3 "|" $1 }' | sort
}

# links_are_whole: as many shadows as crosswalk rows, each row with its
# own: what a batch commits is never half there.
links_are_whole() {
    psql_q "SELECT count(*) FILTER (WHERE s.crosswalk_id IS NULL), count(*),
                   (SELECT count(*) FROM sync.sync_shadow)
            FROM sync.integration_crosswalk c
            LEFT JOIN sync.sync_shadow s ON s.crosswalk_id = c.id" >"$TRASH/.links" || return 1
    if ! awk -F"|" "{ exit !(\$1 == 0 && \$2 == \$3) }" "$TRASH/.links"; then
        echo "crosswalk rows without a shadow | crosswalk rows | shadows:" >&2
        cat "$TRASH/.links" >&2
        return 1
    fi
}

# list_pages [LOG]: the subscriber list pages the emulator served, one JSON
# object a line (the count, limit=0, is not a page). LOG is a copy of
# /_control/log saved earlier; without it the log is read now.
list_pages() {
    if test "$#" = 1; then
        jq -c 'select(.method == "GET" and .path == "/api/subscribers"
                      and (.query | test("(^|&)limit=0(&|$)") | not))' "$1"
    else
        ml_control GET log >"$TRASH/.log.jsonl" && list_pages "$TRASH/.log.jsonl"
    fi
}

# ---------------------------------------------------------------------------

cd "$TRASH" || test_fatal_ "could not enter $TRASH"

# A file may set skip_all before sourcing us.
if test -n "${skip_all:-}"; then
    test_done
fi
