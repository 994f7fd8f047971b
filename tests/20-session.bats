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
	run_pack info --json "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])'
}

setup_file() {
	export PK=$BATS_FILE_TMPDIR
	[ -x "$MCAST_BIN/mcast-pack" ] || return 0
	mkpkg alpha 8M && mkpkg beta 6M && mkpkg big 24M && mkpkg small 3M
}

setup() {
	T=$BATS_TEST_TMPDIR
}

# Sessions: every program runs under timeout(1) so a hang fails the test
# instead of the suite, and teardown kills what is left.

# send_bg HOST ARG...: mcast-send --json on $G:$P from HOST, in the background
# as "send" (SNAME overrides the name).
send_bg() {
	local host=$1
	shift
	bg_start "${SNAME:-send}" with_timeout 60 ns_exec "$host" run_send -g "$G" -p "$P" --json "$@"
}

# recv_bg NAME HOST ARG...: mcast-recv --json -o $T/NAME.mcpkg on $G:$P in
# HOST, in the background as NAME; returns once it listens.
recv_bg() {
	local name=$1 host=$2
	shift 2
	bg_start "$name" with_timeout 60 ns_exec "$host" run_recv -g "$G" -p "$P" --json -o "$T/$name.mcpkg" "$@"
	wait_for 10 grep -q 'waiting for' "$T/$name.err" || {
		echo "$name does not listen:" >&2
		cat "$T/$name.err" >&2
		return 1
	}
}

# ends NAME SECS STATUS...: NAME ends within SECS with one of the STATUSes.
# bg_wait must run in the test's shell (not under `run`) to reap its child.
ends() {
	local name=$1 secs=$2 st=0 s
	shift 2
	bg_wait "$name" "$secs" || st=$?
	for s in "$@"; do
		[ "$st" -ne "$s" ] || return 0
	done
	echo "$name exited $st, expected $*; its stderr:" >&2
	cat "$T/$name.err" >&2
	return 1
}

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

# jget NAME EVENT EXPR: EXPR (Python, on the object j) of the last --json
# EVENT that NAME printed.
jget() {
	python3 - "$T/$1.out" "$2" "$3" <<'EOF'
import json, sys
path, event, expr = sys.argv[1:]
last = None
for line in open(path):
    j = json.loads(line)
    if j.get("event") == event:
        last = j
if last is None:
    sys.exit("no %s event in %s" % (event, path))
print(eval(expr, {}, {"j": last}))
EOF
}

# bigger_than FILE BYTES: FILE exists and holds more than BYTES.
bigger_than() {
	[ -e "$1" ] && [ "$(stat -c %s "$1")" -gt "$2" ]
}

require_session() {
	require_root
	require_prog mcast-pack mcast-send mcast-recv
}

# ---------------------------------------------------------------------------
# Usage

@test "session: --help of both programs on stdout only, exit 0" {
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
	[[ $stderr == *-r\ 5x* ]]
	run -2 --separate-stderr run_send -g 10.0.0.1 "$pkg"
	[ -z "$output" ]
	[[ $stderr == *10.0.0.1* ]]
	run -2 --separate-stderr run_send -g not-an-address "$pkg"
	[[ $stderr == *not-an-address* ]]
	run -2 --separate-stderr run_send -p 0 "$pkg"
	[[ $stderr == *-p\ 0* ]]
	run -2 --separate-stderr run_send -p 65535 "$pkg"
	[[ $stderr == *-p\ 65535* ]]
	run -2 --separate-stderr run_send -t 0 "$pkg"
	[[ $stderr == *-t\ 0* ]]
	run -2 --separate-stderr run_send --fec 101 "$pkg"
	[[ $stderr == *--fec\ 101* ]]
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
}

@test "session: mcast-send on a package that is not there exits 1 naming it" {
	require_prog mcast-send
	run -1 --separate-stderr run_send -g $G -p $P "$BATS_TEST_TMPDIR/absent.mcpkg"
	[ -z "$output" ]
	[[ $stderr == *absent.mcpkg* ]]
}

@test "session: mcast-recv bad usage exits 2 on stderr naming the option" {
	require_prog mcast-recv
	local o=$BATS_TEST_TMPDIR/out.mcpkg
	run -2 --separate-stderr run_recv --timeout -5 -o "$o"
	[ -z "$output" ]
	[[ $stderr == *--timeout\ -5* ]]
	run -2 --separate-stderr run_recv --timeout 5parsecs -o "$o"
	[[ $stderr == *--timeout* ]]
	run -2 --separate-stderr run_recv -g 10.0.0.1 -o "$o"
	[ -z "$output" ]
	[[ $stderr == *10.0.0.1* ]]
	run -2 --separate-stderr run_recv -p 70000 -o "$o"
	[[ $stderr == *-p\ 70000* ]]
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
	[ ! -e "$o" ] && [ ! -e "$o.part" ]
}

# ---------------------------------------------------------------------------
# Sessions

@test "session: three receivers and a late joiner all finish by multicast alone" {
	require_session
	ns_lo
	recv_bg r1 local
	recv_bg r2 local
	recv_bg r3 local
	# 24 MiB at 100 Mbit/s: a pass takes about two seconds
	send_bg local -r 100M --linger 300ms "$PK/big.mcpkg"
	wait_for 15 bigger_than "$T/r1.mcpkg.part" $((6 << 20))
	recv_bg late local
	ends r1 30 0
	ends r2 30 0
	ends r3 30 0
	ends late 30 0
	ends send 30 0
	for r in r1 r2 r3 late; do same $r big; done
	[ "$(jget send summary 'j["receivers"]')" -eq 4 ]
	[ "$(jget send summary 'j["complete"]')" -eq 4 ]
	# the late joiner heard only part of the stream (it joined mid-pass), and
	# NACKs brought it the rest
	[ "$(jget late summary 'j["data_packets"]')" -lt "$(jget r1 summary 'j["data_packets"]')" ]
	[ "$(jget send summary 'j["nacks"]')" -ge 1 ]
	[ "$(grep -c '"event":"joined"' "$T/send.out")" -eq 4 ]
	[ "$(grep -c '"event":"done"' "$T/send.out")" -eq 4 ]
}

@test "session: bridged LAN, real loss of 5% at one receiver and 20% at another" {
	require_session
	lan_create 4
	ns_loss h3 5 $P
	ns_loss h4 20 $P
	recv_bg r2 h2 -i eth0
	recv_bg r3 h3 -i eth0
	recv_bg r4 h4 -i eth0
	send_bg h1 -i eth0 -r 300M --linger 300ms "$PK/alpha.mcpkg"
	ends send 40 0
	ends r2 10 0
	ends r3 10 0
	ends r4 10 0
	for r in r2 r3 r4; do same $r alpha; done
	# the loss was real, and the lossy receivers were healed by repair symbols
	[ "$(ns_loss_count h3)" -gt 0 ]
	[ "$(ns_loss_count h4)" -gt "$(ns_loss_count h3)" ]
	[ "$(jget r4 summary 'j["decoded_blocks"]')" -gt 0 ]
	[ "$(jget send summary 'j["complete"]')" -eq 3 ]
	# the receivers' sender address is h1's
	[ "$(jget r2 joined 'j["sender"].split(":")[0]')" = 198.18.0.1 ]
}

@test "session: IPv6 group ff15:: on a veth LAN" {
	require_session
	lan_create 3
	G=ff15::77:20:1
	recv_bg r2 h2 -i eth0
	recv_bg r3 h3 -i eth0
	send_bg h1 -i eth0 -r 300M --linger 300ms "$PK/alpha.mcpkg"
	ends send 40 0
	ends r2 10 0
	ends r3 10 0
	same r2 alpha
	same r3 alpha
	[[ $(jget send start 'j["group"]') == *ff15::77:20:1* ]]
	[[ $(jget r2 joined 'j["sender"]') == *2001:db8::1* ]]
	[ "$(jget send summary 'j["complete"]')" -eq 2 ]
}

@test "session: sender killed mid-session, receiver exits 3 with PKG.part and PKG.state" {
	require_session
	ns_lo
	recv_bg r1 local --timeout 2s
	send_bg local -r 100M "$PK/big.mcpkg"
	wait_for 15 bigger_than "$T/r1.mcpkg.part" $((8 << 20))
	bg_kill send KILL
	ends send 10 124 137
	SECONDS=0
	ends r1 15 3
	[ "$SECONDS" -le 8 ]
	incomplete r1
	[ "$(jget r1 summary 'j["result"]')" = timeout ]
	[ "$(jget r1 summary 'j["verified"]')" -gt 0 ]
	[ "$(jget r1 summary 'j["verified"]')" -lt 24 ]
	grep -q 'went silent' "$T/r1.err"
}

@test "session: receiver SIGKILLed mid-session and restarted with the same -o resumes and finishes" {
	require_session
	ns_lo
	recv_bg r1 local
	send_bg local -r 100M --linger 500ms "$PK/big.mcpkg"
	# killed once it saved some state (fsync'd about once a second)
	wait_for 15 test -s "$T/r1.mcpkg.state"
	wait_for 15 bigger_than "$T/r1.mcpkg.part" $((10 << 20))
	bg_kill r1 KILL
	ends r1 10 124 137
	[ ! -e "$T/r1.mcpkg" ]
	[ -s "$T/r1.mcpkg.part" ]
	mv "$T/r1.err" "$T/r1.first.err"
	recv_bg r1 local
	ends r1 30 0
	ends send 30 0
	same r1 big
	grep -Eq 'resuming .*: [1-9][0-9]* of 24 chunks' "$T/r1.err"
	# it asked for less than the whole package the second time
	[ "$(jget r1 summary 'j["data_packets"]')" -lt "$(jget send summary 'j["symbols"]')" ]
}

@test "session: two sessions on two groups (same port) at once" {
	require_session
	ns_lo
	G=239.77.20.1 recv_bg a1 local
	G=239.77.20.2 recv_bg b1 local
	G=239.77.20.1 recv_bg a2 local
	G=239.77.20.2 recv_bg b2 local
	G=239.77.20.1 SNAME=sa send_bg local -r 200M --linger 300ms "$PK/alpha.mcpkg"
	G=239.77.20.2 SNAME=sb send_bg local -r 200M --linger 300ms "$PK/beta.mcpkg"
	ends sa 30 0
	ends sb 30 0
	for r in a1 a2 b1 b2; do ends $r 10 0; done
	same a1 alpha
	same a2 alpha
	same b1 beta
	same b2 beta
	[ "$(jget sa summary 'j["receivers"]')" -eq 2 ]
	[ "$(jget sb summary 'j["receivers"]')" -eq 2 ]
}

@test "session: a receiver pinned by --expect or --package to another package takes nothing" {
	require_session
	ns_lo
	local alpha beta
	alpha=$(pkg_id "$PK/alpha.mcpkg")
	beta=$(pkg_id "$PK/beta.mcpkg")
	[ "$alpha" != "$beta" ]
	recv_bg other local --expect "$beta" --timeout 2s
	recv_bg prefix local --expect "${beta:0:8}" --timeout 2s
	recv_bg named local --package beta --timeout 2s
	recv_bg mine local --expect "${alpha:0:10}" --package alpha --timeout 5s
	send_bg local -r 200M --linger 300ms "$PK/alpha.mcpkg"
	ends mine 30 0
	same mine alpha
	for r in other prefix named; do
		ends $r 30 3
		[ ! -e "$T/$r.mcpkg" ]
		# nothing of alpha was written
		[ ! -s "$T/$r.mcpkg.part" ]
		[ "$(jget $r summary 'j["verified"]')" -eq 0 ]
		[ "$(jget $r summary 'j["result"]')" = timeout ]
		! grep -q '"event":"joined"' "$T/$r.out"
	done
	ends send 30 0
	# only the receiver that wanted alpha was counted
	[ "$(jget send summary 'j["receivers"]')" -eq 1 ]
}

@test "session: --timeout bounds the wait when no session appears" {
	require_session
	ns_lo
	SECONDS=0
	run -3 --separate-stderr with_timeout 20 ns_exec local run_recv -g $G -p $P --timeout 1s --json -o "$T/none.mcpkg"
	[ "$SECONDS" -lt 6 ]
	[[ $stderr == *$G* ]]
	[ ! -e "$T/none.mcpkg" ]
	echo "$output" | tail -n 1 | python3 -c 'import json, sys; j = json.loads(sys.stdin.read()); assert j["event"] == "summary" and j["result"] == "timeout", j'
}

@test "session: slow-receiver policy, a receiver behind 65% loss is told to leave, the others complete" {
	require_session
	lan_create 4
	ns_loss h4 65 $P
	recv_bg r2 h2 -i eth0
	recv_bg r3 h3 -i eth0
	recv_bg slow h4 -i eth0
	send_bg h1 -i eth0 -r 300M --linger 300ms --max-passes 1 "$PK/alpha.mcpkg"
	ends send 40 3
	ends r2 10 0
	ends r3 10 0
	ends slow 10 3
	same r2 alpha
	same r3 alpha
	incomplete slow
	grep -q 'told to leave' "$T/slow.err"
	[ "$(jget slow summary 'j["result"]')" = left ]
	[ "$(jget send summary 'j["left"]')" -eq 1 ]
	[ "$(jget send summary 'j["complete"]')" -eq 2 ]
	[ "$(jget send leave 'j["address"].split(":")[0]')" = 198.18.0.4 ]
	# what it kept is verified: mcast-repair would start from it
	[ "$(jget slow summary 'j["verified"]')" -lt "$(jget slow summary 'j["chunks"]')" ]
}
