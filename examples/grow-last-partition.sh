#!/bin/sh
# grow-last-partition.sh DISK: after an image was written onto a disk larger
# than the imaged one (mcast-pack extract --to, mcast-recv --to), make the
# room past the image usable: move a GPT's backup table to the new end of the
# disk, grow the last partition to it, then grow its file system (ext2/3/4
# with resize2fs, NTFS with ntfsresize; anything else is left at its size).
#
# DISK is the whole disk: a block device (/dev/sdb, /dev/nvme0n1) or a disk
# image file. Nothing on it may be mounted. On a device, the kernel is told of
# the new partition size; on a file, the partition is reached through a loop
# device at its offset (no partition nodes needed).
#
# The same by hand, with cloud-guest-utils' growpart on a device:
#   sgdisk -e /dev/sdb          # or: sfdisk --relocate gpt-bak-std /dev/sdb
#   growpart /dev/sdb 3
#   e2fsck -f /dev/sdb3 && resize2fs /dev/sdb3     # ext4
#   ntfsresize /dev/sdb3                            # NTFS (then let Windows chkdsk)
set -eu

disk=${1:?usage: grow-last-partition.sh DISK}
[ -e "$disk" ] || { echo "grow-last-partition.sh: $disk: no such disk" >&2; exit 2; }

# A GPT keeps a backup at the very end: move it to the end of the larger disk first.
label=$(sfdisk -d "$disk" | sed -n 's/^label: *//p')
if [ "$label" = gpt ]; then
	sfdisk -q --relocate gpt-bak-std "$disk"
fi

# The last partition: the one that starts last (number, start sector).
last=$(sfdisk -d "$disk" | sed -n 's/^.*[^0-9]\([0-9][0-9]*\) : start= *\([0-9][0-9]*\),.*/\1 \2/p' | sort -n -k2 | tail -n 1)
[ -n "$last" ] || { echo "grow-last-partition.sh: $disk: no partition" >&2; exit 1; }
num=${last% *}
ss=$(sfdisk -d "$disk" | sed -n 's/^sector-size: *//p')
ss=${ss:-512}

# Grow it to the end of the free space after it (", +": same start, largest size).
echo ", +" | sfdisk -q --no-reread --no-tell-kernel -N "$num" "$disk"
start=$(sfdisk -d "$disk" | sed -n "s/^.*[^0-9]$num : start= *\([0-9][0-9]*\),.*/\1/p")
size=$(sfdisk -d "$disk" | sed -n "s/^.*[^0-9]$num : start= *[0-9]*, size= *\([0-9][0-9]*\),.*/\1/p")

# Its file system, on the partition node of a device or a loop device at its offset in a file.
loop=
if [ -b "$disk" ]; then
	partx -u "$disk" 2>/dev/null || blockdev --rereadpt "$disk"
	part=$(lsblk -lnpo NAME "$disk" | sed -n "/[^0-9]$num\$/p" | head -n 1)
else
	loop=$(losetup -f --show -o $((start * ss)) --sizelimit $((size * ss)) "$disk")
	part=$loop
fi
trap '[ -z "$loop" ] || losetup -d "$loop"' EXIT

case $(blkid -p -o value -s TYPE "$part" || true) in
ext2 | ext3 | ext4)
	e2fsck -f -p "$part" # resize2fs wants a freshly checked file system
	resize2fs "$part"
	;;
ntfs)
	ntfsresize -f -P "$part" </dev/null # -P: no progress; Windows runs chkdsk on the next boot
	;;
*)
	echo "grow-last-partition.sh: partition $num of $disk grown; its file system is left at its size" >&2
	;;
esac
