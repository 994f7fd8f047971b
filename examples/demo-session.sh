#!/bin/sh
# demo-session.sh: the main job of mcast, shown on a private LAN of network
# namespaces (a sender and four receivers on a bridge). mcast-sched waits for
# three receivers, then starts mcast-send; a fourth receiver joins when about
# a third has been sent; one receiver sits behind 10% real packet loss
# (nftables); one is cut off mid-session and completes from a web server
# (nginx) with mcast-repair. Every copy is checked. Needs root (namespaces).
# Uses the programs in $MCAST_BIN (default bin/). Exits 0 when all went as the
# contracts say, 1 otherwise.
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${MCAST_BIN:-$root/bin}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mcast-demo-session.XXXXXX") || exit 1
ns=mcdemo$$
hosts="send r1 r2 r3 r4"
group=239.192.77.1
port=7177
pids=

step() { printf '\n==> %s\n' "$*"; }
fail() { echo "demo: FAILED: $*" >&2; exit 1; }
# Background jobs are started with ip netns exec itself, so $! is the program (ip execs it).
in_ns() { h=$1; shift; ip netns exec "$ns-$h" "$@"; }

cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	[ -f "$tmp/nginx.pid" ] && kill "$(cat "$tmp/nginx.pid")" 2>/dev/null
	wait 2>/dev/null
	for h in $hosts br; do ip netns del "$ns-$h" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

[ "$(id -u)" -eq 0 ] || fail "needs root for network namespaces"
for p in mcast-pack mcast-send mcast-recv mcast-repair mcast-sched; do
	[ -x "$bin/$p" ] || fail "$bin/$p is not built (run make)"
done
command -v nginx >/dev/null || fail "nginx is not installed (make deps)"

step "A LAN of namespaces: sender 198.18.7.1, receivers r1-r4 on a bridge; r2 behind 10% loss"
ip netns add "$ns-br" && ip -n "$ns-br" link add br0 type bridge &&
	ip -n "$ns-br" link set br0 type bridge mcast_snooping 0 && ip -n "$ns-br" link set br0 up ||
	fail "bridge"
i=1
for h in $hosts; do
	ip netns add "$ns-$h" &&
		ip link add eth0 netns "$ns-$h" type veth peer name "p$h" netns "$ns-br" &&
		ip -n "$ns-br" link set "p$h" master br0 up &&
		ip -n "$ns-$h" link set lo up &&
		ip -n "$ns-$h" link set eth0 up multicast on &&
		ip -n "$ns-$h" addr add "198.18.7.$i/24" dev eth0 &&
		ip -n "$ns-$h" route add 239.0.0.0/8 dev eth0 || fail "host $h"
	i=$((i + 1))
done
in_ns r2 nft -f - <<NFT || fail "nftables loss rule"
table inet loss {
	chain in {
		type filter hook input priority 0;
		udp dport $port numgen random mod 100 < 10 drop
	}
}
NFT
echo "r2 drops 10% of the session's datagrams in its kernel (nftables numgen random)"

step "Pack a 24 MiB image"
head -c 25165824 /dev/urandom >"$tmp/disk.img"
"$bin/mcast-pack" create -q -z none -n lab-image -V 1.0 -o "$tmp/lab.mcpkg" - <"$tmp/disk.img" ||
	fail "mcast-pack create"
"$bin/mcast-pack" info "$tmp/lab.mcpkg" | sed -n '1,3p;7,9p'
size=$(stat -c %s "$tmp/lab.mcpkg")
mkdir "$tmp/www" && cp "$tmp/lab.mcpkg" "$tmp/www/" && chmod a+rx "$tmp" "$tmp/www" && chmod a+r "$tmp/www/lab.mcpkg"

step "The sender's web server (nginx) for repairs: http://198.18.7.1:8080/lab.mcpkg"
mkdir -p "$tmp/nginx/logs"
cat >"$tmp/nginx/nginx.conf" <<NGX
daemon on;
pid $tmp/nginx.pid;
error_log $tmp/nginx/logs/error.log;
events { worker_connections 64; }
http {
	access_log $tmp/nginx/logs/access.log;
	client_body_temp_path $tmp/nginx; proxy_temp_path $tmp/nginx; fastcgi_temp_path $tmp/nginx;
	uwsgi_temp_path $tmp/nginx; scgi_temp_path $tmp/nginx;
	server { listen 198.18.7.1:8080; root $tmp/www; }
}
NGX
in_ns send nginx -c "$tmp/nginx/nginx.conf" -p "$tmp/nginx" || fail "nginx"

step "mcast-sched on the sender waits for 3 receivers, then becomes mcast-send"
tx0=$(in_ns send cat /sys/class/net/eth0/statistics/tx_bytes)
ip netns exec "$ns-send" "$bin/mcast-sched" -g "$group" -p "$port" --min-clients 3 --max-wait 60s --json -- \
	"$bin/mcast-send" -g "$group" -p "$port" -r 40M --linger 1s --json "$tmp/lab.mcpkg" \
	>"$tmp/send.json" 2>"$tmp/send.err" &
sched=$!
pids="$pids $sched"
sleep 0.5
for h in r1 r2 r4; do
	ip netns exec "$ns-$h" "$bin/mcast-recv" -g "$group" -p "$port" -o "$tmp/$h.mcpkg" --timeout 60s --json \
		>"$tmp/$h.json" 2>"$tmp/$h.err" &
	eval "pid_$h=$!"
	pids="$pids $!"
	echo "receiver $h waits (it says hello every second)"
	sleep 0.7
done
chunks=$("$bin/mcast-pack" info "$tmp/lab.mcpkg" | sed -n 's/^chunks: *\([0-9]*\).*/\1/p')
# Watch r1's verified chunks to time the late joiner and the cut.
verified() { sed -n 's/.*"verified":\([0-9]*\).*/\1/p' "$tmp/$1.json" | tail -1; }
wait_chunks() {
	n=0
	while [ "${n:-0}" -lt "$2" ]; do
		sleep 0.1
		n=$(verified "$1")
		kill -0 "$sched" 2>/dev/null || return 1
	done
}
wait_chunks r1 $((chunks / 4)) || fail "the session did not start"
grep -h '"event":"summary","v":1,"result":"started"' "$tmp/send.json" | head -1 | sed 's/^/sched: /'
step "About a quarter sent: r3 joins the session in progress"
ip netns exec "$ns-r3" "$bin/mcast-recv" -g "$group" -p "$port" -o "$tmp/r3.mcpkg" --timeout 60s --json \
	>"$tmp/r3.json" 2>"$tmp/r3.err" &
pid_r3=$!
pids="$pids $pid_r3"
wait_chunks r4 $((chunks * 2 / 5)) || fail "the session stopped early"
step "Some 40% sent: r4 is cut off (SIGKILL), as an unplugged machine would be"
kill -KILL "$pid_r4"
wait "$pid_r4" 2>/dev/null
ls -l "$tmp"/r4.mcpkg.* | sed 's|.*/||'

st=0
for h in r1 r2 r3; do
	wait "$(eval echo "\$pid_$h")"
	rc=$?
	echo "mcast-recv on $h exited $rc"
	[ "$rc" -eq 0 ] || st=1
done
wait "$sched"
echo "mcast-send exited $? (3: a receiver that joined must still repair)"
tx1=$(in_ns send cat /sys/class/net/eth0/statistics/tx_bytes)
[ "$st" -eq 0 ] || fail "a receiver did not complete by multicast"

step "r4 completes from the web server, fetching only what it lacks"
in_ns r4 "$bin/mcast-repair" --json -s "http://198.18.7.1:8080/lab.mcpkg" "$tmp/r4.mcpkg" >"$tmp/repair.json" ||
	fail "mcast-repair"
fetched=$(sed -n 's/.*"event":"summary".*"bytes_fetched":\([0-9]*\).*/\1/p' "$tmp/repair.json")
echo "fetched $fetched bytes of a $size-byte package"

step "Every copy is the package, byte for byte, and verifies"
for h in r1 r2 r3 r4; do
	cmp "$tmp/lab.mcpkg" "$tmp/$h.mcpkg" || fail "$h differs"
	"$bin/mcast-pack" verify -q "$tmp/$h.mcpkg" || fail "$h does not verify"
	echo "$h: identical and verified"
done
sed -n 's/.*"event":"summary".*"bytes_sent":\([0-9]*\).*"passes":\([0-9]*\).*/sender: \1 bytes of session data, \2 passes/p' "$tmp/send.json"

wire=$((tx1 - tx0))
unicast=$((4 * size))
awk -v w="$wire" -v u="$unicast" -v s="$size" 'BEGIN {
	printf "\nOn the wire: %.1f MiB from the sender for 4 receivers (%.2fx the package);\n", w / 1048576, w / s
	printf "unicast to each would have been %.1f MiB (%.1fx more), before any repair.\n", u / 1048576, u / w
}'
exit 0
