# mcast: build, test and install the five programs around libmcast.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/vendor-completions
PKG_CONFIG ?= pkg-config
CC ?= cc

VERSION := 0.1.0
PKGS := libarchive libxxhash libisal libcurl
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)

WARN := -Wall -Wextra -Wshadow -Wno-unused-parameter -Wstrict-prototypes -Wmissing-prototypes
CFLAGS ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE -DMC_VERSION='"$(VERSION)"' $(WARN) $(WERROR) -Ilib $(PKG_CFLAGS) $(CFLAGS)
LDLIBS := $(PKG_LIBS) -lm -lpthread

# Sanitizer builds live in their own tree so they never mix with the normal objects.
B ?= build
PROGS := mcast-pack mcast-send mcast-recv mcast-repair mcast-sched
LIB_SRC := $(sort $(wildcard lib/*.c))
LIB_HDR := $(wildcard lib/*.h)
LIB_OBJ := $(LIB_SRC:lib/%.c=$(B)/lib/%.o)
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
BINOUT ?= bin

.PHONY: all deps check check-fast check-asan unit bats lint demo fuzz bench install uninstall clean
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

$(B)/tests/%: tests/unit/%.c tests/unit/tap.h $(B)/libmcast.a $(LIB_HDR)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests/unit -o $@ $< $(B)/libmcast.a $(LDLIBS)

deps:
	sh tests/deps.sh

# check: strict build, unit tests, bats suites, man lint; then everything again under ASan+UBSan.
check:
	$(MAKE) WERROR=-Werror all units
	sh tests/run-all.sh plain
	$(MAKE) check-asan

check-asan:
	$(MAKE) B=build-asan BINOUT=build-asan/bin WERROR=-Werror CFLAGS='-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined' all units
	MCAST_BIN=$(CURDIR)/build-asan/bin MCAST_UNIT=$(CURDIR)/build-asan/tests sh tests/run-all.sh asan

units: $(UNIT_BIN)

unit: units
	sh tests/run-all.sh unit

bats: all
	bats tests/*.bats

lint:
	mandoc -Tlint -Wwarning man/*.[157]

demo: all
	sh examples/demo.sh

fuzz:
	$(MAKE) -C tests/fuzz run

bench: all
	sh bench/pack

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR)
	install -m 755 $(addprefix $(BINOUT)/,$(PROGS)) $(DESTDIR)$(BINDIR)
	install -m 644 man/*.1 $(DESTDIR)$(MANDIR)/man1
	install -m 644 man/*.5 $(DESTDIR)$(MANDIR)/man5
	install -m 644 man/*.7 $(DESTDIR)$(MANDIR)/man7
	install -m 644 completions/bash/* $(DESTDIR)$(BASHCOMPDIR)
	install -m 644 completions/zsh/* $(DESTDIR)$(ZSHCOMPDIR)

uninstall:
	for p in $(PROGS); do rm -f $(DESTDIR)$(BINDIR)/$$p $(DESTDIR)$(MANDIR)/man1/$$p.1 \
	  $(DESTDIR)$(BASHCOMPDIR)/$$p $(DESTDIR)$(ZSHCOMPDIR)/_$$p; done
	rm -f $(DESTDIR)$(MANDIR)/man5/mcast-package.5 $(DESTDIR)$(MANDIR)/man7/mcast-protocol.7

clean:
	rm -rf build build-asan bin tests/fuzz/build
