#!/bin/sh
# Test bodies are single-quoted and use variables and functions defined here:
# shellcheck disable=SC2016,SC2034,SC2317
test_description='four smart-syncs and an enterprise-sync at once: one API budget, no lost update, no duplicate'
# shellcheck source=tests/test-lib.sh
. "$(dirname "$0")/test-lib.sh"

# The emulator enforces 120 requests and 5 imports a minute, and the timed
# runs pace themselves at the same limits through the shared bucket. The
# run that links both sides first goes with every limit off.
#
# The timed part's budget: four loops of RUNS smart-syncs over 200 emails
# each (four read batches a run, 128 in all), a write batch or two where a
# run finds changes, and one enterprise-sync pass (four list pages of 100,
# each its own transaction, and its write batches): about 140 requests,
# some 70 s at 0.5 s each. Over 120, so that the limit binds for a whole
# minute. The only exit status any of them may give is 0: with --wait, a
# smart-sync queues for the one-at-a-time lock instead of exiting 75, and
# 120 s is far more than the others hold it.
start_postgres
start_emulator --rate-limit 120 --import-limit 5

# conf FILE RATE_LIMIT IMPORT_RATE_LIMIT: page_size 100, so that
# enterprise-sync's sets interleave with smart-sync's; the daily limit
# above the 6,400 contacts the loops ask for.
conf() {
    cat >"$TRASH/$1" <<-EOF
	[mailerlite]
	rate_limit = $2
	import_rate_limit = $3
	page_size = 100
	[table]
	name = public.clients
	[fields]
	first_name = name
	last_name = last_name
	company = company
	[guards]
	daily_limit = 1000000
	EOF
}
conf link.conf 0 0
conf cw.conf 120 5

# The data: scripts/sample-data's 300 contacts a side, 250 of them shared
# (contact<i>@example.com, i < 250; every tenth with a mixed-case email in
# A), linked first. Then, by i:
#   0-29    company edited in A
#   30-59   last name edited in B
#   60-89   company edited in A and last name edited in B: both must survive
#   90-249  untouched (smart-sync's incremental skip)
# and new0..new19@example.org, new rows in A only: each created in B once.
A_EDIT='i BETWEEN 0 AND 29 OR i BETWEEN 60 AND 89'
B_EDIT='i BETWEEN 30 AND 89'
NEW=20

# listed_emails: the shared contacts and the new rows, one a line, in an
# order that mixes the kinds.
listed_emails() {
    psql_q "SELECT e FROM (SELECT 'contact' || i || '@example.com' AS e
                           FROM generate_series(0, 249) i
                           UNION ALL SELECT 'new' || i || '@example.org'
                           FROM generate_series(0, $NEW - 1) i) s
            ORDER BY md5(e)"
}

# edit_a: the A edits, each with updated_at = now(), and the new rows.
edit_a() {
    psql_q "UPDATE public.clients c SET company = 'A edit ' || i, updated_at = now()
            FROM generate_series(0, 249) i
            WHERE ($A_EDIT) AND c.id = md5('client-' || i)::uuid" &&
    psql_q "INSERT INTO public.clients (id, email, first_name, last_name, company)
            SELECT md5('new-' || i)::uuid, 'new' || i || '@example.org', 'New', 'Row' || i,
                   'Fresh Co'
            FROM generate_series(0, $NEW - 1) i"
}

# edit_b: the B edits, one /_control/edit each (updated_at = now).
edit_b() {
    psql_q "SELECT i FROM generate_series(0, 249) i WHERE $B_EDIT" >"$TRASH/.b-edits" &&
    while read -r edit_b_i_; do
        ml_control POST edit "{\"email\":\"contact$edit_b_i_@example.com\",
                               \"fields\":{\"last_name\":\"B edit $edit_b_i_\"}}" \
            >/dev/null || return 1
    done <"$TRASH/.b-edits"
}

# edited_values: every edited field as "email|field|value", sorted.
edited_values() {
    psql_q "SELECT 'contact' || i || '@example.com|company|A edit ' || i
            FROM generate_series(0, 249) i WHERE $A_EDIT
            UNION ALL SELECT 'contact' || i || '@example.com|last_name|B edit ' || i
            FROM generate_series(0, 249) i WHERE $B_EDIT" | sort
}

# a_values, b_values: the company and last name of every contact as
# "email|field|value", sorted; b_values reads b.jsonl.
a_values() {
    psql_q "SELECT lower(trim(email)) || '|company|' || coalesce(company, '<null>')
            FROM public.clients
            UNION ALL SELECT lower(trim(email)) || '|last_name|' || coalesce(last_name, '<null>')
            FROM public.clients" | sort
}
b_values() {
    jq -r '"\(.email)|company|\(.fields.company // "<null>")",
           "\(.email)|last_name|\(.fields.last_name // "<null>")"' "$TRASH/b.jsonl" | sort
}

# only_keys EXPECT ALL: the lines of ALL whose email and field are those of
# a line of EXPECT.
only_keys() {
    awk -F'|' 'NR == FNR { want[$1 "|" $2] = 1; next } ($1 "|" $2) in want' "$1" "$2"
}

# new_rows_a, new_rows_b: the new rows as "email|name|last name|company",
# sorted; new_rows_b reads b.jsonl.
new_rows_a() {
    psql_q "SELECT email || '|' || first_name || '|' || last_name || '|' || company
            FROM public.clients WHERE email LIKE 'new%'" | sort
}
new_rows_b() {
    jq -r 'select(.email | startswith("new")) |
           [.email, .fields.name, .fields.last_name, .fields.company] | join("|")' \
        "$TRASH/b.jsonl" | sort
}

# ss_loop P RUNS: RUNS smart-syncs over listP, one after the other, each
# queueing for the one-at-a-time lock; "P RUN STATUS" lines in ssP.status.
ss_loop() {
    ss_loop_run_=1
    while test "$ss_loop_run_" -le "$2"; do
        smart-sync -c "$TRASH/cw.conf" --wait 120s --file "$TRASH/list$1" \
            >"$TRASH/ss$1-$ss_loop_run_.json" 2>"$TRASH/ss$1-$ss_loop_run_.err"
        echo "$1 $ss_loop_run_ $?" >>"$TRASH/ss$1.status"
        ss_loop_run_=$((ss_loop_run_ + 1))
    done
}

# max_in_window LOG SECONDS: the most requests LOG shows arriving within
# one window of SECONDS, the emulator's (t - SECONDS, t].
max_in_window() {
    jq -r .t "$1" | sort -g | awk -v w="$2" '
        { t[NR] = $1; while (t[NR] - t[lo + 1] >= w) lo++; if (NR - lo > most) most = NR - lo }
        END { print most + 0 }'
}

RUNS=8

test_expect_success 'setup: 300 contacts a side, linked with the rate limit off' '
    ml_control POST config "{\"rate_limit\":0,\"import_limit\":0}" >/dev/null &&
    crosswalk-migrate -q -c link.conf &&
    load_sample 300 300 250 &&
    enterprise-sync -c link.conf --max-records 100000 --max-duration 0 >link.json &&
    test_json_eq link.json .done true &&
    test_json_eq link.json .errors 0 &&
    test_json_eq link.json .created.inB 50 &&
    links_are_whole &&
    # Its conflicts (the sample'\''s drift, settled by initial_policy) are not
    # the ones this test looks for.
    psql_q "DELETE FROM sync.sync_conflicts" &&
    ml_control POST config "{\"rate_limit\":120,\"import_limit\":5}" >/dev/null
'

test_expect_success 'edits on both sides, new rows in A, four overlapping lists' '
    # A second after B was seeded and written: its updated_at counts whole
    # seconds, and smart-sync takes a B updated_at equal to the shadow'\''s
    # for untouched, so an edit in that same second would reach A through
    # enterprise-sync alone.
    sleep 1 &&
    edit_a &&
    edit_b &&
    listed_emails >all &&
    test_line_count = 270 all &&
    # Four lists of 200 (four read batches each), each starting 70 after
    # the one before and wrapping around: every email is on two or three.
    for p in 0 1 2 3
    do
        { sed -n "$((p * 70 + 1)),\$p" all && cat all; } | head -n 200 >list$p || return 1
    done &&
    cat list0 list1 list2 list3 | sort -u >covered &&
    test_line_count = 270 covered &&
    ml_control DELETE log >/dev/null
'

test_expect_success 'four smart-sync loops and one enterprise-sync at once all exit 0' '
    date +%s >started &&
    { enterprise-sync -c cw.conf --max-records 100000 --max-duration 0 >es.json 2>es.err & } &&
    es_pid=$! &&
    { ss_loop 0 $RUNS & } && p0=$! &&
    { ss_loop 1 $RUNS & } && p1=$! &&
    { ss_loop 2 $RUNS & } && p2=$! &&
    { ss_loop 3 $RUNS & } && p3=$! &&
    wait $p0 && wait $p1 && wait $p2 && wait $p3 &&
    { wait $es_pid; echo $? >es.status; } &&
    echo "$(($(date +%s) - $(cat started))) s" >took &&
    ml_control GET log >log.jsonl &&
    echo "took $(cat took), $(wc -l <log.jsonl) API requests" &&
    echo "smart-sync changed $(jq -s "[.[].out[] | select(.changed)] | length" ss*-*.json)," \
        "enterprise-sync $(jq ".updated.toA + .updated.toB + .created.inB" es.json) contacts" &&
    cat ss0.status ss1.status ss2.status ss3.status >statuses &&
    test_line_count = $((4 * RUNS)) statuses &&
    awk "\$3 != 0" statuses >bad &&
    test_must_be_empty bad &&
    echo 0 >expect &&
    test_cmp expect es.status &&
    test_json_eq es.json .done true &&
    test_json_eq es.json .errors 0
'

test_expect_success 'every edited field holds its edit on both sides, with no conflict' '
    edited_values >expect &&
    test_line_count = 120 expect &&
    a_values >a-all &&
    ml_control GET subscribers >b.jsonl &&
    b_values >b-all &&
    only_keys expect a-all >a-edited &&
    only_keys expect b-all >b-edited &&
    test_cmp expect a-edited &&
    test_cmp expect b-edited &&
    psql_q "SELECT count(*) FROM sync.sync_conflicts" >actual &&
    echo 0 >expect &&
    test_cmp expect actual
'

test_expect_success 'each new row of A is in B once, with its values; the crosswalk is whole' '
    jq -r .email b.jsonl | sort | uniq -d >dups &&
    test_must_be_empty dups &&
    test_line_count = 370 b.jsonl &&
    new_rows_a >expect &&
    test_line_count = $NEW expect &&
    new_rows_b >actual &&
    test_cmp expect actual &&
    links_are_whole &&
    expected_crosswalk >expect &&
    crosswalk_rows >actual &&
    test_line_count = 320 actual &&
    test_cmp expect actual
'

test_expect_success 'the API saw no 429 and at most 120 requests in any 60 s' '
    jq -c "select(.status != 200)" log.jsonl >refused &&
    test_must_be_empty refused &&
    # Over 120 requests, so that a minute of them had to be paced.
    test "$(wc -l <log.jsonl)" -gt 120 &&
    max_in_window log.jsonl 60 >most &&
    echo "at most $(cat most) requests in 60 s" &&
    test "$(cat most)" -le 120
'

# Both programs read B before they lock a contact. A new row of A that one
# run creates in B and links while the other waits for the lock is, to the
# other, a linked contact it read as missing: it must read it again, not
# fail it as a subscriber B lost. Every /batch is held 1.5 s, so that both
# reads are answered before either creation is made.
test_expect_success 'a contact the other run created after this one read it as missing' '
    ml_control POST config "{\"rate_limit\":0,\"import_limit\":0}" >/dev/null &&
    psql_q "INSERT INTO public.clients (id, email, first_name, last_name, company)
            VALUES (md5(\$\$race\$\$)::uuid, \$\$race@example.org\$\$, \$\$Rae\$\$, \$\$Race\$\$,
                    \$\$Race Co\$\$)" &&
    ml_control POST faults "{\"rules\":[{\"method\":\"POST\",\"path_prefix\":\"/api/batch\",
                                      \"kind\":\"latency\",\"ms\":1500,\"count\":-1}]}" >/dev/null &&
    test_when_finished "ml_control DELETE faults >/dev/null" &&
    { enterprise-sync -c link.conf --max-records 100000 --max-duration 0 >race-es.json 2>race-es.err & } &&
    pid=$! &&
    { smart-sync -c link.conf race@example.org >race-ss.json 2>race-ss.err; echo $? >ss.status; } &&
    { wait $pid; echo $? >es.status; } &&
    echo 0 >expect &&
    test_cmp expect ss.status &&
    test_cmp expect es.status &&
    test_json_eq race-es.json .errors 0 &&
    test_json_eq race-ss.json .ok true &&
    ml_control GET subscribers >b.jsonl &&
    jq -r "select(.email == \"race@example.org\") | .fields.company" b.jsonl >actual &&
    echo "Race Co" >expect &&
    test_cmp expect actual &&
    links_are_whole
'

test_done
