#!/usr/bin/env bats
# mcast-sched: counting receivers' hellos and chain-loading COMMAND, in a
# one-host loopback namespace. Hellos come from tests/tools/mc-hello.c,
# built here from lib/ sources so it speaks the current wire format.

load helper
bats_require_minimum_version 1.5.0

setup_file() {
	export HELLO=$BATS_FILE_TMPDIR/mc-hello
	cd "$MCAST_ROOT" &&
		${CC:-cc} -std=c11 -D_GNU_SOURCE -O1 -Ilib -o "$HELLO" tests/tools/mc-hello.c \
			lib/wire.c lib/net.c lib/auth.c lib/crypto.c lib/exitcode.c lib/log.c lib/clock.c lib/opt.c -lcrypto -lxxhash -lm
}

G=239.77.1.5
P=17077

# sched_bg ARG...: start mcast-sched in the namespace on $G:$P, wait until it listens.
sched_bg() {
	bg_start sched ns_exec local run_sched -g $G -p $P --json "$@"
	SCHED_PID=$BG_PID
	wait_for 30 grep -q '"event":"wait"' "$BATS_TEST_TMPDIR/sched.out" || {
		cat "$BATS_TEST_TMPDIR/sched.err" >&2
		return 1
	}
}

# hello ARG...: mc-hello in the namespace (-r RID -n NAME -c COUNT -w MS -k RECEIVERS).
hello() {
	ip netns exec "$(ns_name local)" timeout 20 "$HELLO" -g $G -p $P "$@"
}

# json FILE PYEXPR: evaluate PYEXPR on the JSON object in FILE (as j).
json() {
	python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# event NAME: the last --json event NAME of the sched run, as a file.
event() {
	grep "\"event\":\"$1\"" "$BATS_TEST_TMPDIR/sched.out" | tail -n 1 >"$BATS_TEST_TMPDIR/ev.$1"
	[ -s "$BATS_TEST_TMPDIR/ev.$1" ] && echo "$BATS_TEST_TMPDIR/ev.$1"
}

# outcome RESULT: the --json summary of the sched run if its result is RESULT, as a file.
outcome() {
	grep "\"event\":\"summary\",\"v\":1,\"result\":\"$1\"" "$BATS_TEST_TMPDIR/sched.out" | tail -n 1 >"$BATS_TEST_TMPDIR/ev.$1"
	[ -s "$BATS_TEST_TMPDIR/ev.$1" ] && echo "$BATS_TEST_TMPDIR/ev.$1"
}

# sched_wait SECS STATUS: wait for the background mcast-sched (bg_wait must run
# in this shell, not under `run`, to reap its child) and check its status.
sched_wait() {
	local st=0
	bg_wait sched "$1" || st=$?
	[ "$st" -eq "$2" ] || {
		echo "mcast-sched exited $st, expected $2" >&2
		cat "$BATS_TEST_TMPDIR/sched.err" >&2
		return 1
	}
}

# The client list file goes to TMPDIR: keep it in the test's scratch.
setup() { export TMPDIR=$BATS_TEST_TMPDIR; }

REPORT='echo "clients=$MCAST_CLIENTS pid=$$"; cat "$MCAST_CLIENT_LIST"'

@test "sched: --help prints usage on stdout and exits 0" {
	run -0 --separate-stderr run_sched --help
	[[ $output == usage:\ mcast-sched* ]]
	[[ $output == *--min-clients* && $output == *--max-wait* && $output == *COMMAND* ]]
	[ -z "$stderr" ]
	run -0 --separate-stderr run_sched -h
	[[ $output == usage:* ]]
}

@test "sched: --version prints the version" {
	run -0 --separate-stderr run_sched --version
	[[ $output =~ ^mcast-sched\ [0-9]+\.[0-9]+ ]]
	[ -z "$stderr" ]
}

@test "sched: bad usage exits 2 with usage on stderr only" {
	run -2 --separate-stderr run_sched --bogus -- true
	[ -z "$output" ]
	[[ $stderr == *usage:* ]]
	run -2 --separate-stderr run_sched -V -- true
	[ -z "$output" ]
}

@test "sched: missing COMMAND exits 2" {
	run -2 --separate-stderr run_sched --min-clients 2
	[[ $stderr == *COMMAND* ]]
	[ -z "$output" ]
	run -2 --separate-stderr run_sched --min-clients 2 --
	[[ $stderr == *COMMAND* ]]
}

@test "sched: bad values exit 2 naming the option" {
	run -2 --separate-stderr run_sched --min-clients x -- true
	[[ $stderr == *--min-clients*x* ]]
	run -2 --separate-stderr run_sched --min-clients 0 -- true
	[[ $stderr == *--min-clients* ]]
	run -2 --separate-stderr run_sched --min-clients -3 -- true
	[[ $stderr == *--min-clients* ]]
	run -2 --separate-stderr run_sched --max-wait -5 -- true
	[[ $stderr == *--max-wait*-5* ]]
	run -2 --separate-stderr run_sched --max-wait 5parsecs -- true
	[[ $stderr == *--max-wait* ]]
	run -2 --separate-stderr run_sched -p 70000 -- true
	[[ $stderr == *-p* ]]
	run -2 --separate-stderr run_sched -g 198.18.0.1 -- true
	[[ $stderr == *198.18.0.1* ]]
	[ -z "$output" ]
}

@test "sched: COMMAND not found exits 127 at once" {
	require_root
	ns_lo
	SECONDS=0
	run -127 --separate-stderr with_timeout 20 ns_exec local run_sched -g $G -p $P --max-wait 15s -- mcast-no-such-command-x
	[[ $stderr == *mcast-no-such-command-x* ]]
	[ "$SECONDS" -lt 10 ]
	run -127 --separate-stderr run_sched --max-wait 15s -- "$BATS_TEST_TMPDIR/absent/cmd"
	run -127 --separate-stderr run_sched --json --max-wait 15s -- "$BATS_TEST_TMPDIR/absent/cmd"
	[ "$output" = '{"event":"summary","v":1,"result":"error","path":null,"exit":127}' ]
}

@test "sched: COMMAND not executable exits 126 at once" {
	require_root
	ns_lo
	printf '#!/bin/sh\necho hi\n' >"$BATS_TEST_TMPDIR/noexec"
	chmod 644 "$BATS_TEST_TMPDIR/noexec"
	SECONDS=0
	run -126 --separate-stderr with_timeout 20 ns_exec local run_sched -g $G -p $P --max-wait 15s -- "$BATS_TEST_TMPDIR/noexec"
	[[ $stderr == *noexec* ]]
	[ "$SECONDS" -lt 10 ]
	run -126 --separate-stderr run_sched -- "$BATS_TEST_TMPDIR"
}

@test "sched: starts on reaching --min-clients well before --max-wait" {
	require_root
	ns_lo
	SECONDS=0
	sched_bg --min-clients 3 --max-wait 30s -- sh -c "$REPORT"
	hello -r 101 -k 3 -c 3 -w 200
	sched_wait 15 0
	[ "$SECONDS" -lt 15 ]
	out=$BATS_TEST_TMPDIR/sched.out
	grep -q "clients=3 " "$out"
	# chain-loaded: COMMAND runs as the same process
	grep -q "pid=$SCHED_PID\$" "$out"
	[ "$(grep -c '^00000000000000[0-9a-f][0-9a-f] 198\.18\.0\.1$' "$out")" -eq 3 ]
	grep -q '^0000000000000065 ' "$out"
	f=$(outcome started)
	[ "$(json "$f" 'j["reason"]')" = quorum ]
	[ "$(json "$f" 'j["clients"]')" = 3 ]
	[ "$(grep -c '"event":"client"' "$out")" -eq 3 ]
}

@test "sched: starts at --max-wait with fewer clients" {
	require_root
	ns_lo
	SECONDS=0
	sched_bg --min-clients 5 --max-wait 2s -- sh -c "$REPORT"
	hello -r 7 -k 2 -c 2 -w 100
	sched_wait 15 0
	[ "$SECONDS" -ge 2 ]
	[ "$SECONDS" -lt 12 ]
	grep -q "clients=2 " "$BATS_TEST_TMPDIR/sched.out"
	f=$(outcome started)
	[ "$(json "$f" 'j["reason"]')" = max-wait ]
	[ "$(json "$f" 'j["waited"] >= 2')" = True ]
}

@test "sched: a receiver is counted once however many hellos it sends" {
	require_root
	ns_lo
	sched_bg --min-clients 2 --max-wait 2s -- sh -c "$REPORT"
	hello -r 4242 -c 15 -w 50 -H lab-pc-07
	sched_wait 15 0
	grep -q "clients=1 " "$BATS_TEST_TMPDIR/sched.out"
	[ "$(grep -c '"event":"client"' "$BATS_TEST_TMPDIR/sched.out")" -eq 1 ]
	# named by the host name its hellos carry
	[ "$(json "$(event client)" 'j["host"]')" = lab-pc-07 ]
	grep -q '^mcast-sched: client 1: 0000000000001092 at 198.18.0.1 (host lab-pc-07)$' "$BATS_TEST_TMPDIR/sched.err"
	[ "$(grep -c '^0000000000001092 198.18.0.1$' "$BATS_TEST_TMPDIR/sched.out")" -eq 1 ]
}

@test "sched: hellos for another package are not counted, for any package are" {
	require_root
	ns_lo
	sched_bg --package win11 --min-clients 3 --max-wait 3s -- sh -c "$REPORT"
	hello -r 1 -n debian -c 3 -w 50
	hello -r 4 -n debian -c 2 -w 50
	hello -r 5 -n win11x -c 2 -w 50
	hello -r 2 -n win11 -c 2 -w 50
	hello -r 3 -c 2 -w 50
	sched_wait 15 0
	out=$BATS_TEST_TMPDIR/sched.out
	grep -q "clients=2 " "$out"
	grep -q '^0000000000000002 ' "$out"
	grep -q '^0000000000000003 ' "$out"
	! grep -q '^0000000000000001 ' "$out"
	! grep -q '^0000000000000004 ' "$out"
	[ "$(json "$(outcome started)" 'j["reason"]')" = max-wait ]
}

@test "sched: no --package counts every package" {
	require_root
	ns_lo
	sched_bg --min-clients 2 --max-wait 20s -- sh -c "$REPORT"
	hello -r 1 -n debian -c 2 -w 50
	hello -r 2 -n win11 -c 2 -w 50
	sched_wait 15 0
	grep -q "clients=2 " "$BATS_TEST_TMPDIR/sched.out"
}

@test "sched: SIGUSR1 starts at once" {
	require_root
	ns_lo
	sched_bg --min-clients 10 --max-wait 60s -- sh -c "$REPORT"
	hello -r 9 -c 2 -w 50
	wait_for 5 grep -q '"event":"client"' "$BATS_TEST_TMPDIR/sched.out"
	SECONDS=0
	kill -USR1 "$SCHED_PID"
	sched_wait 10 0
	[ "$SECONDS" -lt 5 ]
	grep -q "clients=1 " "$BATS_TEST_TMPDIR/sched.out"
	[ "$(json "$(outcome started)" 'j["reason"]')" = signal ]
}

@test "sched: SIGUSR1 starts even with no client" {
	require_root
	ns_lo
	sched_bg --min-clients 10 -- sh -c "$REPORT"
	kill -USR1 "$SCHED_PID"
	sched_wait 10 0
	grep -q "clients=0 " "$BATS_TEST_TMPDIR/sched.out"
}

@test "sched: --status keeps a JSON status, rewritten atomically" {
	require_root
	ns_lo
	st=$BATS_TEST_TMPDIR/status.json
	# --max-wait 10m: however loaded the machine, the wait does not end before the signal below
	sched_bg --status "$st" --package win11 --min-clients 5 --max-wait 10m -- sh -c "$REPORT"
	[ -s "$st" ]
	[ "$(json "$st" 'j["state"]')" = waiting ]
	[ "$(json "$st" 'j["clients"]')" = 0 ]
	hello -r 10 -k 2 -c 2 -w 50 -n win11
	# the file is rewritten about once a second: wait for the rewrite that counts
	# both (read again at each try; a loaded machine can rewrite it late)
	counted() { [ "$(json "$st" 'j["clients"]')" = 2 ]; }
	wait_for 30 counted
	[ "$(json "$st" 'sorted(j["ids"])')" = "['000000000000000a', '000000000000000b']" ]
	[ "$(json "$st" 'sorted(r["address"] for r in j["receivers"])')" = "['198.18.0.1', '198.18.0.1']" ]
	[ "$(json "$st" 'j["condition"]')" = "5 clients or 10m" ]
	[ "$(json "$st" 'j["min_clients"], j["max_wait"], j["package"]')" = "(5, 600.0, 'win11')" ]
	# rewritten every second: time waited grows, and the time remaining is what is left of --max-wait
	w1=$(json "$st" 'j["waited"]')
	grew() { [ "$(json "$st" "j['waited'] - $w1 >= 1")" = True ]; }
	wait_for 30 grew
	[ "$(json "$st" 'j["remaining"] < 599 and abs(j["remaining"] + j["waited"] - 600) < 1')" = True ]
	# no temporary left beside it
	[ "$(ls "$BATS_TEST_TMPDIR" | grep -c '^status.json')" -eq 1 ]
	kill -USR1 "$SCHED_PID"
	sched_wait 10 0
	[ "$(json "$st" 'j["state"], j["reason"], j["clients"]')" = "('started', 'signal', 2)" ]
}

@test "sched: no client within --max-wait runs COMMAND with MCAST_CLIENTS=0 and exits with its status" {
	require_root
	ns_lo
	SECONDS=0
	st=$BATS_TEST_TMPDIR/st.json
	sched_bg --min-clients 5 --max-wait 1s --status "$st" -- \
		sh -c 'echo "clients=$MCAST_CLIENTS"; [ -f "$MCAST_CLIENT_LIST" ] && [ ! -s "$MCAST_CLIENT_LIST" ] && echo list-empty; exit 5'
	sched_wait 10 5
	[ "$SECONDS" -ge 1 ]
	grep -qx 'clients=0' "$BATS_TEST_TMPDIR/sched.out"
	grep -qx 'list-empty' "$BATS_TEST_TMPDIR/sched.out"
	f=$(outcome started)
	[ "$(json "$f" 'j["reason"], j["clients"]')" = "('max-wait', 0)" ]
	[ -z "$(outcome empty)" ]
	[ "$(json "$st" 'j["state"], j["reason"], j["clients"], j["condition"]')" = "('started', 'max-wait', 0, '5 clients or 1s')" ]

	# --max-wait alone, as DESIGN's example: the command runs, its status is ours
	cd "$BATS_TEST_TMPDIR"
	run -0 with_timeout 10 ns_exec local run_sched -g $G -p $P --min-clients 5 --max-wait 1s -- touch ran
	# the client list is read twice by its path, and leaves nothing in TMPDIR
	mkdir tmp
	TMPDIR="$BATS_TEST_TMPDIR/tmp" run -0 with_timeout 10 ns_exec local run_sched -g $G -p $P --max-wait 0 -- \
		sh -c 'cat "$MCAST_CLIENT_LIST"; cat "$MCAST_CLIENT_LIST"; echo "list=$MCAST_CLIENT_LIST"'
	[[ "$output" == *"list=/dev/fd/"* ]]
	[ -z "$(ls -A tmp)" ]
	[ -f ran ]
	run -3 with_timeout 10 ns_exec local run_sched -g $G -p $P --max-wait 0 -- sh -c 'exit 3'
	run -0 with_timeout 10 ns_exec local run_sched -g $G -p $P --max-wait 250ms -- true
}

@test "sched: --skip-empty exits 3 without running COMMAND when nobody asked" {
	require_root
	ns_lo
	st=$BATS_TEST_TMPDIR/st.json
	sched_bg --skip-empty --min-clients 5 --max-wait 1s --status "$st" -- sh -c "$REPORT"
	sched_wait 10 3
	! grep -q 'clients=' "$BATS_TEST_TMPDIR/sched.out"
	grep -q 'skip-empty' "$BATS_TEST_TMPDIR/sched.err"
	[ -n "$(outcome empty)" ]
	[ -z "$(outcome started)" ]
	[ "$(json "$st" 'j["state"], j["reason"], j["clients"]')" = "('empty', 'max-wait', 0)" ]
	[ "$(json "$st" 'j["condition"]')" = "5 clients or 1s (skipped if nobody asked)" ]

	# -q: nothing said, the status tells
	run -3 --separate-stderr with_timeout 10 ns_exec local run_sched -g $G -p $P -q --skip-empty --max-wait 250ms -- true
	[ -z "$stderr" ]
	[ -z "$output" ]

	# with a client it runs as without the option
	sched_bg --skip-empty --min-clients 5 --max-wait 2s -- sh -c "$REPORT; exit 4"
	hello -r 8 -c 2 -w 100
	sched_wait 15 4
	grep -q 'clients=1 ' "$BATS_TEST_TMPDIR/sched.out"
}

@test "sched: --start-empty is still accepted and changes nothing" {
	asan_covered_elsewhere
	require_root
	ns_lo
	sched_bg --max-wait 1s --start-empty -- sh -c "$REPORT; exit 6"
	sched_wait 10 6
	grep -q 'clients=0 ' "$BATS_TEST_TMPDIR/sched.out"
	run -0 --separate-stderr run_sched --help
	[[ $output != *--start-empty* ]]
}

@test "sched: --max-wait alone starts at the deadline, not at the first client" {
	require_root
	ns_lo
	SECONDS=0
	sched_bg --max-wait 2s -- sh -c "$REPORT"
	hello -r 3 -c 2 -w 50
	sched_wait 10 0
	[ "$SECONDS" -ge 2 ]
	grep -q 'clients=1 ' "$BATS_TEST_TMPDIR/sched.out"
}

@test "sched: no condition starts at the first client; exit status is COMMAND's" {
	require_root
	ns_lo
	sched_bg -- sh -c 'echo "clients=$MCAST_CLIENTS"; exit 7'
	hello -r 77 -c 3 -w 100
	sched_wait 10 7
	grep -q 'clients=1$' "$BATS_TEST_TMPDIR/sched.out"
	[ "$(json "$(outcome started)" 'j["reason"]')" = first-client ]
}

@test "sched: -q is quiet, SIGTERM cancels" {
	require_root
	ns_lo
	st=$BATS_TEST_TMPDIR/st.json
	sched_bg -q --status "$st" --min-clients 3 -- true
	kill -TERM "$SCHED_PID"
	sched_wait 10 143
	[ ! -s "$BATS_TEST_TMPDIR/sched.err" ]
	[ "$(json "$st" 'j["state"]')" = cancelled ]
	[ "$(json "$(outcome interrupted)" 'j["signal"]')" = TERM ]
}

@test "sched: counts a real mcast-recv waiting before any session" {
	asan_covered_elsewhere
	require_root
	require_prog mcast-recv
	ns_lo
	sched_bg --package win11 --min-clients 1 --max-wait 20s -- sh -c "$REPORT"
	bg_start recv ns_exec local run_recv -g $G -p $P --package win11 --timeout 15s -o "$BATS_TEST_TMPDIR/w.mcpkg"
	sched_wait 15 0
	grep -q 'clients=1 ' "$BATS_TEST_TMPDIR/sched.out"
	[ "$(json "$(outcome started)" 'j["reason"]')" = quorum ]
	bg_kill recv
}

@test "sched: a receiver resuming a PKG.part asks for that package by name" {
	require_root
	require_prog mcast-recv mcast-pack
	ns_lo
	head -c 300000 /dev/urandom >"$BATS_TEST_TMPDIR/img"
	run_pack create -q -z none -n win10 -o "$BATS_TEST_TMPDIR/win10.mcpkg" - <"$BATS_TEST_TMPDIR/img"
	# A PKG.part of win10 with its head and part of its payload: the receiver is pinned to win10.
	head -c 70000 "$BATS_TEST_TMPDIR/win10.mcpkg" >"$BATS_TEST_TMPDIR/w.mcpkg.part"
	bg_start recv ns_exec local run_recv -g $G -p $P --timeout 15s -o "$BATS_TEST_TMPDIR/w.mcpkg"
	sched_bg --package win11 --min-clients 1 --max-wait 2s -- sh -c "$REPORT"
	sched_wait 15 0
	grep -q 'clients=0 ' "$BATS_TEST_TMPDIR/sched.out"
	sched_bg --package win10 --min-clients 1 --max-wait 10s -- sh -c "$REPORT"
	sched_wait 15 0
	grep -q 'clients=1 ' "$BATS_TEST_TMPDIR/sched.out"
	bg_kill recv
}

@test "sched: usage equals the man page SYNOPSIS, and the page lints clean" {
	command -v mandoc >/dev/null || skip "mandoc not installed"
	run -0 mandoc -Tlint -Wwarning "$MCAST_ROOT/man/mcast-sched.1"
	[ -z "$output" ]
	usage=$(run_sched --help | sed -n '/^usage:/,/^$/p' | sed 's/^usage: //' | tr -s ' \t\n' ' ' | sed 's/^ //; s/ $//')
	synopsis=$(mandoc -Tascii "$MCAST_ROOT/man/mcast-sched.1" | col -b |
		sed -n '/^SYNOPSIS/,/^DESCRIPTION/p' | sed '1d;$d' | tr -s ' \t\n' ' ' | sed 's/^ //; s/ $//')
	[ "$usage" = "$synopsis" ]
}

@test "sched: IPv6 group on a LAN counts receivers of another host" {
	require_root
	lan_create 3
	bg_start sched ns_exec h1 run_sched -g ff15::7:5 -p $P -i eth0 --json --min-clients 2 --max-wait 20s -- sh -c "$REPORT"
	SCHED_PID=$BG_PID
	wait_for 30 grep -q '"event":"wait"' "$BATS_TEST_TMPDIR/sched.out"
	ip netns exec "$(ns_name h2)" timeout 20 "$HELLO" -g ff15::7:5 -p $P -i eth0 -r 2 -c 3 -w 100
	ip netns exec "$(ns_name h3)" timeout 20 "$HELLO" -g ff15::7:5 -p $P -i eth0 -r 3 -c 3 -w 100
	sched_wait 15 0
	out=$BATS_TEST_TMPDIR/sched.out
	grep -q 'clients=2 ' "$out"
	grep -q '^0000000000000002 2001:db8::2$' "$out"
	grep -q '^0000000000000003 2001:db8::3$' "$out"
}

@test "sched: receivers waiting before the session are counted, then served by mcast-send" {
	asan_covered_elsewhere
	require_root
	require_prog mcast-pack mcast-send mcast-recv
	lan_create 3
	mkdir "$BATS_TEST_TMPDIR/tree"
	head -c 3000000 /dev/urandom >"$BATS_TEST_TMPDIR/tree/blob"
	run_pack create -o "$BATS_TEST_TMPDIR/win11.mcpkg" -n win11 "$BATS_TEST_TMPDIR/tree"
	bg_start r2 ns_exec h2 run_recv -g $G -p $P -i eth0 --package win11 --timeout 30s -o "$BATS_TEST_TMPDIR/r2.mcpkg"
	bg_start r3 ns_exec h3 run_recv -g $G -p $P -i eth0 --package win11 --timeout 30s -o "$BATS_TEST_TMPDIR/r3.mcpkg"
	sleep 1
	bg_start sched ns_exec h1 run_sched -g $G -p $P -i eth0 --json --package win11 --min-clients 2 --max-wait 20s \
		-- "$MCAST_BIN/mcast-send" -g $G -p $P -i eth0 -r 200M --max-time 40s "$BATS_TEST_TMPDIR/win11.mcpkg"
	sched_wait 60 0
	[ "$(json "$(outcome started)" 'j["reason"]')" = quorum ]
	bg_wait r2 30
	bg_wait r3 30
	cmp "$BATS_TEST_TMPDIR/win11.mcpkg" "$BATS_TEST_TMPDIR/r2.mcpkg"
	cmp "$BATS_TEST_TMPDIR/win11.mcpkg" "$BATS_TEST_TMPDIR/r3.mcpkg"
}

@test "sched: --status never replaces a device node, FIFO or socket (or a symlink to one): refused (exit 2), or left alone when made during the wait" {
	require_root
	ns_lo
	cd "$BATS_TEST_TMPDIR"
	mknod nd c 1 3
	ln -s nd link
	mkfifo fifo
	for f in nd link; do
		run -2 --separate-stderr with_timeout 20 ns_exec local run_sched -g $G -p $P --status $f --max-wait 1s -- true
		[[ $stderr == "mcast-sched: --status '$f': a device node, never replaced by a status file"* ]]
	done
	run -2 --separate-stderr with_timeout 20 ns_exec local run_sched -g $G -p $P --status fifo --max-wait 1s -- true
	[[ $stderr == "mcast-sched: --status 'fifo': a FIFO or socket, not a file"* ]]
	[ "$(stat -c '%F %t,%T' nd)" = "character special file 1,3" ]
	[ -L link ] && [ -p fifo ]
	# A node put there while it waits is said once and left as it is (a rewrite every second would replace it).
	sched_bg --status st.json --min-clients 5 --max-wait 10m -- true
	rm st.json
	mknod st.json c 1 3
	wait_for 20 grep -q "mcast-sched: --status st.json: a device node, never replaced by a status file; not written" sched.err
	bg_kill sched
	[ "$(stat -c '%F %t,%T' st.json)" = "character special file 1,3" ]
	[ "$(ls -A | grep -c '^st.json')" -eq 1 ]
}
