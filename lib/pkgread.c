/* Reading packages: verify every chunk, list entries, extract securely or to a file descriptor. */
#include "pkg.h"
#include "exitcode.h"
#include "image.h"
#include "crypto.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#if defined(__x86_64__) || defined(__i386__)
/* The library's runtime dispatch to its AVX2/AVX-512 code, where the CPU has it. */
#include <xxh_x86dispatch.h>
#endif

void mc_pkg_chunk_range(const struct mc_pkg *p, uint32_t i, uint64_t *first, uint64_t *last)
{
	*first = p->l.payload_off + mc_manifest_chunk_off(&p->m, i);
	*last = *first + mc_manifest_chunk_len(&p->m, i) - 1;
}

const char *mc_pkg_default_name(const char *output, size_t *len)
{
	const char *b = strrchr(output, '/');

	b = b ? b + 1 : output;
	*len = strlen(b);
	if (*len > 6 && strcmp(b + *len - 6, ".mcpkg") == 0)
		*len -= 6;
	return b;
}

int mc_chunk_check_init(struct mc_chunk_check *c, const struct mc_manifest *m)
{
	memset(c, 0, sizeof *c);
	c->m = m;
	if (m->nchunks)
		c->end = mc_manifest_chunk_off(m, m->nchunks - 1) + mc_manifest_chunk_len(m, m->nchunks - 1);
	if (m->digest_alg != MC_HASH_XXH3) {
		if ((c->whole = XXH3_createState()) == NULL)
			return -1;
		XXH3_128bits_reset(c->whole);
		return 0;
	}
	if ((c->xxh = malloc(sizeof(struct mc_hash))) == NULL)
		return -ENOMEM;
	if (mc_hash_init(c->xxh, m->digest_alg, m->salt) < 0) {
		free(c->xxh);
		c->xxh = NULL;
		return -ENOMEM; /* an unknown digest_alg never parses: only the context can fail */
	}
	return 0;
}

/* The whole payload, fed in order (signed packages): -1 with *bad = MC_CHUNK_CHECK_WHOLE when it ends wrong. */
static int whole_feed(struct mc_chunk_check *c, const uint8_t *p, size_t n, uint32_t *bad)
{
	uint8_t d[MC_DIGEST_LEN];

	if (n > c->end - c->next)
		n = (size_t)(c->end - c->next);
	XXH3_128bits_update(c->whole, p, n);
	c->next += n;
	if (c->next < c->end)
		return 0;
	mc_digest_final(c->whole, d);
	XXH3_freeState(c->whole);
	c->whole = NULL;
	if (memcmp(d, c->m->payload_digest, MC_DIGEST_LEN) == 0)
		return 0;
	*bad = MC_CHUNK_CHECK_WHOLE;
	return -1;
}

int mc_chunk_check_feed(struct mc_chunk_check *c, uint64_t off, const uint8_t *p, size_t n, uint32_t *bad)
{
	int rc = 0;

	if (c->whole)
		return off == c->next ? whole_feed(c, p, n, bad) : 0;
	if (c->xxh == NULL || off != c->next || c->chunk >= c->m->nchunks)
		return 0;
	c->next += n;
	while (n > 0 && c->chunk < c->m->nchunks) {
		uint64_t len = mc_manifest_chunk_len(c->m, c->chunk), take = len - c->fed < n ? len - c->fed : n;
		mc_hash_update(c->xxh, p, take);
		c->fed += take;
		p += take;
		n -= take;
		if (c->fed == len) {
			uint8_t d[MC_DIGEST_LEN];
			mc_hash_final(c->xxh, d);
			if (memcmp(d, c->m->digests + (size_t)c->chunk * MC_DIGEST_LEN, MC_DIGEST_LEN) != 0) {
				*bad = c->chunk;
				rc = -1;
			}
			mc_hash_reset(c->xxh);
			c->chunk++;
			c->fed = 0;
		}
	}
	return rc;
}

void mc_chunk_check_free(struct mc_chunk_check *c)
{
	if (c->xxh)
		mc_hash_free(c->xxh);
	free(c->xxh);
	c->xxh = NULL;
	if (c->whole)
		XXH3_freeState(c->whole);
	c->whole = NULL;
}

const char *mc_pkg_raw_name(const struct mc_manifest *m)
{
	const char *n = m->name;

	if (*n == '\0' || strcmp(n, ".") == 0 || strcmp(n, "..") == 0 || strchr(n, '/') != NULL)
		return "image";
	for (; *n; n++)
		if ((unsigned char)*n < 0x20 || *n == 0x7f)
			return "image";
	return m->name;
}

/*
 * verify reads the payload in pieces of VPIECE bytes (the last one shorter),
 * whatever the chunk size, through a ring of VSLOTS buffers: memory stays
 * bounded, and small chunks do not cost a hand-over each. With two CPUs or more a reader thread fills the
 * ring with pread while the calling thread hashes each piece twice, into its
 * chunk digest and into the whole-payload digest, while it is hot in cache:
 * copying out of the page cache and hashing then overlap instead of adding up.
 * With one CPU (or no thread) the calling thread does both in turn.
 */
#define VPIECE (4u << 20)
#define VSLOTS 4

struct vpiece {
	uint8_t *buf;
	uint32_t want;  /* bytes asked for */
	uint32_t got;   /* bytes read: fewer than want when the file ends early */
	int err;        /* errno of a failed read */
};

struct vring {
	const struct mc_pkg *p;
	struct vpiece s[VSLOTS];
	_Atomic uint64_t head, tail; /* pieces filled by the reader, pieces consumed */
	_Atomic int rdone;           /* the reader is done: head is final */
	_Atomic int stop;            /* the consumer gives up (I/O error): the reader ends */
	_Atomic int rwait, cwait;    /* reader / consumer asleep (or about to be) on cv */
	uint64_t rpos;               /* where the reader is in the payload */
	int threaded;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

/* Reads the next piece into slot v; returns 0 when the payload is done. */
static int vring_fill(struct vring *r, struct vpiece *v)
{
	const struct mc_pkg *p = r->p;
	uint64_t left = p->m.payload_size - r->rpos, off = p->l.payload_off + r->rpos;
	uint32_t n = left < VPIECE ? (uint32_t)left : VPIECE;
	size_t got = 0;

	if (n == 0)
		return 0;
	v->want = n;
	v->err = 0;
	while (got < n) {
		ssize_t k = pread(p->fd, v->buf + got, n - got, (off_t)(off + got));
		if (k < 0) {
			if (errno == EINTR)
				continue;
			v->err = errno;
			break;
		}
		if (k == 0)
			break;
		got += (size_t)k;
	}
	v->got = (uint32_t)got;
	r->rpos += n;
	return 1;
}

/*
 * A wait spins a little before it sleeps. Measured on this VM (2 GiB, 2
 * CPUs, page cache; one thread: 0.22-0.23 s): pieces of 1 MiB x 8 slots
 * 0.15-0.17 s idle, 0.26-0.31 s with another process busy on a CPU (longer
 * spins were worse there); 4 MiB x 4 slots without spinning 0.16-0.17 s idle,
 * 0.25-0.27 s busy. Hence also the check for an idle CPU before starting the
 * reader thread.
 */
#define VSPIN 64

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static int reader_may_go(struct vring *r)
{
	return atomic_load(&r->head) - atomic_load(&r->tail) < VSLOTS || atomic_load(&r->stop);
}

static int consumer_may_go(struct vring *r)
{
	return atomic_load(&r->tail) != atomic_load(&r->head) || atomic_load(&r->rdone);
}

/* Waits until may_go(r): spins a while, then sleeps on cv with *waiting set. */
static void vring_wait(struct vring *r, _Atomic int *waiting, int (*may_go)(struct vring *))
{
	for (int k = 0; k < VSPIN; k++) {
		if (may_go(r))
			return;
		cpu_relax();
	}
	pthread_mutex_lock(&r->mu);
	atomic_store(waiting, 1); /* then may_go again: the other side sets its counter, then reads waiting */
	while (!may_go(r))
		pthread_cond_wait(&r->cv, &r->mu);
	atomic_store(waiting, 0);
	pthread_mutex_unlock(&r->mu);
}

/* Wakes the other side if it sleeps (or is about to). */
static void vring_wake(struct vring *r, _Atomic int *waiting)
{
	if (atomic_load(waiting)) {
		pthread_mutex_lock(&r->mu);
		pthread_cond_broadcast(&r->cv);
		pthread_mutex_unlock(&r->mu);
	}
}

static void *vring_reader(void *arg)
{
	struct vring *r = arg;

	for (;;) {
		vring_wait(r, &r->rwait, reader_may_go);
		if (atomic_load(&r->stop))
			break;
		/* Slot head is ours until head moves: the consumer never touches slots >= head. */
		uint64_t h = atomic_load(&r->head);
		struct vpiece *v = &r->s[h % VSLOTS];
		int more = vring_fill(r, v);
		if (more)
			atomic_store(&r->head, h + 1);
		if (!more || v->err)
			atomic_store(&r->rdone, 1); /* after head: who sees rdone sees the last head */
		vring_wake(r, &r->cwait);
		if (!more || v->err)
			break;
	}
	return NULL;
}

/* The next piece in payload order, or NULL at the end. */
static struct vpiece *vring_get(struct vring *r)
{
	if (!r->threaded) {
		struct vpiece *v = &r->s[0];
		return vring_fill(r, v) ? v : NULL;
	}
	vring_wait(r, &r->cwait, consumer_may_go);
	uint64_t t = atomic_load(&r->tail);
	return t != atomic_load(&r->head) ? &r->s[t % VSLOTS] : NULL;
}

/* Gives the slot of the piece just used back to the reader. */
static void vring_put(struct vring *r)
{
	if (!r->threaded)
		return;
	atomic_fetch_add(&r->tail, 1);
	vring_wake(r, &r->rwait);
}

static int ncpus(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof set, &set) == 0)
		return CPU_COUNT(&set);
	return (int)sysconf(_SC_NPROCESSORS_ONLN);
}

/*
 * 1 when a second thread would have a CPU to itself now: we may use two or
 * more CPUs and fewer tasks than that are runnable (procs_running in
 * /proc/stat counts us too). Without /proc, assume so.
 */
static int spare_cpu(void)
{
	int n = ncpus();
	long running = -1;
	char line[256];
	FILE *f;

	if (n < 2)
		return 0;
	f = fopen("/proc/stat", "re");
	if (f == NULL)
		return 1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "procs_running %ld", &running) == 1)
			break;
	fclose(f);
	return running < 0 || running < n;
}

int mc_pkg_verify_threads = -1;

long mc_pkg_verify(const struct mc_pkg *p, const struct mc_pkg_verify_cb *cb, uint8_t *buf,
		   int *payload_ok, char *err, size_t errlen)
{
	XXH3_state_t *whole = XXH3_createState();
	struct mc_hash chunkh, *chunk = mc_hash_init(&chunkh, p->m.digest_alg, p->m.salt) == 0 ? &chunkh : NULL;
	struct vring r;
	struct vpiece *v;
	pthread_t th;
	uint8_t d[MC_DIGEST_LEN];
	uint64_t done = 0;
	long bad = 0;
	int nslots, chunk_ok = 1, ioerr = 0;
	uint32_t i = 0, pos = 0; /* the chunk being checked, and how much of it was seen */

	(void)buf; /* the ring below has its own bounded buffers */
	*payload_ok = 0;
	memset(&r, 0, sizeof r);
	r.p = p;
	r.threaded = p->m.nchunks > 0 &&
		     (mc_pkg_verify_threads < 0 ? spare_cpu() : mc_pkg_verify_threads > 0);
	nslots = r.threaded ? VSLOTS : 1;
	for (int k = 0; k < nslots; k++)
		if ((r.s[k].buf = mc_pkg_buf(VPIECE)) == NULL)
			break;
	if (whole == NULL || chunk == NULL || r.s[nslots - 1].buf == NULL) {
		snprintf(err, errlen, "%s: %s", p->path, mc_strerror(-ENOMEM));
		bad = -ENOMEM;
		goto out;
	}
	XXH3_128bits_reset(whole);
	posix_fadvise(p->fd, (off_t)p->l.payload_off, 0, POSIX_FADV_SEQUENTIAL);
	if (r.threaded) {
		pthread_mutex_init(&r.mu, NULL);
		pthread_cond_init(&r.cv, NULL);
		if (pthread_create(&th, NULL, vring_reader, &r) != 0) {
			pthread_mutex_destroy(&r.mu);
			pthread_cond_destroy(&r.cv);
			r.threaded = 0;
		}
	}
	while ((v = vring_get(&r)) != NULL) {
		if (v->err) {
			ioerr = v->err;
			vring_put(&r);
			break;
		}
		/* The piece, cut at chunk boundaries. */
		for (uint32_t off = 0; off < v->want && i < p->m.nchunks;) {
			uint32_t clen = mc_manifest_chunk_len(&p->m, i);
			uint32_t seg = clen - pos < v->want - off ? clen - pos : v->want - off;
			if (v->got < off + seg)
				chunk_ok = 0; /* short: the file ends inside this chunk */
			if (chunk_ok) {
				mc_hash_update(chunk, v->buf + off, seg);
				if (bad == 0)
					XXH3_128bits_update(whole, v->buf + off, seg);
			}
			off += seg;
			pos += seg;
			if (pos < clen)
				continue;
			if (chunk_ok) {
				mc_hash_final(chunk, d);
				chunk_ok = memcmp(d, p->m.digests + (size_t)i * MC_DIGEST_LEN, MC_DIGEST_LEN) == 0;
			}
			done += clen;
			if (!chunk_ok) {
				bad++;
				if (cb && cb->bad)
					cb->bad(cb->arg, i);
			}
			if (cb && cb->progress)
				cb->progress(cb->arg, done);
			mc_hash_reset(chunk);
			chunk_ok = 1;
			pos = 0;
			i++;
		}
		vring_put(&r);
	}
	if (r.threaded) {
		atomic_store(&r.stop, 1);
		vring_wake(&r, &r.rwait);
		pthread_join(th, NULL);
		pthread_mutex_destroy(&r.mu);
		pthread_cond_destroy(&r.cv);
	}
	if (ioerr) {
		snprintf(err, errlen, "%s: %s", p->path, mc_strerror(ioerr));
		bad = -ioerr;
	} else if (bad == 0) {
		mc_digest_final(whole, d);
		*payload_ok = memcmp(d, p->m.payload_digest, MC_DIGEST_LEN) == 0;
	}
out:
	for (int k = 0; k < VSLOTS; k++)
		free(r.s[k].buf);
	XXH3_freeState(whole);
	if (chunk)
		mc_hash_free(chunk);
	return bad;
}

/* The payload as libarchive input: whole chunks, each checked before it is handed over. */
struct rd {
	const struct mc_pkg *p;
	uint8_t *buf;
	uint32_t next;
	XXH3_state_t *whole;
	struct mc_aead *ae;  /* encrypted: the package key's context */
	int damaged, ioerr, done; /* ioerr: the errno of a failed read */
	uint64_t bytes;           /* stored bytes read and checked, for p->progress */
	char why[256];
};

/* An encrypted package whose key was not given is refused before anything is read or written. */
static int need_key(const struct mc_pkg *p, char *err, size_t errlen)
{
	if (!p->m.is_encrypted || p->m.unlocked)
		return 0;
	snprintf(err, errlen, "%s: encrypted package: its content needs --decrypt KEY", p->path);
	return -EACCES;
}

/* Next verified chunk: returns its length, 0 at the end, -1 on damage or error (why set). */
static ssize_t rd_next(struct rd *r)
{
	const struct mc_pkg *p = r->p;
	uint8_t d[MC_DIGEST_LEN];

	if (r->damaged || r->ioerr)
		return -1;
	/* An image's holes have no bytes in the payload (the manifest's check vouches for them). */
	while (r->next < p->m.nchunks && mc_manifest_chunk_len(&p->m, r->next) == 0)
		r->next++;
	if (r->next >= p->m.nchunks) {
		if (!r->done) {
			r->done = 1;
			mc_digest_final(r->whole, d);
			if (memcmp(d, p->m.payload_digest, MC_DIGEST_LEN) != 0) {
				r->damaged = 1;
				snprintf(r->why, sizeof r->why, "%s: payload digest does not match the manifest", p->path);
				return -1;
			}
		}
		return 0;
	}
	uint32_t i = r->next, len = mc_manifest_chunk_len(&p->m, i);
	int c = mc_pkg_check_chunk(p, i, r->buf);
	if (c < 0) {
		r->ioerr = -c;
		snprintf(r->why, sizeof r->why, "%s: %s", p->path, mc_strerror(c));
		return -1;
	}
	if (c == 0) {
		uint64_t a, b;
		mc_pkg_chunk_range(p, i, &a, &b);
		r->damaged = 1;
		snprintf(r->why, sizeof r->why, "%s: chunk %u (bytes %llu-%llu): damaged or missing", p->path, i,
			 (unsigned long long)a, (unsigned long long)b);
		return -1;
	}
	XXH3_128bits_update(r->whole, r->buf, len);
	/* Digest first (over the stored ciphertext), then the tag: only authentic plaintext reaches libarchive. */
	if (p->m.is_encrypted && mc_chunk_open(&p->m, r->ae, i, r->buf, r->buf, len) < 0) {
		r->damaged = 1;
		snprintf(r->why, sizeof r->why, "%s: chunk %u: does not decrypt (its tag does not match): tampered", p->path, i);
		return -1;
	}
	r->next++;
	r->bytes += len;
	if (p->progress)
		p->progress(p->progress_arg, r->bytes);
	return len;
}

static la_ssize_t rd_read(struct archive *a, void *arg, const void **out)
{
	struct rd *r = arg;
	ssize_t n = rd_next(r);

	if (n < 0) {
		archive_set_error(a, r->damaged ? EBADMSG : r->ioerr, "%s", r->why);
		return -1;
	}
	*out = r->buf;
	return n;
}

static int rd_init(struct rd *r, const struct mc_pkg *p, char *err, size_t errlen)
{
	int rc;

	memset(r, 0, sizeof *r);
	if ((rc = need_key(p, err, errlen)) < 0)
		return rc;
	r->p = p;
	r->buf = mc_pkg_buf(p->m.chunk_size);
	r->whole = XXH3_createState();
	r->ae = mc_manifest_aead(&p->m);
	if (r->buf == NULL || r->whole == NULL || (p->m.is_encrypted && r->ae == NULL)) {
		free(r->buf);
		XXH3_freeState(r->whole);
		mc_aead_free(r->ae);
		snprintf(err, errlen, "%s: %s", p->path, mc_strerror(-ENOMEM));
		return -ENOMEM;
	}
	XXH3_128bits_reset(r->whole);
	posix_fadvise(p->fd, (off_t)p->l.payload_off, 0, POSIX_FADV_SEQUENTIAL);
	return 0;
}

static void rd_free(struct rd *r)
{
	free(r->buf);
	XXH3_freeState(r->whole);
	mc_aead_free(r->ae);
}


/*
 * The reason and code of a failure, preferring what the reader saw over
 * libarchive's words: -EBADMSG damaged, the read's -errno, -e when given
 * (-ENOMEM: libarchive could not be set up), else -EPROTO (a payload
 * libarchive cannot decode).
 */
static int rd_fail(struct rd *r, struct archive *a, int e, const char *fallback, char *err, size_t errlen)
{
	if (r->damaged || r->ioerr) {
		snprintf(err, errlen, "%s", r->why);
		return r->damaged ? -EBADMSG : -r->ioerr;
	}
	const char *s = a ? archive_error_string(a) : NULL;
	snprintf(err, errlen, "%s: %s", r->p->path, s ? s : fallback);
	return e ? -e : -EPROTO;
}

/* Checks the chunks libarchive did not need (after the end-of-archive marker): 0, or rd_fail's code. */
static int rd_drain(struct rd *r, char *err, size_t errlen)
{
	ssize_t n;

	while ((n = rd_next(r)) > 0)
		;
	return n < 0 ? rd_fail(r, NULL, 0, "", err, errlen) : 0;
}

/* The end of every reader: libarchive's side (a may be NULL), then the reader's. */
static void rd_close(struct rd *r, struct archive *a)
{
	if (a)
		archive_read_free(a);
	rd_free(r);
}

static struct archive *rd_open(struct rd *r, int raw)
{
	struct archive *a = archive_read_new();

	if (a == NULL)
		return NULL;
	archive_read_support_filter_all(a);
	if (raw) {
		/* "empty" first: raw alone rejects an empty image. */
		archive_read_support_format_empty(a);
		archive_read_support_format_raw(a);
	}
	else
		archive_read_support_format_tar(a);
	if (archive_read_open(a, r, NULL, rd_read, NULL) != ARCHIVE_OK) {
		/* Keep a so the caller can read the error. */
	}
	return a;
}

/* The decoded length of a raw package's compressed payload, read through (every chunk checked). */
static int raw_size(struct rd *r, int64_t *size, char *err, size_t errlen)
{
	struct archive *a = rd_open(r, 1);
	struct archive_entry *e;
	static char sink[1 << 16];
	la_ssize_t n = 0;
	int s, rc = 0;

	*size = 0;
	if (a == NULL)
		return rd_fail(r, NULL, ENOMEM, mc_strerror(-ENOMEM), err, errlen);
	if ((s = archive_read_next_header(a, &e)) == ARCHIVE_OK || s == ARCHIVE_WARN) {
		while ((n = archive_read_data(a, sink, sizeof sink)) > 0)
			*size += n;
	}
	if (s == ARCHIVE_FATAL || s == ARCHIVE_FAILED || n < 0)
		rc = rd_fail(r, a, 0, "cannot read data", err, errlen);
	else if ((rc = rd_drain(r, err, errlen)) == 0 && r->damaged)
		rc = rd_fail(r, a, 0, "", err, errlen);
	archive_read_free(a);
	return rc;
}

int mc_pkg_list(const struct mc_pkg *p, void (*fn)(void *arg, struct archive_entry *e), void *arg,
		char *err, size_t errlen)
{
	struct archive *a = NULL;
	struct archive_entry *e;
	struct rd r;
	int rc, s;

	if ((rc = rd_init(&r, p, err, errlen)) < 0)
		return rc;
	if (p->m.kind == MC_KIND_RAW || p->m.kind == MC_KIND_IMAGE) {
		int64_t size = p->m.kind == MC_KIND_IMAGE ? (int64_t)p->m.image_size : (int64_t)p->m.payload_size;
		if (p->m.kind == MC_KIND_RAW && p->m.compression != MC_COMP_NONE) {
			/* The manifest does not say how long a compressed stream decodes to: it is counted. */
			if ((rc = raw_size(&r, &size, err, errlen)) < 0)
				goto out;
		} else if ((rc = rd_drain(&r, err, errlen)) < 0) {
			goto out;
		}
		if ((e = archive_entry_new()) == NULL) {
			snprintf(err, errlen, "%s: %s", p->path, mc_strerror(-ENOMEM));
			rc = -ENOMEM;
			goto out;
		}
		archive_entry_set_pathname(e, mc_pkg_raw_name(&p->m));
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_perm(e, 0644);
		archive_entry_set_mtime(e, (time_t)p->m.ctime, 0);
		archive_entry_set_size(e, (la_int64_t)size);
		fn(arg, e);
		archive_entry_free(e);
		rc = 0;
		goto out;
	}
	a = rd_open(&r, 0);
	if (a == NULL) {
		rc = rd_fail(&r, NULL, ENOMEM, mc_strerror(-ENOMEM), err, errlen);
		goto out;
	}
	while ((s = archive_read_next_header(a, &e)) == ARCHIVE_OK || s == ARCHIVE_WARN) {
		fn(arg, e);
		if (archive_read_data_skip(a) != ARCHIVE_OK) {
			rc = rd_fail(&r, a, 0, "cannot read data", err, errlen);
			goto out;
		}
	}
	if (s != ARCHIVE_EOF) {
		rc = rd_fail(&r, a, 0, "cannot read payload", err, errlen);
		goto out;
	}
	rc = rd_drain(&r, err, errlen);
out:
	rd_close(&r, a);
	return rc;
}

/* write(2) of all n bytes: 0 or -errno. */
static int write_all(int fd, const void *buf, size_t n)
{
	const uint8_t *q = buf;

	while (n > 0) {
		ssize_t w = write(fd, q, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		q += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * The image of a format-2 package onto fd, span by span: each chunk checked,
 * decoded and its span checked. Holes are zeros written, or, when fd is a
 * regular file it can seek in, skipped (the file is extended at the end).
 */
static int extract_image_fd(const struct mc_pkg *p, int fd, char *err, size_t errlen)
{
	struct mc_image_dec *d = mc_image_dec_new();
	uint8_t *in = mc_pkg_buf(p->m.chunk_size), *out = mc_pkg_buf(p->m.chunk_size), dg[MC_DIGEST_LEN];
	XXH3_state_t *whole = XXH3_createState();
	struct stat st;
	uint64_t done = 0; /* stored bytes, for p->progress */
	int fl = fcntl(fd, F_GETFL), rc;
	int seek = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && fl >= 0 && !(fl & O_APPEND) &&
		   lseek(fd, 0, SEEK_CUR) >= 0;
	char why[256];

	if (d == NULL || in == NULL || out == NULL || whole == NULL) {
		snprintf(err, errlen, "%s: %s", p->path, mc_strerror(-ENOMEM));
		rc = -ENOMEM;
		goto out;
	}
	XXH3_128bits_reset(whole);
	posix_fadvise(p->fd, (off_t)p->l.payload_off, 0, POSIX_FADV_SEQUENTIAL);
	for (uint32_t i = 0; i < p->m.nchunks; i++) {
		uint32_t span = mc_manifest_span_len(&p->m, i), len = mc_manifest_chunk_len(&p->m, i);
		if (mc_manifest_chunk_flags(&p->m, i) & MC_CHUNK_HOLE) {
			if (seek) {
				rc = lseek(fd, span, SEEK_CUR) < 0 ? -errno : 0;
			} else {
				memset(out, 0, span);
				rc = write_all(fd, out, span);
			}
			if (rc < 0) {
				snprintf(err, errlen, "output: %s", mc_strerror(rc));
				goto out;
			}
			continue;
		}
		int c = mc_pkg_check_chunk(p, i, in);
		if (c <= 0) {
			uint64_t a, b;
			mc_pkg_chunk_range(p, i, &a, &b);
			if (c < 0)
				snprintf(err, errlen, "%s: %s", p->path, mc_strerror(c));
			else
				snprintf(err, errlen, "%s: chunk %u (bytes %llu-%llu): damaged or missing", p->path, i,
					 (unsigned long long)a, (unsigned long long)b);
			rc = c < 0 ? c : -EBADMSG;
			goto out;
		}
		XXH3_128bits_update(whole, in, len);
		if ((rc = mc_image_decode(d, &p->m, i, in, len, out, why, sizeof why)) < 0) {
			snprintf(err, errlen, "%s: %s", p->path, why);
			goto out;
		}
		if ((rc = write_all(fd, out, span)) < 0) {
			snprintf(err, errlen, "output: %s", mc_strerror(rc));
			goto out;
		}
		done += len;
		if (p->progress)
			p->progress(p->progress_arg, done);
	}
	/* Holes at the end: the file must still have the image's size. */
	if (seek) {
		off_t end = lseek(fd, 0, SEEK_CUR);
		if (end < 0 || ftruncate(fd, end) < 0) {
			rc = -errno;
			snprintf(err, errlen, "output: %s", mc_strerror(rc));
			goto out;
		}
	}
	mc_digest_final(whole, dg);
	if (memcmp(dg, p->m.payload_digest, MC_DIGEST_LEN) != 0) {
		snprintf(err, errlen, "%s: payload digest does not match the manifest", p->path);
		rc = -EBADMSG;
		goto out;
	}
	rc = 0;
out:
	mc_image_dec_free(d);
	free(in);
	free(out);
	XXH3_freeState(whole);
	return rc;
}

int mc_pkg_extract_fd(const struct mc_pkg *p, int fd, char *err, size_t errlen)
{
	struct archive *a = NULL;
	struct archive_entry *e;
	struct rd r;
	uint8_t *out = NULL;
	ssize_t n;
	int rc;

	if ((rc = need_key(p, err, errlen)) < 0)
		return rc;
	if (p->m.kind == MC_KIND_IMAGE)
		return extract_image_fd(p, fd, err, errlen);
	if ((rc = rd_init(&r, p, err, errlen)) < 0)
		return rc;
	if (p->m.compression == MC_COMP_NONE) {
		/* Nothing to decode: the verified chunks are the payload. */
		while ((n = rd_next(&r)) > 0)
			if ((rc = write_all(fd, r.buf, (size_t)n)) < 0) {
				snprintf(err, errlen, "output: %s", mc_strerror(rc));
				goto out;
			}
		if (n < 0)
			rc = rd_fail(&r, NULL, 0, "", err, errlen);
		else
			rc = 0;
		goto out;
	}
	out = mc_pkg_buf(1 << 20);
	a = rd_open(&r, 1);
	if (a == NULL || out == NULL) {
		rc = rd_fail(&r, NULL, ENOMEM, mc_strerror(-ENOMEM), err, errlen);
		goto out;
	}
	int s = archive_read_next_header(a, &e);
	if (s == ARCHIVE_OK || s == ARCHIVE_WARN) {
		while ((n = archive_read_data(a, out, 1 << 20)) > 0)
			if ((rc = write_all(fd, out, (size_t)n)) < 0) {
				snprintf(err, errlen, "output: %s", mc_strerror(rc));
				goto out;
			}
		if (n < 0) {
			rc = rd_fail(&r, a, 0, "cannot decode payload", err, errlen);
			goto out;
		}
	} else if (s != ARCHIVE_EOF) {
		rc = rd_fail(&r, a, 0, "cannot decode payload", err, errlen);
		goto out;
	}
	rc = rd_drain(&r, err, errlen);
out:
	free(out);
	rd_close(&r, a);
	return rc;
}

static int extract_raw(const struct mc_pkg *p, int dirfd, char *err, size_t errlen)
{
	const char *name = mc_pkg_raw_name(&p->m);
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0666);
	int rc;

	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", name, mc_strerror(rc));
		return rc;
	}
	rc = mc_pkg_extract_fd(p, fd, err, errlen);
	if (close(fd) < 0 && rc == 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", name, mc_strerror(rc));
	}
	return rc;
}

/*
 * An error of the disk as a whole, not of one entry: every entry after it
 * would fail the same way (a read-only file system refused 10,279 entries
 * one by one), so extraction stops at the first.
 */
static int disk_error(int e)
{
	return e == EROFS || e == ENOSPC || e == EIO || e == EDQUOT;
}

/* Fails extraction on a disk error of w at path: -errno with the reason in err, else 0. */
static int disk_failed(struct archive *w, const char *dir, const char *path, char *err, size_t errlen)
{
	int e = archive_errno(w);

	if (!disk_error(e))
		return 0;
	snprintf(err, errlen, "%s/%s: %s", dir, path, mc_strerror(e));
	return -e;
}

/* The code of a failure of libarchive's disk writer w: its errno, or -EPROTO when it gave none. */
static int write_code(struct archive *w)
{
	int e = archive_errno(w);

	return e > 0 ? -e : -EPROTO;
}

/*
 * Without MC_EXTRACT_PRIVILEGED: MC_EXTRACT_SKIPPED for a device node (not
 * made at all), MC_EXTRACT_STRIPPED when e had setuid/setgid bits or a
 * security.capability attribute (now taken off e), else -1.
 */
static int unprivilege(struct archive_entry *e)
{
	mode_t t = archive_entry_filetype(e);
	int stripped = 0;

	if (t == AE_IFCHR || t == AE_IFBLK)
		return MC_EXTRACT_SKIPPED;
	/* A setgid directory only hands its group to new files: kept, as it gives nobody more power. */
	if (t != AE_IFDIR && (archive_entry_perm(e) & (S_ISUID | S_ISGID))) {
		archive_entry_set_perm(e, archive_entry_perm(e) & ~(mode_t)(S_ISUID | S_ISGID));
		stripped = 1;
	}
	if (archive_entry_xattr_reset(e) > 0) {
		struct archive_entry *keep = archive_entry_new();
		const char *name;
		const void *val;
		size_t len;
		int had = 0;
		/* No call removes one attribute: keep the others aside, clear, put them back. */
		while (keep && archive_entry_xattr_next(e, &name, &val, &len) == ARCHIVE_OK) {
			if (strcmp(name, "security.capability") == 0)
				had = 1;
			else
				archive_entry_xattr_add_entry(keep, name, val, len);
		}
		if (keep == NULL) {
			archive_entry_xattr_clear(e); /* out of memory: none rather than a capability */
			had = 1;
		} else if (had) {
			archive_entry_xattr_clear(e);
			archive_entry_xattr_reset(keep);
			while (archive_entry_xattr_next(keep, &name, &val, &len) == ARCHIVE_OK)
				archive_entry_xattr_add_entry(e, name, val, len);
		}
		archive_entry_free(keep);
		stripped |= had;
	}
	return stripped ? MC_EXTRACT_STRIPPED : -1;
}

int mc_pkg_extract(const struct mc_pkg *p, const char *dir, unsigned eflags,
		   void (*note)(void *arg, int what, const char *path, const char *why), void *arg,
		   struct mc_extract_stats *st, char *err, size_t errlen)
{
	int flags = ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_ACL |
		    ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_FFLAGS | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
		    ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS;
	struct archive *a = NULL, *w = NULL;
	struct archive_entry *e;
	int saved = -1, dirfd = -1, rc = -1, s;
	struct rd r;
	int have_rd = 0;

	memset(st, 0, sizeof *st);
	if ((rc = need_key(p, err, errlen)) < 0)
		return rc;
	if (geteuid() == 0)
		flags |= ARCHIVE_EXTRACT_OWNER;
	if (mkdir(dir, 0777) < 0 && errno != EEXIST) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", dir, mc_strerror(rc));
		return rc;
	}
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", dir, mc_strerror(rc));
		return rc;
	}
	if (p->m.kind == MC_KIND_RAW || p->m.kind == MC_KIND_IMAGE) {
		rc = extract_raw(p, dirfd, err, errlen);
		close(dirfd);
		return rc;
	}
	saved = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (saved < 0 || fchdir(dirfd) < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", saved < 0 ? "." : dir, mc_strerror(rc));
		goto out;
	}
	if ((rc = rd_init(&r, p, err, errlen)) < 0)
		goto out;
	have_rd = 1;
	a = rd_open(&r, 0);
	w = archive_write_disk_new();
	if (a == NULL || w == NULL) {
		rc = rd_fail(&r, NULL, ENOMEM, mc_strerror(-ENOMEM), err, errlen);
		goto out;
	}
	archive_write_disk_set_options(w, flags);
	archive_write_disk_set_standard_lookup(w);
	while ((s = archive_read_next_header(a, &e)) == ARCHIVE_OK || s == ARCHIVE_WARN) {
		const char *path = archive_entry_pathname(e);
		int what = eflags & MC_EXTRACT_PRIVILEGED ? -1 : unprivilege(e);
		if (what == MC_EXTRACT_SKIPPED) {
			st->skipped++;
			if (note)
				note(arg, what, path, "device node");
			if (archive_read_data_skip(a) != ARCHIVE_OK) {
				rc = rd_fail(&r, a, 0, "cannot read data", err, errlen);
				goto out;
			}
			continue;
		}
		int h = archive_write_header(w, e);
		if (h == ARCHIVE_FATAL) {
			snprintf(err, errlen, "%s/%s: %s", dir, path, archive_error_string(w));
			rc = write_code(w);
			goto out;
		}
		if (h < ARCHIVE_OK && (rc = disk_failed(w, dir, path, err, errlen)) < 0)
			goto out;
		if (h < ARCHIVE_WARN) {
			/* Refused (absolute, "..", through a symlink) or not creatable: skip its data. */
			st->refused++;
			if (note)
				note(arg, MC_EXTRACT_REFUSED, path, archive_error_string(w));
			if (archive_read_data_skip(a) != ARCHIVE_OK) {
				rc = rd_fail(&r, a, 0, "cannot read data", err, errlen);
				goto out;
			}
			continue;
		}
		if (what == MC_EXTRACT_STRIPPED) {
			st->stripped++;
			if (note)
				note(arg, what, path, "setuid, setgid or capabilities");
		}
		if (archive_entry_size(e) > 0) {
			const void *buf;
			size_t len;
			la_int64_t off;
			/* < ARCHIVE_OK: libarchive says a failed write(2) with ARCHIVE_WARN, the bytes lost all the same. */
			while ((s = archive_read_data_block(a, &buf, &len, &off)) == ARCHIVE_OK)
				if (archive_write_data_block(w, buf, len, off) < ARCHIVE_OK) {
					if ((rc = disk_failed(w, dir, path, err, errlen)) == 0) {
						snprintf(err, errlen, "%s/%s: %s", dir, path, archive_error_string(w));
						rc = write_code(w);
					}
					goto out;
				}
			if (s != ARCHIVE_EOF) {
				rc = rd_fail(&r, a, 0, "cannot read data", err, errlen);
				goto out;
			}
		}
		h = archive_write_finish_entry(w);
		if (h < ARCHIVE_OK && (rc = disk_failed(w, dir, path, err, errlen)) < 0)
			goto out;
		if (h < ARCHIVE_WARN) {
			snprintf(err, errlen, "%s/%s: %s", dir, path, archive_error_string(w));
			rc = write_code(w);
			goto out;
		}
	}
	if (s != ARCHIVE_EOF) {
		rc = rd_fail(&r, a, 0, "cannot read payload", err, errlen);
		goto out;
	}
	if (archive_write_close(w) < ARCHIVE_WARN) {
		snprintf(err, errlen, "%s: %s", dir, archive_error_string(w));
		rc = write_code(w);
		goto out;
	}
	rc = rd_drain(&r, err, errlen);
out:
	if (w)
		archive_write_free(w);
	if (have_rd) /* a is opened only after r */
		rd_close(&r, a);
	if (saved >= 0) {
		if (fchdir(saved) < 0 && rc == 0) {
			rc = -errno;
			snprintf(err, errlen, "working directory: %s", mc_strerror(rc));
		}
		close(saved);
	}
	close(dirfd);
	return rc;
}

long mc_pkg_verify_content(const struct mc_pkg *p, void (*bad)(void *arg, uint32_t chunk), void *arg, char *err,
			   size_t errlen)
{
	struct mc_image_dec *d = p->m.format == MC_PKG_VERSION_IMAGE ? mc_image_dec_new() : NULL;
	struct mc_aead *ae = mc_manifest_aead(&p->m);
	uint8_t *in = mc_pkg_buf(p->m.chunk_size), *out = mc_pkg_buf(p->m.chunk_size);
	long nbad = 0;
	char why[256];

	if ((nbad = need_key(p, err, errlen)) < 0)
		goto out;
	if (in == NULL || out == NULL || (p->m.is_encrypted && ae == NULL) ||
	    (p->m.format == MC_PKG_VERSION_IMAGE && d == NULL)) {
		snprintf(err, errlen, "%s: %s", p->path, mc_strerror(-ENOMEM));
		nbad = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < p->m.nchunks; i++) {
		uint32_t len = mc_manifest_chunk_len(&p->m, i);
		int c;
		if (mc_manifest_chunk_flags(&p->m, i) & MC_CHUNK_HOLE)
			continue;
		if ((c = mc_pkg_check_chunk(p, i, in)) < 0) {
			snprintf(err, errlen, "%s: %s", p->path, mc_strerror(c));
			nbad = c;
			goto out;
		}
		if (c == 1 && d) {
			int r = mc_image_decode(d, &p->m, i, in, len, out, why, sizeof why);
			if (r < 0 && r != -EBADMSG) { /* out of memory: not the chunk's fault */
				snprintf(err, errlen, "%s: %s", p->path, why);
				nbad = r;
				goto out;
			}
			c = r == 0;
		} else if (c == 1 && p->m.is_encrypted && mc_chunk_open(&p->m, ae, i, in, out, len) < 0) {
			c = 0;
		}
		if (c == 0) {
			nbad++;
			if (bad)
				bad(arg, i);
		}
	}
out:
	mc_image_dec_free(d);
	mc_aead_free(ae);
	free(in);
	free(out);
	return nbad;
}
