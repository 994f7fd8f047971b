#!/bin/sh
# mcast-image.sh: put a disk image onto a bare machine's disk, the Clonezilla
# case: take the multicast session straight onto the disk (mcast-recv --to),
# then fetch from the distribution points whatever the session did not bring
# (mcast-repair --to). Run from a netbooted initramfs or live system (see
# README.md beside it); safe to run again: both steps resume from the state,
# and without a state they read what is already on the disk and keep every
# chunk that matches.
#
# usage: mcast-image.sh [-g GROUP] [-p PORT] [-i IFACE] [-e ID] [-n NAME]
#                       [-k KEY.pub] [-d KEY] [-w WAIT] [-S SPREAD] [-t STATE]
#                       [-s SOURCE]... [-G] DISK
#        mcast-image.sh -c CMDLINE    (options from mcast.* words of a kernel
#                                      command line, e.g. /proc/cmdline)
#
# -e ID / -n NAME pin the package (a stray sender on the LAN is never taken);
# -k KEY.pub takes only a package signed by that key (nothing else is
# written); -d KEY decrypts an encrypted package onto the disk (the key file
# must not be served with the initrd: TFTP hands that to anyone); -G grows
# the last partition to the end of a larger disk after.
#
# Kernel command line words: mcast.disk=/dev/sda mcast.expect=ID
# mcast.package=NAME mcast.trust=/etc/mcast/lab.pub mcast.group=239.1.2.3
# mcast.port=7077 mcast.iface=eth0 mcast.wait=30m mcast.spread=30s
# mcast.state=/run/mcast/sda.state mcast.grow=1 mcast.decrypt=/mnt/usb/lab.key
# mcast.source=http://dp1/lab.mcpkg,http://dp2/lab.mcpkg
#
# Exit status, as the mcast programs: 0 the whole image is on DISK, flushed
# and verified; 1 runtime error; 2 usage error (or a refused disk: mounted,
# too small, another image's state); 3 still incomplete, state kept: run
# again later.
set -u
prog=${0##*/}
here=$(dirname "$0")

usage() {
	echo "usage: $prog [-g GROUP] [-p PORT] [-i IFACE] [-e ID] [-n NAME] [-k KEY.pub] [-d KEY] [-w WAIT] [-S SPREAD] [-t STATE] [-s SOURCE]... [-G] DISK" >&2
	echo "       $prog -c CMDLINE" >&2
	exit 2
}

net='' pin='' trust='' sources='' wait=30m spread=30s state='' grow='' disk=''

# The mcast.* words of a kernel command line, as the options would give them.
from_cmdline() {
	[ -r "$1" ] || { echo "$prog: $1: cannot read the command line" >&2; exit 2; }
	# shellcheck disable=SC2013  # words, not lines
	for w in $(cat "$1"); do
		v=${w#*=}
		case $w in
		mcast.disk=*) disk=$v ;;
		mcast.expect=*) pin="$pin --expect $v" ;;
		mcast.package=*) pin="$pin --package $v" ;;
		mcast.trust=*) trust="$trust --trust $v" ;;
		mcast.decrypt=*) trust="$trust --decrypt $v" ;;
		mcast.group=*) net="$net -g $v" ;;
		mcast.port=*) net="$net -p $v" ;;
		mcast.iface=*) net="$net -i $v" ;;
		mcast.wait=*) wait=$v ;;
		mcast.spread=*) spread=$v ;;
		mcast.state=*) state=$v ;;
		mcast.grow=1) grow=1 ;;
		mcast.source=*)
			for s in $(echo "$v" | tr , ' '); do sources="$sources -s $s"; done ;;
		esac
	done
	[ -n "$disk" ] || { echo "$prog: $1: no mcast.disk= on the command line" >&2; exit 2; }
}

while getopts c:d:g:p:i:e:n:k:w:S:t:s:Gh o; do
	case $o in
	c) from_cmdline "$OPTARG" ;;
	g|p|i) net="$net -$o $OPTARG" ;;
	e) pin="$pin --expect $OPTARG" ;;
	n) pin="$pin --package $OPTARG" ;;
	k) trust="$trust --trust $OPTARG" ;;
	d) trust="$trust --decrypt $OPTARG" ;;
	w) wait=$OPTARG ;;
	S) spread=$OPTARG ;;
	t) state=$OPTARG ;;
	s) sources="$sources -s $OPTARG" ;;
	G) grow=1 ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
if [ -z "$disk" ]; then
	[ $# -eq 1 ] || usage
	disk=$1
else
	[ $# -eq 0 ] || usage
fi
if [ -z "$pin" ]; then
	echo "$prog: no -e ID or -n NAME: a bare machine takes only its own image (a stray sender would be written onto $disk)" >&2
	exit 2
fi
[ -e "$disk" ] || { echo "$prog: $disk: no such disk" >&2; exit 2; }
# The state cannot live on the disk being written: /run by default, so a
# kill resumes from it and a reboot resumes by reading the disk back.
if [ -z "$state" ]; then
	state=/run/mcast/$(basename "$disk").state
fi
mkdir -p "$(dirname "$state")" || exit 1

# 1. The multicast session, straight onto the disk; wait at most $wait for it.
# shellcheck disable=SC2086  # option lists are word lists on purpose
mcast-recv $net $pin $trust --timeout "$wait" --to "$disk" --state "$state"
st=$?
case $st in
0) ;;
3)
	# 2. Missed or cut short: the distribution points, for what is missing only.
	if [ -z "$sources" ]; then
		echo "$prog: $disk: incomplete and no -s SOURCE to repair from; state in $state" >&2
		exit 3
	fi
	echo "$prog: $disk: the session ended before the whole image came, repairing" >&2
	# shellcheck disable=SC2086
	mcast-repair $sources $trust --spread "$spread" --to "$disk" --state "$state"
	st=$?
	[ "$st" -eq 0 ] || exit "$st"
	;;
*)
	# 1 (no network, a mounted disk) or 2 (refused): repair would fail the same way.
	exit "$st"
	;;
esac

# 3. The image is on the disk, flushed and verified.
if [ -n "$grow" ]; then
	sh "$here/../grow-last-partition.sh" "$disk" || exit 1
fi
echo "$prog: $disk: image complete and verified" >&2
exit 0
