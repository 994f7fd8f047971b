#!/usr/bin/env bats
# tests/67-image-repair.bats: mcast-repair --to TARGET [--state FILE] completes an
# image on a target disk from unicast sources (nginx in a namespace, a path):
# an ext4 file system with a real tree, onto an empty loop device, onto one
# half written and damaged, after a run cut short and after SIGTERM (each
# resumed from the state kept); every target ends equal to the image and
# e2fsck clean. Refusals leave the target unchanged.

bats_require_minimum_version 1.5.0
load helper

SHARE="zoneinfo bash-completion i18n" # part of /usr/share, about 22 MiB
SIZE=$((96 * 1048576))

# One ext4 image for the file: 96 MiB, filled from /usr/share, unmounted, packed in 256 KiB spans.
setup_file() {
	image_host_ok mkfs.ext4 nginx || return 0
	mc_ext4_image "$BATS_FILE_TMPDIR/fs.img" $SIZE $SHARE
	mkdir "$BATS_FILE_TMPDIR/www"
	"$MCAST_BIN/mcast-pack" -q create --image --chunk-size 256K -n fs -o "$BATS_FILE_TMPDIR/www/fs.mcpkg" "$BATS_FILE_TMPDIR/fs.img"
	touch "$BATS_FILE_TMPDIR/ready"
}

setup() { setup_scratch; }

need_fs() { need_ready "no ext4 image (mkfs.ext4 or nginx missing, or setup failed)"; }

sum() { mc_dev_sum "$1"; }

# The target holds the image: same bytes, a clean file system.
same_fs() {
	mc_dev_cmp "$F/fs.img" "$1"
	e2fsck -fn "$1"
}

# json_num KEY LINE: the number KEY has in the JSON object LINE.
json_num() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" <<<"$2"; }

@test "repair --to: an empty loop device completed from nginx, only stored bytes fetched: equal, e2fsck clean" {
	asan_covered_elsewhere
	need_fs
	truncate -s $((SIZE + 1048576)) disk
	dev=$(loop_attach disk)
	ns_lo
	nginx_start local "$F/www"
	run -0 --separate-stderr ns_exec local with_timeout 60 run_repair --json --to "$dev" --state st \
		-s "$NGINX_URL/fs.mcpkg"
	[[ ${lines[-1]} == *'"result":"complete"'* && ${lines[-1]} == *'"name":"fs"'* ]]
	[[ $output == *'"event":"manifest"'* ]]
	same_fs "$dev"
	mc_mount "$dev" mnt -o ro
	for d in $SHARE; do diff -r --no-dereference "/usr/share/$d" "mnt/share/$d"; done
	mc_umount mnt
	[ ! -e st ] # complete: the state went
	# Only stored bytes came: no more than the package itself, and the holes of the zeroed disk not at all.
	fetched=$(json_num bytes_fetched "${lines[-1]}")
	[ "$fetched" -le "$(stat -c %s "$F/www/fs.mcpkg")" ]
	# Run again: everything is found on the target, nothing fetched.
	run -0 --separate-stderr ns_exec local with_timeout 60 run_repair --json --to "$dev" --state st \
		-s "$NGINX_URL/fs.mcpkg"
	[ "$(json_num fetched "${lines[-1]}")" = 0 ]
	[ "$(json_num missing "${lines[-1]}")" = 0 ]
}

@test "repair --to: a half-written target with damaged spans and a dirty hole, from a path: only those fetched" {
	need_fs
	truncate -s $SIZE disk
	head -c 4M /dev/urandom | dd of=disk conv=notrunc status=none
	dev=$(loop_attach disk)
	run -0 "$MCAST_BIN/mcast-pack" extract --to "$dev" "$F/www/fs.mcpkg"
	# Damage: zeros over 3 data spans (1 MiB at 64 MiB is in the tree), random bytes over the last span
	# (a hole of a file system this size) and over span 1.
	dd if=/dev/zero of="$dev" bs=256K seek=256 count=3 conv=notrunc oflag=direct status=none
	head -c 256K /dev/urandom | dd of="$dev" bs=256K seek=383 conv=notrunc oflag=direct status=none
	head -c 1000 /dev/urandom | dd of="$dev" bs=1 seek=300000 conv=notrunc status=none
	sync
	run -1 mc_dev_cmp "$F/fs.img" "$dev"
	run -0 --separate-stderr run_repair --json --to "$dev" --state st -s "$F/www/fs.mcpkg"
	summary=${lines[-1]}
	[[ $summary == *'"result":"complete"'* ]]
	same_fs "$dev"
	# At most the 4 damaged spans that hold data came from the package; the rest was found on the target.
	[ "$(json_num fetched "$summary")" -ge 1 ]
	[ "$(json_num fetched "$summary")" -le 4 ]
	[ "$(json_num had "$summary")" -ge 378 ]
}

@test "repair --to: a run cut short keeps its state; the same command completes it from nginx, fetching only the rest" {
	need_fs
	truncate -s $SIZE disk
	dev=$(loop_attach disk)
	before=$(sum "$dev")
	size=$(stat -c %s "$F/www/fs.mcpkg")
	ns_lo
	# A server that flips two bytes of the payload: two chunks never verify from it.
	flaky_start local "$F/www" --corrupt $((size / 2)) --corrupt $((size - 3000))
	run -3 --separate-stderr ns_exec local with_timeout 60 run_repair --json --to "$dev" --state st \
		-s "$FLAKY_URL/fs.mcpkg"
	[[ ${lines[-1]} == *'"result":"incomplete"'* ]]
	[ "$(json_num missing "${lines[-1]}")" = 2 ]
	[[ $stderr == *"still missing 2 of 384 chunks"* ]]
	[ -s st ]
	run -1 mc_dev_cmp "$F/fs.img" "$dev"
	# The state keeps the manifest: the next run starts from it, with another source.
	nginx_start local "$F/www"
	run -0 --separate-stderr ns_exec local with_timeout 60 run_repair --json --to "$dev" --state st \
		-s "$NGINX_URL/fs.mcpkg"
	summary=${lines[-1]}
	[[ $summary == *'"result":"complete"'* ]]
	[[ $output != *'"event":"manifest"'* ]]
	[ "$(json_num fetched "$summary")" = 2 ]
	[ "$(json_num had "$summary")" = 382 ]
	same_fs "$dev"
	[ ! -e st ]
	[ "$before" != "$(sum "$dev")" ]
}

@test "repair --to: refusals name the culprit and leave the target unchanged" {
	need_fs
	"$MCAST_BIN/mcast-pack" -q create --image --chunk-size 64K -n other -o other.mcpkg /usr/bin/bash
	mkdir tree && echo hi >tree/a && "$MCAST_BIN/mcast-pack" -q create -o tar.mcpkg tree
	# A state of other for the file t1 (a copy of the package with a bad byte: one chunk never comes).
	cp other.mcpkg bad.mcpkg
	printf 'XX' | dd of=bad.mcpkg bs=1 seek=$(($(stat -c %s bad.mcpkg) - 5000)) conv=notrunc status=none
	run -1 --separate-stderr run_repair --to t1 --state st -s bad.mcpkg
	[[ $stderr == *"still missing 1 of "*" chunks"* ]]
	[ -s st ]
	cp st st.keep
	before=$(sum t1)
	# The state of other, a source serving fs.
	run -2 --separate-stderr run_repair --to t1 --state st -s "$F/www/fs.mcpkg"
	[[ $stderr == *"st: the state of package other (id "*"), not of fs (id "*"): refused"* ]]
	[ "$(sum t1)" = "$before" ]
	cmp st st.keep
	# The state of t1, another target (same size as t1 had).
	truncate -s $(stat -c %s /usr/bin/bash) t2
	before=$(sum t2)
	run -2 --separate-stderr run_repair --to t2 --state st -s other.mcpkg
	[[ $stderr == *"st: the state of another target"*"refused"* ]]
	[ "$(sum t2)" = "$before" ]
	cmp st st.keep
	# Too small, a tar package, a directory, a character device.
	head -c 1M /dev/urandom >small
	before=$(sum small)
	run -2 --separate-stderr run_repair --to small --state s2 -s "$F/www/fs.mcpkg"
	[[ $stderr == *"small: 1048576 bytes, smaller than the image ($SIZE bytes)"* ]]
	[ "$(sum small)" = "$before" ]
	head -c 2M /dev/urandom >big
	before=$(sum big)
	run -2 --separate-stderr run_repair --to big --state s2 -s tar.mcpkg
	[[ $stderr == *"big: the package is a tar stream (format 1), not a seekable image"* ]]
	[ "$(sum big)" = "$before" ]
	run -2 --separate-stderr run_repair --to "$T" --state s2 -s "$F/www/fs.mcpkg"
	[[ $stderr == *"$T: is a directory"* ]]
	run -2 --separate-stderr run_repair --to /dev/null --state s2 -s "$F/www/fs.mcpkg"
	[[ $stderr == *"/dev/null: is a character device"* ]]
	[ ! -e s2 ]
	# A mounted loop device: O_EXCL refuses it (1), untouched.
	cp "$F/fs.img" m.img
	dev=$(loop_attach m.img)
	mc_mount "$dev" mnt -o ro
	before=$(sum "$dev")
	run -1 --separate-stderr run_repair --to "$dev" --state s3 -s "$F/www/fs.mcpkg"
	[[ $stderr == *"$dev: in use: mounted"* ]]
	[ "$(sum "$dev")" = "$before" ]
	# A state that is not a regular file: never replaced nor removed.
	# A file that is not a target state: refused, never replaced nor removed.
	echo "some notes" >notes
	run -2 --separate-stderr run_repair --to t1 --state notes -s "$F/www/fs.mcpkg"
	[[ $stderr == *"notes: not a target state file (it holds something else): refused"* ]]
	[ "$(cat notes)" = "some notes" ]
	mknod nd c 1 3 # a node of its own, as /dev/null: a program that got it wrong must not take the system's
	run -2 --separate-stderr run_repair --to t1 --state nd -s "$F/www/fs.mcpkg"
	[[ $stderr == *"--state 'nd': is not a regular file"* ]]
	[ -c nd ]
	# Usage: --to wants no PKG; --state goes with --to.
	run -2 --separate-stderr run_repair --to t1 --state st -s "$F/www/fs.mcpkg" x.mcpkg
	run -2 --separate-stderr run_repair --state st -s "$F/www/fs.mcpkg" x.mcpkg
	[ ! -e x.mcpkg ]
	[ ! -e x.mcpkg.part ]
}

# term_then_resume TARGET STATE [--state FILE]: repair --to TARGET from a slow
# nginx, stopped by SIGTERM, exits 3 with its state in STATE; the next run
# (the same options) resumes from it, keeps all it had, and removes STATE.
term_then_resume() {
	local tgt=$1 state=$2 st=0 have
	shift 2
	ns_lo
	nginx_start local "$F/www" -c 'limit_rate 1m;'
	bg_start rep ns_exec local run_repair --json -j 1 --to "$tgt" "$@" -s "$NGINX_URL/fs.mcpkg"
	wait_for 20 grep -q '"event":"fetched"' "$BATS_TEST_TMPDIR/rep.out"
	bg_kill rep TERM
	bg_wait rep 10 || st=$?
	[ "$st" -eq 3 ]
	[ -s "$state" ]
	grep -q '"result":"interrupted"' "$BATS_TEST_TMPDIR/rep.out"
	grep -q "interrupted; state saved" "$BATS_TEST_TMPDIR/rep.err"
	have=$(json_num have "$(grep '"event":"fetched"' "$BATS_TEST_TMPDIR/rep.out" | tail -n 1)")
	run -0 --separate-stderr run_repair --json --to "$tgt" "$@" -s "$F/www/fs.mcpkg"
	[[ ${lines[-1]} == *'"result":"complete"'* ]]
	[ "$(json_num had "${lines[-1]}")" -ge "$have" ] # everything verified before the signal was kept
	same_fs "$tgt"
	[ ! -e "$state" ]
}

@test "repair --to: SIGTERM mid-way saves the state and exits 3; the next run resumes from it" {
	need_fs
	truncate -s $SIZE disk
	dev=$(loop_attach disk)
	term_then_resume "$dev" st --state st
}

@test "repair --to a file without --state: the state goes where mcast-recv --to keeps it by default, TARGET.state" {
	need_fs
	truncate -s $SIZE disk.img
	term_then_resume disk.img disk.img.state
}
