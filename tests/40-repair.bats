#!/usr/bin/env bats
# mcast-repair: partial, damaged and missing packages completed from real
# nginx (and the misbehaving test server) on loopback in a private namespace.

bats_require_minimum_version 1.5.0
load helper

CS=65536   # chunk size of the test package
NCH=40     # full chunks; the payload has a short 41st chunk

setup() {
	require_prog mcast-pack mcast-repair
	cd "$BATS_TEST_TMPDIR" || return 1
	head -c $((NCH * CS + 1234)) /dev/urandom >img
	run_pack create -q -o orig.mcpkg -n img -V 1 -z none --chunk-size 64K - <img
	PO=$(($(stat -c %s orig.mcpkg) - $(stat -c %s img)))  # payload offset
	mkdir -p www
	cp orig.mcpkg www/img.mcpkg
}

# set_chunks FILE BYTE-SOURCE CHUNK...: overwrite chunks with zeros or noise.
set_chunks() {
	local f=$1 src=$2 i
	shift 2
	for i in "$@"; do
		dd if="$src" of="$f" bs=$CS count=1 iflag=fullblock oflag=seek_bytes conv=notrunc \
			seek=$((PO + i * CS)) status=none
	done
}

# partial NAME CHUNK...: NAME.part is the package with CHUNKs zeroed.
partial() {
	local n=$1
	shift
	cp orig.mcpkg "$n.part"
	set_chunks "$n.part" /dev/zero "$@"
}

# write_state PKG CHUNK...: a valid PKG.state (format of lib/state.h) that
# marks every chunk except the ones listed, as mcast-recv leaves it, made
# after PKG.part (whose size and change time it records). SPANS="C:OFF:LEN ..."
# adds spans: parts of unverified chunks already in PKG.part.
write_state() {
	local pkg=$1
	shift
	python3 - "$pkg" "$(run_pack info --json orig.mcpkg)" "${SPANS:-}" "$@" <<'EOF'
import json, os, struct, subprocess, sys
pkg, info, spans, skip = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3].split(), set(map(int, sys.argv[4:]))
n = info["chunks"]
bm = bytearray(n // 8 + 1)
for i in range(n):
    if i not in skip:
        bm[i >> 3] |= 1 << (i & 7)
st = os.stat(pkg + ".part")
body = b"MCSTATE2" + bytes.fromhex(info["id"]) + struct.pack(">II", n, n - len(skip)) + bytes(bm)
body += struct.pack(">QQII", st.st_size, st.st_ctime_ns // 10**9, st.st_ctime_ns % 10**9, len(spans))
for sp in spans:
    body += struct.pack(">III", *map(int, sp.split(":")))
open(pkg + ".state.tmp", "wb").write(body)
h = subprocess.run(["xxhsum", "-H1", pkg + ".state.tmp"], capture_output=True, text=True).stdout.split()[0]
open(pkg + ".state", "wb").write(body + bytes.fromhex(h[-16:]))
EOF
	rm -f "$pkg.state.tmp"
}

# state_has FILE N: the state file FILE counts at least N verified chunks
# (its layout is in lib/state.h: the count is the big-endian word at 28).
state_has() {
	local h
	h=$(od -An -j 28 -N 4 -t x1 "$1" 2>/dev/null | tr -d ' \n')
	[ ${#h} -eq 8 ] && [ $((16#$h)) -ge "$2" ]
}

# json_field KEY: value of KEY in the last "summary" event of $output.
json_field() {
	printf '%s\n' "$output" | grep '"event":"summary"' | tail -1 |
		python3 -c 'import json,sys; print(json.loads(sys.stdin.read())[sys.argv[1]])' "$1"
}

@test "help, version and usage errors" {
	run -0 --separate-stderr run_repair --help
	[[ $output == usage:*mcast-repair* ]]
	[ -z "$stderr" ]
	run -0 --separate-stderr run_repair -h
	[[ $output == usage:* ]]
	run -0 --separate-stderr run_repair --version
	[[ $output == "mcast-repair "[0-9]* ]]
	run -2 --separate-stderr run_repair
	[ -z "$output" ]
	[[ $stderr == *"no PKG"* ]]
	run -2 --separate-stderr run_repair --bogus x.mcpkg
	[ -z "$output" ]
	[[ $stderr == "mcast-repair: --bogus: unknown option, or its value is missing"* && $stderr == *usage:* ]]
	run -2 --separate-stderr run_repair -Z x.mcpkg
	[[ $stderr == "mcast-repair: -Z: unknown option, or its value is missing"* ]]
	run -2 --separate-stderr run_repair x.mcpkg -s
	[[ $stderr == "mcast-repair: -s: unknown option, or its value is missing"* ]]
	run -2 --separate-stderr run_repair x.mcpkg --spread
	[[ $stderr == "mcast-repair: --spread: unknown option, or its value is missing"* ]]
	run -2 --separate-stderr run_repair -j 0 x.mcpkg
	[[ $stderr == *"-j"* ]]
	run -2 --separate-stderr run_repair -H nocolon x.mcpkg
	[[ $stderr == *"-H"* ]]
	run -2 --separate-stderr run_repair --spread 5x x.mcpkg
	[[ $stderr == *"--spread"* ]]
	run -2 --separate-stderr run_repair a.mcpkg b.mcpkg
	run -2 --separate-stderr run_repair -s ftp://x/y a.mcpkg
	# No source at all is a usage error, not "incomplete": a retry loop on 3 would spin.
	run -2 --separate-stderr run_repair x.mcpkg
	[ -z "$output" ]
	[[ $stderr == "mcast-repair: no source: give at least one -s SOURCE"* && $stderr == *usage:* ]]
	run -2 --separate-stderr run_repair --timeout 0 -s www/ x.mcpkg
	[[ $stderr == "mcast-repair: --timeout '0': must be more than 0"* ]]
	run -2 --separate-stderr run_repair --timeout soon -s www/ x.mcpkg
	[[ $stderr == "mcast-repair: --timeout 'soon': not a duration"* ]]
	run -0 --separate-stderr run_repair --help
	[[ $output == *--timeout* && $output == *--source* && $output == *--quiet* && $output == *--verbose* ]]
}

# repair_shimmed C SOURCE: mcast-repair -s SOURCE on x.mcpkg (3 chunks short) with a shim in front
# of libcurl holding the C definitions given. Plain run only: an ASan binary wants its runtime
# first, before any preload.
repair_shimmed() {
	plain_run_only
	command -v cc >/dev/null || skip "no C compiler for the shim"
	printf '#include <curl/curl.h>\n%s\n' "$1" >shim.c
	cc -shared -fPIC -o shim.so shim.c
	partial x.mcpkg 3
	run -1 --separate-stderr env LD_PRELOAD="$PWD/shim.so" "$MCAST_BIN/mcast-repair" -s "$2" x.mcpkg
}

@test "libcurl that cannot start for want of memory: said as out of memory, exit 1" {
	repair_shimmed 'CURLcode curl_global_init(long f) { (void)f; return CURLE_OUT_OF_MEMORY; }' www/
	[[ $stderr == *"libcurl: cannot initialise: out of memory"* ]]
	[ -f x.mcpkg.part ]
}

@test "no memory to check a -s source: said as out of memory, exit 1, not a usage error" {
	# curl_multi_init answers NULL, as it does for want of memory.
	repair_shimmed 'CURLM *curl_multi_init(void) { return NULL; }' http://127.0.0.1:9/
	[ "$stderr" = "mcast-repair: -s 'http://127.0.0.1:9/': out of memory" ]
	[ -f x.mcpkg.part ]
}

@test "local sources that can never serve are named; none usable left: exit 1, state kept" {
	partial img.mcpkg 3 4
	echo "not a package" >junk.mcpkg
	run -1 --separate-stderr run_repair -s "$PWD/nope/img.mcpkg" -s junk.mcpkg img.mcpkg
	[[ $stderr == *"$PWD/nope/img.mcpkg: cannot serve: No such file or directory"* ]]
	[[ $stderr == *"junk.mcpkg: cannot serve: not an mcast package"* ]]
	[[ $stderr == *"img.mcpkg: no usable source"* ]]
	[ -e img.mcpkg.part ]
	[ -e img.mcpkg.state ]
	run -1 --separate-stderr run_repair --json -s junk.mcpkg img.mcpkg
	printf '%s\n' "$output" | grep -q '"event":"source_unusable","source":"junk.mcpkg"'
	[ "$(json_field result)" = error ]
	# A good path after them: complete.
	run -0 --separate-stderr run_repair -s nope.mcpkg -s junk.mcpkg -s www/ img.mcpkg
	cmp img.mcpkg orig.mcpkg
}

@test "a source that stalls after its headers is left after one --timeout, the next one serves" {
	require_root
	ns_lo
	flaky_start local www --stall --port 8081
	local stall=$FLAKY_URL
	nginx_start local www
	partial img.mcpkg 2 3 17 40
	run -0 --separate-stderr ns_exec local with_timeout 30 run_repair --json --timeout 1s \
		-s "$stall/img.mcpkg" -s "$NGINX_URL/img.mcpkg" img.mcpkg
	cmp img.mcpkg orig.mcpkg
	[[ $stderr == *"$stall/img.mcpkg: stalled: no data for 1."*" s; left for now"* ]]
	printf '%s\n' "$output" | grep -q '"event":"source_left","source":"'"$stall"'/img.mcpkg","reason":"stalled'
}

@test "a stalled source alone: left, tried again a bounded number of times, exit 3" {
	require_root
	ns_lo
	flaky_start local www --stall
	partial img.mcpkg 5
	run -3 --separate-stderr ns_exec local with_timeout 30 run_repair --timeout 1s -s "$FLAKY_URL/img.mcpkg" img.mcpkg
	[[ $stderr == *"left 3 times: given up"* ]]
	[[ $stderr == *"still missing 1 of 41 chunks"* ]]
	[ -e img.mcpkg.state ]
}

@test "a source that stalled once is come back to after the others and completes" {
	require_root
	ns_lo
	flaky_start local www --stall --hostile-first 1
	partial img.mcpkg 5 6 30
	run -0 --separate-stderr ns_exec local with_timeout 30 run_repair --timeout 1s \
		-s "$PWD/nope.mcpkg" -s "$FLAKY_URL/img.mcpkg" img.mcpkg
	cmp img.mcpkg orig.mcpkg
	[[ $stderr == *"stalled"*"left for now"* ]]
}

@test "a source that trickles its body is left for a faster one" {
	require_root
	ns_lo
	flaky_start local www --trickle 5 --port 8081
	local slow=$FLAKY_URL
	nginx_start local www
	partial img.mcpkg 9 10
	run -0 --separate-stderr ns_exec local with_timeout 30 run_repair --timeout 1s \
		-s "$slow/img.mcpkg" -s "$NGINX_URL/img.mcpkg" img.mcpkg
	cmp img.mcpkg orig.mcpkg
	[[ $stderr == *"$slow/img.mcpkg: too slow: "*" B in 1."*" s, under 1.0 KiB/s; left for now"* ]]
}

@test "partial package left by a killed session: only the missing chunks are fetched" {
	require_root
	ns_lo
	nginx_start local www
	partial img.mcpkg 0 7 8 9 23 40
	# State saved before chunk 30 landed: 30 is in PKG.part but not in the map.
	write_state img.mcpkg 0 7 8 9 23 30 40
	run -0 --separate-stderr ns_exec local run_repair --json -s "$NGINX_URL/img.mcpkg" img.mcpkg
	cmp img.mcpkg orig.mcpkg
	[ ! -e img.mcpkg.part ]
	[ ! -e img.mcpkg.state ]
	[ "$(json_field fetched)" = 6 ]
	# The vocabulary of mcast-json(7): v, result, path, name, id.
	[ "$(json_field v)" = 1 ]
	[ "$(json_field result)" = complete ]
	[ "$(json_field path)" = img.mcpkg ]
	[ "$(json_field name)" = img ]
	[ "$(json_field id)" = "$(run_pack info --json orig.mcpkg | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')" ]
	needed=$(json_field bytes_needed)
	[ "$needed" = $((5 * CS + 1234)) ]
	# Everything fetched is what was missing, plus the 64-byte header and part headers.
	fetched=$(json_field bytes_fetched)
	[ "$fetched" -le $((needed * 102 / 100)) ]
	# Adjacent chunks 7-9 travel as one range, and all ranges in one multipart request.
	grep -q "$((PO + 7 * CS))-$((PO + 10 * CS - 1))" "$NGINX_DIR/logs/access.log"
	[ "$(grep -c ',' "$NGINX_DIR/logs/access.log")" -ge 1 ]
}

@test "a real session cut off mid-way (mcast-recv killed), completed from nginx" {
	asan_covered_elsewhere
	require_root
	require_prog mcast-send mcast-recv
	# A package of its own, 200 chunks: the sender interleaves windows of 32
	# blocks (one chunk each here), so no chunk is whole before a window has
	# gone out. With the 41 chunks of setup, at any rate, the first chunk was
	# verified at 3/4 of the pass, and the receiver had finished before it
	# was killed in every run.
	head -c $((200 * CS)) /dev/urandom >img
	run_pack create -q -o orig.mcpkg -n img -V 1 -z none --chunk-size 64K - <img
	cp orig.mcpkg www/img.mcpkg
	ns_lo
	nginx_start local www
	# About 12.5 MiB at 20 Mbit/s: five seconds of session, the first
	# window's chunks verified after about one.
	bg_start send ns_exec local with_timeout 60 run_send -q -g 239.1.2.3 -p 7300 -r 20M --linger 1s orig.mcpkg
	bg_start recv ns_exec local with_timeout 60 run_recv -q --json -g 239.1.2.3 -p 7300 -o img.mcpkg
	# Cut once the state (saved at most once a second) has some chunks.
	wait_for 20 state_has img.mcpkg.state 1
	bg_kill recv KILL
	st=0
	bg_wait recv 10 || st=$?
	bg_kill send TERM
	# It was cut: killed, not finished.
	[ "$st" -ne 0 ]
	[ -e img.mcpkg.part ]
	[ ! -e img.mcpkg ]
	run -0 --separate-stderr ns_exec local run_repair --json -s "$NGINX_URL/img.mcpkg" img.mcpkg
	cmp img.mcpkg orig.mcpkg
	[ ! -e img.mcpkg.part ]
	[ ! -e img.mcpkg.state ]
	[ "$(json_field had)" -gt 0 ]
	[ "$(json_field had)" -lt 200 ]
	[ "$(json_field bytes_fetched)" -lt $(($(stat -c %s orig.mcpkg))) ]
}

@test "chunks partly in PKG.part (spans in the state): only their gaps are fetched" {
	require_root
	ns_lo
	nginx_start local www
	# Chunk 5 lacks bytes 1000-2999 and 40000-end; chunk 12 lacks only its last 100 bytes; 20 is gone.
	partial img.mcpkg 20
	dd if=/dev/zero of=img.mcpkg.part bs=1 count=2000 seek=$((PO + 5 * CS + 1000)) conv=notrunc status=none
	dd if=/dev/zero of=img.mcpkg.part bs=1 count=$((CS - 40000)) seek=$((PO + 5 * CS + 40000)) conv=notrunc status=none
	dd if=/dev/zero of=img.mcpkg.part bs=1 count=100 seek=$((PO + 13 * CS - 100)) conv=notrunc status=none
	SPANS="5:0:1000 5:3000:37000 12:0:$((CS - 100))" write_state img.mcpkg 5 12 20
	run -0 --separate-stderr ns_exec local run_repair --json -s "$NGINX_URL/img.mcpkg" img.mcpkg
	cmp img.mcpkg orig.mcpkg
	[ "$(json_field fetched)" = 3 ]
	[ "$(json_field bytes_needed)" = $((2000 + CS - 40000 + 100 + CS)) ]
	[ "$(json_field bytes_fetched)" -le $(((2000 + CS - 40000 + 100 + CS) * 105 / 100)) ]
	grep -q "$((PO + 5 * CS + 1000))-$((PO + 5 * CS + 2999))" "$NGINX_DIR/logs/access.log"
}

@test "spans over bytes that are wrong: the chunk is fetched whole and verified" {
	require_root
	ns_lo
	nginx_start local www
	partial img.mcpkg 3
	# The state claims the first 30000 bytes of chunk 3, but they are zeros and noise: a lie.
	dd if=/dev/urandom of=img.mcpkg.part bs=1 count=100 seek=$((PO + 3 * CS + 10)) conv=notrunc status=none
	SPANS="3:0:30000" write_state img.mcpkg 3
	run -0 --separate-stderr ns_exec local run_repair --json -s "$NGINX_URL/img.mcpkg" img.mcpkg
	cmp img.mcpkg orig.mcpkg
	[ "$(json_field bytes_fetched)" -ge "$CS" ]
}

@test "PKG.part changed after its state was written: checked chunk by chunk, not trusted" {
	require_root
	ns_lo
	nginx_start local www
	partial img.mcpkg 9
	write_state img.mcpkg 9
	# Afterwards chunks 2 and 30, marked verified, are damaged and the file cut in chunk 38.
	sleep 0.05
	set_chunks img.mcpkg.part /dev/urandom 2 30
	truncate -s $((PO + 38 * CS + 5)) img.mcpkg.part
	run -0 --separate-stderr ns_exec local run_repair --json -s "$NGINX_URL/img.mcpkg" img.mcpkg
	cmp img.mcpkg orig.mcpkg
	[ "$(json_field fetched)" = 6 ] # 2, 9, 30, 38, 39 and the short 40
	[[ $stderr == *"changed since"* ]]
}

@test "a complete PKG beside a stale PKG.state (killed between rename and removal): repair and recv drop it" {
	require_root
	require_prog mcast-recv
	ns_lo
	# mcast-recv's finish renames PKG.part to PKG, then removes PKG.state: a
	# SIGKILL in between leaves a complete PKG with its old state beside it.
	stale() {
		partial img.mcpkg 3 4
		write_state img.mcpkg 3 4
		cp orig.mcpkg img.mcpkg.part
		mv img.mcpkg.part img.mcpkg
	}
	stale
	touch img.mcpkg.state.tmp
	run -0 --separate-stderr run_repair -s "$PWD/www/img.mcpkg" img.mcpkg
	cmp img.mcpkg orig.mcpkg
	[ ! -e img.mcpkg.state ]
	[ ! -e img.mcpkg.state.tmp ]
	[ ! -e img.mcpkg.part ]
	stale
	[ -e img.mcpkg.state ]
	run -0 --separate-stderr ns_exec local run_recv -o img.mcpkg --timeout 1s
	[[ $stderr == *"already complete"* ]]
	[ ! -e img.mcpkg.state ]
	cmp img.mcpkg orig.mcpkg
	# A PKG.part beside it owns the state: left alone.
	partial img.mcpkg 3 4
	write_state img.mcpkg 3 4
	run -0 --separate-stderr ns_exec local run_recv -o img.mcpkg --timeout 1s
	[ -e img.mcpkg.state ]
	[ -e img.mcpkg.part ]
}

@test "partial package with a damaged state file is rescanned, nothing verified lost" {
	require_root
	ns_lo
	nginx_start local www
	partial img.mcpkg 3 4
	echo garbage >img.mcpkg.state
	run -0 --separate-stderr ns_exec local run_repair --json -s "$NGINX_URL/img.mcpkg" img.mcpkg
	cmp img.mcpkg orig.mcpkg
	[ "$(json_field fetched)" = 2 ]
}

@test "damaged complete package is healed in place" {
	require_root
	ns_lo
	nginx_start local www
	cp orig.mcpkg img.mcpkg
	set_chunks img.mcpkg /dev/urandom 2 33
	run -3 run_pack verify img.mcpkg
	run -0 --separate-stderr ns_exec local run_repair --json -s "$NGINX_URL/img.mcpkg" img.mcpkg
	cmp img.mcpkg orig.mcpkg
	[ "$(json_field in_place)" = True ]
	[ "$(json_field fetched)" = 2 ]
	[ ! -e img.mcpkg.part ]
	run -0 run_pack verify img.mcpkg
	# Intact already: nothing to fetch, exit 0.
	run -0 --separate-stderr ns_exec local run_repair --json -s "$NGINX_URL/img.mcpkg" img.mcpkg
	[ "$(json_field fetched)" = 0 ]
}

@test "empty start: header and manifest first, then everything" {
	require_root
	ns_lo
	nginx_start local www
	run -0 --separate-stderr ns_exec local run_repair --json -j 3 -s "$NGINX_URL/" img.mcpkg
	cmp img.mcpkg orig.mcpkg
	[ ! -e img.mcpkg.part ]
	[ ! -e img.mcpkg.state ]
	[ "$(json_field bytes_fetched)" -le $(($(stat -c %s orig.mcpkg) * 102 / 100)) ]
}

@test "a source with 404: next source used; alone: exit 3 and state kept" {
	asan_covered_elsewhere
	require_root
	ns_lo
	nginx_start local www
	partial img.mcpkg 5 6
	run -3 --separate-stderr ns_exec local run_repair -s "$NGINX_URL/nope.mcpkg" img.mcpkg
	[[ $stderr == *"$NGINX_URL/nope.mcpkg"*"404"* ]]
	run -3 --separate-stderr ns_exec local run_repair --json -s "$NGINX_URL/nope.mcpkg" img.mcpkg
	[ "$(json_field result)" = incomplete ]
	[[ $stderr == *"still missing 2 of 41 chunks"*"5-6"* ]]
	[ -e img.mcpkg.part ]
	[ -e img.mcpkg.state ]
	run -0 --separate-stderr ns_exec local run_repair -s "$NGINX_URL/nope.mcpkg" -s "$NGINX_URL/img.mcpkg" img.mcpkg
	cmp img.mcpkg orig.mcpkg
}

@test "empty start with only a 404 source: exit 3, nothing left behind" {
	asan_covered_elsewhere
	require_root
	ns_lo
	nginx_start local www
	run -3 --separate-stderr ns_exec local run_repair -s "$NGINX_URL/nope.mcpkg" img.mcpkg
	[[ $stderr == *"still missing"* ]]
	[ ! -e img.mcpkg ]
	[ ! -e img.mcpkg.part ]
}

@test "a source that closes mid-transfer: retried until complete" {
	require_root
	ns_lo
	flaky_start local www --close-after 200000
	partial img.mcpkg 1 2 3 10 11 12 20 21 22 30 31 32 39 40
	run -0 --separate-stderr ns_exec local with_timeout 60 run_repair -j 2 -s "$FLAKY_URL/img.mcpkg" img.mcpkg
	cmp img.mcpkg orig.mcpkg
	[[ $stderr == *"retrying"* ]]
}

@test "a source serving a different package is refused and named" {
	require_root
	ns_lo
	mkdir other
	head -c $((3 * CS)) /dev/urandom | run_pack create -q -o other/img.mcpkg -n img -V 2 -z none --chunk-size 64K -
	nginx_start local other -p 8081
	other=$NGINX_URL
	nginx_start local www
	partial img.mcpkg 4
	run -3 --separate-stderr ns_exec local run_repair -s "$other/img.mcpkg" img.mcpkg
	[[ $stderr == *"$other/img.mcpkg: serves img 2"*"not img 1"*"refused"* ]]
	cmp -s img.mcpkg.part orig.mcpkg && false
	run -0 --separate-stderr ns_exec local run_repair -s "$other/img.mcpkg" -s "$NGINX_URL/img.mcpkg" img.mcpkg
	cmp img.mcpkg orig.mcpkg
}

@test "a source serving corrupted chunks is named; the chunks come from the second source" {
	require_root
	ns_lo
	mkdir bad
	cp orig.mcpkg bad/img.mcpkg
	set_chunks bad/img.mcpkg /dev/urandom 2 7
	nginx_start local bad -p 8081
	badurl=$NGINX_URL/img.mcpkg
	nginx_start local www
	partial img.mcpkg 2 5 7
	run -0 --separate-stderr ns_exec local run_repair --json -s "$badurl" -s "$NGINX_URL/img.mcpkg" img.mcpkg
	cmp img.mcpkg orig.mcpkg
	[[ $stderr == *"$badurl: chunk 2: digest mismatch"* ]]
	[[ $stderr == *"$badurl: chunk 7: digest mismatch"* ]]
	[ "$(printf '%s\n' "$output" | grep -c '"event":"bad_chunk"')" = 2 ]
	# Only the two bad chunks were asked of the good source.
	run grep -c "$((PO + 2 * CS))-.*,$((PO + 7 * CS))-" "$NGINX_DIR/logs/access.log"
	[ "$output" = 1 ]
}

@test "corrupted source alone: exit 3 naming the chunks still missing" {
	require_root
	ns_lo
	mkdir bad
	cp orig.mcpkg bad/img.mcpkg
	set_chunks bad/img.mcpkg /dev/urandom 7
	nginx_start local bad
	partial img.mcpkg 5 7
	run -3 --separate-stderr ns_exec local run_repair -s "$NGINX_URL/img.mcpkg" img.mcpkg
	[[ $stderr == *"still missing 1 of 41 chunks"*": 7" ]]
	# Chunk 5 was good, and stays verified.
	run -0 --separate-stderr ns_exec local run_repair --json -s "$NGINX_URL/img.mcpkg" -s "$PWD/orig.mcpkg" img.mcpkg
	cmp img.mcpkg orig.mcpkg
}

@test "a server that does not support ranges: still correct" {
	require_root
	ns_lo
	nginx_start local www -c 'max_ranges 0;'
	partial img.mcpkg 0 13 40
	run -0 --separate-stderr ns_exec local run_repair -s "$NGINX_URL/img.mcpkg" img.mcpkg
	cmp img.mcpkg orig.mcpkg
	# Named, with what it cost, and pointed at servers that honour ranges.
	[[ $stderr == *"$NGINX_URL/img.mcpkg: the server ignores Range requests: "*" received for "*" missing; serve packages from one that honours ranges"* ]]
	rm img.mcpkg
	run -0 --separate-stderr ns_exec local run_repair -s "$NGINX_URL/img.mcpkg" img.mcpkg
	cmp img.mcpkg orig.mcpkg
	# A server that honours ranges is not warned about.
	partial img.mcpkg 3
	flaky_start local www
	run -0 --separate-stderr ns_exec local run_repair -s "$FLAKY_URL/img.mcpkg" img.mcpkg
	[[ $stderr != *"ignores Range"* ]]
}

@test "a server without multipart answers: one range per request" {
	require_root
	ns_lo
	nginx_start local www -c 'max_ranges 1;'
	partial img.mcpkg 0 13 40
	run -0 --separate-stderr ns_exec local run_repair -s "$NGINX_URL/img.mcpkg" img.mcpkg
	cmp img.mcpkg orig.mcpkg
}

@test "HTTPS with a self-signed certificate: --cacert, --insecure, and refused without" {
	require_root
	ns_lo
	nginx_start local www -s
	partial img.mcpkg 6 9
	run -3 --separate-stderr ns_exec local run_repair -s "$NGINX_URL/img.mcpkg" img.mcpkg
	[[ $stderr == *"$NGINX_URL/img.mcpkg"*"certificate"* ]]
	run -0 --separate-stderr ns_exec local run_repair --cacert "$NGINX_CERT" -s "$NGINX_URL/img.mcpkg" img.mcpkg
	cmp img.mcpkg orig.mcpkg
	rm img.mcpkg
	partial img.mcpkg 1
	run -0 --separate-stderr ns_exec local run_repair --insecure -s "$NGINX_URL/img.mcpkg" img.mcpkg
	cmp img.mcpkg orig.mcpkg
}

@test "-H headers reach the server (a token-protected source)" {
	require_root
	ns_lo
	nginx_start local www -c 'location / { if ($http_authorization != "Bearer t0k") { return 403; } }'
	partial img.mcpkg 3
	run -3 --separate-stderr ns_exec local run_repair -s "$NGINX_URL/img.mcpkg" img.mcpkg
	[[ $stderr == *"403"* ]]
	run -0 --separate-stderr ns_exec local run_repair -H 'Authorization: Bearer t0k' -s "$NGINX_URL/img.mcpkg" img.mcpkg
	cmp img.mcpkg orig.mcpkg
}

@test "redirects are followed" {
	asan_covered_elsewhere
	require_root
	ns_lo
	nginx_start local www -c 'location = /moved.mcpkg { return 302 /img.mcpkg; }'
	partial img.mcpkg 3 4
	run -0 --separate-stderr ns_exec local run_repair -s "$NGINX_URL/moved.mcpkg" img.mcpkg
	cmp img.mcpkg orig.mcpkg
}

@test "503 with Retry-After is honoured, then the source is used" {
	require_root
	ns_lo
	flaky_start local www --fail-first 2
	partial img.mcpkg 3 4
	start=$SECONDS
	run -0 --separate-stderr ns_exec local with_timeout 120 run_repair --spread 200ms -s "$FLAKY_URL/img.mcpkg" img.mcpkg
	cmp img.mcpkg orig.mcpkg
	# each 503 is named, and waited for as long as its Retry-After asks (1 s,
	# more than the back-off of a first or second attempt)
	[ "$(grep -c '503.*retrying in 1\.0s' <<<"$stderr")" -eq 2 ]
	[ $((SECONDS - start)) -ge 2 ]
	# the server said 503 twice, then served what was missing
	[ "$(grep -c '"status": 503' "$FLAKY_LOG")" -eq 2 ]
	tail -n 1 "$FLAKY_LOG" | grep -q '"status": 206'
}

@test "file sources: a path and a directory" {
	partial img.mcpkg 0 40
	run -0 --separate-stderr run_repair -s "$PWD/www/img.mcpkg" img.mcpkg
	cmp img.mcpkg orig.mcpkg
	rm img.mcpkg
	run -0 --separate-stderr run_repair -s "file://$PWD/www" img.mcpkg
	cmp img.mcpkg orig.mcpkg
}

@test "interrupted repair resumes and keeps what it had" {
	asan_covered_elsewhere
	require_root
	ns_lo
	# Slow source: the whole package takes about three seconds.
	nginx_start local www -c 'limit_rate 800k;'
	bg_start rep ns_exec local run_repair --json -j 1 -s "$NGINX_URL/img.mcpkg" img.mcpkg
	wait_for 20 grep -q '"have":8,' "$BATS_TEST_TMPDIR/rep.out"
	bg_kill rep KILL
	st=0
	bg_wait rep 10 || st=$?
	[ "$st" -ne 0 ]
	[ "$st" -ne 124 ]
	[ -e img.mcpkg.part ]
	[ ! -e img.mcpkg ]
	run -0 --separate-stderr ns_exec local run_repair --json -s "$NGINX_URL/img.mcpkg" img.mcpkg
	cmp img.mcpkg orig.mcpkg
	[ "$(json_field had)" -ge 8 ]
	[ "$(json_field bytes_fetched)" -le $(($(stat -c %s orig.mcpkg) - 8 * CS)) ]
}

@test "SIGTERM saves state and exits 3" {
	asan_covered_elsewhere
	require_root
	ns_lo
	nginx_start local www -c 'limit_rate 400k;'
	bg_start rep ns_exec local run_repair --json -j 1 -s "$NGINX_URL/img.mcpkg" img.mcpkg
	wait_for 20 grep -q '"have":3,' "$BATS_TEST_TMPDIR/rep.out"
	bg_kill rep TERM
	st=0
	bg_wait rep 10 || st=$?
	cat "$BATS_TEST_TMPDIR/rep.err"
	[ "$st" -eq 3 ]
	[ -e img.mcpkg.part ]
	[ -e img.mcpkg.state ]
	grep -q "interrupted" "$BATS_TEST_TMPDIR/rep.err"
	run -0 --separate-stderr ns_exec local run_repair -s "$NGINX_URL/img.mcpkg" img.mcpkg
	cmp img.mcpkg orig.mcpkg
}

@test "on a terminal (script), a live line shows bytes of the total, rate and time left; the end line size, time and rate" {
	asan_covered_elsewhere
	require_root
	command -v script >/dev/null || skip "script (util-linux) not installed"
	ns_lo
	flaky_start local www --trickle 1000000
	run -0 ns_exec local with_timeout 60 script -qec \
		"$MCAST_BIN/mcast-repair -j 1 -s $FLAKY_URL/img.mcpkg $PWD/img.mcpkg" /dev/null
	cmp img.mcpkg orig.mcpkg
	[[ $output == *"img.mcpkg: "*" of 2.5 MiB ("*"%), "*"iB/s, "*" left, repairing ("*" of 41 chunks)"* ]]
	[[ $output =~ [0-9]:[0-9][0-9]\ left ]]
	[[ $output == *"img.mcpkg: complete and verified: 2.5 MiB in "*" s, "*"/s (41 chunks fetched, "* ]]
	# Not a terminal: no live line at all.
	rm img.mcpkg
	run -0 --separate-stderr ns_exec local run_repair -s "$FLAKY_URL/img.mcpkg" img.mcpkg
	[[ $stderr != *" left, repairing"* ]]
}

@test "empty start onto a filesystem too small: said before a byte is fetched, naming the path and the bytes (exit 1)" {
	require_root
	mkdir small
	mc_mount tmpfs "$PWD/small" -t tmpfs -o size=1M
	run -1 --separate-stderr run_repair --json -s "$PWD/www/img.mcpkg" small/img.mcpkg
	[[ $stderr == *"small/img.mcpkg.part: not enough space: the package needs 2.5 MiB more ("*" bytes), the filesystem of small has 1.0 MiB free (1048576 bytes)"* ]]
	[ "$(json_field result)" = error ]
	[ "$(json_field bytes_fetched)" -eq 0 ]
	[ -z "$(ls -A small)" ]
	# room enough: the same command completes
	mc_umount "$PWD/small"
	mc_mount tmpfs "$PWD/small" -t tmpfs -o size=4M
	run -0 --separate-stderr run_repair -s "$PWD/www/img.mcpkg" small/img.mcpkg
	cmp small/img.mcpkg orig.mcpkg
}

@test "repair: a PKG.part, PKG.state or PKG.state.tmp that is a device node, FIFO or socket is refused (exit 2): nothing written onto it, nothing removed" {
	require_loop
	local dev sum
	head -c 1M /dev/urandom >back
	dev=$(loop_attach "$PWD/back")
	sum=$(mc_dev_sum "$dev")
	mknod lp.part b "$((0x$(stat -c %t "$dev")))" "$((0x$(stat -c %T "$dev")))"
	# Before, the package was written onto the device behind lp.part, then 'lp.part: Invalid argument' (exit 1).
	run -2 --separate-stderr run_repair -s www/img.mcpkg lp
	[[ $stderr == *"mcast-repair: lp.part: a device node, not a partial package: refused"* ]]
	[ -b lp.part ]
	[ "$(mc_dev_sum "$dev")" = "$sum" ]
	[ ! -e lp ] && [ ! -e lp.state ]
	mknod c.state c 1 3
	run -2 --separate-stderr run_repair -s www/img.mcpkg c
	[[ $stderr == *"mcast-repair: c.state: a device node, not a state file: refused"* ]]
	[ -c c.state ] && [ ! -e c.part ] && [ ! -e c ]
	mkfifo f.state.tmp
	run -2 --separate-stderr with_timeout 20 run_repair -s www/img.mcpkg f
	[[ $stderr == *"mcast-repair: f.state.tmp: a FIFO, not a state file: refused"* ]]
	[ -p f.state.tmp ] && [ ! -e f.part ]
	# A complete PKG beside a PKG.state that is a node: healed (nothing to do), the node is not removed as stale.
	cp orig.mcpkg done.mcpkg
	mknod done.mcpkg.state c 1 3
	run -0 --separate-stderr run_repair -s www/img.mcpkg done.mcpkg
	[ -c done.mcpkg.state ]
	cmp done.mcpkg orig.mcpkg
}
