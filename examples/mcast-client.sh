#!/bin/sh
# mcast-client.sh: get a package on a client the mcast way and extract it.
# Wait for the multicast session (mcast-recv --timeout), fall back to the
# distribution points for whatever is missing (mcast-repair), then extract
# (mcast-pack extract). Safe to run again: every step resumes.
#
# usage: mcast-client.sh [-g GROUP] [-p PORT] [-i IFACE] [-n NAME] [-e ID]
#                        [-w WAIT] [-S SPREAD] [-s SOURCE]... PKG DIR
#
# Exit status, as the mcast programs: 0 extracted and verified; 1 runtime
# error; 2 usage error; 3 still incomplete (state kept: run again later).
set -u
prog=${0##*/}

usage() {
	echo "usage: $prog [-g GROUP] [-p PORT] [-i IFACE] [-n NAME] [-e ID] [-w WAIT] [-S SPREAD] [-s SOURCE]... PKG DIR" >&2
	exit 2
}

net= recv_opts= sources= wait=30m spread=30s
while getopts g:p:i:n:e:w:S:s:h o; do
	case $o in
	g|p|i) net="$net -$o $OPTARG" ;;
	n) recv_opts="$recv_opts --package $OPTARG" ;;
	e) recv_opts="$recv_opts --expect $OPTARG" ;;
	w) wait=$OPTARG ;;
	S) spread=$OPTARG ;;
	s) sources="$sources -s $OPTARG" ;;
	h) usage ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 2 ] || usage
pkg=$1 dir=$2

# 1. The multicast session: wait at most $wait for it to appear or to go on.
# shellcheck disable=SC2086  # option lists are word lists on purpose
mcast-recv $net $recv_opts --timeout "$wait" -o "$pkg"
st=$?
case $st in
0) ;;
2) echo "$prog: mcast-recv: usage error" >&2; exit 2 ;;
1|3)
	# 2. Missed or cut short (3), or no network (1): unicast for what is missing.
	if [ -z "$sources" ]; then
		echo "$prog: $pkg: incomplete and no -s SOURCE to repair from" >&2
		exit 3
	fi
	echo "$prog: $pkg: multicast ended with status $st, repairing" >&2
	# shellcheck disable=SC2086
	mcast-repair $sources --spread "$spread" "$pkg"
	st=$?
	case $st in
	0) ;;
	3) echo "$prog: $pkg: still incomplete; run again later" >&2; exit 3 ;;
	*) exit "$st" ;;
	esac
	;;
*) exit "$st" ;;
esac

# 3. The package is complete and verified: extract it (refuses escapes).
mkdir -p "$dir" || exit 1
mcast-pack extract -C "$dir" "$pkg"
