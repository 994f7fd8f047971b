/* Repair logic: which chunks are missing, which source next, verify, write, save state; see repair.h. */
#include "repair.h"
#include "exitcode.h"
#include "clock.h"
#include "crypto.h"
#include "rand.h"
#include "resume.h"
#include "target.h"
#include "tstate.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_BASE_MS 250
#define BACKOFF_CAP_MS 30000
#define RETRY_AFTER_MAX_MS (10 * 60 * 1000) /* a source asking for longer is dropped for this run */
#define MAX_ATTEMPTS 5
#define SAVE_EVERY_MS 1000
#define PIECE_MIN (1ull << 20)
#define PIECE_MAX (32ull << 20)
#define LOCAL_ERR (-10)
#define PC_BUFS 16

/* Assembly of the chunk a transfer slot is receiving. */
struct asm_slot {
	int64_t chunk; /* -1: none */
	uint32_t fill;
	uint8_t *buf;
};

struct run {
	const struct mc_repair_opts *o;
	struct mc_repair_result *res;
	int fd;
	int in_place;
	struct mc_manifest m;
	int have_m;
	struct mc_pkg_layout l;
	uint8_t **bad;          /* per source: chunks it served wrong (allocated once it opened) */
	struct srun {
		int gone;       /* given up, refused, or served all it could: not tried again */
		unsigned lefts; /* times left in a row (stalled, too slow) without a verified chunk */
	} *sr;
	unsigned cur;           /* source being fetched from */
	struct asm_slot *slots;
	unsigned nslots;
	uint64_t last_save_ms;
	int dirty;
	uint64_t rng;
	char *err;
	size_t errlen;
	int failed;             /* local error inside the sink */
	int code;               /* the first local error's negative code (lib/exitcode.h): what mc_repair_run returns */
	/*
	 * Chunks partly in the file (spans from the state): only their gaps are
	 * fetched, into a copy of the chunk read from the file, which is verified
	 * and written once all the gaps of the round came, like any chunk. One
	 * that does not verify loses its spans (live 0) and is fetched whole next.
	 * At most PC_BUFS such copies at once: beyond, one is given up for the
	 * round (spoiled) and its gaps are asked for again in the next.
	 */
	struct pchunk {
		uint32_t chunk;
		uint64_t need, got; /* bytes asked for and delivered this round */
		int live, spoiled;
		uint8_t *buf;
	} *pc;
	uint32_t npc, nbufs;
	long pc_changed;        /* partial chunks verified or given up this round */
	uint64_t last_tick_ms;  /* last MC_REPAIR_EV_TICK */
	/* --to: the target written in place (o->target), its identity for the state, what is known of it */
	struct mc_target *tgt;
	uint8_t tid[MC_DIGEST_LEN];
	int m_from_state;       /* the manifest came from o->state_path: a source must serve that package */
	int accepted;           /* a source was accepted: writing may begin */
	int made_target;        /* the target did not exist: mc_target_open made it (removed again when refused) */
};

/* Jitter only, seeded from getrandom. */
static uint32_t rnd32(struct run *r)
{
	return (uint32_t)(mc_xorshift(&r->rng) >> 32);
}

static void scopy(char *d, size_t n, const char *s)
{
	size_t k = strnlen(s, n - 1);

	memcpy(d, s, k);
	d[k] = '\0';
}

static int stopped(const struct run *r)
{
	return r->o->stop && *r->o->stop;
}

static void nap(struct run *r, uint64_t ms)
{
	uint64_t end = mc_now_ms() + ms;

	while (!stopped(r)) {
		uint64_t t = mc_now_ms();
		if (t >= end)
			break;
		uint64_t d = end - t < 100 ? end - t : 100;
		struct timespec ts = {(time_t)(d / 1000), (long)(d % 1000) * 1000000L};
		nanosleep(&ts, NULL);
	}
}

static uint64_t chunk_bytes(const struct run *r, int have);
static struct pchunk *find_pc(const struct run *r, uint32_t chunk);
static void sync_spans(struct run *r);

static void emit(struct run *r, enum mc_repair_ev_type type, const char *source, const char *msg,
		 uint32_t chunk, uint64_t delay_ms)
{
	struct mc_repair_event ev = {0};
	const struct mc_state *st = &r->res->st;

	if (r->o->event == NULL)
		return;
	ev.type = type;
	ev.manifest = r->have_m ? &r->m : NULL;
	ev.source = source;
	ev.msg = msg;
	ev.chunk = chunk;
	ev.delay_ms = delay_ms;
	if (r->have_m && st->have) {
		ev.nchunks = r->m.nchunks;
		ev.have = st->nhave;
		ev.need = r->m.nchunks - st->nhave;
		ev.bytes_need = r->res->bytes_need;
		/* Counted only for the scan event: per chunk it would make a repair quadratic. */
		if (type == MC_REPAIR_EV_LOCAL)
			ev.bytes_have = chunk_bytes(r, 1);
	}
	for (unsigned i = 0; i < r->res->nsrc; i++) {
		struct mc_source_stats ss;
		if (r->res->handles[i]) {
			mc_source_get_stats(r->res->handles[i], &ss);
			ev.bytes_fetched += ss.bytes;
		}
	}
	r->o->event(r->o->ctx, &ev);
}

size_t mc_repair_ranges(const struct mc_manifest *m, const uint8_t *want, const struct mc_span *spans, uint32_t nspans,
			uint64_t max_len, struct mc_range *out)
{
	struct mc_pkg_layout l;
	size_t n = 0;
	uint32_t si = 0;

	mc_manifest_layout(m, &l);
	for (uint32_t i = 0; i < m->nchunks; i++) {
		if (!((want[i >> 3] >> (i & 7)) & 1))
			continue;
		uint64_t off = l.payload_off + mc_manifest_chunk_off(m, i);
		uint32_t len = mc_manifest_chunk_len(m, i);
		while (si < nspans && spans[si].chunk < i)
			si++;
		if (si < nspans && spans[si].chunk == i) {
			/* The gaps between the parts already there, and after the last. */
			uint32_t pos = 0;
			int ours = 0; /* the last range is a gap of this chunk */
			for (;; si++) {
				int last = si >= nspans || spans[si].chunk != i;
				uint32_t end = last ? len : spans[si].off;
				if (end > pos) {
					if (ours && off + pos - (out[n - 1].off + out[n - 1].len) < MC_REPAIR_GAP)
						out[n - 1].len = off + end - out[n - 1].off;
					else
						out[n++] = (struct mc_range){off + pos, end - pos};
					ours = 1;
				}
				if (last)
					break;
				pos = spans[si].off + spans[si].len;
			}
			continue;
		}
		if (n > 0 && out[n - 1].off + out[n - 1].len == off && out[n - 1].len + len <= max_len)
			out[n - 1].len += len;
		else
			out[n++] = (struct mc_range){off, len};
	}
	return n;
}

uint64_t mc_repair_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t cap_ms, uint64_t retry_after_ms, uint32_t rnd)
{
	uint64_t d = base_ms;

	for (unsigned i = 0; i < attempt && d < cap_ms; i++)
		d *= 2;
	if (d > cap_ms)
		d = cap_ms;
	d = d / 2 + (uint64_t)(((double)rnd / 4294967296.0) * (double)(d - d / 2));
	return d < retry_after_ms ? retry_after_ms : d;
}

char *mc_repair_list_missing(const struct mc_state *st, char *buf, size_t len)
{
	size_t n = 0;
	uint32_t i = 0;

	if (len == 0)
		return buf;
	buf[0] = '\0';
	while (i < st->nchunks) {
		if (mc_state_has(st, i)) {
			i++;
			continue;
		}
		uint32_t j = i;
		while (j + 1 < st->nchunks && !mc_state_has(st, j + 1))
			j++;
		char item[32];
		int k = j > i ? snprintf(item, sizeof item, "%s%" PRIu32 "-%" PRIu32, n ? "," : "", i, j)
			      : snprintf(item, sizeof item, "%s%" PRIu32, n ? "," : "", i);
		if (n + (size_t)k + 4 >= len) {
			snprintf(buf + n, len - n, "%s", len - n > 4 ? ",..." : "");
			return buf;
		}
		memcpy(buf + n, item, (size_t)k + 1);
		n += (size_t)k;
		i = j + 1;
	}
	return buf;
}

/*
 * A local error (its reason already in r->err): keeps its code, the first
 * one, for mc_repair_run to return; the static functions here answer -1.
 */
static int lerr(struct run *r, int code)
{
	if (r->code == 0)
		r->code = code < 0 ? code : -EIO;
	return -1;
}

/* Makes the state durable: data first, then the map (as mcast-recv does). */
static int save_state(struct run *r, int force)
{
	uint64_t t = mc_now_ms();

	if (!r->dirty || (!force && t - r->last_save_ms < SAVE_EVERY_MS))
		return 0;
	if (r->o->target) {
		/* The target first, then its state: never a chunk marked that is not durable. */
		if (r->tgt == NULL)
			return 0;
		int c = mc_target_sync(r->tgt, r->err, r->errlen);
		if (c < 0)
			return lerr(r, c);
		sync_spans(r);
		if ((c = mc_tstate_save(r->o->state_path, &r->m, r->tid, &r->res->st, r->err, r->errlen)) < 0)
			return lerr(r, c);
		r->last_save_ms = t;
		r->dirty = 0;
		return 0;
	}
	if (fdatasync(r->fd) < 0) {
		int e = errno;
		snprintf(r->err, r->errlen, "%s%s: %s", r->o->pkg, r->in_place ? "" : ".part", mc_strerror(e));
		return lerr(r, -e);
	}
	sync_spans(r);
	int c = r->in_place ? 0 : mc_state_save(r->o->pkg, r->fd, &r->res->st, r->err, r->errlen);
	if (c < 0)
		return lerr(r, c);
	r->last_save_ms = t;
	r->dirty = 0;
	return 0;
}

static int chunk_ok(const struct run *r, uint32_t i, const uint8_t *buf)
{
	uint8_t d[MC_DIGEST_LEN];

	mc_chunk_digest(&r->m, buf, mc_manifest_chunk_len(&r->m, i), d);
	return memcmp(d, r->m.digests + (size_t)i * MC_DIGEST_LEN, MC_DIGEST_LEN) == 0;
}

/* Writes verified chunk i and marks it. Returns 0, or -1 on a local error. */
static int chunk_store(struct run *r, uint32_t i, const uint8_t *buf)
{
	struct mc_repair_src_summary *ss = &r->res->src[r->cur];
	uint32_t len = mc_manifest_chunk_len(&r->m, i);
	uint64_t off = r->l.payload_off + mc_manifest_chunk_off(&r->m, i);

	if (r->tgt) {
		/*
		 * Decoded onto its span; the span digest is checked on the decoded
		 * bytes before they are written. The stored digest was checked by
		 * every caller (chunk_ok, on r->m, the target's manifest): not twice.
		 */
		int c = mc_target_put_verified(r->tgt, i, buf, len, r->err, r->errlen);
		if (c < 0) {
			if (c != -EBADMSG)
				return lerr(r, c);
			r->bad[r->cur][i >> 3] |= (uint8_t)(1u << (i & 7));
			ss->chunks_bad++;
			emit(r, MC_REPAIR_EV_BAD, ss->name, "span digest mismatch after decoding", i, 0);
			return 0;
		}
		len = 0; /* written */
	}
	for (uint32_t done = 0; done < len;) {
		ssize_t w = pwrite(r->fd, buf + done, len - done, (off_t)(off + done));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int e = w < 0 ? errno : ENOSPC;
			snprintf(r->err, r->errlen, "%s%s: %s", r->o->pkg, r->in_place ? "" : ".part", mc_strerror(e));
			return lerr(r, -e);
		}
		done += (uint32_t)w;
	}
	mc_state_set(&r->res->st, i);
	r->dirty = 1;
	ss->chunks_ok++;
	r->res->fetched++;
	emit(r, MC_REPAIR_EV_CHUNK, ss->name, NULL, i, 0);
	return save_state(r, 0);
}

/* A whole chunk from the current source: verified, then written; a bad one is that source's fault. */
static int chunk_done(struct run *r, uint32_t i, const uint8_t *buf)
{
	struct mc_repair_src_summary *ss = &r->res->src[r->cur];

	if (!chunk_ok(r, i, buf)) {
		r->bad[r->cur][i >> 3] |= (uint8_t)(1u << (i & 7));
		ss->chunks_bad++;
		emit(r, MC_REPAIR_EV_BAD, ss->name, "digest mismatch", i, 0);
		return 0;
	}
	return chunk_store(r, i, buf);
}

static int wanted(const struct run *r, uint32_t i)
{
	return !mc_state_has(&r->res->st, i) && !((r->bad[r->cur][i >> 3] >> (i & 7)) & 1);
}

static void pc_drop_buf(struct run *r, struct pchunk *pc)
{
	if (pc->buf) {
		free(pc->buf);
		pc->buf = NULL;
		r->nbufs--;
	}
}

/* Bytes of a gap of partial chunk pc at offset within. Returns 0, or -1 on a local error. */
static int partial_take(struct run *r, struct pchunk *pc, uint32_t within, const uint8_t *p, size_t k)
{
	uint32_t c = pc->chunk, len = mc_manifest_chunk_len(&r->m, c);

	if (pc->buf == NULL) {
		if (r->nbufs >= PC_BUFS) {
			/* Too many under way: give up the one with the least still to come, for this round. */
			struct pchunk *v = NULL;
			for (uint32_t i = 0; i < r->npc; i++)
				if (r->pc[i].buf && (v == NULL || r->pc[i].need - r->pc[i].got < v->need - v->got))
					v = &r->pc[i];
			pc_drop_buf(r, v);
			v->spoiled = 1;
		}
		if ((pc->buf = malloc(r->m.chunk_size)) == NULL) {
			snprintf(r->err, r->errlen, "%s", mc_strerror(-ENOMEM));
			return lerr(r, -ENOMEM);
		}
		r->nbufs++;
		/* What the file holds: the spans, and whatever is in the gaps (about to be replaced). */
		ssize_t got;
		int e = 0;
		if (r->tgt) { /* a receiver spilled the chunk's stored bytes into its own span */
			e = -mc_target_pread(r->tgt, pc->buf, len, mc_tstate_spill_off(&r->m, mc_manifest_chunk_off(&r->m, c)));
			got = e ? -1 : (ssize_t)len;
		} else if ((got = pread(r->fd, pc->buf, len, (off_t)(r->l.payload_off + mc_manifest_chunk_off(&r->m, c)))) < 0) {
			e = errno ? errno : EIO;
		}
		if (got < 0) {
			snprintf(r->err, r->errlen, "%s%s: %s", r->o->pkg, r->tgt ? "" : ".part", mc_strerror(e));
			return lerr(r, -e);
		}
		memset(pc->buf + got, 0, len - (size_t)got);
	}
	memcpy(pc->buf + within, p, k);
	pc->got += k;
	if (pc->got < pc->need)
		return 0;
	r->pc_changed++;
	int rc = 0;
	if (chunk_ok(r, c, pc->buf))
		rc = chunk_store(r, c, pc->buf);
	else
		r->dirty = 1; /* the spans or the gaps are wrong: fetched whole next (this source may be right) */
	pc->live = 0;
	pc_drop_buf(r, pc);
	return rc;
}

/* Sink of the sources: assembles whole chunks per transfer slot, then verifies and writes them. */
static int sink(void *ctx, unsigned slot, uint64_t off, const uint8_t *p, size_t n)
{
	struct run *r = ctx;
	struct asm_slot *a;
	uint64_t pend = r->l.payload_off + r->m.payload_size;

	if (slot >= r->nslots || stopped(r))
		return -1;
	if (mc_now_ms() - r->last_tick_ms >= 250) {
		r->last_tick_ms = mc_now_ms();
		emit(r, MC_REPAIR_EV_TICK, r->res->src[r->cur].name, NULL, 0, 0);
	}
	a = &r->slots[slot];
	while (n > 0) {
		size_t k; /* bytes this round takes or passes over */
		if (off >= pend)
			return 0;
		if (off < r->l.payload_off) { /* header and manifest: not ours to take here */
			k = r->l.payload_off - off < n ? (size_t)(r->l.payload_off - off) : n;
			a->chunk = -1;
			goto next;
		}
		uint64_t rel = off - r->l.payload_off;
		uint32_t i = mc_manifest_chunk_of(&r->m, rel);
		uint32_t within = (uint32_t)(rel - mc_manifest_chunk_off(&r->m, i));
		uint32_t clen = mc_manifest_chunk_len(&r->m, i);
		struct pchunk *pc = r->npc ? find_pc(r, i) : NULL;
		k = clen - within < n ? clen - within : n; /* to the end of chunk i at most */
		if (pc) {
			/* A gap of a partial chunk: into its copy; verified and written once all came. */
			if (wanted(r, i) && pc->need && !pc->spoiled && partial_take(r, pc, within, p, k) < 0) {
				r->failed = 1;
				return -1;
			}
			a->chunk = -1;
			goto next;
		}
		if (a->chunk != (int64_t)i || a->fill != within) {
			if (within != 0) { /* joined mid-chunk: this chunk cannot be completed here */
				a->chunk = -1;
				goto next;
			}
			a->chunk = i;
			a->fill = 0;
		}
		/* Here a->fill == within: k runs to the end of the chunk as for the others. */
		int want = wanted(r, i);
		if (want)
			memcpy(a->buf + a->fill, p, k);
		a->fill += (uint32_t)k;
		if (a->fill == clen) {
			a->chunk = -1;
			if (want && chunk_done(r, i, a->buf) < 0) {
				r->failed = 1;
				return -1;
			}
		}
next:
		off += k;
		p += k;
		n -= k;
	}
	return 0;
}

static void reset_slots(struct run *r)
{
	for (unsigned i = 0; i < r->nslots; i++)
		r->slots[i].chunk = -1;
}

/* --to: opens the target for r->m, every refusal before a byte is written (res->refused: unsuitable). */
static int open_target(struct run *r)
{
	struct stat sb;

	/* An encrypted package opened with --decrypt first: a key that does not open it touches nothing. */
	if (r->m.is_encrypted && !r->m.unlocked && r->o->dkey) {
		char why[256];
		int c = mc_manifest_unlock(&r->m, r->o->dkey, why, sizeof why);
		if (c < 0) {
			snprintf(r->err, r->errlen, "%s: %s", r->o->target, why);
			r->res->refused = 0;
			return lerr(r, c);
		}
	}
	r->made_target = lstat(r->o->target, &sb) < 0 && errno == ENOENT;
	int c = mc_target_open(r->o->target, &r->m, 0, &r->tgt, r->err, r->errlen);
	if (c < 0) {
		r->res->refused = c == -EINVAL;
		return lerr(r, c);
	}
	mc_target_identity(r->tgt, r->tid);
	/*
	 * The resume sequence mcast-recv --to runs too (lib/tstate.h): the
	 * state refused for another package or target, else every chunk it
	 * does not mark checked on the target, never fetched in vain.
	 */
	char why[512];
	mc_state_free(&r->res->st);
	long n = mc_tstate_resume(r->o->state_path, r->tgt, &r->m, &r->res->st, why, sizeof why, r->err, r->errlen);
	if (n < 0) {
		r->res->refused = n == -EINVAL;
		return lerr(r, (int)n);
	}
	r->dirty = 1;
	return 0;
}

/* --to: the holes the target lacks, zeroed as extract --to does; nothing is fetched for them. */
static int put_holes(struct run *r)
{
	for (uint32_t i = 0; i < r->m.nchunks; i++) {
		if (mc_state_has(&r->res->st, i) || !(mc_manifest_chunk_flags(&r->m, i) & MC_CHUNK_HOLE))
			continue;
		int c = mc_target_put_hole(r->tgt, i, r->err, r->errlen);
		if (c < 0)
			return lerr(r, c);
		mc_state_set(&r->res->st, i);
		r->dirty = 1;
	}
	return save_state(r, 0);
}

/* Adopts a manifest: writes the head (--to: opens the target), makes an empty map and looks for chunks already there. */
static int adopt_manifest(struct run *r, struct mc_manifest *m, int rescan)
{
	r->m = *m;
	memset(m, 0, sizeof *m);
	r->have_m = 1;
	mc_manifest_layout(&r->m, &r->l);
	if (r->o->target)
		return open_target(r) < 0 ? -1 : 0; /* the map comes from the state and the check */
	/* Before a byte is fetched: a package that cannot fit is said at once (exit 1), not after hours. */
	int e = mc_state_space_check(r->o->pkg, r->in_place ? "" : ".part", r->fd, r->l.file_size, r->err, r->errlen);
	if (e < 0)
		return lerr(r, e);
	e = mc_pkg_write_head(r->fd, &r->m);
	if (e < 0) {
		snprintf(r->err, r->errlen, "%s%s: %s", r->o->pkg, r->in_place ? "" : ".part", mc_strerror(e));
		return lerr(r, e);
	}
	mc_state_free(&r->res->st);
	if ((e = mc_state_init(&r->res->st, r->m.id, r->m.nchunks)) < 0) {
		snprintf(r->err, r->errlen, "%s", mc_strerror(-ENOMEM));
		return lerr(r, e);
	}
	r->dirty = 1;
	return rescan;
}

static struct pchunk *find_pc(const struct run *r, uint32_t chunk)
{
	uint32_t lo = 0, hi = r->npc;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (r->pc[mid].chunk < chunk)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < r->npc && r->pc[lo].chunk == chunk && r->pc[lo].live ? &r->pc[lo] : NULL;
}

/* Bytes of verified chunks (have 1), or still to fetch (have 0: missing chunks less their spans). */
static uint64_t chunk_bytes(const struct run *r, int have)
{
	const struct mc_state *st = &r->res->st;
	uint64_t b = 0;

	for (uint32_t i = 0; i < r->m.nchunks; i++)
		if (mc_state_has(st, i) == have)
			b += mc_manifest_chunk_len(&r->m, i);
	for (uint32_t i = 0; !have && i < st->nspans; i++)
		if (!mc_state_has(st, st->spans[i].chunk) && find_pc(r, st->spans[i].chunk))
			b -= st->spans[i].len;
	return b;
}

/* Keeps in the state only the spans of chunks still partial (not verified, not dropped). */
static void sync_spans(struct run *r)
{
	struct mc_state *st = &r->res->st;
	uint32_t n = 0;

	for (uint32_t i = 0; i < st->nspans; i++)
		if (!mc_state_has(st, st->spans[i].chunk) && find_pc(r, st->spans[i].chunk))
			st->spans[n++] = st->spans[i];
	st->nspans = n;
}

/* The partial chunks, from the state's spans (fit to the manifest, verified ones left out). */
static int build_partials(struct run *r)
{
	struct mc_state *st = &r->res->st;

	free(r->pc);
	r->pc = NULL;
	r->npc = 0;
	mc_state_spans_fit(st, &r->m);
	if (st->nspans == 0)
		return 0;
	if ((r->pc = calloc(st->nspans, sizeof *r->pc)) == NULL) {
		snprintf(r->err, r->errlen, "%s", mc_strerror(-ENOMEM));
		return lerr(r, -ENOMEM);
	}
	uint64_t cover = 0;
	for (uint32_t i = 0; i < st->nspans; i++) {
		if (r->npc == 0 || r->pc[r->npc - 1].chunk != st->spans[i].chunk) {
			r->pc[r->npc++] = (struct pchunk){.chunk = st->spans[i].chunk, .live = 1};
			cover = 0;
		}
		/*
		 * Spans over the whole chunk leave no gap to fetch, so no byte would
		 * ever come to check it; and the rescan just found it does not verify.
		 */
		if ((cover += st->spans[i].len) == mc_manifest_chunk_len(&r->m, st->spans[i].chunk))
			r->pc[r->npc - 1].live = 0;
	}
	return 0;
}

static int rescan(struct run *r)
{
	uint8_t *buf = malloc(r->m.chunk_size);
	long n;

	if (buf == NULL) {
		snprintf(r->err, r->errlen, "%s", mc_strerror(-ENOMEM));
		return lerr(r, -ENOMEM);
	}
	n = mc_state_rescan(r->fd, &r->m, &r->res->st, buf);
	free(buf);
	if (n < 0) {
		snprintf(r->err, r->errlen, "%s%s: %s", r->o->pkg, r->in_place ? "" : ".part", mc_strerror((int)-n));
		return lerr(r, (int)n);
	}
	if (n > 0)
		r->dirty = 1;
	return 0;
}

/* Opens the local side: PKG.part, PKG, or a new PKG.part. Returns 0 or -1. */
static int open_local(struct run *r, int *created)
{
	char *part = mc_state_part_path(r->o->pkg);
	struct stat sb;
	int rc = -1;

	*created = 0;
	if (part == NULL) {
		snprintf(r->err, r->errlen, "%s", mc_strerror(-ENOMEM));
		return lerr(r, -ENOMEM);
	}
	if (stat(part, &sb) < 0 && errno == ENOENT && stat(r->o->pkg, &sb) == 0) {
		if (!S_ISREG(sb.st_mode)) {
			snprintf(r->err, r->errlen, "%s: not a regular file", r->o->pkg);
			lerr(r, -EINVAL);
			goto out;
		}
		r->in_place = 1;
		r->fd = open(r->o->pkg, O_RDWR | O_CLOEXEC);
		if (r->fd < 0) {
			int e = errno;
			snprintf(r->err, r->errlen, "%s: %s", r->o->pkg, mc_strerror(e));
			lerr(r, -e);
			goto out;
		}
		int c = mc_state_lock(r->fd);
		if (c < 0) {
			mc_state_lock_fail(r->err, r->errlen, r->o->pkg, c);
			lerr(r, c);
			goto out;
		}
	} else {
		*created = stat(part, &sb) < 0;
		r->fd = mc_state_open_part(r->o->pkg, r->err, r->errlen);
		if (r->fd < 0) {
			r->res->refused = r->fd == -EINVAL; /* PKG.part or its state a device node, FIFO or socket */
			lerr(r, r->fd);
			goto out;
		}
	}
	rc = 0;
out:
	free(part);
	return rc;
}

/* Opens source k: checks its package id, or takes its manifest when there is none yet. Returns 0, 1 (skip it), -1. */
static int open_source(struct run *r, unsigned k, uint64_t *retry_ms)
{
	struct mc_source *s = r->res->handles[k];
	struct mc_repair_src_summary *ss = &r->res->src[k];
	struct mc_manifest sm = {0};
	uint8_t id[MC_ID_LEN];
	char e[512], mine[600], theirs[600];
	int rc;

	*retry_ms = 0;
	rc = mc_source_open(s, id, r->have_m ? NULL : &sm, e, sizeof e);
	if (rc < 0) {
		struct mc_source_stats st;
		mc_source_get_stats(s, &st);
		*retry_ms = st.retry_after_ms;
		scopy(ss->reason, sizeof ss->reason, e);
		return rc;
	}
	if (r->have_m) {
		if (memcmp(id, r->m.id, MC_ID_LEN) != 0 && r->m_from_state && !r->accepted &&
		    mc_source_open(s, id, &sm, e, sizeof e) == 0) {
			/* --to: the first source to answer serves another package than the state's: the state is refused. */
			mc_tstate_match(r->o->state_path, &r->m, r->tid, &sm, r->tgt, r->err, r->errlen);
			mc_manifest_free(&sm);
			r->res->refused = 1;
			lerr(r, -EINVAL); /* not the state's package: not suitable */
			return LOCAL_ERR;
		}
		if (memcmp(id, r->m.id, MC_ID_LEN) != 0) {
			mc_manifest_describe(&r->m, mine, sizeof mine);
			if (mc_source_open(s, id, &sm, e, sizeof e) == 0) {
				mc_manifest_describe(&sm, theirs, sizeof theirs);
				mc_manifest_free(&sm);
			} else {
				char hex[2 * MC_ID_LEN + 1];
				snprintf(theirs, sizeof theirs, "package id %s", mc_id_hex(id, hex));
			}
			snprintf(ss->reason, sizeof ss->reason, "serves %s, not %s: refused", theirs, mine);
			ss->state = MC_REPAIR_SRC_REFUSED;
			emit(r, MC_REPAIR_EV_REFUSED, ss->name, ss->reason, 0, 0);
			return 1;
		}
	} else {
		mc_manifest_describe(&sm, theirs, sizeof theirs);
		if (r->o->trust && mc_manifest_trust(&sm, r->o->trust, e, sizeof e) != MC_SIG_TRUSTED) {
			/* Before adopt_manifest writes the head: an untrusted source leaves nothing behind. */
			snprintf(ss->reason, sizeof ss->reason, "serves %s, refused: %s", theirs, e);
			mc_manifest_free(&sm);
			ss->state = MC_REPAIR_SRC_REFUSED;
			emit(r, MC_REPAIR_EV_REFUSED, ss->name, ss->reason, 0, 0);
			return 1;
		}
		rc = adopt_manifest(r, &sm, 1);
		if (rc < 0)
			return LOCAL_ERR;
		r->res->have_manifest = 1;
		emit(r, MC_REPAIR_EV_MANIFEST, ss->name, theirs, 0, 0);
		if (rc == 1 && rescan(r) < 0)
			return LOCAL_ERR;
		r->res->bytes_need = chunk_bytes(r, 0);
		if (r->tgt)
			r->res->had = r->res->st.nhave; /* --to: what the target already held */
		emit(r, MC_REPAIR_EV_LOCAL, NULL, NULL, 0, 0);
	}
	if (r->tgt && !r->accepted) {
		r->accepted = 1;
		if (put_holes(r) < 0)
			return LOCAL_ERR;
	}
	r->accepted = 1;
	ss->state = MC_REPAIR_SRC_OK;
	emit(r, MC_REPAIR_EV_SOURCE, ss->name, NULL, 0, 0);
	return 0;
}

static uint32_t count_wanted(const struct run *r, uint8_t *want)
{
	uint32_t n = 0;

	memset(want, 0, (size_t)r->m.nchunks / 8 + 1);
	for (uint32_t i = 0; i < r->m.nchunks; i++) {
		if (wanted(r, i)) {
			want[i >> 3] |= (uint8_t)(1u << (i & 7));
			n++;
		}
	}
	return n;
}

/* Bytes of each partial chunk that ranges ask for this round. */
static void partial_needs(struct run *r, const struct mc_range *rg, size_t nr)
{
	size_t j = 0;

	for (uint32_t i = 0; i < r->npc; i++) {
		struct pchunk *pc = &r->pc[i];
		uint64_t a = r->l.payload_off + mc_manifest_chunk_off(&r->m, pc->chunk);
		uint64_t b = a + mc_manifest_chunk_len(&r->m, pc->chunk);
		pc->need = pc->got = 0;
		pc->spoiled = 0;
		while (j < nr && rg[j].off + rg[j].len <= a)
			j++;
		for (size_t k = j; k < nr && rg[k].off < b; k++) {
			uint64_t lo = rg[k].off > a ? rg[k].off : a, hi = rg[k].off + rg[k].len < b ? rg[k].off + rg[k].len : b;
			pc->need += hi - lo;
		}
	}
}

/* After a round: copies of partial chunks whose gaps did not all come are given up. Returns how many changed. */
static long end_partials(struct run *r)
{
	long changed = r->pc_changed;

	for (uint32_t i = 0; i < r->npc; i++)
		pc_drop_buf(r, &r->pc[i]);
	r->pc_changed = 0;
	return changed;
}

/*
 * The rate under which source k counts as stalled: the absolute floor, or a
 * fraction of the best rate of another source still in play (measured over
 * a second at least), when one could take over.
 */
static uint64_t min_rate(const struct run *r, unsigned k)
{
	uint64_t best = 0;

	for (unsigned j = 0; j < r->res->nsrc; j++) {
		struct mc_source_stats st;
		if (j == k || r->sr[j].gone || r->res->handles[j] == NULL)
			continue;
		mc_source_get_stats(r->res->handles[j], &st);
		if (st.busy_ms >= 1000 && st.bytes * 1000 / st.busy_ms > best)
			best = st.bytes * 1000 / st.busy_ms;
	}
	best /= MC_REPAIR_SLOW_RATIO;
	return best > MC_REPAIR_MIN_RATE ? best : MC_REPAIR_MIN_RATE;
}

/*
 * Takes from source k all it can give. Returns 0 when done with it (nothing
 * more it can give, or given up), 1 when it was left for now (stalled, too
 * slow), -1 on a local error.
 */
static int use_source(struct run *r, unsigned k)
{
	struct mc_source *s = r->res->handles[k];
	struct mc_repair_src_summary *ss = &r->res->src[k];
	uint64_t base = r->o->backoff_base_ms ? r->o->backoff_base_ms : BACKOFF_BASE_MS;
	unsigned maxa = r->o->max_attempts ? r->o->max_attempts : MAX_ATTEMPTS;
	unsigned attempts = 0;
	uint8_t *want = NULL;
	struct mc_range *ranges = NULL;
	int opened = r->bad[k] != NULL, rc = 0;

	r->cur = k;
	if (opened) {
		want = malloc((size_t)r->m.nchunks / 8 + 1);
		ranges = malloc(((size_t)r->m.nchunks + r->res->st.nspans + 1) * sizeof *ranges);
		if (want == NULL || ranges == NULL) {
			snprintf(r->err, r->errlen, "%s", mc_strerror(-ENOMEM));
			rc = lerr(r, -ENOMEM);
			goto out;
		}
	}
	while (!stopped(r)) {
		uint64_t retry_ms = 0;
		int frc;
		char e[512];

		mc_source_set_min_rate(s, min_rate(r, k));
		if (!opened) {
			frc = open_source(r, k, &retry_ms);
			if (frc == LOCAL_ERR) {
				rc = -1;
				break;
			}
			if (frc == 1) {
				r->sr[k].gone = 1;
				break;
			}
			if (frc == 0) {
				opened = 1;
				r->bad[k] = calloc((size_t)r->m.nchunks / 8 + 1, 1);
				want = malloc((size_t)r->m.nchunks / 8 + 1);
				ranges = malloc(((size_t)r->m.nchunks + r->res->st.nspans + 1) * sizeof *ranges);
				if (r->bad[k] == NULL || want == NULL || ranges == NULL) {
					snprintf(r->err, r->errlen, "%s", mc_strerror(-ENOMEM));
					rc = lerr(r, -ENOMEM);
					break;
				}
				for (unsigned i = 0; i < r->nslots; i++) {
					if (r->slots[i].buf == NULL && (r->slots[i].buf = malloc(r->m.chunk_size)) == NULL) {
						snprintf(r->err, r->errlen, "%s", mc_strerror(-ENOMEM));
						rc = lerr(r, -ENOMEM);
						break;
					}
				}
				if (rc < 0)
					break;
				attempts = 0;
				continue;
			}
			scopy(e, sizeof e, ss->reason);
		} else {
			uint32_t nwant = count_wanted(r, want);
			if (nwant == 0) {
				r->sr[k].gone = 1; /* all it could give: nothing left to ask it */
				break;
			}
			uint64_t need = chunk_bytes(r, 0);
			/* Pieces small enough that -j transfers share a big gap, whole chunks each. */
			uint64_t piece = need / (r->o->src.parallel ? r->o->src.parallel : 1);
			piece = piece > PIECE_MAX ? PIECE_MAX : piece;
			piece = piece < PIECE_MIN ? PIECE_MIN : piece;
			piece = piece < r->m.chunk_size ? r->m.chunk_size : piece;
			sync_spans(r);
			size_t nr = mc_repair_ranges(&r->m, want, r->res->st.spans, r->res->st.nspans, piece, ranges);
			uint32_t before = r->res->st.nhave, badbefore = ss->chunks_bad;
			reset_slots(r);
			partial_needs(r, ranges, nr);
			frc = mc_source_fetch(s, ranges, nr, sink, r, r->o->stop, e, sizeof e);
			long pch = end_partials(r);
			struct mc_source_stats st;
			mc_source_get_stats(s, &st);
			ss->bytes = st.bytes;
			ss->requests = st.requests;
			ss->no_ranges = st.no_ranges;
			if (r->failed) {
				rc = -1;
				break;
			}
			if (stopped(r))
				break;
			int progress = r->res->st.nhave > before || ss->chunks_bad > badbefore || pch > 0;
			if (r->res->st.nhave > before) {
				r->sr[k].lefts = 0;
				ss->state = MC_REPAIR_SRC_OK;
			}
			if (frc == 0) {
				if (progress) {
					attempts = 0;
					continue;
				}
				snprintf(e, sizeof e, "answered without the requested bytes");
				frc = MC_SOURCE_TRANSIENT;
			}
			if (frc == MC_SOURCE_ABORTED)
				break;
			retry_ms = st.retry_after_ms;
			if (progress)
				attempts = 0;
		}
		scopy(ss->reason, sizeof ss->reason, e);
		if (frc == MC_SOURCE_STALLED) {
			/* Left at once for the others; back to it after them, a few times at most. */
			if (save_state(r, 1) < 0) {
				rc = -1;
				break;
			}
			if (++r->sr[k].lefts >= MC_REPAIR_MAX_LEFT) {
				char g[600];
				snprintf(g, sizeof g, "%s (left %u times: given up)", e, r->sr[k].lefts);
				scopy(ss->reason, sizeof ss->reason, g);
				ss->state = MC_REPAIR_SRC_FAILED;
				r->sr[k].gone = 1;
				emit(r, MC_REPAIR_EV_ERROR, ss->name, g, 0, 0);
				break;
			}
			ss->state = MC_REPAIR_SRC_STALLED;
			emit(r, MC_REPAIR_EV_LEFT, ss->name, e, 0, 0);
			rc = 1;
			break;
		}
		if (frc == MC_SOURCE_PERMANENT && mc_source_is_local(s)) {
			ss->state = MC_REPAIR_SRC_UNUSABLE;
			r->sr[k].gone = 1;
			emit(r, MC_REPAIR_EV_UNUSABLE, ss->name, e, 0, 0);
			break;
		}
		if (frc == MC_SOURCE_PERMANENT) {
			ss->state = MC_REPAIR_SRC_FAILED;
			r->sr[k].gone = 1;
			emit(r, MC_REPAIR_EV_ERROR, ss->name, e, 0, 0);
			break;
		}
		if (++attempts >= maxa || retry_ms > RETRY_AFTER_MAX_MS) {
			ss->state = MC_REPAIR_SRC_FAILED;
			r->sr[k].gone = 1;
			char g[600];
			snprintf(g, sizeof g, "%s (gave up after %u attempts)", e, attempts);
			scopy(ss->reason, sizeof ss->reason, g);
			emit(r, MC_REPAIR_EV_ERROR, ss->name, g, 0, 0);
			break;
		}
		uint64_t d = mc_repair_backoff_ms(attempts - 1, base, BACKOFF_CAP_MS, retry_ms, rnd32(r));
		emit(r, MC_REPAIR_EV_ERROR, ss->name, e, 0, d);
		if (save_state(r, 1) < 0) {
			rc = -1;
			break;
		}
		nap(r, d);
	}
out:
	free(want);
	free(ranges);
	return rc;
}

int mc_repair_run(const struct mc_repair_opts *o, struct mc_repair_result *res, char *err, size_t errlen)
{
	struct run r = {0};
	char e[512], stale[512] = "";
	int rc = -1, created = 0;

	memset(res, 0, sizeof *res);
	r.o = o;
	r.res = res;
	r.fd = -1;
	r.err = err;
	r.errlen = errlen;
	if (getrandom(&r.rng, sizeof r.rng, 0) != (ssize_t)sizeof r.rng || r.rng == 0)
		r.rng = (uint64_t)mc_now_ms() * 0x9e3779b97f4a7c15ull | 1;
	res->nsrc = o->nsources;
	res->src = calloc(o->nsources + 1, sizeof *res->src);
	res->handles = calloc(o->nsources + 1, sizeof *res->handles);
	r.bad = calloc(o->nsources + 1, sizeof *r.bad);
	r.sr = calloc(o->nsources + 1, sizeof *r.sr);
	r.nslots = o->src.parallel ? o->src.parallel : 1;
	r.slots = calloc(r.nslots, sizeof *r.slots);
	if (res->src == NULL || res->handles == NULL || r.bad == NULL || r.sr == NULL || r.slots == NULL) {
		snprintf(err, errlen, "%s", mc_strerror(-ENOMEM));
		lerr(&r, -ENOMEM);
		goto out;
	}
	const char *base = strrchr(o->pkg, '/');
	base = o->target ? "" : base ? base + 1 : o->pkg; /* --to: a source names the package itself */
	for (unsigned k = 0; k < o->nsources; k++) {
		int c = mc_source_new(o->sources[k], base, &o->src, &res->handles[k], e, sizeof e);
		if (c < 0) {
			snprintf(err, errlen, "%s: %s", o->sources[k], e);
			lerr(&r, c);
			goto out;
		}
		res->src[k].name = mc_source_name(res->handles[k]);
	}

	struct mc_resume rs = {0}; /* the package file's resume; --trust is asked below, between its steps */
	if (o->target) {
		/*
		 * --to: the state keeps the manifest (taken here; the resume
		 * sequence loads the state again once the target is open); a
		 * damaged one is said and counts as empty (every span checked).
		 */
		struct mc_state st0;
		if (mc_tstate_refuse_foreign(o->state_path, err, errlen) < 0) {
			res->refused = 1; /* nothing written: exit 2 */
			lerr(&r, -EINVAL);
			goto out;
		}
		int l = mc_tstate_load(o->state_path, &r.m, r.tid, &st0, e, sizeof e);
		if (l == -ENOMEM) {
			snprintf(err, errlen, "%s", e);
			lerr(&r, -ENOMEM);
			goto out;
		}
		if (l < 0)
			snprintf(stale, sizeof stale, "%s", e);
		if (l == 1)
			mc_state_free(&st0);
		r.have_m = r.m_from_state = l == 1;
	} else {
		if (open_local(&r, &created) < 0)
			goto out;
		res->in_place = r.in_place;
		/* The one resume sequence (lib/resume.h), step one: the head (r.m is rs.m from here). */
		r.have_m = mc_resume_head(r.fd, &rs);
		if (r.have_m)
			r.m = rs.m;
	}
	res->have_manifest = r.have_m;
	if (r.have_m && o->trust && mc_manifest_trust(&r.m, o->trust, e, sizeof e) != MC_SIG_TRUSTED) {
		snprintf(err, errlen, "%s%s: holds package %s, refused: %s", o->target ? o->state_path : o->pkg,
			 r.in_place || o->target ? "" : ".part", r.m.name, e);
		res->refused = o->target != NULL;
		lerr(&r, -EPERM); /* not trusted: refused by the caller's policy */
		goto out;
	}
	if (r.have_m && o->target) {
		mc_manifest_layout(&r.m, &r.l);
		if (open_target(&r) < 0 || build_partials(&r) < 0)
			goto out;
		res->bytes_need = chunk_bytes(&r, 0);
	} else if (r.have_m) {
		/* The rest of the sequence: the state or none, every chunk it does not mark checked. */
		int rr = mc_resume_state(o->pkg, r.fd, r.in_place ? MC_RESUME_IN_PLACE : 0, &rs, err, errlen);
		res->st = rs.st;
		if (rr < 0) {
			lerr(&r, rr);
			goto out;
		}
		scopy(stale, sizeof stale, rs.why);
		if (!rs.loaded || rs.found > 0)
			r.dirty = 1;
		mc_manifest_layout(&r.m, &r.l);
		if (build_partials(&r) < 0)
			goto out;
		res->bytes_need = chunk_bytes(&r, 0);
	}
	emit(&r, MC_REPAIR_EV_LOCAL, NULL, stale[0] ? stale : NULL, 0, 0);
	res->had = r.have_m ? res->st.nhave : 0;

	if ((!r.have_m || res->st.nhave < r.m.nchunks) && o->nsources > 0) {
		if (o->spread_ms > 0) {
			uint64_t d = (uint64_t)(((double)rnd32(&r) / 4294967296.0) * (double)o->spread_ms);
			emit(&r, MC_REPAIR_EV_SPREAD, NULL, NULL, 0, d);
			nap(&r, d);
		}
		/* Rounds: every source in order, then again the ones left for stalling, until none is. */
		for (int left = 1; left && !stopped(&r);) {
			left = 0;
			for (unsigned k = 0; k < o->nsources && !stopped(&r); k++) {
				if (r.have_m && res->st.nhave == r.m.nchunks) {
					left = 0;
					break;
				}
				if (r.sr[k].gone)
					continue;
				int u = use_source(&r, k);
				if (u < 0)
					goto out;
				left |= u;
			}
		}
	}

	if (r.have_m) {
		snprintf(res->name, sizeof res->name, "%s", r.m.name);
		memcpy(res->id, r.m.id, MC_ID_LEN);
		res->nchunks = r.m.nchunks;
		res->missing = r.m.nchunks - res->st.nhave;
		res->bytes_missing = chunk_bytes(&r, 0);
		mc_manifest_layout(&r.m, &r.l);
		res->package_size = r.l.file_size;
	}
	for (unsigned k = 0; k < res->nsrc; k++)
		res->bytes_fetched += res->src[k].bytes;

	if (r.have_m && res->missing == 0 && !stopped(&r)) {
		if (r.tgt) {
			/*
			 * Every chunk is on the target, verified when written or
			 * checked: flushed, then the state goes (done: nothing to
			 * resume, and the next image onto this target starts clean).
			 */
			int c = mc_target_sync(r.tgt, err, errlen);
			if (c < 0) {
				lerr(&r, c);
				goto out;
			}
			if ((c = mc_tstate_remove(o->state_path, err, errlen)) < 0) {
				lerr(&r, c);
				goto out;
			}
		} else if (r.in_place) {
			struct stat sb;
			if (fstat(r.fd, &sb) < 0 || ((uint64_t)sb.st_size != r.l.file_size &&
						     ftruncate(r.fd, (off_t)r.l.file_size) < 0) || fsync(r.fd) < 0) {
				int e2 = errno;
				snprintf(err, errlen, "%s: %s", o->pkg, mc_strerror(e2));
				lerr(&r, -e2);
				goto out;
			}
			/*
			 * No PKG.part: a PKG.state here is stale (a receiver killed
			 * between renaming PKG.part to PKG and removing its state).
			 */
			mc_state_drop_stale(o->pkg);
		} else {
			int c = mc_state_finish(o->pkg, r.fd, &r.m, err, errlen);
			if (c < 0) {
				lerr(&r, c);
				goto out;
			}
		}
		rc = 0;
	} else {
		if (r.have_m && save_state(&r, 1) < 0)
			goto out;
		if (!r.have_m && created)
			mc_state_drop_empty_part(o->pkg, r.fd); /* nothing learned */
		/* Only paths: what failed there fails the same next time (a network source may come back). */
		res->no_source = !stopped(&r) && o->nsources > 0;
		for (unsigned k = 0; k < o->nsources; k++)
			if (!mc_source_is_local(res->handles[k]))
				res->no_source = 0;
		rc = 1;
	}
out:
	if (rc < 0 && created && r.fd >= 0)
		mc_state_drop_empty_part(o->pkg, r.fd); /* an error before a byte was written (no room, say) */
	if (r.fd >= 0)
		close(r.fd);
	if (r.tgt)
		mc_target_close(r.tgt);
	if (res->refused && r.made_target)
		unlink(o->target); /* refused: not even the new file stays */
	for (unsigned i = 0; r.slots && i < r.nslots; i++)
		free(r.slots[i].buf);
	free(r.slots);
	if (r.pc)
		end_partials(&r);
	free(r.pc);
	for (unsigned k = 0; r.bad && k < o->nsources; k++)
		free(r.bad[k]);
	free(r.bad);
	free(r.sr);
	if (r.have_m)
		mc_manifest_free(&r.m);
	/* Every local error kept its code on the way (lerr); -EIO only should one have been missed. */
	return rc < 0 ? (r.code ? r.code : -EIO) : rc;
}

void mc_repair_result_free(struct mc_repair_result *res)
{
	for (unsigned k = 0; res->handles && k < res->nsrc; k++)
		mc_source_free(res->handles[k]);
	free(res->handles);
	free(res->src);
	mc_state_free(&res->st);
	memset(res, 0, sizeof *res);
}
