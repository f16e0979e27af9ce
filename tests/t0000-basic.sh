#!/bin/sh
# Test bodies are single-quoted and use variables and functions defined here:
# shellcheck disable=SC2016,SC2034,SC2317
test_description='every program answers --help, --version and a bad option'
# shellcheck source=tests/test-lib.sh
. "$(dirname "$0")/test-lib.sh"

version=$(cat "$TEST_ROOT/VERSION")

# The programs are cmd/*.c, each built into bin/.
programs=$(programs_under_test)
if test -z "$programs"; then
    skip_all='no programs in cmd/ yet'
    test_done
fi

# test_columns_at_most N FILE: no line of FILE is wider than N columns
# (UTF-8 characters count one, tabs advance to the next multiple of 8).
test_columns_at_most() {
    WIDTH=$1 perl -CSD -ne '
        chomp;
        1 while s/\t+/" " x (length($&) * 8 - length($`) % 8)/e;
        if (length > $ENV{WIDTH}) {
            printf STDERR "line %d is %d columns wide (at most %d): %s\n",
                $., length, $ENV{WIDTH}, $_;
            $bad = 1;
        }
        END { exit($bad ? 1 : 0) }
    ' "$2"
}

for prog in $programs; do
    built=BUILT_$(printf '%s' "$prog" | tr 'a-z-' 'A-Z_')

    test_expect_success "$prog is built" '
        if ! test -x "$BIN/$prog"; then
            echo "bin/$prog is missing: cmd/$prog.c was not built (run make)" >&2 &&
            false
        fi &&
        test_set_prereq "$built"
    '

    test_expect_success "$built" "$prog --help prints the usage on stdout" '
        "$prog" --help >out 2>err &&
        test_must_be_empty err &&
        test_grep "^Usage:" out &&
        test_grep -F "$prog" out
    '

    test_expect_success "$built" "$prog --help fits in 80 columns" '
        "$prog" --help >out &&
        test_columns_at_most 80 out
    '

    test_expect_success "$built" "$prog --version" '
        "$prog" --version >out 2>err &&
        echo "$prog (crosswalk) $version" >expect &&
        test_cmp expect out &&
        test_must_be_empty err
    '

    test_expect_success "$built" "$prog rejects an unknown option with 64" '
        test_expect_code 64 "$prog" --no-such-option >out 2>err &&
        test_must_be_empty out &&
        test_grep -F "$prog: error: unrecognized option \"--no-such-option\"" err &&
        test_grep -F "$prog: hint: Try \"$prog --help\" for more information." err
    '

    test_expect_success "$built" "$prog refuses the API token on the command line" '
        test_expect_code 64 "$prog" --api-key=x >out 2>err &&
        test_must_be_empty out &&
        test_grep -F MAILERLITE_API_KEY err
    '

    test_expect_success "$built" "$prog does not echo a token given on the command line" '
        test_expect_code 64 "$prog" --api-key=t0000-not-a-real-token >out 2>err &&
        test_grep ! -F t0000-not-a-real-token out &&
        test_grep ! -F t0000-not-a-real-token err
    '
done

test_done
