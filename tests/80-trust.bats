#!/usr/bin/env bats
# tests/80-trust.bats: keys, signed packages and trust (issue 17): keygen, --sign, --trust refusals.

bats_require_minimum_version 1.5.0
load helper

setup() {
	T=$BATS_TEST_TMPDIR
	cd "$T" || return 1
	umask 022
}

@test "keygen: NAME.key mode 0600 and NAME.pub, one line each, key id printed" {
	run --separate-stderr run_pack keygen -o admin
	[ "$status" -eq 0 ]
	[[ $stderr =~ key\ id\ ([0-9a-f]{16}) ]]
	[ "$(stat -c %a admin.key)" = 600 ]
	[ "$(stat -c %a admin.pub)" = 644 ]
	[ "$(wc -l <admin.key)" -eq 1 ] && [ "$(wc -l <admin.pub)" -eq 1 ]
	grep -Eq '^mcast-secret-key-v1 ed25519 [A-Za-z0-9+/]{86}== admin$' admin.key
	grep -Eq '^mcast-public-key-v1 ed25519 [A-Za-z0-9+/]{43}= admin$' admin.pub
	# The key id is the start of SHA-256 of the 32 public key bytes.
	id=$(cut -d' ' -f3 admin.pub | base64 -d | sha256sum | cut -c1-16)
	[[ $stderr == *"key id $id"* ]]
}

@test "no memory for one more --trust: said as out of memory, exit 1, not a usage error" {
	# realloc answers NULL for the first --trust's list (one pointer), as it does for want of memory.
	# Plain run only: an ASan binary wants its runtime first, before any preload.
	plain_run_only
	command -v cc >/dev/null || skip "no C compiler for the shim"
	cat >shim.c <<-'EOF'
		#include <errno.h>
		#include <stddef.h>
		extern void *__libc_realloc(void *, size_t);
		void *realloc(void *p, size_t n)
		{
			if (p == NULL && n == sizeof(void *)) {
				errno = ENOMEM;
				return NULL;
			}
			return __libc_realloc(p, n);
		}
	EOF
	cc -shared -fPIC -o shim.so shim.c
	run -1 --separate-stderr env LD_PRELOAD="$PWD/shim.so" "$MCAST_BIN/mcast-recv" --trust k.pub -o x.mcpkg
	[ "$stderr" = "mcast-recv: --trust: out of memory" ]
	[ ! -e x.mcpkg.part ]
}

@test "keygen: refuses to overwrite, leaves the old pair alone" {
	run --separate-stderr run_pack keygen -o admin
	[ "$status" -eq 0 ]
	cp admin.key old.key
	run --separate-stderr run_pack keygen -o admin
	[ "$status" -eq 1 ]
	[[ $stderr == *"admin.pub: exists"* ]]
	cmp admin.key old.key
	rm admin.pub
	run --separate-stderr run_pack keygen -o admin
	[ "$status" -eq 1 ]
	[[ $stderr == *"admin.key: exists"* ]]
	[ ! -e admin.pub ]
	cmp admin.key old.key
}

@test "keygen --session: 32 random bytes, mode 0600, not overwritten; --json" {
	run --separate-stderr run_pack keygen --session -o s.key --json
	[ "$status" -eq 0 ]
	[ "$(stat -c %a%s s.key)" = 60032 ]
	[[ $output == '{"event":"summary","v":1,"result":"complete","command":"keygen","path":"s.key","session_key":"s.key"}' ]]
	run --separate-stderr run_pack keygen --session -o t.key
	! cmp -s s.key t.key
	run --separate-stderr run_pack keygen --session -o s.key
	[ "$status" -eq 1 ]
}

@test "keygen: usage errors" {
	run --separate-stderr run_pack keygen
	[ "$status" -eq 2 ]
	[[ $stderr == *"-o NAME is required"* ]]
	run --separate-stderr run_pack keygen -o a b
	[ "$status" -eq 2 ]
	run --separate-stderr run_pack info --session x.mcpkg
	[ "$status" -eq 2 ]
	[[ $stderr == *"--session is for keygen"* ]]
	[ ! -e a.key ]
}

# flip_manifest PKG OFFSET: changes one manifest byte and, as a forger would,
# puts the manifest's new XXH3-128 into the header so only the signature can tell.
flip_manifest() {
	python3 - "$@" <<'PY'
import struct, subprocess, sys
path, off = sys.argv[1], int(sys.argv[2])
b = bytearray(open(path, 'rb').read())
mlen = struct.unpack('>Q', b[24:32])[0]
off = off % mlen
b[64 + off] ^= 0x01
h = subprocess.run(['xxhsum', '-H2', '-'], input=bytes(b[64:64 + mlen]), capture_output=True, check=True).stdout.split()[0]
b[48:64] = bytes.fromhex(h.decode())
open(path, 'wb').write(b)
PY
}

# A signed tree package s.mcpkg by admin.key, an unsigned u.mcpkg, and a second key pair.
signed_setup() {
	run_pack -q keygen -o admin && run_pack -q keygen -o other || return 1
	mkdir -p tree/sub
	head -c 2500000 /dev/urandom >tree/big
	printf 'hello\n' >tree/sub/a.txt
	run_pack create -q --sign admin.key -o s.mcpkg tree && run_pack create -q -o u.mcpkg tree
}

@test "create --sign: info names the signer's key id; verify and extract --trust take it" {
	asan_covered_elsewhere
	signed_setup
	kid=$(cut -d' ' -f3 admin.pub | base64 -d | sha256sum | cut -c1-16)
	run --separate-stderr run_pack info s.mcpkg
	[ "$status" -eq 0 ]
	[[ $output == *"signed by:      key $kid"* ]]
	[[ $output == *"chunk digests:  sha256-128"* ]]
	run --separate-stderr run_pack info --json u.mcpkg
	[[ $output == *'"chunk_digest":"xxh3-128","signed":false'* ]]
	run --separate-stderr run_pack verify --json --trust admin.pub s.mcpkg
	[ "$status" -eq 0 ]
	run --separate-stderr run_pack extract --trust admin.pub -C out s.mcpkg
	[ "$status" -eq 0 ]
	cmp out/big tree/big && cmp out/sub/a.txt tree/sub/a.txt
	# A directory of keys, the right one among them.
	mkdir keys && cp other.pub admin.pub keys/
	run --separate-stderr run_pack extract --trust keys -O s.mcpkg
	[ "$status" -eq 0 ]
	# Without --trust, signed and unsigned packages read as before.
	run_pack verify -q s.mcpkg && run_pack verify -q u.mcpkg
}

@test "--trust refuses, writing nothing: unsigned, another key, a changed manifest byte, a bad key file" {
	signed_setup
	kid=$(cut -d' ' -f3 admin.pub | base64 -d | sha256sum | cut -c1-16)
	run --separate-stderr run_pack extract --trust admin.pub -C out1 u.mcpkg
	[ "$status" -eq 1 ]
	[[ $stderr == *"u.mcpkg: refused: not signed"* ]]
	[ ! -e out1 ]
	run --separate-stderr run_pack extract --trust other.pub -C out2 s.mcpkg
	[ "$status" -eq 1 ]
	[[ $stderr == *"signed by key $kid, which is not trusted"* ]]
	[ ! -e out2 ]
	run --separate-stderr run_pack verify --json --trust other.pub s.mcpkg
	[ "$status" -eq 1 ]
	[[ $output == *'"result":"error"'* ]]
	# One manifest byte changed (the name's length, the version's, a chunk digest, the salt).
	for off in 7 9 60 -100; do
		cp s.mcpkg t.mcpkg
		flip_manifest t.mcpkg $off
		run --separate-stderr run_pack extract --trust admin.pub -O t.mcpkg
		[ "$status" -ne 0 ]
		[ -z "$output" ]
		run --separate-stderr run_pack verify --trust admin.pub t.mcpkg
		[ "$status" -eq 1 ] || [ "$status" -eq 3 ]
	done
	cp s.mcpkg t.mcpkg
	flip_manifest t.mcpkg 8 # the name's first byte: the manifest still parses
	run --separate-stderr run_pack extract --trust admin.pub -C out3 t.mcpkg
	[ "$status" -eq 1 ]
	[[ $stderr == *"does not match its signature by key $kid"* ]]
	[ ! -e out3 ]
	# Key files of the wrong format: a secret key, a truncated key, an ssh key.
	run --separate-stderr run_pack extract --trust admin.key -C out4 s.mcpkg
	[ "$status" -eq 1 ]
	[[ $stderr == *"admin.key: a secret key where a public key is wanted"* ]]
	head -c 40 admin.pub >short.pub
	run --separate-stderr run_pack extract --trust short.pub -C out4 s.mcpkg
	[ "$status" -eq 1 ]
	[[ $stderr == *"short.pub: "* ]]
	echo 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG me@host' >ssh.pub
	run --separate-stderr run_pack verify --trust admin.pub --trust ssh.pub s.mcpkg
	[ "$status" -eq 1 ]
	[[ $stderr == *"ssh.pub: not an mcast key file"* ]]
	[ ! -e out4 ]
	run --separate-stderr run_pack create --sign admin.pub -o x.mcpkg tree
	[ "$status" -eq 1 ]
	[[ $stderr == *"admin.pub: a public key where a secret key is wanted"* ]]
	[ ! -e x.mcpkg ]
}

@test "signed packages: a changed payload byte is a damaged chunk (exit 3); usage errors" {
	signed_setup
	cp s.mcpkg d.mcpkg
	flip_byte d.mcpkg 5000
	run --separate-stderr run_pack verify --trust admin.pub d.mcpkg
	[ "$status" -eq 3 ]
	[[ $stderr == *"chunk 0 "* ]]
	run --separate-stderr run_pack extract --trust admin.pub -C out d.mcpkg
	[ "$status" -eq 3 ]
	run --separate-stderr run_pack info --trust admin.pub s.mcpkg
	[ "$status" -eq 2 ]
	[[ $stderr == *"--trust is for verify and extract"* ]]
	run --separate-stderr run_pack verify --sign admin.key s.mcpkg
	[ "$status" -eq 2 ]
	[[ $stderr == *"--sign is for create"* ]]
}

@test "create --sign with --mtime is reproducible; a raw image signs too" {
	run_pack -q keygen -o admin
	mkdir tree && head -c 300000 /dev/urandom >tree/f
	mkdir a b
	run_pack create -q --mtime 1700000000 --sign admin.key -o a/p.mcpkg tree
	run_pack create -q --mtime 1700000000 --sign admin.key -o b/p.mcpkg tree
	cmp a/p.mcpkg b/p.mcpkg
	head -c 1000000 /dev/urandom >img
	run_pack create -q --sign admin.key -z none -o r.mcpkg - <img
	run_pack verify -q --trust admin.pub r.mcpkg
	run_pack extract --trust admin.pub -O r.mcpkg | cmp - img
}

@test "a group-readable secret key signs with a warning" {
	run_pack -q keygen -o admin
	chmod 640 admin.key
	mkdir tree && echo x >tree/f
	run --separate-stderr run_pack create --sign admin.key -o s.mcpkg tree
	[ "$status" -eq 0 ]
	[[ $stderr == *"admin.key: secret key readable or writable by group or others"* ]]
}

@test "extract --trust of a signed tree keeps its device nodes and setuid files; without --trust they are left out" {
	require_root
	run_pack -q keygen -o admin
	mkdir -p os/dev os/usr/bin
	mknod -m 666 os/dev/null c 1 3
	mknod -m 660 os/dev/sda b 8 0
	printf '#!/bin/sh\n' >os/usr/bin/su && chmod 4755 os/usr/bin/su
	run -0 --separate-stderr run_pack create --sign admin.key -o os.mcpkg os
	run -0 --separate-stderr run_pack extract --trust admin.pub -C root os.mcpkg
	[[ $stderr != *"not signed"* ]]
	[ "$(stat -c '%F %t:%T %a' root/dev/null)" = "character special file 1:3 666" ]
	[ "$(stat -c '%F %t:%T %a' root/dev/sda)" = "block special file 8:0 660" ]
	[ "$(stat -c %a root/usr/bin/su)" = 4755 ]
	# The same package without --trust: nobody vouched for it here.
	run -0 --separate-stderr run_pack extract --json -C plain os.mcpkg
	[[ $stderr == *"os.mcpkg: not signed by a --trust key: 2 device nodes skipped, 1 entry without setuid, setgid or capabilities"* ]]
	[[ $output == *'"devices_skipped":2,"privileges_stripped":1'* ]]
	[ -d plain/dev ] && [ -z "$(ls -A plain/dev)" ]
	[ "$(stat -c %a plain/usr/bin/su)" = 755 ]
}

G=239.77.80.1
P=17800

# recv_bg NAME ARG...: mcast-recv into $T/NAME.mcpkg on the ns_lo host, once it listens.
recv_bg() {
	local name=$1
	shift
	bg_start "$name" with_timeout 60 ns_exec local run_recv -g "$G" -p "$P" -o "$T/$name.mcpkg" --timeout 20s "$@"
	wait_for 10 grep -q 'waiting for' "$T/$name.err" || { cat "$T/$name.err" >&2; return 1; }
}

# ends NAME SECS STATUS: NAME exits with STATUS within SECS (its stderr shown when not).
ends() {
	local st=0
	bg_wait "$1" "$2" || st=$?
	[ "$st" -eq "$3" ] || { echo "$1 exited $st, expected $3:" >&2; cat "$T/$1.err" >&2; return 1; }
}

@test "a signed package through a session (SHA-256 chunk digests on the wire) and through repair" {
	require_root
	signed_setup
	ns_lo
	recv_bg r1
	bg_start send with_timeout 60 ns_exec local run_send -g "$G" -p "$P" -r 200M --linger 300ms "$T/s.mcpkg"
	ends r1 40 0
	ends send 40 0
	cmp r1.mcpkg s.mcpkg
	# A damaged chunk healed, and a package fetched from nothing, from a file source.
	cp s.mcpkg d.mcpkg
	printf 'XY' | dd of=d.mcpkg bs=1 seek=$((4096 + 1200000)) conv=notrunc status=none
	run -3 --separate-stderr run_pack verify d.mcpkg
	# Sent, the damage is named by the sender (its first pass checks the signed payload digest, then
	# finds the chunk), the session ends "damaged", and a --trust receiver keeps only verified chunks.
	recv_bg r2 --trust admin.pub --json
	bg_start dsend with_timeout 60 ns_exec local run_send -g "$G" -p "$P" -r 200M --linger 300ms --json "$T/d.mcpkg"
	ends r2 40 3
	ends dsend 40 3
	grep -q 'd.mcpkg: chunk 1 (bytes [0-9]*-[0-9]*) does not match its digest' dsend.err
	grep -q '"reason":"damaged"' dsend.out
	grep -q 'package is damaged' r2.err
	[ ! -e r2.mcpkg ]
	run -0 --separate-stderr run_repair -s "$T/s.mcpkg" d.mcpkg
	cmp d.mcpkg s.mcpkg
	run -0 --separate-stderr run_repair -s "$T/s.mcpkg" n.mcpkg
	cmp n.mcpkg s.mcpkg
}

@test "a signed image package: verify, extract -O and --to with --trust; another key never touches the target" {
	signed_setup
	head -c 1500000 /dev/urandom >img
	head -c 2200000 /dev/zero >>img
	echo end >>img
	run -0 --separate-stderr run_pack create --image --sign admin.key -o si.mcpkg img
	run -0 --separate-stderr run_pack info si.mcpkg
	[[ $output == *"chunk digests:  sha256-128"* ]]
	run -0 --separate-stderr run_pack verify --trust admin.pub si.mcpkg
	run_pack extract --trust admin.pub -O si.mcpkg | cmp - img
	truncate -s 8M tgt
	run -0 --separate-stderr run_pack extract --trust admin.pub --to tgt si.mcpkg
	cmp -n "$(stat -c %s img)" tgt img
	truncate -s 8M tgt2
	run -1 --separate-stderr run_pack extract --trust other.pub --to tgt2 si.mcpkg
	[[ $stderr == *"which is not trusted"* ]]
	cmp tgt2 <(head -c 8M /dev/zero)
}

@test "mcast-recv --trust: a session signed by another key is not taken and nothing is written; then the real one is" {
	require_root
	signed_setup
	# The forger's package: same name, signed by another key.
	mkdir evil && head -c 2000000 /dev/urandom >evil/big
	run_pack create -q -n s --sign other.key -o e.mcpkg evil
	run_pack create -q -n s -o eu.mcpkg evil
	ns_lo
	recv_bg r1 --trust admin.pub --package s --json
	SNAME=rogue
	bg_start rogue with_timeout 60 ns_exec local run_send -g "$G" -p "$P" -r 100M --linger 20s "$T/e.mcpkg"
	wait_for 15 grep -q 'refused: signed by key' "$T/r1.err"
	[ ! -s r1.mcpkg.part ] && [ ! -e r1.mcpkg ]
	bg_kill rogue
	# An unsigned one of the same name is refused as well.
	bg_start rogue2 with_timeout 60 ns_exec local run_send -g "$G" -p "$P" -r 100M --linger 20s "$T/eu.mcpkg"
	wait_for 15 grep -q 'refused: not signed' "$T/r1.err"
	[ ! -s r1.mcpkg.part ] && [ ! -e r1.mcpkg ]
	bg_kill rogue2
	bg_start send with_timeout 60 ns_exec local run_send -g "$G" -p "$P" -r 100M --linger 300ms "$T/s.mcpkg"
	ends r1 40 0
	ends send 40 0
	cmp r1.mcpkg s.mcpkg
	# Nothing but a forger until --timeout: exit 3, nothing kept.
	recv_bg r2 --trust admin.pub --timeout 4s
	bg_start rogue3 with_timeout 60 ns_exec local run_send -g "$G" -p "$P" -r 100M --linger 20s "$T/e.mcpkg"
	ends r2 30 3
	grep -q 'refused: signed by key' r2.err
	[ ! -e r2.mcpkg.part ] && [ ! -e r2.mcpkg ]
	bg_kill rogue3
	# A bad key file: exit 1 before anything.
	run -1 --separate-stderr run_recv -g "$G" -p "$P" -o r3.mcpkg --trust admin.key --timeout 1s
	[[ $stderr == *"admin.key: a secret key where a public key is wanted"* ]]
	[ ! -e r3.mcpkg.part ]
}

@test "mcast-repair --trust: a source of another key's package is refused before the head is written; the trusted one repairs" {
	signed_setup
	mkdir evil && head -c 2000000 /dev/urandom >evil/big
	run_pack create -q -n s --sign other.key -o e.mcpkg evil
	mkdir bad good && cp e.mcpkg bad/n.mcpkg && cp s.mcpkg good/n.mcpkg
	# Only the forger's source: refused, nothing written, exit 1 (no source can serve this).
	run -1 --separate-stderr run_repair --trust admin.pub -s "$T/bad/" n.mcpkg
	[[ $stderr == *"refused: signed by key"* ]]
	[ ! -e n.mcpkg ]
	[ ! -s n.mcpkg.part ]
	# The forger's first, then the trusted source: the trusted package.
	run -0 --separate-stderr run_repair --trust admin.pub -s "$T/bad/" -s "$T/good/" n.mcpkg
	cmp n.mcpkg s.mcpkg
	# A local package another key signed: refused before any source is asked.
	cp e.mcpkg d.mcpkg
	printf 'XY' | dd of=d.mcpkg bs=1 seek=$((4096 + 1000)) conv=notrunc status=none
	cp d.mcpkg d0.mcpkg
	run -1 --separate-stderr run_repair --trust admin.pub -s "$T/good/n.mcpkg" d.mcpkg
	[[ $stderr == *"refused: signed by key"* ]]
	cmp d.mcpkg d0.mcpkg
	run -1 --separate-stderr run_repair --trust nothing.pub -s "$T/good/" x.mcpkg
	[[ $stderr == *"nothing.pub: No such file"* ]]
}

# summary NAME KEY: the number KEY of the --json summary in NAME.out (sed: a python per look-up
# cost a second or two on the shared machine).
summary() {
	sed -n 's/^{"event":"summary",.*"'"$2"'":\([0-9.]*\)[,}].*/\1/p' "$T/$1.out"
}

# forger NAME KIND HOST [ARG...]: tests/udp-tool.py forge KIND (no key) on HOST, started before the
# session: it learns the session from the first announcement and forges at once, until the session's
# END (or --seconds), so every datagram it counts went out while the session ran ("forged=N" in NAME.out).
forger() {
	local name=$1 kind=$2 host=$3 ifc=()
	shift 3
	[ "$host" = local ] || ifc=(-i eth0)
	bg_start "$name" with_timeout 60 ns_exec "$host" udp_tool forge "$kind" "$G" "$P" "${ifc[@]}" "$@"
	wait_for 10 grep -q ready "$T/$name.err" || { cat "$T/$name.err" >&2; return 1; }
}

forged() { sed -n 's/^forged=//p' "$T/$1.out"; }

# key_session BYTES: the session key sk, p.mcpkg of BYTES random bytes (stored), and the ns_lo host.
key_session() {
	run_pack -q keygen --session -o sk || return 1
	head -c "$1" /dev/urandom >img
	run_pack create -q -z none -n img -o p.mcpkg - <img || return 1
	ns_lo
}

@test "--session-key: a forged END stops a receiver without the key, not one with it; others' datagrams are dropped and counted" {
	require_root
	key_session 3000000
	# Without keys the forged END works: that is the attack.
	recv_bg r0 --json
	forger f0 end local --seconds 3 --gap 0.05
	bg_start send0 with_timeout 60 ns_exec local run_send -g "$G" -p "$P" -r 4M --linger 300ms "$T/p.mcpkg"
	ends r0 20 3
	grep -q 'the session ended' r0.err
	bg_kill send0
	ends f0 20 0
	# With the key on both sides the same ENDs, ENDs with a made-up trailer and garbage change nothing.
	recv_bg r1 --json --session-key sk
	forger f1 end local --seconds 30 --gap 0.05
	bg_start send with_timeout 60 ns_exec local run_send -g "$G" -p "$P" -r 6M --linger 300ms --session-key sk --json "$T/p.mcpkg"
	ends r1 40 0
	ends send 40 0
	ends f1 20 0
	cmp r1.mcpkg p.mcpkg
	# Counted where they arrived: ENDs at the receiver (and garbage on the feedback port, which it
	# hears too); garbage at the sender. The forger went first, so all came during the session.
	n=$(forged f1)
	[ "$n" -ge 30 ]
	[ "$(summary r1 auth_failed)" -ge $((n / 2)) ]
	[ "$(summary send auth_failed)" -ge $((n / 6)) ] # a third of them went to it: the garbage
	[ "$(summary send auth_replayed)" -eq 0 ]
	grep -q 'datagrams dropped by the session key' r1.err
	grep -q 'datagrams dropped by the session key' send.err
	# A receiver with the wrong key, or none, takes nothing and is not counted.
	run_pack -q keygen --session -o sk2
	recv_bg r2 --session-key sk2 --timeout 4s
	bg_start send2 with_timeout 60 ns_exec local run_send -g "$G" -p "$P" -r 100M --linger 300ms --session-key sk --json "$T/p.mcpkg"
	ends r2 30 3
	ends send2 30 0
	[ ! -e r2.mcpkg ]
	grep -q '"receivers":0' send2.out
	# A key file of the wrong size is an error before anything.
	head -c 31 /dev/urandom >short.key
	run -1 --separate-stderr run_send --session-key short.key p.mcpkg
	[[ $stderr == *"short.key: a session key is exactly 32 bytes"* ]]
}

@test "--session-key: a forged LEAVE stops a receiver without the key, not one with it" {
	require_root
	key_session 2000000
	# Without keys: CTRL LEAVE to the receiver id its HELLO gave away, and it stops (exit 3, state kept).
	recv_bg r0
	forger f0 leave local --seconds 5 --gap 0.05
	bg_start send0 with_timeout 60 ns_exec local run_send -g "$G" -p "$P" -r 4M --linger 300ms "$T/p.mcpkg"
	ends r0 20 3
	grep -q 'told to leave by the sender' r0.err
	[ -e r0.mcpkg.part ] && [ ! -e r0.mcpkg ]
	bg_kill send0
	ends f0 20 0
	# With the key on both sides the same LEAVEs, sent to the receiver's real id, change nothing.
	recv_bg r1 --json --session-key sk
	forger f1 leave local --seconds 30 --gap 0.05
	bg_start send with_timeout 60 ns_exec local run_send -g "$G" -p "$P" -r 10M --linger 300ms --session-key sk "$T/p.mcpkg"
	ends r1 40 0
	ends send 40 0
	ends f1 20 0
	cmp r1.mcpkg p.mcpkg
	# The forger heard the receiver's id and sent LEAVEs during the session; each was dropped and counted.
	[ "$(sed -n 's/^receivers=//p' "$T/f1.out")" -ge 1 ]
	n=$(forged f1)
	[ "$n" -ge 10 ]
	[ "$(summary r1 auth_failed)" -ge $((n / 2)) ]
	! grep -q 'told to leave' r1.err
}

@test "mcast-sched --session-key: forged hellos start nothing; a receiver with the key is counted" {
	require_root
	hello=$T/mc-hello
	(cd "$MCAST_ROOT" && ${CC:-cc} -std=c11 -D_GNU_SOURCE -O1 -Ilib -o "$hello" tests/tools/mc-hello.c \
		lib/wire.c lib/net.c lib/auth.c lib/crypto.c lib/exitcode.c lib/log.c lib/clock.c lib/opt.c -lcrypto -lxxhash -lm)
	run_pack -q keygen --session -o sk
	ns_lo
	bg_start sched with_timeout 30 ns_exec local run_sched -g "$G" -p "$P" --session-key sk --skip-empty \
		--min-clients 1 --max-wait 3s --json -- sh -c 'echo started clients=$MCAST_CLIENTS'
	wait_for 10 grep -q '"event":"wait"' "$T/sched.out"
	# 50 forged receivers, 5 hellos each: well-formed, without the key.
	ip netns exec "$(ns_name local)" timeout 20 "$hello" -g "$G" -p "$P" -k 50 -c 5 -w 50
	ends sched 20 3
	! grep -q started "$T/sched.out"
	grep -q 'dropped by the session key' sched.err
	grep -q '"result":"empty"' sched.out
	n=$(summary sched auth_failed)
	[ "$n" -ge 200 ] && [ "$n" -le 250 ] # 250 sent on lo: all or nearly
	# A real receiver with the key starts it.
	bg_start sched2 with_timeout 30 ns_exec local run_sched -g "$G" -p "$P" --session-key sk --skip-empty \
		--min-clients 1 --max-wait 20s -- sh -c 'echo started clients=$MCAST_CLIENTS'
	recv_bg r1 --session-key sk --timeout 3s
	ends sched2 20 0
	grep -q 'started clients=1' "$T/sched2.out"
}

# A LAN of four hosts: h1 sends, h2 and h3 receive, h4 is the hostile host without the key. Makes
# the session key sk and p.mcpkg (2 MiB of random bytes, stored: as many bytes on the wire).
hostile_lan() {
	require_root
	run_pack -q keygen --session -o sk
	head -c $((2 << 20)) /dev/urandom >img
	run_pack create -q -z none -n img -o p.mcpkg - <img
	lan_create 4
}

# lan_recv NAME HOST ARG...: mcast-recv --json into $T/NAME.mcpkg on HOST, once it listens.
lan_recv() {
	local name=$1 host=$2
	shift 2
	bg_start "$name" with_timeout 60 ns_exec "$host" run_recv -g "$G" -p "$P" -i eth0 -o "$T/$name.mcpkg" \
		--timeout 20s --json "$@"
	wait_for 10 grep -q 'waiting for' "$T/$name.err" || { cat "$T/$name.err" >&2; return 1; }
}

# lan_session SUFFIX FORGE-KIND RATE [KEY-OPTION...]: receivers r2SUFFIX, r3SUFFIX, the forger fSUFFIX
# (four forged receivers) and the sender sendSUFFIX (-r RATE) of p.mcpkg, all to their end; both
# receivers complete and equal. Without a key option the attack works: the forger stops after 1.5 s
# so that the session ends, and the sender exits 3 when it counted forged receivers (silent then).
lan_session() {
	local s=$1 kind=$2 rate=$3 secs=30 st=0
	shift 3
	[ $# -gt 0 ] || secs=1.5
	[ $# -gt 0 ] || [ "$kind" = data ] || st=3
	lan_recv "r2$s" h2 "$@"
	lan_recv "r3$s" h3 "$@"
	forger "f$s" "$kind" h4 --seconds "$secs" --gap 0.005 --receivers 4
	bg_start "send$s" with_timeout 90 ns_exec h1 run_send -g "$G" -p "$P" -i eth0 -r "$rate" --linger 300ms \
		--peer-timeout 2s --json "$@" "$T/p.mcpkg"
	ends "send$s" 80 "$st"
	ends "r2$s" 20 0
	ends "r3$s" 20 0
	ends "f$s" 20 0
	cmp "r2$s.mcpkg" p.mcpkg
	cmp "r3$s.mcpkg" p.mcpkg
}

# attack_legs: whether to run the sessions without a key, which show that each forger does harm
# (the ASan run, slower, leaves them out: the keyed sessions are what it checks).
attack_legs() { [ "${MCAST_RUN_MODE:-plain}" != asan ]; }

# sent_rate NAME: the average rate of sender NAME in bit/s (bytes sent over its seconds, from --json).
sent_rate() {
	awk -v b="$(summary "$1" bytes_sent)" -v s="$(summary "$1" seconds)" 'BEGIN { printf "%d\n", b * 8 / s }'
}

@test "hostile host: forged overrun reports cut the rate without the key; with it the rate stays at -r" {
	hostile_lan
	# The attack: four forged receivers report ever more kernel overruns.
	if attack_legs; then
		lan_session 0 overrun 8M
		[ "$(summary send0 rate_cuts)" -gt 0 ]
		[ "$(summary send0 lowest_rate)" -lt 8000000 ]
	fi
	# With the key: not one cut, and the rate at -r (never above).
	lan_session 1 overrun 8M --session-key sk
	n=$(forged f1)
	[ "$n" -ge 20 ]
	[ "$(summary send1 rate_cuts)" -eq 0 ]
	[ "$(summary send1 lowest_rate)" -eq 8000000 ]
	[ "$(sent_rate send1)" -le 8000000 ]
	[ "$(summary send1 auth_failed)" -ge $((n / 2)) ]
	[ "$(summary send1 nacks)" -eq 0 ]
}

@test "hostile host: a forged NACK flood makes the sender resend the package without the key; with it nothing more is sent" {
	hostile_lan
	# The attack: four forged receivers ask for every block, whole, 200 times a second, for 1.5 s.
	pkg=$(stat -c %s p.mcpkg)
	if attack_legs; then
		lan_session 0 nack 8M
		[ "$(summary send0 repair_symbols)" -gt 500 ]
		[ "$(summary send0 bytes_sent)" -gt $((pkg * 21 / 20)) ]
	fi
	# With the key: the bytes of one clean pass (the receivers were not held up by repair for
	# others), at or below -r.
	lan_session 1 nack 8M --session-key sk
	n=$(forged f1)
	[ "$n" -ge 20 ]
	[ "$(summary send1 bytes_sent)" -le $((pkg * 21 / 20)) ]
	[ "$(summary send1 repair_symbols)" -eq 0 ]
	[ "$(summary send1 passes)" -eq 1 ]
	[ "$(sent_rate send1)" -le 8000000 ]
	[ "$(summary send1 auth_failed)" -ge $((n / 2)) ]
	for r in r21 r31; do
		[ "$(summary $r nacks)" -eq 0 ]
	done
}

@test "hostile host: forged data symbols for real blocks spoil chunks without the key; with it every chunk verifies first time" {
	hostile_lan
	# The attack: random bytes as symbols of the package's real blocks, random ESIs.
	if attack_legs; then
		lan_session 0 data 8M
		[ $(($(summary r20 bad_chunks) + $(summary r30 bad_chunks))) -gt 0 ]
	fi
	# With the key: dropped before decoding, so no chunk fails its digest and nothing is resent.
	lan_session 1 data 8M --session-key sk
	n=$(forged f1)
	[ "$n" -ge 100 ]
	for r in r21 r31; do
		[ "$(summary $r bad_chunks)" -eq 0 ]
		[ "$(summary $r auth_failed)" -ge $((n / 2)) ]
	done
	[ "$(summary send1 repair_symbols)" -eq 0 ]
}

@test "hostile host: a rogue mcast-send of another package with the same name and another session key is never taken" {
	hostile_lan
	run_pack -q keygen --session -o rogue.key
	head -c $((8 << 20)) /dev/urandom >evil
	run_pack create -q -z none -n img -o e.mcpkg - <evil
	lan_recv r2 h2 --session-key sk --package img
	lan_recv r3 h3 --session-key sk --package img
	# The rogue first, on the same group and port: its package has the name the receivers ask for.
	bg_start rogue with_timeout 60 ns_exec h4 run_send -g "$G" -p "$P" -i eth0 -r 20M --linger 20s --json \
		--session-key rogue.key "$T/e.mcpkg"
	wait_for 10 grep -q '"event":"start"' "$T/rogue.out"
	bg_start send with_timeout 60 ns_exec h1 run_send -g "$G" -p "$P" -i eth0 -r 20M --linger 300ms --json \
		--session-key sk "$T/p.mcpkg"
	ends send 40 0
	ends r2 20 0
	ends r3 20 0
	bg_kill rogue
	cmp r2.mcpkg p.mcpkg
	cmp r3.mcpkg p.mcpkg
	for r in r2 r3; do
		[ "$(summary $r auth_failed)" -gt 0 ]
		[ "$(summary $r bad_chunks)" -eq 0 ]
	done
	! grep -q '"event":"joined"' rogue.out
}
