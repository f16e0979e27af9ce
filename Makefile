# crosswalk: build, test, install, benchmark and demo.
#
#   make            build the programs into bin/
#   make check      build and run every test through prove (the README's test command)
#   make asan       the same tests against an ASan + UBSan build
#   make install    PREFIX=/usr/local DESTDIR= (programs, man pages, SQL, example config)
#   make bench      print the benchmark figures (bench/run)
#   make demo       a throwaway cluster + emulator + backfill-sync, end to end
#   make clean

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DATADIR ?= $(PREFIX)/share/crosswalk
SYSCONFDIR ?= /etc

CC ?= cc
PKG_CONFIG ?= pkg-config
CFLAGS ?= -O2 -g
PROVE ?= prove
PROVE_FLAGS ?= -j2

PKGS := libpq libcurl jansson inih
EMU_PKGS := libmicrohttpd jansson

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

CW_CPPFLAGS := -std=c11 -D_GNU_SOURCE -Ilib -DCW_VERSION='"$(VERSION)"' \
	-DCW_DATADIR='"$(DATADIR)"' -DCW_SYSCONFDIR='"$(SYSCONFDIR)"'
CW_WARN := -Wall -Wextra -Wshadow -Wformat=2 -Wno-unused-parameter
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
EMU_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(EMU_PKGS) 2>/dev/null)
EMU_LIBS := $(shell $(PKG_CONFIG) --libs $(EMU_PKGS) 2>/dev/null)

ALL_CFLAGS = $(CW_CPPFLAGS) $(CW_WARN) $(PKG_CFLAGS) $(CFLAGS) -MMD -MP
ALL_LIBS = $(PKG_LIBS) -lpthread -lm

LIB_SRC := $(sort $(filter-out lib/schema_sql.c,$(wildcard lib/*.c)))
LIB_OBJ := $(LIB_SRC:.c=.o) lib/schema_sql.o
SQL_FILES := $(sort $(wildcard sql/[0-9]*.sql))
CMD_SRC := $(sort $(wildcard cmd/*.c))
PROGRAMS := $(patsubst cmd/%.c,bin/%,$(CMD_SRC))
UNIT_SRC := $(sort $(wildcard tests/unit/*.c))
UNIT_BIN := $(patsubst %.c,%.t,$(filter-out tests/unit/tap.c,$(UNIT_SRC)))
BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_BIN := $(patsubst bench/%.c,bin/bench-%,$(BENCH_SRC))
HELPER_SRC := $(sort $(wildcard tests/helpers/*.c))
HELPER_BIN := $(patsubst %.c,%,$(HELPER_SRC))
EMU_SRC := $(sort $(wildcard tests/fake-mailerlite/*.c))
EMU := tests/fake-mailerlite/fake-mailerlite
MAN_PAGES := $(sort $(wildcard man/*.1 man/*.7))

.PHONY: all check asan install uninstall bench demo clean

all: $(PROGRAMS) $(EMU) $(UNIT_BIN) $(BENCH_BIN) $(HELPER_BIN)

libcrosswalk.a: $(LIB_OBJ)
	$(AR) rcs $@ $^

# The migrations travel inside the binaries: no version skew between the
# schema a program expects and the SQL that installs it.
lib/schema_sql.c: $(SQL_FILES) scripts/embed-sql
	scripts/embed-sql $(SQL_FILES) > $@.tmp && mv $@.tmp $@

lib/%.o: lib/%.c
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

cmd/%.o: cmd/%.c
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

bin/%: cmd/%.o libcrosswalk.a
	@mkdir -p bin
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< libcrosswalk.a $(ALL_LIBS)

bin/bench-%: bench/%.c libcrosswalk.a
	@mkdir -p bin
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< libcrosswalk.a $(ALL_LIBS)

tests/unit/tap.o: tests/unit/tap.c
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

tests/unit/%.t: tests/unit/%.c tests/unit/tap.o tests/unit/tap.h libcrosswalk.a
	$(CC) $(ALL_CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< tests/unit/tap.o libcrosswalk.a $(ALL_LIBS)

# Test-only drivers of library modules (not installed). The scripts beside
# them (tests/helpers/latency-proxy) are run as they are.
tests/helpers/%: tests/helpers/%.c libcrosswalk.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< libcrosswalk.a $(ALL_LIBS)

$(EMU): $(EMU_SRC) $(wildcard tests/fake-mailerlite/*.h)
	$(CC) -std=c11 -D_GNU_SOURCE $(CW_WARN) $(EMU_CFLAGS) $(CFLAGS) -o $@ $(EMU_SRC) \
		$(EMU_LIBS) -lpthread

# The README's test command. Each end-to-end test starts its own PostgreSQL
# cluster and emulator, so two run side by side on two cores.
check: all
	$(PROVE) $(PROVE_FLAGS) tests/unit/*.t tests/t[0-9]*.sh

# Sanitizer build: a separate tree so the normal objects stay untouched.
# -Wno-format-truncation: UBSan's instrumentation leads gcc's truncation
# analysis to false alarms (a "null format string" on vsnprintf(NULL, 0)).
# The sanitized objects are removed however the tests end, so that a plain
# make afterwards never links them with unsanitized ones.
asan:
	$(MAKE) -C . clean-objects
	$(MAKE) CFLAGS='-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -Wno-format-truncation' \
		LDFLAGS='-fsanitize=address,undefined' check; \
	status=$$?; $(MAKE) -C . clean-objects; exit $$status

# Both check the system packages first (the list in .ci/run; as root the
# missing ones are installed), then run make themselves: a missing -dev
# package is named, not left to a compiler error. No echo: stdout carries
# the results.
bench:
	@bench/run

demo:
	@scripts/demo

install: $(PROGRAMS)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man7 \
		$(DESTDIR)$(DATADIR)/sql
	install -m 755 $(PROGRAMS) $(DESTDIR)$(BINDIR)
	install -m 644 $(filter %.1,$(MAN_PAGES)) $(DESTDIR)$(MANDIR)/man1
	install -m 644 $(filter %.7,$(MAN_PAGES)) $(DESTDIR)$(MANDIR)/man7
	install -m 644 sql/*.sql $(DESTDIR)$(DATADIR)/sql
	install -m 644 crosswalk.conf.example $(DESTDIR)$(DATADIR)

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(notdir $(PROGRAMS)))
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(filter %.1,$(MAN_PAGES))))
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man7/,$(notdir $(filter %.7,$(MAN_PAGES))))
	rm -rf $(DESTDIR)$(DATADIR)

clean-objects:
	rm -f lib/schema_sql.c lib/*.o lib/*.d cmd/*.o cmd/*.d tests/unit/*.o tests/unit/*.d tests/unit/*.t \
		libcrosswalk.a $(PROGRAMS) $(BENCH_BIN) $(HELPER_BIN) $(EMU) tests/helpers/*.d

clean: clean-objects
	rm -rf bin tests/trash.* bench/out

-include $(wildcard lib/*.d cmd/*.d tests/unit/*.d tests/helpers/*.d bench/*.d)

# Keep cmd/*.o and friends between runs; they are not throwaway intermediates.
.SECONDARY:
