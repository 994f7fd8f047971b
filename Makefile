# mcast: build, test and install the five programs around libmcast.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/site-functions
PKG_CONFIG ?= pkg-config
CC ?= cc

VERSION := 0.1.0
PKGS := libarchive libxxhash libisal libcurl libcrypto libzstd ext2fs com_err libntfs-3g fdisk blkid tsk
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)

WARN := -Wall -Wextra -Wshadow -Wno-unused-parameter -Wstrict-prototypes -Wmissing-prototypes
CFLAGS ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE -DMC_VERSION='"$(VERSION)"' $(WARN) $(WERROR) -Ilib $(PKG_CFLAGS) $(CFLAGS)
# --as-needed: each program records only the libraries it calls (mcast-recv, the
# program of a small live or PXE system, does not load libtsk, libcurl and the
# rest that only packing from a file system or fetching over HTTP needs).
LDLIBS := -Wl,--as-needed $(PKG_LIBS) -lm -lpthread

# Sanitizer builds live in their own tree so they never mix with the normal objects.
B ?= build
PROGS := mcast-pack mcast-send mcast-recv mcast-repair mcast-sched
LIB_SRC := $(sort $(wildcard lib/*.c))
LIB_HDR := $(wildcard lib/*.h)
LIB_OBJ := $(LIB_SRC:lib/%.c=$(B)/lib/%.o)
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
BINOUT ?= bin

.PHONY: all deps check check-fast check-asan unit units bats lint demo fuzz fuzz-check bench install uninstall clean valgrind
all: $(addprefix $(BINOUT)/,$(PROGS))

$(B)/lib/%.o: lib/%.c $(LIB_HDR)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(B)/libmcast.a: $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(BINOUT)/%: cmd/%.c $(B)/libmcast.a $(LIB_HDR)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(B)/libmcast.a $(LDLIBS)

$(B)/tests/%: tests/unit/%.c $(wildcard tests/unit/*.h) $(B)/libmcast.a $(LIB_HDR)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests/unit -o $@ $< $(B)/libmcast.a $(LDLIBS)

# bench/crypto: chunk digests and session MACs on this CPU (run: $(B)/bench/crypto [SECONDS]).
.PHONY: bench/crypto
bench/crypto: $(B)/bench/crypto
$(B)/bench/crypto: bench/crypto.c $(B)/libmcast.a $(LIB_HDR)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ bench/crypto.c $(B)/libmcast.a $(LDLIBS)

# bench/sim: the protocol at scale in one process, on tests/sim/sim.h (run: $(B)/bench/sim [--quick]).
.PHONY: bench/sim
bench/sim: $(B)/bench/sim
$(B)/bench/sim: bench/sim.c tests/sim/sim.h $(B)/libmcast.a $(LIB_HDR)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ bench/sim.c $(B)/libmcast.a $(LDLIBS)

deps:
	sh tests/deps.sh

# check: man lint, strict build, unit tests, bats suites, the valgrind session
# (about 30 s), a short fuzz run;
# then everything again under ASan+UBSan. Every stage runs even when an
# earlier one failed, so one run counts all tests; the status is the worst.
# Counts go to $(MCAST_COUNTS) (one line per run-all.sh), for .ci/run.
MCAST_COUNTS ?= $(CURDIR)/build/test-counts
export MCAST_COUNTS
# Builds inside check (plain, ASan, fuzz) use every core: CI calls plain
# `make check`, and a serial ASan build alone took about a minute.
CHECK_JOBS ?= $(shell nproc 2>/dev/null || echo 2)

check:
	@st=0; mkdir -p $$(dirname $(MCAST_COUNTS)); : >$(MCAST_COUNTS); \
	$(MAKE) lint || st=1; \
	if $(MAKE) -j$(CHECK_JOBS) WERROR=-Werror all units; then \
	  sh tests/run-all.sh plain || st=1; \
	  if $(MAKE) valgrind; then echo "valgrind 1 0 0" >>$(MCAST_COUNTS); \
	  else echo "valgrind 0 1 0" >>$(MCAST_COUNTS); st=1; fi; \
	else echo "check: build failed" >&2; echo "build 0 1 0" >>$(MCAST_COUNTS); st=1; fi; \
	$(MAKE) fuzz-check || st=1; \
	$(MAKE) check-asan || st=1; \
	awk '{ p += $$2; f += $$3; s += $$4 } END { printf "check: %d passed, %d failed, %d skipped\n", p, f, s }' $(MCAST_COUNTS); \
	exit $$st

check-fast: all units
	sh tests/run-all.sh plain

check-asan:
	@if $(MAKE) -j$(CHECK_JOBS) B=build-asan BINOUT=build-asan/bin WERROR=-Werror CFLAGS='$(ASAN_CFLAGS)' all units; then \
	  MCAST_BIN=$(CURDIR)/build-asan/bin MCAST_UNIT=$(CURDIR)/build-asan/tests sh tests/run-all.sh asan; \
	else echo "check-asan: build failed" >&2; echo "build-asan 0 1 0" >>$(MCAST_COUNTS); exit 1; fi

ASAN_CFLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

units: $(UNIT_BIN)

unit: units
	sh tests/run-all.sh unit

bats: all
	bats tests/*.bats

# valgrind: one small session (send, recv, repair) and mcast-pack create/verify/extract
# under memcheck, in a network namespace of its own; fails on any memcheck error.
valgrind: all
	MCAST_BIN=$(CURDIR)/$(BINOUT) sh tests/valgrind.sh

# Man pages must be free of mandoc warnings and errors (style notes allowed).
lint:
	@set -- man/*.[157]; if [ -e "$$1" ]; then echo "mandoc -Tlint -Wwarning $$*"; mandoc -Tlint -Wwarning "$$@"; \
	else echo "lint: no man pages yet"; fi

demo: all
	sh examples/demo.sh

# tests/fuzz/Makefile (when present) provides `run` (open-ended) and `check`
# (each target for a bounded short time, part of make check).
fuzz:
	@if [ -f tests/fuzz/Makefile ]; then $(MAKE) -C tests/fuzz run; else echo "fuzz: no tests/fuzz/Makefile yet"; fi

fuzz-check:
	@if [ -f tests/fuzz/Makefile ] && grep -q '^check:' tests/fuzz/Makefile; then \
	  $(MAKE) -j$(CHECK_JOBS) -C tests/fuzz all && $(MAKE) -C tests/fuzz check; \
	else echo "fuzz-check: no fuzz targets yet"; fi

bench: all
	sh bench/pack

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR)
	install -m 755 $(addprefix $(BINOUT)/,$(PROGS)) $(DESTDIR)$(BINDIR)
	for s in 1 5 7; do for f in man/*.$$s; do [ ! -e "$$f" ] || install -m 644 "$$f" $(DESTDIR)$(MANDIR)/man$$s || exit 1; done; done
	install -m 644 $(addprefix completions/bash/,$(PROGS)) $(DESTDIR)$(BASHCOMPDIR)
	install -m 644 $(addprefix completions/zsh/_,$(PROGS)) $(DESTDIR)$(ZSHCOMPDIR)

uninstall:
	for p in $(PROGS); do rm -f $(DESTDIR)$(BINDIR)/$$p $(DESTDIR)$(MANDIR)/man1/$$p.1 \
	  $(DESTDIR)$(BASHCOMPDIR)/$$p $(DESTDIR)$(ZSHCOMPDIR)/_$$p; done
	for s in 1 5 7; do for f in man/*.$$s; do [ ! -e "$$f" ] || rm -f $(DESTDIR)$(MANDIR)/man$$s/$${f##*/}; done; done

clean:
	rm -rf build build-asan bin tests/fuzz/build
