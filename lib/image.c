/* Seekable image packages made: spans compressed alone (zstd) in parallel, zero spans as holes (decoding: imagedec.c). */
#include "image.h"
#include "exitcode.h"
#include "disk.h"
#include "fsmap.h"
#include "crypto.h"
#include "workq.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>
#if defined(__x86_64__) || defined(__i386__)
/* The library's runtime dispatch to its AVX2/AVX-512 code, where the CPU has it. */
#include <xxh_x86dispatch.h>
#endif

int mc_image_is_zero(const uint8_t *p, size_t n)
{
	/* Word by word to the first nonzero one: zero spans are read whole, so this is what costs. */
	size_t i = 0;

	for (; i < n && ((uintptr_t)(p + i) & 7); i++)
		if (p[i])
			return 0;
	for (; i + 32 <= n; i += 32) {
		uint64_t a, b, c, d;
		memcpy(&a, p + i, 8);
		memcpy(&b, p + i + 8, 8);
		memcpy(&c, p + i + 16, 8);
		memcpy(&d, p + i + 24, 8);
		if (a | b | c | d)
			return 0;
	}
	for (; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/* ---- the source ---- */

struct src {
	int fd, own;
	const char *name;     /* for messages */
	int seekable;         /* pread at base + offset; size known */
	int sparse;           /* a regular file: ask SEEK_DATA/SEEK_HOLE */
	uint64_t base, size;
	uint64_t dstart, dend; /* the data region known around the last span asked about (sparse) */
	int eof;
};

static int src_open(struct src *s, const char *path, char *err, size_t errlen)
{
	struct stat st;

	memset(s, 0, sizeof *s);
	s->name = strcmp(path, "-") == 0 ? "standard input" : path;
	if (strcmp(path, "-") == 0) {
		s->fd = STDIN_FILENO;
	} else if ((s->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		int e0 = errno; /* before anything can change it */
		snprintf(err, errlen, "%s: %s", path, mc_strerror(-e0));
		return -e0;
	} else {
		s->own = 1;
	}
	if (fstat(s->fd, &st) < 0) {
		int e0 = errno; /* before anything can change it */
		snprintf(err, errlen, "%s: %s", s->name, mc_strerror(-e0));
		return -e0;
	}
	if (S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: is a directory; --image takes a block device, a regular file or -", s->name);
		return -EISDIR;
	}
	if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) {
		off_t pos = s->own ? 0 : lseek(s->fd, 0, SEEK_CUR);
		uint64_t size = (uint64_t)st.st_size;
		if (S_ISBLK(st.st_mode) && ioctl(s->fd, BLKGETSIZE64, &size) < 0) {
			int e0 = errno; /* before anything can change it */
			snprintf(err, errlen, "%s: cannot tell its size: %s", s->name, mc_strerror(-e0));
			return -e0;
		}
		if (pos >= 0 && (uint64_t)pos <= size) {
			s->seekable = 1;
			s->sparse = S_ISREG(st.st_mode);
			s->base = (uint64_t)pos;
			s->size = size - (uint64_t)pos;
		}
	}
	posix_fadvise(s->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	return 0;
}

static void src_close(struct src *s)
{
	if (s->own && s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

/* 1 when [off, off+len) of a sparse file is one hole: no data there to read. */
static int src_hole(struct src *s, uint64_t off, uint64_t len)
{
	if (!s->sparse)
		return 0;
	if (off >= s->dend) {
		off_t d = lseek(s->fd, (off_t)(s->base + off), SEEK_DATA), h;
		if (d < 0) {
			if (errno != ENXIO) { /* no SEEK_DATA here: read everything */
				s->sparse = 0;
				return 0;
			}
			s->dstart = s->dend = UINT64_MAX; /* no data after off */
		} else if ((h = lseek(s->fd, d, SEEK_HOLE)) < 0) {
			s->sparse = 0;
			return 0;
		} else {
			s->dstart = (uint64_t)d - s->base;
			s->dend = (uint64_t)h - s->base;
		}
	}
	return off + len <= s->dstart;
}

/*
 * Reads span bytes at off (stream: the next ones); returns how many came,
 * fewer only at the end, or with the reason in err the read's -errno, or
 * -EIO when a source of known size ends early.
 */
static ssize_t src_read(struct src *s, uint64_t off, uint8_t *buf, size_t n, char *err, size_t errlen)
{
	size_t got = 0;

	while (got < n && !s->eof) {
		ssize_t r = s->seekable ? pread(s->fd, buf + got, n - got, (off_t)(s->base + off + got))
					: read(s->fd, buf + got, n - got);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int e0 = errno; /* before anything can change it */
			snprintf(err, errlen, "%s: %s", s->name, mc_strerror(-e0));
			return -e0;
		}
		if (r == 0)
			s->eof = 1;
		got += (size_t)r;
	}
	if (s->seekable && got < n) {
		snprintf(err, errlen, "%s: shorter than its size said (%llu bytes): did it change while read?",
			 s->name, (unsigned long long)s->size);
		return -EIO;
	}
	return (ssize_t)got;
}

/* ---- spans in flight ---- */

struct slot {
	uint8_t *in, *out;
	uint32_t len;         /* span length */
	uint32_t stored;      /* stored length (0: hole) */
	uint8_t flags;
	int skipped;          /* a sparse file's hole (or unused by its file system): never read, in is not filled */
	int dontcare;         /* skipped because no file system block in it is used */
	uint8_t dig[MC_DIGEST_LEN], span[MC_DIGEST_LEN];
	uint8_t tag[MC_AEAD_TAG_LEN]; /* encrypted packages: the stored bytes' tag */
	uint32_t index;       /* the chunk it holds (the nonce of its encryption) */
	const char *zerr;     /* a compressor error */
};

/* The spans in flight: a ring of slots (lib/workq.h) read in order, compressed by workers, emitted in order. */
struct pool {
	const struct mc_pkg_create_opts *o;
	struct slot *s;
	unsigned nslots;
	size_t outcap;
	struct run *r;        /* where emit appends */
	/* Span digests of a skipped hole (never read): a whole span of zeros, and the last, shorter one. */
	uint8_t zero_full[MC_DIGEST_LEN], zero_last[MC_DIGEST_LEN];
	const struct mc_manifest *m; /* its digest algorithm (and salt) for the stored digests */
};


/*
 * Compresses (or keeps) one span: digests, hole or frame or raw; for an
 * encrypted package the stored bytes are then sealed in place, and their
 * digest is that of the ciphertext. All of it on the worker: the writer
 * only writes.
 */
static void work(struct pool *p, struct slot *s, ZSTD_CCtx *cc, struct mc_aead *ae)
{
	s->zerr = NULL;
	memset(s->tag, 0, sizeof s->tag);
	if (s->skipped || mc_image_is_zero(s->in, s->len)) {
		s->stored = 0;
		s->flags = MC_CHUNK_HOLE | (s->skipped && s->dontcare ? MC_CHUNK_DONTCARE : 0);
		if (s->skipped)
			memcpy(s->span, s->len == p->o->chunk_size ? p->zero_full : p->zero_last, MC_DIGEST_LEN);
		else
			mc_digest(s->in, s->len, s->span);
		mc_chunk_digest(p->m, "", 0, s->dig);
		return;
	}
	mc_digest(s->in, s->len, s->span);
	s->flags = MC_CHUNK_RAW;
	s->stored = s->len;
	if (cc) {
		size_t z = ZSTD_compress2(cc, s->out, p->outcap, s->in, s->len);
		if (ZSTD_isError(z))
			s->zerr = ZSTD_getErrorName(z);
		else if (z < s->len) {
			s->flags = 0;
			s->stored = (uint32_t)z;
		}
	}
	uint8_t *b = s->flags & MC_CHUNK_RAW ? s->in : s->out;
	if (p->m->is_encrypted && (ae == NULL || mc_chunk_seal(p->m, ae, s->index, b, s->stored, s->tag) < 0))
		s->zerr = "cannot encrypt";
	mc_chunk_digest(p->m, b, s->stored, s->dig);
}

static ZSTD_CCtx *new_cctx(const struct mc_pkg_create_opts *o)
{
	ZSTD_CCtx *cc;

	if (o->compression != MC_COMP_ZSTD)
		return NULL;
	if ((cc = ZSTD_createCCtx()) == NULL)
		return NULL;
	ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, o->level >= 0 ? o->level : ZSTD_CLEVEL_DEFAULT);
	/* The manifest has the digests; the frame says its size, so a decoder knows it before it starts. */
	ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 0);
	ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 1);
	return cc;
}

/* A worker's own compressor and AEAD context. */
struct wts {
	ZSTD_CCtx *cc;
	struct mc_aead *ae;
};

static void *worker_start(void *arg)
{
	struct pool *p = arg;
	struct wts *w = calloc(1, sizeof *w);

	if (w) {
		w->cc = new_cctx(p->o);
		w->ae = mc_manifest_aead(p->m);
	}
	return w;
}

static void worker_stop(void *arg, void *ts)
{
	struct wts *w = ts;

	if (w) {
		ZSTD_freeCCtx(w->cc);
		mc_aead_free(w->ae);
		free(w);
	}
}

static int worker_work(void *arg, void *ts, unsigned slot, char *err, size_t errlen)
{
	struct pool *p = arg;
	struct wts *w = ts;
	struct slot *s = &p->s[slot];

	if (w == NULL || (w->cc == NULL && p->o->compression == MC_COMP_ZSTD))
		s->zerr = mc_strerror(-ENOMEM); /* one pointer: the emitter says -ENOMEM, not -EIO */
	else
		work(p, s, w->cc, w->ae);
	return 0; /* a compressor error is the emitter's to tell, in order */
}

static int emit_slot(void *arg, unsigned slot, char *err, size_t errlen);

static const struct mc_workq_ops span_ops = {worker_start, worker_stop, worker_work, emit_slot};

/* The growing per-chunk tables of the manifest. */
struct tables {
	uint32_t *lens;
	uint8_t *flags, *dig, *span, *tags;
	size_t n, cap;
};

static int tables_add(struct tables *t, const struct slot *s)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 1024;
		uint32_t *l = realloc(t->lens, cap * sizeof *l);
		if (l)
			t->lens = l;
		uint8_t *f = realloc(t->flags, cap);
		if (f)
			t->flags = f;
		uint8_t *d = realloc(t->dig, cap * MC_DIGEST_LEN);
		if (d)
			t->dig = d;
		uint8_t *sp = realloc(t->span, cap * MC_DIGEST_LEN);
		if (sp)
			t->span = sp;
		uint8_t *tg = realloc(t->tags, cap * MC_AEAD_TAG_LEN);
		if (tg)
			t->tags = tg;
		if (!l || !f || !d || !sp || !tg)
			return -ENOMEM;
		t->cap = cap;
	}
	t->lens[t->n] = s->stored;
	t->flags[t->n] = s->flags;
	memcpy(t->dig + t->n * MC_DIGEST_LEN, s->dig, MC_DIGEST_LEN);
	memcpy(t->span + t->n * MC_DIGEST_LEN, s->span, MC_DIGEST_LEN);
	memcpy(t->tags + t->n * MC_AEAD_TAG_LEN, s->tag, MC_AEAD_TAG_LEN);
	t->n++;
	return 0;
}

static void tables_free(struct tables *t)
{
	free(t->lens);
	free(t->flags);
	free(t->dig);
	free(t->span);
	free(t->tags);
}

/* ---- --used-only: the volumes of the source and the blocks their file systems leave free ---- */

struct usedmap {
	struct mc_extents fr;  /* free byte ranges, in image order */
	size_t cur;            /* the first range that may still meet the next span */
	char table[5];
	unsigned nvols;
	struct mc_vol vols[MC_VOL_MAX];
};

/*
 * Reads the partition table (or finds one bare file system) and each
 * volume's block map, refusing a source in use or a file system that is not
 * clean (unless forced): what the spans will leave out. Returns 0 or a
 * negative errno code with the reason in err.
 */
static int usedmap_plan(const struct mc_pkg_create_opts *o, struct src *in, struct usedmap *u, char *err,
			size_t errlen)
{
	const char *path = o->paths[0];
	struct mc_disk *d;
	int r;

	if (strcmp(path, "-") == 0 || !in->seekable || in->base != 0) {
		snprintf(err, errlen, "--used-only: %s: reads the file systems of a block device or a regular file, "
			 "not a stream", in->name);
		return -EINVAL;
	}
	if (!o->force && (r = mc_disk_check_unused(path, err, errlen)) < 0)
		return r;
	if ((d = malloc(sizeof *d)) == NULL) {
		snprintf(err, errlen, "%s: %s", path, mc_strerror(-ENOMEM));
		return -ENOMEM;
	}
	if ((r = mc_disk_read(path, in->size, d, err, errlen)) == 0) {
		/* No partition table: the source is one volume (a bare file system, or nothing known). */
		d->n = 1;
		d->part[0].start = 0;
		d->part[0].size = in->size;
	}
	for (unsigned i = 0; r >= 0 && i < d->n; i++) {
		struct mc_vol *v = &u->vols[i];
		memset(v, 0, sizeof *v);
		v->start = d->part[i].start;
		v->size = d->part[i].size;
		if ((r = mc_fsmap(path, in->fd, v->start, v->size, o->force ? MC_FSMAP_FORCE : 0, v->fstype, &u->fr,
				  &v->used, err, errlen)) > 0)
			v->flags = MC_VOL_USED_ONLY;
	}
	if (r >= 0) {
		memcpy(u->table, d->table, sizeof u->table);
		u->nvols = d->n;
	}
	free(d);
	return r < 0 ? r : 0;
}

/* Bytes of [off, off+len) that no file system uses; moves the cursor (spans come in order). */
static uint64_t usedmap_free(struct usedmap *u, uint64_t off, uint64_t len)
{
	uint64_t n = 0;

	while (u->cur < u->fr.n && u->fr.v[u->cur].off + u->fr.v[u->cur].len <= off)
		u->cur++;
	for (size_t i = u->cur; i < u->fr.n && u->fr.v[i].off < off + len; i++) {
		uint64_t a = u->fr.v[i].off > off ? u->fr.v[i].off : off;
		uint64_t b = u->fr.v[i].off + u->fr.v[i].len < off + len ? u->fr.v[i].off + u->fr.v[i].len : off + len;
		n += b - a;
	}
	return n;
}

/* Zeros the free blocks inside a span read at off: they compress away, and the target gets zeros there. */
static void usedmap_zero(const struct usedmap *u, uint64_t off, uint8_t *buf, uint64_t len)
{
	for (size_t i = u->cur; i < u->fr.n && u->fr.v[i].off < off + len; i++) {
		uint64_t a = u->fr.v[i].off > off ? u->fr.v[i].off : off;
		uint64_t b = u->fr.v[i].off + u->fr.v[i].len < off + len ? u->fr.v[i].off + u->fr.v[i].len : off + len;
		if (b > a)
			memset(buf + (a - off), 0, b - a);
	}
}

/* The state of one create: where stored bytes go, and what the manifest will say (the emitter's). */
struct run {
	const struct mc_pkg_create_opts *o;
	int fd;
	uint64_t base, pos;   /* payload written so far, from base */
	uint64_t image;       /* image bytes read */
	XXH3_state_t *whole;
	struct tables t;
	struct usedmap *used; /* --used-only, else NULL */
};

/* Appends a finished span to the payload and the tables, in chunk order. */
static int emit_slot(void *arg, unsigned slot, char *err, size_t errlen)
{
	struct pool *p = arg;
	struct run *r = p->r;
	struct slot *s = &p->s[slot];
	const uint8_t *b = s->flags & MC_CHUNK_RAW ? s->in : s->out;

	if (s->zerr) {
		snprintf(err, errlen, "zstd: %s", s->zerr);
		return s->zerr == mc_strerror(-ENOMEM) ? -ENOMEM : -EIO;
	}
	int e = s->stored ? mc_pwrite_all(r->fd, b, s->stored, r->base + r->pos) : 0;
	if (e < 0) {
		snprintf(err, errlen, "%s: %s", r->o->output, mc_strerror(e));
		return e; /* lib/workq keeps the code of a failed emit */
	}
	XXH3_128bits_update(r->whole, b, s->stored);
	r->pos += s->stored;
	if (tables_add(&r->t, s) < 0) {
		snprintf(err, errlen, "%s: %s", r->o->output, mc_strerror(-ENOMEM));
		return -ENOMEM;
	}
	return 0;
}

/*
 * Reads the spans in order into the ring of slots; workers compress them
 * (or this thread, with no workers) and the emitter writes them in order. A
 * slot is refilled only once its span is written: memory is the ring.
 */
static int pump(struct run *r, struct src *in, struct pool *p, struct mc_workq *q, char *err, size_t errlen)
{
	uint64_t next = 0, off = 0;
	uint32_t chunk = r->o->chunk_size;
	unsigned k;
	int rc;

	for (;;) {
		if (in->seekable && off >= in->size)
			break;
		if ((rc = mc_workq_get(q, &k, err, errlen)) < 0)
			return rc;
		struct slot *s = &p->s[k];
		uint32_t want = in->seekable && in->size - off < chunk ? (uint32_t)(in->size - off) : chunk;
		uint64_t unused = r->used ? usedmap_free(r->used, off, want) : 0;
		s->dontcare = want > 0 && unused == want;
		s->skipped = s->dontcare || src_hole(in, off, want);
		if (s->skipped) {
			s->len = want;
		} else {
			ssize_t got = src_read(in, off, s->in, want, err, errlen);
			if (got < 0)
				return (int)got;
			if (got == 0)
				break;
			s->len = (uint32_t)got;
			if (unused)
				usedmap_zero(r->used, off, s->in, s->len);
		}
		off += s->len;
		if (r->o->progress)
			r->o->progress(r->o->progress_arg, off, in->seekable ? in->size : 0);
		s->index = (uint32_t)next;
		if ((rc = mc_workq_put(q, err, errlen)) < 0)
			return rc;
		next++;
		if (s->len < chunk) /* the last, shorter span */
			break;
	}
	r->image = off;
	/* The spans still in flight. */
	return mc_workq_wait(q, err, errlen);
}

int mc_image_create(const struct mc_pkg_create_opts *o, struct mc_manifest *m, int fd, uint64_t *base,
		    char *err, size_t errlen)
{
	struct src in;
	struct pool p;
	struct run r = {.o = o, .fd = fd};
	struct mc_workq *q = NULL;
	/*
	 * One worker at least, even at -j 0 or 1: this thread reads, the worker
	 * compresses (and seals and digests), the emitter writes, all at once.
	 */
	unsigned threads = o->threads > 1 ? o->threads : 1;
	int rc = -ENOMEM;

	memset(&p, 0, sizeof p);
	p.o = o;
	p.m = m;
	p.r = &r;
	if (o->npaths != 1) {
		snprintf(err, errlen, "--image packs one SOURCE (a block device, a regular file or -), not %u", o->npaths);
		return -EINVAL;
	}
	if (o->compression != MC_COMP_ZSTD && o->compression != MC_COMP_NONE) {
		snprintf(err, errlen, "--image: spans are zstd frames or stored as they are (-z zstd or none), not %s",
			 mc_comp_name(o->compression));
		return -EINVAL;
	}
	if ((rc = src_open(&in, o->paths[0], err, errlen)) < 0) {
		src_close(&in);
		return rc;
	}
	if (o->used_only) {
		if ((r.used = calloc(1, sizeof *r.used)) == NULL) {
			snprintf(err, errlen, "%s: %s", o->output, mc_strerror(-ENOMEM));
			src_close(&in);
			return -ENOMEM;
		}
		if ((rc = usedmap_plan(o, &in, r.used, err, errlen)) < 0) {
			mc_extents_free(&r.used->fr);
			free(r.used);
			src_close(&in);
			return rc;
		}
		m->nvols = (uint16_t)r.used->nvols; /* the payload offset counts their records */
	}
	/* Known size: the manifest's length is known too, so the payload goes where it belongs. */
	m->format = MC_PKG_VERSION_IMAGE;
	m->image_size = in.size;
	*base = in.seekable && in.size ? mc_manifest_payload_off(m) : 0;
	r.base = *base;
	/* Two slots a worker; with one worker three: one read, one compressed and one written at once. */
	p.nslots = threads > 1 ? 2 * threads : 3;
	p.outcap = ZSTD_compressBound(o->chunk_size);
	p.s = calloc(p.nslots, sizeof *p.s);
	r.whole = XXH3_createState();
	if (p.s == NULL || r.whole == NULL)
		goto nomem;
	for (unsigned i = 0; i < p.nslots; i++)
		if ((p.s[i].in = mc_pkg_buf(o->chunk_size)) == NULL || (p.s[i].out = mc_pkg_buf(p.outcap)) == NULL)
			goto nomem;
	memset(p.s[0].out, 0, o->chunk_size);
	mc_digest(p.s[0].out, o->chunk_size, p.zero_full);
	mc_digest(p.s[0].out, in.seekable ? in.size % o->chunk_size : 0, p.zero_last);
	XXH3_128bits_reset(r.whole);
	/* Workers compress, the emitter writes in order: lib/workq.h. */
	if ((rc = mc_workq_new(&q, &span_ops, &p, threads, p.nslots)) < 0) {
		snprintf(err, errlen, "-j %u: cannot start a thread: %s", threads, mc_strerror(rc));
		goto out;
	}
	if ((rc = pump(&r, &in, &p, q, err, errlen)) < 0)
		goto out_pool;
	m->image_size = r.image; /* a stream's size is what came */
	if (r.t.n > UINT32_MAX) {
		snprintf(err, errlen, "%s: too many chunks; use a larger --chunk-size", o->output);
		rc = -EINVAL;
		goto out_pool;
	}
	mc_digest_final(r.whole, m->payload_digest);
	if (r.used) {
		/* Each chunk's stored bytes count for the volume its span starts in (an image offset, not a payload one). */
		for (size_t i = 0, v = 0; i < r.t.n; i++) {
			uint64_t so = (uint64_t)i * o->chunk_size;
			while (v < r.used->nvols && so >= r.used->vols[v].start + r.used->vols[v].size)
				v++;
			if (v < r.used->nvols && so >= r.used->vols[v].start)
				r.used->vols[v].stored += r.t.lens[i];
		}
	}
	m->tags = r.t.tags;
	rc = mc_manifest_encode_image_vols(m, r.t.lens, r.t.flags, r.t.dig, r.t.span, r.used ? r.used->table : "",
					   r.used ? r.used->vols : NULL, r.used ? r.used->nvols : 0, err, errlen);
out_pool:
	mc_workq_free(q); /* before the slots and tables it works on */
	q = NULL;
	goto out;
nomem:
	snprintf(err, errlen, "%s: %s", o->output, mc_strerror(-ENOMEM));
	rc = -ENOMEM;
out:
	for (unsigned i = 0; p.s && i < p.nslots; i++) {
		free(p.s[i].in);
		free(p.s[i].out);
	}
	mc_workq_free(q);
	free(p.s);
	src_close(&in);
	XXH3_freeState(r.whole);
	tables_free(&r.t);
	if (r.used) {
		mc_extents_free(&r.used->fr);
		free(r.used);
	}
	return rc;
}
