#!/usr/bin/env bats
# tests/66-disk.bats: whole disks, used blocks only (create --image --used-only).
# A 256 MiB disk image full of non-zero garbage, with a GPT: a vfat EFI
# partition (files through mtools), an NTFS data partition (mkntfs, ntfscp) and
# an ext4 root holding a real tree, each made on its own loop device at its
# offset (no udev here, so no /dev/loopNpM). Packed with --used-only: stored
# bytes near what the file systems use (the vfat's too, mapped by libtsk), far
# below the disk; bare FAT12 and FAT32 volumes likewise; written back onto
# a loop device (and a larger disk, grown after), and in one session onto
# three loop devices (5% loss, a late joiner, a receiver SIGKILLed and
# resumed); every checker passes and the files read back equal. Refused,
# nothing written: a mounted source, a dirty ext4, a dirty NTFS, a table
# pointing past the end of the source.

bats_require_minimum_version 1.5.0
load helper

# Non-zero garbage, fast: AES-CTR of zeros, seeded by $2.
garbage() { openssl enc -aes-128-ctr -nosalt -pbkdf2 -pass "pass:$2" -in /dev/zero 2>/dev/null | head -c "$1"; }

# jget JSON EXPR: a Python expression over the parsed JSON d, printed.
jget() { python3 -c 'import json, sys; d = json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"; }

# fat_used FILE: the bytes a FAT uses by fsck.fat -v's output in FILE: the area
# before its first cluster (boot sector, FATs, FAT12/16's root directory) and
# its used clusters.
fat_used() {
	awk '/bytes per cluster/ { c = $1 } /^Data area starts at byte/ { s = $6 }
		/ files, [0-9]+\/[0-9]+ clusters$/ { split($(NF - 1), a, "/"); u = a[1] } END { print s + u * c }' "$1"
}

# "start size start_sector" in bytes per partition of disk image $1, from sfdisk -J.
parts() {
	sfdisk -J "$1" | python3 -c 'import json, sys
t = json.load(sys.stdin)["partitiontable"]; ss = t.get("sectorsize", 512)
for p in t["partitions"]: print(p["start"] * ss, p["size"] * ss, p["start"])'
}

setup_file() {
	local F=$BATS_FILE_TMPDIR d f s z ss
	image_host_ok sfdisk mkfs.vfat mcopy mkfs.ext4 dumpe2fs openssl python3 || return 0
	export MTOOLS_SKIP_CHECK=1
	garbage 256M disk >"$F/disk.img"
	sfdisk -q "$F/disk.img" <<-'EOF'
		label: gpt
		start=1MiB, size=16MiB, type=U
		size=48MiB, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7
		type=L
	EOF
	parts "$F/disk.img" >"$F/parts"
	# EFI: vfat, a tree and a random file.
	read -r s z ss < <(sed -n 1p "$F/parts")
	d=$(loop_attach "$F/disk.img" -o "$s" --sizelimit "$z")
	mkfs.vfat -n EFI "$d" >/dev/null
	garbage 1M efi >"$F/efi.bin"
	mmd -i "$d" ::/EFI
	mcopy -i "$d" -s /usr/share/bash-completion/completions "$F/efi.bin" ::/EFI/ 2>/dev/null
	fsck.fat -v -n "$d" >"$F/fsckfat"
	loop_detach "$d"
	# Data: NTFS (when its tools are here), files copied in with ntfscp, no mount.
	if command -v mkntfs >/dev/null && command -v ntfscp >/dev/null; then
		read -r s z ss < <(sed -n 2p "$F/parts")
		d=$(loop_attach "$F/disk.img" -o "$s" --sizelimit "$z")
		mkntfs -Q -F -q -p "$ss" -H 255 -S 63 -L DATA "$d"
		garbage 3M ntfs >"$F/ntfs.bin"
		for f in /usr/share/zoneinfo/Europe/Paris /usr/share/i18n/charmaps/UTF-8.gz "$F/ntfs.bin"; do
			ntfscp "$d" "$f" "$(basename "$f")"
		done
		ntfsinfo -m "$d" >"$F/ntfsinfo"
		loop_detach "$d"
		touch "$F/ntfs"
	fi
	# Root: ext4 made with nodiscard (mkfs leaves the garbage), a real tree.
	read -r s z ss < <(sed -n 3p "$F/parts")
	d=$(loop_attach "$F/disk.img" -o "$s" --sizelimit "$z")
	mkfs.ext4 -q -F -E nodiscard,lazy_itable_init=0 "$d"
	mc_mount "$d" "$F/mnt"
	cp -a /usr/share/perl /usr/share/zoneinfo "$F/mnt/"
	mc_umount "$F/mnt"
	loop_detach "$d" # returns once disk.img holds every write: read it there
	dumpe2fs "$F/disk.img?offset=$s" >"$F/dumpe2fs" 2>/dev/null
	"$MCAST_BIN/mcast-pack" -q create --image --used-only -n disk -o "$F/disk.mcpkg" "$F/disk.img"
	touch "$F/ready"
}

setup() {
	setup_scratch
	export MTOOLS_SKIP_CHECK=1
}

need_disk() { need_ready "no disk image (sfdisk, mkfs.vfat, mtools, mkfs.ext4 or openssl missing, or setup failed)"; }

# The info --json summary of the packed disk.
info_json() { "$MCAST_BIN/mcast-pack" info --json "$F/disk.mcpkg" | tail -n 1; }

@test "disk: --used-only records the GPT and each partition's file system; stored bytes near the used ones" {
	need_disk
	local j used e4 nt vf stored
	j=$(info_json)
	[ "$(jget "$j" 'd["partition_table"]')" = gpt ]
	[ "$(jget "$j" '",".join(str(v["filesystem"]) for v in d["volumes"])')" = "vfat,$([ -f "$F/ntfs" ] && echo ntfs || echo None),ext4" ]
	[ "$(jget "$j" '",".join(str(v["used_only"]) for v in d["volumes"])')" = "True,$([ -f "$F/ntfs" ] && echo True || echo False),True" ]
	# What the file systems' own tools say they use: dumpe2fs, ntfsinfo and fsck.fat.
	# ext4: its groups' free counts (the superblock's own total may lag behind them after umount).
	e4=$(awk -F: '/^Block count/ { n = $2 } /^Block size/ { b = $2 } /^  [0-9]+ free blocks,/ { split($0, a, " "); f += a[1] }
		END { print (n - f) * b }' "$F/dumpe2fs")
	nt=$(sed -n 2p "$F/parts" | cut -d' ' -f2)
	if [ -f "$F/ntfs" ]; then
		nt=$(awk -F: '/Cluster Size/ { c = $2 } /Volume Size in Clusters/ { n = $2 } /Free Clusters/ { split($2, a, " "); f = a[1] }
			END { print (n - f) * c }' "$F/ntfsinfo")
	fi
	vf=$(fat_used "$F/fsckfat")
	used=$((vf + nt + e4))
	# libtsk's count of the vfat and fsck.fat's agree (libtsk's may hold a tail shorter than a cluster).
	echo "# vfat used: fsck.fat $vf, libtsk $(jget "$j" 'd["volumes"][0]["used"]')"
	[ "$(jget "$j" '0 <= d["volumes"][0]["used"] - '"$vf"' < 65536')" = True ]
	[ "$(jget "$j" 'd["volumes"][0]["stored"] <= '"$vf"' * 11 // 10')" = True ]
	# libext2fs's count (from the bitmaps) and dumpe2fs's (the group descriptors') agree.
	echo "# ext4 used: dumpe2fs $e4, libext2fs $(jget "$j" 'd["volumes"][2]["used"]')"
	[ "$(jget "$j" 'abs(d["volumes"][2]["used"] - '"$e4"') <= 65536')" = True ]
	stored=$(jget "$j" 'd["stored_size"]')
	echo "# stored $stored, used $used, disk $(stat -c %s "$F/disk.img")" >&3
	[ "$stored" -le $((used * 11 / 10)) ]
	[ "$stored" -le $((256 * 1048576 / 4)) ]
	# The volumes' stored bytes add up to at most the payload (the rest: table areas).
	[ "$(jget "$j" 'sum(v["stored"] for v in d["volumes"])')" -le "$stored" ]
	run -0 "$MCAST_BIN/mcast-pack" info "$F/disk.mcpkg"
	[[ $output == *"partitions:     gpt"* ]]
	[[ $output == *ext4*"used only"* ]]
	"$MCAST_BIN/mcast-pack" verify "$F/disk.mcpkg"
}

# disk_checks IMG: the disk image IMG holds the packed disk: its GPT verifies
# and lists the same partitions, fsck.vfat, ntfsfix -n and e2fsck -fn pass on
# them (each on a loop device of its own), and the files read back equal.
disk_checks() {
	local img=$1 d s z ss
	run -0 sfdisk --verify "$img"
	[[ $output == *"No errors detected"* ]]
	[ "$(parts "$img")" = "$(cat "$F/parts")" ]
	# EFI: fsck.vfat, then the files through mtools.
	read -r s z ss < <(sed -n 1p "$F/parts")
	d=$(loop_attach "$img" -r -o "$s" --sizelimit "$z")
	run -0 fsck.vfat -n "$d"
	mkdir "$img.efi"
	mcopy -s -n -i "$d" ::/EFI "$img.efi/"
	cmp "$img.efi/EFI/efi.bin" "$F/efi.bin"
	diff -r /usr/share/bash-completion/completions "$img.efi/EFI/completions"
	loop_detach "$d"
	# Data: ntfsfix -n, and every copied file through ntfscat.
	if [ -f "$F/ntfs" ]; then
		read -r s z ss < <(sed -n 2p "$F/parts")
		d=$(loop_attach "$img" -r -o "$s" --sizelimit "$z")
		run -0 ntfsfix -n "$d"
		ntfscat "$d" ntfs.bin | cmp - "$F/ntfs.bin"
		ntfscat "$d" Paris | cmp - /usr/share/zoneinfo/Europe/Paris
		ntfscat "$d" UTF-8.gz | cmp - /usr/share/i18n/charmaps/UTF-8.gz
		loop_detach "$d"
	else
		echo "# no mkntfs/ntfscp here: the NTFS part is skipped" >&3
	fi
	# Root: e2fsck -fn, then mounted read-only and compared with its source tree.
	read -r s z ss < <(sed -n 3p "$F/parts")
	d=$(loop_attach "$img" -r -o "$s" --sizelimit "$z")
	run -0 e2fsck -fn "$d"
	mc_mount "$d" "$img.mnt" -o ro,noload
	diff -r /usr/share/perl "$img.mnt/perl"
	diff -r /usr/share/zoneinfo "$img.mnt/zoneinfo"
	mc_umount "$img.mnt"
	loop_detach "$d"
}

@test "disk: extract --to a loop device: the GPT verifies, every file system checks clean, files read back equal" {
	need_disk
	local t
	truncate -s 256M target.img
	garbage 96M target | dd of=target.img conv=notrunc status=none # what was there must not matter
	t=$(loop_attach target.img)
	run -0 "$MCAST_BIN/mcast-pack" extract --to "$t" "$F/disk.mcpkg"
	run -0 "$MCAST_BIN/mcast-pack" verify --to "$t" "$F/disk.mcpkg"
	loop_detach "$t"
	disk_checks "$T/target.img"
}

@test "disk: onto a larger disk: the rest is left as it was, the last partition and its ext4 grow after" {
	asan_covered_elsewhere
	need_disk
	local s z ss before
	truncate -s 255M small.img
	run -2 "$MCAST_BIN/mcast-pack" extract --to small.img "$F/disk.mcpkg"
	[[ $output == *small.img*"smaller than the image"* ]]
	truncate -s 272M big.img
	garbage 16M big | dd of=big.img bs=1M seek=256 conv=notrunc status=none
	before=$(tail -c 16M big.img | md5sum)
	run -0 "$MCAST_BIN/mcast-pack" extract --to big.img "$F/disk.mcpkg"
	[ "$(tail -c 16M big.img | md5sum)" = "$before" ]
	# examples/grow-last-partition.sh: backup GPT to the new end, last partition to it, then its file system.
	run -0 sh "$BATS_TEST_DIRNAME/../examples/grow-last-partition.sh" big.img
	run -0 sfdisk --verify big.img
	[[ $output == *"No errors detected"* ]]
	read -r s z ss < <(parts big.img | sed -n 3p)
	[ "$z" -gt $((205 * 1048576)) ] # 190 MiB before
	d=$(loop_attach big.img -r -o "$s" --sizelimit "$z")
	run -0 e2fsck -fn "$d"
	[ "$(dumpe2fs -h "$d" 2>/dev/null | awk -F: '/^Block count/ { print $2 + 0 }')" -gt $((205 * 1024)) ] # 1 KiB blocks
	loop_detach "$d"
}

@test "disk: a bare ext4 (a loop device) and a bare swap with --used-only: one volume, no table; restored, they check" {
	need_disk
	local s z ss d
	read -r s z ss < <(sed -n 3p "$F/parts")
	d=$(loop_attach "$F/disk.img" -r -o "$s" --sizelimit "$z")
	run -0 "$MCAST_BIN/mcast-pack" -q create --image --used-only -o root.mcpkg "$d"
	loop_detach "$d"
	run -0 "$MCAST_BIN/mcast-pack" info --json root.mcpkg
	[ "$(jget "${lines[-1]}" '[d["partition_table"], len(d["volumes"]), d["volumes"][0]["filesystem"], d["volumes"][0]["size"]]')" = "[None, 1, 'ext4', $z]" ]
	[ "$(jget "${lines[-1]}" 'd["stored_size"]')" -lt $((z / 4)) ]
	run -0 "$MCAST_BIN/mcast-pack" extract --to root.img root.mcpkg
	run -0 e2fsck -fn root.img
	# Plain swap: only its header (64 KiB) is kept; the rest is don't-care.
	garbage 16M swap >swap.img
	mkswap -L sw swap.img >/dev/null
	run -0 "$MCAST_BIN/mcast-pack" -q create --image --used-only -o swap.mcpkg swap.img
	run -0 "$MCAST_BIN/mcast-pack" info --json swap.mcpkg
	[ "$(jget "${lines[-1]}" '[d["volumes"][0]["filesystem"], d["volumes"][0]["used"], d["holes"], d["stored_size"] < 65536]')" = "['swap', 65536, 15, True]" ]
	run -0 "$MCAST_BIN/mcast-pack" extract --to swap2.img swap.mcpkg
	[ "$(blkid -p -o value -s TYPE swap2.img)/$(blkid -p -o value -s LABEL swap2.img)" = swap/sw ]
}

@test "disk: a bare NTFS (no partition table; its boot sector reads as an empty dos table) is one volume, used blocks only; dirty, it is refused" {
	asan_covered_elsewhere
	need_disk
	command -v mkntfs >/dev/null && command -v ntfscp >/dev/null || skip "no ntfs-3g tools here"
	garbage 64M bare >bare.img
	mkntfs -Q -F -q bare.img 2>/dev/null
	garbage 2M file >file.bin
	ntfscp bare.img file.bin file.bin 2>/dev/null
	run -0 --separate-stderr "$MCAST_BIN/mcast-pack" -q create --image --used-only -o b.mcpkg bare.img
	run -0 --separate-stderr "$MCAST_BIN/mcast-pack" info --json b.mcpkg
	[ "$(jget "$output" 'len(d["volumes"])')" = 1 ]
	[ "$(jget "$output" 'd["volumes"][0]["filesystem"]')" = ntfs ]
	[ "$(jget "$output" 'd["volumes"][0]["used_only"]')" = True ]
	# the garbage in the free space is not stored: far below the 64 MiB image
	[ "$(jget "$output" 'd["volumes"][0]["stored"] < 16 << 20')" = True ]
	garbage 64M back >back.img
	run -0 "$MCAST_BIN/mcast-pack" -q extract --to back.img b.mcpkg
	run -0 ntfsfix -n back.img
	ntfscat back.img file.bin | cmp - file.bin
	ntfsfix bare.img >/dev/null
	run -1 "$MCAST_BIN/mcast-pack" create --image --used-only -o d.mcpkg bare.img
	[[ $output == *"bare.img: ntfs is marked dirty"*--force* ]]
	[ ! -e d.mcpkg ]
}

@test "disk: bare FAT12 and FAT32 (no partition table) on garbage: free clusters, a deleted file's among them, are not stored; restored, fsck.vfat passes and the files read back equal" {
	need_disk
	local f z a j used
	garbage 4M keep >keep.bin
	for f in 12 32; do
		# FAT32 with one-sector clusters: many clusters on a small volume.
		z=$([ $f = 12 ] && echo 16 || echo 48)
		a=$([ $f = 12 ] && echo "-F 12" || echo "-F 32 -s 1")
		garbage ${z}M fat$f >fat$f.img
		# shellcheck disable=SC2086
		mkfs.vfat $a -n F$f fat$f.img >/dev/null
		# A deleted file leaves its garbage in clusters the FAT calls free.
		garbage 8M big$f >big.bin
		mcopy -i fat$f.img big.bin ::/big.bin
		mdel -i fat$f.img ::/big.bin
		mmd -i fat$f.img ::/d
		mcopy -i fat$f.img keep.bin /usr/share/zoneinfo/Europe/Paris ::/d/
		fsck.fat -v -n fat$f.img >fsck$f
		grep -q "FATs, $f bit entries" fsck$f # the FAT kind asked for
		run -0 --separate-stderr "$MCAST_BIN/mcast-pack" -q create --image --used-only -o fat$f.mcpkg fat$f.img
		run -0 --separate-stderr "$MCAST_BIN/mcast-pack" info --json fat$f.mcpkg
		j=$output
		[ "$(jget "$j" '[d["partition_table"], len(d["volumes"]), d["volumes"][0]["filesystem"], d["volumes"][0]["used_only"]]')" = "[None, 1, 'vfat', True]" ]
		used=$(fat_used fsck$f)
		echo "# FAT$f: used by fsck.fat $used, by libtsk $(jget "$j" 'd["volumes"][0]["used"]'), stored $(jget "$j" 'd["stored_size"]')" >&3
		[ "$(jget "$j" '0 <= d["volumes"][0]["used"] - '"$used"' < 65536')" = True ]
		# Stored: what the FAT uses, not the deleted file's 8 MiB nor the rest of the garbage.
		[ "$(jget "$j" 'd["stored_size"]')" -le $((used * 11 / 10)) ]
		[ "$(jget "$j" 'd["stored_size"]')" -lt $((6 << 20)) ]
		garbage ${z}M back$f >back.img
		run -0 "$MCAST_BIN/mcast-pack" -q extract --to back.img fat$f.mcpkg
		run -0 fsck.vfat -n back.img
		rm -rf out && mkdir out
		mcopy -s -n -i back.img ::/d out/
		cmp out/d/keep.bin keep.bin
		cmp out/d/Paris /usr/share/zoneinfo/Europe/Paris
		run -1 mcopy -n -i back.img ::/big.bin out/
	done
}

@test "disk: a bare exFAT on garbage (files written through exfat-fuse): used clusters only; restored, fsck.exfat passes and the files read back equal" {
	need_disk
	image_host_ok mkfs.exfat dump.exfat fsck.exfat mount.exfat-fuse && [ -c /dev/fuse ] || skip "no exfatprogs or exfat-fuse here"
	local d j used
	garbage 64M exfat >ex.img
	mkfs.exfat -L EX ex.img >/dev/null
	garbage 3M keep >keep.bin
	garbage 8M big >big.bin
	d=$(loop_attach ex.img)
	mc_mount "$d" "$T/mnt" -t exfat-fuse
	mkdir "$T/mnt/d"
	cp keep.bin /usr/share/zoneinfo/Europe/Paris "$T/mnt/d/"
	cp big.bin "$T/mnt/" && sync && rm "$T/mnt/big.bin" # its garbage stays in free clusters
	mc_umount "$T/mnt"
	loop_detach "$d"
	run -0 fsck.exfat -n ex.img
	# What exfatprogs says it uses: everything before the cluster heap, and the clusters not free.
	used=$(dump.exfat ex.img 2>/dev/null | awk -F: '/Cluster Heap Offset/ { h = $2 } /Sector Size Bits/ { s = $2 }
		/^Cluster size/ { c = $2 } /^Total Clusters/ { t = $2 } /^Free Clusters/ { f = $2 } END { print h * 2 ^ s + (t - f) * c }')
	run -0 --separate-stderr "$MCAST_BIN/mcast-pack" -q create --image --used-only -o ex.mcpkg ex.img
	run -0 --separate-stderr "$MCAST_BIN/mcast-pack" info --json ex.mcpkg
	j=$output
	echo "# exFAT: used by dump.exfat $used, by libtsk $(jget "$j" 'd["volumes"][0]["used"]'), stored $(jget "$j" 'd["stored_size"]')" >&3
	[ "$(jget "$j" '[d["partition_table"], len(d["volumes"]), d["volumes"][0]["filesystem"], d["volumes"][0]["used_only"]]')" = "[None, 1, 'exfat', True]" ]
	[ "$(jget "$j" 'd["volumes"][0]["used"] == '"$used")" = True ]
	[ "$(jget "$j" 'd["stored_size"]')" -le $((used * 11 / 10)) ]
	garbage 64M back >back.img
	run -0 "$MCAST_BIN/mcast-pack" -q extract --to back.img ex.mcpkg
	run -0 fsck.exfat -n back.img
	d=$(loop_attach back.img -r)
	mc_mount "$d" "$T/mnt2" -t exfat-fuse -o ro
	cmp "$T/mnt2/d/keep.bin" keep.bin
	cmp "$T/mnt2/d/Paris" /usr/share/zoneinfo/Europe/Paris
	[ ! -e "$T/mnt2/big.bin" ]
	mc_umount "$T/mnt2"
	loop_detach "$d"
}

@test "disk: refused, nothing written: a mounted source, a dirty ext4, a dirty NTFS, a table past the end; usage errors" {
	need_disk
	local s z ss d
	# Mounted read-write (a small GPT disk with one ext4): through a loop device backed by the file, and that device.
	truncate -s 32M dirty.img
	printf 'label: gpt\nstart=1MiB, type=L\n' | sfdisk -q dirty.img
	read -r s z ss < <(parts dirty.img)
	d=$(loop_attach dirty.img -o "$s" --sizelimit "$z")
	mkfs.ext4 -q -F "$d"
	mc_mount "$d" "$T/mnt"
	run -1 "$MCAST_BIN/mcast-pack" create --image --used-only -o m.mcpkg dirty.img
	[[ $output == *"dirty.img (through $d): mounted read-write or in use"*--force* ]]
	run -1 "$MCAST_BIN/mcast-pack" create --image --used-only -o m.mcpkg "$d"
	[[ $output == *"$d: mounted read-write or in use"* ]]
	[ ! -e m.mcpkg ]
	mc_umount "$T/mnt"
	loop_detach "$d"
	# Not clean: its ext4 marked not valid (what a crash leaves), through libext2fs's offset option.
	debugfs -w -R "ssv state 0" "dirty.img?offset=$s"
	[[ $(dumpe2fs -h "dirty.img?offset=$s" 2>/dev/null) == *"Filesystem state:         not clean"* ]]
	run -1 "$MCAST_BIN/mcast-pack" create --image --used-only -o m.mcpkg dirty.img
	[[ $output == *"dirty.img, partition at byte $s: ext4 is not clean"*e2fsck*--force* ]]
	[ ! -e m.mcpkg ]
	run -0 "$MCAST_BIN/mcast-pack" -q create --image --used-only --force -o m.mcpkg dirty.img
	# NTFS marked dirty: ntfsfix (without -n) marks the volume for a check at the next boot, as a
	# Windows that did not shut down cleanly leaves it.
	if [ -f "$F/ntfs" ]; then
		truncate -s 32M ntfs.img
		printf 'label: gpt\nstart=1MiB, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n' | sfdisk -q ntfs.img
		read -r s z ss < <(parts ntfs.img)
		d=$(loop_attach ntfs.img -o "$s" --sizelimit "$z")
		mkntfs -Q -F -q -p "$ss" -H 255 -S 63 "$d"
		run -0 "$MCAST_BIN/mcast-pack" -q create --image --used-only -o n.mcpkg ntfs.img
		rm n.mcpkg
		ntfsfix "$d" >/dev/null
		run ! ntfsinfo -m "$d" # ntfs-3g's own tools refuse it now
		loop_detach "$d"
		run -1 "$MCAST_BIN/mcast-pack" create --image --used-only -o n.mcpkg ntfs.img
		[[ $output == *"ntfs.img, partition at byte $s: ntfs is marked dirty"*chkdsk*--force* ]]
		[ ! -e n.mcpkg ]
		run -0 "$MCAST_BIN/mcast-pack" -q create --image --used-only --force -o n.mcpkg ntfs.img
	fi
	# A table that points past the end: a 64 MiB disk's GPT on 48 MiB.
	truncate -s 64M short.img
	printf 'label: gpt\nstart=1MiB, type=L\n' | sfdisk -q short.img
	truncate -s 48M short.img
	run -1 "$MCAST_BIN/mcast-pack" create --image --used-only -o s.mcpkg short.img
	[[ $output == *"short.img: a GPT disk whose GPT cannot be read: it points past the end of the source"* ]]
	[ ! -e s.mcpkg ]
	# The same with an MBR, whose partition libfdisk reads as it is.
	truncate -s 64M shortm.img
	printf 'label: dos\nstart=2048, type=83\n' | sfdisk -q shortm.img
	truncate -s 48M shortm.img
	run -1 "$MCAST_BIN/mcast-pack" create --image --used-only -o s.mcpkg shortm.img
	[[ $output == *"shortm.img: its dos table has partition 1 at bytes 1048576-67108864, past the end of the source"* ]]
	[ ! -e s.mcpkg ]
	# Usage: --used-only reads a device or file, not a stream; --force and --used-only need their partners.
	run -2 "$MCAST_BIN/mcast-pack" create --image --used-only -o s.mcpkg - </dev/null
	[[ $output == *"--used-only"*"not standard input"* ]]
	run -2 "$MCAST_BIN/mcast-pack" create --used-only -o s.mcpkg "$F/disk.img"
	run -2 "$MCAST_BIN/mcast-pack" create --image --force -o s.mcpkg "$F/disk.img"
	[ ! -e s.mcpkg ]
}

@test "disk: an MBR with an extended partition: ext4 primary, swap logical; the EBR kept, restored they check" {
	need_disk
	local s z ss d
	garbage 64M mbr >mbr.img
	sfdisk -q mbr.img <<-'EOF'
		label: dos
		start=2048, size=40MiB, type=83
		type=5
		type=82
	EOF
	parts mbr.img >mparts
	[ "$(wc -l <mparts)" -eq 3 ] # sfdisk -J lists the extended one too
	read -r s z ss < <(sed -n 1p mparts)
	d=$(loop_attach mbr.img -o "$s" --sizelimit "$z")
	mkfs.ext4 -q -F -E nodiscard,lazy_itable_init=0 "$d"
	debugfs -w -R "write /usr/share/zoneinfo/Europe/Paris Paris" "$d" >/dev/null 2>&1
	loop_detach "$d"
	read -r s z ss < <(sed -n 3p mparts)
	d=$(loop_attach mbr.img -o "$s" --sizelimit "$z")
	mkswap -L lsw "$d" >/dev/null
	loop_detach "$d"
	run -0 "$MCAST_BIN/mcast-pack" -q create --image --used-only -o mbr.mcpkg mbr.img
	run -0 "$MCAST_BIN/mcast-pack" info --json mbr.mcpkg
	[ "$(jget "${lines[-1]}" '[d["partition_table"]] + [v["filesystem"] for v in d["volumes"]]')" = "['dos', 'ext4', 'swap']" ]
	[ "$(jget "${lines[-1]}" 'd["stored_size"]')" -lt $((8 * 1048576)) ]
	truncate -s 64M mbr2.img
	garbage 8M other | dd of=mbr2.img conv=notrunc status=none
	run -0 "$MCAST_BIN/mcast-pack" extract --to mbr2.img mbr.mcpkg
	[ "$(parts mbr2.img)" = "$(cat mparts)" ]
	run -0 sfdisk --verify mbr2.img
	read -r s z ss < <(sed -n 1p mparts)
	d=$(loop_attach mbr2.img -r -o "$s" --sizelimit "$z")
	run -0 e2fsck -fn "$d"
	debugfs -R "cat Paris" "$d" 2>/dev/null | cmp - /usr/share/zoneinfo/Europe/Paris
	loop_detach "$d"
	read -r s z ss < <(sed -n 3p mparts)
	d=$(loop_attach mbr2.img -r -o "$s" --sizelimit "$z")
	[ "$(blkid -p -o value -s LABEL "$d")" = lsw ]
	loop_detach "$d"
}

@test "disk: the used-only package in one session onto three loop devices (5% loss, a late joiner, SIGKILL and resume): the GPT verifies, every file system checks, files read back equal" {
	plain_run_only
	need_disk
	require_root
	require_prog mcast-send mcast-recv
	local G=239.77.66.1 P=17660 r
	local -A dev
	lan_create 4
	# Targets that held other bytes where the table, EFI and NTFS go; don't-care holes are not written.
	for r in r2 r3 r4; do
		truncate -s 256M $r.img
		garbage 64M $r | dd of=$r.img conv=notrunc status=none
		dev[$r]=$(loop_attach $r.img)
	done
	ns_loss h2 5 $P
	session_recv_bg r2 h2 -i eth0 --to "${dev[r2]}" --state "$T/r2.state"
	session_recv_bg r4 h4 -i eth0 --to "${dev[r4]}" --state "$T/r4.state"
	session_send_bg h1 -i eth0 -r 60M --linger 2s "$F/disk.mcpkg"
	# Once r4's state counts chunks on its target, r4 is cut off (so it cannot
	# finish first) and killed; r3 joins then; the same command resumes r4.
	wait_for 30 state_done "$T/r4.state" 4
	ns_loss h4 100
	bg_kill r4 KILL
	bg_ends r4 10 124 137
	ns_loss h4 0
	[ -s "$T/r4.state" ]
	session_recv_bg r3 h3 -i eth0 --to "${dev[r3]}" --state "$T/r3.state"
	mv "$T/r4.err" "$T/r4.first.err"
	session_recv_bg r4 h4 -i eth0 --to "${dev[r4]}" --state "$T/r4.state"
	grep -q 'resuming ' "$T/r4.err"
	for r in r2 r3 r4; do bg_ends $r 60 0; done
	bg_ends send 60 0
	[ "$(ns_loss_count h2)" -gt 0 ]
	[ "$(bg_json r3 summary 'j["nacks"]')" -ge 1 ]
	for r in r2 r3 r4; do
		[ ! -e "$T/$r.state" ]
		loop_detach "${dev[$r]}"
		disk_checks "$T/$r.img"
	done
}
