#!/bin/sh
# Test bodies are single-quoted and use variables and functions defined here:
# shellcheck disable=SC2016,SC2034,SC2119,SC2120,SC2317
test_description='enterprise-sync reconciles both sides with a field-level 3-way merge'
# shellcheck source=tests/test-lib.sh
. "$(dirname "$0")/test-lib.sh"

start_postgres
start_emulator --rate-limit 0 --log-bodies

# shellcheck source=tests/lib-world.sh
. "$TEST_ROOT/tests/lib-world.sh"

write_conf

# ---------------------------------------------------------------------------
# 1. The first run.

test_expect_success 'setup: five contacts in A, five subscribers in B, four shared' '
    reset_world &&
    psql_q "SELECT count(*) FROM public.clients" >actual &&
    echo 5 >expect &&
    test_cmp expect actual &&
    b_dump >b.jsonl &&
    test_line_count = 5 b.jsonl
'

test_expect_success 'first run: shared contacts linked, A-only created in B, B-only left alone' '
    es &&
    test_json_eq out.json .done true &&
    test_json_eq out.json .errors 0 &&
    test_json_eq out.json .linked 5 &&
    test_json_eq out.json .created.inB 1 &&
    test_json_eq out.json .created.inA 0 &&
    test_json_eq out.json .onlyInB 1 &&
    test_json_eq out.json .conflictsDetected 0 &&
    test_json_eq out.json .updated.toA 0 &&
    test_json_eq out.json .updated.toB 0 &&
    {
        expect_link ann@example.com 1 &&
        expect_link bob@example.com 2 &&
        expect_link cat@example.com 3 &&
        expect_link dan@example.com 4 &&
        expect_link fay@example.com 5
    } >expect &&
    crosswalk_rows >actual &&
    test_cmp expect actual &&
    psql_q "SELECT count(*) FROM sync.integration_crosswalk c
            JOIN sync.sync_shadow s ON s.crosswalk_id = c.id" >actual &&
    echo 5 >expect &&
    test_cmp expect actual &&
    psql_q "SELECT count(*) FROM public.clients" >actual &&
    test_cmp expect actual
'

test_expect_success 'first run: the A-only row is in B with its A-owned and shared values' '
    b_get dan@example.com &&
    jq -r "[.status, .fields.name, .fields.last_name, .fields.company, .fields.city,
            (.fields.phone // \"<null>\"), ([.groups[].name] | sort | join(\",\"))] | join(\"|\")" \
        b.json >actual &&
    echo "active|Dan|Fox|Delta|Kyiv|<null>|Customers" >expect &&
    test_cmp expect actual &&
    b_writes >writes &&
    grep "^POST api/subscribers\$" writes >creates &&
    test_line_count = 1 creates
'

test_expect_success 'first run: equal contacts are linked without a write; eve stays only in B' '
    b_writes >writes &&
    test_grep ! "^PUT" writes &&
    test_grep ! "/groups/" writes &&
    a_get eve@example.com email >actual &&
    test_must_be_empty actual &&
    a_get fay@example.com last_name >actual &&
    echo >expect &&
    test_cmp expect actual &&
    a_get fay@example.com company >actual &&
    echo "<null>" >expect &&
    test_cmp expect actual &&
    b_groups ann@example.com >actual &&
    echo Customers,VIP >expect &&
    test_cmp expect actual &&
    b_groups bob@example.com >actual &&
    echo >expect &&
    test_cmp expect actual &&
    a_get bob@example.com groups >actual &&
    echo "{Internal}" >expect &&
    test_cmp expect actual
'

test_expect_success 'import_new = true: the B-only subscriber is inserted into A, seeded with every value, and linked' '
    write_conf import_new=true &&
    test_when_finished "write_conf" &&
    es &&
    test_json_eq out.json .created.inA 1 &&
    test_json_eq out.json .created.inB 0 &&
    test_json_eq out.json .onlyInB 0 &&
    psql_q "SELECT id > 100, first_name, last_name, company, coalesce(city, '\''<null>'\''),
                   phone, status, groups
            FROM public.clients WHERE email = '\''eve@example.com'\''" >actual &&
    echo "t|Eve|Orr|Echo|Lima|555|active|{Customers}" >expect &&
    test_cmp expect actual &&
    psql_q "SELECT c.a_id = a.id::text FROM sync.integration_crosswalk c
            JOIN public.clients a ON a.email = c.email
            WHERE c.email = '\''eve@example.com'\''" >actual &&
    echo t >expect &&
    test_cmp expect actual &&
    b_dump >b.jsonl &&
    test_line_count = 6 b.jsonl
'

test_expect_success 'an A-only row with a B-owned value: the run after its creation writes nothing' '
    psql_q "INSERT INTO public.clients (id, email, first_name, phone, status, groups)
            VALUES (6, '\''hal@example.com'\'', '\''Hal'\'', '\''777'\'', '\''active'\'', '\''{}'\'')" &&
    es &&
    test_json_eq out.json .created.inB 1 &&
    a_xmin >xmin.before &&
    ml_control DELETE log &&
    es &&
    test_json_eq out.json .updatesApplied 0 &&
    a_xmin >xmin.after &&
    test_cmp xmin.before xmin.after &&
    a_get hal@example.com phone >actual &&
    echo 777 >expect &&
    test_cmp expect actual &&
    b_writes >writes &&
    test_must_be_empty writes
'

# ---------------------------------------------------------------------------
# 2. Who moved: the 3-way merge, and the conflict policies.

test_expect_success 'only A moved: the change is pushed to B' '
    fresh &&
    a_set ann@example.com first_name Annie &&
    es &&
    check_both ann@example.com first_name name Annie &&
    test_json_eq out.json .updated.toB 1 &&
    test_json_eq out.json .updated.toA 0 &&
    test_json_eq out.json .conflictsDetected 0 &&
    psql_q "SELECT s.a_snapshot->'\''fields'\''->>'\''name'\'', s.b_snapshot->'\''fields'\''->>'\''name'\''
            FROM sync.sync_shadow s JOIN sync.integration_crosswalk c ON c.id = s.crosswalk_id
            WHERE c.email = '\''ann@example.com'\''" >actual &&
    echo "Annie|Annie" >expect &&
    test_cmp expect actual
'

test_expect_success 'only B moved: the change is pulled into A' '
    b_set bob@example.com last_name Roy &&
    es &&
    check_both bob@example.com last_name last_name Roy &&
    test_json_eq out.json .updated.toA 1 &&
    test_json_eq out.json .updated.toB 0 &&
    test_json_eq out.json .conflictsDetected 0
'

test_expect_success 'both moved to the same value: no write on either side, no conflict' '
    a_set cat@example.com last_name Kang &&
    b_set cat@example.com last_name Kang &&
    a_xmin >xmin.before &&
    ml_control DELETE log &&
    es &&
    check_both cat@example.com last_name last_name Kang &&
    a_xmin >xmin.after &&
    test_cmp xmin.before xmin.after &&
    b_writes >writes &&
    test_must_be_empty writes &&
    test_json_eq out.json .updatesApplied 0 &&
    test_json_eq out.json .conflictsDetected 0 &&
    conflicts >actual &&
    test_must_be_empty actual &&
    psql_q "SELECT s.a_snapshot->'\''fields'\''->>'\''last_name'\'',
                   s.b_snapshot->'\''fields'\''->>'\''last_name'\''
            FROM sync.sync_shadow s JOIN sync.integration_crosswalk c ON c.id = s.crosswalk_id
            WHERE c.email = '\''cat@example.com'\''" >actual &&
    echo "Kang|Kang" >expect &&
    test_cmp expect actual
'

test_expect_success 'skip: both moved differently, nothing written, one open conflict' '
    a_set ann@example.com last_name Lea &&
    b_set ann@example.com last_name Lie &&
    a_xmin >xmin.before &&
    ml_control DELETE log &&
    es &&
    test_json_eq out.json .conflictsDetected 1 &&
    test_json_eq out.json .updatesApplied 0 &&
    a_get ann@example.com last_name >actual &&
    echo Lea >expect &&
    test_cmp expect actual &&
    b_field ann@example.com last_name >actual &&
    echo Lie >expect &&
    test_cmp expect actual &&
    a_xmin >xmin.after &&
    test_cmp xmin.before xmin.after &&
    b_writes >writes &&
    test_must_be_empty writes &&
    conflicts >actual &&
    echo "ann@example.com|last_name|\"Lea\"|\"Lie\"|\"Lee\"|skip|-|none|open" >expect &&
    test_cmp expect actual
'

test_expect_success 'skip: a second run leaves the conflict open and does not add another' '
    es &&
    test_json_eq out.json .updatesApplied 0 &&
    psql_q "SELECT count(*), count(*) FILTER (WHERE resolved_at IS NULL)
            FROM sync.sync_conflicts" >actual &&
    echo "1|1" >expect &&
    test_cmp expect actual &&
    a_get ann@example.com last_name >actual &&
    echo Lea >expect &&
    test_cmp expect actual &&
    b_field ann@example.com last_name >actual &&
    echo Lie >expect &&
    test_cmp expect actual
'

test_expect_success 'a-wins: A value written to B, conflict recorded as won by A' '
    fresh conflict_policy=a-wins &&
    a_set bob@example.com first_name Bobby &&
    b_set bob@example.com name Robert &&
    es &&
    check_both bob@example.com first_name name Bobby &&
    test_json_eq out.json .conflictsDetected 1 &&
    test_json_eq out.json .updated.toB 1 &&
    test_json_eq out.json .updated.toA 0 &&
    conflicts >actual &&
    echo "bob@example.com|name|\"Bobby\"|\"Robert\"|\"Bob\"|a-wins|\"Bobby\"|a|resolved" >expect &&
    test_cmp expect actual
'

test_expect_success 'b-wins: B value written to A, conflict recorded as won by B' '
    fresh conflict_policy=b-wins &&
    a_set bob@example.com first_name Bobby &&
    b_set bob@example.com name Robert &&
    es &&
    check_both bob@example.com first_name name Robert &&
    test_json_eq out.json .conflictsDetected 1 &&
    test_json_eq out.json .updated.toA 1 &&
    test_json_eq out.json .updated.toB 0 &&
    conflicts >actual &&
    echo "bob@example.com|name|\"Bobby\"|\"Robert\"|\"Bob\"|b-wins|\"Robert\"|b|resolved" >expect &&
    test_cmp expect actual
'

test_expect_success 'newest: A edited later than B, A wins' '
    fresh conflict_policy=newest &&
    a_set bob@example.com first_name Bobby "2024-06-02 00:00:00+00" &&
    b_set bob@example.com name Robert "2024-06-01 00:00:00" &&
    es &&
    check_both bob@example.com first_name name Bobby &&
    test_json_eq out.json .conflictsDetected 1 &&
    conflicts >actual &&
    echo "bob@example.com|name|\"Bobby\"|\"Robert\"|\"Bob\"|newest|\"Bobby\"|a|resolved" >expect &&
    test_cmp expect actual
'

test_expect_success 'newest: B edited later than A, B wins' '
    a_set cat@example.com first_name Cathy "2024-06-01 00:00:00+00" &&
    b_set cat@example.com name Kitty "2024-06-02 00:00:00" &&
    es &&
    check_both cat@example.com first_name name Kitty &&
    test_json_eq out.json .conflictsDetected 1 &&
    conflicts >all &&
    tail -n 1 all >actual &&
    echo "cat@example.com|name|\"Cathy\"|\"Kitty\"|\"Cat\"|newest|\"Kitty\"|b|resolved" >expect &&
    test_cmp expect actual
'

test_expect_success 'a field policy in [conflicts] beats conflict_policy' '
    fresh conflict_policy=b-wins &&
    a_set cat@example.com company CoreA &&
    a_set cat@example.com last_name KimA &&
    b_edit cat@example.com "{\"fields\": {\"company\": \"CoreB\", \"last_name\": \"KimB\"}}" &&
    es &&
    check_both cat@example.com company company CoreA &&
    check_both cat@example.com last_name last_name KimB &&
    test_json_eq out.json .conflictsDetected 2 &&
    psql_q "SELECT field, policy, winner, applied_value::text FROM sync.sync_conflicts
            ORDER BY field" >actual &&
    test_write_lines "company|a-wins|a|\"CoreA\"" "last_name|b-wins|b|\"KimB\"" >expect &&
    test_cmp expect actual
'

# ---------------------------------------------------------------------------
# 3. No value is no value.

test_expect_success 'null and empty string: A emptied to '\'''\'' and B cleared to null is no change' '
    fresh &&
    a_set bob@example.com company "" &&
    b_set bob@example.com company null &&
    a_xmin >xmin.before &&
    ml_control DELETE log &&
    es &&
    a_xmin >xmin.after &&
    test_cmp xmin.before xmin.after &&
    b_writes >writes &&
    test_must_be_empty writes &&
    conflicts >actual &&
    test_must_be_empty actual &&
    test_json_eq out.json .updatesApplied 0 &&
    a_get bob@example.com company >actual &&
    echo >expect &&
    test_cmp expect actual
'

test_expect_success 'null and empty string: a contact linked with '\'''\'' against null stays unwritten' '
    a_get fay@example.com last_name >actual &&
    echo >expect &&
    test_cmp expect actual &&
    b_field fay@example.com last_name >actual &&
    echo "<null>" >expect &&
    test_cmp expect actual &&
    psql_q "SELECT count(*) FROM sync.sync_log WHERE email = '\''fay@example.com'\''
            AND action NOT IN ('\''linked'\'')" >actual &&
    echo 0 >expect &&
    test_cmp expect actual
'

# ---------------------------------------------------------------------------
# 4. Field directions.

test_expect_success 'an a-to-b field edited in B is overwritten from A' '
    fresh &&
    b_set ann@example.com city Bergen &&
    es &&
    check_both ann@example.com city city Oslo &&
    test_json_eq out.json .updated.toB 1 &&
    test_json_eq out.json .updated.toA 0 &&
    conflicts >actual &&
    test_must_be_empty actual
'

test_expect_success 'a b-to-a field edited in A is overwritten from B' '
    a_set ann@example.com phone 999 &&
    es &&
    check_both ann@example.com phone phone 111 &&
    test_json_eq out.json .updated.toA 1 &&
    test_json_eq out.json .updated.toB 0 &&
    conflicts >actual &&
    test_must_be_empty actual
'

test_expect_success 'an a-to-b field edited on both sides: A wins, no conflict' '
    a_set bob@example.com city Milan &&
    b_set bob@example.com city Turin &&
    es &&
    check_both bob@example.com city city Milan &&
    conflicts >actual &&
    test_must_be_empty actual
'

# ---------------------------------------------------------------------------
# 5. The run's direction.

test_expect_success '--direction a-to-b pushes A edits and does not pull B edits' '
    fresh &&
    a_set ann@example.com first_name Annie &&
    b_set bob@example.com last_name Roy &&
    a_xmin >xmin.before &&
    es --direction a-to-b &&
    test_json_eq out.json .direction a-to-b &&
    test_json_eq out.json .updated.toA 0 &&
    test_json_eq out.json .updated.toB 1 &&
    check_both ann@example.com first_name name Annie &&
    a_get bob@example.com last_name >actual &&
    echo Ray >expect &&
    test_cmp expect actual &&
    b_field bob@example.com last_name >actual &&
    echo Roy >expect &&
    test_cmp expect actual &&
    a_xmin >xmin.after &&
    test_cmp xmin.before xmin.after
'

test_expect_success 'a later --direction both run pulls the deferred B edit' '
    es --direction both &&
    test_json_eq out.json .updated.toA 1 &&
    check_both bob@example.com last_name last_name Roy &&
    conflicts >actual &&
    test_must_be_empty actual
'

test_expect_success '--direction b-to-a pulls B edits and does not push A edits' '
    fresh &&
    a_set ann@example.com first_name Annie &&
    b_set bob@example.com last_name Roy &&
    ml_control DELETE log &&
    es --direction b-to-a &&
    test_json_eq out.json .direction b-to-a &&
    test_json_eq out.json .updated.toA 1 &&
    test_json_eq out.json .updated.toB 0 &&
    check_both bob@example.com last_name last_name Roy &&
    b_field ann@example.com name >actual &&
    echo Ann >expect &&
    test_cmp expect actual &&
    a_get ann@example.com first_name >actual &&
    echo Annie >expect &&
    test_cmp expect actual &&
    b_writes >writes &&
    test_must_be_empty writes
'

test_expect_success 'a later run (both) pushes the deferred A edit' '
    es &&
    test_json_eq out.json .updated.toB 1 &&
    check_both ann@example.com first_name name Annie &&
    conflicts >actual &&
    test_must_be_empty actual
'

test_expect_success 'legacy direction names: supabase-to-mailerlite is a-to-b' '
    fresh &&
    a_set ann@example.com first_name Annie &&
    b_set bob@example.com last_name Roy &&
    es --direction supabase-to-mailerlite &&
    test_json_eq out.json .direction a-to-b &&
    check_both ann@example.com first_name name Annie &&
    a_get bob@example.com last_name >actual &&
    echo Ray >expect &&
    test_cmp expect actual
'

test_expect_success 'legacy direction names: mailerlite-to-supabase is b-to-a' '
    a_set cat@example.com first_name Cathy &&
    es --direction mailerlite-to-supabase &&
    test_json_eq out.json .direction b-to-a &&
    check_both bob@example.com last_name last_name Roy &&
    b_field cat@example.com name >actual &&
    echo Cat >expect &&
    test_cmp expect actual
'

# ---------------------------------------------------------------------------
# 6. Managed groups.

test_expect_success 'managed group added in A: the subscriber is assigned in B' '
    fresh &&
    a_set ann@example.com groups "{Customers,Newsletter}" &&
    es &&
    b_groups ann@example.com >actual &&
    echo Customers,Newsletter,VIP >expect &&
    test_cmp expect actual &&
    test_json_eq out.json .updated.toB 1
'

test_expect_success 'managed group removed in B: removed from the A array' '
    b_edit cat@example.com "{\"remove_groups\": [\"Newsletter\"]}" &&
    es &&
    a_get cat@example.com groups >actual &&
    echo "{Customers}" >expect &&
    test_cmp expect actual &&
    b_groups cat@example.com >actual &&
    echo Customers >expect &&
    test_cmp expect actual
'

test_expect_success 'unmanaged groups are never touched, on either side' '
    b_edit bob@example.com "{\"add_groups\": [\"Staff\"]}" &&
    a_set cat@example.com groups "{Customers,Friends}" &&
    ml_control DELETE log &&
    es &&
    a_get bob@example.com groups >actual &&
    echo "{Internal}" >expect &&
    test_cmp expect actual &&
    b_groups bob@example.com >actual &&
    echo Staff >expect &&
    test_cmp expect actual &&
    b_groups cat@example.com >actual &&
    echo Customers >expect &&
    test_cmp expect actual &&
    a_get cat@example.com groups >actual &&
    echo "{Customers,Friends}" >expect &&
    test_cmp expect actual &&
    b_groups ann@example.com >actual &&
    echo Customers,Newsletter,VIP >expect &&
    test_cmp expect actual &&
    b_writes >writes &&
    test_must_be_empty writes
'

test_expect_success 'a managed group missing in B is created with create_missing = true' '
    write_conf managed="Customers, Newsletter, Weekly" &&
    test_when_finished "write_conf" &&
    a_set dan@example.com groups "{Customers,Weekly}" &&
    es &&
    ml_api GET "groups?limit=100" >groups.json &&
    jq -r "[.data[].name] | sort | join(\",\")" groups.json >actual &&
    test_grep "Weekly" actual &&
    b_groups dan@example.com >actual &&
    echo Customers,Weekly >expect &&
    test_cmp expect actual
'

test_expect_success 'a managed group missing in B with create_missing = false: exit 78, nothing written' '
    write_conf managed="Customers, Partners" create_missing=false &&
    test_when_finished "write_conf" &&
    a_set dan@example.com groups "{Customers,Partners}" &&
    ml_control DELETE log &&
    test_expect_code 78 es &&
    b_writes >writes &&
    test_must_be_empty writes &&
    ml_api GET "groups?limit=100" >groups.json &&
    jq -r ".data[].name" groups.json >names &&
    test_grep ! "^Partners\$" names
'

# ---------------------------------------------------------------------------
# 7. Sticky statuses.

test_expect_success 'unsubscribed in B is pulled into A' '
    fresh &&
    b_set_status bob@example.com unsubscribed &&
    es &&
    a_get bob@example.com status >actual &&
    echo unsubscribed >expect &&
    test_cmp expect actual
'

test_expect_success 'A set back to active does not resubscribe the subscriber' '
    a_set bob@example.com status active &&
    es &&
    b_status bob@example.com >actual &&
    echo unsubscribed >expect &&
    test_cmp expect actual &&
    a_get bob@example.com status >actual &&
    test_cmp expect actual &&
    psql_q "SELECT field, a_value::text, b_value::text, policy, winner
            FROM sync.sync_conflicts" >actual &&
    echo "status|\"active\"|\"unsubscribed\"|b-wins|b" >expect &&
    test_cmp expect actual
'

test_expect_success '--resubscribe lets A revive the subscriber' '
    a_set bob@example.com status active &&
    es --resubscribe &&
    b_status bob@example.com >actual &&
    echo active >expect &&
    test_cmp expect actual &&
    a_get bob@example.com status >actual &&
    test_cmp expect actual
'

# ---------------------------------------------------------------------------
# 8. Email changes follow the link.

test_expect_success 'email changed in B: A follows, no duplicate subscriber' '
    fresh &&
    b_id ann@example.com >ann.id &&
    b_edit ann@example.com "{\"new_email\": \"ann.new@example.com\"}" &&
    ml_control DELETE log &&
    es &&
    a_get ann.new@example.com id >actual &&
    echo 1 >expect &&
    test_cmp expect actual &&
    a_get ann@example.com id >actual &&
    test_must_be_empty actual &&
    psql_q "SELECT a_id, b_id FROM sync.integration_crosswalk
            WHERE email = '\''ann.new@example.com'\''" >actual &&
    echo "1|$(cat ann.id)" >expect &&
    test_cmp expect actual &&
    psql_q "SELECT count(*) FROM sync.integration_crosswalk" >actual &&
    echo 5 >expect &&
    test_cmp expect actual &&
    b_dump >b.jsonl &&
    test_line_count = 6 b.jsonl &&
    b_writes >writes &&
    test_grep ! "^POST api/subscribers\$" writes &&
    test_json_eq out.json .created.inB 0
'

test_expect_success 'email changed in A: B follows on the same subscriber' '
    b_id bob@example.com >bob.id &&
    a_set bob@example.com email bob.new@example.com &&
    es &&
    b_id bob.new@example.com >actual &&
    test_cmp bob.id actual &&
    b_dump >b.jsonl &&
    test_line_count = 6 b.jsonl &&
    psql_q "SELECT a_id, b_id FROM sync.integration_crosswalk
            WHERE email = '\''bob.new@example.com'\''" >actual &&
    echo "2|$(cat bob.id)" >expect &&
    test_cmp expect actual &&
    test_json_eq out.json .created.inB 0 &&
    test_json_eq out.json .created.inA 0
'

# ---------------------------------------------------------------------------
# 9. Idempotence.

test_expect_success 'a second run with no edits only lists B and writes nothing' '
    fresh &&
    a_set ann@example.com first_name Annie &&
    b_set bob@example.com last_name Roy &&
    es &&
    a_xmin >xmin.before &&
    psql_q "SELECT crosswalk_id, synced_at, a_hash, b_hash FROM sync.sync_shadow
            ORDER BY 1" >shadows.before &&
    psql_q "SELECT count(*) FROM sync.sync_log WHERE action NOT LIKE '\''job\\_%'\''" >log.before &&
    b_dump >b.before &&
    ml_control DELETE log &&
    es &&
    test_json_eq out.json .updatesApplied 0 &&
    test_json_eq out.json .linked 0 &&
    test_json_eq out.json ".created | .inA + .inB" 0 &&
    test_json_eq out.json .conflictsDetected 0 &&
    api_requests >requests &&
    grep -v "^GET /api/subscribers\$" requests >others &&
    if test -s others; then
        echo "GET /api/groups" >expect &&
        test_cmp expect others
    fi &&
    a_xmin >xmin.after &&
    test_cmp xmin.before xmin.after &&
    psql_q "SELECT crosswalk_id, synced_at, a_hash, b_hash FROM sync.sync_shadow
            ORDER BY 1" >shadows.after &&
    test_cmp shadows.before shadows.after &&
    psql_q "SELECT count(*) FROM sync.sync_log WHERE action NOT LIKE '\''job\\_%'\''" >log.after &&
    test_cmp log.before log.after &&
    b_dump >b.after &&
    test_cmp b.before b.after
'

# ---------------------------------------------------------------------------
# 10. --dry-run.

# The edit set of the dry-run and result tests: ann pushed, bob pulled,
# cat in conflict (a-wins), gil new in A.
make_edits() {
    a_set ann@example.com first_name Annie &&
    b_set bob@example.com last_name Roy &&
    a_set cat@example.com last_name KimA &&
    b_set cat@example.com last_name KimB &&
    psql_q "INSERT INTO public.clients (email, first_name, last_name, status, groups)
            VALUES ('gil@example.com', 'Gil', 'Ng', 'active', '{}')"
}

test_expect_success '--dry-run lists the plan and writes nothing on either side' '
    fresh conflict_policy=a-wins &&
    make_edits &&
    a_rows >a.before &&
    b_dump >b.before &&
    psql_q "SELECT (SELECT count(*) FROM sync.integration_crosswalk),
                   (SELECT string_agg(synced_at::text || a_hash || b_hash, '\'','\'' ORDER BY crosswalk_id)
                    FROM sync.sync_shadow),
                   (SELECT count(*) FROM sync.sync_log),
                   (SELECT count(*) FROM sync.sync_conflicts),
                   (SELECT md5(string_agg(key || value::text, '\'','\'' ORDER BY key))
                    FROM sync.sync_state)" >sync.before &&
    ml_control DELETE log &&
    es --dry-run &&
    test_json_eq out.json .dryRun true &&
    cp out.json dry.json &&
    a_rows >a.after &&
    test_cmp a.before a.after &&
    b_dump >b.after &&
    test_cmp b.before b.after &&
    psql_q "SELECT (SELECT count(*) FROM sync.integration_crosswalk),
                   (SELECT string_agg(synced_at::text || a_hash || b_hash, '\'','\'' ORDER BY crosswalk_id)
                    FROM sync.sync_shadow),
                   (SELECT count(*) FROM sync.sync_log),
                   (SELECT count(*) FROM sync.sync_conflicts),
                   (SELECT md5(string_agg(key || value::text, '\'','\'' ORDER BY key))
                    FROM sync.sync_state)" >sync.after &&
    test_cmp sync.before sync.after &&
    b_writes >writes &&
    test_must_be_empty writes
'

test_expect_success '--dry-run: .changes names each planned change' '
    jq -r ".changes[] | [.email, .action, (.toB | keys | join(\",\")),
                         (.toA | keys | join(\",\")),
                         ([.conflicts[] | .field + \":\" + .winner] | join(\",\"))] | join(\"|\")" \
        dry.json | sort >actual &&
    test_write_lines \
        "ann@example.com|update|name||" \
        "bob@example.com|update||last_name|" \
        "cat@example.com|update|last_name||last_name:a" \
        "gil@example.com|create_in_b|email,last_name,name,status||" >expect &&
    test_cmp expect actual
'

test_expect_success 'the real run does what the dry run said, with the same counts and exit status' '
    es &&
    for k in recordsProcessed conflictsDetected updatesApplied updated created linked \
        unchanged onlyInB skipped deferred errors done; do
        jq -c ".$k" dry.json >expect &&
        jq -c ".$k" out.json >actual &&
        test_cmp expect actual || return 1
    done &&
    check_both ann@example.com first_name name Annie &&
    check_both bob@example.com last_name last_name Roy &&
    check_both cat@example.com last_name last_name KimA &&
    b_field gil@example.com name >actual &&
    echo Gil >expect &&
    test_cmp expect actual
'

test_expect_success '--dry-run exits as the real run would (78 for a missing group)' '
    write_conf managed="Customers, Partners" create_missing=false &&
    test_when_finished "write_conf conflict_policy=a-wins" &&
    test_expect_code 78 es --dry-run &&
    test_expect_code 78 es
'

# ---------------------------------------------------------------------------
# 11. The result.

test_expect_success 'the result has every member, and the counts of a known edit set' '
    fresh conflict_policy=a-wins &&
    make_edits &&
    es &&
    jq -r "keys_unsorted[]" out.json | sort >actual &&
    test_write_lines apiRequests conflictsDetected created deferred direction done \
        durationMs errors linked message nextCursor onlyInB recordsProcessed skipped \
        unchanged updated updatesApplied | sort >expect &&
    test_cmp expect actual &&
    test_json_eq out.json .updated.toA 1 &&
    test_json_eq out.json .updated.toB 2 &&
    test_json_eq out.json .updatesApplied 3 &&
    test_json_eq out.json .created.inB 1 &&
    test_json_eq out.json .created.inA 0 &&
    test_json_eq out.json .conflictsDetected 1 &&
    test_json_eq out.json .linked 1 &&
    test_json_eq out.json .onlyInB 1 &&
    test_json_eq out.json .recordsProcessed 7 &&
    test_json_eq out.json .unchanged 2 &&
    test_json_eq out.json .errors 0 &&
    test_json_eq out.json .done true &&
    test_json_eq out.json .nextCursor null &&
    test_json_eq out.json .direction both &&
    jq -e "(.apiRequests | type) == \"number\" and (.durationMs | type) == \"number\"
           and (.message | type) == \"string\"" out.json &&
    psql_q "SELECT action, count(*) FROM sync.sync_log WHERE run_id =
              (SELECT run_id FROM sync.sync_log WHERE action = '\''job_completed'\''
               ORDER BY id DESC LIMIT 1)
            GROUP BY 1 ORDER BY 1" >actual &&
    test_write_lines "created_in_b|1" "job_completed|1" "job_started|1" "updated|3" >expect &&
    test_cmp expect actual
'

test_expect_success 'a budget stop exits 3 with a cursor, and the next run finishes' '
    fresh &&
    a_set ann@example.com first_name Annie &&
    test_expect_code 3 enterprise-sync -c cw.conf --max-records 2 >out.json &&
    test_json_eq out.json .done false &&
    jq -e ".nextCursor | type == \"string\"" out.json &&
    es &&
    test_json_eq out.json .done true &&
    check_both ann@example.com first_name name Annie
'

test_done
