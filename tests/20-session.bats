#!/usr/bin/env bats
# mcast-send and mcast-recv: whole multicast sessions in private network
# namespaces (one-host loopback, or hosts on a bridged LAN with real nftables
# loss): late joiners, loss, IPv6, killed senders and receivers, resume, two
# sessions at once, filters, the slow-receiver policy, garbage and hostile
# feedback, usage and --json.

bats_require_minimum_version 1.5.0
load helper

G=239.77.20.1
P=17200

# mkpkg NAME SIZE: a raw package NAME.mcpkg of SIZE random bytes (no
# compression, so it is quick) in the file's scratch; prints nothing.
mkpkg() {
	head -c "$2" /dev/urandom >"$PK/$1.raw" &&
		run_pack create -q -z none -n "$1" -o "$PK/$1.mcpkg" - <"$PK/$1.raw"
}

# pkg_id PKG: the package id of PKG (32 hex digits).
pkg_id() {
	run_pack info --json "$1" | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["id"])'
}

setup_file() {
	export PK=$BATS_FILE_TMPDIR
	[ -x "$MCAST_BIN/mcast-pack" ] || return 0
	mkpkg alpha 8M && mkpkg beta 6M && mkpkg big 24M && mkpkg small 3M
}

setup() {
	T=$BATS_TEST_TMPDIR
}

# Sessions: helper.bash's session_send_bg, session_recv_bg, bg_ends, bg_json.

# recv_bg NAME HOST ARG...: session_recv_bg with -o $T/NAME.mcpkg.
recv_bg() { session_recv_bg "$1" "$2" -o "$T/$1.mcpkg" "${@:3}"; }

# same NAME PKG: NAME's output is PKG byte for byte, its .part and .state gone.
same() {
	cmp "$T/$1.mcpkg" "$PK/$2.mcpkg" || return 1
	[ ! -e "$T/$1.mcpkg.part" ] || { echo "$1.mcpkg.part left behind" >&2; return 1; }
	[ ! -e "$T/$1.mcpkg.state" ] || { echo "$1.mcpkg.state left behind" >&2; return 1; }
}

# incomplete NAME: NAME left PKG.part and PKG.state, and no PKG.
incomplete() {
	[ ! -e "$T/$1.mcpkg" ] || { echo "$1.mcpkg exists" >&2; return 1; }
	[ -s "$T/$1.mcpkg.part" ] || { echo "$1.mcpkg.part missing" >&2; return 1; }
	[ -s "$T/$1.mcpkg.state" ] || { echo "$1.mcpkg.state missing" >&2; return 1; }
}

# got_packets NAME N: receiver NAME's last --json progress event counts at
# least N DATA packets received.
got_packets() {
	local n
	n=$(grep '"event":"progress"' "$T/$1.out" | tail -n 1 | sed -n 's/.*"packets":\([0-9]*\).*/\1/p')
	[ "${n:-0}" -ge "$2" ]
}

# state_has FILE N: the state file FILE counts at least N verified chunks
# (its layout is in lib/state.h: the count is the big-endian word at 28).
state_has() {
	local h
	h=$(od -An -j 28 -N 4 -t x1 "$1" 2>/dev/null | tr -d ' \n')
	[ ${#h} -eq 8 ] && [ $((16#$h)) -ge "$2" ]
}

require_session() {
	require_root
	require_prog mcast-pack mcast-send mcast-recv
}

# ---------------------------------------------------------------------------
# Usage

@test "session: --help of both programs on stdout only, exit 0" {
	asan_covered_elsewhere
	require_prog mcast-send mcast-recv
	for p in send recv; do
		run -0 --separate-stderr "run_$p" --help
		[[ $output == "usage: mcast-$p "* ]]
		[[ $output == *-g\ GROUP* && $output == *--json* && $output == *--version* ]]
		[ -z "$stderr" ]
		run -0 --separate-stderr "run_$p" -h
		[[ $output == "usage: mcast-$p "* ]]
		[ -z "$stderr" ]
	done
	run -0 run_send --help
	[[ $output == *--linger* && $output == *--max-time* && $output == *--max-passes* && $output == *--fec* ]]
	run -0 run_recv --help
	[[ $output == *--expect* && $output == *--package* && $output == *--timeout* ]]
}

@test "session: --version of both programs" {
	asan_covered_elsewhere
	require_prog mcast-send mcast-recv
	run -0 --separate-stderr run_send --version
	[[ $output =~ ^mcast-send\ [0-9]+\.[0-9]+ ]]
	[ -z "$stderr" ]
	run -0 --separate-stderr run_recv --version
	[[ $output =~ ^mcast-recv\ [0-9]+\.[0-9]+ ]]
	[ -z "$stderr" ]
}

@test "session: mcast-send bad usage exits 2 on stderr naming the option" {
	require_prog mcast-send
	local pkg=$PK/alpha.mcpkg
	run -2 --separate-stderr run_send -r 5x "$pkg"
	[ -z "$output" ]
	[[ $stderr == "mcast-send: -r '5x': rate must be bits per second"* ]]
	run -2 --separate-stderr run_send -g 10.0.0.1 "$pkg"
	[ -z "$output" ]
	[[ $stderr == *10.0.0.1* ]]
	run -2 --separate-stderr run_send -g not-an-address "$pkg"
	[[ $stderr == *not-an-address* ]]
	run -2 --separate-stderr run_send -p 0 "$pkg"
	[[ $stderr == "mcast-send: -p '0': port must be a number from 1 to 65534"* ]]
	run -2 --separate-stderr run_send -p 65535 "$pkg"
	[[ $stderr == "mcast-send: -p '65535': PORT+1 carries the feedback"* ]]
	run -2 --separate-stderr run_send -t 0 "$pkg"
	[[ $stderr == "mcast-send: -t '0': TTL must be a number from 1 to 255"* ]]
	run -2 --separate-stderr run_send --fec 101 "$pkg"
	[[ $stderr == "mcast-send: --fec '101': must be a percentage from 0 to 100"* ]]
	run -2 --separate-stderr run_send --linger -5 "$pkg"
	[[ $stderr == *--linger* ]]
	run -2 --separate-stderr run_send --max-time 3parsecs "$pkg"
	[[ $stderr == *--max-time* ]]
	run -2 --separate-stderr run_send --max-passes -1 "$pkg"
	[[ $stderr == *--max-passes* ]]
	run -2 --separate-stderr run_send --mtu 100 "$pkg"
	[[ $stderr == *--mtu* ]]
	run -2 --separate-stderr run_send --bogus "$pkg"
	[ -z "$output" ]
	[[ $stderr == *bogus* && $stderr == *usage:* ]]
	run -2 --separate-stderr run_send
	[ -z "$output" ]
	[[ $stderr == *PKG* && $stderr == *usage:* ]]
	run -2 --separate-stderr run_send "$pkg" "$pkg"
	[[ $stderr == *usage:* ]]
	# -V is mcast-pack's package version, not a version flag here
	run -2 --separate-stderr run_send -V
	[ -z "$output" ]
	run -2 --separate-stderr run_send -i nosuch0 "$pkg"
	[[ $stderr == *nosuch0* ]]
}

@test "session: mcast-send on a package that is not there exits 1 naming it" {
	asan_covered_elsewhere
	require_prog mcast-send
	run -1 --separate-stderr run_send -g $G -p $P "$BATS_TEST_TMPDIR/absent.mcpkg"
	[ -z "$output" ]
	[[ $stderr == *absent.mcpkg* ]]
}

@test "session: mcast-send on a package cut short or with a damaged manifest exits 3, as verify does" {
	require_prog mcast-send
	head -c 100000 "$PK/small.mcpkg" >"$BATS_TEST_TMPDIR/cut.mcpkg"
	run -3 --separate-stderr run_send -g $G -p $P "$BATS_TEST_TMPDIR/cut.mcpkg"
	[[ $stderr == *cut.mcpkg*truncated* ]]
	run -3 --separate-stderr run_pack verify "$BATS_TEST_TMPDIR/cut.mcpkg"
	echo garbage >"$BATS_TEST_TMPDIR/text.mcpkg"
	run -1 --separate-stderr run_send -g $G -p $P "$BATS_TEST_TMPDIR/text.mcpkg"
}

@test "session: mcast-recv bad usage exits 2 on stderr naming the option" {
	require_prog mcast-recv
	local o=$BATS_TEST_TMPDIR/out.mcpkg
	run -2 --separate-stderr run_recv --timeout -5 -o "$o"
	[ -z "$output" ]
	[[ $stderr == *"--timeout '-5'"* ]]
	run -2 --separate-stderr run_recv --timeout 5parsecs -o "$o"
	[[ $stderr == *--timeout* ]]
	run -2 --separate-stderr run_recv -g 10.0.0.1 -o "$o"
	[ -z "$output" ]
	[[ $stderr == *10.0.0.1* ]]
	run -2 --separate-stderr run_recv -p 70000 -o "$o"
	[[ $stderr == "mcast-recv: -p '70000': port must be a number from 1 to 65534"* ]]
	run -2 --separate-stderr run_recv --expect xyz -o "$o"
	[[ $stderr == *--expect* ]]
	run -2 --separate-stderr run_recv --expect 1234567 -o "$o"
	[[ $stderr == *--expect* ]]
	run -2 --separate-stderr run_recv --mem 1K -o "$o"
	[[ $stderr == *--mem* ]]
	run -2 --separate-stderr run_recv -r 5x -o "$o"
	[ -z "$output" ]
	[[ $stderr == *usage:* ]]
	run -2 --separate-stderr run_recv
	[ -z "$output" ]
	[[ $stderr == *-o* && $stderr == *usage:* ]]
	run -2 --separate-stderr run_recv -o "$o" extra
	[[ $stderr == *extra* ]]
	run -2 --separate-stderr run_recv -o
	[ -z "$output" ]
	run -2 --separate-stderr run_recv -i nosuch0 -o "$o"
	[[ $stderr == *nosuch0* ]]
	[ ! -e "$o" ]
	[ ! -e "$o.part" ]
}

# ---------------------------------------------------------------------------
# Sessions

@test "session: three receivers and a late joiner all finish by multicast alone" {
	require_session
	ns_lo
	recv_bg r1 local
	recv_bg r2 local
	recv_bg r3 local
	# 24 MiB at 20 Mbit/s: a pass takes about ten seconds; the late one joins
	# once r1 has saved 4 chunks, well within it however loaded the machine
	# (PKG.part's size, polled before, was gone with the rename when r1 had
	# completed first)
	session_send_bg local -r 20M --linger 300ms "$PK/big.mcpkg"
	wait_for 30 state_has "$T/r1.mcpkg.state" 4
	recv_bg late local
	bg_ends r1 30 0
	bg_ends r2 30 0
	bg_ends r3 30 0
	bg_ends late 30 0
	bg_ends send 30 0
	for r in r1 r2 r3 late; do same $r big; done
	[ "$(bg_json send summary 'j["receivers"]')" -eq 4 ]
	[ "$(bg_json send summary 'j["complete"]')" -eq 4 ]
	# the late joiner heard only part of the first pass (it joined mid-pass),
	# and its own NACKs brought it the rest in the next
	[ "$(bg_json late summary 'j["nacks"]')" -ge 1 ]
	[ "$(bg_json send summary 'j["nacks"]')" -ge 1 ]
	[ "$(grep -c '"event":"joined"' "$T/send.out")" -eq 4 ]
	[ "$(grep -c '"event":"done"' "$T/send.out")" -eq 4 ]
}

@test "session: bridged LAN, real loss of 5% at one receiver and 20% at another" {
	asan_covered_elsewhere
	require_session
	lan_create 4
	ns_loss h3 5 $P
	ns_loss h4 20 $P
	recv_bg r2 h2 -i eth0
	recv_bg r3 h3 -i eth0
	recv_bg r4 h4 -i eth0
	session_send_bg h1 -i eth0 -r 300M --linger 300ms "$PK/alpha.mcpkg"
	bg_ends send 40 0
	bg_ends r2 10 0
	bg_ends r3 10 0
	bg_ends r4 10 0
	for r in r2 r3 r4; do same $r alpha; done
	# the loss was real, and the lossy receivers were healed by repair symbols
	[ "$(ns_loss_count h3)" -gt 0 ]
	[ "$(ns_loss_count h4)" -gt "$(ns_loss_count h3)" ]
	[ "$(bg_json r4 summary 'j["decoded_blocks"]')" -gt 0 ]
	[ "$(bg_json send summary 'j["complete"]')" -eq 3 ]
	# the receivers' sender address is h1's
	[ "$(bg_json r2 joined 'j["sender"].split(":")[0]')" = 198.18.0.1 ]
}

@test "session: IPv6 group ff15:: on a veth LAN" {
	require_session
	lan_create 3
	G=ff15::77:20:1
	recv_bg r2 h2 -i eth0
	recv_bg r3 h3 -i eth0
	session_send_bg h1 -i eth0 -r 300M --linger 300ms "$PK/alpha.mcpkg"
	bg_ends send 40 0
	bg_ends r2 10 0
	bg_ends r3 10 0
	same r2 alpha
	same r3 alpha
	[[ $(bg_json send start 'j["group"]') == *ff15::77:20:1* ]]
	[[ $(bg_json r2 joined 'j["sender"]') == *2001:db8::1* ]]
	[ "$(bg_json send summary 'j["complete"]')" -eq 2 ]
}

@test "session: sender killed mid-session, receiver exits 3 with PKG.part and PKG.state" {
	require_session
	ns_lo
	recv_bg r1 local --timeout 2s
	# 20 Mbit/s: about ten seconds a pass; stopped once r1 saved 4 chunks
	session_send_bg local -r 20M "$PK/big.mcpkg"
	wait_for 30 state_has "$T/r1.mcpkg.state" 4
	bg_kill send KILL
	bg_ends send 10 124 137
	SECONDS=0
	bg_ends r1 15 3
	[ "$SECONDS" -le 8 ]
	incomplete r1
	[ "$(bg_json r1 summary 'j["result"]')" = timeout ]
	[ "$(bg_json r1 summary 'j["verified"]')" -gt 0 ]
	[ "$(bg_json r1 summary 'j["verified"]')" -lt 24 ]
	grep -q 'went silent' "$T/r1.err"
}

@test "session: a lossy receiver cut off before the repair pass keeps the parts it got; repair fetches only the rest" {
	asan_covered_elsewhere
	require_session
	require_prog mcast-repair
	lan_create 2
	ns_loss h2 10 $P
	recv_bg r2 h2 -i eth0 --timeout 5s
	# --max-passes 1: the sender tells the receiver to leave after the first pass, before any
	# repair pass, however loaded the machine. (Stopping the sender once PKG.part passed
	# 6 MiB depended on a poll that could come late: on a loaded machine the receiver had
	# completed by then.) --fec 0: with --fec auto the first pass carries repair for the
	# loss r2 reports, and r2 completes from it alone.
	session_send_bg h1 -i eth0 -r 100M --max-passes 1 --fec 0 "$PK/big.mcpkg"
	bg_ends send 20 3
	bg_ends r2 10 3
	incomplete r2
	partial=$(bg_json r2 summary 'j["partial"]')
	verified=$(bg_json r2 summary 'j["verified"]')
	[ "$partial" -gt 0 ]
	grep -q "and parts of $partial more" "$T/r2.err"
	run -0 --separate-stderr ns_exec h2 run_repair --json -s "$PK/big.mcpkg" "$T/r2.mcpkg"
	cmp "$T/r2.mcpkg" "$PK/big.mcpkg"
	# What was fetched is what the chunks not verified lacked, not those chunks whole.
	done_line=$(printf '%s\n' "$output" | grep '"event":"summary"')
	fetched=$(printf '%s' "$done_line" | $PY -c 'import json,sys; print(json.load(sys.stdin)["bytes_fetched"])')
	whole=$(((24 - verified) << 20))
	[ "$fetched" -lt $((whole * 3 / 4)) ]
}

@test "session: a lossy receiver stopped by SIGTERM resumes its half-received chunks in the same session" {
	require_session
	lan_create 2
	ns_loss h2 10 $P
	recv_bg r2 h2 -i eth0
	# 24 MiB at 20 Mbit/s: the first pass lasts about 10 s. r2 is stopped once
	# it has about 3 MiB (its chunks are half there: none verifies before the
	# repair of its losses) and comes back at once, within --peer-timeout (15 s,
	# not 5: a loaded machine starts it late), so the session still waits for it.
	session_send_bg h1 -i eth0 -r 20M --linger 2s --peer-timeout 15s "$PK/big.mcpkg"
	wait_for 30 got_packets r2 2000
	bg_kill r2 TERM
	bg_ends r2 20 3
	bg_start r2b with_timeout 90 ns_exec h2 run_recv -g "$G" -p "$P" --json -i eth0 -o "$T/r2.mcpkg"
	partial=$(bg_json r2 summary 'j["partial"]')
	[ "$partial" -gt 0 ]
	bg_ends r2b 80 0
	grep -q "parts of $partial more" "$T/r2b.err"
	same r2 big
	bg_ends send 30 0
	# it came back into the same session as the same receiver (its id is in
	# the state), heard again before it could be taken for silent
	[ "$(bg_json send summary 'j["complete"], j["silent"]')" = "(1, 0)" ]
	[ "$(grep -c '"event":"joined"' "$T/send.out")" -eq 1 ]
}

@test "session: --mem less than a window of blocks, under loss: the receiver still keeps up" {
	require_session
	lan_create 2
	ns_loss h2 10 $P
	recv_bg r2 h2 -i eth0 --mem 4M
	session_send_bg h1 -i eth0 -r 300M --linger 300ms "$PK/big.mcpkg"
	bg_ends send 40 0
	bg_ends r2 10 0
	same r2 big
	[ "$(bg_json send summary 'j["silent"]')" -eq 0 ]
}

@test "session: receiver SIGKILLed mid-session and restarted with the same -o resumes and finishes" {
	asan_covered_elsewhere
	require_session
	ns_lo
	recv_bg r1 local
	session_send_bg local -r 20M --linger 500ms "$PK/big.mcpkg"
	# killed once its state (fsync'd about once a second) says it has a few chunks
	wait_for 30 state_has "$T/r1.mcpkg.state" 4
	bg_kill r1 KILL
	bg_ends r1 10 124 137
	[ ! -e "$T/r1.mcpkg" ]
	[ -s "$T/r1.mcpkg.part" ]
	mv "$T/r1.err" "$T/r1.first.err"
	recv_bg r1 local
	bg_ends r1 30 0
	bg_ends send 30 0
	same r1 big
	grep -Eq 'resuming .*: ([4-9]|[12][0-9]) of 24 chunks' "$T/r1.err"
	# it asked for less than the whole package the second time
	[ "$(bg_json r1 summary 'j["data_packets"]')" -lt "$(bg_json send summary 'j["symbols"]')" ]
}

@test "session: a PKG.part whose header disagrees with its manifest on the payload size is not resumed" {
	require_session
	ns_lo
	cp "$PK/small.mcpkg" "$T/r1.mcpkg.part"
	# the payload length (header bytes 40-47) is not covered by the package id
	printf '\177' | dd of="$T/r1.mcpkg.part" bs=1 seek=44 conv=notrunc 2>/dev/null
	# the receiver listens first: a sender that nobody joined ends 500 ms
	# after its first pass, sooner than a loaded machine may start a receiver
	recv_bg r1 local
	session_send_bg local -r 100M --linger 500ms "$PK/small.mcpkg"
	bg_ends r1 30 0
	bg_ends send 30 0
	same r1 small
	run -0 --separate-stderr run_pack verify "$T/r1.mcpkg"
}

@test "session: two sessions on two groups (same port) at once" {
	asan_covered_elsewhere
	require_session
	ns_lo
	G=239.77.20.1 recv_bg a1 local
	G=239.77.20.2 recv_bg b1 local
	G=239.77.20.1 recv_bg a2 local
	G=239.77.20.2 recv_bg b2 local
	G=239.77.20.1 SNAME=sa session_send_bg local -r 200M --linger 300ms "$PK/alpha.mcpkg"
	G=239.77.20.2 SNAME=sb session_send_bg local -r 200M --linger 300ms "$PK/beta.mcpkg"
	bg_ends sa 30 0
	bg_ends sb 30 0
	for r in a1 a2 b1 b2; do bg_ends $r 10 0; done
	same a1 alpha
	same a2 alpha
	same b1 beta
	same b2 beta
	[ "$(bg_json sa summary 'j["receivers"]')" -eq 2 ]
	[ "$(bg_json sb summary 'j["receivers"]')" -eq 2 ]
}

@test "session: a receiver pinned by --expect or --package to another package takes nothing" {
	require_session
	ns_lo
	local alpha beta
	alpha=$(pkg_id "$PK/alpha.mcpkg")
	beta=$(pkg_id "$PK/beta.mcpkg")
	[ "$alpha" != "$beta" ]
	recv_bg other local --expect "$beta" --timeout 2s
	recv_bg named local --package beta --timeout 2s
	recv_bg mine local --expect "${alpha:0:10}" --package alpha --timeout 5s
	session_send_bg local -r 200M --linger 300ms "$PK/alpha.mcpkg"
	bg_ends mine 30 0
	same mine alpha
	for r in other named; do
		bg_ends $r 30 3
		[ ! -e "$T/$r.mcpkg" ]
		# nothing of alpha was written
		[ ! -s "$T/$r.mcpkg.part" ]
		[ "$(bg_json $r summary 'j["verified"]')" -eq 0 ]
		[ "$(bg_json $r summary 'j["result"]')" = timeout ]
		! grep -q '"event":"joined"' "$T/$r.out"
	done
	bg_ends send 30 0
	# only the receiver that wanted alpha was counted
	[ "$(bg_json send summary 'j["receivers"]')" -eq 1 ]
}

@test "session: a receiver pinned by an --expect prefix to another package is not counted" {
	asan_covered_elsewhere
	require_session
	ns_lo
	local alpha beta
	alpha=$(pkg_id "$PK/alpha.mcpkg")
	beta=$(pkg_id "$PK/beta.mcpkg")
	recv_bg prefix local --expect "${beta:0:8}" --timeout 4s
	# linger 2s: the waiting receiver's hellos (about once a second) are heard
	session_send_bg local -r 200M --linger 2s "$PK/alpha.mcpkg"
	bg_ends prefix 30 3
	[ ! -e "$T/prefix.mcpkg" ]
	[ ! -s "$T/prefix.mcpkg.part" ]
	bg_ends send 30 0
	[ "$(bg_json send summary 'j["receivers"]')" -eq 0 ]
	[ "$(bg_json send summary 'j["reason"]')" = nobody ]
}

@test "session: --timeout bounds the wait when no session appears" {
	asan_covered_elsewhere
	require_session
	ns_lo
	SECONDS=0
	run -3 --separate-stderr with_timeout 20 ns_exec local run_recv -g $G -p $P --timeout 1s --json -o "$T/none.mcpkg"
	[ "$SECONDS" -lt 6 ]
	[[ $stderr == *$G* ]]
	[ ! -e "$T/none.mcpkg" ]
	echo "$output" | tail -n 1 | "$PY" -c 'import json, sys; j = json.loads(sys.stdin.read()); assert j["event"] == "summary" and j["result"] == "timeout", j'
}

@test "session: slow-receiver policy, a receiver behind 65% loss is told to leave, the others complete" {
	require_session
	lan_create 4
	# 65% of the DATA packets lost; announcements, manifest and the sender's
	# verdicts pass, so the receiver learns the package, keeps a state and
	# does hear "leave"
	data_loss h4 65
	recv_bg r2 h2 -i eth0
	recv_bg r3 h3 -i eth0
	recv_bg slow h4 -i eth0 --timeout 5s
	session_send_bg h1 -i eth0 -r 300M --linger 300ms --max-passes 1 "$PK/alpha.mcpkg"
	bg_ends send 40 3
	bg_ends r2 10 0
	bg_ends r3 10 0
	bg_ends slow 10 3
	same r2 alpha
	same r3 alpha
	incomplete slow
	grep -q 'told to leave' "$T/slow.err"
	[ "$(ns_loss_count h4)" -gt 0 ]
	[ "$(bg_json slow summary 'j["result"]')" = left ]
	[ "$(bg_json send summary 'j["left"]')" -eq 1 ]
	[ "$(bg_json send summary 'j["complete"]')" -eq 2 ]
	# exit 3 is never called complete: the outcome and the end line say who must repair
	[ "$(bg_json send summary 'j["result"]')" = incomplete ]
	grep -q 'session ended: 2 of 3 complete, 0 silent, 1 told to leave: they must run mcast-repair' "$T/send.err"
	[ "$(bg_json send leave 'j["address"].split(":")[0]')" = 198.18.0.4 ]
	# what it kept is verified: mcast-repair would start from it
	[ "$(bg_json slow summary 'j["verified"]')" -lt "$(bg_json slow summary 'j["chunks"]')" ]
}

# hostile.py: throws datagrams at a session. "garbage GROUP PORT SECS" joins
# GROUP:PORT, captures some real packets, then for SECS sends random bytes,
# real packets truncated at every length, real packets with bytes flipped
# (headers and symbols), symbols with made-up contents for blocks still to
# come, other versions and magics, and bare headers of every type, alternately to PORT and PORT+1. "nack GROUP PORT SESSION RID COUNT"
# sends COUNT NACKs for SESSION and RID to PORT+1: blocks 2^31 and 2^32-1,
# runs of 65535, needs beyond 255, the most entries a NACK holds. Prints the
# number of datagrams sent.
hostile_py() {
	cat >"$T/hostile.py" <<'EOF_PY'
import os, random, socket, struct, sys, time
mode, group, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
fam = socket.AF_INET6 if ":" in group else socket.AF_INET
tx = socket.socket(fam, socket.SOCK_DGRAM)
if fam == socket.AF_INET:
    tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
    tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
sent = 0
def send(b, p):
    global sent
    try:
        tx.sendto(b, (group, p))
        sent += 1
    except OSError:
        pass  # a full socket buffer is fine: this is noise
if mode == "garbage":
    secs = float(sys.argv[4])
    rx = socket.socket(fam, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    rx.bind((group, port))
    rx.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                  socket.inet_aton(group) + socket.inet_aton("0.0.0.0"))
    rx.settimeout(10)
    print("ready", file=sys.stderr, flush=True)
    real = []
    while len(real) < 300 or not any(r[4:5] == b"\x01" for r in real):
        real.append(rx.recv(65536))
    rx.close()
    data = [r for r in real if r[4] == 3]
    chunk_size = nchunks = nblocks = 0
    for r in real:
        if r[4] == 1 and len(r) >= 52:
            chunk_size, nchunks, sym, kmax = struct.unpack(">IIHH", r[40:52])
            nblocks = nchunks * -(-chunk_size // (sym * kmax))
    rnd = random.Random(7)
    end = time.monotonic() + secs
    i = 0
    while time.monotonic() < end:
        p = port + (i & 1)
        r = rnd.choice(real)
        k = i % 7
        if k == 0:
            b = os.urandom(rnd.randrange(0, 1500))
        elif k == 1:
            b = r[:rnd.randrange(0, len(r))]
        elif k == 2:
            b = bytearray(r)
            for _ in range(rnd.randrange(1, 4)):
                j = rnd.randrange(0, min(len(b), 48) if rnd.random() < 0.7 else len(b))
                b[j] ^= 1 << rnd.randrange(8)
            b = bytes(b)
        elif k == 3:
            b = r[:3] + bytes([rnd.choice([0, 2, 255])]) + r[4:]
        elif k == 4:
            b = b"MCX" + r[3:]
        elif k == 5 and data and chunk_size:
            # a well-formed symbol of this session for a block still to come,
            # with made-up contents: only the chunk digests can tell
            d = bytearray(rnd.choice(data))
            blk = struct.unpack(">I", d[12:16])[0]
            if blk + 1 < nblocks:
                d[12:16] = struct.pack(">I", rnd.randrange(blk + 1, nblocks))
            d[16:] = os.urandom(len(d) - 16)
            b = bytes(d)
        else:
            t = rnd.choice([0, 1, 2, 3, 4, 5, 6, 15, 16, 17, 18, 19, 20, 255])
            b = b"MCS\x02" + bytes([t, rnd.randrange(256)]) + r[6:12] + os.urandom(rnd.randrange(0, 100))
        send(b, p)
        i += 1
        if i % 64 == 0:
            time.sleep(0.002)
elif mode == "hello":
    # hellos of a made-up receiver whose host name is 255 bytes of escapes,
    # newlines, a forged log line and bytes that are not UTF-8
    session, rid, count = int(sys.argv[4], 16), int(sys.argv[5], 16), int(sys.argv[6])
    host = (b"evil\x1b[2J\nmcast-send: forged line\r\x00\"}" + bytes(range(0x80, 0x100)))[:255]
    hello = (b"MCS\x02" + bytes([16, 0]) + struct.pack(">HIQ", 0, session, rid) + bytes(16)
             + struct.pack(">II", 0, 0) + b"\x00" + b"\x00" + bytes([len(host)]) + host)
    for n in range(count):
        send(hello, port + 1)
        time.sleep(0.05)
else:
    session, rid, count = int(sys.argv[4], 16), int(sys.argv[5], 16), int(sys.argv[6])
    def nack(entries, sess=session, pass_=1):
        return (b"MCS\x02" + bytes([17, 0]) + struct.pack(">HIQIH", 0, sess, rid, pass_, len(entries))
                + b"\0\0" + b"".join(struct.pack(">IHH", *e) for e in entries))
    bad = [(1 << 31, 1, 1), (0xFFFFFFFF, 0xFFFF, 0xFFFF), ((1 << 31) - 1, 0xFFFF, 0xFFFF),
           (0xFFFF0000, 0xFFFF, 1), (0, 0, 5), (0, 1, 1000), (0, 0xFFFF, 256)]
    huge = [(0, 0xFFFF, 0xFFFF)] * 146
    for n in range(count):
        send(nack(bad), port + 1)
        send(nack(bad, pass_=0xFFFFFFFF), port + 1)
        send(nack(bad + [(0, 0xFFFF, 0xFFFF)] * (146 - len(bad))), port + 1)
        send(nack(huge, sess=session ^ 1), port + 1)  # another session: ignored
        if n % 50 == 0:
            send(nack(huge), port + 1)  # everything, from the start: served, in bounds
        time.sleep(0.002)
print(sent)
EOF_PY
}

@test "session: garbage and truncated datagrams at the group and the sender: nothing crashes, outputs identical" {
	require_session
	ns_lo
	hostile_py
	recv_bg r1 local
	recv_bg r2 local
	# the noise listens first, to copy real packets from the start
	bg_start noise with_timeout 30 ns_exec local "$PY" "$T/hostile.py" garbage $G $P 1.5
	wait_for 30 grep -q ready "$T/noise.err"
	# Made-up symbols cost repair rounds while the noise lasts; the
	# slow-receiver policy (its own test) must not end this one early.
	session_send_bg local -r 60M --linger 300ms --max-passes 0 "$PK/alpha.mcpkg"
	bg_ends noise 30 0
	[ "$(cat "$T/noise.out")" -gt 1000 ]
	bg_ends r1 30 0
	bg_ends r2 30 0
	bg_ends send 30 0
	same r1 alpha
	same r2 alpha
	[ "$(bg_json r1 summary 'j["dropped"]')" -gt 0 ]
	# made-up symbols reached the decoder, the chunk digests caught them
	[ $(($(bg_json r1 summary 'j["bad_chunks"]') + $(bg_json r2 summary 'j["bad_chunks"]'))) -gt 0 ]
	[ "$(bg_json send summary 'j["receivers"]')" -eq 2 ]
	[ "$(bg_json send summary 'j["complete"]')" -eq 2 ]
}

# data_loss HOST PCT: drop PCT% of the DATA packets (type 3, the fifth byte
# of the payload) arriving at HOST on $P; announcements, the manifest and the
# sender's verdicts pass, so a receiver there stays in the session and keeps
# asking. ns_loss HOST 0 removes it.
data_loss() {
	local odds="numgen random mod 100 < $2"
	[ "$2" -lt 100 ] || odds=
	ip netns exec "$(ns_name "$1")" nft -f - <<-EOF_NFT
		table inet loss {
			chain in {
				type filter hook input priority 0; policy accept;
				udp dport $P @th,96,8 3 $odds counter drop
			}
		}
	EOF_NFT
}

# hostile_session: a receiver r1 and a sender of big on the loopback host,
# the sender already counting r1, and hostile.py written: for the tests that
# forge feedback at a live session. r1 gets no DATA until hostile_release,
# so the session cannot end before the forged feedback comes, however late
# a loaded machine starts it (r1 had completed and the session ended first).
hostile_session() {
	require_session
	ns_lo
	hostile_py
	data_loss local 100
	recv_bg r1 local
	session_send_bg local -r 100M --linger 300ms --peer-timeout 4s --max-time 50s "$PK/big.mcpkg"
	wait_for 30 grep -q '"event":"joined"' "$T/send.out"
}

# hostile_release: r1's DATA flows again.
hostile_release() { ns_loss local 0; }

@test "session: hostile NACKs (block 2^31, huge runs) at PORT+1: the sender keeps going" {
	hostile_session
	local session rid
	session=$(bg_json send start 'j["session"]')
	rid=$(bg_json send joined 'j["receiver"]')
	# as the real receiver, and as one nobody has heard of
	bg_start n1 with_timeout 40 ns_exec local "$PY" "$T/hostile.py" nack $G $P "$session" "$rid" 300
	bg_start n2 with_timeout 40 ns_exec local "$PY" "$T/hostile.py" nack $G $P "$session" 0123456789abcdef 300
	bg_ends n1 40 0
	bg_ends n2 40 0
	# the made-up receiver was counted, then fell silent
	wait_for 30 grep -q '"event":"gone","receiver":"0123456789abcdef"' "$T/send.out"
	hostile_release
	bg_ends r1 40 0
	# the made-up receiver joined, fell silent and was no longer waited for
	bg_ends send 40 3
	same r1 big
	[ "$(bg_json send summary 'j["complete"]')" -eq 1 ]
	[ "$(bg_json send summary 'j["silent"]')" -eq 1 ]
	[ "$(bg_json send summary 'j["reason"]')" = complete ]
	[ "$(bg_json send summary 'j["result"]')" = incomplete ]
	grep -q 'session ended: 1 of 2 complete, 1 silent, 0 told to leave: they must run mcast-repair' "$T/send.err"
	[ "$(bg_json send summary 'j["feedback_dropped"]')" -gt 0 ]
	[ "$(bg_json send summary 'j["nacks"]')" -gt 300 ]
}

@test "session: receivers are named by host name; a forged hello's binary host name reaches no line raw" {
	require_session
	ns_lo
	hostile_py
	recv_bg r1 local
	# Hellos of a made-up receiver from before the sender starts until it
	# has counted them (a waiting receiver's hellos name no session), then
	# silence: it is no longer waited for, and the session ends with exit 3.
	bg_start h1 with_timeout 60 ns_exec local "$PY" "$T/hostile.py" hello $G $P 0 0123456789abcdef 1200
	session_send_bg local -r 100M --linger 300ms --peer-timeout 2s --max-time 40s "$PK/big.mcpkg"
	wait_for 20 grep -q '"event":"joined","receiver":"0123456789abcdef"' "$T/send.out"
	bg_kill h1
	local session me
	session=$(bg_json send start 'j["session"]')
	[[ $session =~ ^[0-9a-f]{8}$ ]]
	grep -q "^mcast-send: sending big .*, session $session\$" "$T/send.err"
	grep -q "^mcast-recv: joined session $session of big " "$T/r1.err"
	[ "$(bg_json r1 joined 'j["session"]')" = "$session" ]
	# the real receiver's hellos name this machine
	me=$(hostname | tr -c '!-~\n' '?')
	"$PY" - "$T/send.out" "$me" <<'EOF_PY'
import json, sys
hosts = [j.get("host") for j in map(json.loads, open(sys.argv[1]))
         if j["event"] == "joined" and j["receiver"] != "0123456789abcdef"]
assert hosts and all(h == sys.argv[2] for h in hosts), (hosts, sys.argv[2])
EOF_PY
	bg_ends r1 40 0
	bg_ends send 40 3
	same r1 big
	# the made-up receiver is named with its host name cut to 64 printable bytes
	local forged='evil?[2J?mcast-send:?forged?line??"}????????????????????????????'
	[ "$(bg_json send gone 'j["host"]')" = "$forged" ]
	[ "$(bg_json send gone 'j["receiver"]')" = 0123456789abcdef ]
	grep -qF "receiver 0123456789abcdef at " "$T/send.err"
	grep -qF "(host $forged): silent, no longer waited for" "$T/send.err"
	grep -qF "(host $forged): silent, 0 of 0 chunks" "$T/send.err"
	[ "$(bg_json send summary 'j["incomplete_receivers"][0]["host"]')" = "$forged" ]
	[ "$(bg_json send summary 'j["incomplete_receivers"][0]["state"]')" = silent ]
	[ "$(bg_json send summary 'len(j["incomplete_receivers"])')" -eq 1 ]
	# no control character, escape or forged line on stderr, every stdout line valid JSON
	! grep -q 'forged line' "$T/send.err"
	! LC_ALL=C grep -q $'[\x01-\x09\x0b-\x1f\x7f-\xff]' "$T/send.err"
	json_lines "$T/send.out"
}

# json_lines FILE: every line of FILE is one JSON object with an "event";
# prints the events, one a line.
json_lines() {
	"$PY" - "$1" <<'EOF_PY'
import json, sys
for n, line in enumerate(open(sys.argv[1]), 1):
    j = json.loads(line)
    assert isinstance(j, dict) and isinstance(j.get("event"), str), "line %d: %r" % (n, line)
    print(j["event"])
EOF_PY
}

@test "session: --json is one object per line with a final summary, -q keeps stderr empty" {
	asan_covered_elsewhere
	require_session
	ns_lo
	recv_bg r1 local
	bg_start r2 with_timeout 60 ns_exec local run_recv -q -g $G -p $P --json -o "$T/r2.mcpkg"
	sleep 0.3
	SNAME=send session_send_bg local -q -r 300M --linger 300ms "$PK/small.mcpkg"
	bg_ends send 30 0
	bg_ends r1 10 0
	bg_ends r2 10 0
	same r1 small
	same r2 small
	run -0 json_lines "$T/send.out"
	[ "${lines[0]}" = start ]
	[ "${lines[-1]}" = summary ]
	[[ " ${lines[*]} " == *" joined "* && " ${lines[*]} " == *" done "* ]]
	run -0 json_lines "$T/r1.out"
	[ "${lines[0]}" = joined ]
	[ "${lines[-1]}" = summary ]
	[[ " ${lines[*]} " == *" done "* ]]
	run -0 json_lines "$T/r2.out"
	[ "${lines[-1]}" = summary ]
	[ "$(bg_json r1 summary 'j["result"]')" = complete ]
	[ "$(bg_json r1 summary 'j["verified"]')" -eq "$(bg_json r1 summary 'j["chunks"]')" ]
	[ "$(bg_json r1 done 'j["id"]')" = "$(pkg_id "$PK/small.mcpkg")" ]
	for k in bytes_sent passes receivers complete nacks stale_nack_blocks feedback_dropped seconds; do
		bg_json send summary "j[\"$k\"]" >/dev/null
	done
	[ "$(bg_json send summary 'j["receivers"]')" -eq 2 ]
	# -q: nothing on stderr when all went well
	[ ! -s "$T/send.err" ]
	[ ! -s "$T/r2.err" ]
}

@test "session: nobody joins, the sender ends after one pass plus linger and exits 0" {
	asan_covered_elsewhere
	require_session
	ns_lo
	SECONDS=0
	run -0 --separate-stderr with_timeout 30 ns_exec local run_send -g $G -p $P -r 500M --linger 500ms --json "$PK/small.mcpkg"
	[ "$SECONDS" -lt 10 ]
	echo "$output" | tail -n 1 >"$T/send.out"
	[ "$(bg_json send summary 'j["reason"]')" = nobody ]
	[ "$(bg_json send summary 'j["receivers"]')" -eq 0 ]
	[ "$(bg_json send summary 'j["passes"]')" -eq 1 ]
	# the whole pass went out, even when it is one window and the linger is shorter than it
	[ "$(bg_json send summary 'j["bytes_sent"] >= j["package_bytes"]')" = True ]
	run -0 --separate-stderr with_timeout 30 ns_exec local run_send -g $G -p $P -r 20M --linger 0 --json "$PK/small.mcpkg"
	echo "$output" | tail -n 1 >"$T/send.out"
	[ "$(bg_json send summary 'j["bytes_sent"] >= j["package_bytes"]')" = True ]
}

@test "session: at a high rate the sender announces about every 2048 datagrams, so a joiner's held DATA reaches the next one" {
	asan_covered_elsewhere
	require_session
	ns_lo
	bg_start count with_timeout 30 ns_exec local udp_tool recv $G $P --types --seconds 1 --max-seconds 20
	wait_for 30 grep -q ready "$T/count.err"
	run -0 --separate-stderr with_timeout 30 ns_exec local run_send -g $G -p $P -r 1G --linger 0 --json "$PK/big.mcpkg"
	bg_wait count 25
	cat "$T/count.out"
	ann=$(sed -n 's/^type=1 //p' "$T/count.out")
	data=$(sed -n 's/^type=3 //p' "$T/count.out")
	[ -n "$ann" ] && [ -n "$data" ]
	# 1 Gbit/s is 8,600 datagrams between the ten-a-second announcements; what
	# this listener drops, it drops from both kinds alike
	echo "announcements $ann, data $data" >&3
	[ $((ann * 4096)) -ge "$data" ]
}

@test "session: a rerun on a complete PKG exits 0 at once, --max-time ends a session" {
	asan_covered_elsewhere
	require_session
	ns_lo
	cp "$PK/small.mcpkg" "$T/done.mcpkg"
	SECONDS=0
	run -0 --separate-stderr with_timeout 20 ns_exec local run_recv -g $G -p $P --timeout 5s -o "$T/done.mcpkg"
	[ "$SECONDS" -lt 4 ]
	cmp "$T/done.mcpkg" "$PK/small.mcpkg"
	# a receiver that never completes (all its data dropped) holds the
	# session until --max-time
	lan_create 2
	ns_loss h2 99 $P
	recv_bg slow h2 -i eth0 --timeout 3s
	session_send_bg h1 -i eth0 -r 100M --max-passes 0 --max-time 3s "$PK/small.mcpkg"
	bg_ends send 20 3
	[ "$(bg_json send summary 'j["reason"]')" = max-time ]
	[ "$(bg_json send summary 'int(j["seconds"] < 12)')" = 1 ]
	bg_ends slow 20 3
	incomplete slow || [ ! -e "$T/slow.mcpkg" ]
	# --max-time holds in the middle of a window of blocks too: at 5M a
	# window of 32 blocks lasts about 9 s
	# (the sender's own clock, not the test's: a loaded machine starts processes late)
	SNAME=slowrate session_send_bg h1 -i eth0 -r 5M --max-time 1s "$PK/big.mcpkg"
	bg_ends slowrate 20 0
	[ "$(bg_json slowrate summary 'j["reason"]')" = max-time ]
	[ "$(bg_json slowrate summary 'int(j["seconds"] < 2.5)')" = 1 ]
}

@test "session: recv refuses -o DIR, sums up an already complete PKG in --json, and keeps a rescan's state" {
	require_session
	ns_lo
	mkdir "$T/dir"
	run -2 --separate-stderr ns_exec local run_recv -g $G -p $P --timeout 1s -o "$T/dir"
	[[ "$stderr" == *"-o '$T/dir': is a directory"* ]]
	[ ! -e "$T/dir.part" ]
	[ ! -e "$T/dir.state" ]
	cp "$PK/small.mcpkg" "$T/done.mcpkg"
	run -0 --separate-stderr ns_exec local run_recv -g $G -p $P --timeout 5s --json -o "$T/done.mcpkg"
	[ "$(printf '%s\n' "$output" | tail -1 | "$PY" -c 'import json, sys; j = json.load(sys.stdin); print(j["event"], j["result"], j["already"])')" = "summary complete True" ]
	# a partial package whose state file is gone: the rescan is saved before anything else
	recv_bg part local
	session_send_bg local -r 20M --max-time 1s "$PK/big.mcpkg"
	bg_ends send 20 3
	bg_ends part 20 3
	incomplete part
	rm "$T/part.mcpkg.state"
	run -3 --separate-stderr with_timeout 20 ns_exec local run_recv -g $G -p $P --timeout 1s --json -o "$T/part.mcpkg"
	[[ "$stderr" == *"resuming"* ]]
	incomplete part
}

@test "session: recv writes through no symlink planted as PKG.part or PKG.state.tmp" {
	require_session
	ns_lo
	echo precious >"$T/target"
	ln -s "$T/target" "$T/s1.mcpkg.part"
	run -1 --separate-stderr with_timeout 20 ns_exec local run_recv -g $G -p $P --timeout 1s -o "$T/s1.mcpkg"
	[[ "$stderr" == *"s1.mcpkg.part: is a symbolic link"* ]]
	[ "$(cat "$T/target")" = precious ]
	# a resumable PKG.part whose state is saved through a planted PKG.state.tmp
	cp "$PK/small.mcpkg" "$T/s2.mcpkg.part"
	ln -s "$T/target" "$T/s2.mcpkg.state.tmp"
	run -3 --separate-stderr with_timeout 20 ns_exec local run_recv -g $G -p $P --timeout 1s -o "$T/s2.mcpkg"
	[ "$(cat "$T/target")" = precious ]
	[ -f "$T/s2.mcpkg.state" ] && [ ! -L "$T/s2.mcpkg.state" ]
}

@test "session: a damaged package is named by the sender, which ends the session; receivers keep their state" {
	require_session
	ns_lo
	cp "$PK/big.mcpkg" "$T/bad.mcpkg"
	# damage the middle of chunk 12 of 24 (1 MiB chunks after the header and manifest)
	printf 'XX' | dd of="$T/bad.mcpkg" bs=1 seek=$((12 * 1048576 + 600000)) conv=notrunc 2>/dev/null
	recv_bg r local --timeout 10s
	session_send_bg local -r 200M "$T/bad.mcpkg"
	bg_ends send 20 3
	bg_ends r 20 3
	grep -q 'chunk 1[12] (bytes [0-9]*-[0-9]*) does not match its digest' "$T/send.err"
	[ "$(bg_json send summary 'j["reason"]')" = damaged ]
	grep -q "package is damaged" "$T/r.err"
	incomplete r
}

@test "session: a PKG.part of another package: the receiver says why it takes no session" {
	require_session
	ns_lo
	recv_bg part local
	session_send_bg local -r 20M --max-time 1s "$PK/big.mcpkg"
	bg_ends send 20 3
	bg_ends part 20 3
	incomplete part
	recv_bg part local --timeout 3s
	session_send_bg local -r 100M --max-time 4s "$PK/small.mcpkg"
	bg_ends part 20 3
	bg_ends send 20 0
	grep -q "not taking the session of small (id [0-9a-f]*) on .*: .*part.mcpkg.part holds package" "$T/part.err"
	[ "$(grep -c 'not taking the session' "$T/part.err")" -eq 1 ]
	incomplete part
}

@test "session: an --mtu the link cannot carry is named" {
	require_session
	lan_create 1
	run -1 --separate-stderr with_timeout 20 ns_exec h1 run_send -g $G -p $P -i eth0 --mtu 9000 "$PK/small.mcpkg"
	[[ "$stderr" == *"--mtu 9000 is more than"* ]]
}

@test "session: usage equals the man page SYNOPSIS, and both pages lint clean" {
	asan_covered_elsewhere
	require_prog mcast-send mcast-recv
	command -v mandoc >/dev/null || skip "mandoc not installed"
	local p usage synopsis
	for p in send recv; do
		run -0 mandoc -Tlint -Wwarning "$MCAST_ROOT/man/mcast-$p.1"
		[ -z "$output" ]
		usage=$("run_$p" --help | sed -n '/^usage:/,/^$/p' | sed 's/^usage: //' | tr -s ' \t\n' ' ' | sed 's/^ //; s/ $//')
		synopsis=$(mandoc -Tascii "$MCAST_ROOT/man/mcast-$p.1" | col -b |
			sed -n '/^SYNOPSIS/,/^DESCRIPTION/p' | sed '1d;$d' | tr -s ' \t\n' ' ' | sed 's/^ //; s/ $//')
		[ "$usage" = "$synopsis" ]
	done
}

@test "session: sender restarted mid-session, the receiver carries on in the new session" {
	require_session
	ns_lo
	recv_bg r1 local
	# 20 Mbit/s: about ten seconds a pass; stopped once r1 saved 4 chunks
	session_send_bg local -r 20M --linger 300ms "$PK/big.mcpkg"
	wait_for 30 state_has "$T/r1.mcpkg.state" 4
	bg_kill send KILL
	bg_ends send 10 124 137
	SNAME=send2 session_send_bg local -r 60M --linger 300ms "$PK/big.mcpkg"
	bg_ends r1 30 0
	bg_ends send2 30 0
	same r1 big
	[ "$(grep -c '"event":"joined"' "$T/r1.out")" -eq 2 ]
	[ "$(bg_json send2 summary 'j["complete"]')" -eq 1 ]
}

@test "session: SIGTERM ends the session; the sender exits 1, the receiver 3 with its state" {
	asan_covered_elsewhere
	require_session
	ns_lo
	recv_bg r1 local --timeout 5s
	# 20 Mbit/s: about ten seconds a pass; stopped once r1 saved 4 chunks
	session_send_bg local -r 20M "$PK/big.mcpkg"
	wait_for 30 state_has "$T/r1.mcpkg.state" 4
	bg_kill send TERM
	bg_ends send 10 1
	[ "$(bg_json send summary 'j["reason"]')" = signal ]
	SECONDS=0
	bg_ends r1 10 3
	[ "$SECONDS" -lt 3 ]
	incomplete r1
	[ "$(bg_json r1 summary 'j["result"]')" = ended ]
}

@test "session: an output that cannot hold the package is said at once, naming the path, the bytes needed and free (exit 1)" {
	require_session
	ns_lo
	local d=$T/small
	mc_mount tmpfs "$d" -t tmpfs -o size=6M
	recv_bg r1 local -o "$d/a.mcpkg"
	session_send_bg local -r 100M --linger 300ms --max-time 30s "$PK/alpha.mcpkg"
	bg_ends r1 30 1
	grep -q "^mcast-recv: $d/a.mcpkg.part: not enough space: the package needs 8.0 MiB more ([0-9]* bytes), the filesystem of $d has 6.0 MiB free ([0-9]* bytes)\$" "$T/r1.err"
	[ "$(bg_json r1 summary 'j["result"]')" = error ]
	# nothing was received in vain: no PKG.part, no state, no package
	[ -z "$(ls -A "$d")" ]
	bg_kill send
	# What PKG.part already holds needs no new room: 6 MiB of it there and
	# 1 MiB taken by another file leave 3 MiB free for the 2 MiB still missing.
	mc_umount "$d"
	mc_mount tmpfs "$d" -t tmpfs -o size=10M
	head -c 6M "$PK/alpha.mcpkg" >"$d/a.mcpkg.part"
	head -c 1M /dev/zero >"$d/other"
	recv_bg r2 local -o "$d/a.mcpkg"
	SNAME=send2 session_send_bg local -r 100M --linger 300ms --max-time 30s "$PK/alpha.mcpkg"
	bg_ends r2 30 0
	cmp "$d/a.mcpkg" "$PK/alpha.mcpkg"
}

@test "session: a PKG.part, PKG.state or PKG.state.tmp that is a device node, FIFO or socket is refused (exit 2): nothing written onto it, nothing removed" {
	require_session
	require_loop
	ns_lo
	local dev sum
	head -c 1M /dev/urandom >"$T/back"
	dev=$(loop_attach "$T/back")
	sum=$(mc_dev_sum "$dev")
	mknod "$T/lp.part" b "$((0x$(stat -c %t "$dev")))" "$((0x$(stat -c %T "$dev")))"
	# With a session on: before, the package went onto the device behind lp.part ('lp.part: Invalid argument', exit 1).
	session_send_bg local -r 100M --linger 10s --max-time 30s "$PK/small.mcpkg"
	run -2 --separate-stderr with_timeout 20 ns_exec local run_recv -g $G -p $P --timeout 5 -o "$T/lp"
	[ "$stderr" = "mcast-recv: $T/lp.part: a device node, not a partial package: refused" ]
	bg_kill send
	[ -b "$T/lp.part" ]
	[ "$(mc_dev_sum "$dev")" = "$sum" ]
	[ ! -e "$T/lp" ] && [ ! -e "$T/lp.state" ]
	# No session: before, the node was removed as an empty PKG.part when the wait ended.
	mknod "$T/nd5.part" c 1 3
	run -2 --separate-stderr with_timeout 20 ns_exec local run_recv -g $G -p $P --timeout 1 -o "$T/nd5"
	[ "$stderr" = "mcast-recv: $T/nd5.part: a device node, not a partial package: refused" ]
	[ "$(stat -c '%F %t,%T' "$T/nd5.part")" = "character special file 1,3" ]
	# The state and its temporary: a FIFO is not waited on, a socket not replaced.
	mkfifo "$T/f.state"
	run -2 --separate-stderr with_timeout 20 ns_exec local run_recv -g $G -p $P --timeout 1 -o "$T/f"
	[ "$stderr" = "mcast-recv: $T/f.state: a FIFO, not a state file: refused" ]
	[ -p "$T/f.state" ] && [ ! -e "$T/f.part" ]
	"$PY" -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$T/s.state.tmp"
	run -2 --separate-stderr with_timeout 20 ns_exec local run_recv -g $G -p $P --timeout 1 -o "$T/s"
	[ "$stderr" = "mcast-recv: $T/s.state.tmp: a socket, not a state file: refused" ]
	[ -S "$T/s.state.tmp" ] && [ ! -e "$T/s.part" ]
	# A complete PKG beside a PKG.state that is a node: already complete, the node not removed as stale.
	cp "$PK/small.mcpkg" "$T/done.mcpkg"
	mknod "$T/done.mcpkg.state" c 1 3
	run -0 --separate-stderr with_timeout 20 ns_exec local run_recv -g $G -p $P --timeout 1 -o "$T/done.mcpkg"
	[ -c "$T/done.mcpkg.state" ]
}
