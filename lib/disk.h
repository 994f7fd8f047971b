/*
 * Whole disks: the partition table (GPT or MBR, read with libfdisk) and
 * whether a source is mounted or in use, for `mcast-pack create --image
 * --used-only`.
 */
#ifndef MC_DISK_H
#define MC_DISK_H

#include <stddef.h>
#include <stdint.h>

#include "pkg.h"

struct mc_disk {
	char table[5];        /* "gpt", "dos", or "" when there is none */
	unsigned n;           /* data partitions (an MBR's extended container is not one) */
	struct {
		uint64_t start, size; /* bytes */
	} part[MC_VOL_MAX];
};

/*
 * Reads the partition table of path (size bytes) into d, partitions in
 * order of their start. Returns 1 with a table, 0 with none (d->n 0), or
 * a negative code with "path: reason" in err: -ERANGE when a partition
 * runs past the end of the source (a truncated copy, or a table of another
 * disk), -E2BIG with more than MC_VOL_MAX partitions, -EINVAL for a table
 * that cannot be read, -ENOMEM.
 */
int mc_disk_read(const char *path, uint64_t size, struct mc_disk *d, char *err, size_t errlen);

/*
 * 0 when path (a block device, or a regular file that may back a loop
 * device) is neither mounted read-write nor otherwise held, so its file
 * systems' block maps can be trusted; -EBUSY with "path: reason" in err
 * when it is (a block device held by the kernel, mounted read-only as a
 * bare file system, is accepted).
 */
int mc_disk_check_unused(const char *path, char *err, size_t errlen);

#endif
