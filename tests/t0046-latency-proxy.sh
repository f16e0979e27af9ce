#!/bin/sh
# Test bodies are single-quoted and use variables and functions defined here:
# shellcheck disable=SC2016,SC2034,SC2317
test_description='latency-proxy gives the tests a slow path to the real cluster'
# shellcheck source=tests/test-lib.sh
. "$(dirname "$0")/test-lib.sh"

start_postgres

# psql_proxy SQL: SQL through the proxy, over TCP.
psql_proxy() {
    psql -X -v ON_ERROR_STOP=1 -qAt "$PROXY_CONNINFO" -c "$1"
}

# now_ms: milliseconds since the epoch.
now_ms() {
    perl -MTime::HiRes=time -e 'printf "%d\n", time * 1000'
}

# start_sleeper: a session through the proxy whose query sleeps, in the
# background (SLEEPER_PID); returns once the server runs the query.
SLEEP_SQL='SELECT pg_sleep(120)'
SLEEPER_PID=
start_sleeper() {
    psql_proxy "$SLEEP_SQL" >>"$TRASH/sleeper.out" 2>&1 </dev/null 7>&- 8>&- &
    SLEEPER_PID=$!
    test_sleeper_tries_=0
    until test "$(psql_q "SELECT count(*) FROM pg_stat_activity
                          WHERE query = '$SLEEP_SQL' AND state = 'active'")" = 1; do
        test_sleeper_tries_=$((test_sleeper_tries_ + 1))
        if test "$test_sleeper_tries_" -gt 100; then
            echo "the sleeping query did not start within 10 s:" >&2
            cat "$TRASH/sleeper.out" "$TRASH/proxy.log" >&2
            return 1
        fi
        sleep 0.1
    done
}

# stop_sleeper: end the sleeping query and reap its psql, however it ended.
stop_sleeper() {
    test -n "$SLEEPER_PID" || return 0
    psql_terminate "query = '$SLEEP_SQL'" "$SLEEPER_PID"
    SLEEPER_PID=
}
test_atexit 'stop_sleeper'

test_expect_success 'the proxy listens on a free port and writes it down' '
    start_proxy 50 &&
    case $PROXY_PORT in
    "" | *[!0-9]*) echo "not a port: \"$PROXY_PORT\"" >&2 && false ;;
    esac
'

test_expect_success 'a query through the proxy reaches the cluster' '
    psql_proxy "SELECT 1 + 1, current_setting('\''port'\'')" >actual &&
    echo "2|$PGPORT" >expect &&
    test_cmp expect actual
'

test_expect_success 'every exchange is held back by the delay' '
    start=$(now_ms) &&
    psql_proxy "SELECT 1" >actual &&
    end=$(now_ms) &&
    echo 1 >expect &&
    test_cmp expect actual &&
    # At least two round trips (startup, query) of 2 x 50 ms: a lower
    # bound, which no slow machine can break.
    if test $((end - start)) -lt 200; then
        echo "psql took $((end - start)) ms through a 50 ms proxy" >&2 &&
        false
    fi
'

test_expect_success 'connections are served at once' '
    start_sleeper &&
    test_when_finished stop_sleeper &&
    psql_proxy "SELECT count(*) FROM pg_stat_activity
                WHERE query = '\''$SLEEP_SQL'\'' AND state = '\''active'\''" >actual &&
    echo 1 >expect &&
    test_cmp expect actual
'

test_expect_success 'SIGTERM stops the proxy and its connections; it exits 0' '
    start_sleeper &&
    test_when_finished stop_sleeper &&
    children=$(pgrep -P "$PROXY_PID") &&
    test -n "$children" &&
    stop_proxy &&
    for pid in $children; do
        if kill -0 "$pid" 2>/dev/null; then
            echo "connection process $pid outlived the proxy" >&2 &&
            return 1
        fi
    done &&
    test_must_fail wait "$SLEEPER_PID" &&
    SLEEPER_PID= &&
    test_path_is_missing proxy.port
'

test_expect_success 'a socket that refuses costs the connection, not the proxy' '
    start_proxy 0 "$TRASH/no-such-socket" &&
    test_must_fail psql_proxy "SELECT 1" &&
    kill -0 "$PROXY_PID" &&
    test_grep "latency-proxy: error: could not connect to $TRASH/no-such-socket" proxy.log &&
    stop_proxy
'

test_expect_success 'a bad command line exits 64' '
    test_expect_code 64 "$LATENCY_PROXY" --delay-ms 5 2>err &&
    test_grep "latency-proxy: error: --unix PATH is required" err &&
    test_expect_code 64 "$LATENCY_PROXY" --unix x --delay-ms -1 2>err &&
    test_grep "delay-ms must be a whole number" err &&
    test_expect_code 64 "$LATENCY_PROXY" --unix x --no-such-option 2>err &&
    test_grep "unknown option" err
'

test_done
