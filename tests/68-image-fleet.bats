#!/usr/bin/env bats
# tests/68-image-fleet.bats: imaging bare machines, the whole way (issue
# "Image a bare machine"). A 512 MiB ext4 file system holding about 100 MiB of
# /usr/share, packed with --image, goes in one session on a LAN of namespaces
# straight onto four loop devices (mcast-recv --to) that held other bytes:
# one receiver behind 5% real loss, one joining mid-session, one SIGKILLed
# mid-session and resumed with the same command, one cut off mid-session and
# completed by mcast-repair --to from nginx. Every target then equals the
# image, passes e2fsck -fn, and mounted read-only holds the source tree.

bats_require_minimum_version 1.5.0
load helper

G=239.77.68.1
P=17680

# About 100 MiB of /usr/share (those of these that this machine has).
FLEET_SHARE="perl i18n zoneinfo vim zsh bash-completion"

# The image, made once for the file: 512 MiB (a sparse file), the tree
# copied in on a loop device, unmounted, packed with --image; nginx serves it.
setup_file() {
	local F=$BATS_FILE_TMPDIR d names=()
	[ "${MCAST_RUN_MODE:-plain}" != asan ] || return 0 # its one test is plain_run_only
	image_host_ok mkfs.ext4 e2fsck nginx || return 0
	for d in $FLEET_SHARE; do [ ! -d "/usr/share/$d" ] || names+=("$d"); done
	echo "${names[*]}" >"$F/share"
	mc_ext4_image "$F/fs.img" 512M "${names[@]}"
	mkdir "$F/www"
	"$MCAST_BIN/mcast-pack" -q create --image -j 2 -n fleet -o "$F/www/fs.mcpkg" "$F/fs.img"
	touch "$F/ready"
}

setup() { setup_scratch; }

need_fs() { need_ready "no ext4 image (mkfs.ext4, e2fsck or nginx missing, or setup failed)"; }

# target NAME: a sparse 512 MiB file holding random bytes in a few places
# (what was there before must not matter), on a loop device; prints it.
target() {
	local at
	truncate -s 512M "$T/$1.disk"
	for at in 0 100 255 400 511; do
		head -c 1M /dev/urandom | dd of="$T/$1.disk" bs=1M seek=$at conv=notrunc status=none
	done
	loop_attach "$T/$1.disk"
}

# on_target NAME DEV: DEV holds the image (NAME's state gone): equal, e2fsck
# clean, and mounted read-only the same tree as its source.
on_target() {
	local d
	mc_dev_cmp "$F/fs.img" "$2" || { echo "$1: $2 differs from the image" >&2; return 1; }
	[ ! -e "$T/$1.state" ] || { echo "$1: its state is left behind" >&2; return 1; }
	e2fsck -fn "$2" >"$T/$1.fsck" 2>&1 || { cat "$T/$1.fsck" >&2; return 1; }
	mc_mount "$2" "$T/$1.mnt" -o ro,noload
	for d in $(cat "$F/share"); do
		diff -r --no-dereference "/usr/share/$d" "$T/$1.mnt/share/$d" || return 1
	done
	mc_umount "$T/$1.mnt"
}

@test "fleet: 512 MiB ext4 onto four loop devices in one session: 5% loss, a late joiner, SIGKILL and resume, one cut off and completed by repair --to from nginx" {
	plain_run_only
	need_fs
	require_prog mcast-pack mcast-send mcast-recv mcast-repair
	local r chunks pkg had
	local -A dev
	pkg=$F/www/fs.mcpkg
	chunks=$("$PY" -c 'import json, sys; print(json.loads(sys.stdin.readlines()[-1])["chunks"])' < <(run_pack info --json "$pkg"))
	lan_create 5
	nginx_start h1 "$F/www" -a 198.18.0.1
	for r in r2 r3 r4 r5; do dev[$r]=$(target $r); done
	ns_loss h2 5 $P
	session_recv_bg r2 h2 -i eth0 --to "${dev[r2]}" --state "$T/r2.state"
	session_recv_bg r4 h4 -i eth0 --to "${dev[r4]}" --state "$T/r4.state"
	session_recv_bg r5 h5 -i eth0 --to "${dev[r5]}" --state "$T/r5.state" --timeout 3s
	session_send_bg h1 -i eth0 -r 60M --linger 2s "$pkg" # about 25 MiB stored: a first pass of 3.5 s at least
	# Mid-session, once both their states count chunks on their targets, h4 and
	# h5 are cut off (every datagram to them dropped, so neither can finish
	# first): r4 is killed, r5 left to give up; then r3 joins.
	wait_for 30 eval 'state_done "$T/r4.state" 4 && state_done "$T/r5.state" 4'
	ns_loss h5 100
	ns_loss h4 100
	bg_kill r4 KILL
	bg_ends r4 10 124 137
	ns_loss h4 0
	session_recv_bg r3 h3 -i eth0 --to "${dev[r3]}" --state "$T/r3.state"
	# The same command resumes r4 from what its state says is on the target.
	mv "$T/r4.err" "$T/r4.first.err"
	session_recv_bg r4 h4 -i eth0 --to "${dev[r4]}" --state "$T/r4.state"
	wait_for 20 grep -Eq "resuming .*: [0-9]+ of $chunks chunks" "$T/r4.err" || { cat "$T/r4.err" >&2; false; }
	bg_ends r2 120 0
	bg_ends r3 120 0
	bg_ends r4 120 0
	# r5 heard nothing for 3 s: incomplete, its state kept; the sender names it (3).
	bg_ends r5 120 3
	bg_ends send 120 3
	[ -s "$T/r5.state" ]
	[ "$(bg_json send summary 'len(j["incomplete_receivers"])')" -eq 1 ]
	[ "$(bg_json send summary 'j["complete"]')" -eq 3 ]
	# The loss was real and healed; the late joiner asked for what it missed;
	# the resumed receiver did not take the whole image again.
	[ "$(ns_loss_count h2)" -gt 0 ]
	[ "$(bg_json r3 summary 'j["nacks"]')" -ge 1 ]
	[ "$(bg_json r4 summary 'j["verified"]')" -eq "$chunks" ]
	[ "$(bg_json r4 summary 'j["data_packets"]')" -lt "$(bg_json send summary 'j["symbols"]')" ]
	# r5 completed from nginx: only what it lacked is fetched.
	ns_loss h5 0
	had=$(bg_json r5 summary 'j["verified"]')
	run -0 --separate-stderr ns_exec h5 with_timeout 60 run_repair --json --to "${dev[r5]}" --state "$T/r5.state" -s "$NGINX_URL/fs.mcpkg"
	[[ ${lines[-1]} == *'"result":"complete"'* ]]
	[ "$(echo "${lines[-1]}" | "$PY" -c 'import json, sys; j = json.load(sys.stdin); print(j["had"] >= '"$had"' and j["fetched"] > 0 and j["bytes_fetched"] < '"$(stat -c %s "$pkg")"')')" = True ]
	for r in r2 r3 r4 r5; do on_target $r "${dev[$r]}"; done
}
