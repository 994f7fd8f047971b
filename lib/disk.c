/* Whole disks: partition tables through libfdisk; a source mounted or in use, asked of the kernel. */
#include "disk.h"
#include "exitcode.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ext2fs/ext2fs.h>
#include <libfdisk.h>

static int by_start(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b; /* part[].start is the first member */
	return *x < *y ? -1 : *x > *y;
}

int mc_disk_read(const char *path, uint64_t size, struct mc_disk *d, char *err, size_t errlen)
{
	struct fdisk_context *cxt = fdisk_new_context();
	struct fdisk_table *tb = NULL;
	struct fdisk_iter *itr = NULL;
	struct fdisk_partition *pa = NULL;
	const char *name;
	unsigned long ss;
	int rc = -1, r;

	memset(d, 0, sizeof *d);
	if (cxt == NULL) {
		snprintf(err, errlen, "%s: %s", path, mc_strerror(-ENOMEM));
		return -ENOMEM;
	}
	if ((r = fdisk_assign_device(cxt, path, 1)) < 0) {
		snprintf(err, errlen, "%s: cannot read its partition table: %s", path, mc_strerror(r));
		rc = -EINVAL;
		goto out;
	}
	if (!fdisk_has_label(cxt)) {
		rc = 0;
		goto out;
	}
	name = fdisk_label_get_name(fdisk_get_label(cxt, NULL));
	if (name == NULL || (strcmp(name, "gpt") != 0 && strcmp(name, "dos") != 0)) {
		rc = 0; /* another kind of table: not ours to split; the disk is imaged whole */
		goto out;
	}
	snprintf(d->table, sizeof d->table, "%s", name);
	ss = fdisk_get_sector_size(cxt);
	if ((r = fdisk_get_partitions(cxt, &tb)) < 0 || (itr = fdisk_new_iter(FDISK_ITER_FORWARD)) == NULL) {
		rc = r < 0 ? r : -ENOMEM;
		snprintf(err, errlen, "%s: cannot read its %s partitions: %s", path, name, mc_strerror(rc));
		goto out;
	}
	while (fdisk_table_next_partition(tb, itr, &pa) == 0) {
		struct fdisk_parttype *ty = fdisk_partition_get_type(pa);
		if (strcmp(name, "dos") == 0 && ty && fdisk_parttype_get_code(ty) == 0xee) {
			/* A protective MBR: libfdisk found no GPT behind it that fits this source. */
			snprintf(err, errlen,
				 "%s: a GPT disk whose GPT cannot be read: it points past the end of the source (%llu bytes: "
				 "a truncated copy, or the table of a larger disk), or it is damaged",
				 path, (unsigned long long)size);
			rc = -ERANGE;
			goto out;
		}
		if (fdisk_partition_is_container(pa) || !fdisk_partition_has_start(pa) || !fdisk_partition_has_size(pa))
			continue; /* an extended partition: its EBRs lie outside the data partitions, kept as they are */
		uint64_t start = (uint64_t)fdisk_partition_get_start(pa) * ss, len = (uint64_t)fdisk_partition_get_size(pa) * ss;
		if (start > size || len > size - start) {
			snprintf(err, errlen,
				 "%s: its %s table has partition %zu at bytes %llu-%llu, past the end of the source (%llu bytes): "
				 "a truncated copy, or the table of a larger disk",
				 path, name, fdisk_partition_get_partno(pa) + 1, (unsigned long long)start,
				 (unsigned long long)(start + len), (unsigned long long)size);
			rc = -ERANGE;
			goto out;
		}
		if (d->n == MC_VOL_MAX) {
			snprintf(err, errlen, "%s: more than %d partitions", path, MC_VOL_MAX);
			rc = -E2BIG;
			goto out;
		}
		d->part[d->n].start = start;
		d->part[d->n].size = len;
		d->n++;
	}
	if (d->n == 0) {
		/* A table of no partitions: the boot sector of a bare NTFS or FAT file system ends in
		 * the MBR's signature, and libfdisk calls it "dos". One volume, as with no table. */
		d->table[0] = 0;
		rc = 0;
		goto out;
	}
	qsort(d->part, d->n, sizeof d->part[0], by_start);
	for (unsigned i = 1; i < d->n; i++)
		if (d->part[i].start < d->part[i - 1].start + d->part[i - 1].size) {
			snprintf(err, errlen, "%s: its %s table has overlapping partitions (at bytes %llu and %llu)", path, name,
				 (unsigned long long)d->part[i - 1].start, (unsigned long long)d->part[i].start);
			rc = -EINVAL;
			goto out;
		}
	rc = 1;
out:
	fdisk_free_iter(itr);
	fdisk_unref_table(tb);
	fdisk_unref_context(cxt);
	return rc;
}

/* A block device: free, or held (EBUSY) by a mount or another user; a bare file system mounted read-only is fine. */
static int blk_unused(const char *dev, const char *what, char *err, size_t errlen)
{
	int fd = open(dev, O_RDONLY | O_EXCL | O_CLOEXEC), mf = 0;

	if (fd >= 0) {
		close(fd);
		return 0;
	}
	if (errno != EBUSY)
		return 0; /* not ours to judge here: reading it will say what is wrong */
	if (ext2fs_check_mount_point(dev, &mf, NULL, 0) == 0 && (mf & EXT2_MF_MOUNTED) && (mf & EXT2_MF_READONLY))
		return 0;
	snprintf(err, errlen,
		 "%s: mounted read-write or in use (a mounted partition, a device-mapper or RAID member): "
		 "its block maps cannot be trusted; unmount it, or --force",
		 what);
	return -EBUSY;
}

int mc_disk_check_unused(const char *path, char *err, size_t errlen)
{
	struct stat st;
	char real[PATH_MAX], via[PATH_MAX + 64];
	DIR *dir;
	struct dirent *de;
	int rc = 0;

	if (stat(path, &st) < 0)
		return 0;
	if (S_ISBLK(st.st_mode))
		return blk_unused(path, path, err, errlen);
	if (!S_ISREG(st.st_mode) || realpath(path, real) == NULL || (dir = opendir("/sys/block")) == NULL)
		return 0;
	/* A regular file: every loop device backed by it, whatever its offset, must be free too. */
	while (rc == 0 && (de = readdir(dir)) != NULL) {
		char f[300], back[PATH_MAX + 16], dev[300];
		FILE *fp;
		if (strncmp(de->d_name, "loop", 4) != 0)
			continue;
		snprintf(f, sizeof f, "/sys/block/%s/loop/backing_file", de->d_name);
		if ((fp = fopen(f, "re")) == NULL)
			continue;
		if (fgets(back, sizeof back, fp) != NULL) {
			back[strcspn(back, "\n")] = 0;
			if (strcmp(back, real) == 0) {
				snprintf(dev, sizeof dev, "/dev/%s", de->d_name);
				snprintf(via, sizeof via, "%s (through %s)", path, dev);
				rc = blk_unused(dev, via, err, errlen);
			}
		}
		fclose(fp);
	}
	closedir(dir);
	return rc;
}
