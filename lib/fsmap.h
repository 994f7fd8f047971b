/*
 * Used blocks of a file system, read through a library that knows it
 * (libext2fs for ext2/3/4, libntfs-3g for NTFS, The Sleuth Kit's libtsk for
 * FAT12/16/32 and exFAT), never by parsing its structures here: what `mcast-pack create --image --used-only` leaves out.
 */
#ifndef MC_FSMAP_H
#define MC_FSMAP_H

#include <stddef.h>
#include <stdint.h>

#include "pkg.h"

/* Byte ranges in the image, in order, adjacent ones merged. */
struct mc_extent {
	uint64_t off, len;
};
struct mc_extents {
	struct mc_extent *v;
	size_t n, cap;
};
/* Appends [off, off+len) (after every range already there); 0 or -ENOMEM. */
int mc_extents_add(struct mc_extents *e, uint64_t off, uint64_t len);
void mc_extents_free(struct mc_extents *e);

/* mc_fsmap flags */
#define MC_FSMAP_FORCE 1u /* take the map of a file system that is not clean (it may be wrong) */

/*
 * The file system at [off, off+size) of path (fd open on it read-only):
 * its type as libblkid names it into fstype ("" when none is recognised);
 * for ext2/3/4, NTFS, vfat (FAT12/16/32) and exFAT, its free blocks (for
 * swap, all but its first 64 KiB, the header page) appended to *free_ext as
 * image byte ranges (bytes of the volume its block map does not cover, such
 * as NTFS's backup boot sector or a FAT's area before its first cluster,
 * count as used) and the bytes it uses in *used.
 * Returns 1 when mapped, 0 when no library maps this file system (*used =
 * size: image it whole), or a negative code with "path: reason" in err:
 * -EUCLEAN (not clean: needs fsck, a journal to replay, or NTFS marked
 * dirty; only without MC_FSMAP_FORCE; a FAT's dirty flag is not read),
 * -ERANGE (the file system is larger than its volume), -EINVAL (cannot be
 * opened), -EIO (its map cannot be read), -ENOMEM.
 */
int mc_fsmap(const char *path, int fd, uint64_t off, uint64_t size, unsigned flags, char fstype[MC_VOL_FSTYPE],
	     struct mc_extents *free_ext, uint64_t *used, char *err, size_t errlen);

#endif
