#!/bin/sh
# Test bodies are single-quoted and use variables and functions defined here:
# shellcheck disable=SC2016,SC2034,SC2317
test_description='the MailerLite emulator behaves like the documented API'
# shellcheck source=tests/test-lib.sh
. "$(dirname "$0")/test-lib.sh"

# A rate limit that is on (so the headers are there) but never reached here;
# the limit itself is tested at the end with --rate-limit 5.
start_emulator --rate-limit 100000

# The token reaches curl through a file, never on a command line.
write_auth() {
    (umask 077 && printf 'Authorization: Bearer %s\n' "$MAILERLITE_API_KEY" >"$TRASH/auth.h")
}
write_auth

# req METHOD PATH [JSON]: calls $ML_BASE$PATH with the token; the body lands
# in ./body, the headers in ./headers, the status code in ./code. Never
# fails on an HTTP status (curl's own exit status is returned).
req() {
    if test "$#" = 3; then
        curl -q -g -sS -o body -D headers -w '%{http_code}' -X "$1" -H @"$TRASH/auth.h" \
            -H 'Content-Type: application/json' --data-binary "$3" "$ML_BASE$2" >code
    else
        curl -q -g -sS -o body -D headers -w '%{http_code}' -X "$1" -H @"$TRASH/auth.h" \
            "$ML_BASE$2" >code
    fi
}

# code_is N: the last req answered N.
code_is() {
    test "$(cat code)" = "$1" && return 0
    echo "expected HTTP $1, got $(cat code):" >&2
    cat body >&2
    return 1
}

# header NAME: the value of a header of the last req (empty when absent).
header() {
    grep -i "^$1:" headers | tr -d '\r' | sed 's/^[^:]*: *//'
}

# walk LIMIT: walks GET /api/subscribers page by page, re-sending limit
# with each cursor; the ids in ./ids, the page count in ./pages.
walk() {
    : >ids
    walk_pages_=0
    walk_cursor_=
    while :; do
        curl -q -g -sS -f -H @"$TRASH/auth.h" \
            "$ML_BASE/api/subscribers?limit=$1${walk_cursor_:+&cursor=$walk_cursor_}" \
            >page || return 1
        jq -r '.data[].id, "next=\(.meta.next_cursor // "")"' page >lines || return 1
        walk_pages_=$((walk_pages_ + 1))
        while IFS= read -r walk_line_; do
            case $walk_line_ in
            next=*) walk_cursor_=${walk_line_#next=} ;;
            *) echo "$walk_line_" ;;
            esac
        done <lines >>ids
        test -n "$walk_cursor_" || break
        test "$walk_pages_" -lt 1000 || return 1
    done
    echo "$walk_pages_" >pages
}

test_expect_success 'the control endpoint answers without a token' '
    ml_control GET health >out &&
    test_json_eq out .ok true
'

test_expect_success 'a missing or wrong token gets 401 without rate headers' '
    curl -q -sS -o body -D headers -w "%{http_code}" "$ML_BASE/api/subscribers" >code &&
    code_is 401 &&
    test_json_eq body .message Unauthenticated. &&
    header x-ratelimit-limit >h &&
    test_must_be_empty h &&
    curl -q -sS -o body -D headers -w "%{http_code}" -H "Authorization: Bearer nope" \
        "$ML_BASE/api/subscribers" >code &&
    code_is 401 &&
    header x-ratelimit-remaining >h &&
    test_must_be_empty h
'

test_lazy_prereq PROC_NET_TCP 'test -r /proc/net/tcp'

test_expect_success PROC_NET_TCP 'it listens on 127.0.0.1 only' '
    port_hex=$(printf "%04X" "$ML_PORT") &&
    cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
        awk -v p="$port_hex" "\$4 == \"0A\" && \$2 ~ (\":\" p \"\$\") { print \$2 }" >listen &&
    echo "0100007F:$port_hex" >expect &&
    test_cmp expect listen
'

test_expect_success 'keep-alive answers come without a delayed-ACK stall' '
    urls= && i=0 &&
    while test $i -lt 20; do
        urls="$urls $ML_BASE/api/subscribers?limit=5" && i=$((i + 1)) || return 1
    done &&
    curl -q -sS -H @"$TRASH/auth.h" -w "%{stderr}%{num_connects} %{time_total}\n" \
        $urls >/dev/null 2>times &&
    test_line_count = 20 times &&
    awk "{ c += \$1; t += \$2 } END { exit !(c == 1 && t < 0.4) }" times
'

test_expect_success 'seed 2,500 subscribers' '
    ml_control POST generate \
        "{\"count\":2500,\"email_format\":\"user%d@example.com\",\"fields\":{\"name\":\"First %d\"}}" \
        >out &&
    test_json_eq out .inserted 2500 &&
    ml_control GET stats >out &&
    test_json_eq out .subscribers 2500
'

test_expect_success 'ids are strings of 18 digits above 2^53, not contiguous' '
    req GET "/api/subscribers?limit=50" &&
    code_is 200 &&
    test_json_eq body "[.data[].id | type] | unique" "[\"string\"]" &&
    test_json_eq body "[.data[].id | test(\"^[0-9]{18}\$\")] | all" true &&
    test_json_eq body "[.data[].id | tonumber > 9007199254740992] | all" true &&
    jq -r ".data[].id" body | cut -c10-18 >low &&
    awk "NR > 1 && prev - \$1 != 1 { gaps++ } { prev = \$1 } END { exit gaps ? 0 : 1 }" low &&
    header x-ratelimit-limit >h &&
    echo 100000 >expect &&
    test_cmp expect h
'

test_expect_success 'a walk at limit 100 returns every subscriber once, newest first, in 25 pages' '
    walk 100 &&
    echo 25 >expect &&
    test_cmp expect pages &&
    test_line_count = 2500 ids &&
    sort -u ids >uniq &&
    test_line_count = 2500 uniq &&
    sort -r ids >desc &&
    test_cmp desc ids
'

test_expect_success 'links.next keeps only the cursor; meta.path is the list' '
    req GET "/api/subscribers?limit=10&filter%5Bstatus%5D=active&include=groups" &&
    code_is 200 &&
    cursor=$(jq -r .meta.next_cursor body) &&
    test_json_eq body .links.next "$ML_BASE/api/subscribers?cursor=$cursor" &&
    test_json_eq body .meta.path "$ML_BASE/api/subscribers" &&
    test_json_eq body .meta.per_page 10 &&
    test_json_eq body .meta.prev_cursor null &&
    req GET "/api/subscribers?limit=10&cursor=$cursor" &&
    code_is 200 &&
    test_json_eq body ".meta.prev_cursor | type" string
'

test_expect_success 'the walk survives deletes and inserts between pages' '
    req GET "/api/subscribers?limit=1000" &&
    cursor=$(jq -r .meta.next_cursor body) &&
    req GET "/api/subscribers?limit=1&cursor=$cursor" &&
    victim=$(jq -r ".data[0].id" body) &&
    req DELETE "/api/subscribers/$victim" &&
    code_is 204 &&
    req POST /api/subscribers "{\"email\":\"newcomer@example.com\"}" &&
    code_is 201 &&
    req GET "/api/subscribers?limit=1000&cursor=$cursor" &&
    test_json_eq body ".data | length" 1000 &&
    test_json_eq body "[.data[].id] | index(\"$victim\")" null &&
    test_json_eq body "[.data[].email] | index(\"newcomer@example.com\")" null &&
    cursor=$(jq -r .meta.next_cursor body) &&
    req GET "/api/subscribers?limit=1000&cursor=$cursor" &&
    test_json_eq body ".data | length" 499 &&
    test_json_eq body .meta.next_cursor null
'

test_expect_success 'limit=0 gives the total only, honouring filter[status]' '
    req GET "/api/subscribers?limit=0" &&
    test_json_eq body . "{\"total\":2500}" &&
    ml_control POST edit "{\"email\":\"user7@example.com\",\"status\":\"unsubscribed\"}" >out &&
    req GET "/api/subscribers?limit=0&filter%5Bstatus%5D=unsubscribed" &&
    test_json_eq body . "{\"total\":1}" &&
    req GET "/api/subscribers?limit=0&filter[status]=active" &&
    test_json_eq body .total 2499
'

test_expect_success 'a limit above the cap is clamped, or refused in reject mode' '
    ml_control POST config "{\"page_cap\":100}" >out &&
    req GET "/api/subscribers?limit=500" &&
    code_is 200 &&
    test_json_eq body .meta.per_page 100 &&
    test_json_eq body ".data | length" 100 &&
    ml_control POST config "{\"page_cap_mode\":\"reject\"}" >out &&
    req GET "/api/subscribers?limit=500" &&
    code_is 422 &&
    test_json_eq body .message "The limit may not be greater than 100." &&
    test_json_eq body ".errors.limit[0]" "The limit may not be greater than 100." &&
    ml_control POST config "{\"page_cap\":1000,\"page_cap_mode\":\"clamp\"}" >out &&
    test_json_eq out .page_cap 1000
'

test_expect_success 'POST creates (201) then finds (200) the same subscriber' '
    req POST /api/subscribers "{\"email\":\"  Bob@Example.COM \",\"fields\":{\"name\":\"Bob\"}}" &&
    code_is 201 &&
    test_json_eq body .data.email bob@example.com &&
    test_json_eq body .data.source api &&
    bob=$(jq -r .data.id body) &&
    req POST /api/subscribers "{\"email\":\"bob@example.com\"}" &&
    code_is 200 &&
    test_json_eq body .data.id "$bob" &&
    test_json_eq body .data.fields.name Bob
'

test_expect_success 'POST is non-destructive: fields kept, groups only added' '
    req POST /api/groups "{\"name\":\"alpha\"}" &&
    code_is 201 &&
    alpha=$(jq -r .data.id body) &&
    req POST /api/groups "{\"name\":\"beta\"}" &&
    beta=$(jq -r .data.id body) &&
    req POST /api/subscribers "{\"email\":\"bob@example.com\",\"fields\":{\"company\":\"ACME\"},\"groups\":[\"$alpha\"]}" &&
    code_is 200 &&
    req POST /api/subscribers "{\"email\":\"bob@example.com\",\"fields\":{\"city\":\"Oslo\"},\"groups\":[\"$beta\"]}" &&
    code_is 200 &&
    test_json_eq body .data.fields.name Bob &&
    test_json_eq body .data.fields.company ACME &&
    test_json_eq body .data.fields.city Oslo &&
    test_json_eq body "[.data.groups[].name] | sort" "[\"alpha\",\"beta\"]" &&
    req POST /api/subscribers "{\"email\":\"bob@example.com\",\"groups\":[\"999999999999999999\"]}" &&
    code_is 422 &&
    test_json_eq body ".errors | keys" "[\"groups.0\"]"
'

test_expect_success 'PUT replaces the groups and clears a field sent as null' '
    req PUT "/api/subscribers/$bob" "{\"fields\":{\"company\":null},\"groups\":[\"$beta\"]}" &&
    code_is 200 &&
    test_json_eq body .data.fields.company null &&
    test_json_eq body .data.fields.city Oslo &&
    test_json_eq body "[.data.groups[].name]" "[\"beta\"]" &&
    req GET "/api/subscribers/bob%40example.com" &&
    code_is 200 &&
    test_json_eq body .data.id "$bob"
'

test_expect_success 'validation errors are 422 keyed by field' '
    ml_control POST fields "{\"name\":\"plan_size\",\"type\":\"number\"}" >out &&
    req POST /api/subscribers "{\"email\":\"not-an-email\"}" &&
    code_is 422 &&
    test_json_eq body ".errors.email[0]" "The email must be a valid email address." &&
    req POST /api/subscribers "{\"email\":\"c@example.com\",\"fields\":{\"plan_size\":\"big\"}}" &&
    code_is 422 &&
    test_json_eq body ".errors | keys" "[\"fields.plan_size\"]" &&
    req POST /api/subscribers "{\"email\":\"c@example.com\",\"fields\":{\"plan_size\":\"42\",\"nosuch\":1}}" &&
    code_is 201 &&
    test_json_eq body .data.fields.plan_size 42 &&
    req POST /api/subscribers "{\"email\":\"c@example.com\",\"status\":\"sleepy\"}" &&
    code_is 422 &&
    req POST /api/subscribers "[1,2]" &&
    code_is 422
'

test_expect_success 'unsubscribe is sticky: PUT cannot reactivate, POST needs resubscribe' '
    req PUT "/api/subscribers/$bob" "{\"status\":\"unsubscribed\"}" &&
    test_json_eq body .data.status unsubscribed &&
    req PUT "/api/subscribers/$bob" "{\"status\":\"active\"}" &&
    code_is 200 &&
    test_json_eq body .data.status unsubscribed &&
    req POST /api/subscribers "{\"email\":\"bob@example.com\",\"status\":\"active\"}" &&
    test_json_eq body .data.status unsubscribed &&
    req POST /api/subscribers "{\"email\":\"bob@example.com\",\"resubscribe\":true}" &&
    test_json_eq body .data.status active
'

test_expect_success 'a deleted subscriber POSTed again keeps its id' '
    req DELETE "/api/subscribers/$bob" &&
    code_is 204 &&
    req GET "/api/subscribers/$bob" &&
    code_is 404 &&
    test_json_eq body .message "No query results for model [App\\Models\\Subscriber] $bob" &&
    req POST /api/subscribers "{\"email\":\"bob@example.com\"}" &&
    code_is 201 &&
    test_json_eq body .data.id "$bob"
'

test_expect_success 'group membership routes and the group walk' '
    req POST "/api/subscribers/$bob/groups/$alpha" &&
    code_is 200 &&
    test_json_eq body .data.name alpha &&
    req GET "/api/groups/$alpha/subscribers?limit=10" &&
    test_json_eq body "[.data[].email]" "[\"bob@example.com\"]" &&
    req DELETE "/api/subscribers/$bob/groups/$alpha" &&
    code_is 204 &&
    req POST "/api/subscribers/$bob/groups/123" &&
    code_is 404 &&
    req GET "/api/groups?filter%5Bname%5D=alp" &&
    test_json_eq body "[.data[].name]" "[\"alpha\"]" &&
    test_json_eq body .meta.total 1
'

test_expect_success 'a batch answers in order and costs one rate unit' '
    req GET /api/groups &&
    before=$(header x-ratelimit-remaining) &&
    req POST /api/batch "{\"requests\":[
        {\"method\":\"GET\",\"path\":\"api/subscribers/$bob\"},
        {\"method\":\"POST\",\"path\":\"api/subscribers\",\"body\":{\"email\":\"bad\"}},
        {\"method\":\"DELETE\",\"path\":\"api/subscribers/1\"},
        {\"method\":\"POST\",\"path\":\"api/subscribers\",\"body\":{\"email\":\"d@example.com\"}}]}" &&
    code_is 200 &&
    test_json_eq body "[.total,.successful,.failed]" "[4,2,2]" &&
    test_json_eq body "[.responses[].code]" "[200,422,404,201]" &&
    test_json_eq body ".responses[0].body.data.id" "$bob" &&
    after=$(header x-ratelimit-remaining) &&
    test "$after" -eq $((before - 1)) &&
    req POST /api/batch "{\"requests\":[]}" &&
    code_is 422 &&
    test_json_eq body ".errors | keys" "[\"requests\"]"
'

test_expect_success 'a batch takes at most 50 requests and cannot nest' '
    jq -cn "{requests: [range(51) | {method: \"GET\", path: \"api/groups\"}]}" >big.json &&
    req POST /api/batch "$(cat big.json)" &&
    code_is 422 &&
    test_json_eq body ".errors | keys" "[\"requests\"]" &&
    req POST /api/batch "{\"requests\":[{\"method\":\"POST\",\"path\":\"api/batch\",\"body\":{}},{\"method\":\"GET\",\"path\":\"subscribers\"}]}" &&
    code_is 200 &&
    test_json_eq body "[.responses[].code]" "[422,404]"
'

test_expect_success 'a batch of only POST api/subscribers counts against the import limit' '
    ml_control POST config "{\"import_limit\":2}" >out &&
    imp="{\"requests\":[{\"method\":\"POST\",\"path\":\"api/subscribers\",\"body\":{\"email\":\"imp@example.com\"}}]}" &&
    req POST /api/batch "$imp" &&
    code_is 200 &&
    test_json_eq body ".responses[0].body.data.source" import &&
    req POST /api/batch "$imp" &&
    code_is 200 &&
    req POST /api/batch "$imp" &&
    code_is 429 &&
    test_json_eq body .message "You'\''re being rate limited on import creation." &&
    test -n "$(header retry-after)" &&
    req POST /api/batch "{\"requests\":[{\"method\":\"GET\",\"path\":\"api/groups\"}]}" &&
    code_is 200 &&
    ml_control POST config "{\"import_limit\":5}" >out
'

test_expect_success 'fault: latency delays, then answers normally' '
    ml_control POST faults "{\"rules\":[{\"method\":\"GET\",\"path_prefix\":\"/api/groups\",\"kind\":\"latency\",\"ms\":300}]}" >out &&
    curl -q -sS -o body -w "%{http_code} %{time_total}" -H @"$TRASH/auth.h" "$ML_BASE/api/groups" >out &&
    awk "\$1 == 200 && \$2 >= 0.29 { ok = 1 } END { exit !ok }" out &&
    curl -q -sS -o body -w "%{time_total}" -H @"$TRASH/auth.h" "$ML_BASE/api/groups" >out &&
    awk "\$1 < 0.2 { ok = 1 } END { exit !ok }" out
'

test_expect_success 'fault: status, rate_limit, not_json, missing_member' '
    ml_control POST faults "{\"rules\":[
        {\"path_prefix\":\"/api/groups\",\"kind\":\"status\",\"status\":503},
        {\"path_prefix\":\"/api/groups\",\"kind\":\"rate_limit\",\"retry_after\":7},
        {\"path_prefix\":\"/api/groups\",\"kind\":\"not_json\"},
        {\"path_prefix\":\"/api/groups\",\"kind\":\"missing_member\"}]}" >out &&
    req GET /api/groups &&
    code_is 503 &&
    req GET /api/groups &&
    code_is 429 &&
    test "$(header retry-after)" = 7 &&
    test_json_eq body .message "Too Many Attempts." &&
    req GET /api/groups &&
    code_is 200 &&
    test_must_fail jq . body &&
    req GET /api/groups &&
    code_is 200 &&
    test_json_eq body "has(\"data\")" false &&
    test_json_eq body "has(\"meta\")" true &&
    req GET /api/groups &&
    test_json_eq body "has(\"data\")" true
'

test_expect_success 'fault: missing_member takes a dotted path into the real answer' '
    ml_control POST faults "{\"rules\":[
        {\"path_prefix\":\"/api/subscribers\",\"kind\":\"missing_member\",\"member\":\"data.*.id\"},
        {\"path_prefix\":\"/api/subscribers\",\"kind\":\"missing_member\",\"member\":\"meta.next_cursor\"},
        {\"path_prefix\":\"/api/subscribers\",\"kind\":\"missing_member\",\"member\":\"data.1\"}]}" >out &&
    test_json_eq out "[.rules[-3:][].member]" "[\"data.*.id\",\"meta.next_cursor\",\"data.1\"]" &&
    req GET "/api/subscribers?limit=3" &&
    code_is 200 &&
    test_json_eq body "[.data[] | has(\"id\")]" "[false,false,false]" &&
    test_json_eq body "[.data[] | has(\"email\")]" "[true,true,true]" &&
    req GET "/api/subscribers?limit=3" &&
    test_json_eq body ".meta | has(\"next_cursor\")" false &&
    test_json_eq body ".meta.per_page" 3 &&
    req GET "/api/subscribers?limit=3" &&
    test_json_eq body ".data | length" 2 &&
    req GET "/api/subscribers?limit=3" &&
    test_json_eq body ".data | length" 3
'

test_expect_success 'fault: a 429 burst refuses N requests in a row, then lets them by' '
    ml_control DELETE faults >out &&
    ml_control POST faults "{\"rules\":[{\"kind\":\"rate_limit\",\"count\":3,\"retry_after\":120}]}" >out &&
    for i in 1 2 3; do
        req GET "/api/subscribers?limit=1" || return 1
        code_is 429 || return 1
        test "$(header retry-after)" = 120 || return 1
        test "$(header x-ratelimit-remaining)" = 0 || return 1
    done &&
    req GET "/api/subscribers?limit=1" &&
    code_is 200
'

test_expect_success 'fault: a status rule replaces the answer; the request is not carried out' '
    ml_control DELETE faults >out &&
    ml_control POST faults "{\"rules\":[{\"method\":\"POST\",\"path_prefix\":\"/api/subscribers\",\"kind\":\"status\",\"status\":500}]}" >out &&
    req POST /api/subscribers "{\"email\":\"lost@example.com\"}" &&
    code_is 500 &&
    test_json_eq body .message "Server Error" &&
    req GET /api/subscribers/lost@example.com &&
    code_is 404
'

test_expect_success 'fault: with apply the write happens and the answer is lost' '
    ml_control POST faults "{\"rules\":[
        {\"method\":\"POST\",\"path_prefix\":\"/api/subscribers\",\"kind\":\"status\",\"status\":502,\"apply\":true,\"body\":\"<html>502 Bad Gateway</html>\"},
        {\"method\":\"POST\",\"path_prefix\":\"/api/subscribers\",\"kind\":\"drop\",\"apply\":true}]}" >out &&
    test_json_eq out "[.rules[-2:][].apply]" "[true,true]" &&
    req POST /api/subscribers "{\"email\":\"applied@example.com\"}" &&
    code_is 502 &&
    header content-type >ct &&
    test_grep "^text/html" ct &&
    printf "<html>502 Bad Gateway</html>" >expect &&
    test_cmp expect body &&
    test_expect_code 52 curl -q -sS -o body -H @"$TRASH/auth.h" -H "Content-Type: application/json" \
        --data-binary "{\"email\":\"dropped@example.com\"}" "$ML_BASE/api/subscribers" &&
    req POST /api/subscribers "{\"email\":\"applied@example.com\"}" &&
    code_is 200 &&
    req POST /api/subscribers "{\"email\":\"dropped@example.com\"}" &&
    code_is 200
'

test_expect_success 'fault: a status rule can send a body that is not an object' '
    ml_control DELETE faults >out &&
    ml_control POST faults "{\"rules\":[{\"path_prefix\":\"/api/subscribers\",\"kind\":\"status\",\"status\":422,\"body\":\"[\\\"nope\\\"]\"}]}" >out &&
    req POST /api/subscribers "{\"email\":\"x@example.com\"}" &&
    code_is 422 &&
    header content-type >ct &&
    test_grep "^application/json" ct &&
    test_json_eq body . "[\"nope\"]"
'

test_expect_success 'fault: after and count; the list shows what is left' '
    ml_control DELETE faults >out &&
    ml_control POST faults "{\"rules\":[{\"method\":\"GET\",\"path_prefix\":\"/api/subscribers\",\"after\":1,\"count\":2,\"kind\":\"status\",\"status\":500}]}" >out &&
    req GET "/api/subscribers?limit=1" && code_is 200 &&
    req GET "/api/subscribers?limit=1" && code_is 500 &&
    ml_control GET faults >out &&
    test_json_eq out ".rules[0].remaining" 1 &&
    req POST /api/subscribers "{\"email\":\"e@example.com\"}" && code_is 201 &&
    req GET "/api/subscribers?limit=1" && code_is 500 &&
    req GET "/api/subscribers?limit=1" && code_is 200 &&
    ml_control GET faults >out &&
    test_json_eq out ".rules[0].remaining" 0
'

test_expect_success 'fault: drop closes the connection without an answer' '
    ml_control POST faults "{\"rules\":[{\"path_prefix\":\"/api/groups\",\"kind\":\"drop\"}]}" >out &&
    test_expect_code 52 curl -q -sS -o body -H @"$TRASH/auth.h" "$ML_BASE/api/groups"
'

test_expect_success 'fault: truncate sends the headers and half the body' '
    ml_control POST faults "{\"rules\":[{\"path_prefix\":\"/api/subscribers\",\"kind\":\"truncate\"}]}" >out &&
    test_expect_code 18 curl -q -sS -o body -H @"$TRASH/auth.h" "$ML_BASE/api/subscribers?limit=20" &&
    test -s body &&
    test_must_fail jq . body &&
    req GET "/api/subscribers?limit=20" &&
    code_is 200
'

test_expect_success 'the request log records what was sent, and not the control calls' '
    ml_control DELETE log >out &&
    req GET "/api/subscribers?limit=3&filter%5Bstatus%5D=active" &&
    curl -q -sS -o body "$ML_BASE/api/groups" &&
    ml_control POST faults "{\"rules\":[{\"path_prefix\":\"/api/groups\",\"kind\":\"status\",\"status\":502}]}" >out &&
    req GET /api/groups &&
    req POST /api/batch "{\"requests\":[{\"method\":\"POST\",\"path\":\"api/subscribers\",\"body\":{\"email\":\"f@example.com\"}},{\"method\":\"POST\",\"path\":\"api/subscribers\",\"body\":{\"email\":\"g@example.com\"}}]}" &&
    ml_control GET log >log &&
    test_line_count = 4 log &&
    jq -c "[.seq,.method,.path,.query,.status,.fault,.batch,.import]" log >actual &&
    cat >expect <<-\EOF &&
	[1,"GET","/api/subscribers","limit=3&filter%5Bstatus%5D=active",200,null,null,false]
	[2,"GET","/api/groups","",401,null,null,false]
	[3,"GET","/api/groups","",502,"status",null,false]
	[4,"POST","/api/batch","",200,null,2,true]
	EOF
    test_cmp expect actual &&
    jq -e ".t > 1000000000" log >/dev/null
'

test_expect_success 'the log can keep request bodies, and be read from a sequence number' '
    ml_control POST config "{\"log_bodies\":true}" >out &&
    test_json_eq out .log_bodies true &&
    ml_control DELETE log >out &&
    req POST /api/subscribers "{ \"email\": \"logged@example.com\",
        \"fields\": {\"name\": \"L\"} }" &&
    code_is 201 &&
    req POST /api/subscribers "not json" &&
    code_is 422 &&
    req GET /api/groups &&
    ml_control GET log >log &&
    test_line_count = 3 log &&
    jq -c .body log >actual &&
    cat >expect <<-\EOF &&
	{"email":"logged@example.com","fields":{"name":"L"}}
	"not json"
	null
	EOF
    test_cmp expect actual &&
    ml_control GET "log?since=2" >log &&
    jq -c "[.seq,.path]" log >actual &&
    echo "[3,\"/api/groups\"]" >expect &&
    test_cmp expect actual &&
    ml_control POST config "{\"log_bodies\":false}" >out &&
    ml_control DELETE log >out &&
    req POST /api/subscribers "{\"email\":\"logged@example.com\"}" &&
    ml_control GET log >log &&
    test_json_eq log "has(\"body\")" false
'

test_expect_success 'the B side can be dumped sorted by email' '
    ml_control GET subscribers >dump &&
    jq -r .email dump >emails &&
    sort emails >sorted &&
    test_cmp sorted emails &&
    test_grep -x "bob@example.com" emails
'

test_expect_success 'seeding takes a JSON array or JSON lines, with group names' '
    ml_control POST subscribers "[{\"email\":\"S1@example.com\",\"status\":\"bounced\",\"groups\":[\"seeded\"],\"created_at\":\"2020-01-02 03:04:05\"},{\"email\":\"bob@example.com\",\"fields\":{\"name\":\"Robert\"}}]" >out &&
    test_json_eq out . "{\"inserted\":1,\"updated\":1}" &&
    printf "%s\n" "{\"email\":\"s2@example.com\"}" "{\"email\":\"s3@example.com\"}" >lines &&
    curl -q -sS -f -H "Content-Type: application/x-ndjson" --data-binary @lines \
        "$ML_BASE/_control/subscribers" >out &&
    test_json_eq out .inserted 2 &&
    req GET "/api/subscribers/s1@example.com" &&
    test_json_eq body "[.data.status,.data.created_at,.data.groups[0].name]" \
        "[\"bounced\",\"2020-01-02 03:04:05\",\"seeded\"]"
'

test_expect_success 'PUT cannot bring back a bounced or junk subscriber' '
    req GET /api/subscribers/s1@example.com &&
    s1=$(jq -r .data.id body) &&
    req PUT "/api/subscribers/$s1" "{\"status\":\"active\"}" &&
    code_is 200 &&
    test_json_eq body .data.status bounced &&
    ml_control POST edit "{\"email\":\"s2@example.com\",\"status\":\"junk\"}" >out &&
    req PUT /api/subscribers/$(jq -r .data.id out) "{\"status\":\"active\"}" &&
    test_json_eq body .data.status junk
'

test_expect_success 'edit changes a subscriber as a person would in the app' '
    ml_control POST edit "{\"email\":\"user8@example.com\",\"add_groups\":[\"vip\",\"news\"]}" >out &&
    test_json_eq out "[.data.groups[].name] | sort" "[\"news\",\"vip\"]" &&
    ml_control POST edit "{\"email\":\"user8@example.com\",\"remove_groups\":[\"vip\",\"nosuch\"]}" >out &&
    test_json_eq out "[.data.groups[].name]" "[\"news\"]" &&
    id8=$(jq -r .data.id out) &&
    ml_control POST edit "{\"id\":\"$id8\",\"new_email\":\"User8b@Example.com\",\"fields\":{\"city\":\"Riga\"},\"updated_at\":\"2030-01-02 03:04:05\"}" >out &&
    req GET "/api/subscribers/$id8" &&
    test_json_eq body "[.data.email,.data.fields.city,.data.updated_at]" \
        "[\"user8b@example.com\",\"Riga\",\"2030-01-02 03:04:05\"]" &&
    ml_control POST edit "{\"email\":\"user8b@example.com\",\"status\":\"unsubscribed\"}" >out &&
    test_json_eq out ".data.unsubscribed_at | type" string &&
    test_expect_code 22 curl -q -sS -f -o out -d "{\"email\":\"nobody@example.com\"}" \
        "$ML_BASE/_control/edit"
'

test_expect_success 'a group walk lists active members unless filter[status] says otherwise' '
    ml_control POST edit "{\"email\":\"user9@example.com\",\"add_groups\":[\"news\"]}" >out &&
    req GET "/api/groups?filter%5Bname%5D=news" &&
    news=$(jq -r ".data[0].id" body) &&
    test_json_eq body ".data[0].active_count" 1 &&
    test_json_eq body ".data[0].unsubscribed_count" 1 &&
    req GET "/api/groups/$news/subscribers" &&
    test_json_eq body "[.data[].email]" "[\"user9@example.com\"]" &&
    req GET "/api/groups/$news/subscribers?filter%5Bstatus%5D=unsubscribed" &&
    test_json_eq body "[.data[].email]" "[\"user8b@example.com\"]" &&
    req GET "/api/groups/$news/subscribers?limit=0" &&
    test_json_eq body . "{\"total\":1}"
'

test_expect_success 'hostile input does not bring it down' '
    for b in "{" "{\"email\":1e999}" "{\"email\":[]}" "{\"email\":\"a@b.co\",\"groups\":[1e400]}" \
        "{\"email\":\"a@b.co\",\"fields\":[]}" "\"str\"" "null" "{\"email\":\"x\\u0000y@b.co\"}"; do
        req POST /api/subscribers "$b" || return 1
        code_is 422 || return 1
    done &&
    req GET "/api/subscribers/%FF%FE%00" && code_is 404 &&
    req GET "/api/subscribers?limit=99999999999999999999999" && code_is 200 &&
    req GET "/api/subscribers?limit=-1" && code_is 422 &&
    req GET "/api/subscribers?cursor=%00%00" && code_is 422 &&
    req PATCH /api/subscribers && code_is 405 &&
    req GET /api/nowhere && code_is 404 &&
    req POST /api/batch "{\"requests\":\"x\"}" && code_is 422 &&
    ml_control GET health >out
'

test_expect_success 'a body over the cap is refused with 413' '
    head -c 17000000 /dev/zero | tr "\\0" " " >big &&
    curl -q -sS -o body -w "%{http_code}" -H @"$TRASH/auth.h" --data-binary @big \
        "$ML_BASE/api/subscribers" >code &&
    code_is 413 &&
    ml_control GET health >out
'

test_expect_success 'reset empties the account' '
    ml_control POST reset >out &&
    ml_control GET stats >out &&
    test_json_eq out . "{\"subscribers\":0,\"groups\":0,\"requests\":0}" &&
    ml_control GET faults >out &&
    test_json_eq out ".rules | length" 0
'

test_expect_success 'a bad option exits 64' '
    test_expect_code 64 "$ML_EMULATOR" --page-cap-mode sideways 2>err &&
    test_grep "page-cap-mode" err
'

test_expect_success 'after --rate-limit 5 requests in a minute the next gets 429 with Retry-After' '
    start_emulator --rate-limit 5 &&
    for i in 1 2 3 4 5; do
        req GET /api/groups || return 1
        code_is 200 || return 1
    done &&
    test "$(header x-ratelimit-remaining)" = 0 &&
    req GET /api/groups &&
    code_is 429 &&
    test_json_eq body .message "Too Many Attempts." &&
    retry=$(header retry-after) &&
    test "$retry" -ge 1 && test "$retry" -le 60 &&
    test "$(header x-ratelimit-remaining)" = 0 &&
    ml_control GET health >out
'

test_expect_success 'by default: 120 a minute, a page cap of 1000 (clamped), X-Version ignored' '
    start_emulator &&
    ml_control GET config >out &&
    test_json_eq out "[.rate_limit,.import_limit,.page_cap,.page_cap_mode,.log_bodies]" \
        "[120,5,1000,\"clamp\",false]" &&
    curl -q -g -sS -o body -D headers -w "%{http_code}" -H @"$TRASH/auth.h" \
        -H "X-Version: 2038-01-19" "$ML_BASE/api/subscribers?limit=5000" >code &&
    code_is 200 &&
    test_json_eq body .meta.per_page 1000 &&
    test "$(header x-ratelimit-limit)" = 120 &&
    test "$(header x-ratelimit-remaining)" = 119
'

test_expect_success 'SIGTERM stops it with status 0' '
    kill "$ML_PID" &&
    if wait "$ML_PID"; then status=0; else status=$?; fi &&
    ML_PID= &&
    test "$status" = 0
'

test_done
