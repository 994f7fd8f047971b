#!/usr/bin/env bats
# Image packages (format 2, mcast-pack create --image) through whole
# sessions on a LAN of network namespaces: chunks of their own stored
# lengths and holes on the wire, with real loss and a late joiner, received
# as a package (-o).

bats_require_minimum_version 1.5.0
load helper

G=239.77.65.1
P=17650

PY=python3
[ ! -x /usr/bin/python3 ] || PY=/usr/bin/python3

# The image: a 64 MiB ext4 file system holding a real tree (about 40 MiB of
# /usr/share), made once for the file and packed with --image. Its loop
# device and mount go in teardown_file even when something fails.
setup_file() {
	export PK=$BATS_FILE_TMPDIR
	[ "$(id -u)" -eq 0 ] || return 0
	[ -x "$MCAST_BIN/mcast-pack" ] || return 0
	command -v mkfs.ext4 >/dev/null && losetup -f >/dev/null 2>&1 || return 0
	local dev d
	truncate -s 64M "$PK/img" && mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$PK/img" || return 1
	dev=$(loop_attach "$PK/img") || return 0
	if mc_mount "$dev" "$PK/mnt"; then
		for d in perl i18n zoneinfo common-licenses; do
			[ ! -d "/usr/share/$d" ] || cp -r "/usr/share/$d" "$PK/mnt/" 2>/dev/null || true
		done
		mc_umount "$PK/mnt" || true
	fi
	loop_detach "$dev" || true
	run_pack create -q --image -n img -o "$PK/img.mcpkg" "$PK/img"
}

teardown_file() {
	mc_cleanup
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

# send_bg HOST ARG...: mcast-send --json on $G:$P from HOST, in the background as "send".
send_bg() {
	local host=$1
	shift
	bg_start send with_timeout 60 ns_exec "$host" run_send -g "$G" -p "$P" --json "$@"
}

# recv_bg NAME HOST ARG...: mcast-recv --json on $G:$P in HOST, in the
# background as NAME (ARG gives -o or --to); returns once it listens.
recv_bg() {
	local name=$1 host=$2
	shift 2
	bg_start "$name" with_timeout 60 ns_exec "$host" run_recv -g "$G" -p "$P" --json "$@"
	wait_for 10 grep -q 'waiting for' "$T/$name.err" || {
		echo "$name does not listen:" >&2
		cat "$T/$name.err" >&2
		return 1
	}
}

# ends NAME SECS STATUS...: NAME ends within SECS with one of the STATUSes.
ends() {
	local name=$1 secs=$2 st=0 s
	shift 2
	bg_wait "$name" "$secs" || st=$?
	for s in "$@"; do
		[ "$st" -ne "$s" ] || return 0
	done
	echo "$name exited $st, expected $*; its stderr:" >&2
	cat "$T/$name.err" >&2
	return 1
}

# jget NAME EVENT EXPR: EXPR (Python, on the object j) of the last --json EVENT that NAME printed.
jget() {
	"$PY" - "$T/$1.out" "$2" "$3" <<'EOF'
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
EOF
}

# bigger_than FILE BYTES: FILE exists and holds more than BYTES.
bigger_than() {
	[ -e "$1" ] && [ "$(stat -c %s "$1")" -gt "$2" ]
}

@test "image session: -o receivers behind 5% loss and joining late get the package; verify and extract -O give the image" {
	require_image
	# the package has holes (spans of zeros) and is smaller than the image
	run -0 --separate-stderr run_pack info --json "$PK/img.mcpkg"
	[ "$(echo "$output" | "$PY" -c 'import json,sys; j=json.load(sys.stdin); print(j["format"])')" -eq 2 ]
	[ "$(echo "$output" | "$PY" -c 'import json,sys; j=json.load(sys.stdin); print(j["holes"] > 0 and j["payload_size"] < j["image_size"])')" = True ]
	lan_create 3
	ns_loss h2 5 $P
	recv_bg r2 h2 -i eth0 -o "$T/r2.mcpkg"
	# 64 MiB of image, about half of it stored: a pass takes about two seconds at 60 Mbit/s
	send_bg h1 -i eth0 -r 60M --linger 500ms "$PK/img.mcpkg"
	wait_for 15 bigger_than "$T/r2.mcpkg.part" $((4 << 20))
	recv_bg r3 h3 -i eth0 -o "$T/r3.mcpkg"
	ends r2 40 0
	ends r3 40 0
	ends send 40 0
	for r in r2 r3; do
		cmp "$T/$r.mcpkg" "$PK/img.mcpkg"
		run -0 --separate-stderr run_pack verify "$T/$r.mcpkg"
		run_pack extract -O "$T/$r.mcpkg" | cmp - "$PK/img"
	done
	# the loss was real and healed; the late joiner asked for what it missed
	[ "$(ns_loss_count h2)" -gt 0 ]
	[ "$(jget r3 summary 'j["nacks"]')" -ge 1 ]
	[ "$(jget send summary 'j["complete"]')" -eq 2 ]
	# holes and compression: the whole session, a second pass for the late joiner included, sent less than the image
	image=$(stat -c %s "$PK/img")
	[ "$(jget send summary 'j["bytes_sent"]')" -lt "$image" ]
}
