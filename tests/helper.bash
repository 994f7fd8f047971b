# tests/helper.bash: what every bats suite of mcast loads (`load helper`).
# Program wrappers (run_pack ... run_sched) honouring MCAST_BIN and
# EXEC_PREFIX, private network namespaces (one-host loopback, bridged LAN),
# nftables loss, background processes, nginx and a misbehaving HTTP server,
# and a teardown that removes all of it even when a test fails.
#
# Traffic stays inside namespaces this file makes: hosts get 198.18.0.0/15 and
# 2001:db8::/32 addresses, multicast uses 239.0.0.0/8 and ff15::/16. Nothing
# here touches the root namespace's links or routes.
#
# A suite that defines its own teardown() must call mc_cleanup from it.

# The suites use `run -N` and `--separate-stderr`.
if declare -F bats_require_minimum_version >/dev/null; then
	bats_require_minimum_version 1.5.0
fi

# (Without a subshell when bats gives the directory: this runs once a test.)
if [ -z "${MCAST_ROOT:-}" ] && [[ ${BATS_TEST_DIRNAME:-} == /*/tests ]]; then
	MCAST_ROOT=${BATS_TEST_DIRNAME%/tests}
fi
MCAST_ROOT=${MCAST_ROOT:-$(cd "${BATS_TEST_DIRNAME:-$(dirname "${BASH_SOURCE[0]}")}/.." && pwd)}
MCAST_BIN=${MCAST_BIN:-$MCAST_ROOT/bin}
EXEC_PREFIX=${EXEC_PREFIX:-}
MCAST_TESTS=$MCAST_ROOT/tests
export MCAST_ROOT MCAST_BIN EXEC_PREFIX

# Scratch: bats gives each test its own directory (and each file one, for
# setup_file); outside bats make one.
if [ -z "${BATS_TEST_TMPDIR:-}" ]; then
	if [ -n "${BATS_FILE_TMPDIR:-}" ]; then
		BATS_TEST_TMPDIR=$BATS_FILE_TMPDIR
	else
		BATS_TEST_TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/mcast-test.XXXXXX")
	fi
fi
MC_STATE=$BATS_TEST_TMPDIR/.mc # pids, namespaces and servers to clean up
mkdir -p "$MC_STATE" 2>/dev/null

# python3 is the system one (/usr/bin/python3) for the tests and every
# program they start (udp-tool.py, flaky-http.py, inline scripts), also
# through ip netns exec and timeout: a version manager's shim first on PATH
# (pyenv's) costs half a second and as much CPU a call, and the suites call
# python3 hundreds of times.
if [ -x /usr/bin/python3 ] && [[ :$PATH: != *"/.mc-python3:"* ]] && [ "$(command -v python3)" != /usr/bin/python3 ]; then
	_mc_pydir=${BATS_RUN_TMPDIR:-$BATS_TEST_TMPDIR}/.mc-python3
	[ -e "$_mc_pydir/python3" ] || { mkdir -p "$_mc_pydir" && ln -sf /usr/bin/python3 "$_mc_pydir/python3"; }
	PATH=$_mc_pydir:$PATH
	export PATH
fi

# Namespace names carry the pid of the test process, so parallel runs never
# clash and mc_reap_stale can tell leftovers of dead runs from live ones.
MC_NS_PREFIX=${MC_NS_PREFIX:-mct$$x${BATS_SUITE_TEST_NUMBER:-0}}

# ---------------------------------------------------------------------------
# Running the programs

# Why most helpers begin with `local -; set +T` and go on in _mc_u_NAME: bats
# runs a DEBUG trap before every command of a test, also inside the functions
# it calls (set -T), and here that trap costs about 1.5-2 ms of CPU a command
# (a loop of 1000 `[ -f F ]` in a test took 1.5 s; with -T off 0.025 s). A
# function called with -T off runs without the trap, so a helper's own
# commands, its polling loops (bg_wait, wait_for) and the functions it calls
# cost what plain bash costs; `local -` puts -T back when it returns. The
# suites are CPU-bound on two cores, so that was seconds of the run per test.
# A failure inside still fails the test, which bats reports at the helper's
# call.

# _mc_argv CMD ARG...: expand CMD into the real argv in the array MC_ARGV.
# run_<prog>, ns_exec and with_timeout compose in any order, e.g.
#   with_timeout 20 ns_exec h1 run_recv -o out.mcpkg
# and the result is a plain exec chain (ip netns exec, timeout, the program),
# so a background job's pid is the process that runs, not a subshell.
_mc_argv() {
	local cmd=$1
	shift
	case $cmd in
	run_pack|run_send|run_recv|run_repair|run_sched)
		# shellcheck disable=SC2206  # EXEC_PREFIX is a word list on purpose
		MC_ARGV=($EXEC_PREFIX "$MCAST_BIN/mcast-${cmd#run_}" "$@")
		;;
	udp_tool)
		MC_ARGV=(python3 "$MCAST_TESTS/udp-tool.py" "$@")
		;;
	ns_exec)
		local host=$1
		shift
		[ $# -gt 0 ] || { echo "ns_exec: no command" >&2; return 2; }
		_mc_argv "$@" || return
		# "-" is the root namespace (as for nginx_start and flaky_start).
		[ "$host" = - ] || MC_ARGV=(ip netns exec "$MC_NS_PREFIX-$host" "${MC_ARGV[@]}")
		;;
	with_timeout)
		local secs=$1
		shift
		[ $# -gt 0 ] || { echo "with_timeout: no command" >&2; return 2; }
		_mc_argv "$@" || return
		MC_ARGV=(timeout -k 5 "$secs" "${MC_ARGV[@]}")
		;;
	*)
		if declare -F "$cmd" >/dev/null; then
			# Any other shell function: run it in a bash that loads this file.
			MC_ARGV=(env MC_HELPER_FN="$cmd" bash -c \
				'. "$MCAST_ROOT/tests/helper.bash"; "$MC_HELPER_FN" "$@"' "$cmd" "$@")
		else
			MC_ARGV=("$cmd" "$@")
		fi
		;;
	esac
}

_mc_exec() {
	local MC_ARGV
	_mc_argv "$@" || return
	"${MC_ARGV[@]}"
}

# run_pack ARG...: run bin/mcast-pack (from $MCAST_BIN, under $EXEC_PREFIX).
# Use under bats `run`:  run -3 --separate-stderr run_pack verify x.mcpkg
run_pack() { local -; set +T; _mc_exec run_pack "$@"; }
run_send() { local -; set +T; _mc_exec run_send "$@"; }
run_recv() { local -; set +T; _mc_exec run_recv "$@"; }
run_repair() { local -; set +T; _mc_exec run_repair "$@"; }
run_sched() { local -; set +T; _mc_exec run_sched "$@"; }

# with_timeout SECS CMD ARG...: run CMD, killed after SECS (status 124, as
# timeout(1)); SIGKILL 5 s later if it ignores SIGTERM. CMD may be a program,
# run_<prog>, ns_exec ..., or a shell function.
with_timeout() { local -; set +T; _mc_exec with_timeout "$@"; }

# ns_exec HOST CMD ARG...: run CMD inside HOST's namespace ("-": the root one).
ns_exec() { local -; set +T; _mc_exec ns_exec "$@"; }

# udp_tool send|recv ...: tests/udp-tool.py, to check that multicast flows
# and to throw garbage datagrams at a session (see its --help).
udp_tool() { local -; set +T; _mc_exec udp_tool "$@"; }

# mc_sleep SECS: sleep(1) without a process. The polling loops below wait
# thousands of times a run, and a fork and exec of sleep from a test's shell
# costs about 6 ms of CPU here (the suites are CPU-bound): read -t on a FIFO
# held open for reading and writing, which never gets a byte, only times out.
mc_sleep() {
	local f=$MC_STATE/sleep.fifo _mc_none
	if [ ! -p "$f" ] && ! mkfifo "$f" 2>/dev/null && [ ! -p "$f" ]; then
		sleep "$1"
		return 0
	fi
	read -r -t "$1" _mc_none <>"$f" || true
	return 0
}

# ---------------------------------------------------------------------------
# Background processes

# bg_start NAME CMD ARG...: start CMD in the background (same forms as
# with_timeout), stdout to $BATS_TEST_TMPDIR/NAME.out, stderr to NAME.err.
# Sets BG_PID, the pid of CMD itself (bg_pid NAME prints it later). A keeper
# records its exit status, so bg_wait works from any subshell (bats `run`).
# Everything is killed in teardown. Background jobs close fd 3, as bats needs.
bg_start() { local -; set +T; _mc_u_bg_start "$@"; }
_mc_u_bg_start() {
	local name=$1 MC_ARGV i
	shift
	_mc_argv "$@" || return
	rm -f "$MC_STATE/bg.$name" "$MC_STATE/st.$name"
	(
		set +eE
		trap - ERR EXIT
		"${MC_ARGV[@]}" >"$BATS_TEST_TMPDIR/$name.out" 2>"$BATS_TEST_TMPDIR/$name.err" </dev/null &
		echo $! >"$MC_STATE/bg.$name.tmp"
		mv "$MC_STATE/bg.$name.tmp" "$MC_STATE/bg.$name"
		wait $!
		echo $? >"$MC_STATE/st.$name.tmp"
		mv "$MC_STATE/st.$name.tmp" "$MC_STATE/st.$name"
	) 3>&- 2>/dev/null & # the keeper's own stderr: no "Killed" job notices in test output
	echo $! >>"$MC_STATE/pids"
	for ((i = 0; i < 500; i++)); do
		[ -f "$MC_STATE/bg.$name" ] && break
		mc_sleep 0.01
	done
	BG_PID=$(cat "$MC_STATE/bg.$name") || return 1
	echo "$BG_PID" >>"$MC_STATE/pids"
}

bg_pid() { cat "$MC_STATE/bg.$1"; }

# bg_running NAME: true while NAME has not ended.
bg_running() { [ -f "$MC_STATE/bg.$1" ] && [ ! -f "$MC_STATE/st.$1" ]; }

# bg_wait NAME [SECS]: wait for NAME to end (at most SECS, default 60) and
# return its exit status (128+N when killed by signal N); 124 if it still
# runs then (it is killed).
bg_wait() { local -; set +T; _mc_u_bg_wait "$@"; }
_mc_u_bg_wait() {
	local deadline
	[ -f "$MC_STATE/bg.$1" ] || { echo "bg_wait: no job $1" >&2; return 1; }
	deadline=$((SECONDS + ${2:-60}))
	while [ ! -f "$MC_STATE/st.$1" ]; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			echo "bg_wait: $1 (pid $(bg_pid "$1")) still running after ${2:-60}s; killing it" >&2
			bg_kill "$1" KILL
			return 124
		fi
		mc_sleep 0.05
	done
	return "$(cat "$MC_STATE/st.$1")"
}

# _mc_descendants PID...: the pids below each PID, deepest first, then PID
# itself (when it still runs). One ps for the whole tree: a ps per process
# (it reads all of /proc each time) made a teardown take seconds.
_mc_descendants() {
	ps -e -o pid=,ppid= 2>/dev/null | awk -v roots="$*" '
		{ kids[$2] = kids[$2] " " $1; alive[$1] = 1 }
		function walk(p,   n, a, i) {
			n = split(kids[p], a, " ")
			for (i = 1; i <= n; i++) if (!(a[i] in seen)) { seen[a[i]] = 1; walk(a[i]); print a[i] }
		}
		END {
			n = split(roots, r, " ")
			for (i = 1; i <= n; i++) { walk(r[i]); if (alive[r[i]] && !(r[i] in seen)) { seen[r[i]] = 1; print r[i] } }
		}'
}

# _mc_gone PID: PID has exited: no such process, or a zombie whose threads
# are all gone (a process's files, and so its flocks, are released only when
# its last thread exits; the leader may be a zombie before that).
_mc_gone() {
	local st
	st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || return 0
	[ -n "$st" ] || return 0
	[ "${st%% *}" = Z ] && [ "$(ls "/proc/$1/task" 2>/dev/null | wc -l)" -le 1 ]
}

# bg_kill NAME [SIG]: send SIG (default TERM) to NAME's process and every
# process below it (so SIGKILL reaches the program under timeout/valgrind).
# With KILL it returns only once all of them have exited (at most 10 s):
# NAME's own pid may be a wrapper (timeout, ip netns exec) that dies at once
# while the program below it still exits (a thread in fdatasync, an ASan
# heap to unmap) and holds its PKG.part lock, so that the next program run
# on the same output would find it "in use by another process".
bg_kill() { local -; set +T; _mc_u_bg_kill "$@"; }
_mc_u_bg_kill() {
	local pid p pids
	pid=$(bg_pid "$1") || return 1
	pids=$(_mc_descendants "$pid")
	for p in $pids; do
		kill -s "${2:-TERM}" "$p" 2>/dev/null || true
	done
	case ${2:-TERM} in
	KILL|SIGKILL|9)
		for p in $pids; do
			wait_for 10 _mc_gone "$p" || echo "bg_kill: $1: pid $p still there 10 s after SIGKILL" >&2
		done
		;;
	esac
	return 0
}

# wait_for SECS CMD ARG...: poll CMD every 0.1 s until it succeeds; 1 on timeout.
wait_for() { local -; set +T; _mc_u_wait_for "$@"; }
_mc_u_wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		[ "$SECONDS" -lt "$deadline" ] || return 1
		mc_sleep 0.1
	done
}

# ---------------------------------------------------------------------------
# Sessions (20-session, 65-image-session, 68-...): the suite sets G and P, the
# group and port. Every program runs under timeout(1), so a hang fails the
# test instead of the suite, and teardown kills what is left.

# Python for JSON checks: the system one when there is one (a version
# manager's shim costs a third of a second a call).
PY=python3
[ ! -x /usr/bin/python3 ] || PY=/usr/bin/python3

# session_send_bg HOST ARG...: mcast-send --json on $G:$P from HOST, in the
# background as "send" (SNAME overrides the name).
session_send_bg() { local -; set +T; _mc_u_session_send_bg "$@"; }
_mc_u_session_send_bg() {
	local host=$1
	shift
	bg_start "${SNAME:-send}" with_timeout 60 ns_exec "$host" run_send -g "$G" -p "$P" --json "$@"
}

# session_recv_bg NAME HOST ARG...: mcast-recv --json on $G:$P in HOST, in the
# background as NAME (ARG gives -o or --to); returns once it listens.
session_recv_bg() { local -; set +T; _mc_u_session_recv_bg "$@"; }
_mc_u_session_recv_bg() {
	local name=$1 host=$2
	shift 2
	bg_start "$name" with_timeout 60 ns_exec "$host" run_recv -g "$G" -p "$P" --json "$@"
	wait_for 30 grep -q 'waiting for' "$BATS_TEST_TMPDIR/$name.err" || {
		echo "$name does not listen:" >&2
		cat "$BATS_TEST_TMPDIR/$name.err" >&2
		return 1
	}
}

# bg_ends NAME SECS STATUS...: background job NAME ends within SECS with one
# of the STATUSes; its stderr is shown when not. Call it in the test's shell
# (not under `run`), where bg_wait can reap the job.
bg_ends() { local -; set +T; _mc_u_bg_ends "$@"; }
_mc_u_bg_ends() {
	local name=$1 secs=$2 st=0 s
	shift 2
	bg_wait "$name" "$secs" || st=$?
	for s in "$@"; do
		[ "$st" -ne "$s" ] || return 0
	done
	echo "$name exited $st, expected $*; its stderr:" >&2
	cat "$BATS_TEST_TMPDIR/$name.err" >&2
	return 1
}

# bg_json NAME EVENT EXPR: EXPR (Python, on the object j) of the last --json
# EVENT that background job NAME printed.
bg_json() { local -; set +T; _mc_u_bg_json "$@"; }
_mc_u_bg_json() {
	"$PY" - "$BATS_TEST_TMPDIR/$1.out" "$2" "$3" <<'PYEOF'
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
PYEOF
}

# bigger_than FILE BYTES: FILE exists and holds more than BYTES.
# flip_byte FILE OFFSET: complement the byte at OFFSET, so the file surely changes there
# (writing a fixed character would leave a byte that already held it unchanged: 1 run in 256).
flip_byte() { local -; set +T; _mc_u_flip_byte "$@"; }
_mc_u_flip_byte() {
	local b
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	[ -n "$b" ] || { echo "flip_byte: $1 has no byte at $2" >&2; return 1; }
	printf "\\$(printf %03o $((255 - b)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

bigger_than() {
	[ -e "$1" ] && [ "$(stat -c %s "$1")" -gt "$2" ]
}

# ---------------------------------------------------------------------------
# Network namespaces

# ns_name HOST: the netns name of HOST (as made by ns_lo or lan_create).
ns_name() { printf '%s-%s\n' "$MC_NS_PREFIX" "$1"; }

# (The helpers below name namespaces as ns_name does, without its subshell,
# and give ip its commands in batches: each ip started from a test's shell
# costs several ms of CPU, and the suites are CPU-bound.)

# ns_lo [HOST]: a one-host namespace (default HOST "local") where multicast
# goes over lo: lo up with multicast on, route 224.0.0.0/4 dev lo, and the
# address 198.18.0.1 (on a dummy link when the kernel has them, else on lo).
# IPv4 only: IPv6 multicast over lo does not work, use lan_create.
ns_lo() { local -; set +T; _mc_u_ns_lo "$@"; }
_mc_u_ns_lo() {
	local host=${1:-local} ns
	ns=$MC_NS_PREFIX-$host
	ip netns add "$ns" || return 1
	echo "$ns" >>"$MC_STATE/netns"
	# The dummy link first: a kernel without them stops the batch there
	# (and the next ns_lo of this bats run goes to lo at once).
	local nodummy=${BATS_RUN_TMPDIR:-$MC_STATE}/.mc-no-dummy
	if [ -e "$nodummy" ] || ! ip -n "$ns" -batch - <<-EOF_IP 2>/dev/null; then
		link add mc0 type dummy
		link set lo up multicast on
		route add 224.0.0.0/4 dev lo
		addr add 198.18.0.1/24 dev mc0
		link set mc0 up
	EOF_IP
		if [ ! -e "$nodummy" ]; then
			if ip -n "$ns" link show mc0 >/dev/null 2>&1; then
				echo "ns_lo: setting up $ns failed" >&2
				return 1
			fi
			: >"$nodummy"
		fi
		ip -n "$ns" -batch - <<-EOF_IP || return 1
			link set lo up multicast on
			route add 224.0.0.0/4 dev lo
			addr add 198.18.0.1/32 dev lo
		EOF_IP
	fi
	echo "$host" >>"$MC_STATE/hosts"
	NS_HOST=$host
}

# lan_create N: hosts h1..hN, each in its own namespace, joined by a bridge
# (multicast_snooping 0) in a namespace of its own ("br"). Host hI has eth0
# with 198.18.0.I/24 and 2001:db8::I/64 (nodad, no link-local), and routes
# 239.0.0.0/8 and ff15::/16 via eth0. Sets LAN_HOSTS=(h1 ... hN).
lan_create() { local -; set +T; _mc_u_lan_create "$@"; }
_mc_u_lan_create() {
	local n=$1 i host ns br adds links
	[ "$n" -ge 1 ] && [ "$n" -le 250 ] || { echo "lan_create: 1..250 hosts" >&2; return 2; }
	br=$MC_NS_PREFIX-br
	adds="netns add $br" links=
	for ((i = 1; i <= n; i++)); do
		adds+=$'\n'"netns add $MC_NS_PREFIX-h$i"
		links+="link add v$i type veth peer name eth0 netns $MC_NS_PREFIX-h$i
link set v$i master br0
link set v$i up
"
	done
	# Recorded first, so that teardown removes what a failed batch made.
	printf '%s\n' "$br" >>"$MC_STATE/netns"
	for ((i = 1; i <= n; i++)); do printf '%s\n' "$MC_NS_PREFIX-h$i" >>"$MC_STATE/netns"; done
	ip -batch - <<<"$adds" || return 1
	ip -n "$br" -batch - <<-EOF_IP || return 1
		link set lo up multicast on
		link add br0 type bridge mcast_snooping 0
		link set br0 up
		$links
	EOF_IP
	LAN_HOSTS=()
	for ((i = 1; i <= n; i++)); do
		host=h$i
		ns=$MC_NS_PREFIX-$host
		# No link-local (and so no DAD); the test addresses are added nodad.
		ip -n "$ns" link set eth0 addrgenmode none 2>/dev/null || true
		ip -n "$ns" -batch - <<-EOF_IP || return 1
			link set lo up multicast on
			link set eth0 up multicast on
			addr add 198.18.0.$i/24 dev eth0
			addr add 2001:db8::$i/64 dev eth0 nodad
			route add 239.0.0.0/8 dev eth0
			route add ff15::/16 dev eth0
		EOF_IP
		echo "$host" >>"$MC_STATE/hosts"
		LAN_HOSTS+=("$host")
	done
}

# ns_addr HOST / ns_addr6 HOST: HOST's test address (198.18.0.I, 2001:db8::I).
ns_addr() {
	case $1 in
	h[0-9]*) echo "198.18.0.${1#h}" ;;
	*) echo 198.18.0.1 ;;
	esac
}
ns_addr6() {
	case $1 in
	h[0-9]*) echo "2001:db8::${1#h}" ;;
	*) echo "ns_addr6: $1 has no IPv6 test address" >&2; return 1 ;;
	esac
}

# ns_loss HOST PCT [PORT...]: drop PCT% of UDP packets arriving at HOST (to
# the given destination ports, or to every UDP port), with real kernel loss
# from nftables in HOST's namespace (PCT 0..100: 100 cuts HOST off). ns_loss HOST 0 removes it.
ns_loss() { local -; set +T; _mc_u_ns_loss "$@"; }
_mc_u_ns_loss() {
	local host=$1 pct=$2 ns port odds
	shift 2
	ns=$(ns_name "$host")
	ip netns exec "$ns" nft delete table inet loss 2>/dev/null || true
	[ "$pct" -gt 0 ] || return 0
	odds="numgen random mod 100 < $pct"
	[ "$pct" -lt 100 ] || odds= # nft takes 0..99 there
	ip netns exec "$ns" nft add table inet loss || return 1
	ip netns exec "$ns" nft add chain inet loss in \
		'{ type filter hook input priority 0; policy accept; }' || return 1
	if [ $# -eq 0 ]; then
		# shellcheck disable=SC2086  # odds is words of the rule
		ip netns exec "$ns" nft add rule inet loss in meta l4proto udp $odds counter drop || return 1
	fi
	for port in "$@"; do
		# shellcheck disable=SC2086
		ip netns exec "$ns" nft add rule inet loss in udp dport "$port" $odds counter drop || return 1
	done
}

# ns_loss_count HOST: packets dropped so far by HOST's loss rules.
ns_loss_count() { local -; set +T; _mc_u_ns_loss_count "$@"; }
_mc_u_ns_loss_count() {
	ip netns exec "$(ns_name "$1")" nft list table inet loss 2>/dev/null |
		awk '/drop/ { for (i = 1; i < NF; i++) if ($i == "packets") n += $(i + 1) }
		     END { print n + 0 }'
}

# ---------------------------------------------------------------------------
# HTTP sources

# nginx_start HOST DIR [-s] [-a ADDR] [-p PORT] [-c DIRECTIVES]: serve DIR
# with nginx in HOST's namespace ("-" for the root namespace, on 127.0.0.1
# and a free port). -s: HTTPS with a self-signed certificate (NGINX_CERT, for
# --cacert). -a: listen address (default 127.0.0.1). -p: port (default 8080,
# 8443 with -s). -c: extra directives for the server block, e.g. 'max_ranges 0;'.
# Sets NGINX_URL (no trailing slash) and NGINX_DIR (its config, pid and logs:
# access.log records each request with its Range and bytes sent).
nginx_start() { local -; set +T; _mc_u_nginx_start "$@"; }
_mc_u_nginx_start() {
	local host=$1 dir=$2 tls= addr=127.0.0.1 port= extra= d ns_cmd=() OPTIND=1 o
	shift 2
	while getopts sa:p:c: o; do
		case $o in
		s) tls=1 ;;
		a) addr=$OPTARG ;;
		p) port=$OPTARG ;;
		c) extra=$OPTARG ;;
		*) echo "nginx_start: bad option" >&2; return 2 ;;
		esac
	done
	dir=$(cd "$dir" && pwd) || return 1
	if [ "$host" = - ]; then
		[ -n "$port" ] || port=$(mc_free_port) || return 1
	else
		ns_cmd=(ip netns exec "$(ns_name "$host")")
		[ -n "$port" ] || port=$([ -n "$tls" ] && echo 8443 || echo 8080)
	fi
	d=$(mktemp -d "$BATS_TEST_TMPDIR/nginx.XXXX") || return 1
	mkdir -p "$d/tmp" "$d/logs"
	local listen="listen $addr:$port;"
	case $addr in *:*) listen="listen [$addr]:$port;" ;; esac
	local scheme=http urladdr=$addr
	case $addr in *:*) urladdr="[$addr]" ;; esac
	local tlsconf=
	if [ -n "$tls" ]; then
		scheme=https
		listen="${listen%;} ssl;"
		mc_make_cert "$d" "$addr" || return 1
		tlsconf="ssl_certificate $d/cert.pem; ssl_certificate_key $d/key.pem;"
		NGINX_CERT=$d/cert.pem
	fi
	cat >"$d/nginx.conf" <<EOF
user root root;
daemon on;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/logs/error.log info;
events { worker_connections 64; }
http {
	log_format mcast '\$request "\$http_range" \$status \$body_bytes_sent';
	access_log $d/logs/access.log mcast;
	client_body_temp_path $d/tmp/body;
	proxy_temp_path $d/tmp/proxy;
	fastcgi_temp_path $d/tmp/fastcgi;
	uwsgi_temp_path $d/tmp/uwsgi;
	scgi_temp_path $d/tmp/scgi;
	types { application/octet-stream mcpkg; }
	default_type application/octet-stream;
	sendfile on;
	keepalive_requests 10000;
	server {
		$listen
		server_name localhost;
		root $dir;
		$tlsconf
		$extra
	}
}
EOF
	"${ns_cmd[@]}" nginx -p "$d" -c "$d/nginx.conf" -e "$d/logs/error.log" -q 3>&- </dev/null || {
		cat "$d/logs/error.log" >&2
		return 1
	}
	echo "$d" >>"$MC_STATE/nginx"
	NGINX_DIR=$d
	NGINX_URL=$scheme://$urladdr:$port
	# nginx daemonises before it listens: wait until it answers.
	wait_for 30 "${ns_cmd[@]}" bash -c "exec 3<>/dev/tcp/$addr/$port" 2>/dev/null || {
		echo "nginx_start: $NGINX_URL does not answer" >&2
		return 1
	}
}

# nginx_stop [DIR]: stop the nginx whose private directory is DIR (default the
# last started). Teardown stops all of them.
nginx_stop() { local -; set +T; _mc_u_nginx_stop "$@"; }
_mc_u_nginx_stop() {
	local d=${1:-$NGINX_DIR} pid
	[ -f "$d/nginx.pid" ] || return 0
	pid=$(cat "$d/nginx.pid")
	kill -QUIT "$pid" 2>/dev/null || true
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; mc_sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null || true
	return 0
}

# mc_make_cert DIR [ADDR]: self-signed certificate DIR/cert.pem, key DIR/key.pem,
# valid for localhost, 127.0.0.1, 198.18.0.1-9 and 2001:db8::1-9 (and ADDR).
mc_make_cert() { local -; set +T; _mc_u_mc_make_cert "$@"; }
_mc_u_mc_make_cert() {
	local d=$1 addr=${2:-127.0.0.1} san="DNS:localhost,IP:127.0.0.1,IP:::1" i
	for i in 1 2 3 4 5 6 7 8 9; do san="$san,IP:198.18.0.$i,IP:2001:db8::$i"; done
	case ",$san," in *",IP:$addr,"*) ;; *) san="$san,IP:$addr" ;; esac
	openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 2 \
		-subj "/CN=mcast test" -addext "subjectAltName=$san" \
		-keyout "$d/key.pem" -out "$d/cert.pem" >/dev/null 2>&1
}

# mc_free_port: a TCP port free on 127.0.0.1 in the current namespace.
mc_free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# flaky_start HOST DIR [OPTION...]: serve DIR with tests/flaky-http.py, an HTTP
# server that misbehaves on purpose, in HOST's namespace ("-": root namespace).
# Options are flaky-http.py's: --no-ranges (200 and the whole file, whatever
# the Range), --close-after BYTES (drop the connection after BYTES of a body),
# --status CODE (answer every request with CODE), --fail-first N (503 with
# Retry-After: 1 for the first N requests), --corrupt OFF (flip the byte at
# offset OFF of every file served; repeatable), --stall (honest headers, then
# no byte), --trickle BPS (the body at BPS bytes a second), --hostile-first N
# (only the first N requests stall or trickle), --addr, --port.
# Sets FLAKY_URL and FLAKY_LOG (one JSON line per request).
flaky_start() { local -; set +T; _mc_u_flaky_start "$@"; }
_mc_u_flaky_start() {
	local host=$1 dir=$2 port=8081 addr=127.0.0.1 a ns_cmd=() prev=
	shift 2
	for a in "$@"; do
		case $prev in --port) port=$a ;; --addr) addr=$a ;; esac
		prev=$a
	done
	if [ "$host" = - ]; then
		port=$(mc_free_port) || return 1
	else
		ns_cmd=(ip netns exec "$(ns_name "$host")")
	fi
	FLAKY_LOG=$(mktemp "$BATS_TEST_TMPDIR/flaky.XXXX.log")
	"${ns_cmd[@]}" python3 "$MCAST_TESTS/flaky-http.py" --dir "$dir" --log "$FLAKY_LOG" \
		"$@" --addr "$addr" --port "$port" >"$FLAKY_LOG.out" 2>&1 </dev/null 3>&- &
	echo $! >>"$MC_STATE/pids"
	local urladdr=$addr
	case $addr in *:*) urladdr="[$addr]" ;; esac
	FLAKY_URL=http://$urladdr:$port
	wait_for 30 "${ns_cmd[@]}" bash -c "exec 3<>/dev/tcp/$addr/$port" 2>/dev/null || {
		echo "flaky_start: $FLAKY_URL does not answer" >&2
		cat "$FLAKY_LOG.out" >&2
		return 1
	}
}

# ---------------------------------------------------------------------------
# Cleanup

# ---------------------------------------------------------------------------
# Loop devices and mounts (imaging tests), recorded so that mc_cleanup
# unmounts and detaches them even when the test fails.

# require_loop: skip unless root with a free loop device (losetup -f).
require_loop() {
	[ "$EUID" -eq 0 ] || skip "needs root (loop devices)"
	command -v losetup >/dev/null || skip "no losetup here"
	losetup -f >/dev/null 2>&1 || skip "no free loop device (this kernel has no loop driver, or all are busy)"
}

# loop_attach FILE [losetup options]: attaches FILE, prints the device.
loop_attach() { local -; set +T; _mc_u_loop_attach "$@"; }
_mc_u_loop_attach() {
	local dev
	dev=$(losetup -f --show "$@") || return 1
	echo "$dev" >>"$MC_STATE/loops"
	echo "$dev"
}

# loop_detach DEV: detaches a device loop_attach made (mc_cleanup does it too)
# and returns only once it is gone and its backing file holds every write:
# losetup -d returns while the kernel still tears the device down.
loop_detach() { local -; set +T; _mc_u_loop_detach "$@"; }
_mc_u_loop_detach() {
	local i=0
	losetup -d "$1" || return 1
	sed -i "\|^$1\$|d" "$MC_STATE/loops"
	while [ -e "/sys/block/${1#/dev/}/loop/backing_file" ] && [ $i -lt 100 ]; do
		mc_sleep 0.05
		i=$((i + 1))
	done
	sync
}

# Mounts of block devices must not outlive their umount. This machine's root
# mount namespace is private (no propagation), so every `ip netns exec` or
# `unshare -m` (ours, parallel suites', other users') copies whatever is
# mounted at that moment into a namespace of its own and keeps it until its
# last process exits: after our umount the file system lived on there, still
# claiming its device (an O_EXCL open failed with EBUSY for seconds) and
# writing to it when it went, onto a loop device that may hold another test's
# file by then (reads of a fresh ext4 showed another one's journal bytes).
# So a device is mounted in a mount namespace of the test's own (a sleeping
# holder process, started on first use, that nothing copies), on DIR.ns; DIR
# is a symbolic link to it through /proc/PID/root, so the test reads and
# writes DIR as usual. Unmounted there, the device is free at once.

# _mc_mntns: MC_MNTNS, the pid of the holder of this test's mount namespace.
_mc_mntns() {
	local pid i
	if [ -f "$MC_STATE/mntns" ]; then
		MC_MNTNS=$(cat "$MC_STATE/mntns")
		[ "$(cat "/proc/$MC_MNTNS/comm" 2>/dev/null)" != sleep ] || return 0
	fi
	unshare -m --propagation private sleep 1000000 </dev/null >/dev/null 2>&1 3>&- &
	pid=$!
	# unshare execs sleep once the namespace is made.
	for ((i = 0; i < 500; i++)); do
		[ "$(cat "/proc/$pid/comm" 2>/dev/null)" != sleep ] || break
		mc_sleep 0.01
	done
	[ "$(readlink "/proc/$pid/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ] || return 1
	echo "$pid" >"$MC_STATE/mntns"
	MC_MNTNS=$pid
}

# mc_mount DEV DIR [mount options]: mounts DEV on DIR (made if needed; an
# empty DIR is replaced by the link), recorded for mc_cleanup. A block device
# goes into the test's own mount namespace (above); anything else (tmpfs) is
# mounted here.
mc_mount() { local -; set +T; _mc_u_mc_mount "$@"; }
_mc_u_mc_mount() {
	local dir
	dir=$(realpath -ms "$2") || return 1
	if [ ! -b "$1" ]; then
		mkdir -p "$dir" && mount "${@:3}" "$1" "$dir" && echo "$dir" >>"$MC_STATE/mounts"
		return
	fi
	_mc_mntns || return 1
	[ ! -d "$dir" ] || [ -L "$dir" ] || rmdir "$dir" || return 1
	mkdir -p "$dir.ns" || return 1
	nsenter -t "$MC_MNTNS" -m mount "${@:3}" "$1" "$dir.ns" || { rmdir "$dir.ns"; return 1; }
	echo "$dir" >>"$MC_STATE/mounts"
	ln -sfn "/proc/$MC_MNTNS/root$dir.ns" "$dir"
}

# _mc_umount DIR [-l]: unmounts what mc_mount mounted on DIR (an absolute path).
_mc_umount() {
	if [ -L "$1" ]; then
		nsenter -t "$(cat "$MC_STATE/mntns")" -m umount ${2:-} "$1.ns" || return 1
		rm -f "$1"
		rmdir "$1.ns"
	else
		umount ${2:-} "$1"
	fi
}

# mc_umount DIR: unmounts what mc_mount mounted.
mc_umount() { local -; set +T; _mc_u_mc_umount "$@"; }
_mc_u_mc_umount() {
	local dir
	dir=$(realpath -ms "$1") || return 1
	_mc_umount "$dir" && sed -i "\|^$dir\$|d" "$MC_STATE/mounts"
}

# mc_ext4_image FILE SIZE NAME...: FILE becomes an ext4 file system of SIZE
# (truncate's units) holding a copy of each /usr/share/NAME under /share,
# made on a loop device and unmounted; returns once FILE holds every write.
mc_ext4_image() { local -; set +T; _mc_u_mc_ext4_image "$@"; }
_mc_u_mc_ext4_image() {
	local img=$1 size=$2 dev d mnt
	shift 2
	mnt=$(mktemp -d "${BATS_FILE_TMPDIR:-$BATS_TEST_TMPDIR}/mnt.XXXX") || return 1
	truncate -s "$size" "$img" && mkfs.ext4 -q -F -E lazy_itable_init=0 "$img" || return 1
	dev=$(loop_attach "$img") || return 1
	mc_mount "$dev" "$mnt" || return 1
	mkdir "$mnt/share"
	for d in "$@"; do cp -a "/usr/share/$d" "$mnt/share/" || return 1; done
	mc_umount "$mnt" # removes mnt
	loop_detach "$dev" # returns once the file holds every write
}

# state_done FILE N: the target state FILE (lib/tstate.h) counts at least N
# chunks on the target: the word after the manifest's chunk count (the
# manifest's length is at 40, the manifest at 44).
state_done() { local -; set +T; _mc_u_state_done "$@"; }
_mc_u_state_done() {
	local mlen h
	h=$(od -An -j 40 -N 4 -t x1 "$1" 2>/dev/null | tr -d ' \n')
	[ ${#h} -eq 8 ] || return 1
	mlen=$((16#$h))
	h=$(od -An -j $((44 + mlen + 4)) -N 4 -t x1 "$1" 2>/dev/null | tr -d ' \n')
	[ ${#h} -eq 8 ] && [ $((16#$h)) -ge "$2" ]
}

# image_host_ok CMD...: root, losetup with a free loop device, and each CMD
# installed. A setup_file checks it before it makes file systems and returns
# 0 quietly without; its tests then skip through need_ready.
image_host_ok() {
	local c
	[ "$EUID" -eq 0 ] && command -v losetup >/dev/null && losetup -f >/dev/null 2>&1 || return 1
	for c in "$@"; do command -v "$c" >/dev/null || return 1; done
}

# need_ready WHY: skip the test (saying WHY) unless setup_file finished
# (it touches $BATS_FILE_TMPDIR/ready last) and loop devices are here.
need_ready() {
	require_loop
	[ -f "$BATS_FILE_TMPDIR/ready" ] || skip "$1"
}

# setup_scratch: T is this test's scratch, F the file's (setup_file's); cd to T.
setup_scratch() {
	T=$BATS_TEST_TMPDIR
	F=$BATS_FILE_TMPDIR
	cd "$T" || return 1
}

# mc_show_last_run: when the test failed, print the output and stderr of its
# last bats `run` (bats shows neither; a failed `run -0 --separate-stderr`
# would otherwise say only which status it got). mc_cleanup calls it.
mc_show_last_run() {
	[ -n "${BATS_RUN_COMMAND:-}" ] && [ -z "${BATS_TEST_COMPLETED:-}" ] || return 0
	{
		echo "last run: $BATS_RUN_COMMAND (status ${status:-?})"
		[ -z "${output:-}" ] || { echo "its stdout (last 30 lines):"; printf '%s\n' "$output" | tail -n 30 | sed 's/^/  | /'; }
		[ -z "${stderr:-}" ] || { echo "its stderr (last 30 lines):"; printf '%s\n' "$stderr" | tail -n 30 | sed 's/^/  | /'; }
	} >&2
}

# Checks of what a loop device holds read it with O_DIRECT, as the programs
# under test do: a file system left mounted in someone else's namespace (see
# mc_mount) can leave pages in a reused loop device's page cache that its
# backing file does not hold (seen here, Linux 6.18; BLKFLSBUF kept them),
# while O_DIRECT reads and the file agreed.

# mc_dev_sum DEV|FILE: the sha256 of a block device (read with O_DIRECT) or file.
mc_dev_sum() { local -; set +T; _mc_u_mc_dev_sum "$@"; }
_mc_u_mc_dev_sum() {
	if [ -b "$1" ]; then
		dd if="$1" iflag=direct bs=1M status=none | sha256sum | cut -d' ' -f1
	else
		sha256sum <"$1" | cut -d' ' -f1
	fi
}

# mc_dev_cmp IMG DEV: DEV (a block device, read with O_DIRECT, or a file)
# begins with the bytes of the file IMG.
mc_dev_cmp() { local -; set +T; _mc_u_mc_dev_cmp "$@"; }
_mc_u_mc_dev_cmp() {
	if [ -b "$2" ]; then
		cmp -n "$(stat -c %s "$1")" "$1" <(dd if="$2" iflag=direct bs=1M status=none)
	else
		cmp -n "$(stat -c %s "$1")" "$1" "$2"
	fi
}

# mc_cleanup: stop everything this test started and remove its namespaces.
# Called by the default teardown(); safe to call twice.
mc_cleanup() { local -; set +T; _mc_u_mc_cleanup "$@"; }
_mc_u_mc_cleanup() {
	local p d ns
	mc_show_last_run
	if [ -f "$MC_STATE/pids" ]; then
		for d in $(_mc_descendants $(cat "$MC_STATE/pids")); do kill -TERM "$d" 2>/dev/null || true; done
	fi
	if [ -f "$MC_STATE/nginx" ]; then
		while read -r d; do nginx_stop "$d"; done <"$MC_STATE/nginx"
	fi
	# One ip for all the namespaces (-force: on past one that is gone).
	local nsl=
	if [ -f "$MC_STATE/netns" ]; then
		while read -r ns; do nsl+="netns pids $ns"$'\n'; done <"$MC_STATE/netns"
		for p in $(ip -force -batch - <<<"$nsl" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
	fi
	if [ -f "$MC_STATE/pids" ]; then
		mc_sleep 0.1
		for d in $(_mc_descendants $(cat "$MC_STATE/pids")); do kill -KILL "$d" 2>/dev/null || true; done
		rm -f "$MC_STATE/pids"
	fi
	if [ -f "$MC_STATE/netns" ]; then
		ip -force -batch - <<<"${nsl//netns pids /netns del }" >/dev/null 2>&1 || true
		rm -f "$MC_STATE/netns"
	fi
	rm -f "$MC_STATE/nginx" "$MC_STATE/hosts"
	if [ -f "$MC_STATE/mounts" ]; then
		tac "$MC_STATE/mounts" | while read -r d; do _mc_umount "$d" 2>/dev/null || _mc_umount "$d" -l 2>/dev/null || true; done
		rm -f "$MC_STATE/mounts"
	fi
	if [ -f "$MC_STATE/mntns" ]; then
		kill -KILL "$(cat "$MC_STATE/mntns")" 2>/dev/null || true
		rm -f "$MC_STATE/mntns"
	fi
	if [ -f "$MC_STATE/loops" ]; then
		while read -r d; do losetup -d "$d" 2>/dev/null || true; done <"$MC_STATE/loops"
		rm -f "$MC_STATE/loops"
	fi
	return 0
}

# mc_reap_stale: delete mct* namespaces left by test processes that are gone
# (a run killed before its teardown). run-all.sh calls it first.
mc_reap_stale() { local -; set +T; _mc_u_mc_reap_stale "$@"; }
_mc_u_mc_reap_stale() {
	local ns pid p
	for ns in $(ip netns list 2>/dev/null | awk '{ print $1 }'); do
		case $ns in mct[0-9]*x*) ;; *) continue ;; esac
		pid=${ns#mct}
		pid=${pid%%x*}
		kill -0 "$pid" 2>/dev/null && continue
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
		ip netns del "$ns" 2>/dev/null || true
	done
	return 0
}

# Default teardown and teardown_file; a suite that needs its own must call
# mc_cleanup in it.
teardown() { mc_cleanup; }
teardown_file() { mc_cleanup; }

# require_root: skip the test unless it runs as root (namespaces, nftables).
require_root() {
	[ "$EUID" -eq 0 ] || skip "needs root (network namespaces)"
}

# plain_run_only: skip in the ASan+UBSan run of make check. For the few
# heavy end-to-end tests (hundreds of MiB through a session) whose code paths
# smaller tests already cover under the sanitizers; they run once, plain.
plain_run_only() {
	[ "${MCAST_RUN_MODE:-plain}" != asan ] || skip "heavy: runs in the plain run only (smaller tests cover its code under ASan)"
}

# asan_covered_elsewhere: skip in the ASan+UBSan run of make check. For tests
# each of whose lines and branches of lib/ and cmd/ other tests run under the
# sanitizers too (gcov per test, tests/tools/asan-cover); they still run in
# the plain run. A test of hostile or malformed input stays in both runs,
# whatever gcov says: the sanitizers are for the bytes it sends.
asan_covered_elsewhere() {
	[ "${MCAST_RUN_MODE:-plain}" != asan ] || [ -n "${MC_COV:-}" ] ||
		skip "every line and branch it runs, other tests run under ASan too"
}

# tests/tools/asan-cover measures each test's coverage apart: MC_COV is its
# directory, and gcov writes under MC_COV/SUITE/TEST (setup_file: .../setup).
if [ -n "${MC_COV:-}" ] && [ -n "${BATS_TEST_FILENAME:-}" ]; then
	GCOV_PREFIX=$MC_COV/$(basename "$BATS_TEST_FILENAME" .bats)/${BATS_SUITE_TEST_NUMBER:-setup}
	export GCOV_PREFIX
fi

# MC_CPUACCT (tests/tools/cpu-per-test): a cgroup v1 cpuacct directory; each
# test's process (and all it starts) goes into MC_CPUACCT/SUITE.TEST.
if [ -n "${MC_CPUACCT:-}" ] && [ -n "${BATS_TEST_FILENAME:-}" ]; then
	_mc_cg=$MC_CPUACCT/$(basename "$BATS_TEST_FILENAME" .bats).${BATS_SUITE_TEST_NUMBER:-setup}
	mkdir -p "$_mc_cg" && echo "$BASHPID" >"$_mc_cg/cgroup.procs"
fi

# require_prog PROG...: skip unless every PROG is built in $MCAST_BIN and is
# more than a placeholder (placeholders print "not implemented" and exit 1).
require_prog() {
	local p
	for p in "$@"; do
		[ -x "$MCAST_BIN/$p" ] || skip "$p not built"
		if "$MCAST_BIN/$p" --version 2>&1 | grep -qi 'not implemented'; then
			skip "$p not implemented yet"
		fi
	done
}
