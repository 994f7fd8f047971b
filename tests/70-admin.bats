#!/usr/bin/env bats
# An admin's first hour (issue 18): messages that say what to do instead,
# exit codes that keep retry loops out of trouble. No network needed: every
# case here is refused before a socket opens.

bats_require_minimum_version 1.5.0
load helper

setup() {
	require_prog mcast-pack mcast-send mcast-recv mcast-repair mcast-sched
	cd "$BATS_TEST_TMPDIR" || return 1
	head -c 100000 /dev/urandom >img
	run_pack create -q -o p.mcpkg -n p -z none - <img
}

@test "groups in 224.0.0.0/24 are refused by send, recv and sched with a hint to 239.0.0.0/8" {
	run -2 --separate-stderr run_send -g 224.0.0.251 p.mcpkg
	[ -z "$output" ]
	[[ $stderr == "mcast-send: -g '224.0.0.251': in 224.0.0.0/24, "*"239.0.0.0/8"* ]]
	run -2 --separate-stderr run_recv -g 224.0.0.1 -o out.mcpkg
	[[ $stderr == "mcast-recv: -g '224.0.0.1': in 224.0.0.0/24, "*"239.0.0.0/8"* ]]
	[ ! -e out.mcpkg.part ]
	run -2 --separate-stderr run_sched -g 224.0.0.255 -- true
	[[ $stderr == "mcast-sched: -g '224.0.0.255': in 224.0.0.0/24, "*"239.0.0.0/8"* ]]
	# The next block up is an ordinary group (the check is /24, not /8).
	run -2 --separate-stderr run_send -g 224.0.1.300 p.mcpkg
	[[ $stderr == *"not an IP address"* ]]
}

@test "-g ADDR:PORT suggests -p, for IPv4 and IPv6" {
	run -2 --separate-stderr run_send -g 239.1.2.3:9000 p.mcpkg
	[[ $stderr == "mcast-send: -g '239.1.2.3:9000': give the port with -p: -g 239.1.2.3 -p 9000"* ]]
	run -2 --separate-stderr run_recv -g '[ff15::7]:9000' -o out.mcpkg
	[[ $stderr == "mcast-recv: -g '[ff15::7]:9000': give the port with -p: -g ff15::7 -p 9000"* ]]
	run -2 --separate-stderr run_sched -g 239.1.2.3:9000 -- true
	[[ $stderr == *"give the port with -p"* ]]
	# An interface that is not there is named as the option gave it.
	run -2 --separate-stderr run_send -i mcast-nosuch0 p.mcpkg
	[[ $stderr == "mcast-send: -i 'mcast-nosuch0': No such device"* ]]
	# An IPv6 group alone is not taken for ADDR:PORT.
	run -2 --separate-stderr run_send -g ff15::1 -t 0 p.mcpkg
	[[ $stderr == "mcast-send: -t '0': TTL must be a number from 1 to 255"* ]]
}

@test "port 65535 says that PORT+1 carries the feedback" {
	run -2 --separate-stderr run_send -p 65535 p.mcpkg
	[[ $stderr == "mcast-send: -p '65535': PORT+1 carries the feedback, so PORT is at most 65534"* ]]
	run -2 --separate-stderr run_recv -p 65535 -o out.mcpkg
	[[ $stderr == "mcast-recv: -p '65535': PORT+1 carries the feedback"* ]]
	run -2 --separate-stderr run_sched -p 65535 -- true
	[[ $stderr == "mcast-sched: -p '65535': PORT+1 carries the feedback"* ]]
	run -2 --separate-stderr run_sched -p 0 -- true
	[[ $stderr == "mcast-sched: -p '0': port must be a number from 1 to 65534"* ]]
}

@test "a 0 duration where 0 makes no sense says it must be more than 0" {
	run -2 --separate-stderr run_recv --timeout 0 -o out.mcpkg
	[[ $stderr == "mcast-recv: --timeout '0': must be more than 0"* ]]
	run -2 --separate-stderr run_send --max-time 0s p.mcpkg
	[[ $stderr == "mcast-send: --max-time '0s': must be more than 0"* ]]
	run -2 --separate-stderr run_repair --timeout 0ms -s x/ out.mcpkg
	[[ $stderr == "mcast-repair: --timeout '0ms': must be more than 0"* ]]
	run -2 --separate-stderr run_recv --timeout soon -o out.mcpkg
	[[ $stderr == "mcast-recv: --timeout 'soon': not a duration (90s, 5m, 2h, 250ms)"* ]]
}

# A bad option value, as every program words it (issue 14): the first line of
# stderr is exactly "PROG: OPTION 'VALUE': what is wrong", the usage follows,
# nothing on stdout, exit 2. bad_value PROG MESSAGE ARGS...
bad_value() {
	local p=$1 want=$2
	shift 2
	run -2 --separate-stderr "$MCAST_BIN/$p" "$@"
	[ -z "$output" ] || { echo "$p $*: stdout: $output"; return 1; }
	[ "${stderr%%$'\n'*}" = "$p: $want" ] || { echo "$p $*: got '${stderr%%$'\n'*}', want '$p: $want'"; return 1; }
	[[ $stderr == *$'\n'usage:* ]] || { echo "$p $*: no usage after the message"; return 1; }
}

@test "mcast-send: a bad option value is PROG: OPTION 'VALUE': reason, exit 2" {
	bad_value mcast-send "-r '5x': rate must be bits per second from 1K to 400G, such as 800M or 1G" -r 5x p.mcpkg
	bad_value mcast-send "--fec '101': must be a percentage from 0 to 100, or auto" --fec 101 p.mcpkg
	bad_value mcast-send "-p '70000': port must be a number from 1 to 65534" -p 70000 p.mcpkg
	bad_value mcast-send "-t '256': TTL must be a number from 1 to 255" -t 256 p.mcpkg
	bad_value mcast-send "--mtu '100': must be a number from 576 to 65535" --mtu 100 p.mcpkg
	bad_value mcast-send "--max-passes '-1': must be a number from 0 to 10000" --max-passes -1 p.mcpkg
	bad_value mcast-send "--max-time 'soon': not a duration (90s, 5m, 2h, 250ms)" --max-time soon p.mcpkg
}

@test "mcast-recv: a bad option value is PROG: OPTION 'VALUE': reason, exit 2" {
	bad_value mcast-recv "--mem '1K': must be a size from 4M, such as 64M" --mem 1K -o out.mcpkg
	bad_value mcast-recv "--package '': must be a name of 1 to 255 bytes" --package '' -o out.mcpkg
	bad_value mcast-recv "-p '0': port must be a number from 1 to 65534" -p 0 -o out.mcpkg
	bad_value mcast-recv "--timeout 'x': not a duration (90s, 5m, 2h, 250ms)" --timeout x -o out.mcpkg
	bad_value mcast-recv "--expect 'xyz': a package id is 32 hex digits (or a prefix of at least 8)" --expect xyz -o out.mcpkg
	[ ! -e out.mcpkg.part ]
}

@test "mcast-repair: a bad option value is PROG: OPTION 'VALUE': reason, exit 2" {
	bad_value mcast-repair "-j '0': not a number from 1 to 64" -j 0 -s p.mcpkg out.mcpkg
	bad_value mcast-repair "-H 'nocolon': not a 'Name: value' header" -H nocolon -s p.mcpkg out.mcpkg
	bad_value mcast-repair "--spread 'x': not a duration (90s, 5m, 250ms)" --spread x -s p.mcpkg out.mcpkg
	bad_value mcast-repair "-s '': must not be empty" -s '' out.mcpkg
	bad_value mcast-repair "--to 't1': no PKG with --to (the package comes from the state or the sources)" --to t1 -s p.mcpkg x.mcpkg
	[ ! -e out.mcpkg ]
}

@test "mcast-sched: a bad option value is PROG: OPTION 'VALUE': reason, exit 2" {
	bad_value mcast-sched "--min-clients '0': not a number of clients (1-1000000)" --min-clients 0 -- true
	bad_value mcast-sched "--max-wait 'x': not a duration (90s, 5m, 2h; at most 366d)" --max-wait x -- true
	bad_value mcast-sched "--status '': must not be empty" --status '' -- true
	bad_value mcast-sched "-p '65535': PORT+1 carries the feedback, so PORT is at most 65534" -p 65535 -- true
}

@test "mcast-pack: a bad option value is PROG: OPTION 'VALUE': reason, exit 2" {
	bad_value mcast-pack "-z 'lz4': compression must be zstd, gzip, xz or none" create -o x.mcpkg -z lz4 img
	bad_value mcast-pack "-l '99': zstd level must be a number from 1 to 22" create -o x.mcpkg -l 99 img
	bad_value mcast-pack "-j '300': threads must be a number from 0 to 256" create -o x.mcpkg -j 300 img
	bad_value mcast-pack "--chunk-size '1K': must be a size from 64K to 64M, a multiple of 4K" create -o x.mcpkg --chunk-size 1K img
	bad_value mcast-pack "--mtime 'x': must be seconds since the epoch" create -o x.mcpkg --mtime x img
	# a control character in the value is shown as '?', never written raw
	bad_value mcast-pack "-n 'a?[1m': control characters are not allowed" create -o x.mcpkg -n $'a\e[1m' img
	[ ! -e x.mcpkg ]
}

@test "an unknown mcast-pack command suggests the nearest one" {
	run -2 --separate-stderr run_pack verfy p.mcpkg
	[ -z "$output" ]
	[[ $stderr == "mcast-pack: verfy: unknown command; did you mean 'verify'?"* ]]
	run -2 --separate-stderr run_pack lsit p.mcpkg
	[[ $stderr == *"did you mean 'list'?"* ]]
	run -2 --separate-stderr run_pack ext p.mcpkg
	[[ $stderr == *"did you mean 'extract'?"* ]]
	run -2 --separate-stderr run_pack frobnicate p.mcpkg
	[[ $stderr == "mcast-pack: frobnicate: unknown command"* && $stderr != *"did you mean"* ]]
}

@test "-o never names a device node or standard output: refused with the way that works" {
	require_root
	mknod blk b 7 250
	mknod chr c 1 3
	run -2 --separate-stderr run_recv -o blk
	[ -z "$output" ]
	[[ $stderr == "mcast-recv: -o 'blk': a device node, never replaced by a package file: "*"--to TARGET"*"mcast-pack extract -O PKG | dd of=DEVICE"* ]]
	[ -b blk ]
	[ ! -e blk.part ]
	run -2 --separate-stderr run_recv -o /dev/null
	[[ $stderr == "mcast-recv: -o '/dev/null': a device node"* ]]
	[ -c /dev/null ]
	run -2 --separate-stderr run_recv -o -
	[[ $stderr == "mcast-recv: -o '-': not standard output: "*"mcast-pack extract -O PKG"* ]]
	[ ! -e ./- ]
	[ ! -e ./-.part ]
	run -2 --separate-stderr run_pack create -o chr - <img
	[[ $stderr == "mcast-pack: -o 'chr': a device node"* ]]
	[ -c chr ]
	run -2 --separate-stderr run_repair -s p.mcpkg blk
	[[ $stderr == "mcast-repair: PKG blk: a device node"* ]]
	[ -b blk ]
	mkfifo fifo
	run -2 --separate-stderr run_recv -o fifo
	[[ $stderr == "mcast-recv: -o 'fifo': a FIFO or socket, not a file"* ]]
	[ -p fifo ]
}

@test "long options that work are in --help, the man page and both completions" {
	check() {
		local p=$1 o help
		shift
		# One --help per program (a start under ASan is costly), read per option.
		help=$("$MCAST_BIN/$p" --help)
		for o in "$@"; do
			grep -q -- "$o" <<<"$help" || { echo "$p --help lacks $o"; return 1; }
			grep -q -- "Fl \\\\${o#-}" "$MCAST_ROOT/man/$p.1" || { echo "$p.1 lacks $o"; return 1; }
			grep -q -- "$o" "$MCAST_ROOT/completions/bash/$p" || { echo "bash $p lacks $o"; return 1; }
			grep -q -- "$o" "$MCAST_ROOT/completions/zsh/_$p" || { echo "zsh $p lacks $o"; return 1; }
		done
	}
	check mcast-send --group --port --interface --ttl --rate --quiet --verbose
	check mcast-recv --group --port --interface --ttl --output --quiet --verbose
	check mcast-sched --group --port --interface --quiet --verbose
	check mcast-pack --output --quiet --verbose
	check mcast-repair --source --parallel --header --timeout --quiet --verbose
	# And they work: a long option is taken as its short one.
	run -2 --separate-stderr run_send --group 224.0.0.9 --port 9000 p.mcpkg
	[[ $stderr == "mcast-send: -g '224.0.0.9': in 224.0.0.0/24"* ]]
	run -2 --separate-stderr run_recv --output /dev/null
	[[ $stderr == "mcast-recv: -o '/dev/null': a device node"* ]]
}

@test "MCAST_GROUP, MCAST_PORT and MCAST_IFACE set the defaults; options win" {
	require_root
	ns_lo
	MCAST_GROUP=239.77.9.9 MCAST_PORT=17900 run -0 --separate-stderr ns_exec local run_sched --json --max-wait 1s -- true
	printf '%s\n' "$output" | grep -q '"event":"wait".*"group":"239.77.9.9:17901"'
	MCAST_GROUP=239.77.9.9 MCAST_PORT=17900 run -0 --separate-stderr ns_exec local run_sched --json -g 239.77.9.10 -p 17800 --max-wait 1s -- true
	printf '%s\n' "$output" | grep -q '"event":"wait".*"group":"239.77.9.10:17801"'
	MCAST_GROUP=224.0.0.5 run -2 --separate-stderr run_send p.mcpkg
	[[ $stderr == "mcast-send: MCAST_GROUP '224.0.0.5': in 224.0.0.0/24"* ]]
	MCAST_IFACE=nosuch0 run -2 --separate-stderr run_recv -o out.mcpkg
	[[ $stderr == "mcast-recv: MCAST_IFACE 'nosuch0': No such device" ]]
	MCAST_PORT=65535 run -2 --separate-stderr run_recv -o out.mcpkg
	[[ $stderr == "mcast-recv: MCAST_PORT '65535': port must be a number from 1 to 65534"* ]]
	# A bad MCAST_PORT is an error even beside -p: a wrong default is fixed, not hidden.
	MCAST_PORT=65535 run -2 --separate-stderr run_recv -p 7000 -o out.mcpkg
	[[ $stderr == "mcast-recv: MCAST_PORT '65535': "*"fix or unset it"* ]]
}

# summary FILE: the last line of FILE, which must be a summary.
summary_keys() {
	tail -n 1 "$1" | python3 -c '
import json, sys
j = json.loads(sys.stdin.read())
assert j["event"] == "summary", j
assert j["v"] == 1, j
assert j["result"] in ("complete", "incomplete", "ended", "left", "damaged", "timeout",
                       "interrupted", "error", "started", "empty"), j
assert "path" in j, j
print(j["result"], j["path"], j.get("name"), j.get("id"))'
}

@test "every program's --json summary has the same outcome and path keys (mcast-json(7))" {
	asan_covered_elsewhere
	require_root
	ns_lo
	local G=239.77.3.3 P=17330 id
	id=$(run_pack info --json p.mcpkg | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
	bg_start recv ns_exec local run_recv --json -g $G -p $P --timeout 20s -o "$PWD/r.mcpkg"
	wait_for 10 test -e r.mcpkg.part
	ns_exec local with_timeout 30 run_send --json -g $G -p $P -r 20M --linger 1s p.mcpkg >send.json
	bg_wait recv 30
	cmp r.mcpkg p.mcpkg
	[ "$(summary_keys send.json)" = "complete p.mcpkg p $id" ]
	[ "$(summary_keys "$BATS_TEST_TMPDIR/recv.out")" = "complete $PWD/r.mcpkg None None" ]
	run_pack verify --json p.mcpkg >pack.json
	[ "$(summary_keys pack.json)" = "complete p.mcpkg None $id" ]
	cp p.mcpkg d.mcpkg
	printf 'xxxx' | dd of=d.mcpkg bs=1 seek=50000 conv=notrunc status=none
	run -3 --separate-stderr run_pack verify --json d.mcpkg
	printf '%s\n' "$output" >dpack.json
	[ "$(summary_keys dpack.json)" = "damaged d.mcpkg None $id" ]
	run -0 --separate-stderr run_repair --json -s p.mcpkg d.mcpkg
	printf '%s\n' "$output" >repair.json
	[ "$(summary_keys repair.json)" = "complete d.mcpkg p $id" ]
	run -0 --separate-stderr ns_exec local run_sched --json -g $G -p $P --max-wait 1s -- true
	printf '%s\n' "$output" >sched.json
	[ "$(summary_keys sched.json)" = "started None None None" ]
	# A sender that nobody joined: complete, nothing owed; one cut by --max-time with a
	# receiver missing chunks: timeout, never complete beside exit 3.
	run -0 --separate-stderr ns_exec local with_timeout 30 run_send --json -g $G -p $P -r 20M --linger 200ms p.mcpkg
	[[ $stderr == *"session over (no receiver joined): sent "*" ("*"x the package, 1 pass);"* ]]
}

@test "a --json run refused once its options are read still ends with one summary (lib/fe)" {
	run -2 --separate-stderr run_send --json -g 224.0.0.251 p.mcpkg
	[ "$output" = '{"event":"summary","v":1,"result":"error","path":"p.mcpkg","exit":2}' ]
	run -2 --separate-stderr run_recv --json --expect xyz -o out.mcpkg
	[ "$output" = '{"event":"summary","v":1,"result":"error","path":"out.mcpkg","exit":2}' ]
	[[ $stderr == "mcast-recv: --expect 'xyz': "* ]]
	run -2 --separate-stderr run_sched --json -g 224.0.0.255 -- true
	[ "$output" = '{"event":"summary","v":1,"result":"error","path":null,"exit":2}' ]
	run -1 --separate-stderr run_repair --json --trust nosuch.pub -s p.mcpkg out.mcpkg
	[ "$output" = '{"event":"summary","v":1,"result":"error","path":"out.mcpkg","exit":1}' ]
	run -2 --separate-stderr run_pack create --json -z gzip -l 12 -o x.mcpkg img
	[ "$output" = '{"event":"summary","v":1,"result":"error","command":"create","path":"x.mcpkg","exit":2}' ]
	[ ! -e x.mcpkg ]
	# Without --json, stdout stays empty.
	run -2 --separate-stderr run_send --bogus p.mcpkg
	[ -z "$output" ]
}

@test "verify of a truncated package leads with one verdict and merges runs of bad chunks" {
	head -c $((40 * 65536)) /dev/urandom >big
	run_pack create -q -o t.mcpkg -z none --chunk-size 64K - <big
	off=$(run_pack info --json t.mcpkg | python3 -c 'import json,sys; print(json.load(sys.stdin)["payload_offset"])')
	cp t.mcpkg cut.mcpkg
	truncate -s $((off + 10 * 65536)) cut.mcpkg
	flip_byte cut.mcpkg $((off + 2 * 65536 + 7))
	run -3 --separate-stderr run_pack verify cut.mcpkg
	[ "${stderr%%$'\n'*}" = "mcast-pack: cut.mcpkg: damaged: 31 of 40 chunks bad (1.9 MiB in 2 runs); run mcast-repair" ]
	[[ $stderr == *"cut.mcpkg: chunk 2 (bytes $((off + 2 * 65536))-$((off + 3 * 65536 - 1))): damaged or missing"* ]]
	[[ $stderr == *"cut.mcpkg: chunks 10-39 (bytes $((off + 10 * 65536))-$((off + 40 * 65536 - 1)), 1.9 MiB): missing"* ]]
	[ "$(grep -c 'chunk' <<<"$stderr")" -le 3 ]
	run -3 --separate-stderr run_pack verify --json cut.mcpkg
	[ "$(grep -c '"event":"bad_chunk"' <<<"$output")" = 2 ]
	grep -q '"event":"bad_chunk","index":10,"last":39,"count":30,' <<<"$output"
}

@test "on a terminal (script), mcast-recv and mcast-send show a live line with rate and time left" {
	require_root
	command -v script >/dev/null || skip "script (util-linux) not installed"
	ns_lo
	local G=239.77.3.4 P=17340
	head -c 3000000 /dev/urandom >big3
	run_pack create -q -o b.mcpkg -z none - <big3
	bg_start recv ns_exec local script -qec "$MCAST_BIN/mcast-recv -g $G -p $P --timeout 20s -o $PWD/r.mcpkg" /dev/null
	wait_for 10 test -e r.mcpkg.part
	run -0 ns_exec local with_timeout 30 script -qec "$MCAST_BIN/mcast-send -g $G -p $P -r 8M --linger 1s $PWD/b.mcpkg" /dev/null
	bg_wait recv 30
	cmp r.mcpkg b.mcpkg
	r=$(tr '\r' '\n' <"$BATS_TEST_TMPDIR/recv.out")
	[[ $r == *"r.mcpkg: "*" of 2.9 MiB ("*"%), "*"iB/s, "*" left, receiving ("*" of 3 chunks)"* ]]
	[[ $r =~ [0-9]:[0-9][0-9]\ left ]]
	[[ $r == *"r.mcpkg: complete and verified: 2.9 MiB in "*" s, "*"/s (3 chunks)"* ]]
	# The sender: bytes sent at the rate of the last seconds, and what it is doing.
	[[ $output =~ sent:\ [0-9.]+\ [KM]iB,\ [0-9.]+\ [KM]iB/s,\ (pass\ [0-9]+|lingering),\ receivers ]]
	[[ $output == *"session over (complete): sent 2.9 MiB in "*" s, "*"/s ("*"x the package, 1 pass); receivers: 1 joined, 1 complete"* ]]
}

@test "mcast-send sizes its datagrams from the route's MTU: a 1300-byte link needs no --mtu" {
	asan_covered_elsewhere
	require_root
	ns_lo
	ip -n "$(ns_name local)" link set lo mtu 1300
	local G=239.77.3.5 P=17350
	bg_start recv ns_exec local run_recv -g $G -p $P --timeout 20s -o "$PWD/r.mcpkg"
	wait_for 10 test -e r.mcpkg.part
	run -0 --separate-stderr ns_exec local with_timeout 30 run_send -v -g $G -p $P -r 20M --linger 500ms p.mcpkg
	[[ $stderr == *" 12"[0-9][0-9]"-byte symbols"* ]]
	[[ $stderr != *"Message too long"* ]]
	bg_wait recv 30
	cmp r.mcpkg p.mcpkg
	# --mtu still overrides (and a larger one than the route fails naming it).
	run -1 --separate-stderr ns_exec local with_timeout 30 run_send -g $G -p $P --mtu 1500 --linger 200ms p.mcpkg
	[[ $stderr == *"--mtu 1500"* ]]
}

@test "MCAST_LOG_TIME=1 starts each stderr line with an ISO 8601 time and offset; unset, lines are as before" {
	local iso='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[+-][0-9]{2}:[0-9]{2}'
	run -1 --separate-stderr env MCAST_LOG_TIME=1 TZ=Asia/Kolkata "$MCAST_BIN/mcast-pack" verify none.mcpkg
	[[ $stderr =~ ^${iso}\ mcast-pack:\ none\.mcpkg:\ No\ such\ file ]]
	[[ $stderr == *"+05:30 mcast-pack: "* ]]
	run -1 --separate-stderr env MCAST_LOG_TIME=1 "$MCAST_BIN/mcast-repair" -s none.mcpkg p2.mcpkg
	while IFS= read -r l; do [[ $l =~ ^${iso}\ mcast-repair:\  ]] || { echo "no time: $l"; false; }; done <<<"$stderr"
	run -1 --separate-stderr env MCAST_LOG_TIME=0 "$MCAST_BIN/mcast-pack" verify none.mcpkg
	[ "$stderr" = "mcast-pack: none.mcpkg: No such file or directory" ]
	run -1 --separate-stderr "$MCAST_BIN/mcast-pack" verify none.mcpkg
	[ "$stderr" = "mcast-pack: none.mcpkg: No such file or directory" ]
}

# in_syslog CMD...: runs CMD in a private mount namespace whose /dev/log is a
# socket this listens on; prints each message it got, then stderr= and rc=.
in_syslog() {
	cat >lis.py <<'EOF_PY'
import os, socket, subprocess, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
# stdout is read and dropped: /dev/null is hidden by the tmpfs on /dev (the system python opens it for DEVNULL)
r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
s.setblocking(False)
while True:
    try:
        print(s.recv(65536).decode(errors="replace"))
    except BlockingIOError:
        break
print("stderr=%r" % r.stderr.decode())
print("rc=%d" % r.returncode)
EOF_PY
	unshare -m sh -c 'mount --make-rprivate / && mount -t tmpfs tmpfs /dev && exec python3 lis.py "$@"' sh "$@"
}

@test "--syslog: every program sends its lines to syslog with the priority of their kind, none to stderr" {
	require_root
	mkdir t && echo hi >t/f
	run -0 in_syslog "$MCAST_BIN/mcast-pack" --syslog create -o q.mcpkg t
	# LOG_USER|LOG_INFO is 14, LOG_USER|LOG_ERR 11, LOG_USER|LOG_WARNING 12
	[[ $output =~ \<14\>[A-Z][a-z]{2}\ [\ 0-9][0-9]\ [0-9:]{8}\ mcast-pack\[[0-9]+\]:\ q\.mcpkg:\ created ]]
	[[ $output == *"stderr=''"*"rc=0"* ]]
	run -0 in_syslog "$MCAST_BIN/mcast-pack" verify --syslog none.mcpkg
	[[ $output == *"<11>"*"mcast-pack["*"]: none.mcpkg: No such file or directory"*"stderr=''"*"rc=1"* ]]
	run -0 in_syslog "$MCAST_BIN/mcast-repair" --syslog -s none.mcpkg p2.mcpkg
	[[ $output == *"<11>"*"mcast-repair["*"]: "*"none.mcpkg"*"stderr=''"*"rc=1"* ]]
	run -0 in_syslog "$MCAST_BIN/mcast-recv" --syslog -g 239.1.2.3 -o p3.mcpkg --timeout 100ms
	[[ $output == *"<14>"*"mcast-recv["*"]: waiting for a session"*"<11>"*"mcast-recv["*"]: no session"*"stderr=''"*"rc=3"* ]]
	# usage errors stay on stderr (Python's repr puts a string holding ' in double quotes)
	run -0 in_syslog "$MCAST_BIN/mcast-send" --syslog --rate x p.mcpkg
	[[ $output == *"stderr=\"mcast-send: -r 'x': rate must be"*"rc=2"* ]]
	run -0 in_syslog "$MCAST_BIN/mcast-sched" --syslog --max-wait 0 --skip-empty -- true
	[[ $output == *"mcast-sched["*"]: no client asked"*"stderr=''"*"rc=3"* ]]
}

# usage_json PROG ARG...: runs PROG (run_send ...), which must exit 2 with stdout one
# JSON line, the summary of a usage error (mcast-json(7)); prints its stderr's first line.
usage_json() {
	run -2 --separate-stderr "$@"
	[ "${#lines[@]}" -eq 1 ] || { echo "stdout: $output" >&2; return 1; }
	python3 -c 'import json,sys
j = json.loads(sys.argv[1])
assert (j["event"], j["v"], j["result"], j["exit"]) == ("summary", 1, "error", 2), j
assert "path" in j, j' "$output"
	printf '%s\n' "${stderr%%$'\n'*}"
}

@test "every usage error of every program, --json before or after the fault, ends with one summary line (lib/fe)" {
	local prog bad unknown where out
	for prog in send recv repair sched pack; do
		case $prog in
		send) bad=(-r abc p.mcpkg) ;;
		recv) bad=(--timeout xyz -o out.mcpkg) ;;
		repair) bad=(-s p.mcpkg -j 0 out.mcpkg) ;;
		sched) bad=(--min-clients 0 -- true) ;;
		pack) bad=(create -z foo -o x.mcpkg img) ;;
		esac
		unknown=("${bad[@]}")
		for where in before after; do
			# a bad value: the same PROG: OPTION 'VALUE': reason on stderr as without --json
			if [ $where = before ]; then
				out=$(usage_json run_$prog --json "${bad[@]}")
			elif [ $prog = sched ]; then
				out=$(usage_json run_$prog --min-clients 0 --json -- true)
			else
				out=$(usage_json run_$prog "${bad[@]}" --json)
			fi
			[[ $out == "mcast-$prog: "*" '"*"': "* ]]
			# an unknown option, before --json was read or after it
			if [ $where = before ]; then
				out=$(usage_json run_$prog --json --bogus "${unknown[@]}")
			elif [ $prog = sched ]; then
				out=$(usage_json run_$prog --bogus --json -- true)
			else
				out=$(usage_json run_$prog --bogus "${unknown[@]}" --json)
			fi
			[ "$out" = "mcast-$prog: --bogus: unknown option, or its value is missing" ]
		done
		# Without --json stdout stays empty.
		run -2 --separate-stderr run_$prog "${bad[@]}"
		[ -z "$output" ]
		[[ $stderr == "mcast-$prog: "*" '"*"': "* ]]
	done
	# The exact lines: a usage error found while the options are read knows no path yet;
	# mcast-pack names its command once it has read it.
	run -2 --separate-stderr run_send -r abc p.mcpkg --json
	[ "$output" = '{"event":"summary","v":1,"result":"error","path":null,"exit":2}' ]
	run -2 --separate-stderr run_pack create --json --bogus
	[ "$output" = '{"event":"summary","v":1,"result":"error","command":"create","path":null,"exit":2}' ]
	# Another missing piece of the command line, and a bad MCAST_PORT, likewise.
	out=$(usage_json run_repair --json out.mcpkg)
	[[ $out == "mcast-repair: no source: "* ]]
	out=$(MCAST_PORT=0 usage_json run_recv --json -o out.mcpkg)
	[[ $out == "mcast-recv: MCAST_PORT '0': "* ]]
	# --json after "--" is COMMAND's, not mcast-sched's: nothing on stdout.
	run -2 --separate-stderr run_sched --bogus -- "$MCAST_BIN/mcast-send" --json p.mcpkg
	[ -z "$output" ]
	run -2 --separate-stderr run_sched --bogus "$MCAST_BIN/mcast-send" --json p.mcpkg
	[ -z "$output" ]
	# -h and --version print what they print, with no summary after it.
	run -0 --separate-stderr run_send --json -h
	[[ ${lines[0]} == "usage: mcast-send "* ]]
	[[ $output != *'"event"'* ]]
	run -0 --separate-stderr run_pack --json --version
	[[ $output == "mcast-pack "* ]]
	[[ $output != *'"event"'* ]]
}

@test "on a terminal (script), mcast-pack create, verify and extract show the live line with rate and time left; off one, none" {
	command -v script >/dev/null || skip "script (util-linux) not installed"
	mkdir tree
	head -c 4000000 /dev/urandom >tree/a
	head -c 4000000 /dev/urandom >tree/b
	# Signed: SHA-256 chunk digests, so that verify and extract take a few milliseconds, a rate's worth.
	run_pack keygen -q -o k
	# The words mcast-recv's and mcast-repair's lines use (lib/meter): done of total (percent), rate, time left.
	local fig='[0-9.]+ ([KM]iB|B) of [0-9.]+ MiB \([0-9]+%\), [0-9.]+ [KMG]iB/s, [0-9]+:[0-9][0-9] left'
	on_tty() { script -qfec "$*" /dev/null | tr '\r' '\n'; }
	out=$(on_tty "$MCAST_BIN/mcast-pack create --sign k.key -o big.mcpkg tree")
	[[ $out =~ big\.mcpkg:\ $fig,\ packing ]]
	# The total of a tree is its files' data: 7.6 MiB.
	[[ $out == *"big.mcpkg: 7.6 MiB of 7.6 MiB (100%), "* ]]
	out=$(on_tty "$MCAST_BIN/mcast-pack verify big.mcpkg")
	[[ $out =~ big\.mcpkg:\ $fig,\ verifying ]]
	[[ $out == *"big.mcpkg: ok, "* ]]
	out=$(on_tty "$MCAST_BIN/mcast-pack extract -C x big.mcpkg")
	[[ $out =~ big\.mcpkg:\ $fig,\ extracting ]]
	cmp x/a tree/a
	# -O: the payload on stdout, the line on the terminal's stderr.
	out=$(script -qfec "$MCAST_BIN/mcast-pack extract -O big.mcpkg 2>&1 >raw.tar" /dev/null | tr '\r' '\n')
	[[ $out =~ big\.mcpkg:\ $fig,\ extracting ]]
	tar -tf raw.tar | grep -qx a
	# An image onto a target and its check.
	run_pack create -q --image -o i.mcpkg tree/a
	truncate -s 4000000 tgt
	out=$(on_tty "$MCAST_BIN/mcast-pack extract --to tgt i.mcpkg")
	[[ $out =~ tgt:\ [0-9.]+\ [KM]iB\ of\ 3\.8\ MiB\ \([0-9]+%\),\ [0-9.]+\ [KMG]iB/s,\ [0-9]+:[0-9][0-9]\ left ]]
	cmp tgt tree/a
	out=$(on_tty "$MCAST_BIN/mcast-pack verify --to tgt i.mcpkg")
	[[ $out =~ tgt:\ [0-9.]+\ ([KM]iB|B)\ of\ 3\.8\ MiB ]]
	# -q on a terminal, and no terminal at all: no live line.
	out=$(on_tty "$MCAST_BIN/mcast-pack -q verify big.mcpkg")
	[[ $out != *" left"* ]]
	for c in "create -o c2.mcpkg tree" "verify big.mcpkg" "extract -C y big.mcpkg" "extract --to tgt i.mcpkg"; do
		# shellcheck disable=SC2086  # c is words on purpose
		run -0 --separate-stderr run_pack $c
		[[ $stderr != *" left"* && $stderr != *$'\r'* ]]
	done
}

@test "mcast-recv and mcast-repair need none of the libraries that packing from a file system uses (a small initrd)" {
	command -v readelf >/dev/null || skip "readelf (binutils) is not installed"
	local p needed
	for p in mcast-recv mcast-repair mcast-sched; do
		needed=$(readelf -d "$MCAST_BIN/$p" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
		[[ $needed == *libzstd* ]] # what it does need is listed
		for l in libtsk libext2fs libntfs-3g libfdisk libarchive; do
			[[ $needed != *"$l".so* ]] || { echo "$p needs $l: $needed"; return 1; }
		done
	done
	needed=$(readelf -d "$MCAST_BIN/mcast-recv" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
	[[ $needed != *libcurl* ]] || { echo "mcast-recv needs libcurl: $needed"; return 1; }
	# The packer still has them: the check above is not vacuous.
	needed=$(readelf -d "$MCAST_BIN/mcast-pack" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
	[[ $needed == *libtsk* && $needed == *libext2fs* ]]
}
