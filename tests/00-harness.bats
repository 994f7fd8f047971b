#!/usr/bin/env bats
# Tests of the test harness itself (helper.bash, run-all.sh, flaky-http.py,
# udp-tool.py), of install/uninstall, man page lint, completions and examples.

load helper

T=$BATS_TEST_TMPDIR

# recv_bg NAME HOST GROUP PORT: a udp_tool receiver in HOST, joined and ready.
recv_bg() {
	bg_start "$1" ns_exec "$2" udp_tool recv "$3" "$4" -i "${5:-eth0}" --seconds 0.5 --max-seconds "${6:-20}"
	wait_for 30 grep -q ready "$T/$1.err"
}

# no_bats CMD...: run CMD without this test's BATS_* variables (a nested bats).
no_bats() { env $(env | sed -n 's/^\(BATS_[A-Za-z0-9_]*\)=.*/-u \1/p') "$@"; }

# received NAME: the count a finished receiver printed.
received() { bg_wait "$1" 30 >/dev/null; head -n 1 "$T/$1.out"; }

@test "harness: run_<prog> runs \$MCAST_BIN/mcast-<prog> under \$EXEC_PREFIX" {
	mkdir "$T/fakebin"
	for p in pack send recv repair sched; do
		printf '#!/bin/sh\necho "%s $* ${MC_PREFIXED:-}"; exit 3\n' "$p" >"$T/fakebin/mcast-$p"
		chmod +x "$T/fakebin/mcast-$p"
	done
	MCAST_BIN=$T/fakebin
	run -3 run_pack verify "a b"
	[ "$output" = "pack verify a b " ]
	EXEC_PREFIX="env MC_PREFIXED=yes"
	run -3 run_sched --min-clients 2 -- true
	[ "$output" = "sched --min-clients 2 -- true yes" ]
	run -3 with_timeout 10 run_recv -o x
	[ "$output" = "recv -o x yes" ]
	run -3 with_timeout 10 ns_exec - run_send y
	[ "$output" = "send y yes" ]
	# The default is the repository's bin/.
	run bash -c 'unset MCAST_BIN; . "$1"; echo "$MCAST_BIN"' _ "$MCAST_ROOT/tests/helper.bash"
	[ "$output" = "$MCAST_ROOT/bin" ]
}

@test "harness: with_timeout bounds a command, passes its status, composes" {
	SECONDS=0
	run with_timeout 1 sleep 20
	[ "$status" -eq 124 ]
	[ "$SECONDS" -lt 8 ]
	run with_timeout 5 sh -c 'exit 3'
	[ "$status" -eq 3 ]
	myfn() { echo "fn $*"; return 4; }
	export -f myfn
	run with_timeout 5 myfn a b
	[ "$status" -eq 4 ]
	[ "$output" = "fn a b" ]
}

@test "harness: bg_start, bg_wait, bg_kill" {
	bg_start quick sh -c 'echo out; echo err >&2; exit 5'
	run bg_wait quick 10
	[ "$status" -eq 5 ]
	bg_wait quick || [ $? -eq 5 ]
	[ "$(cat "$T/quick.out")" = out ]
	[ "$(cat "$T/quick.err")" = err ]
	# BG_PID is the program itself, even under ns_exec/with_timeout layers.
	bg_start slow sleep 30
	[ "$(ps -o comm= -p "$BG_PID")" = sleep ]
	bg_running slow
	bg_kill slow KILL
	run bg_wait slow 10
	[ "$status" -eq $((128 + 9)) ]
	! bg_running slow
	bg_start slow2 with_timeout 60 sleep 31
	pid=$(bg_pid slow2)
	[ "$(ps -o comm= -p "$pid")" = timeout ]
	bg_kill slow2 KILL
	run bg_wait slow2 10
	[ "$status" -eq $((128 + 9)) ]
	! pgrep -f 'sleep 31'
	bg_start stuck sleep 30
	run bg_wait stuck 1
	[ "$status" -eq 124 ]
}

@test "harness: ns_lo makes a loopback namespace that carries IPv4 multicast" {
	require_root
	ns_lo
	ns=$(ns_name local)
	ip netns list | grep -q "^$ns"
	ip -n "$ns" route show | grep -q '^224.0.0.0/4 dev lo'
	ip -n "$ns" -4 addr show | grep -q 'inet 198.18.0.1/'
	ip -n "$ns" link show lo | grep -q 'MULTICAST.*UP'
	recv_bg r local 239.1.2.3 5000 lo
	ns_exec local udp_tool send 239.1.2.3 5000 -n 25
	[ "$(received r)" -eq 25 ]
	# Nothing was added to the root namespace.
	! ip route show | grep -q 198.18.
	mc_cleanup
	! ip netns list | grep -q "^$ns"
}

@test "harness: lan_create gives each host its address and multicast routes" {
	require_root
	lan_create 3
	[ "${LAN_HOSTS[*]}" = "h1 h2 h3" ]
	for h in h1 h2 h3; do
		i=${h#h}
		ip -n "$(ns_name $h)" -4 addr show eth0 | grep -q "inet 198.18.0.$i/24"
		ip -n "$(ns_name $h)" -6 addr show eth0 | grep -q "inet6 2001:db8::$i/64"
		! ip -n "$(ns_name $h)" -6 addr show eth0 | grep -q 'fe80:'
		ip -n "$(ns_name $h)" route show | grep -q '^239.0.0.0/8 dev eth0'
		ip -n "$(ns_name $h)" -6 route show | grep -q '^ff15::/16 dev eth0'
	done
	[ "$(ns_addr h2)" = 198.18.0.2 ]
	[ "$(ns_addr6 h3)" = 2001:db8::3 ]
	[ "$(ip netns exec "$(ns_name br)" cat /sys/class/net/br0/bridge/multicast_snooping)" = 0 ]
	# Unicast between hosts.
	recv_bg u h2 198.18.0.2 6000
	ns_exec h1 udp_tool send 198.18.0.2 6000 -n 5
	[ "$(received u)" -eq 5 ]
}

@test "harness: IPv4 multicast from one LAN host reaches every other host" {
	require_root
	lan_create 3
	recv_bg r2 h2 239.9.9.9 7000
	recv_bg r3 h3 239.9.9.9 7000
	# No -i: the 239.0.0.0/8 route picks eth0.
	ns_exec h1 udp_tool send 239.9.9.9 7000 -n 40 --size 1200
	[ "$(received r2)" -eq 40 ]
	[ "$(received r3)" -eq 40 ]
}

@test "harness: IPv6 multicast (ff15::/16) reaches every other host" {
	require_root
	lan_create 3
	recv_bg r2 h2 ff15::77 7001
	recv_bg r3 h3 ff15::77 7001
	ns_exec h1 udp_tool send ff15::77 7001 -n 30 --size 1200
	[ "$(received r2)" -eq 30 ]
	[ "$(received r3)" -eq 30 ]
}

@test "harness: ns_loss drops about the right share, on one host and one port" {
	require_root
	lan_create 3
	ns_loss h2 30 7002
	recv_bg r2 h2 239.9.9.8 7002
	recv_bg r3 h3 239.9.9.8 7002
	ns_exec h1 udp_tool send 239.9.9.8 7002 -n 2000 --size 200
	n2=$(received r2) n3=$(received r3)
	echo "h2 got $n2, h3 got $n3 of 2000" >&3
	[ "$n3" -eq 2000 ]
	# 30% of 2000 is 600 lost; allow 6 sigma (sd ~ 20).
	[ "$n2" -gt 1280 ]
	[ "$n2" -lt 1520 ]
	[ "$(ns_loss_count h2)" -eq $((2000 - n2)) ]
	# Another port is not affected; removing the rule stops the loss.
	recv_bg o2 h2 239.9.9.8 7003
	ns_exec h1 udp_tool send 239.9.9.8 7003 -n 200
	[ "$(received o2)" -eq 200 ]
	ns_loss h2 0
	recv_bg z2 h2 239.9.9.8 7002
	ns_exec h1 udp_tool send 239.9.9.8 7002 -n 200
	[ "$(received z2)" -eq 200 ]
}

@test "harness: ns_loss without a port drops every UDP port" {
	require_root
	lan_create 2
	ns_loss h2 99
	recv_bg r2 h2 239.9.9.7 7004 eth0 3
	ns_exec h1 udp_tool send 239.9.9.7 7004 -n 50
	[ "$(received r2)" -lt 10 ]
}

@test "harness: two LANs in one test (and so parallel tests) do not clash" {
	require_root
	lan_create 2
	first=$(ns_name h1)
	MC_NS_PREFIX=${MC_NS_PREFIX}b
	lan_create 2
	[ "$(ns_name h1)" != "$first" ]
	ip netns list | grep -q "^$first"
	ip netns list | grep -q "^$(ns_name h1)"
	recv_bg r h2 239.9.9.6 7005
	ns_exec h1 udp_tool send 239.9.9.6 7005 -n 10
	[ "$(received r)" -eq 10 ]
}

@test "harness: teardown removes namespaces and processes even when a test fails" {
	require_root
	prefix=mct$$xfail
	# A heredoc line may not start with the test keyword (bats would take it): sed adds it.
	sed 's/^TEST/@test/' >"$T/failing.bats" <<EOF
load "$MCAST_ROOT/tests/helper"
TEST "fails with a LAN up" {
	lan_create 2
	ns_loss h1 10
	bg_start spin ns_exec h1 sleep 300
	mkdir -p "\$BATS_TEST_TMPDIR/www"
	nginx_start h2 "\$BATS_TEST_TMPDIR/www"
	echo "\$(bg_pid spin)" >"$T/spin.pid"
	false
}
EOF
	run no_bats MC_NS_PREFIX=$prefix bats --tap "$T/failing.bats"
	[ "$status" -ne 0 ]
	grep -q '^not ok 1' <<<"$output"
	! ip netns list | grep -q "^$prefix"
	! kill -0 "$(cat "$T/spin.pid")" 2>/dev/null
	! pgrep -f "nginx.*$T" >/dev/null
}

@test "harness: mc_reap_stale removes namespaces of dead runs only" {
	require_root
	sh -c 'exit 0' &
	dead=$!
	wait "$dead"
	kill -0 "$dead" 2>/dev/null && skip "pid reused"
	ip netns add "mct${dead}x1-h1"
	ip netns add "mct$$x77-h1"
	echo "mct$$x77-h1" >>"$MC_STATE/netns"
	mc_reap_stale
	! ip netns list | grep -q "^mct${dead}x1-h1"
	ip netns list | grep -q "^mct$$x77-h1"
}

@test "harness: nginx serves ranges in a namespace, over HTTP and HTTPS" {
	require_root
	lan_create 2
	mkdir "$T/www"
	head -c 300000 /dev/urandom >"$T/www/p.mcpkg"
	nginx_start h1 "$T/www" -a 198.18.0.1
	[ "$NGINX_URL" = http://198.18.0.1:8080 ]
	ns_exec h2 curl -fsS -r 1000-1999 -o "$T/part" "$NGINX_URL/p.mcpkg"
	cmp "$T/part" <(dd if="$T/www/p.mcpkg" bs=1000 skip=1 count=1 2>/dev/null)
	ns_exec h2 curl -fsS -o "$T/whole" "$NGINX_URL/p.mcpkg"
	cmp "$T/whole" "$T/www/p.mcpkg"
	grep -q '"bytes=1000-1999" 206 1000' "$NGINX_DIR/logs/access.log"
	run ns_exec h2 curl -s -o /dev/null -w '%{http_code}' "$NGINX_URL/missing.mcpkg"
	[ "$output" = 404 ]

	nginx_start h1 "$T/www" -s -a 2001:db8::1
	[ "$NGINX_URL" = "https://[2001:db8::1]:8443" ]
	[ -f "$NGINX_CERT" ]
	ns_exec h2 curl -fsS --cacert "$NGINX_CERT" -r 0-99 -o "$T/tls" "$NGINX_URL/p.mcpkg"
	cmp "$T/tls" <(head -c 100 "$T/www/p.mcpkg")
	# Without the CA the self-signed certificate is refused.
	run ns_exec h2 curl -fsS -o /dev/null "$NGINX_URL/p.mcpkg"
	[ "$status" -eq 60 ]
}

@test "harness: nginx with max_ranges 0 ignores ranges; root-namespace nginx on loopback" {
	mkdir "$T/www"
	head -c 50000 /dev/urandom >"$T/www/p.mcpkg"
	nginx_start - "$T/www" -c 'max_ranges 0;'
	[[ $NGINX_URL == http://127.0.0.1:* ]]
	run curl -s -r 10-19 -o "$T/got" -w '%{http_code}' "$NGINX_URL/p.mcpkg"
	[ "$output" = 200 ]
	cmp "$T/got" "$T/www/p.mcpkg"
	pid=$(cat "$NGINX_DIR/nginx.pid")
	kill -0 "$pid"
	nginx_stop
	! kill -0 "$pid" 2>/dev/null
}

@test "harness: flaky server ignores ranges, closes mid-transfer, fails on demand" {
	require_root
	ns_lo srv
	mkdir "$T/www"
	head -c 200000 /dev/urandom >"$T/www/p.mcpkg"
	flaky_start srv "$T/www"
	run ns_exec srv curl -s -r 0-1,100-109 "$FLAKY_URL/p.mcpkg"
	grep -q 'Content-Range: bytes 100-109/200000' <<<"$output"
	ns_exec srv curl -fsS -r 5-14 -o "$T/r" "$FLAKY_URL/p.mcpkg"
	cmp "$T/r" <(dd if="$T/www/p.mcpkg" bs=1 skip=5 count=10 2>/dev/null)

	flaky_start srv "$T/www" --port 8082 --no-ranges
	run ns_exec srv curl -s -r 5-14 -o "$T/r" -w '%{http_code}' "$FLAKY_URL/p.mcpkg"
	[ "$output" = 200 ]
	cmp "$T/r" "$T/www/p.mcpkg"

	flaky_start srv "$T/www" --port 8083 --close-after 5000
	run ns_exec srv curl -sS -o "$T/r" "$FLAKY_URL/p.mcpkg"
	[ "$status" -eq 18 ] # partial file
	[ "$(wc -c <"$T/r")" -eq 5000 ]

	flaky_start srv "$T/www" --port 8084 --status 404
	run ns_exec srv curl -s -o /dev/null -w '%{http_code}' "$FLAKY_URL/p.mcpkg"
	[ "$output" = 404 ]

	flaky_start srv "$T/www" --port 8085 --fail-first 1
	run ns_exec srv curl -s -D - -o /dev/null "$FLAKY_URL/p.mcpkg"
	grep -q '^HTTP/1.1 503' <<<"$output"
	grep -qi '^Retry-After: 1' <<<"$output"
	ns_exec srv curl -fsS -o "$T/r" "$FLAKY_URL/p.mcpkg"
	cmp "$T/r" "$T/www/p.mcpkg"

	flaky_start srv "$T/www" --port 8086 --corrupt 7
	ns_exec srv curl -fsS -r 0-15 -o "$T/r" "$FLAKY_URL/p.mcpkg"
	! cmp -s "$T/r" <(head -c 16 "$T/www/p.mcpkg")
	[ "$(cmp -l "$T/r" <(head -c 16 "$T/www/p.mcpkg") | wc -l)" -eq 1 ]
	grep -q '"status": 206' "$FLAKY_LOG"
}

@test "harness: udp_tool sends garbage and truncated datagrams" {
	require_root
	ns_lo
	printf 'MCASTPACKETHEADER' >"$T/pkt"
	bg_start r ns_exec local udp_tool recv 239.5.5.5 7010 -i lo --count 5 --seconds 5 --max-seconds 15
	wait_for 30 grep -q ready "$T/r.err"
	ns_exec local udp_tool send 239.5.5.5 7010 --random 1400 -n 3
	ns_exec local udp_tool send 239.5.5.5 7010 --file "$T/pkt" --truncate 5
	ns_exec local udp_tool send 239.5.5.5 7010 --hex 00ff
	run received r
	[ "$output" -eq 5 ]
	grep -qx 'bytes=4207' "$T/r.out"
}

@test "run-all.sh: counts TAP from unit binaries and bats suites, shows failures" {
	mkdir "$T/unit" "$T/suites"
	printf '#!/bin/sh\necho "ok 1 - a"; echo "not ok 2 - b"; echo "#   failed at x.c:3"; echo "ok 3 - c # SKIP no"; echo 1..3; exit 1\n' >"$T/unit/test_a"
	printf '#!/bin/sh\necho "ok 1 - a"; kill -SEGV $$\n' >"$T/unit/test_b"
	chmod +x "$T/unit/test_a" "$T/unit/test_b"
	# (No line of this file may start with the test keyword: bats would take it.)
	printf '%s\n' '@test "passes" { true; }' '@test "fails" { echo "diagnostic line"; false; }' \
		'@test "skips" { skip "not today"; }' >"$T/suites/x.bats"
	run env MCAST_UNIT="$T/unit" MCAST_SUITES="$T/suites/x.bats" MCAST_COUNTS="$T/counts" \
		MCAST_LOGS="$T/logs" sh "$MCAST_ROOT/tests/run-all.sh" plain
	echo "$output"
	[ "$status" -eq 1 ]
	[ "$(cat "$T/counts")" = "plain 3 3 2" ]
	grep -q 'not ok 2 - b' <<<"$output"
	grep -q 'failed at x.c:3' <<<"$output"
	grep -q 'test_b: no TAP plan' <<<"$output"
	grep -q 'diagnostic line' <<<"$output"

	rm "$T/unit/test_a" "$T/unit/test_b"
	printf '#!/bin/sh\necho "ok 1"; echo 1..1\n' >"$T/unit/test_c"
	chmod +x "$T/unit/test_c"
	printf '%s\n' '@test "p" { true; }' >"$T/suites/x.bats"
	run env MCAST_UNIT="$T/unit" MCAST_SUITES="$T/suites/x.bats" MCAST_COUNTS="$T/counts" \
		MCAST_LOGS="$T/logs" sh "$MCAST_ROOT/tests/run-all.sh" plain
	[ "$status" -eq 0 ]
	[ "$(tail -n 1 "$T/counts")" = "plain 2 0 0" ]
	run env MCAST_UNIT="$T/unit" MCAST_COUNTS="$T/counts" MCAST_LOGS="$T/logs" \
		sh "$MCAST_ROOT/tests/run-all.sh" unit
	[ "$status" -eq 0 ]
	[ "$(tail -n 1 "$T/counts")" = "unit 1 0 0" ]
	run sh "$MCAST_ROOT/tests/run-all.sh" bogus
	[ "$status" -eq 2 ]
}

@test "make install and uninstall honour DESTDIR and PREFIX" {
	for p in mcast-pack mcast-send mcast-recv mcast-repair mcast-sched; do
		[ -x "$MCAST_BIN/$p" ] || skip "$p not built in $MCAST_BIN"
	done
	d=$T/dest
	# -o all: install what is built in MCAST_BIN, never rebuild it here.
	run make -s -C "$MCAST_ROOT" -o all install DESTDIR="$d" PREFIX=/opt/mc BINOUT="$MCAST_BIN"
	echo "$output"
	[ "$status" -eq 0 ]
	for p in mcast-pack mcast-send mcast-recv mcast-repair mcast-sched; do
		[ -x "$d/opt/mc/bin/$p" ]
		cmp "$d/opt/mc/bin/$p" "$MCAST_BIN/$p"
		[ -f "$d/opt/mc/share/bash-completion/completions/$p" ]
		[ -f "$d/opt/mc/share/zsh/site-functions/_$p" ]
		if [ -f "$MCAST_ROOT/man/$p.1" ]; then [ -f "$d/opt/mc/share/man/man1/$p.1" ]; fi
	done
	for m in "$MCAST_ROOT"/man/*.[157]; do
		[ -e "$m" ] || continue
		s=${m##*.}
		[ -f "$d/opt/mc/share/man/man$s/${m##*/}" ]
	done
	# Nothing outside DESTDIR/PREFIX.
	[ "$(find "$d" -mindepth 1 -maxdepth 1)" = "$d/opt" ]
	# zsh finds them where Debian's zsh looks ($PREFIX/share/zsh/site-functions is on its fpath).
	if command -v zsh >/dev/null; then
		run zsh -fc 'fpath=("$1" $fpath); autoload -Uz compinit; compinit -u -d "$2/zcompdump"
			for p in mcast-pack mcast-send mcast-recv mcast-repair mcast-sched; do
				[[ $_comps[$p] == _$p ]] || { print -u2 "$p: $_comps[$p]"; exit 1; }
			done' zsh "$d/opt/mc/share/zsh/site-functions" "$T"
		echo "$output"
		[ "$status" -eq 0 ]
	fi
	run make -s -C "$MCAST_ROOT" uninstall DESTDIR="$d" PREFIX=/opt/mc
	[ "$status" -eq 0 ]
	[ -z "$(find "$d" -type f)" ]
}

@test "man pages are free of mandoc warnings and errors" {
	set -- "$MCAST_ROOT"/man/*.[157]
	[ -e "$1" ] || skip "no man pages yet"
	run mandoc -Tlint -Wwarning "$@"
	echo "$output"
	[ "$status" -eq 0 ]
	run make -s -C "$MCAST_ROOT" lint
	[ "$status" -eq 0 ]
}

@test "man pages: no prose rendered as flags (words after a .Fl delimiter)" {
	# mdoc makes every word after ".Fl -x :" a flag of its own, which mandoc
	# -Tlint does not flag: "--to: -a -lossy -receiver -keeps" was shipped.
	local f bad=
	for f in "$MCAST_ROOT"/man/*.[157]; do
		bad="$bad$(mandoc -Tascii "$f" | col -b | grep -E '(^|[ (])-[a-z]{2,} -[a-z]{2,} -[a-z]{2,}' | sed "s|^|${f##*/}: |")"
	done
	echo "$bad"
	[ -z "$bad" ]
}

@test "completions: one bash and one zsh file per program, both parse" {
	for p in mcast-pack mcast-send mcast-recv mcast-repair mcast-sched; do
		bash -n "$MCAST_ROOT/completions/bash/$p"
		[ -f "$MCAST_ROOT/completions/zsh/_$p" ]
		head -n 1 "$MCAST_ROOT/completions/zsh/_$p" | grep -qx "#compdef $p"
		if command -v zsh >/dev/null; then
			zsh -n "$MCAST_ROOT/completions/zsh/_$p"
		fi
	done
	command -v zsh >/dev/null || skip "zsh not installed: zsh syntax not checked"
}

@test "completions: every long option a built program's --help shows is completed" {
	n=0
	for p in mcast-pack mcast-send mcast-recv mcast-repair mcast-sched; do
		[ -x "$MCAST_BIN/$p" ] || continue
		help=$("$MCAST_BIN/$p" --help 2>&1) || continue
		grep -qi 'not implemented' <<<"$help" && continue
		n=$((n + 1))
		for o in $(grep -o -- '--[a-z][a-z0-9-]*' <<<"$help" | sort -u); do
			grep -q -- "$o" "$MCAST_ROOT/completions/bash/$p" ||
				{ echo "$p: $o missing from bash completion"; false; }
			grep -q -- "$o" "$MCAST_ROOT/completions/zsh/_$p" ||
				{ echo "$p: $o missing from zsh completion"; false; }
		done
	done
	[ "$n" -gt 0 ] || skip "no program built yet"
}

# complete_words PROG WORD...: what bash completion offers for the last WORD.
complete_words() {
	local prog=$1
	shift
	bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
		f=$(complete -p "$1" | sed "s/.*-F \([^ ]*\) .*/\1/"); "$f"; printf "%s\n" "${COMPREPLY[@]}"' \
		_ "$MCAST_ROOT/completions/bash/$prog" "$prog" "$@"
}

@test "completions: bash offers the contracted options" {
	run complete_words mcast-send mcast-send --
	for o in --fec --linger --max-time --mtu --json --help --version; do grep -qx -- "$o" <<<"$output"; done
	run complete_words mcast-send mcast-send -
	for o in -g -p -i -t -r -q -v -h; do grep -qx -- "$o" <<<"$output"; done
	run complete_words mcast-recv mcast-recv --
	for o in --package --expect --timeout --json; do grep -qx -- "$o" <<<"$output"; done
	run complete_words mcast-recv mcast-recv -
	grep -qx -- -o <<<"$output"
	run complete_words mcast-repair mcast-repair --
	for o in --cacert --insecure --spread --json; do grep -qx -- "$o" <<<"$output"; done
	run complete_words mcast-repair mcast-repair -
	for o in -s -j -H; do grep -qx -- "$o" <<<"$output"; done
	run complete_words mcast-sched mcast-sched --m
	[ "$(sort <<<"$output" | tr '\n' ' ')" = "--max-wait --min-clients " ]
	run complete_words mcast-sched mcast-sched --
	for o in --package --status --start-empty; do grep -qx -- "$o" <<<"$output"; done
	run complete_words mcast-sched mcast-sched --min-clients 3 -- mcast-se
	grep -q mcast-se <<<"$output" || [ -z "$output" ] # commands on PATH
	run complete_words mcast-pack mcast-pack ""
	for s in create info list verify extract; do grep -qx "$s" <<<"$output"; done
	run complete_words mcast-pack mcast-pack create -
	for o in -o -n -V -z -l -j --chunk-size; do grep -qx -- "$o" <<<"$output"; done
	run complete_words mcast-pack mcast-pack create -z ""
	[ "$(tr '\n' ' ' <<<"$output")" = "zstd gzip xz none " ]
	run complete_words mcast-pack mcast-pack extract -
	for o in -C -O; do grep -qx -- "$o" <<<"$output"; done
}

@test "examples: scripts parse, units have their sections, crontab lines are well formed" {
	for f in "$MCAST_ROOT"/examples/*.sh; do sh -n "$f"; done
	grep -q '^\[Service\]' "$MCAST_ROOT/examples/mcast-session@.service"
	grep -q '^ExecStart=.*mcast-sched .*--min-clients .*--max-wait .* -- .*mcast-send' \
		"$MCAST_ROOT/examples/mcast-session@.service"
	grep -q '^\[Service\]' "$MCAST_ROOT/examples/mcast-client@.service"
	# The client takes only its own package (--package through -n, or --expect through -e).
	grep -q '^ExecStart=.*mcast-client.sh .*-[ne] ' "$MCAST_ROOT/examples/mcast-client@.service"
	grep -q '^\[Timer\]' "$MCAST_ROOT/examples/mcast-session@.timer"
	grep -q '^OnCalendar=' "$MCAST_ROOT/examples/mcast-session@.timer"
	# Every crontab entry: five time fields then a command; the sends wait for a quorum.
	run grep -Ev '^(#|$|[A-Z]+=)' "$MCAST_ROOT/examples/crontab"
	[ "${#lines[@]}" -ge 2 ]
	for l in "${lines[@]}"; do
		[[ $l =~ ^[0-9*,/-]+[[:space:]]+[0-9*,/-]+[[:space:]]+[0-9*,/-]+[[:space:]]+[0-9*,/-]+[[:space:]]+[0-9*,/-]+[[:space:]]+[^[:space:]] ]]
	done
	grep -q 'mcast-sched .*--min-clients [0-9]* .*--max-wait [0-9]*[smh] .*-- mcast-send' "$MCAST_ROOT/examples/crontab"
	if command -v systemd-analyze >/dev/null; then
		run systemd-analyze verify "$MCAST_ROOT/examples/mcast-session@.timer"
		echo "$output"
	fi
}

@test "examples: mcast-client.sh goes recv, then repair, then extract, with contracted exits" {
	mkdir "$T/fake"
	# Stand-ins that log their calls; recv says 3 (incomplete), repair 0.
	for p in recv repair pack; do
		printf '#!/bin/sh\necho "%s $*" >>"%s"\nexit ${FAKE_%s:-0}\n' "$p" "$T/calls" "$(echo $p | tr a-z A-Z)" >"$T/fake/mcast-$p"
		chmod +x "$T/fake/mcast-$p"
	done
	run env PATH="$T/fake:$PATH" FAKE_RECV=3 sh "$MCAST_ROOT/examples/mcast-client.sh" \
		-n win11 -w 5s -S 0s -s http://198.18.0.1:8080/w.mcpkg "$T/w.mcpkg" "$T/out"
	echo "$output"; cat "$T/calls"
	[ "$status" -eq 0 ]
	sed -n 1p "$T/calls" | grep -q -- '^recv .*--package win11 .*--timeout 5s -o '"$T/w.mcpkg"
	sed -n 2p "$T/calls" | grep -q -- "^repair -s http://198.18.0.1:8080/w.mcpkg --spread 0s $T/w.mcpkg"
	sed -n 3p "$T/calls" | grep -q -- "^pack extract -C $T/out $T/w.mcpkg"
	: >"$T/calls"
	run env PATH="$T/fake:$PATH" FAKE_RECV=3 FAKE_REPAIR=3 sh "$MCAST_ROOT/examples/mcast-client.sh" \
		-s /mnt/dp/w.mcpkg "$T/w.mcpkg" "$T/out"
	[ "$status" -eq 3 ]
	! grep -q '^pack' "$T/calls"
	: >"$T/calls"
	run env PATH="$T/fake:$PATH" sh "$MCAST_ROOT/examples/mcast-client.sh" "$T/w.mcpkg" "$T/out"
	[ "$status" -eq 0 ]
	! grep -q '^repair' "$T/calls"
	run env PATH="$T/fake:$PATH" FAKE_RECV=3 sh "$MCAST_ROOT/examples/mcast-client.sh" "$T/w.mcpkg" "$T/out"
	[ "$status" -eq 3 ]
	run sh "$MCAST_ROOT/examples/mcast-client.sh" onlyone
	[ "$status" -eq 2 ]
}

@test "examples: pxe/mcast-image.sh goes recv --to, then repair --to only on 3, pinned, from a kernel command line" {
	mkdir "$T/fake"
	for p in recv repair; do
		printf '#!/bin/sh\necho "%s $*" >>"%s"\nexit ${FAKE_%s:-0}\n' "$p" "$T/calls" "$(echo $p | tr a-z A-Z)" >"$T/fake/mcast-$p"
		chmod +x "$T/fake/mcast-$p"
	done
	img=$MCAST_ROOT/examples/pxe/mcast-image.sh
	: >"$T/disk"
	run env PATH="$T/fake:$PATH" FAKE_RECV=3 sh "$img" -e 643e95aa -k /etc/mcast/lab.pub -d /mnt/usb/lab.key -w 5s -S 0s \
		-t "$T/st" -s http://198.18.0.1/lab.mcpkg "$T/disk"
	echo "$output"; cat "$T/calls"
	[ "$status" -eq 0 ]
	sed -n 1p "$T/calls" | grep -q -- "^recv --expect 643e95aa --trust /etc/mcast/lab.pub --decrypt /mnt/usb/lab.key --timeout 5s --to $T/disk --state $T/st\$"
	sed -n 2p "$T/calls" | grep -q -- "^repair -s http://198.18.0.1/lab.mcpkg --trust /etc/mcast/lab.pub --decrypt /mnt/usb/lab.key --spread 0s --to $T/disk --state $T/st\$"
	# 0: no repair; 2 (a refused disk) and 1: no repair either, the status passed on
	for st in 0 1 2; do
		: >"$T/calls"
		run env PATH="$T/fake:$PATH" FAKE_RECV=$st sh "$img" -n lab -s /x "$T/disk"
		[ "$status" -eq "$st" ]
		! grep -q '^repair' "$T/calls"
	done
	# 3 and the repair still incomplete: 3
	run env PATH="$T/fake:$PATH" FAKE_RECV=3 FAKE_REPAIR=3 sh "$img" -n lab -s /x "$T/disk"
	[ "$status" -eq 3 ]
	# never unpinned, never a disk that is not there; usage errors are 2 and run nothing
	: >"$T/calls"
	run env PATH="$T/fake:$PATH" sh "$img" "$T/disk"
	[ "$status" -eq 2 ] && [[ $output == *"no -e ID or -n NAME"* ]]
	run env PATH="$T/fake:$PATH" sh "$img" -n lab /nonexistent/disk
	[ "$status" -eq 2 ]
	[ ! -s "$T/calls" ]
	# the kernel command line of a netboot
	printf 'BOOT_IMAGE=mcast/vmlinuz ip=dhcp mcast.disk=%s mcast.expect=643e95aa57ba05ce mcast.trust=/etc/mcast/lab.pub mcast.group=239.1.2.3 mcast.wait=20m mcast.state=%s mcast.source=http://dp1/lab.mcpkg,http://dp2/lab.mcpkg quiet\n' \
		"$T/disk" "$T/st2" >"$T/cmdline"
	run env PATH="$T/fake:$PATH" FAKE_RECV=3 sh "$img" -c "$T/cmdline"
	echo "$output"; cat "$T/calls"
	[ "$status" -eq 0 ]
	sed -n 1p "$T/calls" | grep -q -- "^recv -g 239.1.2.3 --expect 643e95aa57ba05ce --trust /etc/mcast/lab.pub --timeout 20m --to $T/disk --state $T/st2\$"
	sed -n 2p "$T/calls" | grep -q -- "^repair -s http://dp1/lab.mcpkg -s http://dp2/lab.mcpkg --trust /etc/mcast/lab.pub --spread 30s --to $T/disk --state $T/st2\$"
	printf 'ip=dhcp mcast.expect=1234abcd\n' >"$T/cmdline"
	run env PATH="$T/fake:$PATH" sh "$img" -c "$T/cmdline"
	[ "$status" -eq 2 ] && [[ $output == *"no mcast.disk="* ]]
	if command -v shellcheck >/dev/null; then
		shellcheck -s sh "$img" "$MCAST_ROOT"/examples/pxe/initramfs-tools/hooks/mcast \
			"$MCAST_ROOT"/examples/pxe/initramfs-tools/scripts/init-premount/mcast
	fi
}

@test "examples: pxe/mcast-image.sh with the real programs: a session onto the disk, and a repair of the rest" {
	require_root
	require_prog mcast-pack mcast-send mcast-recv mcast-repair
	ns_lo
	local G=239.77.0.9 P=17090 id
	# a 6 MiB "disk image": random spans and zero ones (holes)
	head -c 3M /dev/urandom >"$T/img"
	truncate -s 4M "$T/img"
	head -c 2M /dev/urandom >>"$T/img"
	run_pack create -q --image -n lab -o "$T/lab.mcpkg" "$T/img"
	id=$(run_pack info --json "$T/lab.mcpkg" | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
	truncate -s 8M "$T/disk"
	bg_start image with_timeout 60 ns_exec local env PATH="$MCAST_BIN:$PATH" sh "$MCAST_ROOT/examples/pxe/mcast-image.sh" \
		-g $G -p $P -e "${id:0:16}" -w 30s -t "$T/disk.state" "$T/disk"
	wait_for 30 grep -q 'waiting for' "$T/image.err"
	bg_start send with_timeout 60 ns_exec local run_send -g $G -p $P -r 100M --linger 300ms "$T/lab.mcpkg"
	bg_wait image 60
	cat "$T/image.err"
	grep -q 'image complete and verified' "$T/image.err"
	cmp -n 6M "$T/disk" "$T/img"
	bg_wait send 30
	# no session this time: recv gives up (3), repair --to completes from a file source
	truncate -s 0 "$T/disk2" && truncate -s 8M "$T/disk2"
	run -0 ns_exec local env PATH="$MCAST_BIN:$PATH" sh "$MCAST_ROOT/examples/pxe/mcast-image.sh" \
		-g $G -p $P -e "$id" -w 1s -S 0s -t "$T/disk2.state" -s "$T/lab.mcpkg" "$T/disk2"
	[[ $output == *"repairing"*"image complete and verified"* ]]
	cmp -n 6M "$T/disk2" "$T/img"
}

@test "examples: demo.sh packs, verifies, detects damage (exit 3) and extracts" {
	require_prog mcast-pack
	run with_timeout 120 sh "$MCAST_ROOT/examples/demo.sh"
	echo "$output"
	[ "$status" -eq 0 ]
	grep -qi 'chunk' <<<"$output"
}

@test "LICENSE is BSD-2-Clause for the mcast developers" {
	grep -q 'BSD 2-Clause License' "$MCAST_ROOT/LICENSE"
	grep -q 'Copyright (c) 2026 The mcast developers' "$MCAST_ROOT/LICENSE"
}

@test "deps.sh knows every package the tests use" {
	sh -n "$MCAST_ROOT/tests/deps.sh"
	for p in build-essential pkg-config libarchive-dev libxxhash-dev xxhash libisal-dev \
		libcurl4-openssl-dev libssl-dev bats nginx-light nftables iproute2 mandoc clang libclang-rt-14-dev \
		openssl python3 socat zstd zsh udpcast uftp iperf; do
		grep -qw -- "$p" "$MCAST_ROOT/tests/deps.sh"
	done
}
