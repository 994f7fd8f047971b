#!/bin/sh
# valgrind.sh: one small session (mcast-send, mcast-recv, then mcast-repair
# from a local file source) and mcast-pack create/verify/extract, each under
# valgrind memcheck; any memcheck error fails the run (exit 1). The session
# runs in a network namespace of its own (unshare -n, multicast on lo),
# gone when the script ends. Needs root; MCAST_BIN names the programs.
set -eu
bin=${MCAST_BIN:-$(cd "$(dirname "$0")/.." && pwd)/bin}
if [ "$(id -u)" != 0 ]; then
	echo "valgrind.sh: needs root (a network namespace); skipped" >&2
	exit 0
fi
if [ -z "${MC_VG_NS:-}" ]; then
	MC_VG_NS=1 exec unshare -n sh "$0" "$@"
fi
ip link set lo up multicast on
ip route add 224.0.0.0/4 dev lo
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
vg() {
	valgrind -q --error-exitcode=99 --leak-check=no --log-file="$t/vg.%p" "$@"
}
fail() {
	echo "valgrind.sh: $*" >&2
	cat "$t"/vg.* >&2 2>/dev/null || true
	exit 1
}
# Errors are in the logs even when a program's own status hides valgrind's.
check_logs() {
	for f in "$t"/vg.*; do
		[ -e "$f" ] || continue
		if [ -s "$f" ]; then fail "memcheck reported errors ($1)"; fi
	done
}

head -c 3000000 /dev/urandom >"$t/img"
mkdir -p "$t/tree/d"
head -c 100000 /dev/urandom >"$t/tree/a"
echo hello >"$t/tree/d/b"
vg "$bin/mcast-pack" create -q -o "$t/p.mcpkg" -z none --chunk-size 64K - <"$t/img" || fail "pack create (raw)"
vg "$bin/mcast-pack" create -q -o "$t/tree.mcpkg" "$t/tree" || fail "pack create (tree)"
vg "$bin/mcast-pack" verify -q "$t/p.mcpkg" || fail "pack verify"
mkdir "$t/x"
vg "$bin/mcast-pack" extract -C "$t/x" "$t/tree.mcpkg" || fail "pack extract"
cmp "$t/tree/a" "$t/x/a" || fail "extract differs"
check_logs "mcast-pack"

vg "$bin/mcast-recv" -q -g 239.7.7.7 -p 7600 --timeout 60s -o "$t/r.mcpkg" &
rpid=$!
sleep 1
vg "$bin/mcast-send" -q -g 239.7.7.7 -p 7600 -r 20M --linger 1s "$t/p.mcpkg" || fail "mcast-send"
wait "$rpid" || fail "mcast-recv"
cmp "$t/p.mcpkg" "$t/r.mcpkg" || fail "received package differs"
check_logs "session"

# Repair: a damaged PKG healed in place, and a PKG.part cut short completed.
cp "$t/p.mcpkg" "$t/d.mcpkg"
dd if=/dev/zero of="$t/d.mcpkg" bs=1 count=5000 seek=200000 conv=notrunc status=none
vg "$bin/mcast-repair" -q -s "$t/p.mcpkg" "$t/d.mcpkg" || fail "mcast-repair (in place)"
cmp "$t/p.mcpkg" "$t/d.mcpkg" || fail "healed package differs"
head -c 1500000 "$t/p.mcpkg" >"$t/q.mcpkg.part"
vg "$bin/mcast-repair" -q -s "$t/p.mcpkg" "$t/q.mcpkg" || fail "mcast-repair (PKG.part)"
cmp "$t/p.mcpkg" "$t/q.mcpkg" || fail "repaired package differs"
check_logs "repair"
echo "valgrind.sh: memcheck clean (mcast-pack create/verify/extract, send, recv, repair)"
