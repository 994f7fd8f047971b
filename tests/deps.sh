#!/bin/sh
# Install, as root with apt-get, only the Debian packages that mcast needs and
# that are missing: build, tests (bats, nginx, nftables, namespaces), lint and
# the peers that bench/ compares against. `make deps` runs this.
set -u

NEEDED="build-essential pkg-config libarchive-dev libxxhash-dev xxhash libisal-dev
libcurl4-openssl-dev libssl-dev libzstd-dev bats nginx-light nftables iproute2 mandoc clang
libclang-rt-14-dev openssl python3 socat valgrind zstd zsh
libext2fs-dev comerr-dev ntfs-3g-dev libfdisk-dev libblkid-dev libtsk-dev e2fsprogs dosfstools mtools ntfs-3g fdisk exfatprogs exfat-fuse"
BENCH="udpcast uftp iperf"

missing() {
	for p in "$@"; do
		s=$(dpkg-query -W -f '${db:Status-Abbrev}' "$p" 2>/dev/null)
		case $s in ii*) ;; *) printf '%s\n' "$p" ;; esac
	done
}

# Install the named packages; refresh the lists once only when that is what failed.
install() {
	[ $# -eq 0 ] && return 0
	echo "deps: installing: $*" >&2
	export DEBIAN_FRONTEND=noninteractive
	if apt-get install -y --no-install-recommends "$@"; then
		return 0
	fi
	if [ -z "${updated:-}" ]; then
		updated=1
		echo "deps: install failed; running apt-get update and retrying" >&2
		apt-get update && apt-get install -y --no-install-recommends "$@"
		return $?
	fi
	return 1
}

if [ "$(id -u)" -ne 0 ]; then
	m=$(missing $NEEDED $BENCH | tr '\n' ' ')
	if [ -n "$m" ]; then
		echo "deps: missing packages: $m" >&2
		echo "deps: run 'make deps' as root to install them" >&2
		exit 1
	fi
	exit 0
fi

# shellcheck disable=SC2046
install $(missing $NEEDED) || { echo "deps: cannot install required packages" >&2; exit 1; }
# The bench peers are optional for tests: warn, do not fail.
# shellcheck disable=SC2046
install $(missing $BENCH) || echo "deps: warning: bench peers (udpcast uftp iperf) not installed" >&2
m=$(missing $NEEDED | tr '\n' ' ')
if [ -n "$m" ]; then
	echo "deps: still missing: $m" >&2
	exit 1
fi
echo "deps: all present" >&2
exit 0
