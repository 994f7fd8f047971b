#!/usr/bin/env bats
# Image packages (format 2, mcast-pack create --image) through whole
# sessions on a LAN of network namespaces: chunks of their own stored
# lengths and holes on the wire, with real loss and a late joiner, received
# as a package (-o) and straight onto loop devices (--to), one of them
# killed with SIGKILL and resumed; and what --to refuses before it writes.

bats_require_minimum_version 1.5.0
load helper

G=239.77.65.1
P=17650

# The image: a 64 MiB ext4 file system holding a real tree (about 40 MiB of
# /usr/share), made once for the file and packed with --image.
setup_file() {
	export PK=$BATS_FILE_TMPDIR
	image_host_ok mkfs.ext4 || return 0
	mc_ext4_image "$PK/img" 64M perl i18n zoneinfo common-licenses
	run_pack create -q --image -n img -o "$PK/img.mcpkg" "$PK/img"
}

setup() {
	T=$BATS_TEST_TMPDIR
}

require_image() {
	require_root
	require_prog mcast-pack mcast-send mcast-recv
	command -v mkfs.ext4 >/dev/null || skip "mkfs.ext4 not installed"
	[ -s "$PK/img.mcpkg" ] || skip "no image package (loop devices?)"
}

# disk NAME: a 64 MiB file of random bytes (so holes must be written as
# zeros) attached to a loop device; prints the device.
disk() {
	head -c 64M /dev/urandom >"$T/$1.disk" && loop_attach "$T/$1.disk"
}

# on_target NAME DEV: NAME's run wrote the image onto DEV: equal, e2fsck clean, its state gone.
on_target() {
	mc_dev_cmp "$PK/img" "$2" || { echo "$1: $2 differs from the image" >&2; return 1; }
	e2fsck -fn "$2" >"$T/$1.fsck" 2>&1 || { cat "$T/$1.fsck" >&2; return 1; }
	[ ! -e "$T/$1.state" ] || { echo "$1: state left behind" >&2; return 1; }
}

# part_or_done PKG BYTES: PKG.part holds more than BYTES, or PKG is there (complete).
part_or_done() {
	local n
	n=$(stat -c %s "$1.part" 2>/dev/null) && [ "$n" -gt "$2" ] && return 0
	[ -e "$1" ]
}

@test "image session: -o receivers behind 5% loss and joining late get the package; verify and extract -O give the image" {
	asan_covered_elsewhere
	require_image
	# the package has holes (spans of zeros) and is smaller than the image
	run -0 --separate-stderr run_pack info --json "$PK/img.mcpkg"
	[ "$(echo "$output" | "$PY" -c 'import json,sys; j=json.load(sys.stdin); print(j["format"])')" -eq 2 ]
	[ "$(echo "$output" | "$PY" -c 'import json,sys; j=json.load(sys.stdin); print(j["holes"] > 0 and j["payload_size"] < j["image_size"])')" = True ]
	lan_create 3
	ns_loss h2 5 $P
	session_recv_bg r2 h2 -i eth0 -o "$T/r2.mcpkg"
	# 64 MiB of image, about half of it stored: a pass takes about two seconds at 60 Mbit/s.
	# r3 joins once r2 has 4 MiB, or has finished already (with --fec auto r2 may complete
	# from the first pass alone, and its .part is renamed between two polls): --linger 3s
	# keeps the session open for r3 then.
	session_send_bg h1 -i eth0 -r 60M --linger 3s "$PK/img.mcpkg"
	wait_for 15 part_or_done "$T/r2.mcpkg" $((4 << 20))
	session_recv_bg r3 h3 -i eth0 -o "$T/r3.mcpkg"
	bg_ends r2 40 0
	bg_ends r3 40 0
	bg_ends send 40 0
	for r in r2 r3; do
		cmp "$T/$r.mcpkg" "$PK/img.mcpkg"
		run -0 --separate-stderr run_pack verify "$T/$r.mcpkg"
		run_pack extract -O "$T/$r.mcpkg" | cmp - "$PK/img"
	done
	# the loss was real and healed; the late joiner asked for what it missed
	[ "$(ns_loss_count h2)" -gt 0 ]
	[ "$(bg_json r3 summary 'j["nacks"]')" -ge 1 ]
	[ "$(bg_json send summary 'j["complete"]')" -eq 2 ]
	# holes and compression: the whole session, a second pass for the late joiner included, sent less than the image
	image=$(stat -c %s "$PK/img")
	[ "$(bg_json send summary 'j["bytes_sent"]')" -lt "$image" ]
}

@test "image session --to: onto loop devices behind 5% loss, joining late, and SIGKILLed then resumed: each equals the image, e2fsck clean" {
	require_image
	require_loop
	lan_create 4
	d2=$(disk r2)
	d3=$(disk r3)
	d4=$(disk r4)
	other=$(disk other)
	ns_loss h2 5 $P
	session_recv_bg r2 h2 -i eth0 --to "$d2" --state "$T/r2.state"
	session_recv_bg r4 h4 -i eth0 --to "$d4" --state "$T/r4.state"
	grep -q "state in $T/r2.state" "$T/r2.err"
	session_send_bg h1 -i eth0 -r 40M --linger 2s "$PK/img.mcpkg"
	# r4 is killed once its state says a few chunks are on its target, cut off
	# first so that it cannot finish before the kill lands
	wait_for 20 state_done "$T/r4.state" 4
	ns_loss h4 100
	bg_kill r4 KILL
	bg_ends r4 10 124 137
	ns_loss h4 0
	[ -s "$T/r4.state" ]
	# r3 joins now, mid-session
	session_recv_bg r3 h3 -i eth0 --to "$d3" --state "$T/r3.state"
	# the state is of r4's target: refused for another one, nothing written there
	sum=$(mc_dev_sum "$other")
	run -2 --separate-stderr ns_exec h4 run_recv -g "$G" -p "$P" -i eth0 --to "$other" --state "$T/r4.state" --timeout 2s
	[[ "$stderr" == *"$T/r4.state: the state of another target"* ]]
	[ "$(mc_dev_sum "$other")" = "$sum" ]
	# the same command again resumes
	mv "$T/r4.err" "$T/r4.first.err"
	session_recv_bg r4 h4 -i eth0 --to "$d4" --state "$T/r4.state"
	grep -Eq 'resuming .*: ([4-9]|[1-6][0-9]) of 64 chunks' "$T/r4.err"
	bg_ends r2 50 0
	bg_ends r3 50 0
	bg_ends r4 50 0
	bg_ends send 50 0
	on_target r2 "$d2"
	on_target r3 "$d3"
	on_target r4 "$d4"
	[ "$(ns_loss_count h2)" -gt 0 ]
	[ "$(bg_json r3 summary 'j["nacks"]')" -ge 1 ]
	# the resumed receiver asked for less than the whole image the second time
	[ "$(bg_json r4 summary 'j["data_packets"]')" -lt "$(bg_json send summary 'j["symbols"]')" ]
}

@test "image session --to refuses before writing: a directory, a character device, a mounted device, too small, a tar package" {
	require_image
	require_loop
	ns_lo
	mkdir "$T/dir"
	run -2 --separate-stderr run_recv -g "$G" -p "$P" --to "$T/dir" --timeout 1s
	[[ "$stderr" == *"$T/dir: is a directory"* ]]
	run -2 --separate-stderr run_recv -g "$G" -p "$P" --to /dev/null --timeout 1s
	[[ "$stderr" == *"/dev/null: is a character device"* ]]
	run -2 --separate-stderr run_recv -g "$G" -p "$P" -o "$T/x.mcpkg" --to "$T/y"
	# a state that is not a regular file: never replaced nor removed
	mknod "$T/nd" c 1 3 # a node of its own, as /dev/null: a program that got it wrong must not take the system's
	run -2 --separate-stderr run_recv -g "$G" -p "$P" --to "$T/y" --state "$T/nd" --timeout 1s
	[[ "$stderr" == *"--state '$T/nd': is not a regular file"* ]]
	[ -c "$T/nd" ] && [ ! -e "$T/y" ]
	# mounted: the kernel refuses O_EXCL
	dev=$(loop_attach "$PK/img")
	mc_mount "$dev" "$T/mnt" -o ro
	run -1 --separate-stderr run_recv -g "$G" -p "$P" --to "$dev" --timeout 1s
	[[ "$stderr" == *"$dev: in use"* ]]
	mc_umount "$T/mnt"
	loop_detach "$dev"
	# too small: refused once the manifest says the image's size
	head -c 1M /dev/urandom >"$T/small"
	sum=$(md5sum <"$T/small")
	session_send_bg local -r 100M --linger 10s "$PK/img.mcpkg"
	run -2 --separate-stderr with_timeout 30 ns_exec local run_recv -g "$G" -p "$P" --to "$T/small" --state "$T/small.state" --timeout 5s
	[[ "$stderr" == *"$T/small: "*"smaller than the image"* ]]
	[ "$(md5sum <"$T/small")" = "$sum" ]
	[ ! -e "$T/small.state" ]
	bg_kill send
	bg_ends send 10 0 1 3
	# a tar package (format 1) is not an image
	mkdir "$T/tree"
	echo hello >"$T/tree/a"
	run_pack create -q -o "$T/tree.mcpkg" "$T/tree"
	head -c 4M /dev/urandom >"$T/file"
	sum=$(md5sum <"$T/file")
	session_send_bg local -r 100M --linger 10s "$T/tree.mcpkg"
	run -2 --separate-stderr with_timeout 30 ns_exec local run_recv -g "$G" -p "$P" --to "$T/file" --timeout 5s
	[[ "$stderr" == *"$T/file: the session's package is not a seekable image"* ]]
	[ "$(md5sum <"$T/file")" = "$sum" ]
}
