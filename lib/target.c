/* Writing a seekable image onto a block device or regular file in place: refusals first, spans at their offsets. */
#include "target.h"
#include "exitcode.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "be.h"
#include "crypto.h"
#include "image.h"
#include "workq.h"

/*
 * The writers (mc_target_start): a ring of chunks (lib/workq.h), each slot
 * with its own copy of the stored bytes, and threads that each decode one
 * into a span buffer of their own and write it. Several writes in flight is
 * what keeps a disk busy (a lone synchronous O_DIRECT write of a span waits
 * for the device, then the next span waits for the decoder); a run of holes
 * queued one after another is one zeroing of the whole range.
 */
struct job {
	uint32_t i, len;      /* a chunk and its stored length; len 0: zeros over [zoff, zoff + zlen) */
	uint64_t zoff, zlen;
	uint8_t *buf;         /* the slot's copy of the stored bytes (chunk_size, page-aligned, made at its first use) */
	int verified;         /* the caller checked the stored digest (mc_target_queue_verified) */
};

struct mc_target {
	int fd;
	char *path;
	const struct mc_manifest *m;
	unsigned flags;
	int blk;
	int direct;           /* writes with O_DIRECT (a block device): no second copy in the page cache */
	int bfd;              /* the same device without O_DIRECT, for unaligned raw access (opened when needed) */
	pthread_mutex_t mu;   /* guards opening bfd */
	int zeroed;           /* holes need no writing */
	uint64_t size;
	dev_t dev, rdev;
	ino_t ino;
	uint64_t btime;       /* a file's birth time (ns), where the file system keeps one: 0 otherwise */
	struct mc_image_dec *dec;
	uint8_t *buf;         /* one span */
	struct mc_workq *wq;  /* the writers: NULL until mc_target_start */
	struct job *jobs;     /* its slots */
	unsigned depth;
	uint64_t hoff, hlen;  /* holes queued and not yet handed to the writers (hlen 0: none) */
	pthread_mutex_t qmu;  /* queueing: a sink's receive thread queues while its state-saving thread drains */
	sem_t dsem;           /* decoding slots (mc_target_start_writers): decoders at once, however many write */
	int dlimit;
};

/* Says "PATH: reason" in err; returns -e (lib/exitcode.h). */
static int fail(char *err, size_t errlen, int e, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static int fail(char *err, size_t errlen, int e, const char *path, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(err, errlen, "%s: ", path);

	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < errlen)
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -e;
}

/* A failed call's errno as the code, "PATH: WHAT" and its reason in err. */
static int sys_fail(char *err, size_t errlen, const char *path, const char *what)
{
	/* Callers come straight from the failed system call; a zero errno still must not read as success. */
	int e = errno ? errno : EIO;

	return fail(err, errlen, e, path, "%s%s", what, mc_strerror(-e));
}

static const char *kind_of(mode_t mode)
{
	return S_ISDIR(mode) ? "a directory" : S_ISCHR(mode) ? "a character device" : S_ISFIFO(mode) ? "a FIFO"
	     : S_ISSOCK(mode) ? "a socket" : "not a block device or regular file";
}

/* Opens (or creates) the file or device; fills t's kind, size and identity. */
static int open_target(struct mc_target *t, const char *path, char *err, size_t errlen)
{
	int ro = (t->flags & MC_TARGET_READONLY) != 0;
	struct stat st, st2;

	if (stat(path, &st) < 0) {
		if (errno != ENOENT || ro)
			return sys_fail(err, errlen, path, "");
		/* A new file: created, then sized below once nothing else can refuse it. */
		if ((t->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666)) < 0)
			return sys_fail(err, errlen, path, "");
		t->zeroed = 1;
		if (fstat(t->fd, &st) < 0)
			return sys_fail(err, errlen, path, "");
	} else {
		if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode))
			return fail(err, errlen, EINVAL, path, "is %s; a target is a block device or a regular file",
				    kind_of(st.st_mode));
		/* O_EXCL on a block device: the kernel refuses it while the device or a partition of it is mounted. */
		int fl = (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC | (S_ISBLK(st.st_mode) && !ro ? O_EXCL : 0);
		if ((t->fd = open(path, fl)) < 0) {
			if (errno == EBUSY)
				return fail(err, errlen, EBUSY, path,
					    "in use: mounted, a partition of it mounted, or held by another program");
			return sys_fail(err, errlen, path, "");
		}
		/* The same thing that was looked at (no swap between stat and open). */
		if (fstat(t->fd, &st2) < 0)
			return sys_fail(err, errlen, path, "");
		if (st2.st_dev != st.st_dev || st2.st_ino != st.st_ino || (st2.st_mode & S_IFMT) != (st.st_mode & S_IFMT))
			return fail(err, errlen, EAGAIN, path, "changed while it was opened");
	}
	t->blk = S_ISBLK(st.st_mode);
	t->dev = st.st_dev;
	t->ino = st.st_ino;
	t->rdev = st.st_rdev;
	t->size = (uint64_t)st.st_size;
	/* A file removed and made again may get the same inode: its birth time tells them apart (identity). */
	struct statx sx;
	if (!t->blk && statx(t->fd, "", AT_EMPTY_PATH, STATX_BTIME, &sx) == 0 && (sx.stx_mask & STATX_BTIME))
		t->btime = (uint64_t)sx.stx_btime.tv_sec * 1000000000u + sx.stx_btime.tv_nsec;
	if (t->blk && ioctl(t->fd, BLKGETSIZE64, &t->size) < 0)
		return sys_fail(err, errlen, path, "cannot tell its size: ");
	/*
	 * A disk is written with O_DIRECT where it takes it: spans start at
	 * multiples of the chunk size and come from page-aligned buffers, and
	 * the page cache would only hold a copy nobody reads (see target_write).
	 */
	if (t->blk && !ro) {
		int fl = fcntl(t->fd, F_GETFL);
		t->direct = fl >= 0 && fcntl(t->fd, F_SETFL, fl | O_DIRECT) == 0;
	}
	return 0;
}

int mc_target_open(const char *path, const struct mc_manifest *m, unsigned flags, struct mc_target **out,
		   char *err, size_t errlen)
{
	struct mc_target *t = calloc(1, sizeof *t);
	char sz[2][32];
	int created = 0, rc;

	*out = NULL;
	if (t == NULL)
		return fail(err, errlen, ENOMEM, path, "%s", mc_strerror(-ENOMEM));
	t->fd = t->bfd = -1;
	t->m = m;
	pthread_mutex_init(&t->mu, NULL);
	pthread_mutex_init(&t->qmu, NULL);
	t->flags = flags;
	if (m->format != MC_PKG_VERSION_IMAGE) {
		rc = fail(err, errlen, EINVAL, path, "the package is a %s stream (format %u), not a seekable image: "
			"only a package made with create --image can be written onto a target",
			mc_kind_name(m->kind), m->format);
		goto fail;
	}
	/* Encrypted without its key: nothing can be written or checked, so the target is not even opened. */
	if (m->is_encrypted && !m->unlocked) {
		rc = fail(err, errlen, EACCES, path, "the package is encrypted: writing or checking it needs --decrypt KEY");
		goto fail;
	}
	if ((rc = open_target(t, path, err, errlen)) < 0)
		goto fail;
	created = t->zeroed && !t->blk;
	if (created ? 0 : t->size < m->image_size) {
		snprintf(sz[0], sizeof sz[0], "%llu", (unsigned long long)t->size);
		snprintf(sz[1], sizeof sz[1], "%llu", (unsigned long long)m->image_size);
		rc = fail(err, errlen, EINVAL, path, "%s bytes, smaller than the image (%s bytes)", sz[0], sz[1]);
		goto fail;
	}
	if (created) {
		if (ftruncate(t->fd, (off_t)m->image_size) < 0) {
			rc = sys_fail(err, errlen, path, "");
			goto fail;
		}
		t->size = m->image_size;
	}
	if (flags & MC_TARGET_ZEROED)
		t->zeroed = 1;
	t->path = strdup(path);
	t->dec = mc_image_dec_new();
	t->buf = mc_pkg_buf(m->chunk_size);
	if (t->path == NULL || t->dec == NULL || t->buf == NULL) {
		rc = fail(err, errlen, ENOMEM, path, "%s", mc_strerror(-ENOMEM));
		goto fail;
	}
	*out = t;
	return 0;
fail:
	if (created)
		unlink(path);
	mc_target_close(t);
	return rc;
}

/* The same device opened without O_DIRECT (once, under the lock: writers may be threads); the fd or -errno. */
static int buffered_fd(struct mc_target *t)
{
	int fd;

	pthread_mutex_lock(&t->mu);
	if (t->bfd < 0) {
		struct stat a, b;
		fd = open(t->path, ((t->flags & MC_TARGET_READONLY) ? O_RDONLY : O_RDWR) | O_CLOEXEC);
		/* The same device as the first open, not whatever the path names now. */
		if (fd < 0) {
			fd = -(errno ? errno : EIO); /* never 0: that would read as a descriptor */
		} else if (fstat(fd, &a) < 0 || fstat(t->fd, &b) < 0 || a.st_rdev != b.st_rdev) {
			close(fd);
			fd = -ENODEV;
		}
		if (fd >= 0)
			t->bfd = fd;
	} else {
		fd = t->bfd;
	}
	pthread_mutex_unlock(&t->mu);
	return fd;
}

/* The fd for n bytes at off from p: the O_DIRECT one when all is aligned, else the buffered one (or -errno). */
static int raw_fd(struct mc_target *t, const void *p, size_t n, uint64_t off)
{
	if (!t->direct || ((uintptr_t)p % MC_PKG_ALIGN == 0 && n % MC_PKG_ALIGN == 0 && off % MC_PKG_ALIGN == 0))
		return t->fd;
	return buffered_fd(t);
}

/*
 * Writes bytes of the image. With O_DIRECT they must be aligned as the
 * device wants: what is not (a caller's buffer, a short last span) goes
 * through the buffered descriptor, which the kernel keeps coherent with
 * direct I/O; so does a write the device refuses as unaligned (EINVAL).
 * Thread-safe: pwrite, and raw_fd's lock. Returns 0 or -errno.
 */
static int target_write(struct mc_target *t, const uint8_t *p, size_t n, uint64_t off)
{
	int fd = raw_fd(t, p, n, off), rc;

	if (fd < 0)
		return fd;
	if ((rc = mc_pwrite_all(fd, p, n, off)) == 0)
		return 0;
	if (fd != t->fd || !t->direct || rc != -EINVAL || (fd = buffered_fd(t)) < 0)
		return fd < 0 ? fd : rc;
	return mc_pwrite_all(fd, p, n, off);
}

/*
 * mc_target_put_chunk with the caller's decoder and span buffer (thread-safe
 * with each thread its own). verified: the caller has checked the stored
 * bytes against their digest in t->m, so that digest is not computed again;
 * the span digest of what is written always is (or is known equal: below).
 */
static int put_chunk(struct mc_target *t, struct mc_image_dec *dec, uint8_t *buf, uint32_t i, const uint8_t *stored,
		     uint32_t len, int verified, char *err, size_t errlen)
{
	const struct mc_manifest *m = t->m;
	unsigned f = mc_manifest_chunk_flags(m, i);
	uint32_t span = mc_manifest_span_len(m, i);
	const uint8_t *p = buf;
	char reason[256];
	int r;

	if (i >= m->nchunks)
		return fail(err, errlen, EINVAL, t->path, "chunk %u: the image has %u", i, m->nchunks);
	if (t->flags & MC_TARGET_READONLY)
		return fail(err, errlen, EBADF, t->path, "opened to check only");
	if (f & MC_CHUNK_HOLE)
		return mc_target_put_hole(t, i, err, errlen);
	if ((f & MC_CHUNK_RAW) && !m->is_encrypted) {
		/* The stored bytes are the span: written as they are once both digests hold. */
		const uint8_t *want = m->digests + (size_t)i * MC_DIGEST_LEN, *sd = mc_manifest_span_digest(m, i);
		uint8_t d[MC_DIGEST_LEN];
		if (len != span)
			return fail(err, errlen, EBADMSG, t->path, "chunk %u: %u bytes, the span has %u", i, len, span);
		if (!verified) {
			mc_chunk_digest(m, stored, len, d); /* the stored digest: SHA-256 in a signed package */
			if (memcmp(d, want, MC_DIGEST_LEN) != 0)
				return fail(err, errlen, EBADMSG, t->path, "chunk %u: bytes do not match their digest", i);
		}
		/* Stored digest XXH3 too and equal to the span's: the bytes just matched it, no second pass. */
		if (m->digest_alg != MC_HASH_XXH3 || memcmp(want, sd, MC_DIGEST_LEN) != 0) {
			mc_digest(stored, len, d);
			if (memcmp(d, sd, MC_DIGEST_LEN) != 0)
				return fail(err, errlen, EBADMSG, t->path, "chunk %u: bytes do not match their span digest", i);
		}
		p = stored;
	} else {
		if (t->dlimit)
			while (sem_wait(&t->dsem) < 0 && errno == EINTR)
				;
		r = (verified ? mc_image_decode_verified : mc_image_decode)(dec, m, i, stored, len, buf, reason, sizeof reason);
		if (t->dlimit)
			sem_post(&t->dsem);
		if (r < 0)
			return fail(err, errlen, -r, t->path, "%s", reason);
	}
	if ((r = target_write(t, p, span, mc_manifest_span_off(m, i))) < 0)
		return fail(err, errlen, -r, t->path, "span %u: %s", i, mc_strerror(r));
	return 0;
}

int mc_target_put_chunk(struct mc_target *t, uint32_t i, const uint8_t *stored, uint32_t len,
			char *err, size_t errlen)
{
	return put_chunk(t, t->dec, t->buf, i, stored, len, 0, err, errlen);
}

int mc_target_put_verified(struct mc_target *t, uint32_t i, const uint8_t *stored, uint32_t len,
			   char *err, size_t errlen)
{
	return put_chunk(t, t->dec, t->buf, i, stored, len, 1, err, errlen);
}

int mc_target_put_decoded(struct mc_target *t, uint32_t i, const uint8_t *span, char *err, size_t errlen)
{
	const struct mc_manifest *m = t->m;
	uint8_t d[MC_DIGEST_LEN];
	uint32_t n = mc_manifest_span_len(m, i);
	int r;

	if (i >= m->nchunks)
		return fail(err, errlen, EINVAL, t->path, "chunk %u: the image has %u", i, m->nchunks);
	if (t->flags & MC_TARGET_READONLY)
		return fail(err, errlen, EBADF, t->path, "opened to check only");
	if (mc_manifest_chunk_flags(m, i) & MC_CHUNK_HOLE)
		return mc_target_put_hole(t, i, err, errlen);
	mc_digest(span, n, d);
	if (memcmp(d, mc_manifest_span_digest(m, i), MC_DIGEST_LEN) != 0)
		return fail(err, errlen, EBADMSG, t->path, "span %u: bytes do not match its digest", i);
	if ((r = target_write(t, span, n, mc_manifest_span_off(m, i))) < 0)
		return fail(err, errlen, -r, t->path, "span %u: %s", i, mc_strerror(r));
	return 0;
}

/*
 * Zeros over [off, off + len) of the image: a hole punched in a regular
 * file, BLKZEROOUT on a block device, zeros written where neither can.
 * Returns 0 or -errno.
 */
static int zero_range(struct mc_target *t, uint64_t off, uint64_t len)
{
	if (t->blk && off % 512 == 0 && len % 512 == 0) {
		uint64_t r[2] = {off, len};
		if (ioctl(t->fd, BLKZEROOUT, r) == 0)
			return 0;
	} else if (!t->blk &&
		   fallocate(t->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0) {
		return 0;
	}
	/* The device or file system cannot: zeros, written (from a shared page-aligned block: thread-safe). */
	static const uint8_t zeros[1 << 16] __attribute__((aligned(MC_PKG_ALIGN)));
	for (uint64_t done = 0; done < len;) {
		size_t n = len - done < sizeof zeros ? (size_t)(len - done) : sizeof zeros;
		int rc = target_write(t, zeros, n, off + done);
		if (rc < 0)
			return rc;
		done += n;
	}
	return 0;
}

/* 1 when hole i needs writing (not a don't-care one, not onto a target that reads as zeros); -1 when refused. */
static int hole_due(struct mc_target *t, uint32_t i, char *err, size_t errlen)
{
	const struct mc_manifest *m = t->m;

	if (i >= m->nchunks)
		return fail(err, errlen, EINVAL, t->path, "chunk %u: the image has %u", i, m->nchunks);
	if (t->flags & MC_TARGET_READONLY)
		return fail(err, errlen, EBADF, t->path, "opened to check only");
	/* Unused by the file system (--used-only): nothing reads it, so nothing is written there either. */
	return !t->zeroed && !(mc_manifest_chunk_flags(m, i) & MC_CHUNK_DONTCARE);
}

int mc_target_put_hole(struct mc_target *t, uint32_t i, char *err, size_t errlen)
{
	int rc = hole_due(t, i, err, errlen);

	if (rc <= 0)
		return rc;
	if ((rc = zero_range(t, mc_manifest_span_off(t->m, i), mc_manifest_span_len(t->m, i))) < 0)
		return fail(err, errlen, -rc, t->path, "span %u: %s", i, mc_strerror(rc));
	return 0;
}

/* ---- the writers (mc_target_start) ---- */

/* A writer's own decoder and span buffer. */
struct wts {
	struct mc_image_dec *dec;
	uint8_t *span;
};

static void *writer_start(void *arg)
{
	struct mc_target *t = arg;
	struct wts *w = calloc(1, sizeof *w);

	if (w) {
		w->dec = mc_image_dec_new();
		w->span = mc_pkg_buf(t->m->chunk_size);
	}
	return w;
}

static void writer_stop(void *arg, void *ts)
{
	struct wts *w = ts;

	if (w) {
		mc_image_dec_free(w->dec);
		free(w->span);
		free(w);
	}
}

/* One job on a writer: a chunk decoded and written, or a run of holes zeroed. */
static int writer_work(void *arg, void *ts, unsigned slot, char *err, size_t errlen)
{
	struct mc_target *t = arg;
	struct wts *w = ts;
	const struct job *j = &t->jobs[slot];

	if (j->len == 0) {
		int rc = zero_range(t, j->zoff, j->zlen);
		if (rc == 0)
			return 0;
		return fail(err, errlen, -rc, t->path, "zeroing bytes %llu-%llu (holes): %s", (unsigned long long)j->zoff,
			    (unsigned long long)(j->zoff + j->zlen - 1), mc_strerror(rc));
	}
	if (w == NULL || w->dec == NULL || w->span == NULL)
		return fail(err, errlen, ENOMEM, t->path, "%s", mc_strerror(-ENOMEM));
	return put_chunk(t, w->dec, w->span, j->i, j->buf, j->len, j->verified, err, errlen);
}

static const struct mc_workq_ops writer_ops = {writer_start, writer_stop, writer_work, NULL};

/* Stops the writers once what was queued is written; frees the slots. */
static void writers_stop(struct mc_target *t)
{
	mc_workq_free(t->wq);
	t->wq = NULL;
	for (unsigned k = 0; t->jobs && k < t->depth; k++)
		free(t->jobs[k].buf);
	free(t->jobs);
	t->jobs = NULL;
}

int mc_target_start(struct mc_target *t, unsigned threads, char *err, size_t errlen)
{
	return mc_target_start_writers(t, threads, 0, err, errlen);
}

int mc_target_start_writers(struct mc_target *t, unsigned threads, unsigned decoders, char *err, size_t errlen)
{
	if (t->wq)
		return 0;
	if (threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		threads = n < 4 ? 4 : n > MC_TARGET_MAX_WRITERS ? MC_TARGET_MAX_WRITERS : (unsigned)n;
	}
	if (threads > MC_TARGET_MAX_WRITERS)
		threads = MC_TARGET_MAX_WRITERS;
	t->depth = threads < 2 ? 4 : 2 * threads;
	if (decoders && decoders < threads) {
		if (sem_init(&t->dsem, 0, decoders) < 0)
			return sys_fail(err, errlen, t->path, "");
		t->dlimit = 1;
	}
	if ((t->jobs = calloc(t->depth, sizeof *t->jobs)) == NULL)
		return fail(err, errlen, ENOMEM, t->path, "%s", mc_strerror(-ENOMEM));
	int e = mc_workq_new(&t->wq, &writer_ops, t, threads, t->depth);
	if (e < 0) {
		writers_stop(t);
		return fail(err, errlen, -e, t->path, "cannot start a writer thread: %s", mc_strerror(e));
	}
	return 0;
}

/* Hands a job to the writers (the stored bytes copied into its slot). */
static int submit(struct mc_target *t, const struct job *j, const uint8_t *stored, char *err, size_t errlen)
{
	unsigned k;
	int rc;

	if ((rc = mc_workq_get(t->wq, &k, err, errlen)) < 0)
		return rc;
	struct job *d = &t->jobs[k];
	/* Page-aligned, as O_DIRECT wants: a stored-raw span is written straight from it (put_chunk). */
	if (j->len && d->buf == NULL && (d->buf = mc_pkg_buf(t->m->chunk_size)) == NULL)
		return fail(err, errlen, ENOMEM, t->path, "%s", mc_strerror(-ENOMEM));
	uint8_t *buf = d->buf;
	*d = *j;
	d->buf = buf;
	if (j->len)
		memcpy(buf, stored, j->len);
	return mc_workq_put(t->wq, err, errlen);
}

/* The holes queued last, as one zeroing. */
static int flush_holes(struct mc_target *t, char *err, size_t errlen)
{
	struct job j = {.zoff = t->hoff, .zlen = t->hlen};

	if (t->hlen == 0)
		return 0;
	t->hlen = 0;
	return submit(t, &j, NULL, err, errlen);
}

static int queue(struct mc_target *t, uint32_t i, const uint8_t *stored, uint32_t len, int verified, char *err,
		 size_t errlen)
{
	const struct mc_manifest *m = t->m;
	int rc;

	if (t->wq == NULL)
		return len ? put_chunk(t, t->dec, t->buf, i, stored, len, verified, err, errlen)
			   : mc_target_put_hole(t, i, err, errlen);
	if (len == 0) {
		if ((rc = hole_due(t, i, err, errlen)) <= 0)
			return rc;
		uint64_t off = mc_manifest_span_off(m, i), n = mc_manifest_span_len(m, i);
		rc = 0;
		pthread_mutex_lock(&t->qmu);
		/* A hole right after the last one queued: one zeroing for both, handed over with the next chunk or drain. */
		if (t->hlen && t->hoff + t->hlen == off) {
			t->hlen += n;
		} else if ((rc = flush_holes(t, err, errlen)) == 0) {
			t->hoff = off;
			t->hlen = n;
		}
		pthread_mutex_unlock(&t->qmu);
		return rc;
	}
	if (i >= m->nchunks)
		return fail(err, errlen, EINVAL, t->path, "chunk %u: the image has %u", i, m->nchunks);
	if (len > m->chunk_size)
		return fail(err, errlen, EBADMSG, t->path, "chunk %u: %u stored bytes, more than a span", i, len);
	struct job j = {.i = i, .len = len, .verified = verified};
	pthread_mutex_lock(&t->qmu);
	if ((rc = flush_holes(t, err, errlen)) == 0)
		rc = submit(t, &j, stored, err, errlen);
	pthread_mutex_unlock(&t->qmu);
	return rc;
}

int mc_target_queue(struct mc_target *t, uint32_t i, const uint8_t *stored, uint32_t len, char *err, size_t errlen)
{
	return queue(t, i, stored, len, 0, err, errlen);
}

int mc_target_queue_verified(struct mc_target *t, uint32_t i, const uint8_t *stored, uint32_t len, char *err,
			     size_t errlen)
{
	return queue(t, i, stored, len, 1, err, errlen);
}

int mc_target_drain(struct mc_target *t, char *err, size_t errlen)
{
	int rc;

	if (t->wq == NULL)
		return 0;
	pthread_mutex_lock(&t->qmu);
	rc = flush_holes(t, err, errlen);
	pthread_mutex_unlock(&t->qmu);
	/* Everything queued before this call is written when it returns (a state saved after it may count it). */
	return rc < 0 ? rc : mc_workq_wait(t->wq, err, errlen);
}

int mc_target_sync(struct mc_target *t, char *err, size_t errlen)
{
	int rc = mc_target_drain(t, err, errlen);

	if (rc < 0)
		return rc;
	if (fsync(t->fd) < 0)
		return sys_fail(err, errlen, t->path, "flushing: ");
	return 0;
}

/* Reads n bytes at off, all of them; 0 or -errno (-EIO past the end). */
static int pread_all(int fd, uint8_t *p, size_t n, uint64_t off)
{
	while (n > 0) {
		ssize_t r = pread(fd, p, n, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO;
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

int mc_target_span_ok(struct mc_target *t, uint32_t i, char *err, size_t errlen)
{
	const struct mc_manifest *m = t->m;
	uint32_t span = mc_manifest_span_len(m, i);
	uint8_t d[MC_DIGEST_LEN];
	int rc;

	if (i >= m->nchunks)
		return fail(err, errlen, EINVAL, t->path, "chunk %u: the image has %u", i, m->nchunks);
	if (mc_manifest_chunk_flags(m, i) & MC_CHUNK_DONTCARE)
		return 1; /* unused by the file system: whatever is there will do */
	if ((rc = mc_target_pread(t, t->buf, span, mc_manifest_span_off(m, i))) < 0)
		return fail(err, errlen, -rc, t->path, "span %u: %s", i, mc_strerror(rc));
	mc_digest(t->buf, span, d);
	return memcmp(d, mc_manifest_span_digest(m, i), MC_DIGEST_LEN) == 0;
}

long mc_target_check(struct mc_target *t, void (*bad)(void *arg, uint32_t i),
		     void (*progress)(void *arg, uint64_t done), void *arg, char *err, size_t errlen)
{
	const struct mc_manifest *m = t->m;
	long nbad = 0;

	/* What was written is flushed and clean: drop it from the cache so the check reads the medium. */
	posix_fadvise(t->fd, 0, (off_t)m->image_size, POSIX_FADV_DONTNEED);
	posix_fadvise(t->fd, 0, (off_t)m->image_size, POSIX_FADV_SEQUENTIAL);
	for (uint32_t i = 0; i < m->nchunks; i++) {
		int ok = 1;
		if (!(mc_manifest_chunk_flags(m, i) & MC_CHUNK_DONTCARE) && (ok = mc_target_span_ok(t, i, err, errlen)) < 0)
			return ok;
		if (!ok) {
			nbad++;
			if (bad)
				bad(arg, i);
		}
		if (progress)
			progress(arg, mc_manifest_span_off(m, i) + mc_manifest_span_len(m, i));
	}
	return nbad;
}

int mc_target_pwrite(struct mc_target *t, const void *p, size_t n, uint64_t off)
{
	int fd;

	if (t->flags & MC_TARGET_READONLY)
		return -EBADF;
	if (off > t->size || n > t->size - off)
		return -ENOSPC;
	if ((fd = raw_fd(t, p, n, off)) < 0)
		return fd;
	return mc_pwrite_all(fd, p, n, off);
}

int mc_target_pread(struct mc_target *t, void *p, size_t n, uint64_t off)
{
	int fd = raw_fd(t, p, n, off);

	return fd < 0 ? fd : pread_all(fd, p, n, off);
}

void mc_target_close(struct mc_target *t)
{
	if (t == NULL)
		return;
	writers_stop(t);
	if (t->fd >= 0)
		close(t->fd);
	if (t->bfd >= 0)
		close(t->bfd);
	mc_image_dec_free(t->dec);
	free(t->buf);
	free(t->path);
	pthread_mutex_destroy(&t->mu);
	pthread_mutex_destroy(&t->qmu);
	if (t->dlimit)
		sem_destroy(&t->dsem);
	free(t);
}

int mc_target_fd(const struct mc_target *t)
{
	return t->fd;
}

uint64_t mc_target_size(const struct mc_target *t)
{
	return t->size;
}

int mc_target_is_blockdev(const struct mc_target *t)
{
	return t->blk;
}

void mc_target_identity(const struct mc_target *t, uint8_t id[MC_DIGEST_LEN])
{
	uint8_t b[1 + 8 + 8 + 8 + 8];

	b[0] = (uint8_t)t->blk;
	mc_put64(b + 1, t->blk ? (uint64_t)t->rdev : (uint64_t)t->dev);
	mc_put64(b + 9, t->blk ? 0 : (uint64_t)t->ino);
	mc_put64(b + 17, t->size);
	mc_put64(b + 25, t->btime);
	mc_digest(b, sizeof b, id);
}
