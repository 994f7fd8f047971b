/* Building packages: a sorted, reproducible pax stream (or a raw image) hashed per chunk while written. */
#include "pkg.h"
#include "exitcode.h"
#include "image.h"
#include "crypto.h"
#include "workq.h"

#include <openssl/crypto.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>
#if defined(__x86_64__) || defined(__i386__)
/* The library's runtime dispatch to its AVX2/AVX-512 code, where the CPU has it. */
#include <xxh_x86dispatch.h>
#endif

#define IOBUF (1u << 20)

/* One input entry: its name in the package and where it is on disk. */
struct ent {
	char *name;
	char *src;
	struct stat st;
	int follow; /* a PATH given on the command line: a symlink to it is followed */
};

struct entlist {
	struct ent *v;
	size_t n, cap;
};

/*
 * The payload goes to the temporary file with O_DIRECT where the file system
 * takes it: through a page-aligned buffer of SINK_DIRECT bytes, written
 * whole at aligned offsets (the last one padded, the file cut back after).
 * The copy then never passes through the page cache. Measured on this VM
 * (ext4, 2 GiB from the page cache): buffered writes took 0.7-1.0 s when the
 * kernel had recently freed memory to reuse and 2.6-4.7 s when it had to
 * take fresh pages (sys time in copy_folio_from_iter_atomic), the same for
 * 64 KiB, 256 KiB and 1 MiB writes; dd oflag=direct bs=16M with fsync took
 * 0.96 s either way. Where O_DIRECT is refused, the payload is written
 * buffered in pieces of SINK_PIECE bytes and every SINK_FLUSH bytes handed
 * to writeback (sync_file_range), so the disk works while we read instead of
 * all at the final fsync. Every byte is hashed (chunk and whole payload)
 * once, as it comes in. Direct writes are made by a writer thread from two
 * buffers, so the disk writes one while we read and hash into the other.
 */
#define SINK_DIRECT (8u << 20)
#define SINK_ALIGN 4096u
#define SINK_PIECE (256u * 1024)
#define SINK_FLUSH (8u << 20)

/* Where the payload goes: the temporary file, with digests computed on the way. */
struct sink {
	int fd;
	uint64_t base;    /* file offset of the payload's first byte (a multiple of SINK_ALIGN) */
	uint64_t total;   /* payload bytes taken (and hashed) */
	uint64_t written; /* payload bytes written to fd */
	uint64_t flushed; /* bytes handed to writeback (buffered writes only) */
	int direct;       /* fd has O_DIRECT: writes go through dbuf */
	uint8_t *dbufs[2]; /* SINK_DIRECT bytes each, page-aligned */
	uint8_t *dbuf;    /* the one being filled */
	size_t dlen;      /* bytes waiting in dbuf */
	/* The writer thread (direct writes only): one write in flight at a time. */
	int wthread;
	pthread_t wth;
	pthread_mutex_t wmu;
	pthread_cond_t wcv;
	const uint8_t *wp;
	size_t wn;
	uint64_t woff;
	int wbusy, wquit, werr, wbuffered;
	uint32_t chunk_size, in_chunk;
	XXH3_state_t *whole;
	struct mc_hash *chunk; /* the manifest's chunk digest (SHA-256 when signed) */
	uint8_t *digests;
	size_t ndig, capdig;
	int err; /* errno of a failed write */
	struct cpipe *cp; /* signed or encrypted: chunks sealed and digested by workers (below) */
	uint8_t *tags;    /* encrypted: the chunks' tags, as digests */
	size_t captag;
};

static int sink_put(struct sink *s, const uint8_t *p, size_t n);
static void sink_buffered(struct sink *s);

/*
 * Signed or encrypted format-1 packages: SHA-256 (1.7 GB/s) and AES-GCM
 * cost too much to do inline as XXH3 is (22 GB/s): --sign alone made create
 * 1.4-1.6x slower. So the payload is cut into buffers of whole chunks, the
 * slots of a lib/workq ring; the thread that makes the stream fills them;
 * workers seal (encrypt) and digest the chunks of a buffer each, several
 * buffers at once; the ring's emitter takes them in order, feeds the
 * whole-payload digest (XXH3, over the stored bytes) and writes them
 * (O_DIRECT where the file system takes it).
 */
#define CP_MEM (32u << 20) /* all the buffers: 4 of 8 MiB, more and smaller with more threads */

struct cbuf {
	uint8_t *p;
	size_t len;          /* bytes in it */
	uint32_t first;      /* the chunk it starts with */
	unsigned nch;        /* its chunks */
	uint8_t *dig, *tag;  /* per chunk */
};

struct cpipe {
	struct sink *s;
	const struct mc_manifest *m;
	size_t cap;          /* bytes per buffer: per chunks */
	unsigned per, nb;
	struct cbuf *b;
	struct mc_workq *q;
	uint64_t nfill;      /* buffers handed over */
	struct cbuf *cur;    /* the one being filled, or NULL */
};

/* Seals and digests the chunks of a buffer (a worker, with its own AEAD context). */
static int cp_work(void *arg, void *ts, unsigned slot, char *err, size_t errlen)
{
	struct cpipe *c = arg;
	struct cbuf *b = &c->b[slot];

	for (unsigned k = 0; k < b->nch; k++) {
		size_t off = (size_t)k * c->m->chunk_size, n = b->len - off < c->m->chunk_size ? b->len - off : c->m->chunk_size;
		uint8_t *p = b->p + off;
		if (c->m->is_encrypted &&
		    (ts == NULL || mc_chunk_seal(c->m, ts, b->first + k, p, n, b->tag + (size_t)k * MC_AEAD_TAG_LEN) < 0)) {
			snprintf(err, errlen, "chunk %u: cannot encrypt", b->first + k);
			return -EIO;
		}
		mc_chunk_digest(c->m, p, n, b->dig + (size_t)k * MC_DIGEST_LEN);
	}
	return 0;
}

static void *cp_start(void *arg)
{
	return mc_manifest_aead(((struct cpipe *)arg)->m);
}

static void cp_stop_ts(void *arg, void *ts)
{
	mc_aead_free(ts);
}

/* Appends n per-chunk entries of w bytes to a growing table. */
static int table_add(uint8_t **t, size_t *cap, size_t have, const uint8_t *p, size_t n, size_t w)
{
	if (have + n > *cap) {
		size_t nc = *cap ? *cap : 1024;
		while (nc < have + n)
			nc *= 2;
		uint8_t *x = realloc(*t, nc * w);
		if (x == NULL)
			return -1;
		*t = x;
		*cap = nc;
	}
	memcpy(*t + have * w, p, n * w);
	return 0;
}

/* Writes a finished buffer, in order (the emitter): whole digest, tables, then the bytes at their place. */
static int cp_write(void *arg, unsigned slot, char *err, size_t errlen)
{
	struct cpipe *c = arg;
	struct cbuf *b = &c->b[slot];
	struct sink *s = c->s;
	size_t n = b->len, pad = 0;

	XXH3_128bits_update(s->whole, b->p, n);
	if (table_add(&s->digests, &s->capdig, s->ndig, b->dig, b->nch, MC_DIGEST_LEN) < 0 ||
	    (c->m->is_encrypted && table_add(&s->tags, &s->captag, s->ndig, b->tag, b->nch, MC_AEAD_TAG_LEN) < 0)) {
		s->err = ENOMEM;
		goto fail;
	}
	s->ndig += b->nch;
	if (s->direct && n % SINK_ALIGN) {
		pad = SINK_ALIGN - n % SINK_ALIGN;
		memset(b->p + n, 0, pad);
	}
	if (sink_put(s, b->p, n + pad) < 0)
		goto fail;
	s->written -= pad;
	if (pad && ftruncate(s->fd, (off_t)(s->base + s->written)) < 0) {
		s->err = errno;
		goto fail;
	}
	return 0;
fail:
	snprintf(err, errlen, "%s", mc_strerror(s->err ? s->err : EIO));
	return -(s->err ? s->err : EIO);
}

static const struct mc_workq_ops cp_ops = {cp_start, cp_stop_ts, cp_work, cp_write};

/* A failure of the workers or the writer (lib/workq's code), as the sink's. */
static int cp_failed(struct cpipe *c, int rc)
{
	if (!c->s->err)
		c->s->err = rc < 0 ? -rc : EIO;
	return -1;
}

/* Hands the buffer being filled to the workers. */
static int cp_submit(struct cpipe *c)
{
	struct cbuf *b = c->cur;

	b->nch = (unsigned)((b->len + c->m->chunk_size - 1) / c->m->chunk_size);
	b->first = (uint32_t)(c->nfill * c->per);
	c->nfill++;
	c->cur = NULL;
	int rc = mc_workq_put(c->q, NULL, 0);
	return rc < 0 ? cp_failed(c, rc) : 0;
}

static int cp_feed(struct cpipe *c, const uint8_t *p, size_t n)
{
	while (n > 0) {
		if (c->cur == NULL) {
			unsigned k;
			int rc = mc_workq_get(c->q, &k, NULL, 0);
			if (rc < 0)
				return cp_failed(c, rc);
			c->cur = &c->b[k];
			c->cur->len = 0;
		}
		struct cbuf *b = c->cur;
		size_t take = c->cap - b->len < n ? c->cap - b->len : n;
		memcpy(b->p + b->len, p, take);
		b->len += take;
		c->s->total += take;
		p += take;
		n -= take;
		if (b->len == c->cap && cp_submit(c) < 0)
			return -1;
	}
	return 0;
}

static void cp_free(struct cpipe *c)
{
	if (c == NULL)
		return;
	mc_workq_free(c->q);
	for (unsigned i = 0; c->b && i < c->nb; i++) {
		free(c->b[i].p);
		free(c->b[i].dig);
		free(c->b[i].tag);
	}
	free(c->b);
	free(c);
}

/* The last buffer, then waits for everything to be written. */
static int cp_end(struct cpipe *c)
{
	if (c->cur && c->cur->len > 0 && cp_submit(c) < 0)
		return -1;
	int rc = mc_workq_wait(c->q, NULL, 0);
	return rc < 0 ? cp_failed(c, rc) : 0;
}

static struct cpipe *cp_new(struct sink *s, const struct mc_manifest *m, unsigned threads)
{
	struct cpipe *c = calloc(1, sizeof *c);

	if (c == NULL)
		return NULL;
	c->s = s;
	c->m = m;
	if (threads == 0)
		threads = 1;
	if (threads > MC_WORKQ_MAX_THREADS)
		threads = MC_WORKQ_MAX_THREADS;
	/* Two buffers a worker (at least four) in CP_MEM: each worker has one while the next is filled or written. */
	c->nb = 2 * threads < 4 ? 4 : 2 * threads;
	c->per = m->chunk_size >= CP_MEM / c->nb ? 1 : (unsigned)(CP_MEM / c->nb / m->chunk_size);
	c->cap = (size_t)c->per * m->chunk_size;
	if ((c->b = calloc(c->nb, sizeof *c->b)) == NULL)
		goto fail;
	for (unsigned i = 0; i < c->nb; i++)
		if ((c->b[i].p = mc_pkg_buf(c->cap + SINK_ALIGN)) == NULL ||
		    (c->b[i].dig = malloc((size_t)c->per * MC_DIGEST_LEN)) == NULL ||
		    (c->b[i].tag = calloc(c->per, MC_AEAD_TAG_LEN)) == NULL)
			goto fail;
	if (mc_workq_new(&c->q, &cp_ops, c, threads, c->nb) < 0)
		goto fail;
	return c;
fail:
	cp_free(c);
	return NULL;
}

/* Hashes n bytes into the chunk digests and the whole-payload digest. */
static int sink_hash(struct sink *s, const uint8_t *p, size_t n)
{
	XXH3_128bits_update(s->whole, p, n);
	while (n > 0) {
		size_t take = s->chunk_size - s->in_chunk;
		if (take > n)
			take = n;
		mc_hash_update(s->chunk, p, take);
		s->in_chunk += (uint32_t)take;
		p += take;
		n -= take;
		if (s->in_chunk == s->chunk_size) {
			if (s->ndig == s->capdig) {
				size_t cap = s->capdig ? 2 * s->capdig : 1024;
				uint8_t *d = realloc(s->digests, cap * MC_DIGEST_LEN);
				if (d == NULL) {
					s->err = ENOMEM;
					return -1;
				}
				s->digests = d;
				s->capdig = cap;
			}
			mc_hash_final(s->chunk, s->digests + s->ndig++ * MC_DIGEST_LEN);
			mc_hash_reset(s->chunk);
			s->in_chunk = 0;
		}
	}
	return 0;
}

/* Turns O_DIRECT off (the file system refused a direct write, or the payload is done). */
static void sink_buffered(struct sink *s)
{
	int fl = fcntl(s->fd, F_GETFL);

	if (fl >= 0)
		fcntl(s->fd, F_SETFL, fl & ~O_DIRECT);
	s->direct = 0;
}

/* Writes n bytes at payload offset s->written; buffered writes are handed to writeback now and then. */
static int sink_put(struct sink *s, const uint8_t *p, size_t n)
{
	size_t done = 0;

	while (done < n) {
		ssize_t w = pwrite(s->fd, p + done, n - done, (off_t)(s->base + s->written + done));
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EINVAL && s->direct) {
				sink_buffered(s); /* O_DIRECT accepted by fcntl, refused by the write: go buffered */
				continue;
			}
			s->err = errno;
			return -1;
		}
		done += (size_t)w;
	}
	s->written += n;
	if (!s->direct && s->written - s->flushed >= SINK_FLUSH) {
		/* Start writeback only (no wait): a failure here shows again at fsync. */
		sync_file_range(s->fd, (off_t)(s->base + s->flushed), (off_t)(s->written - s->flushed),
				SYNC_FILE_RANGE_WRITE);
		s->flushed = s->written;
	}
	return 0;
}

static void *sink_writer(void *arg)
{
	struct sink *s = arg;

	pthread_mutex_lock(&s->wmu);
	for (;;) {
		while (!s->wbusy && !s->wquit)
			pthread_cond_wait(&s->wcv, &s->wmu);
		if (!s->wbusy)
			break;
		const uint8_t *p = s->wp;
		size_t n = s->wn, done = 0;
		uint64_t off = s->woff;
		int err = 0, buffered = 0;
		pthread_mutex_unlock(&s->wmu);
		while (done < n) {
			ssize_t w = pwrite(s->fd, p + done, n - done, (off_t)(off + done));
			if (w < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EINVAL && !buffered) {
					int fl = fcntl(s->fd, F_GETFL);
					if (fl >= 0)
						fcntl(s->fd, F_SETFL, fl & ~O_DIRECT);
					buffered = 1; /* refused by the write after all: go buffered */
					continue;
				}
				err = errno;
				break;
			}
			done += (size_t)w;
		}
		pthread_mutex_lock(&s->wmu);
		s->wbusy = 0;
		if (err && !s->werr)
			s->werr = err;
		s->wbuffered |= buffered;
		pthread_cond_broadcast(&s->wcv);
	}
	pthread_mutex_unlock(&s->wmu);
	return NULL;
}

/* Waits for the write in flight; takes over its error and a fall back to buffered writes. */
static int sink_wait(struct sink *s)
{
	if (!s->wthread)
		return s->err ? -1 : 0;
	pthread_mutex_lock(&s->wmu);
	while (s->wbusy)
		pthread_cond_wait(&s->wcv, &s->wmu);
	if (s->werr && !s->err)
		s->err = s->werr;
	if (s->wbuffered)
		s->direct = 0;
	pthread_mutex_unlock(&s->wmu);
	return s->err ? -1 : 0;
}

/* Ends the writer thread (after its last write). */
static void sink_stop(struct sink *s)
{
	if (!s->wthread)
		return;
	sink_wait(s);
	pthread_mutex_lock(&s->wmu);
	s->wquit = 1;
	pthread_cond_broadcast(&s->wcv);
	pthread_mutex_unlock(&s->wmu);
	pthread_join(s->wth, NULL);
	pthread_mutex_destroy(&s->wmu);
	pthread_cond_destroy(&s->wcv);
	s->wthread = 0;
}

/* Starts the writer thread; without it direct writes are made in turn with the rest. */
static void sink_start(struct sink *s)
{
	if (!s->direct || s->dbufs[1] == NULL)
		return;
	pthread_mutex_init(&s->wmu, NULL);
	pthread_cond_init(&s->wcv, NULL);
	if (pthread_create(&s->wth, NULL, sink_writer, s) != 0) {
		pthread_mutex_destroy(&s->wmu);
		pthread_cond_destroy(&s->wcv);
		return;
	}
	s->wthread = 1;
}

/* Writes what waits in dbuf; the final, short write is padded to a block and the file cut back. */
static int sink_drain(struct sink *s, int final)
{
	size_t n = s->dlen, pad = 0;

	if (n == 0)
		return 0;
	if (sink_wait(s) < 0)
		return -1;
	if (!final && s->direct && s->wthread) {
		/* Hand the full buffer to the writer and fill the other one (free: its write is done). */
		pthread_mutex_lock(&s->wmu);
		s->wp = s->dbuf;
		s->wn = n;
		s->woff = s->base + s->written;
		s->wbusy = 1;
		pthread_cond_broadcast(&s->wcv);
		pthread_mutex_unlock(&s->wmu);
		s->written += n;
		s->dbuf = s->dbuf == s->dbufs[0] ? s->dbufs[1] : s->dbufs[0];
		s->dlen = 0;
		return 0;
	}
	if (s->direct && n % SINK_ALIGN) {
		pad = SINK_ALIGN - n % SINK_ALIGN;
		memset(s->dbuf + n, 0, pad);
	}
	if (sink_put(s, s->dbuf, n + pad) < 0)
		return -1;
	s->written -= pad;
	s->dlen = 0;
	if (pad && ftruncate(s->fd, (off_t)(s->base + s->written)) < 0) {
		s->err = errno;
		return -1;
	}
	return 0;
}

/* Room for direct input into dbuf (at most max bytes); sink_took() then takes what was put there. */
static uint8_t *sink_room(struct sink *s, size_t *max)
{
	if (SINK_DIRECT - s->dlen < *max)
		*max = SINK_DIRECT - s->dlen;
	return s->dbuf + s->dlen;
}

static int sink_took(struct sink *s, size_t n)
{
	if (sink_hash(s, s->dbuf + s->dlen, n) < 0)
		return -1;
	s->dlen += n;
	s->total += n;
	return s->dlen == SINK_DIRECT ? sink_drain(s, 0) : 0;
}

static int sink_feed(struct sink *s, const uint8_t *p, size_t n)
{
	if (s->cp)
		return cp_feed(s->cp, p, n);
	while (n > 0) {
		size_t piece = n < SINK_PIECE ? n : SINK_PIECE;
		if (s->direct) {
			uint8_t *d = sink_room(s, &piece);
			memcpy(d, p, piece);
			if (sink_took(s, piece) < 0)
				return -1;
		} else {
			if (sink_put(s, p, piece) < 0 || sink_hash(s, p, piece) < 0)
				return -1;
			s->total += piece;
		}
		p += piece;
		n -= piece;
	}
	return 0;
}

static la_ssize_t sink_write(struct archive *a, void *arg, const void *buf, size_t n)
{
	struct sink *s = arg;

	if (sink_feed(s, buf, n) < 0) {
		archive_set_error(a, s->err, "%s", mc_strerror(s->err));
		return -1;
	}
	return (la_ssize_t)n;
}

/*
 * The code of a libarchive failure: the output's errno when the sink failed
 * (whatever libarchive made of it), else libarchive's errno when it has one
 * (ENOMEM, a read's), else -EIO.
 */
static int arc_code(struct archive *a, const struct sink *s)
{
	if (s && s->err)
		return -s->err;
	return a && archive_errno(a) > 0 ? -archive_errno(a) : -EIO;
}

/* Writes what is left, turns O_DIRECT off and finishes the last, shorter chunk. */
static int sink_end(struct sink *s)
{
	if (s->cp) {
		int r = cp_end(s->cp);
		if (s->direct)
			sink_buffered(s);
		return r;
	}
	if (sink_drain(s, 1) < 0 || sink_wait(s) < 0)
		return -1;
	sink_stop(s);
	if (s->direct)
		sink_buffered(s);
	if (s->in_chunk > 0) {
		uint8_t *d = realloc(s->digests, (s->ndig + 1) * MC_DIGEST_LEN);
		if (d == NULL) {
			s->err = ENOMEM;
			return -1;
		}
		s->digests = d;
		mc_hash_final(s->chunk, s->digests + s->ndig++ * MC_DIGEST_LEN);
	}
	return 0;
}

static int ent_add(struct entlist *l, const char *name, const char *src, const struct stat *st, int follow)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 256;
		struct ent *v = realloc(l->v, cap * sizeof *v);
		if (v == NULL)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	struct ent *e = &l->v[l->n];
	e->name = strdup(name);
	e->src = strdup(src);
	if (e->name == NULL || e->src == NULL) {
		free(e->name);
		free(e->src);
		return -1;
	}
	e->st = *st;
	e->follow = follow;
	l->n++;
	return 0;
}

static void ent_free(struct entlist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].name);
		free(l->v[i].src);
	}
	free(l->v);
}

static char *join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 2);

	if (s == NULL)
		return NULL;
	memcpy(s, a, la);
	s[la] = '/';
	memcpy(s + la + 1, b, lb + 1);
	return s;
}

/* Adds everything under directory src, named under prefix ("" for the top). */
static int walk(struct entlist *l, const char *src, const char *prefix, char *err, size_t errlen)
{
	DIR *d = opendir(src);
	struct dirent *de;
	int rc = 0;

	if (d == NULL) {
		int e0 = errno; /* before anything can change it */
		snprintf(err, errlen, "%s: %s", src, mc_strerror(-e0));
		return -e0;
	}
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (de == NULL) {
			if (errno) {
				rc = -errno;
				snprintf(err, errlen, "%s: %s", src, mc_strerror(-errno));
			}
			break;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char *csrc = join(src, de->d_name);
		char *cname = *prefix ? join(prefix, de->d_name) : strdup(de->d_name);
		struct stat st;
		int r = -ENOMEM;
		if (csrc == NULL || cname == NULL) {
			snprintf(err, errlen, "%s: %s", src, mc_strerror(-ENOMEM));
		} else if (lstat(csrc, &st) < 0) {
			r = -errno;
			snprintf(err, errlen, "%s: %s", csrc, mc_strerror(-errno));
		} else if (ent_add(l, cname, csrc, &st, 0) < 0) {
			snprintf(err, errlen, "%s: %s", csrc, mc_strerror(-ENOMEM));
		} else if (S_ISDIR(st.st_mode)) {
			r = walk(l, csrc, cname, err, errlen);
		} else {
			r = 0;
		}
		free(csrc);
		free(cname);
		if (r < 0) {
			rc = r;
			break;
		}
	}
	closedir(d);
	return rc;
}

static int ent_cmp(const void *a, const void *b)
{
	return strcmp(((const struct ent *)a)->name, ((const struct ent *)b)->name);
}

/* Collects and sorts every entry of every PATH; fails on unreadable ones and on duplicate names. */
static int collect(const struct mc_pkg_create_opts *o, struct entlist *l, char *err, size_t errlen)
{
	for (unsigned i = 0; i < o->npaths; i++) {
		char *path = strdup(o->paths[i]);
		struct stat st;
		int r = -ENOMEM;
		if (path == NULL) {
			snprintf(err, errlen, "%s: %s", o->paths[i], mc_strerror(-ENOMEM));
			return -ENOMEM;
		}
		for (size_t n = strlen(path); n > 1 && path[n - 1] == '/'; n--)
			path[n - 1] = '\0';
		if (stat(path, &st) < 0) {
			r = -errno;
			snprintf(err, errlen, "%s: %s", o->paths[i], mc_strerror(-errno));
		} else if (S_ISDIR(st.st_mode)) {
			r = walk(l, path, "", err, errlen);
		} else {
			char *tmp = strdup(path);
			const char *base = tmp ? basename(tmp) : NULL;
			if (base == NULL || ent_add(l, base, path, &st, 1) < 0)
				snprintf(err, errlen, "%s: %s", path, mc_strerror(-ENOMEM));
			else
				r = 0;
			free(tmp);
		}
		free(path);
		if (r < 0)
			return r;
	}
	if (l->n > 1)
		qsort(l->v, l->n, sizeof *l->v, ent_cmp);
	for (size_t i = 1; i < l->n; i++)
		if (strcmp(l->v[i - 1].name, l->v[i].name) == 0) {
			snprintf(err, errlen, "%s: also given as %s (both would be stored as %s)", l->v[i].src,
				 l->v[i - 1].src, l->v[i].name);
			return -EINVAL;
		}
	return 0;
}

static int set_filter(struct archive *a, const struct mc_pkg_create_opts *o, char *err, size_t errlen)
{
	static const char *const name[] = {NULL, "gzip", "zstd", "xz"};
	char v[32];
	int r = ARCHIVE_OK;

	switch (o->compression) {
	case MC_COMP_NONE: r = archive_write_add_filter_none(a); break;
	case MC_COMP_GZIP: r = archive_write_add_filter_gzip(a); break;
	case MC_COMP_ZSTD: r = archive_write_add_filter_zstd(a); break;
	case MC_COMP_XZ: r = archive_write_add_filter_xz(a); break;
	default: r = ARCHIVE_FATAL; break;
	}
	if (r != ARCHIVE_OK) {
		snprintf(err, errlen, "compression %s: %s", mc_comp_name(o->compression),
			 archive_error_string(a) ? archive_error_string(a) : "not supported");
		return -EINVAL;
	}
	if (o->compression == MC_COMP_NONE)
		return 0;
	if (o->level >= 0) {
		snprintf(v, sizeof v, "%d", o->level);
		if (archive_write_set_filter_option(a, name[o->compression], "compression-level", v) != ARCHIVE_OK) {
			snprintf(err, errlen, "compression level %d: not accepted by %s", o->level, name[o->compression]);
			return -EINVAL;
		}
	}
	/* gzip has no threads in libarchive; its output must not carry the current time either. */
	if (o->compression == MC_COMP_GZIP)
		archive_write_set_filter_option(a, "gzip", "timestamp", NULL);
	/*
	 * zstd always runs its multi-threaded mode (one worker at least): its
	 * frames are then the same whatever the thread count, so -j never
	 * changes the package id.
	 */
	else if (o->threads > 1 || o->compression == MC_COMP_ZSTD) {
		snprintf(v, sizeof v, "%u", o->threads > 1 ? o->threads : 1);
		if (archive_write_set_filter_option(a, name[o->compression], "threads", v) != ARCHIVE_OK) {
			snprintf(err, errlen, "threads %u: not accepted by %s", o->threads, name[o->compression]);
			return -EINVAL;
		}
	}
	return 0;
}

/* The bytes read from the input so far and in all (0: not known), for o->progress. */
struct inprog {
	const struct mc_pkg_create_opts *o;
	uint64_t done, total;
};

static void in_read(struct inprog *ip, size_t n)
{
	ip->done += n;
	if (ip->o->progress)
		ip->o->progress(ip->o->progress_arg, ip->done, ip->total);
}

/* Writes one entry and its data; err names the source file on failure. */
static int put_entry(struct archive *a, struct archive *disk, struct archive_entry_linkresolver *lr,
		     const struct ent *en, struct inprog *ip, uint8_t *buf, struct sink *s, char *err, size_t errlen)
{
	int64_t mtime = ip->o->mtime;
	struct archive_entry *e = archive_entry_new(), *spare = NULL;
	struct stat st = en->st;
	int fd = -1, rc = 0;

	if (e == NULL) {
		snprintf(err, errlen, "%s: %s", en->src, mc_strerror(-ENOMEM));
		return -ENOMEM;
	}
	if (S_ISREG(st.st_mode)) {
		fd = open(en->src, O_RDONLY | O_CLOEXEC | (en->follow ? 0 : O_NOFOLLOW));
		if (fd < 0 || fstat(fd, &st) < 0) {
			rc = -errno;
			snprintf(err, errlen, "%s: %s", en->src, mc_strerror(-errno));
			goto out;
		}
	}
	archive_entry_copy_sourcepath(e, en->src);
	if (archive_read_disk_entry_from_file(disk, e, fd, &st) < ARCHIVE_WARN) {
		rc = arc_code(disk, NULL);
		snprintf(err, errlen, "%s: %s", en->src, archive_error_string(disk));
		goto out;
	}
	archive_entry_copy_pathname(e, en->name);
	/* Reproducibility: only mtime is kept, clamped to the given time. */
	archive_entry_unset_atime(e);
	archive_entry_unset_ctime(e);
	archive_entry_unset_birthtime(e);
	if (mtime >= 0 && archive_entry_mtime(e) >= mtime)
		archive_entry_set_mtime(e, (time_t)mtime, 0);
	archive_entry_linkify(lr, &e, &spare);
	if (e == NULL)
		goto out;
	if (archive_write_header(a, e) < ARCHIVE_WARN) {
		rc = arc_code(a, s);
		snprintf(err, errlen, "%s: %s", s->err ? "output" : en->src, archive_error_string(a));
		goto out;
	}
	if (fd >= 0 && archive_entry_size(e) > 0) {
		la_int64_t left = archive_entry_size(e);
		while (left > 0) {
			ssize_t n = read(fd, buf, IOBUF);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				rc = -errno;
				snprintf(err, errlen, "%s: %s", en->src, mc_strerror(-errno));
				goto out;
			}
			if (n == 0)
				break; /* shrank while read: libarchive pads the entry with zeros */
			if (archive_write_data(a, buf, (size_t)n) < 0) {
				rc = arc_code(a, s);
				snprintf(err, errlen, "output: %s", archive_error_string(a));
				goto out;
			}
			left -= n;
			in_read(ip, (size_t)n);
		}
	}
	if (archive_write_finish_entry(a) < ARCHIVE_WARN) {
		rc = arc_code(a, s);
		snprintf(err, errlen, "output: %s", archive_error_string(a));
		goto out;
	}
out:
	if (fd >= 0)
		close(fd);
	archive_entry_free(e);
	archive_entry_free(spare);
	return rc;
}

static int write_tree(const struct mc_pkg_create_opts *o, const struct entlist *l, struct sink *s, uint8_t *buf,
		      struct inprog *ip, char *err, size_t errlen)
{
	struct archive *a = archive_write_new(), *disk = archive_read_disk_new();
	struct archive_entry_linkresolver *lr = archive_entry_linkresolver_new();
	int rc = -ENOMEM;

	if (a == NULL || disk == NULL || lr == NULL) {
		snprintf(err, errlen, "archive: %s", mc_strerror(-ENOMEM));
		goto out;
	}
	archive_read_disk_set_standard_lookup(disk);
	archive_entry_linkresolver_set_strategy(lr, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
	archive_write_set_format_pax_restricted(a);
	if ((rc = set_filter(a, o, err, errlen)) < 0)
		goto out;
	archive_write_set_bytes_per_block(a, 64 * 1024);
	archive_write_set_bytes_in_last_block(a, 1);
	if (archive_write_open(a, s, NULL, sink_write, NULL) != ARCHIVE_OK) {
		rc = arc_code(a, s);
		snprintf(err, errlen, "output: %s", archive_error_string(a));
		goto out;
	}
	for (size_t i = 0; i < l->n; i++)
		if ((rc = put_entry(a, disk, lr, &l->v[i], ip, buf, s, err, errlen)) < 0)
			goto out;
	if (archive_write_close(a) != ARCHIVE_OK) {
		rc = arc_code(a, s);
		snprintf(err, errlen, "output: %s", archive_error_string(a));
		goto out;
	}
	rc = 0;
out:
	if (lr)
		archive_entry_linkresolver_free(lr);
	if (disk)
		archive_read_free(disk);
	if (a)
		archive_write_free(a);
	return rc;
}

static int write_raw(const struct mc_pkg_create_opts *o, struct sink *s, uint8_t *buf, struct inprog *ip, char *err,
		     size_t errlen)
{
	struct archive *a = NULL;
	struct archive_entry *e = NULL;
	ssize_t n;
	int rc = -ENOMEM;

	if (o->compression != MC_COMP_NONE) {
		a = archive_write_new();
		e = archive_entry_new();
		if (a == NULL || e == NULL) {
			snprintf(err, errlen, "archive: %s", mc_strerror(-ENOMEM));
			goto out;
		}
		archive_write_set_format_raw(a);
		if ((rc = set_filter(a, o, err, errlen)) < 0)
			goto out;
		archive_write_set_bytes_per_block(a, 64 * 1024);
		archive_write_set_bytes_in_last_block(a, 1);
		archive_entry_set_pathname(e, "-");
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_perm(e, 0644);
		if (archive_write_open(a, s, NULL, sink_write, NULL) != ARCHIVE_OK ||
		    archive_write_header(a, e) != ARCHIVE_OK) {
			rc = arc_code(a, s);
			snprintf(err, errlen, "output: %s", archive_error_string(a));
			goto out;
		}
	}
	for (;;) {
		/* Stored as it is with O_DIRECT: read straight into the sink's buffer, no copy. */
		size_t max = SINK_PIECE;
		uint8_t *into = !a && s->direct && !s->cp ? sink_room(s, &max) : buf;
		n = read(STDIN_FILENO, into, max);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			snprintf(err, errlen, "standard input: %s", mc_strerror(-errno));
			goto out;
		}
		if (n == 0)
			break;
		in_read(ip, (size_t)n);
		if (into != buf) {
			if (sink_took(s, (size_t)n) < 0) {
				rc = arc_code(NULL, s);
				snprintf(err, errlen, "output: %s", mc_strerror(s->err));
				goto out;
			}
			continue;
		}
		if (a ? archive_write_data(a, buf, (size_t)n) < 0 : sink_feed(s, buf, (size_t)n) < 0) {
			rc = arc_code(a, s);
			snprintf(err, errlen, "output: %s", a ? archive_error_string(a) : mc_strerror(s->err));
			goto out;
		}
	}
	if (a && archive_write_close(a) != ARCHIVE_OK) {
		rc = arc_code(a, s);
		snprintf(err, errlen, "output: %s", archive_error_string(a));
		goto out;
	}
	rc = 0;
out:
	archive_entry_free(e);
	if (a)
		archive_write_free(a);
	return rc;
}

/* Copies n bytes of in at from to out at off, in the kernel when it can. Returns 0 or -errno (-EIO: in ended). */
static int copy_payload(int in, uint64_t from, int out, uint64_t n, uint64_t off, uint8_t *buf)
{
	loff_t ioff = (loff_t)from, ooff = (loff_t)off;
	int kernel = 1;

	while (n > 0) {
		ssize_t r;
		if (kernel) {
			r = copy_file_range(in, &ioff, out, &ooff, n > (1u << 30) ? (1u << 30) : n, 0);
			if (r < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL)) {
				kernel = 0;
				continue;
			}
		} else {
			r = pread(in, buf, n > IOBUF ? IOBUF : n, ioff);
			if (r > 0) {
				ssize_t w = 0;
				while (w < r) {
					ssize_t k = pwrite(out, buf + w, (size_t)(r - w), ooff + w);
					if (k < 0) {
						if (errno == EINTR)
							continue;
						return -errno;
					}
					w += k;
				}
				ioff += r;
				ooff += r;
			}
		}
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EIO;
		n -= (uint64_t)r;
	}
	return 0;
}

/* Where a payload of size bytes starts: m gives name and version. 0 for an empty or impossible one. */
static uint64_t planned_payload_off(const struct mc_manifest *m, uint32_t chunk_size, uint64_t size)
{
	struct mc_manifest t = *m;

	if (size == 0)
		return 0;
	t.payload_size = size;
	t.chunk_size = chunk_size;
	return mc_manifest_payload_off(&t);
}

/* The size of a raw image when standard input is a regular file, from where it is read; else 0 (a pipe). */
static uint64_t raw_payload_size(void)
{
	struct stat st;
	off_t pos;

	if (fstat(STDIN_FILENO, &st) < 0 || !S_ISREG(st.st_mode) || (pos = lseek(STDIN_FILENO, 0, SEEK_CUR)) < 0 ||
	    st.st_size <= pos)
		return 0;
	return (uint64_t)(st.st_size - pos);
}

/* A hard-linked file for tree_payload_size: its device and inode, its data, and its size. */
struct linked {
	uint64_t dev, ino, data, size;
};

static int cmp_linked(const void *a, const void *b)
{
	const struct linked *x = a, *y = b;

	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

/*
 * The bytes of a file that fewer blocks hold than its size says that are
 * not in holes, as the archive writer finds them (SEEK_DATA, SEEK_HOLE): a
 * sparse file, or one on a file system that compresses. Its size when that
 * cannot be told.
 */
static uint64_t data_bytes(const struct ent *en)
{
	uint64_t size = (uint64_t)en->st.st_size, data = 0;
	int fd = open(en->src, O_RDONLY | O_CLOEXEC | (en->follow ? 0 : O_NOFOLLOW));
	off_t at = 0, end;

	if (fd < 0)
		return size;
	while (at < (off_t)size && (at = lseek(fd, at, SEEK_DATA)) >= 0) {
		if ((end = lseek(fd, at, SEEK_HOLE)) < 0) {
			data = size;
			break;
		}
		data += (uint64_t)(end - at);
		at = end;
	}
	if (at < 0 && errno != ENXIO) /* ENXIO: no data past at */
		data = size;
	close(fd);
	return data < size ? data : size;
}

/*
 * A tree's tar stream, stored as it is, as far as it is cheap to know: a
 * 512-byte header per entry, each file's data padded to 512 bytes (once per
 * hard-linked file; what is not in holes, for a file with holes), and the
 * two zero blocks at the end. Extended headers (long names, extended
 * attributes, large ids) are left out. The estimate only has to give the
 * right payload_off, which steps every 256 chunks (256 MiB with 1 MiB
 * chunks); when it does not, the payload is moved after all (move_payload).
 * 0 when it cannot tell (no memory). *input: the bytes put_entry will read,
 * every regular file's size once (the progress total), 0 likewise.
 */
static uint64_t tree_payload_size(const struct entlist *l, uint64_t *input)
{
	struct linked *lk = malloc((l->n ? l->n : 1) * sizeof *lk);
	uint64_t size = 1024;
	size_t nlk = 0;

	*input = 0;
	if (lk == NULL)
		return 0;
	for (size_t i = 0; i < l->n; i++) {
		const struct stat *st = &l->v[i].st;
		uint64_t data = (uint64_t)st->st_size;
		size += 512;
		if (!S_ISREG(st->st_mode))
			continue;
		if ((uint64_t)st->st_blocks * 512 < data)
			data = data_bytes(&l->v[i]);
		data = (data + 511) & ~(uint64_t)511;
		if (st->st_nlink > 1) {
			lk[nlk++] = (struct linked){(uint64_t)st->st_dev, (uint64_t)st->st_ino, data,
						    (uint64_t)st->st_size}; /* once, below */
		} else {
			size += data;
			*input += (uint64_t)st->st_size;
		}
	}
	/* The data of a hard-linked file goes with one of its names. */
	qsort(lk, nlk, sizeof *lk, cmp_linked);
	for (size_t i = 0; i < nlk; i++)
		if (i == 0 || cmp_linked(&lk[i], &lk[i - 1]) != 0) {
			size += lk[i].data;
			*input += lk[i].size;
		}
	free(lk);
	return size;
}

/*
 * Moves the payload, written from file offset from, to offset to without
 * copying it: fallocate inserts a hole in front of it or takes out blocks in
 * front of it. Both take whole file-system blocks only; payload offsets are
 * multiples of 4096, the block size of ext4 and XFS as made by default.
 * Returns 0, or -1 where the file system cannot (tmpfs, btrfs, a larger block).
 */
static int move_payload(int fd, uint64_t from, uint64_t to)
{
	if (to > from)
		return fallocate(fd, FALLOC_FL_INSERT_RANGE, 0, (off_t)(to - from));
	return fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0, (off_t)(from - to));
}

static char *temp_path(const char *output)
{
	char *a = strdup(output), *b = strdup(output), *t = NULL;

	if (a && b) {
		const char *dir = dirname(a), *base = basename(b);
		size_t n = strlen(dir) + strlen(base) + 16;
		t = malloc(n);
		if (t)
			snprintf(t, n, "%s/.%s.XXXXXX", dir, base);
	}
	free(a);
	free(b);
	return t;
}

static void fsync_dir(const char *path)
{
	char *a = strdup(path);
	int fd;

	if (a == NULL)
		return;
	fd = open(dirname(a), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(a);
}

static int valid_text(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

/* The temporary file a package is built in, renamed into place only when complete. */
struct tmpout {
	char *tmp;
	int fd;
};

static int out_create(const struct mc_pkg_create_opts *o, struct tmpout *t, char *err, size_t errlen)
{
	int e;

	t->fd = -1;
	if ((t->tmp = temp_path(o->output)) == NULL) {
		snprintf(err, errlen, "%s: %s", o->output, mc_strerror(-ENOMEM));
		return -ENOMEM;
	}
	if ((t->fd = mkostemp(t->tmp, O_CLOEXEC)) < 0) {
		e = errno;
		snprintf(err, errlen, "%s: cannot create a temporary file beside it: %s", o->output, mc_strerror(e));
		free(t->tmp);
		t->tmp = NULL;
		return -e;
	}
	return 0;
}

/* Removes the temporary file: nothing is left under any name. */
static void out_abort(struct tmpout *t)
{
	if (t->fd >= 0)
		close(t->fd);
	if (t->tmp)
		unlink(t->tmp);
	free(t->tmp);
	t->fd = -1;
	t->tmp = NULL;
}

/*
 * Puts the payload (total bytes written at file offset base) behind header
 * and manifest when it was not written there: without copying it where the
 * file system can (move_payload), else by copying it into a second file.
 */
static int out_place(const struct mc_pkg_create_opts *o, struct tmpout *t, uint64_t base, uint64_t total,
		     uint64_t payload_off, char *err, size_t errlen)
{
	struct tmpout t2;
	uint8_t *buf;
	int rc;

	if (total == 0 || base == payload_off || move_payload(t->fd, base, payload_off) == 0)
		return 0;
	if ((buf = mc_pkg_buf(IOBUF)) == NULL) {
		snprintf(err, errlen, "%s: %s", o->output, mc_strerror(-ENOMEM));
		return -ENOMEM;
	}
	if ((rc = out_create(o, &t2, err, errlen)) < 0) {
		free(buf);
		return rc;
	}
	if ((rc = copy_payload(t->fd, base, t2.fd, total, payload_off, buf)) < 0) {
		snprintf(err, errlen, "%s: %s", o->output, mc_strerror(rc));
		free(buf);
		out_abort(&t2);
		return rc;
	}
	free(buf);
	out_abort(t);
	*t = t2;
	return 0;
}

/* Writes header and manifest, makes the file durable and renames it to the output. */
static int out_commit(const struct mc_pkg_create_opts *o, struct tmpout *t, const struct mc_manifest *m,
		      char *err, size_t errlen)
{
	mode_t um = umask(0);

	umask(um);
	int e = mc_pkg_write_head(t->fd, m);
	if (e == 0 && (fchmod(t->fd, 0666 & ~um) < 0 || fsync(t->fd) < 0))
		e = -errno;
	if (e < 0) {
		snprintf(err, errlen, "%s: %s", o->output, mc_strerror(e));
		return e;
	}
	if (close(t->fd) < 0) {
		t->fd = -1;
		int e0 = errno; /* before anything can change it */
		snprintf(err, errlen, "%s: %s", o->output, mc_strerror(-e0));
		return -e0;
	}
	t->fd = -1;
	/* cmd/ refuses such an output up front (mc_fe_output_refusal); one made since is not replaced either. */
	struct stat sb;
	if (lstat(o->output, &sb) == 0 && (S_ISBLK(sb.st_mode) || S_ISCHR(sb.st_mode) || S_ISFIFO(sb.st_mode) ||
					  S_ISSOCK(sb.st_mode))) {
		snprintf(err, errlen, "%s: a device node, FIFO or socket, never replaced by a package file", o->output);
		return -EINVAL;
	}
	if (rename(t->tmp, o->output) < 0) {
		int e0 = errno; /* before anything can change it */
		snprintf(err, errlen, "%s: %s", o->output, mc_strerror(-e0));
		return -e0;
	}
	free(t->tmp);
	t->tmp = NULL;
	fsync_dir(o->output);
	return 0;
}

/* Name, version and chunk size of the package, checked. */
static int head_fields(const struct mc_pkg_create_opts *o, struct mc_manifest *m, char *err, size_t errlen)
{
	/* Name: given, or the output's base name without .mcpkg. */
	if (o->name) {
		snprintf(m->name, sizeof m->name, "%s", o->name);
	} else {
		size_t n;
		const char *b = mc_pkg_default_name(o->output, &n);
		snprintf(m->name, sizeof m->name, "%.*s", (int)(n > MC_NAME_MAX ? MC_NAME_MAX : n), b);
	}
	snprintf(m->version, sizeof m->version, "%s", o->version ? o->version : "");
	if ((o->name && strlen(o->name) > MC_NAME_MAX) || (o->version && strlen(o->version) > MC_NAME_MAX)) {
		snprintf(err, errlen, "%s: longer than %d bytes", o->name && strlen(o->name) > MC_NAME_MAX ? "name" : "version",
			 MC_NAME_MAX);
		return -EINVAL;
	}
	if (!valid_text(m->name) || !valid_text(m->version)) {
		snprintf(err, errlen, "%s: control characters are not allowed", valid_text(m->name) ? "version" : "name");
		return -EINVAL;
	}
	if (o->chunk_size < MC_CHUNK_MIN || o->chunk_size > MC_CHUNK_MAX) {
		snprintf(err, errlen, "chunk size %u: out of range", o->chunk_size);
		return -EINVAL;
	}
	m->ctime = o->mtime >= 0 ? (uint64_t)o->mtime : (uint64_t)time(NULL);
	m->compression = (uint8_t)o->compression;
	m->chunk_size = o->chunk_size;
	return 0;
}

/*
 * A format-1 package's payload: a tree as a tar stream, or a raw image from
 * standard input, through the sink into t. Encodes m; *base is where the
 * payload was written.
 */
static int create_stream(const struct mc_pkg_create_opts *o, struct mc_manifest *m, struct tmpout *t,
			 uint64_t *base, char *err, size_t errlen)
{
	struct entlist l = {0};
	struct sink s = {.fd = t->fd};
	struct mc_hash chunkh;
	uint8_t *buf = NULL;
	int raw = o->npaths == 1 && strcmp(o->paths[0], "-") == 0;
	int rc = -ENOMEM;

	for (unsigned i = 0; i < o->npaths && !raw; i++)
		if (strcmp(o->paths[i], "-") == 0) {
			snprintf(err, errlen, "-: standard input can only be packed alone");
			return -EINVAL;
		}
	if (!raw && (rc = collect(o, &l, err, errlen)) < 0)
		goto out;
	rc = -ENOMEM;
	buf = mc_pkg_buf(IOBUF);
	s.whole = XXH3_createState();
	if (mc_hash_init(&chunkh, m->digest_alg, m->salt) == 0)
		s.chunk = &chunkh;
	if (buf == NULL || s.whole == NULL || s.chunk == NULL) {
		snprintf(err, errlen, "%s: %s", o->output, mc_strerror(-ENOMEM));
		goto out;
	}
	XXH3_128bits_reset(s.whole);
	s.chunk_size = o->chunk_size;
	/*
	 * Stored as it is, a raw image from a regular file or a tree has a size
	 * known (or estimated) in advance, and so has the manifest: the payload
	 * is written where it belongs. Anything else (a pipe, a compressed
	 * payload) is written from offset 0 and moved once the manifest is
	 * known, as is one whose size was not what it turned out to be. Where
	 * the file system cannot move blocks (tmpfs, btrfs) a move is a copy:
	 * a 1 GiB tree on tmpfs took 1.13 s to create, now 0.47 s.
	 */
	struct inprog ip = {o, 0, 0};
	if (o->compression == MC_COMP_NONE || o->progress) {
		uint64_t est = raw ? (ip.total = raw_payload_size()) : tree_payload_size(&l, &ip.total);
		if (o->compression == MC_COMP_NONE)
			s.base = planned_payload_off(m, o->chunk_size, est);
	}
	/* O_DIRECT where the file system takes it (see struct sink). */
	int fl = fcntl(s.fd, F_GETFL);
	if (m->is_signed || m->is_encrypted) {
		/* The chunks to seal or digest go to workers (struct cpipe); the direct writes are its writer's. */
		if ((s.cp = cp_new(&s, m, o->threads)) == NULL) {
			snprintf(err, errlen, "%s: cannot start the workers: %s", o->output, mc_strerror(-ENOMEM));
			goto out;
		}
		if (fl >= 0 && fcntl(s.fd, F_SETFL, fl | O_DIRECT) == 0)
			s.direct = 1;
	} else if (fl >= 0 && (s.dbuf = s.dbufs[0] = mc_pkg_buf(SINK_DIRECT)) != NULL &&
		   fcntl(s.fd, F_SETFL, fl | O_DIRECT) == 0) {
		s.direct = 1;
		s.dbufs[1] = mc_pkg_buf(SINK_DIRECT);
		sink_start(&s);
	}
	if ((rc = raw ? write_raw(o, &s, buf, &ip, err, errlen) : write_tree(o, &l, &s, buf, &ip, err, errlen)) < 0) {
		if (s.err) /* the output failed, whatever libarchive said */
			snprintf(err, errlen, "%s: %s", o->output, mc_strerror(s.err));
		goto out;
	}
	if (sink_end(&s) < 0) {
		rc = -(s.err ? s.err : EIO);
		snprintf(err, errlen, "%s: %s", o->output, mc_strerror(rc));
		goto out;
	}
	m->kind = raw ? MC_KIND_RAW : MC_KIND_TAR;
	m->payload_size = s.total;
	m->nchunks = (uint32_t)s.ndig;
	if (s.ndig > UINT32_MAX) {
		snprintf(err, errlen, "%s: too many chunks; use a larger --chunk-size", o->output);
		rc = -EINVAL;
		goto out;
	}
	mc_digest_final(s.whole, m->payload_digest);
	if (m->is_encrypted && s.ndig && s.tags == NULL) {
		snprintf(err, errlen, "%s: %s", o->output, mc_strerror(-ENOMEM));
		rc = -ENOMEM;
		goto out;
	}
	m->tags = s.tags;
	if ((rc = mc_manifest_encode(m, s.digests, err, errlen)) < 0)
		goto out;
	*base = s.base;
out:
	cp_free(s.cp);
	sink_stop(&s);
	free(buf);
	free(s.tags);
	free(s.dbufs[0]);
	free(s.dbufs[1]);
	free(s.digests);
	XXH3_freeState(s.whole);
	if (s.chunk)
		mc_hash_free(s.chunk);
	ent_free(&l);
	return rc;
}

int mc_pkg_create(const struct mc_pkg_create_opts *o, uint8_t id[MC_ID_LEN], char *err, size_t errlen)
{
	struct tmpout t = {.fd = -1};
	struct mc_manifest m;
	struct mc_pkg_layout lay;
	uint64_t base = 0;
	int rc;

	memset(&m, 0, sizeof m);
	if (o->npaths == 0) {
		snprintf(err, errlen, "nothing to pack: no PATH given");
		return -EINVAL;
	}
	if ((rc = head_fields(o, &m, err, errlen)) < 0)
		goto out;
	/* --sign: SHA-256 chunk digests, salted; a reproducible (--mtime) package derives its salt. */
	if (o->sign) {
		char seed[2 * (MC_NAME_MAX + 1) + 24];
		int sl = snprintf(seed, sizeof seed, "%s%c%s%c%lld", m.name, 0, m.version, 0, (long long)o->mtime);
		if ((rc = mc_manifest_want_sign(&m, o->sign, o->mtime >= 0 ? seed : NULL, (size_t)sl, err, errlen)) < 0)
			goto out;
	}
	/* --encrypt, --encrypt-to: the package key and the recipients' boxes, before any chunk is made. */
	if (o->encrypt &&
	    (rc = mc_manifest_want_encrypt(&m, o->encrypt_key, o->encrypt_to, o->nencrypt_to, err, errlen)) < 0)
		goto out;
	if ((rc = out_create(o, &t, err, errlen)) < 0)
		goto out;
	if ((rc = o->image ? mc_image_create(o, &m, t.fd, &base, err, errlen)
			   : create_stream(o, &m, &t, &base, err, errlen)) < 0)
		goto out;
	if (o->sign && (rc = mc_manifest_sign(&m, o->sign, err, errlen)) < 0)
		goto out;
	mc_manifest_layout(&m, &lay);
	if ((rc = out_place(o, &t, base, m.payload_size, lay.payload_off, err, errlen)) < 0 ||
	    (rc = out_commit(o, &t, &m, err, errlen)) < 0)
		goto out;
	memcpy(id, m.id, MC_ID_LEN);
out:
	out_abort(&t);
	mc_manifest_free(&m);
	return rc;
}

int mc_pkg_rewrap(const struct mc_pkg *p, const struct mc_content_key *k, const struct mc_key *to, unsigned nto,
		  const struct mc_key *sign, const char *output, uint8_t id[MC_ID_LEN], char *err, size_t errlen)
{
	struct mc_pkg_create_opts o = {.output = output};
	struct tmpout t = {.fd = -1};
	struct mc_manifest src, m;
	struct mc_pkg_layout lay;
	uint8_t key[MC_AEAD_KEY_LEN], *buf = NULL;
	uint32_t *lens = NULL;
	struct mc_vol *vols = NULL;
	char why[256];
	int rc = -EINVAL;

	memset(&m, 0, sizeof m);
	/* A copy of the manifest to unlock: p's stays as it is. */
	if ((rc = mc_manifest_parse(p->m.raw, p->m.raw_len, &src, err, errlen)) < 0)
		return rc;
	rc = -EINVAL;
	if (!src.is_encrypted) {
		snprintf(err, errlen, "%s: not encrypted: nothing to rewrap", p->path);
		goto out;
	}
	if (src.is_signed && sign == NULL) {
		snprintf(err, errlen, "%s: signed: give --sign KEY to sign the new manifest", p->path);
		goto out;
	}
	if ((rc = mc_manifest_unlock_key(&src, k, key, why, sizeof why)) < 0) {
		snprintf(err, errlen, "%s: %s", p->path, why);
		goto out;
	}
	/* Everything as it was but the recipients (and the signer): same salt, key check, tags and chunks. */
	mc_manifest_copy_head(&m, &src);
	if (sign) {
		/* An unsigned package's chunk digests are XXH3: a signature over them would protect nothing. */
		if (!src.is_signed) {
			snprintf(err, errlen, "%s: not signed: its chunk digests are not cryptographic, so it cannot be "
				 "signed after the fact", p->path);
			rc = -EINVAL;
			goto out;
		}
		memcpy(m.signer, sign->pub, sizeof m.signer);
	}
	m.is_encrypted = 1;
	m.aead_alg = src.aead_alg;
	memcpy(m.enc_salt, src.enc_salt, sizeof m.enc_salt);
	memcpy(m.enc_check, src.enc_check, sizeof m.enc_check);
	memcpy(m.subkey, src.subkey, sizeof m.subkey);
	m.unlocked = 1;
	m.tags = src.tags;
	if ((rc = mc_manifest_seal_to(&m, key, to, nto, err, errlen)) < 0)
		goto out;
	if (m.format == MC_PKG_VERSION_IMAGE) {
		lens = malloc(((size_t)m.nchunks + 1) * sizeof *lens);
		vols = calloc(src.nvols + 1u, sizeof *vols);
		if (lens == NULL || vols == NULL) {
			snprintf(err, errlen, "%s", mc_strerror(-ENOMEM));
			rc = -ENOMEM;
			goto out;
		}
		for (uint32_t i = 0; i < m.nchunks; i++)
			lens[i] = mc_manifest_chunk_len(&src, i);
		for (unsigned i = 0; i < src.nvols; i++)
			mc_manifest_vol(&src, i, &vols[i]);
		if ((rc = mc_manifest_encode_image_vols(&m, lens, src.chunk_flags, src.digests, src.span_plain,
							src.vol_table, vols, src.nvols, err, errlen)) < 0)
			goto out;
	} else if ((rc = mc_manifest_encode(&m, src.digests, err, errlen)) < 0) {
		goto out;
	}
	if (sign && (rc = mc_manifest_sign(&m, sign, err, errlen)) < 0)
		goto out;
	/* The payload as it is, behind the new head (its offset moves when the manifest crosses a page). */
	mc_manifest_layout(&m, &lay);
	if ((buf = mc_pkg_buf(IOBUF)) == NULL) {
		snprintf(err, errlen, "%s: %s", output, mc_strerror(-ENOMEM));
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = out_create(&o, &t, err, errlen)) < 0)
		goto out;
	if (m.payload_size &&
	    (rc = copy_payload(p->fd, p->l.payload_off, t.fd, m.payload_size, lay.payload_off, buf)) < 0) {
		snprintf(err, errlen, "%s: %s", output, mc_strerror(rc));
		goto out;
	}
	if (ftruncate(t.fd, (off_t)lay.file_size) < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", output, mc_strerror(-errno));
		goto out;
	}
	if ((rc = out_commit(&o, &t, &m, err, errlen)) < 0)
		goto out;
	memcpy(id, m.id, MC_ID_LEN);
out:
	OPENSSL_cleanse(key, sizeof key);
	out_abort(&t);
	free(buf);
	free(lens);
	free(vols);
	mc_manifest_free(&src);
	mc_manifest_free(&m);
	return rc;
}
