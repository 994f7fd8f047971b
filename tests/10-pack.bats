#!/usr/bin/env bats
# tests/10-pack.bats: mcast-pack end to end: usage, round trips, reproducibility, hostile and bad input.

bats_require_minimum_version 1.5.0
load helper

setup() {
	T=$BATS_TEST_TMPDIR
	cd "$T" || return 1
}

# A tree with what a package must keep: modes, symlinks, hard links, empty file and directory.
make_tree() {
	mkdir -p "$1/sub/empty" "$1/deep/er/est"
	printf 'hello\n' >"$1/a.txt"
	head -c 300000 /dev/urandom >"$1/sub/random.bin"
	: >"$1/sub/empty-file"
	ln -s a.txt "$1/link"
	ln "$1/a.txt" "$1/hard"
	printf '#!/bin/sh\n' >"$1/deep/er/est/run.sh"
	chmod 750 "$1/deep/er/est/run.sh"
	chmod 710 "$1/deep/er"
}

# Python rewriting a package in place: kind (make a raw -z none package a tar one) or a lying chunk count.
# With "keepid" the header id is left alone, else it is recomputed with xxhsum so only the lie remains.
patch_pkg() {
	python3 - "$@" <<'EOF'
import struct, subprocess, sys
path, what = sys.argv[1], sys.argv[2]
keep = len(sys.argv) > 3
b = bytearray(open(path, 'rb').read())
mlen = struct.unpack('>Q', b[24:32])[0]
m = b[64:64 + mlen]
nl = struct.unpack('>H', m[6:8])[0]
o = 8 + nl
vl = struct.unpack('>H', m[o:o + 2])[0]
o += 2 + vl  # ctime 8, compression 1, kind 1, chunk size 4, payload size 8, chunk count 4
if what == 'tar':
    m[o + 9] = 1
elif what == 'count':
    n = struct.unpack('>I', m[o + 22:o + 26])[0]
    m[o + 22:o + 26] = struct.pack('>I', n + 1)
elif what == 'payload':
    n = struct.unpack('>Q', m[o + 14:o + 22])[0]
    m[o + 14:o + 22] = struct.pack('>Q', n * 3)
b[64:64 + mlen] = m
if not keep:
    h = subprocess.run(['xxhsum', '-H2', '-'], input=bytes(m), capture_output=True, check=True).stdout.split()[0]
    b[48:64] = bytes.fromhex(h.decode())
open(path, 'wb').write(b)
EOF
}

# Wraps a tar file into a package of kind tar, bypassing create's own sorted writer.
tar_to_pkg() {
	run_pack create -q -z none -o "$2" - <"$1" && patch_pkg "$2" tar
}

# via_pipe PKG OUT CREATE-OPTION...: the package a pipe gives for PKG's payload, made a tree one
# again. A pipe's payload is written from offset 0 and moved behind the manifest after: the layout
# every tree had before create estimated a tree's size, so this is the package it used to give.
via_pipe() {
	local pkg=$1 out=$2
	shift 2
	run_pack extract -O "$pkg" | run_pack create -q "$@" -o "$out" - && patch_pkg "$out" tar
}

payload_size() {
	run_pack info --json "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["payload_size"])'
}

# tight_tree DIR SIZE CREATE-OPTION...: writes DIR/pad so that the tree's payload is SIZE bytes
# exactly (SIZE - the payload without it must be a multiple of 512: a pad of N such bytes adds N).
tight_tree() {
	local dir=$1 want=$2
	shift 2
	: >"$dir/pad"
	run_pack create -q "$@" -o "$dir.fit.mcpkg" "$dir" || return 1
	head -c $((want - $(payload_size "$dir.fit.mcpkg"))) /dev/urandom >"$dir/pad"
	run_pack create -q "$@" -o "$dir.fit.mcpkg" "$dir" || return 1
	[ "$(payload_size "$dir.fit.mcpkg")" -eq "$want" ] && rm "$dir.fit.mcpkg"
}

# A tree whose entries need pax extended headers of many kinds: long names and link targets,
# non-ASCII names, holes, a large uid, times outside 32 bits (with --mtime 4000000000), extended
# attributes where the file system has them; hard links.
pax_tree() {
	local long
	long=$(printf 'n%.0s' $(seq 150))
	mkdir -p "$1/$(printf 'd%.0s' $(seq 120))/sub" "$1/empty"
	for i in $(seq 20); do printf '%s\n' "$i" >"$1/$i-$long"; done
	printf 'deep\n' >"$1/$(printf 'd%.0s' $(seq 120))/sub/$long"
	ln "$1/1-$long" "$1/hard-to-long"
	ln "$1/2-$long" "$1/hard2"
	ln -s "$long" "$1/symlink-long"
	printf 'u\n' >"$1/ünïcödé"
	ln -s "ünïcödé" "$1/to-unicode"
	dd if=/dev/urandom of="$1/holes" bs=4096 seek=100 count=3 status=none
	truncate -s 3M "$1/holes"
	truncate -s 1M "$1/all-hole"
	if [ "$(id -u)" -eq 0 ]; then
		printf 'id\n' >"$1/big-uid" && chown 300000:400000 "$1/big-uid"
	fi
	printf 'f\n' >"$1/future" && touch -d @4100000000 "$1/future"
	printf 'p\n' >"$1/past" && touch -d @-100.5 "$1/past"
	if command -v setfattr >/dev/null; then
		setfattr -n user.mcast -v "$(head -c 600 /dev/zero | tr '\0' x)" "$1/3-$long" 2>/dev/null || true
		setfattr -n 'user.odd=name%' -v 0x00ff "$1/empty" 2>/dev/null || true
	fi
}

# in_tmpfs SIZE OUT CMD...: runs CMD with ./small a fresh tmpfs of SIZE, in a private mount
# namespace, and copies small/p.mcpkg to OUT when CMD succeeds. A tmpfs moves no blocks: a payload
# written where it does not belong is copied into a second file, which takes twice the room.
in_tmpfs() {
	local size=$1 out=$2 ns=(unshare -m)
	shift 2
	[ "$(id -u)" -eq 0 ] || ns=(unshare -rm)
	mkdir -p small
	"${ns[@]}" sh -c 'mount -t tmpfs -o size="$1" tmpfs small || exit 99; out=$2; shift 2
		"$@" && cp small/p.mcpkg "$out"' sh "$size" "$out" "$@"
}

mount_ns_or_skip() {
	command -v unshare >/dev/null || skip "no unshare"
	if [ "$(id -u)" -eq 0 ]; then unshare -m true; else unshare -rm true; fi 2>/dev/null ||
		skip "cannot make a mount namespace"
}

# Runs "$@" as nobody when root (root reads and writes everything), else as is.
as_user() {
	if [ "$(id -u)" -eq 0 ]; then
		setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"
	else
		"$@"
	fi
}

# A scratch directory nobody can use (bats' own are private to root).
open_scratch() {
	S=$(mktemp -d /tmp/mcast-pack-test.XXXXXX)
	chmod 755 "$S"
	echo "$S" >>"$MC_STATE/scratch"
}

teardown() {
	if [ -f "$MC_STATE/scratch" ]; then
		while read -r d; do chmod -R u+rwx "$d" 2>/dev/null; rm -rf "$d"; done <"$MC_STATE/scratch"
	fi
	mc_cleanup
}

@test "pack: --help prints usage on stdout and exits 0" {
	run -0 --separate-stderr run_pack --help
	[[ $output == *"usage: mcast-pack create"* ]]
	[[ $output == *"mcast-pack verify"* ]]
	[ -z "$stderr" ]
	run -0 --separate-stderr run_pack create -h
	[[ $output == *"usage:"* ]]
}

@test "pack: --version prints the version, -V is not it" {
	run -0 --separate-stderr run_pack --version
	[[ $output == mcast-pack\ [0-9]* ]]
	run -2 --separate-stderr run_pack -V
	[ -z "$output" ]
}

@test "pack: usage errors exit 2 and name the option" {
	run -2 --separate-stderr run_pack
	[[ $stderr == *usage:* ]]
	[ -z "$output" ]
	run -2 --separate-stderr run_pack frobnicate x
	[[ $stderr == *frobnicate* ]]
	run -2 --separate-stderr run_pack create -o x.mcpkg -l x .
	[[ $stderr == "mcast-pack: -l 'x': zstd level must be a number from 1 to 22"* ]]
	run -2 --separate-stderr run_pack create -o x.mcpkg --chunk-size 5x .
	[[ $stderr == "mcast-pack: --chunk-size '5x': must be a size from 64K to 64M, a multiple of 4K"* ]]
	run -2 --separate-stderr run_pack create -o x.mcpkg --chunk-size 1K .
	[[ $stderr == "mcast-pack: --chunk-size '1K': must be a size from 64K to 64M"* ]]
	run -2 --separate-stderr run_pack create -o x.mcpkg -z lz4 .
	[[ $stderr == "mcast-pack: -z 'lz4': compression must be zstd, gzip, xz or none"* ]]
	run -2 --separate-stderr run_pack create -o x.mcpkg -j -1 .
	[[ $stderr == "mcast-pack: -j '-1': threads must be a number from 0 to 256"* ]]
	run -2 --separate-stderr run_pack create -o x.mcpkg -z gzip -l 12 .
	[[ $stderr == "mcast-pack: -l '12': gzip level must be a number from 0 to 9"* ]]
	run -2 --separate-stderr run_pack create -o x.mcpkg --mtime yesterday .
	[[ $stderr == "mcast-pack: --mtime 'yesterday': must be seconds since the epoch"* ]]
	run -2 --separate-stderr run_pack create .
	[[ $stderr == *"-o"* ]]
	run -2 --separate-stderr run_pack create -o x.mcpkg
	run -2 --separate-stderr run_pack info a b
	run -2 --separate-stderr run_pack info -o x a
	run -2 --separate-stderr run_pack verify -C dir a
	run -2 --separate-stderr run_pack --bogus
	SOURCE_DATE_EPOCH=soon run -2 --separate-stderr run_pack create -o x.mcpkg .
	[[ $stderr == "mcast-pack: SOURCE_DATE_EPOCH 'soon': must be seconds since the epoch"* ]]
	[ ! -e x.mcpkg ]
}

@test "pack: a bad -n NAME, -V VERSION or PATH - is a usage error naming it, nothing written" {
	make_tree tree
	local long
	long=$(printf 'n%.0s' $(seq 300))
	run -2 --separate-stderr run_pack create -o t.mcpkg -n "$long" tree
	[ -z "$output" ]
	[[ $stderr == "mcast-pack: -n '$long': longer than 255 bytes"* && $stderr == *usage:* ]]
	run -2 --separate-stderr run_pack create -o t.mcpkg -V "$long" tree
	[[ $stderr == "mcast-pack: -V '$long': longer than 255 bytes"* ]]
	run -2 --separate-stderr run_pack create -o t.mcpkg -n "$(printf 'a\tb')" tree
	[[ $stderr == "mcast-pack: -n 'a?b': control characters are not allowed"* ]]
	run -2 --separate-stderr run_pack create -o t.mcpkg -V "$(printf '1\n2')" tree
	[[ $stderr == "mcast-pack: -V '1?2': control characters are not allowed"* ]]
	run -2 --separate-stderr run_pack create -o t.mcpkg - tree
	[[ $stderr == "mcast-pack: PATH -: standard input can only be packed alone"* ]]
	# checked before stdin is read: the image below is never consumed
	run -2 --separate-stderr run_pack create -o t.mcpkg -n "$long" - < <(printf 'img')
	[[ $stderr == "mcast-pack: -n '$long': longer than 255 bytes"* ]]
	[ ! -e t.mcpkg ]
	[ -z "$(ls -A | grep mcpkg)" ]
	# the limit itself is fine
	run -0 run_pack create -q -o t.mcpkg -n "${long:0:255}" -V "${long:0:255}" tree
	run -0 --separate-stderr run_pack info --json t.mcpkg
	[[ $output == *"\"name\":\"${long:0:255}\""* ]]
}

@test "pack: an empty -n is refused; without -n the name is PKG's base name, never empty" {
	make_tree tree
	run -2 --separate-stderr run_pack create -o t.mcpkg -n '' tree
	[ -z "$output" ]
	[[ $stderr == "mcast-pack: -n '': must not be empty"* ]]
	[ ! -e t.mcpkg ]
	run -2 --separate-stderr run_pack create -o out/ tree
	[[ $stderr == "mcast-pack: -o 'out/': no file name to take the package name from; give -n NAME"* ]]
	run -2 --separate-stderr run_pack create -o '' tree
	[[ $stderr == "mcast-pack: -o '': must not be empty"* ]]
	mkdir out
	run -0 run_pack create -q -o out/win11.mcpkg tree
	run -0 --separate-stderr run_pack info --json out/win11.mcpkg
	[[ $output == *'"name":"win11"'* ]]
	run -0 run_pack create -q -o .mcpkg -V '' tree
	run -0 --separate-stderr run_pack info --json .mcpkg
	[[ $output == *'"name":".mcpkg"'* && $output == *'"version":""'* ]]
}

@test "pack: an unknown option or a missing value names it with the short program name" {
	# run_pack runs the program by its full path: the message has the short name
	run -2 --separate-stderr run_pack --bogus
	[ -z "$output" ]
	[[ $stderr == "mcast-pack: --bogus: unknown option, or its value is missing"* && $stderr == *usage:* ]]
	run -2 --separate-stderr run_pack create --bogus -o x.mcpkg .
	[[ $stderr == "mcast-pack: --bogus: unknown option, or its value is missing"* ]]
	run -2 --separate-stderr run_pack create -x -o x.mcpkg .
	[[ $stderr == "mcast-pack: -x: unknown option, or its value is missing"* ]]
	run -2 --separate-stderr run_pack create -o
	[[ $stderr == "mcast-pack: -o: unknown option, or its value is missing"* ]]
	run -2 --separate-stderr run_pack create -o x.mcpkg --chunk-size
	[[ $stderr == "mcast-pack: --chunk-size: unknown option, or its value is missing"* ]]
	[ ! -e x.mcpkg ]
}

@test "pack: a tree round-trips with modes, links, empty files and directories" {
	asan_covered_elsewhere
	make_tree src
	run -0 run_pack create -q -o t.mcpkg -n tree -V 1.2 src
	run -0 run_pack verify t.mcpkg
	run -0 --separate-stderr run_pack list t.mcpkg
	[[ $output == *"sub/empty-file"* ]]
	[[ $output != *"./"* ]]
	run -0 run_pack extract -C out t.mcpkg
	diff -r src out
	[ "$(stat -c %a out/deep/er/est/run.sh)" = 750 ]
	[ "$(stat -c %a out/deep/er)" = 710 ]
	[ -L out/link ]
	[ "$(readlink out/link)" = a.txt ]
	[ "$(stat -c %i out/a.txt)" = "$(stat -c %i out/hard)" ]
	[ -d out/sub/empty ]
	[ -f out/sub/empty-file ]
	[ ! -s out/sub/empty-file ]
	[ "$(stat -c %Y out/sub/random.bin)" = "$(stat -c %Y src/sub/random.bin)" ]
}

@test "pack: every compression round-trips and info reports it" {
	make_tree src
	for z in zstd gzip xz none; do
		run -0 run_pack create -q -z "$z" -o "$z.mcpkg" src
		run -0 --separate-stderr run_pack info "$z.mcpkg"
		[[ $output == *"compression:    $z"* ]]
		run -0 run_pack extract -C "out-$z" "$z.mcpkg"
		diff -r src "out-$z"
	done
	run -0 run_pack create -q -z zstd -l 19 -j 2 -o lvl.mcpkg src
	run -0 run_pack verify lvl.mcpkg
}

@test "pack: info --json is one object with id, name, version, sizes, chunks, compression" {
	make_tree src
	run -0 run_pack create -q -o j.mcpkg -n jay -V 7 --chunk-size 64K src
	run -0 --separate-stderr run_pack info --json j.mcpkg
	[ "$(printf '%s\n' "$output" | wc -l)" -eq 1 ]
	printf '%s' "$output" | python3 -c '
import json, sys
o = json.load(sys.stdin)
assert o["event"] == "summary" and o["command"] == "info", o
assert o["name"] == "jay" and o["version"] == "7", o
assert len(o["id"]) == 32 and o["compression"] == "zstd" and o["kind"] == "tar"
assert o["chunk_size"] == 65536 and o["chunks"] == (o["payload_size"] + 65535) // 65536
assert o["file_size"] == o["payload_offset"] + o["payload_size"] and o["payload_offset"] % 4096 == 0
'
	id=$(printf '%s' "$output" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
	run -0 --separate-stderr run_pack create --json -o j2.mcpkg src
	printf '%s' "$output" | python3 -c 'import json,sys; o=json.load(sys.stdin); assert o["event"]=="summary" and o["command"]=="create" and len(o["id"])==32'
	# The id is the XXH3-128 of the manifest, as mcast-package(5) says.
	mlen=$(python3 -c 'import struct,sys; print(struct.unpack(">Q", open(sys.argv[1],"rb").read()[24:32])[0])' j.mcpkg)
	[ "$(tail -c +65 j.mcpkg | head -c "$mlen" | xxhsum -H2 - | cut -d' ' -f1)" = "$id" ]
}

@test "pack: --json ends with a summary naming the command also when it fails" {
	run -1 --separate-stderr run_pack verify --json /etc/hostname
	[ "$output" = '{"event":"summary","v":1,"result":"error","command":"verify","path":"/etc/hostname","exit":1}' ]
	[[ $stderr == *"/etc/hostname"* ]]
	run -1 --separate-stderr run_pack list --json "$BATS_TEST_TMPDIR/none.mcpkg"
	[ "$output" = '{"event":"summary","v":1,"result":"error","command":"list","path":"'"$BATS_TEST_TMPDIR"'/none.mcpkg","exit":1}' ]
	run -1 --separate-stderr run_pack create --json -o "$BATS_TEST_TMPDIR/no/dir/p.mcpkg" "$BATS_TEST_TMPDIR"
	[ "$output" = '{"event":"summary","v":1,"result":"error","command":"create","path":"'"$BATS_TEST_TMPDIR"'/no/dir/p.mcpkg","exit":1}' ]
}

@test "pack: list --json and list -v describe entries" {
	make_tree src
	run -0 run_pack create -q -o l.mcpkg src
	run -0 --separate-stderr run_pack list --json l.mcpkg
	printf '%s\n' "$output" | python3 -c '
import json, sys
lines = [json.loads(l) for l in sys.stdin]
e = {o["path"]: o for o in lines if o["event"] == "entry"}
s = lines[-1]
assert s["event"] == "summary" and s["command"] == "list" and s["entries"] == len(e) and s["result"] == "complete", s
assert e["link"]["type"] == "symlink" and e["link"]["target"] == "a.txt", e["link"]
assert e["sub/random.bin"]["size"] == 300000
assert e["deep/er/est/run.sh"]["mode"] == 0o750
assert "hardlink" in (e["hard"]["type"], e["a.txt"]["type"])
'
	run -0 --separate-stderr run_pack list -v l.mcpkg
	[[ $output == *"-> a.txt"* ]]
}

@test "pack: a raw image from stdin round-trips byte for byte" {
	head -c 2500000 /dev/urandom >img
	for z in none zstd gzip xz; do
		run -0 run_pack create -q -z "$z" -o "r-$z.mcpkg" -n disk - <img
		run_pack extract -O "r-$z.mcpkg" >back
		cmp img back
		run -0 --separate-stderr run_pack info "r-$z.mcpkg"
		[[ $output == *"kind:           raw"* ]]
		# list says how long the image is, compressed or not (the manifest does not: it is counted)
		run -0 --separate-stderr run_pack list --json "r-$z.mcpkg"
		[[ ${lines[0]} == *'"path":"disk"'*'"size":2500000,'* ]]
	done
	run -0 --separate-stderr run_pack list r-none.mcpkg
	[ "$output" = disk ]
	run -0 run_pack extract -C out r-zstd.mcpkg
	cmp img out/disk
	: | run_pack create -q -o empty.mcpkg -
	run -0 run_pack verify empty.mcpkg
	[ "$(run_pack extract -O empty.mcpkg | wc -c)" -eq 0 ]
}

@test "pack: a raw image from a file, from a pipe and from a file read part-way give the same package" {
	# From a regular file the payload is written in place; from a pipe it is moved behind the manifest.
	head -c 3000000 /dev/urandom >img
	run -0 run_pack create -q -z none --chunk-size 64K --mtime 1700000000 -o file.mcpkg -n disk - <img
	cat img | run_pack create -q -z none --chunk-size 64K --mtime 1700000000 -o pipe.mcpkg -n disk -
	cmp file.mcpkg pipe.mcpkg
	run -0 run_pack verify file.mcpkg
	# stdin already read up to byte 1000000: the image is the rest.
	tail -c +1000001 img >rest
	{ head -c 1000000 >/dev/null; run_pack create -q -z none --chunk-size 64K -o rest.mcpkg -; } <img
	run_pack extract -O rest.mcpkg >back
	cmp rest back
}

@test "pack: several paths, a single file, and a duplicate name is refused" {
	make_tree one
	mkdir two && printf 'x\n' >two/extra
	printf 'solo\n' >solo.txt
	run -0 run_pack create -q -o m.mcpkg one two solo.txt
	run -0 --separate-stderr run_pack list m.mcpkg
	[[ $output == *extra* && $output == *solo.txt* && $output == *a.txt* ]]
	mkdir three && printf 'y\n' >three/a.txt
	run -1 --separate-stderr run_pack create -q -o d.mcpkg one three
	[[ $stderr == *a.txt* ]]
	[ ! -e d.mcpkg ]
	run -2 --separate-stderr run_pack create -q -o d.mcpkg one -
	[[ $stderr == "mcast-pack: PATH -: standard input can only be packed alone"* ]]
	[ ! -e d.mcpkg ]
}

@test "pack: SOURCE_DATE_EPOCH and --mtime give byte-identical packages" {
	asan_covered_elsewhere
	make_tree src
	mkdir a b c
	SOURCE_DATE_EPOCH=1700000000 run -0 run_pack create -q -o a/p.mcpkg src
	touch src/a.txt src/sub
	sleep 1
	SOURCE_DATE_EPOCH=1700000000 run -0 run_pack create -q -j 2 -o b/p.mcpkg src
	cmp a/p.mcpkg b/p.mcpkg
	run -0 run_pack create -q --mtime 1700000000 -o c/p.mcpkg src
	cmp a/p.mcpkg c/p.mcpkg
	for z in gzip xz none; do
		run -0 run_pack create -q -z "$z" --mtime 1 -o "a/$z.mcpkg" src
		run -0 run_pack create -q -z "$z" --mtime 1 -o "b/$z.mcpkg" src
		cmp "a/$z.mcpkg" "b/$z.mcpkg"
	done
	run -0 --separate-stderr run_pack info a/p.mcpkg
	[[ $output == *"2023-11-14T22:13:20Z"* ]]
}

@test "pack: a tree stored as it is is written in place: the package a pipe gives, byte for byte" {
	# Name b, 64K chunks: payload_off is 4096 up to 248 chunks and 8192 from one byte more, so lo
	# and hi put the payload on either side of that boundary, where an estimate 512 bytes off
	# (one tar block) would move it. make_tree needs no extended header: create's estimate is exact.
	local opts=(-z none --chunk-size 64K --mtime 4000000000 -n b)
	mkdir empty
	make_tree tiny
	mkdir one && head -c 65536 /dev/urandom >one/f
	mkdir onepay && head -c $((65536 - 1536)) /dev/urandom >onepay/f
	make_tree lo
	tight_tree lo $((248 * 65536)) "${opts[@]}"
	make_tree hi
	tight_tree hi $((248 * 65536 + 512)) "${opts[@]}"
	for t in empty tiny one onepay lo hi; do
		run -0 run_pack create -q "${opts[@]}" -o "$t.mcpkg" "$t"
		via_pipe "$t.mcpkg" "$t.pipe.mcpkg" "${opts[@]}"
		cmp "$t.mcpkg" "$t.pipe.mcpkg"
		run -0 run_pack verify -q "$t.mcpkg"
	done
	[ "$(payload_size onepay.mcpkg)" -eq 65536 ]
	run -0 run_pack extract -C back hi.mcpkg
	diff -r --no-dereference hi back
	# On a tmpfs, with room for the package once but not for a second copy of its payload: the
	# estimate put it where it belongs, or create would have run out of space.
	mount_ns_or_skip
	for t in lo hi; do
		run -0 --separate-stderr in_tmpfs 20m "$t.tmpfs.mcpkg" \
			$EXEC_PREFIX "$MCAST_BIN/mcast-pack" create -q "${opts[@]}" -o small/p.mcpkg "$t"
		cmp "$t.mcpkg" "$t.tmpfs.mcpkg"
	done
}

@test "pack: a tree whose size was estimated wrong is moved into place: valid, the same bytes" {
	# What create's estimate leaves out: extended headers (long names and targets, non-ASCII
	# names, holes, large ids and times, extended attributes), short past the boundary so that
	# payload_off must grow; and blocks allocated but never written, estimated as data but stored
	# as a hole, so that it must shrink. The second holds only while the blocks are not in the
	# page cache: each create gets them fresh.
	local opts=(-z none --chunk-size 64K --mtime 1700000000 -n b)
	pax_tree pax
	tight_tree pax $((248 * 65536 + 512)) "${opts[@]}"
	mkdir prealloc
	tight_tree prealloc $((247 * 65536)) "${opts[@]}"
	fresh() { rm -f prealloc/unwritten && fallocate -l 65536 prealloc/unwritten; }
	fresh || skip "no fallocate here"
	python3 -c 'import os, sys
try:
	os.lseek(os.open(sys.argv[1], os.O_RDONLY), 0, os.SEEK_DATA)
except OSError:
	sys.exit(0)
sys.exit(1)' prealloc/unwritten || skip "unwritten blocks are not a hole to SEEK_DATA here"
	for t in pax prealloc; do
		[ $t = pax ] || fresh
		run -0 run_pack create -q "${opts[@]}" -o "$t.mcpkg" "$t"
		run -0 run_pack verify "$t.mcpkg"
		run -0 run_pack extract -C "back-$t" "$t.mcpkg"
		diff -r --no-dereference "$t" "back-$t"
		via_pipe "$t.mcpkg" "$t.pipe.mcpkg" "${opts[@]}"
		cmp "$t.mcpkg" "$t.pipe.mcpkg"
	done
	# The estimates did miss across the boundary: short, and 64K too many (the unwritten blocks
	# went in as a hole).
	[ "$(payload_size pax.mcpkg)" -eq $((248 * 65536 + 512)) ]
	[ "$(payload_size prealloc.mcpkg)" -le $((248 * 65536)) ]
	# ext4 and XFS move the payload in the file (fallocate), once each way. (LeakSanitizer cannot
	# run under ptrace: off for a sanitizer build.)
	if command -v strace >/dev/null && [ -z "$EXEC_PREFIX" ] &&
		case $(stat -f -c %T .) in ext2/ext3 | xfs) true ;; *) false ;; esac; then
		for t in pax prealloc; do
			[ $t = pax ] || fresh
			ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
				strace -f -o "$t.trace" -e trace=fallocate,copy_file_range \
				"$MCAST_BIN/mcast-pack" create -q "${opts[@]}" -o "$t.s.mcpkg" "$t"
			cmp "$t.mcpkg" "$t.s.mcpkg"
		done
		grep -q 'FALLOC_FL_INSERT_RANGE, 0, 4096) = 0' pax.trace
		grep -q 'FALLOC_FL_COLLAPSE_RANGE, 0, 4096) = 0' prealloc.trace
		! grep -q copy_file_range pax.trace prealloc.trace
	fi
	# A tmpfs cannot: the payload is copied, which needs room for two.
	mount_ns_or_skip
	for t in pax prealloc; do
		[ $t = pax ] || fresh
		run -0 --separate-stderr in_tmpfs 48m "$t.tmpfs.mcpkg" \
			$EXEC_PREFIX "$MCAST_BIN/mcast-pack" create -q "${opts[@]}" -o small/p.mcpkg "$t"
		cmp "$t.mcpkg" "$t.tmpfs.mcpkg"
		[ $t = pax ] || fresh
		run -1 --separate-stderr in_tmpfs 20m "$t.tmpfs.mcpkg" \
			$EXEC_PREFIX "$MCAST_BIN/mcast-pack" create -q "${opts[@]}" -o small/p.mcpkg "$t"
		[[ $stderr == *"No space left on device"* ]]
	done
}

@test "pack: extract refuses absolute paths, .., symlink escapes and hard links out" {
	mkdir outside dest
	printf 'precious\n' >outside/target
	python3 - "$T" <<'EOF'
import io, sys, tarfile
t = sys.argv[1]
def add(tf, name, data=b"", **kw):
    ti = tarfile.TarInfo(name)
    for k, v in kw.items():
        setattr(ti, k, v)
    ti.size = len(data) if ti.type == tarfile.REGTYPE else 0
    tf.addfile(ti, io.BytesIO(data) if data else None)
with tarfile.open(t + "/evil.tar", "w", format=tarfile.PAX_FORMAT) as tf:
    add(tf, "ok.txt", b"fine\n")
    add(tf, t + "/outside/abs", b"absolute\n")
    add(tf, "../outside/dotdot", b"dotdot\n")
    add(tf, "sub/../../outside/dotdot2", b"dotdot\n")
    add(tf, "esc", type=tarfile.SYMTYPE, linkname="../outside")
    add(tf, "esc/through", b"through\n")
    add(tf, "hl", type=tarfile.LNKTYPE, linkname=t + "/outside/target")
    add(tf, "hl2", type=tarfile.LNKTYPE, linkname="../outside/target")
    add(tf, "last.txt", b"last\n")
EOF
	tar_to_pkg evil.tar evil.mcpkg
	run -0 run_pack verify evil.mcpkg
	run -1 --separate-stderr run_pack extract -C dest evil.mcpkg
	[[ $stderr == *refused* ]]
	[[ $stderr == *dotdot* ]]
	[ "$(cat dest/ok.txt)" = fine ]
	[ "$(cat dest/last.txt)" = last ]
	[ "$(ls outside)" = target ]
	[ "$(cat outside/target)" = precious ]
	[ "$(stat -c %h outside/target)" -eq 1 ]
	[ ! -e "$T/through" ]
}

# craft_special TAR: a hostile tar: a mode-666 twin of /dev/mem, a block device, setuid and setgid
# files, a file capability (cap_net_raw, in libarchive's own pax key) and harmless neighbours.
craft_special() {
	python3 - "$1" <<'EOF'
import base64, io, struct, sys, tarfile
def add(tf, name, data=b"", pax=None, **kw):
    ti = tarfile.TarInfo(name)
    for k, v in kw.items():
        setattr(ti, k, v)
    ti.size = len(data) if ti.type == tarfile.REGTYPE else 0
    if pax:
        ti.pax_headers = {"LIBARCHIVE.xattr." + k: base64.b64encode(v).decode() for k, v in pax.items()}
    tf.addfile(ti, io.BytesIO(data) if data else None)
cap = struct.pack("<5I", 0x02000001, 1 << 13, 0, 0, 0)  # VFS_CAP_REVISION_2, effective, cap_net_raw
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as tf:
    add(tf, "ok.txt", b"fine\n", mode=0o644)
    add(tf, "mem", type=tarfile.CHRTYPE, devmajor=1, devminor=1, mode=0o666)
    add(tf, "sda", type=tarfile.BLKTYPE, devmajor=8, devminor=0, mode=0o666)
    add(tf, "fifo", type=tarfile.FIFOTYPE, mode=0o644)
    add(tf, "shared", type=tarfile.DIRTYPE, mode=0o2775)
    add(tf, "suid", b"#!/bin/sh\n", mode=0o4755)
    add(tf, "sgid", b"#!/bin/sh\n", mode=0o2755)
    add(tf, "ping", b"#!/bin/sh\n", mode=0o755, pax={"security.capability": cap, "user.note": b"hi"})
    add(tf, "last.txt", b"last\n", mode=0o644)
EOF
}

# xattrs FILE: its extended attribute names, sorted, on one line.
xattrs() {
	python3 -c 'import os, sys; print(" ".join(sorted(os.listxattr(sys.argv[1]))))' "$1"
}

@test "pack: an unsigned package extracts no device node and no setuid, setgid or capability, unless --privileged" {
	require_root
	craft_special evil.tar
	tar_to_pkg evil.tar evil.mcpkg
	run -0 --separate-stderr run_pack extract --json -C dest evil.mcpkg
	# One warning with the counts, naming the way to keep them.
	[ "$(grep -c 'not signed by a --trust key' <<<"$stderr")" -eq 1 ]
	[[ $stderr == *"evil.mcpkg: not signed by a --trust key: 2 device nodes skipped, 3 entries without setuid, setgid or capabilities (--privileged keeps them)"* ]]
	[[ $output == *'"refused":0,"devices_skipped":2,"privileges_stripped":3'* ]]
	[ ! -e dest/mem ] && [ ! -e dest/sda ]
	[ "$(stat -c %a dest/suid)" = 755 ]
	[ "$(stat -c %a dest/sgid)" = 755 ]
	[ "$(xattrs dest/ping)" = user.note ]
	# What gives no power is kept: a FIFO, a setgid directory, other attributes, the data.
	[ -p dest/fifo ]
	[ "$(stat -c %a dest/shared)" = 2775 ]
	[ "$(cat dest/ok.txt)$(cat dest/last.txt)" = finelast ]
	# -v names each entry.
	run -0 --separate-stderr run_pack extract -v -C dest2 evil.mcpkg
	[[ $stderr == *"mem: device node skipped"* ]]
	[[ $stderr == *"suid: extracted without its setuid, setgid or capabilities"* ]]
	# --privileged: as tar does as root.
	run -0 --separate-stderr run_pack extract --privileged -C dest3 evil.mcpkg
	[[ $stderr != *"not signed"* ]]
	[ "$(stat -c '%F %t:%T %a' dest3/mem)" = "character special file 1:1 666" ]
	[ "$(stat -c '%F %t:%T' dest3/sda)" = "block special file 8:0" ]
	[ "$(stat -c %a dest3/suid)" = 4755 ]
	[ "$(stat -c %a dest3/sgid)" = 2755 ]
	[ "$(xattrs dest3/ping)" = "security.capability user.note" ]
	# Only for extract into a directory.
	run -2 --separate-stderr run_pack extract --privileged -O evil.mcpkg
	[[ $stderr == *"--privileged goes with extract into a directory"* ]]
	run -2 --separate-stderr run_pack verify --privileged evil.mcpkg
}

# in_small SETUP CMD...: runs CMD in a private mount namespace where ./small is a fresh 1 MiB
# tmpfs, after the shell line SETUP; the number of entries under small/x after goes to ./count.
in_small() {
	local setup=$1
	shift
	unshare -m sh -c 'mount -t tmpfs -o size=1m tmpfs small || exit 99; eval "$1"; shift
		"$@"; rc=$?; find small/x -mindepth 1 | wc -l >count; exit $rc' sh "$setup" "$@"
}

@test "pack: extract onto a read-only or full file system stops at the first entry with one line, exit 1" {
	require_root
	mount_ns_or_skip
	mkdir -p tree small
	for i in $(seq 1 40); do mkdir tree/d$i && printf '%s\n' "$i" >tree/d$i/f; done
	run -0 run_pack create -q -o many.mcpkg tree
	# Read-only: 80 entries, one line naming the first (each was refused on a line of its own).
	run -1 --separate-stderr in_small 'mkdir small/x && mount -o remount,ro small' \
		$EXEC_PREFIX "$MCAST_BIN/mcast-pack" extract -C small/x many.mcpkg
	[ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ]
	[[ $stderr == "mcast-pack: small/x/d1/: Read-only file system" ]]
	# Full: a file that does not fit is an error, never a file cut short or a hole (exit 0 before).
	head -c 3000000 /dev/urandom >tree/big
	run -0 run_pack create -q -o big.mcpkg tree
	run -1 --separate-stderr in_small 'mkdir small/x' \
		$EXEC_PREFIX "$MCAST_BIN/mcast-pack" extract -C small/x big.mcpkg
	[ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ]
	[[ $stderr == "mcast-pack: small/x/big: No space left on device" ]]
	[ "$(cat count)" -le 1 ]
	run -1 --separate-stderr in_small 'mkdir small/x' \
		$EXEC_PREFIX "$MCAST_BIN/mcast-pack" extract --json -C small/x big.mcpkg
	[[ $output == *'"result":"error"'* ]]
}

@test "pack: not a package, missing file, directory: exit 1 naming the file" {
	printf 'just some text, long enough to hold a header and then some more bytes....\n' >text
	for cmd in info list verify extract; do
		run -1 --separate-stderr run_pack "$cmd" text
		[[ $stderr == *"text: not an mcast package"* ]]
		run -1 --separate-stderr run_pack "$cmd" missing.mcpkg
		[[ $stderr == *"missing.mcpkg: No such file"* ]]
	done
	: >zero
	run -1 --separate-stderr run_pack info zero
	[[ $stderr == *zero:* ]]
	run -1 --separate-stderr run_pack info "$T"
	run -1 --separate-stderr run_pack create -o p.mcpkg no-such-dir
	[[ $stderr == *no-such-dir* ]]
	[ ! -e p.mcpkg ]
}

@test "pack: a truncated package is damaged (exit 3) and verify names the missing chunks" {
	head -c 600000 /dev/urandom >img
	run -0 run_pack create -q -z none --chunk-size 64K -o p.mcpkg - <img
	head -c 300000 p.mcpkg >cut.mcpkg
	run -3 --separate-stderr run_pack verify cut.mcpkg
	[[ $stderr == *"cut.mcpkg: chunks 4-9 (bytes "* ]]
	[[ $stderr == *truncated* ]]
	[[ $stderr != *"chunk 3 ("* ]]
	run -3 --separate-stderr run_pack info cut.mcpkg
	[[ $stderr == *cut.mcpkg:*truncated* ]]
	run -3 --separate-stderr run_pack extract -O cut.mcpkg
	head -c 40 p.mcpkg >head.mcpkg
	run -3 --separate-stderr run_pack info head.mcpkg
	head -c 100 p.mcpkg >man.mcpkg
	run -3 --separate-stderr run_pack verify man.mcpkg
	[[ $stderr == *man.mcpkg:* ]]
}

@test "pack: extract -C of a tree damaged in a middle chunk is damaged (exit 3), not an I/O error" {
	mkdir src
	head -c 3000000 /dev/urandom >src/a
	seq 1 200000 >src/b
	run -0 run_pack create -q --chunk-size 64K -o p.mcpkg src
	# a chunk in the middle of file a: libarchive stops inside an entry, with the entry open
	sz=$(stat -c %s p.mcpkg)
	printf 'XXXXXXXX' | dd of=p.mcpkg bs=1 seek=$((sz / 2)) conv=notrunc 2>/dev/null
	run -3 --separate-stderr run_pack extract -C out p.mcpkg
	[[ $stderr == *"p.mcpkg: chunk "*"damaged or missing"* ]]
}

@test "pack: a manifest whose counts lie is refused without trusting them" {
	head -c 300000 /dev/urandom >img
	run -0 run_pack create -q -o p.mcpkg - <img
	cp p.mcpkg count.mcpkg && patch_pkg count.mcpkg count
	run -3 --separate-stderr run_pack info count.mcpkg
	[[ $stderr == *count.mcpkg:*chunk\ count* ]]
	cp p.mcpkg size.mcpkg && patch_pkg size.mcpkg payload
	run -3 --separate-stderr run_pack verify size.mcpkg
	[[ $stderr == *size.mcpkg:* ]]
	cp p.mcpkg id.mcpkg && patch_pkg id.mcpkg count keepid
	run -3 --separate-stderr run_pack info id.mcpkg
	[[ $stderr == *id.mcpkg:* ]]
	# A header claiming a huge manifest: refused before any allocation.
	cp p.mcpkg big.mcpkg
	printf '\377\377\377\377' | dd of=big.mcpkg bs=1 seek=28 conv=notrunc 2>/dev/null
	run -3 --separate-stderr run_pack verify big.mcpkg
	[[ $stderr == *"big.mcpkg: header: manifest length"* ]]
}

@test "pack: a corrupted chunk is named with its byte range, in text and JSON, exit 3" {
	head -c 1000000 /dev/urandom >img
	run -0 run_pack create -q -z none --chunk-size 64K -o p.mcpkg - <img
	off=$(run_pack info --json p.mcpkg | python3 -c 'import json,sys; print(json.load(sys.stdin)["payload_offset"])')
	printf 'XYZ' | dd of=p.mcpkg bs=1 seek=$((off + 5 * 65536 + 100)) conv=notrunc 2>/dev/null
	run -3 --separate-stderr run_pack verify p.mcpkg
	[[ $stderr == *"chunk 5 (bytes $((off + 5 * 65536))-$((off + 6 * 65536 - 1)))"* ]]
	[[ $stderr != *"chunk 4 ("* ]]
	run -3 --separate-stderr run_pack verify --json p.mcpkg
	printf '%s\n' "$output" | python3 -c '
import json, sys
lines = [json.loads(l) for l in sys.stdin]
bad = [o for o in lines if o["event"] == "bad_chunk"]
assert [o["index"] for o in bad] == [5], bad
assert bad[0]["length"] == 65536
s = lines[-1]
assert s["event"] == "summary" and s["command"] == "verify" and s["result"] == "damaged" and s["bad_chunks"] == [5], s
'
	run -3 --separate-stderr run_pack extract -O p.mcpkg
	[[ $stderr == *"chunk 5"* ]]
	make_tree src
	run -0 run_pack create -q -z none --chunk-size 64K -o t.mcpkg src
	printf 'XYZ' | dd of=t.mcpkg bs=1 seek=$((off + 65536 + 10)) conv=notrunc 2>/dev/null
	run -3 --separate-stderr run_pack extract -C out t.mcpkg
	[[ $stderr == *"chunk 1"* ]]
	run -3 --separate-stderr run_pack list t.mcpkg
}

@test "pack: an unreadable directory entry fails naming it, no package left" {
	open_scratch
	make_tree "$S/src"
	chmod -R a+rX "$S/src"
	mkdir "$S/src/locked" && printf 's\n' >"$S/src/locked/secret" && chmod 000 "$S/src/locked"
	mkdir "$S/out" && chmod 777 "$S/out"
	run -1 --separate-stderr as_user "$MCAST_BIN/mcast-pack" create -o "$S/out/p.mcpkg" "$S/src"
	[[ $stderr == *"src/locked: Permission denied"* ]]
	[ -z "$(ls -A "$S/out")" ]
	chmod 700 "$S/src/locked" && chmod 000 "$S/src/locked/secret"
	run -1 --separate-stderr as_user "$MCAST_BIN/mcast-pack" create -o "$S/out/p.mcpkg" "$S/src"
	[[ $stderr == *"locked"* ]]
	[ -z "$(ls -A "$S/out")" ]
}

@test "pack: an output directory that is not writable fails naming the output" {
	open_scratch
	make_tree "$S/src"
	chmod -R a+rX "$S/src"
	mkdir "$S/ro" && chmod 555 "$S/ro"
	run -1 --separate-stderr as_user "$MCAST_BIN/mcast-pack" create -o "$S/ro/p.mcpkg" "$S/src"
	[[ $stderr == *"ro/p.mcpkg"*"Permission denied"* ]]
	[ -z "$(ls -A "$S/ro")" ]
	run -1 --separate-stderr run_pack create -o "$T/no/such/dir/p.mcpkg" "$S/src"
	[[ $stderr == *"p.mcpkg"* ]]
}

@test "pack: a full disk while creating leaves nothing under the final name" {
	command -v unshare >/dev/null || skip "no unshare"
	if [ "$(id -u)" -eq 0 ]; then ns=(unshare -m); else ns=(unshare -rm); fi
	"${ns[@]}" true 2>/dev/null || skip "cannot make a mount namespace"
	mkdir small
	head -c 3000000 /dev/urandom >img
	run -1 --separate-stderr "${ns[@]}" sh -c 'mount -t tmpfs -o size=1m tmpfs small &&
		"$@"; rc=$?; ls -A small >listing; exit $rc' sh \
		$EXEC_PREFIX "$MCAST_BIN/mcast-pack" create -z none -o small/p.mcpkg img
	[[ $stderr == *"small/p.mcpkg: No space left on device"* ]]
	[ ! -s listing ]
	# Enough room for the payload but not for the copy a tmpfs needs (an image from a pipe is
	# written before its size is known, then copied behind the manifest): still clean.
	head -c 700000 /dev/urandom >img2
	run -1 --separate-stderr "${ns[@]}" sh -c 'mount -t tmpfs -o size=1m tmpfs small &&
		cat img2 | "$@"; rc=$?; ls -A small >listing; exit $rc' sh \
		$EXEC_PREFIX "$MCAST_BIN/mcast-pack" create -z none -o small/p.mcpkg -
	[[ $stderr == *"small/p.mcpkg: No space left on device"* ]]
	[ ! -s listing ]
	# The same bytes as a tree: its size is estimated, it is written in place and fits.
	run -0 --separate-stderr "${ns[@]}" sh -c 'mount -t tmpfs -o size=1m tmpfs small &&
		"$@" && ls -A small >listing' sh \
		$EXEC_PREFIX "$MCAST_BIN/mcast-pack" create -q -z none -o small/p.mcpkg img2
	[ "$(cat listing)" = p.mcpkg ]
}

@test "pack: extract creates -C DIR and -O with --json is a usage error" {
	make_tree src
	run -0 run_pack create -q -o p.mcpkg src
	run -0 --separate-stderr run_pack extract --json -C new p.mcpkg
	[[ $output == *'"event":"summary","v":1,"result":"complete","command":"extract"'* ]]
	[ -f new/a.txt ]
	run -2 --separate-stderr run_pack extract -O --json p.mcpkg
	run -0 --separate-stderr run_pack verify --json p.mcpkg
	[[ $output == *'"result":"complete"'* ]]
	run -0 --separate-stderr run_pack -q verify p.mcpkg
	[ -z "$stderr" ]
	run -0 --separate-stderr run_pack verify -q p.mcpkg
	[ -z "$stderr" ]
}

@test "pack: options may follow the paths (verify PKG --json, create DIR -o PKG)" {
	mkdir -p "$BATS_TEST_TMPDIR/t"
	printf 'hello\n' >"$BATS_TEST_TMPDIR/t/a"
	run -0 --separate-stderr run_pack create "$BATS_TEST_TMPDIR/t" -o "$BATS_TEST_TMPDIR/p.mcpkg" -z none
	[ -s "$BATS_TEST_TMPDIR/p.mcpkg" ]
	run -0 --separate-stderr run_pack verify "$BATS_TEST_TMPDIR/p.mcpkg" --json
	[[ $output == *'"result":"complete"'* ]]
	run -0 --separate-stderr run_pack list "$BATS_TEST_TMPDIR/p.mcpkg" -q
	[[ $output == *a* ]]
}

@test "pack rewrap: -o a device node, a symlink to one or a FIFO is refused (exit 2) before anything is read; the node stays" {
	require_root
	run_pack keygen -q --session -o sk
	head -c 100000 /dev/urandom >img
	run_pack create -q --encrypt sk -o e1.mcpkg - <img
	mknod nd4 c 1 3
	ln -s nd4 link
	mkfifo fifo
	for o in nd4 link; do
		run -2 --separate-stderr run_pack rewrap -q --decrypt sk -o $o e1.mcpkg
		[[ $stderr == "mcast-pack: -o '$o': a device node, never replaced by a package file"* ]]
	done
	run -2 --separate-stderr run_pack rewrap -q --decrypt sk -o fifo e1.mcpkg
	[[ $stderr == "mcast-pack: -o 'fifo': a FIFO or socket, not a file"* ]]
	# Before anything is read: a key that is not there is not what stops it.
	run -2 --separate-stderr run_pack rewrap -q --decrypt no-such.key -o nd4 e1.mcpkg
	[[ $stderr == *"a device node"* ]]
	[ "$(stat -c '%F %t,%T' nd4)" = "character special file 1,3" ]
	[ -L link ] && [ -p fifo ]
	# Nothing beside them either: no temporary file was made.
	[ "$(ls -A | grep -c '^\.\?\(nd4\|link\|fifo\)')" -eq 3 ]
	# A regular file is still written.
	run -0 --separate-stderr run_pack rewrap -q --decrypt sk -o ok.mcpkg e1.mcpkg
	run_pack extract -q --decrypt sk -O ok.mcpkg | cmp - img
}
