/*
 * Used-block maps from the file systems' own libraries: libblkid names it;
 * libext2fs, libntfs-3g and The Sleuth Kit's libtsk (FAT, exFAT) map it.
 */
#include "fsmap.h"
#include "exitcode.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <blkid.h>
#include <et/com_err.h>
#include <ext2fs/ext2fs.h>
/* libntfs-3g's headers want these first (they test st_mtime and use va_list). */
#include <ntfs-3g/types.h>
#include <ntfs-3g/device.h>
#include <ntfs-3g/volume.h>
#include <ntfs-3g/attrib.h>
#include <ntfs-3g/logging.h>
#include <tsk/libtsk.h>

int mc_extents_add(struct mc_extents *e, uint64_t off, uint64_t len)
{
	if (len == 0)
		return 0;
	if (e->n && e->v[e->n - 1].off + e->v[e->n - 1].len == off) {
		e->v[e->n - 1].len += len;
		return 0;
	}
	if (e->n == e->cap) {
		size_t cap = e->cap ? 2 * e->cap : 256;
		struct mc_extent *v = realloc(e->v, cap * sizeof *v);
		if (v == NULL)
			return -ENOMEM;
		e->v = v;
		e->cap = cap;
	}
	e->v[e->n].off = off;
	e->v[e->n].len = len;
	e->n++;
	return 0;
}

void mc_extents_free(struct mc_extents *e)
{
	free(e->v);
	e->v = NULL;
	e->n = e->cap = 0;
}

static int fail(char *err, size_t errlen, int e, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -e;
}

/* "PATH" for a bare file system, "PATH, partition at byte N" inside a disk: what messages name. */
static void where(char *out, size_t n, const char *path, uint64_t off)
{
	if (off)
		snprintf(out, n, "%s, partition at byte %llu", path, (unsigned long long)off);
	else
		snprintf(out, n, "%s", path);
}

/* The file system type at [off, off+size) as libblkid names it, "" when none or ambiguous. */
static void probe_type(int fd, uint64_t off, uint64_t size, char fstype[MC_VOL_FSTYPE])
{
	blkid_probe pr = blkid_new_probe();
	const char *t = NULL;

	fstype[0] = 0;
	if (pr == NULL)
		return;
	if (blkid_probe_set_device(pr, fd, (blkid_loff_t)off, (blkid_loff_t)size) == 0) {
		blkid_probe_enable_superblocks(pr, 1);
		blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE);
		if (blkid_do_safeprobe(pr) == 0 && blkid_probe_lookup_value(pr, "TYPE", &t, NULL) == 0 && t) {
			size_t i = 0;
			/* Only what a manifest's volume record may hold (a-z 0-9 _ -). */
			for (; t[i] && i < MC_VOL_FSTYPE - 1; i++) {
				char c = t[i] >= 'A' && t[i] <= 'Z' ? (char)(t[i] - 'A' + 'a') : t[i];
				fstype[i] = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ? c : '_';
			}
			fstype[i] = 0;
		}
	}
	blkid_free_probe(pr);
}

/* ---- ext2, ext3, ext4: libext2fs, opened at the volume's offset (unix_io's "offset=" option) ---- */

static int map_ext(const char *path, uint64_t off, uint64_t size, unsigned flags, const char *fstype,
		   struct mc_extents *fe, uint64_t *used, char *err, size_t errlen)
{
	ext2_filsys fs = NULL;
	char opts[64], w[512];
	errcode_t e;
	uint64_t freeb = 0;
	int rc = -1;

	where(w, sizeof w, path, off);
	snprintf(opts, sizeof opts, "offset=%llu", (unsigned long long)off);
	e = ext2fs_open2(path, opts, EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &fs);
	if (e)
		return fail(err, errlen, EINVAL, "%s: %s: cannot open: %s", w, fstype, error_message(e));
	struct ext2_super_block *sb = fs->super;
	blk64_t first = sb->s_first_data_block, total = ext2fs_blocks_count(sb);
	uint64_t bs = fs->blocksize;
	if (total > size / bs) {
		rc = fail(err, errlen, ERANGE, "%s: %s of %llu bytes in a volume of %llu: larger than its volume", w, fstype,
		     (unsigned long long)(total * bs), (unsigned long long)size);
		goto out;
	}
	if (!(flags & MC_FSMAP_FORCE) &&
	    ((sb->s_state & EXT2_ERROR_FS) || !(sb->s_state & EXT2_VALID_FS) || ext2fs_has_feature_journal_needs_recovery(sb))) {
		rc = fail(err, errlen, EUCLEAN,
		     "%s: %s is not clean (%s): its block map cannot be trusted; run e2fsck, or --force", w, fstype,
		     ext2fs_has_feature_journal_needs_recovery(sb) ? "its journal needs replaying (mounted, or not unmounted cleanly)"
		     : (sb->s_state & EXT2_ERROR_FS) ? "errors recorded" : "not marked valid");
		goto out;
	}
	if ((e = ext2fs_read_block_bitmap(fs)) != 0) {
		rc = fail(err, errlen, EIO, "%s: %s: cannot read its block bitmap: %s", w, fstype, error_message(e));
		goto out;
	}
	/* Runs of free blocks, found with the library's own search. */
	for (blk64_t b = first, z, s; total && b < total; b = s) {
		if (ext2fs_find_first_zero_block_bitmap2(fs->block_map, b, total - 1, &z) != 0)
			break;
		if (ext2fs_find_first_set_block_bitmap2(fs->block_map, z, total - 1, &s) != 0)
			s = total;
		if (mc_extents_add(fe, off + z * bs, (s - z) * bs) < 0) {
			rc = fail(err, errlen, ENOMEM, "%s: %s", w, mc_strerror(-ENOMEM));
			goto out;
		}
		freeb += (s - z) * bs;
	}
	*used = size - freeb;
	rc = 1;
out:
	ext2fs_close_free(&fs);
	return rc;
}

/*
 * Up to count bytes at offset of the volume [voff, voff+vsize) of fd, never
 * past its end: what the libraries below read the volume through.
 */
static ssize_t vol_pread(int fd, uint64_t voff, uint64_t vsize, void *buf, size_t count, uint64_t offset)
{
	if (offset >= vsize)
		return 0;
	if (count > vsize - offset)
		count = (size_t)(vsize - offset);
	for (size_t got = 0;;) {
		ssize_t r = pread(fd, (char *)buf + got, count - got, (off_t)(voff + offset + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return got ? (ssize_t)got : -1;
		got += (size_t)r;
		if (r == 0 || got == count)
			return (ssize_t)got;
	}
}

/*
 * ---- NTFS: libntfs-3g on device operations that read the volume at its offset, read-only ----
 *
 * These operations (and libtsk's ti_read below) answer -1 with errno:
 * that is the contract of the library that calls them, not lib's.
 */

struct ndev {
	int fd;
	uint64_t off, size;
	int64_t pos;
};

static int nd_open(struct ntfs_device *dev, int flags)
{
	if (flags & (O_WRONLY | O_RDWR)) {
		errno = EROFS;
		return -1;
	}
	NDevSetOpen(dev);
	NDevSetReadOnly(dev);
	return 0;
}

static int nd_close(struct ntfs_device *dev)
{
	NDevClearOpen(dev);
	return 0;
}

static s64 nd_seek(struct ntfs_device *dev, s64 offset, int whence)
{
	struct ndev *d = dev->d_private;
	int64_t p = whence == SEEK_SET ? offset : whence == SEEK_CUR ? d->pos + offset : (int64_t)d->size + offset;

	if (p < 0) {
		errno = EINVAL;
		return -1;
	}
	return d->pos = p;
}

static s64 nd_pread(struct ntfs_device *dev, void *buf, s64 count, s64 offset)
{
	struct ndev *d = dev->d_private;

	if (offset < 0 || count < 0) {
		errno = EINVAL;
		return -1;
	}
	return vol_pread(d->fd, d->off, d->size, buf, (size_t)count, (uint64_t)offset);
}

static s64 nd_read(struct ntfs_device *dev, void *buf, s64 count)
{
	struct ndev *d = dev->d_private;
	s64 r = nd_pread(dev, buf, count, d->pos);

	if (r > 0)
		d->pos += r;
	return r;
}

static s64 nd_write(struct ntfs_device *dev, const void *buf, s64 count)
{
	errno = EROFS;
	return -1;
}

static s64 nd_pwrite(struct ntfs_device *dev, const void *buf, s64 count, s64 offset)
{
	errno = EROFS;
	return -1;
}

static int nd_sync(struct ntfs_device *dev)
{
	return 0;
}

static int nd_stat(struct ntfs_device *dev, struct stat *st)
{
	struct ndev *d = dev->d_private;

	memset(st, 0, sizeof *st);
	st->st_mode = S_IFREG | 0400;
	st->st_size = (off_t)d->size;
	return 0;
}

static int nd_ioctl(struct ntfs_device *dev, unsigned long request, void *argp)
{
	errno = ENOTTY;
	return -1;
}

static struct ntfs_device_operations nd_ops = {
	.open = nd_open, .close = nd_close, .seek = nd_seek, .read = nd_read, .write = nd_write,
	.pread = nd_pread, .pwrite = nd_pwrite, .sync = nd_sync, .stat = nd_stat, .ioctl = nd_ioctl,
};

static int map_ntfs(const char *path, int fd, uint64_t off, uint64_t size, unsigned flags,
		    struct mc_extents *fe, uint64_t *used, char *err, size_t errlen)
{
	struct ndev d = {.fd = fd, .off = off, .size = size};
	struct ntfs_device *dev;
	ntfs_volume *vol;
	char w[512];
	uint64_t freeb = 0;
	uint8_t *bm = NULL;
	int rc = -1;
	enum { BM = 1 << 20 };

	where(w, sizeof w, path, off);
	ntfs_log_set_handler(ntfs_log_handler_null); /* its messages go to stderr otherwise; ours name the source */
	if ((dev = ntfs_device_alloc(w, 0, &nd_ops, &d)) == NULL)
		return fail(err, errlen, ENOMEM, "%s: %s", w, mc_strerror(-ENOMEM));
	if ((vol = ntfs_device_mount(dev, NTFS_MNT_RDONLY)) == NULL) {
		int e = errno;
		ntfs_device_free(dev);
		return fail(err, errlen, EINVAL, "%s: ntfs: cannot open: %s", w, mc_strerror(e));
	}
	uint64_t cs = vol->cluster_size, nc = (uint64_t)vol->nr_clusters;
	if (nc > size / cs) {
		rc = fail(err, errlen, ERANGE, "%s: ntfs of %llu bytes in a volume of %llu: larger than its volume", w,
		     (unsigned long long)(nc * cs), (unsigned long long)size);
		goto out;
	}
	if (!(flags & MC_FSMAP_FORCE) && (le16_to_cpu(vol->flags) & le16_to_cpu(VOLUME_IS_DIRTY))) {
		rc = fail(err, errlen, EUCLEAN,
		     "%s: ntfs is marked dirty (not shut down cleanly): its cluster map cannot be trusted; run chkdsk, or --force", w);
		goto out;
	}
	if ((bm = malloc(BM)) == NULL) {
		rc = fail(err, errlen, ENOMEM, "%s: %s", w, mc_strerror(-ENOMEM));
		goto out;
	}
	/* $Bitmap, one bit per cluster (bit 0 of byte 0 is cluster 0), read through the library. */
	uint64_t run = 0, c = 0;
	int infree = 0;
	for (uint64_t pos = 0; pos * 8 < nc; pos += BM) {
		uint64_t want = (nc + 7) / 8 - pos < BM ? (nc + 7) / 8 - pos : BM;
		s64 got = ntfs_attr_pread(vol->lcnbmp_na, (s64)pos, (s64)want, bm);
		if (got != (s64)want) {
			rc = fail(err, errlen, EIO, "%s: ntfs: cannot read its cluster bitmap: %s", w,
			     got < 0 ? mc_strerror(errno) : "short");
			goto out;
		}
		for (uint64_t i = 0; i < want * 8 && c < nc; i++, c++) {
			int isfree = !(bm[i / 8] >> (i % 8) & 1);
			if (isfree && !infree)
				run = c;
			if (!isfree && infree) {
				if (mc_extents_add(fe, off + run * cs, (c - run) * cs) < 0)
					goto nomem;
				freeb += (c - run) * cs;
			}
			infree = isfree;
		}
	}
	if (infree) {
		if (mc_extents_add(fe, off + run * cs, (c - run) * cs) < 0)
			goto nomem;
		freeb += (c - run) * cs;
	}
	*used = size - freeb;
	rc = 1;
	goto out;
nomem:
	rc = fail(err, errlen, ENOMEM, "%s: %s", w, mc_strerror(-ENOMEM));
out:
	free(bm);
	ntfs_umount(vol, FALSE); /* closes and frees dev */
	return rc;
}

/*
 * ---- FAT12/16/32 and exFAT: The Sleuth Kit's libtsk, on an image that reads the volume through fd ----
 *
 * libtsk counts FAT in sectors: the reserved area, the FATs and FAT12/16's
 * root directory come before the first cluster and are always allocated
 * (metadata); a cluster is free when its FAT entry (exFAT: its bitmap bit)
 * says so, and bad clusters count as allocated. Only the sectors libtsk
 * reports unallocated are left out: anything it does not report (the tail
 * past the last cluster, bytes past the file system) stays.
 *
 * FAT's dirty flag is not read: neither libtsk nor libblkid exposes it,
 * and it is not ours to parse. The FAT is both the allocation map and the
 * files' cluster chains, so a FAT not cleanly unmounted still maps every
 * cluster a chain reaches; what a crash can lose (a cluster written but not
 * yet chained) fsck.fat would free as well.
 */
struct timg {
	TSK_IMG_INFO img; /* first: libtsk takes a pointer to it */
	int fd;
	uint64_t off;
};

static ssize_t ti_read(TSK_IMG_INFO *img, TSK_OFF_T off, char *buf, size_t len)
{
	struct timg *t = (struct timg *)img;

	if (off < 0) {
		errno = EINVAL;
		return -1;
	}
	return vol_pread(t->fd, t->off, (uint64_t)img->size, buf, len, (uint64_t)off);
}

static void ti_close(TSK_IMG_INFO *img)
{
	free(img);
}

static void ti_stat(TSK_IMG_INFO *img, FILE *f)
{
}

struct fatwalk {
	struct mc_extents *fe;
	uint64_t off, bs, freeb;
	int nomem;
};

static TSK_WALK_RET_ENUM fat_free(const TSK_FS_BLOCK *b, void *arg)
{
	struct fatwalk *w = arg;

	if (!(b->flags & TSK_FS_BLOCK_FLAG_UNALLOC))
		return TSK_WALK_CONT;
	if (mc_extents_add(w->fe, w->off + (uint64_t)b->addr * w->bs, w->bs) < 0) {
		w->nomem = 1;
		return TSK_WALK_STOP;
	}
	w->freeb += w->bs;
	return TSK_WALK_CONT;
}

static int map_fat(const char *path, int fd, uint64_t off, uint64_t size, const char *fstype, struct mc_extents *fe,
		   uint64_t *used, char *err, size_t errlen)
{
	struct timg *t = calloc(1, sizeof *t);
	TSK_IMG_INFO *img;
	TSK_FS_INFO *fs;
	struct fatwalk w = {.fe = fe, .off = off};
	char wh[512];
	int rc = -1;

	where(wh, sizeof wh, path, off);
	if (t == NULL)
		return fail(err, errlen, ENOMEM, "%s: %s", wh, mc_strerror(-ENOMEM));
	t->fd = fd;
	t->off = off;
	t->img.tag = TSK_IMG_INFO_TAG;
	/* On failure libtsk has not taken t; once it has, tsk_img_close frees it through ti_close. */
	if ((img = tsk_img_open_external(t, (TSK_OFF_T)size, 0, ti_read, ti_close, ti_stat)) == NULL) {
		free(t);
		return fail(err, errlen, EINVAL, "%s: %s: cannot open: %s", wh, fstype, tsk_error_get());
	}
	fs = tsk_fs_open_img(img, 0, strcmp(fstype, "exfat") == 0 ? TSK_FS_TYPE_EXFAT : TSK_FS_TYPE_FAT_DETECT);
	if (fs == NULL) {
		rc = fail(err, errlen, EINVAL, "%s: %s: cannot open: %s", wh, fstype, tsk_error_get());
		goto out_img;
	}
	w.bs = fs->block_size;
	if (w.bs == 0 || (uint64_t)fs->block_count > size / w.bs) {
		rc = fail(err, errlen, ERANGE, "%s: %s of %llu bytes in a volume of %llu: larger than its volume", wh, fstype,
		     (unsigned long long)((uint64_t)fs->block_count * w.bs), (unsigned long long)size);
		goto out;
	}
	if (fs->block_count && tsk_fs_block_walk(fs, fs->first_block, fs->last_block,
						 TSK_FS_BLOCK_WALK_FLAG_UNALLOC | TSK_FS_BLOCK_WALK_FLAG_META |
							 TSK_FS_BLOCK_WALK_FLAG_CONT | TSK_FS_BLOCK_WALK_FLAG_AONLY,
						 fat_free, &w) != 0) {
		rc = fail(err, errlen, EIO, "%s: %s: cannot read its allocation map: %s", wh, fstype, tsk_error_get());
		goto out;
	}
	if (w.nomem) {
		rc = fail(err, errlen, ENOMEM, "%s: %s", wh, mc_strerror(-ENOMEM));
		goto out;
	}
	*used = size - w.freeb;
	rc = 1;
out:
	tsk_fs_close(fs);
out_img:
	tsk_img_close(img);
	return rc;
}

#define SWAP_KEEP (64u * 1024)

int mc_fsmap(const char *path, int fd, uint64_t off, uint64_t size, unsigned flags, char fstype[MC_VOL_FSTYPE],
	     struct mc_extents *free_ext, uint64_t *used, char *err, size_t errlen)
{
	*used = size;
	probe_type(fd, off, size, fstype);
	if (strcmp(fstype, "ext2") == 0 || strcmp(fstype, "ext3") == 0 || strcmp(fstype, "ext4") == 0)
		return map_ext(path, off, size, flags, fstype, free_ext, used, err, errlen);
	if (strcmp(fstype, "ntfs") == 0)
		return map_ntfs(path, fd, off, size, flags, free_ext, used, err, errlen);
	if (strcmp(fstype, "vfat") == 0 || strcmp(fstype, "exfat") == 0)
		return map_fat(path, fd, off, size, fstype, free_ext, used, err, errlen);
	if (strcmp(fstype, "swap") == 0 && size > SWAP_KEEP) {
		/*
		 * Plain swap (a hibernation image is "swsuspend" and kept whole):
		 * only its header page, with label and UUID, matters; the kernel
		 * never reads a page it has not written since swapon. The first
		 * 64 KiB cover the header page of any page size.
		 */
		if (mc_extents_add(free_ext, off + SWAP_KEEP, size - SWAP_KEEP) < 0)
			return fail(err, errlen, ENOMEM, "%s: %s", path, mc_strerror(-ENOMEM));
		*used = SWAP_KEEP;
		return 1;
	}
	return 0;
}
