#!/bin/sh
# demo.sh: what `make demo` shows a newcomer. Packs an example tree made in a
# temporary directory, verifies it, damages one byte with dd and shows verify
# naming the bad chunk (exit 3), then extracts the intact package and compares
# the result with the tree. Uses the programs in $MCAST_BIN (default bin/).
# Exits 0 when every step behaved as the contract says, 1 otherwise.
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${MCAST_BIN:-$root/bin}
pack=$bin/mcast-pack
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mcast-demo.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

step() { printf '\n==> %s\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
fail() { echo "demo: FAILED: $*" >&2; exit 1; }

[ -x "$pack" ] || fail "$pack is not built (run make)"

step "An example tree: a small OS image with a kernel, config, links and a disk image"
tree=$tmp/tree
mkdir -p "$tree/boot" "$tree/etc/network" "$tree/var/empty" "$tree/usr/lib"
printf 'kernel image for the demo\n' >"$tree/boot/vmlinuz"
printf 'auto eth0\niface eth0 inet dhcp\n' >"$tree/etc/network/interfaces"
printf 'demo-host\n' >"$tree/etc/hostname"
: >"$tree/etc/machine-id"
chmod 600 "$tree/etc/hostname"
# 3 MiB that compress poorly, so the package has a dozen chunks of 256 KiB.
head -c 3145728 /dev/urandom >"$tree/usr/lib/disk.img"
ln -s ../usr/lib/disk.img "$tree/boot/disk.img"
ln "$tree/boot/vmlinuz" "$tree/boot/vmlinuz.old"
show ls -lR "$tree" | sed -n '1,40p'

pkg=$tmp/demo.mcpkg
step "Pack it (256 KiB verification chunks)"
show "$pack" create -o "$pkg" -n demo -V 1.0 --chunk-size 256K "$tree" ||
	fail "mcast-pack create"
show "$pack" info "$pkg" || fail "mcast-pack info"
show "$pack" list "$pkg" || fail "mcast-pack list"

step "Verify: every chunk against its XXH3-128 digest"
show "$pack" verify "$pkg"
st=$?
[ "$st" -eq 0 ] || fail "verify of an intact package exited $st, not 0"
echo "(exit status $st: intact)"
cp "$pkg" "$tmp/intact.mcpkg"

step "Damage one byte in the middle of the payload with dd"
size=$(wc -c <"$pkg")
off=$((size * 2 / 3))
old=$(dd if="$pkg" bs=1 skip="$off" count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
new=$(((old + 1) % 256))
printf 'byte at offset %d: %d -> %d\n' "$off" "$old" "$new"
# shellcheck disable=SC2059  # the format is the octal escape of the new byte
printf "\\$(printf '%03o' "$new")" |
	dd of="$pkg" bs=1 seek="$off" count=1 conv=notrunc 2>/dev/null || fail "dd"

step "Verify again: it names the bad chunk and exits 3 (damaged, repairable)"
show "$pack" verify "$pkg"
st=$?
[ "$st" -eq 3 ] || fail "verify of a damaged package exited $st, not 3"
echo "(exit status $st: damaged; mcast-repair would fetch only that chunk)"

step "Extract the intact package and compare with the tree"
out=$tmp/extracted
mkdir -p "$out"
show "$pack" extract -C "$out" "$tmp/intact.mcpkg" || fail "mcast-pack extract"
show diff -r --no-dereference "$tree" "$out" || fail "extracted tree differs"
[ -L "$out/boot/disk.img" ] || fail "symlink not kept"
[ "$out/boot/vmlinuz" -ef "$out/boot/vmlinuz.old" ] || fail "hard link not kept"
echo "identical: files, symlink and hard link restored"

if [ "$(id -u)" -eq 0 ]; then
	sh "$root/examples/demo-session.sh" || fail "the multicast session"
	step "Done: pack, verify, damage detected (exit 3), extract, a multicast session with a late joiner, loss and a repair"
else
	step "Done: pack, verify, damage detected (exit 3), extract (run as root to see the multicast session)"
fi
exit 0
