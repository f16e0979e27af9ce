#!/bin/sh
# Test bodies are single-quoted and use variables and functions defined here:
# shellcheck disable=SC2016,SC2034,SC2317
test_description='every long option is in both --help and the man page'
# shellcheck source=tests/test-lib.sh
. "$(dirname "$0")/test-lib.sh"

# The rules:
#
# --help: an option line is indented 1 to 8 spaces and starts with an
#   optional short option and then the long one ("  -c, --config=FILE",
#   "      --status"); its first --name is the option. Deeper indented lines
#   continue a description and are not read.
#
# man/<prog>.1 (mdoc): every argument of an Fl macro that starts with a
#   dash is a long option: ".Fl -batch-size", ".Fl n , Fl -dry-run",
#   ".Op Fl -schema Ar name", ".It Fl c , Fl -config Ns = Ns Ar file". An Fl
#   macro's arguments end at the next macro (Ar, Ns, Op, ...) or
#   punctuation. Only macro lines count (plain text and literal displays
#   such as ".Dl backfill-sync --dry-run" are not read), and the SEE ALSO
#   section is skipped, so a page may name other programs' options there.

programs=$(programs_under_test)
if test -z "$programs"; then
    skip_all='no programs in cmd/ yet'
    test_done
fi

# help_long_options <help-output: the sorted long options.
help_long_options() {
    sed -n 's/^ \{1,8\}\(-[A-Za-z0-9], \)\{0,1\}--\([A-Za-z0-9][A-Za-z0-9-]*\).*/--\2/p' |
        sort -u
}

# man_long_options PAGE: the sorted long options given to Fl.
man_long_options() {
    perl -ne '
        next unless /^[.\x27]/;
        if (/^\.Sh\s+"?(.*?)"?\s*$/) { $section = $1; next }
        next if $section eq "SEE ALSO";
        my $in_fl = 0;
        for my $w (split " ", substr($_, 1)) {
            if ($w eq "Fl") { $in_fl = 1; next }
            next unless $in_fl;
            $w =~ s/^\\-/-/;
            if ($w =~ /^-([A-Za-z0-9][A-Za-z0-9-]*)(=.*)?$/) { print "--$1\n"; next }
            # short options ("n", "nqv") stay inside Fl; a macro ends it
            next if $w =~ /^[A-Za-z0-9]+$/ && $w !~ /^[A-Z][a-z]{1,2}$/;
            $in_fl = 0;
        }
    ' "$1" | sort -u
}

for prog in $programs; do
    man=$TEST_ROOT/man/$prog.1
    test_expect_success "$prog: --help and man/$prog.1 list the same long options" '
        if ! test -x "$BIN/$prog"; then
            echo "bin/$prog is missing: cmd/$prog.c was not built (run make)" >&2 &&
            false
        fi &&
        if ! test -f "$man"; then
            echo "man/$prog.1 is missing: every program needs a man page (mdoc)," >&2 &&
            echo "with each long option of \"$prog --help\" in it" >&2 &&
            false
        fi &&
        "$prog" --help >help &&
        help_long_options <help >help.opts &&
        if ! test -s help.opts; then
            echo "found no long options in \"$prog --help\"" >&2 &&
            false
        fi &&
        man_long_options "$man" >man.opts &&
        comm -23 help.opts man.opts >only-in-help &&
        comm -13 help.opts man.opts >only-in-man &&
        if test -s only-in-help; then
            echo "in \"$prog --help\" but not in man/$prog.1:" >&2 &&
            sed "s/^/    /" only-in-help >&2
        fi &&
        if test -s only-in-man; then
            echo "in man/$prog.1 but not in \"$prog --help\":" >&2 &&
            sed "s/^/    /" only-in-man >&2
        fi &&
        ! test -s only-in-help &&
        ! test -s only-in-man
    '
done

test_done
