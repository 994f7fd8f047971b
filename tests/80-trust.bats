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
	[[ $output == '{"event":"summary","command":"keygen","ok":true,"session_key":"s.key"}' ]]
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
