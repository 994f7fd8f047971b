#!/usr/bin/env bats
# tests/60-image.bats: seekable image packages (format 2) with real parts: an ext4
# file system on a loop device, packed with --image, written back with
# extract --to, checked with e2fsck, mounted and compared with its source;
# sparse files; every refusal of a target, with the target left unchanged.

bats_require_minimum_version 1.5.0
load helper

SHARE="perl i18n zoneinfo bash-completion" # part of /usr/share, about 40 MiB
G=239.77.60.1
P=17600

# One ext4 image for the file: 512 MiB, filled from /usr/share, unmounted, and packed.
setup_file() {
	image_host_ok mkfs.ext4 || return 0
	mc_ext4_image "$BATS_FILE_TMPDIR/fs.img" 512M $SHARE
	SOURCE_DATE_EPOCH=1700000000 "$MCAST_BIN/mcast-pack" -q create --image -n fs -o "$BATS_FILE_TMPDIR/fs.mcpkg" "$BATS_FILE_TMPDIR/fs.img"
	touch "$BATS_FILE_TMPDIR/ready"
}

setup() { setup_scratch; }

need_fs() { need_ready "no ext4 image (mkfs.ext4 missing or setup failed)"; }

# An 8 MiB image: data, zeros, random bytes, a short last span.
make_img() {
	head -c 3000000 /usr/bin/bash >"$1"
	truncate -s $((8 * 1048576 + 12345)) "$1"
	dd if=/dev/urandom of="$1" bs=1M seek=5 count=1 conv=notrunc status=none
}

sum() { mc_dev_sum "$1"; }

@test "image: ext4 packed with --image, written onto a loop device: equal, e2fsck clean, same tree mounted" {
	need_fs
	run -0 "$MCAST_BIN/mcast-pack" info --json "$F/fs.mcpkg"
	[[ $output == *'"format":2'* && $output == *'"kind":"image"'* && $output == *'"image_size":536870912'* ]]
	truncate -s 600M disk
	head -c 4M /dev/urandom | dd of=disk conv=notrunc status=none # what was there before must not matter
	dev=$(loop_attach disk)
	run -0 "$MCAST_BIN/mcast-pack" extract --json --to "$dev" "$F/fs.mcpkg"
	[[ ${lines[-1]} == *'"result":"complete"'* ]]
	mc_dev_cmp "$F/fs.img" "$dev"
	run -0 "$MCAST_BIN/mcast-pack" verify --to "$dev" "$F/fs.mcpkg"
	run -0 e2fsck -fn "$dev"
	mc_mount "$dev" mnt -o ro
	for d in $SHARE; do diff -r --no-dereference "/usr/share/$d" "mnt/share/$d"; done
}

@test "image: -j 2 and stdin (file and pipe) give the same package; info shows image size, stored bytes, holes" {
	make_img img
	export SOURCE_DATE_EPOCH=1700000000
	run -0 "$MCAST_BIN/mcast-pack" create --image -n x -o a.mcpkg img
	run -0 "$MCAST_BIN/mcast-pack" create --image -n x -j 2 -o b.mcpkg img
	cmp a.mcpkg b.mcpkg
	"$MCAST_BIN/mcast-pack" create --image -n x -o c.mcpkg - <img
	cmp a.mcpkg c.mcpkg
	cat img | "$MCAST_BIN/mcast-pack" create --image -n x -j 3 -o d.mcpkg -
	cmp a.mcpkg d.mcpkg
	run -0 "$MCAST_BIN/mcast-pack" info a.mcpkg
	[[ $output == *"format:         2 (seekable image)"* ]]
	[[ $output == *"image size:     8400953 "* ]]
	[[ $output == *"holes:          6 of 9 spans (5.0 MiB)"* ]]
	run -0 "$MCAST_BIN/mcast-pack" info --json a.mcpkg
	[[ $output == *'"holes":6,"hole_bytes":5255225'* ]]
	run -0 "$MCAST_BIN/mcast-pack" verify a.mcpkg
	# -z none stores the spans as they are; holes still cost nothing.
	run -0 "$MCAST_BIN/mcast-pack" create --image -z none -o n.mcpkg img
	run -0 "$MCAST_BIN/mcast-pack" info --json n.mcpkg
	[[ $output == *'"compression":"none"'* && $output == *'"stored_size":3145728'* ]]
}

@test "image: a sparse 2 GiB file holding 100 MiB of data packs to about 100 MiB, back to a sparse file, and a session sends about 100 MiB" {
	truncate -s 2G sparse
	for at in 0 700 1400 2000; do
		dd if=/dev/urandom of=sparse bs=1M seek=$at count=25 conv=notrunc status=none
	done
	run -0 "$MCAST_BIN/mcast-pack" create --image -j 2 -o s.mcpkg sparse
	size=$(stat -c %s s.mcpkg)
	[ "$size" -ge $((100 * 1048576)) ] && [ "$size" -le $((102 * 1048576)) ]
	run -0 "$MCAST_BIN/mcast-pack" info --json s.mcpkg
	[[ $output == *'"image_size":2147483648'* && $output == *'"holes":1948'* ]]
	# Back to a new file: holes stay holes; every span as in the source (its digests; cmp of 2 GiB takes 8 s).
	run -0 "$MCAST_BIN/mcast-pack" extract --to back s.mcpkg
	[ "$(stat -c %s back)" -eq $((2 * 1024 * 1048576)) ]
	[ "$(du -k back | cut -f1)" -lt $((110 * 1024)) ]
	run -0 "$MCAST_BIN/mcast-pack" verify --to back s.mcpkg
	for at in 0 700 1400 2000; do cmp -i $((at * 1048576)) -n $((25 * 1048576)) sparse back; done
	# On the wire too: a session onto a new file sends about the stored bytes, not 2 GiB
	# (100 MiB through a session: the plain run only; 65-image-session has sessions under ASan).
	plain_run_only
	require_root
	ns_lo
	session_recv_bg rx local --to "$T/wire" --state "$T/wire.state"
	session_send_bg local -r 1G --linger 300ms s.mcpkg
	bg_ends rx 60 0
	bg_ends send 60 0
	sent=$(bg_json send summary 'j["bytes_sent"]')
	echo "# bytes_sent $sent, package $size" >&3
	[ "$sent" -ge "$size" ]
	[ "$sent" -le $((size * 5 / 4)) ] # headers, announcements: 1.09x here; the image is 20x
	[ "$(bg_json rx summary 'j["data_packets"]')" -le $((size * 5 / 4 / 1400)) ]
	[ "$(du -k "$T/wire" | cut -f1)" -lt $((110 * 1024)) ]
	run -0 "$MCAST_BIN/mcast-pack" verify --to "$T/wire" s.mcpkg
}

@test "image: extract -O, -C and list; a damaged chunk is named by verify and stops extract with 3" {
	make_img img
	run -0 "$MCAST_BIN/mcast-pack" create --image -o im.mcpkg img
	"$MCAST_BIN/mcast-pack" extract -O im.mcpkg | cmp - img
	run -0 "$MCAST_BIN/mcast-pack" extract -C out im.mcpkg
	cmp out/im img
	run -0 "$MCAST_BIN/mcast-pack" list -v im.mcpkg
	[[ $output == *" 8400953 im"* ]]
	# One byte of the first chunk's frame, just after the 4096-byte head.
	flip_byte im.mcpkg 4200
	run -3 "$MCAST_BIN/mcast-pack" verify im.mcpkg
	[[ $stderr == *"chunk 0 "* ]] || [[ $output == *"chunk 0 "* ]]
	run -3 "$MCAST_BIN/mcast-pack" extract -O im.mcpkg
	# Onto random bytes: the damaged chunk's span keeps them (nothing unverified reaches a target), the rest is written.
	head -c "$(stat -c %s img)" /dev/urandom >tgt
	cp tgt tgt.before
	run -3 "$MCAST_BIN/mcast-pack" extract --to tgt im.mcpkg
	[[ $output == *"chunk 0 "*"span 0 of tgt not written"* ]]
	cmp -n 65536 tgt tgt.before
	run -1 cmp -s tgt tgt.before
}

@test "image: extract --to a used regular file punches the holes; verify --to names a changed span (3)" {
	make_img img
	run -0 "$MCAST_BIN/mcast-pack" create --image -o im.mcpkg img
	head -c 9M /dev/urandom >tgt
	run -0 "$MCAST_BIN/mcast-pack" extract --to tgt im.mcpkg
	cmp -n 8400953 tgt img
	[ "$(stat -c %s tgt)" -eq $((9 * 1048576)) ] # a larger target keeps its size
	run -0 "$MCAST_BIN/mcast-pack" verify --to tgt im.mcpkg
	flip_byte tgt 3000000
	run -3 --separate-stderr "$MCAST_BIN/mcast-pack" verify --json --to tgt im.mcpkg
	[[ $stderr == *"tgt: span 2 (bytes 2097152-3145727): differs from the image"* ]]
	[[ ${lines[0]} == *'"event":"bad_span","index":2'* ]]
	[[ ${lines[-1]} == *'"result":"incomplete"'* && ${lines[-1]} == *'"bad":1'* ]]
	# --zeroed: holes are not written; onto zeros that is the image.
	truncate -s 8400953 z
	run -0 "$MCAST_BIN/mcast-pack" extract --to z --zeroed im.mcpkg
	cmp z img
}

# jfield KEY LINE: KEY of the JSON object LINE.
jfield() { python3 -c 'import json, sys; print(json.loads(sys.argv[2])[sys.argv[1]])' "$1" "$2"; }

@test "image: extract --to --state keeps what is on the target: a damaged package leaves it (3), the next run writes only the rest; another package's state is refused" {
	make_img img
	run -0 "$MCAST_BIN/mcast-pack" create --image -o im.mcpkg img
	cp im.mcpkg bad.mcpkg
	flip_byte bad.mcpkg 4200 # chunk 0's frame
	head -c 9M /dev/urandom >tgt
	run -3 --separate-stderr "$MCAST_BIN/mcast-pack" extract --json --to tgt --state st bad.mcpkg
	[ "$(jfield result "${lines[-1]}")" = damaged ]
	[ "$(jfield bad "${lines[-1]}")" -eq 1 ]
	[ -s st ]
	# Another package's state: refused before a byte is written.
	cp img img2
	printf 'x' | dd of=img2 bs=1 seek=5300000 conv=notrunc status=none
	run -0 "$MCAST_BIN/mcast-pack" create --image -o other.mcpkg img2
	before=$(sum tgt)
	run -2 --separate-stderr "$MCAST_BIN/mcast-pack" extract --to tgt --state st other.mcpkg
	[[ $stderr == *"st: "*"refused"* ]]
	[ "$(sum tgt)" = "$before" ]
	# The same package again: the 8 spans on the target are kept, chunk 0 alone is written, the state goes.
	run -0 --separate-stderr "$MCAST_BIN/mcast-pack" extract --json --to tgt --state st im.mcpkg
	[ "$(jfield result "${lines[-1]}")" = complete ]
	[ "$(jfield had "${lines[-1]}")" -eq 8 ]
	[ "$(jfield written "${lines[-1]}")" -eq 1 ]
	cmp -n 8400953 tgt img
	[ ! -e st ]
	# The state is a regular file: a device node or a directory is refused, left as it was.
	# (a node of its own, as /dev/null: a program that got it wrong must not take the system's)
	mknod nd c 1 3
	run -2 --separate-stderr "$MCAST_BIN/mcast-pack" extract --to tgt --state nd im.mcpkg
	[[ $stderr == *"--state 'nd': is not a regular file"* ]]
	[ -c nd ]
	mkdir sd
	run -2 --separate-stderr "$MCAST_BIN/mcast-pack" extract --to tgt --state sd im.mcpkg
	[[ $stderr == *"--state 'sd': is a directory"* ]]
	# A file that is not a target state (the package, the target, any other) is refused, never replaced nor removed.
	cp im.mcpkg keep.mcpkg
	echo "some notes" >notes
	before=$(sum tgt)
	for f in keep.mcpkg notes; do
		run -2 --separate-stderr "$MCAST_BIN/mcast-pack" extract --to tgt --state $f keep.mcpkg
		[[ $stderr == *"$f: not a target state file (it holds something else): refused"* ]]
	done
	cmp keep.mcpkg im.mcpkg
	[ "$(cat notes)" = "some notes" ]
	run -2 --separate-stderr "$MCAST_BIN/mcast-pack" extract --to tgt --state tgt im.mcpkg
	[[ $stderr == *"--state 'tgt': is the target itself"* ]]
	[ "$(sum tgt)" = "$before" ]
	# --state goes with extract --to alone.
	run -2 "$MCAST_BIN/mcast-pack" extract --state st -O im.mcpkg
	run -2 "$MCAST_BIN/mcast-pack" verify --to tgt --state st im.mcpkg
}

@test "image: extract --to --state stopped by SIGTERM mid-way saves its state and exits 3; the same command resumes" {
	plain_run_only # an ASan binary wants its runtime first, before any preload
	command -v cc >/dev/null || skip "no C compiler for the shim"
	# A shim in front of pread: reading the package's first chunk brings SIGTERM, as a shutdown would.
	cat >shim.c <<-'EOF'
		#include <signal.h>
		#include <stdio.h>
		#include <string.h>
		#include <sys/syscall.h>
		#include <unistd.h>
		static ssize_t get(int fd, void *b, size_t n, off_t off)
		{
			static int once;
			char link[64], path[4096];
			ssize_t l;
			snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
			l = readlink(link, path, sizeof path - 1);
			if (l > 6 && memcmp(path + l - 6, ".mcpkg", 6) == 0 && n >= 65536 &&
			    !__atomic_exchange_n(&once, 1, __ATOMIC_SEQ_CST))
				kill(getpid(), SIGTERM);
			return syscall(SYS_pread64, fd, b, n, off);
		}
		ssize_t pread(int fd, void *b, size_t n, off_t off) { return get(fd, b, n, off); }
		ssize_t pread64(int fd, void *b, size_t n, off_t off) { return get(fd, b, n, off); }
	EOF
	cc -shared -fPIC -o shim.so shim.c
	make_img img
	run -0 "$MCAST_BIN/mcast-pack" create --image -o im.mcpkg img
	head -c 9M /dev/urandom >tgt
	run -3 --separate-stderr env LD_PRELOAD="$PWD/shim.so" "$MCAST_BIN/mcast-pack" extract --json --to tgt --state st im.mcpkg
	[ "$(jfield result "${lines[-1]}")" = interrupted ]
	[[ $stderr == *"tgt: interrupted; state saved in st"* ]]
	[ -s st ]
	run -0 --separate-stderr "$MCAST_BIN/mcast-pack" extract --json --to tgt --state st im.mcpkg
	[ "$(jfield result "${lines[-1]}")" = complete ]
	[ "$(jfield had "${lines[-1]}")" -eq 1 ] # the first chunk, read when the signal came, was written
	[ "$(jfield written "${lines[-1]}")" -eq 2 ]
	cmp -n 8400953 tgt img
	[ ! -e st ]
}

@test "image: refusals name the target and leave it unchanged" {
	make_img img
	run -0 "$MCAST_BIN/mcast-pack" create --image -o im.mcpkg img
	mkdir tree && echo hi >tree/a && run -0 "$MCAST_BIN/mcast-pack" create -o tar.mcpkg tree
	head -c 1M /dev/urandom >small
	before=$(sum small)
	run -2 --separate-stderr "$MCAST_BIN/mcast-pack" extract --to small im.mcpkg
	[[ $stderr == *"small: 1048576 bytes, smaller than the image (8400953 bytes)"* ]]
	[ "$(sum small)" = "$before" ]
	head -c 9M /dev/urandom >big
	before=$(sum big)
	run -2 --separate-stderr "$MCAST_BIN/mcast-pack" extract --to big tar.mcpkg
	[[ $stderr == *"big: the package is a tar stream (format 1), not a seekable image"* ]]
	[ "$(sum big)" = "$before" ]
	run -2 --separate-stderr "$MCAST_BIN/mcast-pack" extract --to "$T" im.mcpkg
	[[ $stderr == *"$T: is a directory"* ]]
	run -2 --separate-stderr "$MCAST_BIN/mcast-pack" extract --to /dev/null im.mcpkg
	[[ $stderr == *"/dev/null: is a character device"* ]]
	run -2 --separate-stderr "$MCAST_BIN/mcast-pack" verify --to big tar.mcpkg
	# A directory as SOURCE, or as -o: the command line's fault (2).
	run -2 --separate-stderr "$MCAST_BIN/mcast-pack" create --image -o x.mcpkg tree
	[[ $stderr == *"tree: is a directory; --image takes a block device, a regular file or -"* ]]
	run -2 --separate-stderr "$MCAST_BIN/mcast-pack" create --image -o tree img
	# Usage: --image takes one SOURCE and zstd or none; --to goes with extract and verify alone.
	run -2 "$MCAST_BIN/mcast-pack" create --image -o x.mcpkg img img
	run -2 "$MCAST_BIN/mcast-pack" create --image -z gzip -o x.mcpkg img
	run -2 "$MCAST_BIN/mcast-pack" extract --to big -C d im.mcpkg
	run -2 "$MCAST_BIN/mcast-pack" extract --zeroed im.mcpkg
	run -2 "$MCAST_BIN/mcast-pack" info --to big im.mcpkg
	[ ! -e x.mcpkg ]
}

@test "image: a mounted loop device, and one smaller than the image, are refused unchanged" {
	require_loop
	command -v mkfs.ext4 >/dev/null || skip "no mkfs.ext4"
	make_img img
	run -0 "$MCAST_BIN/mcast-pack" create --image -o im.mcpkg img
	truncate -s 16M disk
	mkfs.ext4 -q -F disk
	dev=$(loop_attach disk)
	before=$(sum "$dev")
	mc_mount "$dev" mnt -o ro # read-only: the mount itself writes nothing
	run -1 --separate-stderr "$MCAST_BIN/mcast-pack" extract --to "$dev" im.mcpkg
	[[ $stderr == *"$dev: in use: mounted"* ]]
	mc_umount mnt
	[ "$(sum "$dev")" = "$before" ]
	truncate -s 4M small
	sdev=$(loop_attach small)
	before=$(sum "$sdev")
	run -2 --separate-stderr "$MCAST_BIN/mcast-pack" extract --to "$sdev" im.mcpkg
	[[ $stderr == *"$sdev: 4194304 bytes, smaller than the image"* ]]
	[ "$(sum "$sdev")" = "$before" ]
	# Unmounted, the first device takes the image; holes are zeroed on it.
	run -0 "$MCAST_BIN/mcast-pack" extract --to "$dev" im.mcpkg
	mc_dev_cmp img "$dev"
}
