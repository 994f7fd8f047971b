/* Receiver assembly; see receiver.h and mcast-protocol(7). No sockets, clocks or files here. */
#include "receiver.h"
#include "crypto.h"

#include "rand.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVQ 1024
#define FBQ 32
#define NACK_PKTS_MAX 16       /* per back-off firing */
#define SCAN_MS 10
#define SCAN_BUDGET 65536      /* blocks one eligibility scan looks at: a huge (or forged) package costs no more */
#define NACK_SCAN_BUDGET (1u << 20) /* blocks one NACK round looks at, from where the scan found work */
#define HELLO_WAIT_MS 1000
#define HELLO_JOIN_MS 200
#define IDLE_RETRY_MS 50      /* an idle sender that did not serve a request lost it */
/*
 * First pass: the sender serves requests for blocks it has passed at once.
 * A request is repeated once its repair has come (data for a block the
 * sender had passed) and the sender went MC_INTERLEAVE blocks beyond the
 * last of it: what is still missing was lost. A request that brought nothing
 * (lost, or waiting for the sender's share of repair) is repeated after
 * P1_UNSERVED_BLOCKS. Counting from when the repair arrived, not from when
 * it was asked for, keeps a receiver that lags behind the sender (data
 * queued in its socket) from asking twice for the same thing.
 */
#define P1_UNSERVED_BLOCKS (16 * MC_INTERLEAVE)
#define LOSS_MIN_SYMBOLS 2048 /* symbols sampled before a loss estimate is told */
#define REQ_SERVED 0x80000000u
#define OVERRUN_REPORT_MS 10  /* at most this often a report of overruns alone */
#define LOSS_REPORT_MS 250    /* at most this often a report of loss alone, while behind in the first pass */
#define DONE_EVERY_MS 100
#define DONE_TRIES 10
#define DEFAULT_BACKOFF_MS 10
#define DEFAULT_MEM (64u << 20)
#define AUTO_MEM_MAX (256u << 20)

struct blk {
	uint64_t bits[4];   /* ESIs seen */
	uint16_t nsrc, nrep;
	uint8_t complete;
	uint8_t rep_esi[MC_RS_MAX];
	uint8_t *rep[MC_RS_MAX];
};

/* Repair symbols of one block, kept in memory while its chunk's slot is evicted. */
struct held {
	uint8_t n;
	uint8_t esi[MC_RS_MAX];
	uint8_t *rep[MC_RS_MAX];
};

struct slot {
	int64_t chunk;      /* -1 free */
	uint64_t lru;
	uint32_t nblocks, done;
	uint8_t *buf;
	struct blk *blk;
};

/* Sessions refused by the trust set that a receiver remembers (older ones are checked again). */
#define MC_REFUSED_MAX 16

struct mc_receiver {
	struct mc_recv_cfg cfg;
	struct mc_fec *fec;
	int phase;
	uint64_t rng;

	/* session */
	int have_session;
	uint32_t session;
	struct mc_announce ann;
	struct mc_geom geom;
	uint64_t last_heard, session_heard;
	int ended;
	uint32_t spass, sblock;   /* sender position: pass and last block seen */
	int sidle;

	/* pinned package (resume) */
	int pinned;
	uint8_t pin_id[MC_ID_LEN];
	struct mc_announce other; /* the last session not taken (MC_REV_OTHER) */
	int other_told;
	/*
	 * --trust: sessions whose manifests were refused (a ring of session and
	 * package id), and why the last one was. The pair, not the package id
	 * alone: a forger who announces the right package's id (XXH3, not
	 * collision resistant) under a session of its own must not get the
	 * right session refused.
	 */
	struct {
		uint32_t session;
		uint8_t id[MC_ID_LEN];
	} refused[MC_REFUSED_MAX];
	unsigned nrefused;
	char untrusted_why[192];

	/* manifest */
	struct mc_manifest man;
	int man_ok;
	uint8_t *man_buf, *man_got;
	uint32_t man_len, man_nfrag, man_have;

	/* chunks */
	uint8_t *have, *unverified;
	uint32_t nhave;
	int32_t *slot_of;
	/*
	 * Image sessions: the blocks the sender sends before each chunk
	 * (nchunks + 1 of them). Block numbers leave bpc to every chunk, but a
	 * compressed chunk has fewer blocks and a hole none, and the sender's
	 * interleave window is MC_INTERLEAVE blocks it sends: past a hole,
	 * block numbers ran ahead of it and blocks still being sent looked
	 * passed (NACKed, and counted as lost). NULL: block numbers count.
	 */
	uint32_t *bord;
	uint8_t **spill;          /* per chunk: source symbols written while evicted */
	struct mc_span *pre_spans; /* resume: parts of chunks in the file, until the coding is known */
	uint32_t pre_nspans;
	struct held **held;       /* per chunk: repair symbols kept while evicted */
	struct slot *slots;
	unsigned nslots;
	uint64_t lru_clock;
	size_t slot_bytes;

	/* NACK state per block */
	uint16_t *req_pass;
	uint32_t *req_ms;
	uint32_t *req_at;         /* first pass: the sender's block when asked for or served (REQ_SERVED) */
	uint64_t nack_at, next_scan;
	uint32_t scan_pos;        /* where the budgeted scans resume */
	uint32_t gap;             /* no chunk before this one lacks anything (the scans start there) */
	uint32_t overruns, overruns_told;
	int auto_mem;             /* mem_limit follows the first announced rate */
	uint64_t overrun_next;    /* earliest time for the next report of overruns alone */
	uint64_t loss_next;       /* ... and of loss alone (mc_recv_alive) */
	uint8_t loss_heard;       /* the largest loss another receiver told since loss_heard_ms (suppression) */
	uint64_t loss_heard_ms;
	int eligible;
	/*
	 * This receiver's loss in the first pass, told to the sender in NACKs
	 * so that it sends what the asked-for symbols need to arrive: symbols
	 * the sender sent (est_span) and of them lost (est_lost), sampled once
	 * per block, when first asked for or when complete unasked. Blocks before
	 * est_from (those the sender was in the middle of at the join, or at the
	 * end of a gap after what was held before the first announcement) do
	 * not count, nor any after a join past the first pass (est_from
	 * UINT32_MAX).
	 */
	uint64_t est_span, est_lost;
	/*
	 * The same seen from the gaps between the ESIs of a block as they
	 * arrive in the first pass (the sender sends them in order), for the
	 * reports of a receiver behind in its reading (mc_recv_alive): it
	 * completes few blocks and asks for none, so est_* learn little then.
	 */
	uint64_t gap_span, gap_lost;
	uint32_t est_from;
	int est_set;
	int early_full; /* DATA before the first announcement was let go: a gap follows what was held */
	/*
	 * An image session's manifest is known: its holes and the DATA held for
	 * it wait for the next call, so that the caller has seen MC_REV_MANIFEST
	 * (and made ready what the manifest tells it) before any of their I/O.
	 */
	int place_due;

	/* hello / done */
	int welcomed;
	uint64_t next_hello, next_done;
	int done_tries, done_acked;

	struct mc_recv_event ev[EVQ];
	unsigned ev_head, ev_len;
	uint8_t fb[FBQ][MC_WIRE_FEEDBACK_MAX];
	size_t fb_len[FBQ];
	unsigned fb_head, fb_n;

	/* DATA that arrived before any announcement: replayed once the session is known */
	uint8_t **early;
	uint16_t *early_len;
	unsigned nearly;

	struct mc_recv_stats st;
};

/* Back-off jitter only, never security. */
static uint64_t rnd(struct mc_receiver *r)
{
	return mc_xorshift(&r->rng);
}

static void event(struct mc_receiver *r, int kind, uint32_t arg)
{
	if (r->ev_len == EVQ)
		return; /* progress events only; state lives in the bitmaps */
	r->ev[(r->ev_head + r->ev_len) % EVQ] = (struct mc_recv_event){kind, arg};
	r->ev_len++;
}

static void queue_fb(struct mc_receiver *r, const struct mc_pkt *p)
{
	if (r->fb_n == FBQ)
		return;
	unsigned i = (r->fb_head + r->fb_n) % FBQ;
	r->fb_len[i] = mc_wire_encode(p, r->fb[i], sizeof r->fb[i]);
	if (r->fb_len[i])
		r->fb_n++;
}

static int bit(const uint8_t *b, uint32_t i) { return (b[i >> 3] >> (i & 7)) & 1; }
static void setbit(uint8_t *b, uint32_t i) { b[i >> 3] |= (uint8_t)(1u << (i & 7)); }
static void clrbit(uint8_t *b, uint32_t i) { b[i >> 3] &= (uint8_t)~(1u << (i & 7)); }

struct mc_receiver *mc_recv_new(const struct mc_recv_cfg *cfg)
{
	struct mc_receiver *r = calloc(1, sizeof *r);

	if (r == NULL)
		return NULL;
	r->cfg = *cfg;
	r->auto_mem = r->cfg.mem_limit == 0;
	if (r->cfg.mem_limit == 0)
		r->cfg.mem_limit = DEFAULT_MEM;
	if (r->cfg.backoff_ms == 0)
		r->cfg.backoff_ms = DEFAULT_BACKOFF_MS;
	r->rng = cfg->seed ? cfg->seed : 0x9E3779B97F4A7C15ULL ^ cfg->rid;
	r->fec = mc_fec_new();
	if (r->fec == NULL) {
		free(r);
		return NULL;
	}
	return r;
}

static void slot_reset(struct slot *s)
{
	for (uint32_t b = 0; b < s->nblocks; b++) {
		for (unsigned i = 0; i < s->blk[b].nrep; i++)
			free(s->blk[b].rep[i]);
		memset(&s->blk[b], 0, sizeof s->blk[b]);
	}
	s->done = 0;
}

static void drop_held(struct mc_receiver *r, uint32_t c)
{
	if (r->held == NULL || r->held[c] == NULL)
		return;
	for (uint32_t b = 0; b < r->geom.bpc; b++)
		for (unsigned i = 0; i < r->held[c][b].n; i++)
			free(r->held[c][b].rep[i]);
	free(r->held[c]);
	r->held[c] = NULL;
}

static void free_slots(struct mc_receiver *r)
{
	for (unsigned i = 0; r->slots && i < r->nslots; i++) {
		if (r->slots[i].blk) {
			r->slots[i].nblocks = r->geom.bpc;
			slot_reset(&r->slots[i]);
		}
		free(r->slots[i].buf);
		free(r->slots[i].blk);
	}
	free(r->slots);
	r->slots = NULL;
	r->nslots = 0;
}

/* Chunk slots for the geometry in r->geom, as many as mem_limit holds within bounds. Returns 0 or -1. */
static int alloc_slots(struct mc_receiver *r)
{
	const struct mc_geom *g = &r->geom;

	r->slot_bytes = (size_t)g->bpc * g->kmax * g->sym;
	r->nslots = (unsigned)(r->cfg.mem_limit / (r->slot_bytes + 1));
	/*
	 * At least the chunks that one window of interleaved blocks spans, and
	 * two more: with fewer, every datagram would evict a chunk to the file
	 * and read another back, and the receiver would fall silent doing so.
	 * An image's chunks are as long as they compress to, many of them one
	 * block: a window may span MC_INTERLEAVE chunks (bench/image, a 1 GiB
	 * image of 1024 chunks: a receiver without loss parked chunks 2574
	 * times in some runs with 31 slots, never with 34).
	 */
	unsigned span = g->image ? MC_INTERLEAVE : (MC_INTERLEAVE + g->bpc - 1) / g->bpc;
	unsigned floor = r->cfg.mem_hard ? 2 : span + 2;
	if (r->nslots < floor)
		r->nslots = floor;
	if (r->nslots > g->nchunks)
		r->nslots = g->nchunks;
	if ((r->slots = calloc(r->nslots ? r->nslots : 1, sizeof *r->slots)) == NULL) {
		r->nslots = 0;
		return -1;
	}
	for (unsigned i = 0; i < r->nslots; i++) {
		r->slots[i].chunk = -1;
		r->slots[i].buf = calloc(1, r->slot_bytes) /* spill_slot writes it whole, never bytes of anything else */;
		r->slots[i].blk = calloc(g->bpc, sizeof(struct blk));
		if (!r->slots[i].buf || !r->slots[i].blk)
			return -1;
	}
	return 0;
}

static void free_chunks(struct mc_receiver *r)
{
	free_slots(r);
	if (r->spill)
		for (uint32_t c = 0; c < r->geom.nchunks; c++) {
			free(r->spill[c]);
			drop_held(r, c);
		}
	free(r->spill);
	free(r->held);
	r->held = NULL;
	free(r->slot_of);
	free(r->have);
	free(r->unverified);
	free(r->req_pass);
	free(r->req_ms);
	free(r->req_at);
	free(r->bord);
	r->bord = NULL;
	r->spill = NULL;
	r->slot_of = NULL;
	r->have = r->unverified = NULL;
	r->req_pass = NULL;
	r->req_ms = NULL;
	r->req_at = NULL;
}

void mc_recv_free(struct mc_receiver *r)
{
	if (r == NULL)
		return;
	free_chunks(r);
	free(r->pre_spans);
	mc_manifest_free(&r->man);
	free(r->man_buf);
	free(r->man_got);
	mc_fec_free(r->fec);
	for (unsigned i = 0; i < r->nearly; i++)
		free(r->early[i]);
	free(r->early);
	free(r->early_len);
	free(r);
}

/* r->bord for the geometry in r->geom (see there); left NULL for a package of chunks alike, or without memory. */
static void build_ord(struct mc_receiver *r)
{
	const struct mc_geom *g = &r->geom;

	free(r->bord);
	r->bord = NULL;
	if (!g->image || !mc_geom_placed(g) || (r->bord = malloc(((size_t)g->nchunks + 1) * sizeof *r->bord)) == NULL)
		return;
	uint32_t n = 0;
	for (uint32_t c = 0; c < g->nchunks; c++) {
		r->bord[c] = n;
		n += mc_geom_chunk_blocks(g, c);
	}
	r->bord[g->nchunks] = n;
}

/* Where block gb stands in the sender's order: how many blocks it sends before it. */
static uint64_t blk_ord(const struct mc_receiver *r, uint32_t gb)
{
	if (r->bord == NULL)
		return gb;
	uint32_t c = gb / r->geom.bpc, i = gb % r->geom.bpc;
	if (c >= r->geom.nchunks)
		return r->bord[r->geom.nchunks];
	uint32_t n = r->bord[c + 1] - r->bord[c];
	return r->bord[c] + (i < n ? i : n);
}

/* Has the sender (its last DATA) gone more than dist blocks it sends beyond block gb? */
static int gone_past(const struct mc_receiver *r, uint32_t gb, uint32_t dist)
{
	return blk_ord(r, gb) + dist < blk_ord(r, r->sblock);
}

/* Per-block request state for the geometry in r->geom (replacing any). Returns 0 or -1. */
static int alloc_requests(struct mc_receiver *r)
{
	/* An empty package has no blocks: keep the arrays at least one long so allocation never returns NULL. */
	size_t nb = r->geom.nblocks ? r->geom.nblocks : 1;

	free(r->req_pass);
	free(r->req_ms);
	free(r->req_at);
	r->req_pass = calloc(nb, sizeof *r->req_pass);
	r->req_ms = calloc(nb, sizeof *r->req_ms);
	r->req_at = calloc(nb, sizeof *r->req_at);
	return r->req_pass && r->req_ms && r->req_at ? 0 : -1;
}

/* Allocates per-chunk and per-block state once the geometry is known. */
static int setup_chunks(struct mc_receiver *r, const struct mc_geom *g)
{
	r->geom = *g;
	build_ord(r);
	size_t nc = g->nchunks ? g->nchunks : 1;
	r->have = calloc(nc / 8 + 1, 1);
	r->unverified = calloc(nc / 8 + 1, 1);
	r->slot_of = malloc(nc * sizeof *r->slot_of);
	r->spill = calloc(nc, sizeof *r->spill);
	r->held = calloc(nc, sizeof *r->held);
	if (!r->have || !r->unverified || !r->slot_of || !r->spill || !r->held || alloc_requests(r) < 0)
		return -1;
	for (uint32_t c = 0; c < g->nchunks; c++)
		r->slot_of[c] = -1;
	if (alloc_slots(r) < 0)
		return -1;
	r->nhave = 0;
	r->gap = 0;
	return 0;
}

int mc_recv_preload(struct mc_receiver *r, const struct mc_manifest *m, const uint8_t *have,
		    const struct mc_span *spans, uint32_t nspans)
{
	if (mc_manifest_parse(m->raw, m->raw_len, &r->man, NULL, 0) < 0)
		return -1;
	if (nspans) {
		if ((r->pre_spans = malloc((size_t)nspans * sizeof *spans)) == NULL)
			return -1;
		memcpy(r->pre_spans, spans, (size_t)nspans * sizeof *spans);
		r->pre_nspans = nspans;
	}
	r->man_ok = 1;
	r->pinned = 1;
	memcpy(r->pin_id, m->id, MC_ID_LEN);
	if (have) {
		/* Geometry comes with the session; keep the bitmap until then. */
		r->unverified = calloc(m->nchunks / 8 + 1, 1);
		if (r->unverified == NULL)
			return -1;
		memcpy(r->unverified, have, m->nchunks / 8 + 1);
	}
	return 0;
}

static void check_complete(struct mc_receiver *r)
{
	if (r->phase == MC_RPH_JOINED && r->man_ok && r->nhave == r->geom.nchunks) {
		r->phase = MC_RPH_COMPLETE;
		r->next_done = 0;
		event(r, MC_REV_COMPLETE, r->nhave);
	}
}

static void mark_have(struct mc_receiver *r, uint32_t c)
{
	if (!bit(r->have, c)) {
		setbit(r->have, c);
		r->nhave++;
	}
	if (r->spill[c]) {
		free(r->spill[c]);
		r->spill[c] = NULL;
	}
	drop_held(r, c);
}

/*
 * Chunk c is verified, its stored bytes in buf: hands them to the sink
 * (io.chunk, or write at its payload offset) and counts it. Returns 0, or
 * -1 when the sink failed (MC_REV_IOERR; the chunk is asked for again).
 */
static int chunk_store(struct mc_receiver *r, uint32_t c, const uint8_t *buf, uint32_t len, int written)
{
	int rc = 0;

	if (r->cfg.chunk)
		rc = r->cfg.chunk(r->cfg.io.ctx, c, len ? buf : NULL, len);
	else if (!written && len)
		rc = r->cfg.io.write(r->cfg.io.ctx, mc_geom_chunk_off(&r->geom, c), buf, len);
	if (rc < 0) {
		event(r, MC_REV_IOERR, c);
		return -1;
	}
	mark_have(r, c);
	event(r, MC_REV_CHUNK, c);
	return 0;
}

/* A chunk's bytes are all in buf: verify (or park until the manifest comes) and write. */
static void chunk_done(struct mc_receiver *r, uint32_t c, const uint8_t *buf)
{
	uint32_t len = mc_geom_chunk_len(&r->geom, c);
	uint64_t off = mc_geom_chunk_off(&r->geom, c);

	if (r->man_ok) {
		uint8_t d[MC_DIGEST_LEN];
		mc_chunk_digest(&r->man, buf, len, d);
		if (memcmp(d, r->man.digests + (size_t)c * MC_DIGEST_LEN, MC_DIGEST_LEN) != 0) {
			r->st.bad_chunks++;
			event(r, MC_REV_BADCHUNK, c);
			return;
		}
		if (chunk_store(r, c, buf, len, 0) == 0)
			check_complete(r);
	} else if (r->cfg.trust) {
		/* Under --trust nothing of a session is written before its signature: let it go, asked for again. */
		return;
	} else {
		/* No digest yet: park it in the file, verify when the manifest is complete. */
		if (r->cfg.io.write(r->cfg.io.ctx, off, buf, len) < 0) {
			event(r, MC_REV_IOERR, c);
			return;
		}
		setbit(r->unverified, c);
		if (r->spill[c]) {
			free(r->spill[c]);
			r->spill[c] = NULL;
		}
	}
}

static size_t spill_bytes(const struct mc_receiver *r)
{
	return ((size_t)r->geom.bpc * r->geom.kmax + 7) / 8;
}

/* Bytes of chunk c from its start to the end of its last spilled source symbol (0: none). */
static uint32_t spilled_end(const struct mc_receiver *r, uint32_t c, uint32_t nblocks)
{
	const uint8_t *bits = r->spill[c];

	for (uint32_t bi = nblocks; bits && bi-- > 0;) {
		struct mc_block b;
		if (mc_geom_block(&r->geom, c * r->geom.bpc + bi, &b) < 0)
			continue;
		for (uint16_t e = b.k; e-- > 0;)
			if (bit(bits, bi * r->geom.kmax + e)) {
				uint32_t so = ((uint32_t)e + 1) * r->geom.sym;
				return bi * (uint32_t)r->geom.kmax * r->geom.sym + (b.len < so ? b.len : so);
			}
	}
	return 0;
}

/*
 * Writes what an incomplete slot holds and remembers which symbols are on
 * disk. One write from the chunk's start to the end of the last symbol
 * held, not one per run of symbols: the slot's buffer lays the chunk out
 * as the payload does (block i at i * kmax * sym), and it holds every
 * symbol spilled before (reload_slot read them all back), so what lies
 * between the runs is either one of them or bytes nobody reads. On a
 * target written with O_DIRECT the runs went through the device's page
 * cache, each partial page at a run's ends read from the disk first: about
 * ten small synchronous reads per chunk parked, in the receive loop (a
 * receiver behind 5% loss parked 450-600 chunks a run of bench/image).
 * One write that starts at the chunk's (aligned) start has one partial
 * page at most.
 */
static int spill_slot(struct mc_receiver *r, struct slot *s)
{
	uint32_t c = (uint32_t)s->chunk;
	uint8_t *bits = r->spill[c];
	uint32_t end;

	/* Under --trust no symbol goes to the file before the manifest is trusted: they are let go. */
	if (r->cfg.trust && !r->man_ok)
		return 0;
	if (bits == NULL && (bits = r->spill[c] = calloc(spill_bytes(r), 1)) == NULL)
		return -1;
	for (uint32_t bi = 0; bi < s->nblocks; bi++) {
		struct mc_block b;
		if (mc_geom_block(&r->geom, c * r->geom.bpc + bi, &b) < 0)
			continue;
		struct blk *k = &s->blk[bi];
		if (!k->complete && k->nrep) {
			/* Repair symbols have no place in the file: keep them aside until the chunk comes back. */
			if (r->held[c] == NULL && (r->held[c] = calloc(r->geom.bpc, sizeof(struct held))) == NULL)
				return -1;
			struct held *h = &r->held[c][bi];
			for (unsigned i = 0; i < k->nrep; i++) {
				h->esi[h->n] = k->rep_esi[i];
				h->rep[h->n++] = k->rep[i];
			}
			k->nrep = 0;
		}
		for (uint16_t e = 0; e < b.k; e++) {
			if (!(k->complete || (k->bits[e >> 6] >> (e & 63) & 1)))
				continue;
			setbit(bits, bi * r->geom.kmax + e);
		}
	}
	/* Up to the last symbol on disk (any spilled earlier are in the buffer too: written again). */
	end = spilled_end(r, c, s->nblocks);
	if (end && r->cfg.io.write(r->cfg.io.ctx, mc_geom_chunk_off(&r->geom, c), s->buf, end) < 0)
		return -1;
	r->st.spills++;
	return 0;
}

/* Takes chunk c's spilled symbols (one read, as spill_slot wrote them) and held repair symbols into slot s. */
static int reload_slot(struct mc_receiver *r, struct slot *s, uint32_t c)
{
	uint8_t *bits = r->spill[c];
	uint32_t end = spilled_end(r, c, s->nblocks);

	if (end && r->cfg.io.read(r->cfg.io.ctx, mc_geom_chunk_off(&r->geom, c), s->buf, end) < 0)
		return -1;
	for (uint32_t bi = 0; bi < s->nblocks; bi++) {
		struct mc_block b;
		if (mc_geom_block(&r->geom, c * r->geom.bpc + bi, &b) < 0)
			continue;
		struct blk *k = &s->blk[bi];
		uint8_t *base = s->buf + (size_t)bi * r->geom.kmax * r->geom.sym;
		if (r->held[c]) {
			struct held *h = &r->held[c][bi];
			for (unsigned i = 0; i < h->n; i++) {
				k->rep_esi[k->nrep] = h->esi[i];
				k->rep[k->nrep++] = h->rep[i];
				k->bits[h->esi[i] >> 6] |= 1ULL << (h->esi[i] & 63);
			}
			h->n = 0;
		}
		for (uint16_t e = 0; bits && e < b.k; e++) {
			if (!bit(bits, bi * r->geom.kmax + e))
				continue;
			k->bits[e >> 6] |= 1ULL << (e & 63);
			k->nsrc++;
			/* A short last symbol: zeros after the block's end, as the sender codes it. */
			uint32_t so = (uint32_t)e * r->geom.sym;
			if (b.len - so < r->geom.sym)
				memset(base + b.len, 0, r->geom.sym - (b.len - so));
		}
		if (k->nsrc == b.k) {
			k->complete = 1;
			s->done++;
		}
	}
	free(bits);
	r->spill[c] = NULL;
	free(r->held[c]);
	r->held[c] = NULL;
	r->st.reloads++;
	return 0;
}

/* Bytes [*so, *so + *n) of chunk c's start that source symbol e of block b covers. */
static void sym_extent(const struct mc_receiver *r, const struct mc_block *b, uint16_t e, uint32_t *so, uint32_t *n)
{
	uint32_t in = (uint32_t)e * r->geom.sym;

	*so = (uint32_t)(b->off - mc_geom_chunk_off(&r->geom, b->chunk)) + in;
	*n = b->len - in < r->geom.sym ? b->len - in : r->geom.sym;
}

/*
 * Parts of chunks already in the file (a resumed state, or spilled under
 * other coding parameters) become spilled source symbols: each symbol wholly
 * inside a span counts as received. Spans are sorted by chunk and offset.
 */
static int apply_spans(struct mc_receiver *r, const struct mc_span *sp, uint32_t n)
{
	for (uint32_t i = 0; i < n;) {
		uint32_t c = sp[i].chunk, j = i;
		while (j < n && sp[j].chunk == c)
			j++;
		if (c >= r->geom.nchunks || bit(r->have, c) || bit(r->unverified, c) || r->slot_of[c] >= 0) {
			i = j;
			continue;
		}
		if (r->spill[c] == NULL && (r->spill[c] = calloc(spill_bytes(r), 1)) == NULL)
			return -1;
		uint32_t at = i;
		for (uint32_t bi = 0; bi < r->geom.bpc; bi++) {
			struct mc_block b;
			if (mc_geom_block(&r->geom, c * r->geom.bpc + bi, &b) < 0)
				break;
			for (uint16_t e = 0; e < b.k; e++) {
				uint32_t so, len;
				sym_extent(r, &b, e, &so, &len);
				while (at < j && sp[at].off + sp[at].len <= so)
					at++;
				if (at < j && sp[at].off <= so && so + len <= sp[at].off + sp[at].len)
					setbit(r->spill[c], bi * r->geom.kmax + e);
			}
		}
		i = j;
	}
	return 0;
}

long mc_recv_spans(const struct mc_receiver *r, struct mc_span **out)
{
	struct mc_span *v = NULL;
	size_t n = 0, cap = 0;

	*out = NULL;
	for (uint32_t c = 0; r->spill && c < r->geom.nchunks; c++) {
		if (r->spill[c] == NULL || bit(r->have, c) || bit(r->unverified, c))
			continue;
		for (uint32_t bi = 0; bi < r->geom.bpc; bi++) {
			struct mc_block b;
			if (mc_geom_block(&r->geom, c * r->geom.bpc + bi, &b) < 0)
				break;
			for (uint16_t e = 0; e < b.k; e++) {
				if (!bit(r->spill[c], bi * r->geom.kmax + e))
					continue;
				uint32_t so, len;
				sym_extent(r, &b, e, &so, &len);
				if (n > 0 && v[n - 1].chunk == c && v[n - 1].off + v[n - 1].len == so) {
					v[n - 1].len += len;
					continue;
				}
				if (n == cap) {
					size_t nc = cap ? cap * 2 : 256;
					struct mc_span *nv = realloc(v, nc * sizeof *v);
					if (nv == NULL) {
						free(v);
						return -1;
					}
					v = nv;
					cap = nc;
				}
				v[n++] = (struct mc_span){c, so, len};
			}
		}
	}
	*out = v;
	return (long)n;
}

static struct slot *get_slot(struct mc_receiver *r, uint32_t c)
{
	struct slot *s = NULL;

	if (r->slot_of[c] >= 0) {
		s = &r->slots[r->slot_of[c]];
		s->lru = ++r->lru_clock;
		return s;
	}
	for (unsigned i = 0; i < r->nslots; i++) {
		if (r->slots[i].chunk < 0) {
			s = &r->slots[i];
			break;
		}
		if (s == NULL || r->slots[i].lru < s->lru)
			s = &r->slots[i];
	}
	if (s->chunk >= 0) {
		if (spill_slot(r, s) < 0) {
			event(r, MC_REV_IOERR, (uint32_t)s->chunk);
			return NULL;
		}
		r->slot_of[s->chunk] = -1;
		slot_reset(s);
		s->chunk = -1;
	}
	s->nblocks = mc_geom_chunk_blocks(&r->geom, c);
	s->done = 0;
	s->chunk = c;
	s->lru = ++r->lru_clock;
	r->slot_of[c] = (int32_t)(s - r->slots);
	if ((r->spill[c] || r->held[c]) && reload_slot(r, s, c) < 0) {
		event(r, MC_REV_IOERR, c);
		r->slot_of[c] = -1;
		slot_reset(s);
		s->chunk = -1;
		return NULL;
	}
	return s;
}

static void release_slot(struct mc_receiver *r, struct slot *s)
{
	r->slot_of[s->chunk] = -1;
	slot_reset(s);
	s->chunk = -1;
	s->lru = 0;
}

int mc_recv_flush(struct mc_receiver *r)
{
	int rc = 0;

	for (unsigned i = 0; r->slots && i < r->nslots; i++) {
		struct slot *s = &r->slots[i];
		if (s->chunk < 0)
			continue;
		if (spill_slot(r, s) < 0)
			rc = -1;
		release_slot(r, s);
	}
	return rc;
}

/*
 * Checks the manifest against geometry g (of the announcement) and points
 * an image's geometry at the manifest's chunk table. Returns 0, or -1 when
 * they disagree: a format-2 manifest in a session not announced as an image
 * or the reverse, other sizes, a table that does not fit.
 */
static int place_chunks(struct mc_receiver *r, struct mc_geom *g)
{
	if ((r->man.format == MC_PKG_VERSION_IMAGE) != (g->image != 0) || r->man.nchunks != g->nchunks ||
	    r->man.payload_size != g->payload_size || r->man.chunk_size != g->chunk_size)
		return -1;
	return g->image ? mc_geom_set_table(g, r->man.chunk_offs) : 0;
}

static void replay_early(struct mc_receiver *r, uint64_t now);

/* An image session placed (place_due): its holes count as verified (the sink told of each), then the held DATA. */
static void place_image(struct mc_receiver *r, uint64_t now)
{
	r->place_due = 0;
	if (r->phase != MC_RPH_JOINED)
		return;
	for (uint32_t c = 0; c < r->geom.nchunks; c++)
		if (mc_geom_chunk_len(&r->geom, c) == 0 && !bit(r->have, c) && chunk_store(r, c, NULL, 0, 1) < 0)
			return;
	check_complete(r);
	replay_early(r, now);
}

/*
 * The manifest is complete (or preloaded) and the session known: chunks
 * parked before the manifest are verified; an image is placed at the next
 * call (place_due).
 */
static void manifest_ready(struct mc_receiver *r)
{
	uint8_t *buf = r->nslots ? r->slots[0].buf : NULL;

	event(r, MC_REV_MANIFEST, r->man.nchunks);
	if (r->geom.image) {
		r->place_due = 1;
		return;
	}
	for (uint32_t c = 0; c < r->geom.nchunks && buf; c++) {
		if (!bit(r->unverified, c))
			continue;
		clrbit(r->unverified, c);
		if (bit(r->have, c))
			continue;
		/* Borrow a slot buffer: evict whatever it holds first. */
		if (r->slots[0].chunk >= 0) {
			if (spill_slot(r, &r->slots[0]) < 0) {
				event(r, MC_REV_IOERR, c);
				return;
			}
			release_slot(r, &r->slots[0]);
		}
		uint32_t len = mc_geom_chunk_len(&r->geom, c);
		uint8_t d[MC_DIGEST_LEN];
		if (r->cfg.io.read(r->cfg.io.ctx, mc_geom_chunk_off(&r->geom, c), buf, len) < 0) {
			event(r, MC_REV_IOERR, c);
			return;
		}
		mc_chunk_digest(&r->man, buf, len, d);
		if (memcmp(d, r->man.digests + (size_t)c * MC_DIGEST_LEN, MC_DIGEST_LEN) == 0) {
			if (chunk_store(r, c, buf, len, 1) < 0)
				return;
		} else {
			r->st.bad_chunks++;
			event(r, MC_REV_BADCHUNK, c);
		}
	}
	check_complete(r);
}

/* 0 when the package is wanted, else why not (MC_OTHER_*). */
static int id_unwanted(const struct mc_receiver *r, const uint8_t id[MC_ID_LEN], const char *name)
{
	if (r->pinned && memcmp(id, r->pin_id, MC_ID_LEN) != 0)
		return MC_OTHER_PART;
	if (r->cfg.expect_nhex && !mc_id_match(id, r->cfg.expect, r->cfg.expect_nhex))
		return MC_OTHER_EXPECT;
	if (r->cfg.package[0] && strcmp(name, r->cfg.package) != 0)
		return MC_OTHER_PACKAGE;
	return 0;
}

static void send_hello(struct mc_receiver *r)
{
	struct mc_pkt p;

	memset(&p, 0, sizeof p);
	p.type = MC_PKT_HELLO;
	p.flags = r->welcomed ? MC_FLAG_WELCOMED : 0;
	p.session = r->have_session ? r->session : 0;
	p.u.hello.rid = r->cfg.rid;
	if (r->have_session || r->pinned) {
		memcpy(p.u.hello.want_id, r->have_session ? r->ann.id : r->pin_id, MC_ID_LEN);
		p.u.hello.want_nhex = 2 * MC_ID_LEN;
	} else if (r->cfg.expect_nhex) {
		/* A prefix travels as such: a sender of another package must not count us. */
		memcpy(p.u.hello.want_id, r->cfg.expect, MC_ID_LEN);
		p.u.hello.want_nhex = (uint8_t)r->cfg.expect_nhex;
	}
	p.u.hello.have = r->nhave;
	p.u.hello.total = r->have_session ? r->geom.nchunks : 0;
	/* A receiver pinned by PKG.part asks for that package by name too, so --package counts it right. */
	if (r->cfg.package[0] == '\0' && r->pinned && r->man_ok)
		memcpy(p.u.hello.name, r->man.name, sizeof p.u.hello.name);
	else
		memcpy(p.u.hello.name, r->cfg.package, sizeof p.u.hello.name);
	memcpy(p.u.hello.host, r->cfg.host, sizeof p.u.hello.host);
	queue_fb(r, &p);
	r->st.hellos_sent++;
}

/* An announcement of the session we are in: only the moving parts may change. */
static void announce_update(struct mc_receiver *r, uint64_t now, const struct mc_pkt *p)
{
	const struct mc_announce *a = &p->u.ann;

	if (memcmp(a->id, r->ann.id, MC_ID_LEN) != 0 || a->chunk_size != r->ann.chunk_size ||
	    a->payload_size != r->ann.payload_size || a->symbol_size != r->ann.symbol_size ||
	    a->kmax != r->ann.kmax || a->nchunks != r->ann.nchunks || !a->image != !r->geom.image) {
		r->st.bad++;
		return;
	}
	r->last_heard = now;
	r->ann.joined = a->joined;
	r->ann.complete = a->complete;
	r->sidle = (p->flags & MC_FLAG_IDLE) != 0;
	/*
	 * A new pass is believed from its DATA, or from an announcement of
	 * IDLE: both come after the last pass's DATA. An announcement sent
	 * in between may already count the next pass while the end of the
	 * last one is still on its way; taken at its word, every block
	 * then in flight would look missed and be asked for again.
	 */
	if (a->pass > r->spass && r->sidle) {
		r->spass = a->pass;
		r->sblock = 0;
	}
	if (r->sidle && a->cursor > r->sblock && a->pass == r->spass)
		r->sblock = a->cursor;
}

/* 1 when a session of another package is not taken (told once per package), else 0. */
static int announce_unwanted(struct mc_receiver *r, const struct mc_announce *a)
{
	int why = id_unwanted(r, a->id, a->name);

	if (!why)
		return 0;
	r->st.other++;
	/* Said once per package: a receiver waiting in silence for ever helps nobody. */
	if (!r->other_told || memcmp(r->other.id, a->id, MC_ID_LEN) != 0) {
		r->other = *a;
		r->other_told = 1;
		event(r, MC_REV_OTHER, (uint32_t)why);
	}
	return 1;
}

/*
 * Another session of our package (the sender restarted): 1 when we switch to
 * it, only once ours is gone, and only when it agrees on what the package id
 * pins.
 */
static int announce_switch(struct mc_receiver *r, uint64_t now, const struct mc_pkt *p)
{
	const struct mc_announce *a = &p->u.ann;

	if (memcmp(a->id, r->ann.id, MC_ID_LEN) != 0 || (!r->ended && now < r->last_heard + 2000)) {
		r->st.other++;
		return 0;
	}
	/* The package id pins the sizes; an announcement that disagrees is forged or broken. */
	if (a->payload_size != r->ann.payload_size || a->chunk_size != r->ann.chunk_size ||
	    a->manifest_len != r->ann.manifest_len || a->nchunks != r->ann.nchunks ||
	    !a->image != !r->geom.image) {
		r->st.bad++;
		return 0;
	}
	return 1;
}

/* The block geometry an announcement describes, placed when the manifest is known. Returns 0 or -1. */
static int announce_geom(struct mc_receiver *r, const struct mc_pkt *p, struct mc_geom *g)
{
	const struct mc_announce *a = &p->u.ann;
	int rc;

	if (a->image)
		rc = mc_geom_init_image(g, a->nchunks, a->payload_size, a->chunk_size, a->symbol_size, a->kmax);
	else
		rc = mc_geom_init(g, a->payload_size, a->chunk_size, a->symbol_size, a->kmax);
	if (rc < 0)
		return -1;
	if (r->man_ok && place_chunks(r, g) < 0)
		return -1;
	return 0;
}

/* The first session: chunk state, what a resumed state preloaded, slots sized to the rate. Returns 0 or -1. */
static int session_first(struct mc_receiver *r, const struct mc_announce *a, const struct mc_geom *g)
{
	uint8_t *pre = r->unverified; /* preloaded verified bitmap, if any */

	r->unverified = NULL;
	if (r->auto_mem) {
		/* Chunks wait in memory a repair round trip: size that to the rate (an eighth of a second). */
		uint64_t m = a->rate / 64;
		r->cfg.mem_limit = m < DEFAULT_MEM ? DEFAULT_MEM : m > AUTO_MEM_MAX ? AUTO_MEM_MAX : (size_t)m;
	}
	if (setup_chunks(r, g) < 0) {
		free(pre);
		return -1;
	}
	if (pre) {
		for (uint32_t c = 0; c < g->nchunks; c++)
			if (bit(pre, c))
				mark_have(r, c);
		free(pre);
	}
	if (r->pre_nspans && apply_spans(r, r->pre_spans, r->pre_nspans) < 0)
		event(r, MC_REV_IOERR, 0);
	free(r->pre_spans);
	r->pre_spans = NULL;
	r->pre_nspans = 0;
	return 0;
}

/*
 * A new session with new coding parameters: block numbering changed. What
 * the file holds of partial chunks is kept as byte spans and read again in
 * the new symbols; repair symbols and requests are forgotten. Returns 0 or -1.
 */
static int session_recode(struct mc_receiver *r, const struct mc_geom *g)
{
	struct mc_span *sp = NULL;
	long nsp = mc_recv_flush(r) < 0 ? -1 : mc_recv_spans(r, &sp);

	for (uint32_t c = 0; c < r->geom.nchunks; c++) {
		free(r->spill[c]);
		r->spill[c] = NULL;
		drop_held(r, c);
	}
	free_slots(r);
	r->geom = *g;
	build_ord(r);
	/* The slots again, as many as this block size needs (all were free after the flush). */
	if (alloc_requests(r) < 0 || alloc_slots(r) < 0) {
		free(sp);
		return -1;
	}
	if (nsp > 0 && apply_spans(r, sp, (uint32_t)nsp) < 0)
		event(r, MC_REV_IOERR, 0);
	free(sp);
	return 0;
}

/* Takes the session an announcement describes: its id, the sender's position, hello and done anew. */
static void session_take(struct mc_receiver *r, uint64_t now, const struct mc_pkt *p)
{
	const struct mc_announce *a = &p->u.ann;

	r->have_session = 1;
	r->ended = 0;
	r->est_set = 0; /* which blocks sample the loss: from the first DATA of this session on */
	r->gap_span = r->gap_lost = 0;
	r->session = p->session;
	r->ann = *a;
	r->spass = a->pass;
	r->sblock = a->cursor;
	r->sidle = (p->flags & MC_FLAG_IDLE) != 0;
	r->last_heard = now;
	r->welcomed = 0;
	r->next_hello = 0;
	r->done_acked = 0;
	r->done_tries = 0;
	if (r->phase == MC_RPH_WAIT)
		r->phase = MC_RPH_JOINED;
}

static void on_announce(struct mc_receiver *r, uint64_t now, const struct mc_pkt *p)
{
	const struct mc_announce *a = &p->u.ann;
	struct mc_geom g;

	if (r->have_session && p->session == r->session) {
		announce_update(r, now, p);
		return;
	}
	for (unsigned i = 0; i < r->nrefused && i < MC_REFUSED_MAX; i++)
		if (r->refused[i].session == p->session && memcmp(r->refused[i].id, a->id, MC_ID_LEN) == 0) {
			r->st.other++; /* told when refused (MC_OTHER_UNTRUSTED) */
			return;
		}
	if (announce_unwanted(r, a) || (r->have_session && !announce_switch(r, now, p)))
		return;
	if (announce_geom(r, p, &g) < 0) {
		r->st.bad++;
		return;
	}
	if (!r->have_session) {
		if (session_first(r, a, &g) < 0) {
			event(r, MC_REV_IOERR, 0);
			return;
		}
	} else if (r->geom.sym != g.sym || r->geom.kmax != g.kmax) {
		if (session_recode(r, &g) < 0) {
			event(r, MC_REV_IOERR, 0);
			return;
		}
	} else {
		memset(r->req_pass, 0, g.nblocks * sizeof *r->req_pass);
	}
	session_take(r, now, p);
	if (!r->man_ok && r->man_buf == NULL) {
		r->man_len = a->manifest_len;
		r->man_nfrag = (a->manifest_len + MC_MANIFEST_FRAG - 1) / MC_MANIFEST_FRAG;
		r->man_buf = malloc(r->man_len);
		r->man_got = calloc(r->man_nfrag / 8 + 1, 1);
		if (!r->man_buf || !r->man_got) {
			event(r, MC_REV_IOERR, 0);
			return;
		}
	}
	event(r, MC_REV_SESSION, p->session);
	if (r->man_ok)
		manifest_ready(r);
	/* An image session's DATA waits for the manifest, which places its blocks (place_image). */
	if (!r->geom.image)
		replay_early(r, now);
}

/*
 * The session's manifest is not trusted: forget the session whole (nothing
 * of it was written) and refuse its package id from now on; wait for another.
 */
static void session_refuse(struct mc_receiver *r)
{
	r->refused[r->nrefused % MC_REFUSED_MAX].session = r->session;
	memcpy(r->refused[r->nrefused++ % MC_REFUSED_MAX].id, r->ann.id, MC_ID_LEN);
	r->other = r->ann;
	r->other_told = 1;
	free_chunks(r);
	mc_manifest_free(&r->man);
	free(r->man_buf);
	free(r->man_got);
	r->man_buf = r->man_got = NULL;
	r->man_have = 0;
	r->man_ok = 0;
	/* Datagrams held before the announcement may be the refused session's: let them go too. */
	for (unsigned i = 0; i < r->nearly; i++)
		free(r->early[i]);
	r->nearly = 0;
	memset(&r->geom, 0, sizeof r->geom);
	r->nhave = 0;
	r->have_session = 0;
	r->last_heard = 0; /* as before any session: --timeout counts from the start again */
	r->phase = MC_RPH_WAIT;
	event(r, MC_REV_OTHER, MC_OTHER_UNTRUSTED);
}

static void on_manifest(struct mc_receiver *r, uint64_t now, const struct mc_pkt *p)
{
	const struct mc_manifest_frag *f = &p->u.man;
	char err[128];

	if (r->man_ok || r->man_buf == NULL)
		return;
	if (f->total != r->man_len || f->offset % MC_MANIFEST_FRAG != 0 ||
	    f->len != (r->man_len - f->offset < MC_MANIFEST_FRAG ? r->man_len - f->offset : MC_MANIFEST_FRAG)) {
		r->st.bad++;
		return;
	}
	uint32_t i = f->offset / MC_MANIFEST_FRAG;
	if (bit(r->man_got, i))
		return;
	memcpy(r->man_buf + f->offset, f->bytes, f->len);
	setbit(r->man_got, i);
	if (++r->man_have < r->man_nfrag)
		return;
	if (mc_manifest_parse(r->man_buf, r->man_len, &r->man, err, sizeof err) < 0 ||
	    memcmp(r->man.id, r->ann.id, MC_ID_LEN) != 0 || place_chunks(r, &r->geom) < 0) {
		/* Damaged or forged: start collecting it again. */
		if (r->man.raw)
			mc_manifest_free(&r->man);
		memset(r->man_got, 0, r->man_nfrag / 8 + 1);
		r->man_have = 0;
		r->st.bad++;
		return;
	}
	if (r->cfg.trust &&
	    mc_manifest_trust(&r->man, r->cfg.trust, r->untrusted_why, sizeof r->untrusted_why) != MC_SIG_TRUSTED) {
		session_refuse(r);
		return;
	}
	r->man_ok = 1;
	build_ord(r);
	free(r->man_buf);
	free(r->man_got);
	r->man_buf = r->man_got = NULL;
	manifest_ready(r);
}

/* A receiver that joins mid-pass keeps what it hears before the first announcement. */
static void hold_early(struct mc_receiver *r, const uint8_t *buf, size_t len)
{
	if (r->nearly == MC_EARLY_MAX || len > 65535) {
		r->early_full = 1;
		return;
	}
	if (r->early == NULL) {
		r->early = calloc(MC_EARLY_MAX, sizeof *r->early);
		r->early_len = calloc(MC_EARLY_MAX, sizeof *r->early_len);
		if (!r->early || !r->early_len)
			return;
	}
	uint8_t *copy = malloc(len);
	if (copy == NULL)
		return;
	memcpy(copy, buf, len);
	r->early[r->nearly] = copy;
	r->early_len[r->nearly++] = (uint16_t)len;
}

/* Highest ESI seen in a block, plus one; 0 if none. */
static unsigned esi_span(const struct blk *k)
{
	for (int w = 3; w >= 0; w--)
		if (k->bits[w])
			return (unsigned)(w * 64 + 64 - __builtin_clzll(k->bits[w]));
	return 0;
}

/*
 * One block's first-pass loss: the sender sent at least its k symbols and
 * every ESI below the highest seen (it sends each block's ESIs in order
 * until they wrap at 255, which a span of 255 leaves out).
 */
static void loss_sample(struct mc_receiver *r, uint32_t gb)
{
	struct mc_block b;
	unsigned got = 0, span = 0;

	if (gb < r->est_from || r->req_pass[gb] || mc_geom_block(&r->geom, gb, &b) < 0)
		return;
	int32_t si = r->slot_of[b.chunk];
	if (si >= 0) {
		const struct blk *k = &r->slots[si].blk[b.index];
		got = k->complete ? b.k : (unsigned)(k->nsrc + k->nrep);
		span = esi_span(k);
	} else if (r->spill[b.chunk]) {
		/* Parked: its source symbols in the spill map, its repair ones held. */
		for (unsigned e = 0; e < b.k; e++)
			if (bit(r->spill[b.chunk], b.index * r->geom.kmax + e)) {
				got++;
				span = e + 1;
			}
		const struct held *h = r->held[b.chunk] ? &r->held[b.chunk][b.index] : NULL;
		for (unsigned i = 0; h && i < h->n; i++) {
			got++;
			if (h->esi[i] + 1u > span)
				span = h->esi[i] + 1u;
		}
	} else {
		return; /* nothing of its chunk was kept: what arrived is not known */
	}
	if (span >= MC_RS_MAX)
		return;
	if (span < b.k)
		span = b.k;
	r->est_span += span;
	r->est_lost += span - got;
	if (r->est_span > (1u << 22)) { /* a running estimate: old blocks weigh less and less */
		r->est_span >>= 1;
		r->est_lost >>= 1;
	}
}

/* The loss estimate for NACKs, in 256ths (at most MC_LOSS_MAX), 0 until enough blocks say it. */
static uint8_t loss_256(const struct mc_receiver *r)
{
	if (r->est_span < LOSS_MIN_SYMBOLS)
		return 0;
	uint64_t v = (r->est_lost * 256 + r->est_span / 2) / r->est_span;
	return (uint8_t)(v > MC_LOSS_MAX ? MC_LOSS_MAX : v);
}

static void on_data(struct mc_receiver *r, uint64_t now, const struct mc_pkt *p);

static void replay_early(struct mc_receiver *r, uint64_t now)
{
	struct mc_pkt p;

	for (unsigned i = 0; i < r->nearly; i++) {
		if (mc_wire_decode(r->early[i], r->early_len[i], &p) == 0 && p.type == MC_PKT_DATA &&
		    p.session == r->session && r->phase == MC_RPH_JOINED)
			on_data(r, now, &p);
		free(r->early[i]);
	}
	r->nearly = 0;
	/*
	 * What came between the held DATA and the announcement is lost: the
	 * blocks on either side of that gap lack symbols the LAN did not lose.
	 * Taken for loss, they made a late joiner at 10 Gbit/s report 40% and
	 * the sender send it 1.7 times each block it asked for whole. The
	 * estimate starts past the first DATA after the gap instead.
	 */
	if (r->early_full && r->est_from != UINT32_MAX) {
		r->est_set = 0;
		r->est_from = UINT32_MAX; /* nothing counts until DATA after the gap places it */
	}
}

static void on_data(struct mc_receiver *r, uint64_t now, const struct mc_pkt *p)
{
	const struct mc_data *d = &p->u.data;
	const struct mc_geom *g = &r->geom;
	struct mc_block b;

	if (!r->have_session || p->session != r->session) {
		r->st.other++;
		return;
	}
	r->last_heard = now;
	uint32_t gb = d->block;
	if (d->sym_len != g->sym || mc_geom_block(g, gb, &b) < 0) {
		r->st.bad++;
		return;
	}
	uint32_t bi = b.index;
	/* Sender position: widen the 16-bit pass against the announced one. */
	uint32_t pass = (r->spass & ~0xffffu) | p->pass;
	if (pass + 0x8000u < r->spass)
		pass += 0x10000u;
	r->sidle = 0;
	if (pass > r->spass || (pass == r->spass && gb > r->sblock)) {
		r->spass = pass;
		r->sblock = gb;
	}
	r->st.data++;
	if (!r->est_set) {
		r->est_set = 1;
		r->est_from = r->spass <= 1 ? r->sblock + MC_INTERLEAVE : UINT32_MAX;
	}
	if (r->req_pass[gb] && r->spass <= 1 && gone_past(r, gb, MC_INTERLEAVE))
		r->req_at[gb] = (r->sblock & ~REQ_SERVED) | REQ_SERVED; /* first-pass repair of what was asked for */
	if (bit(r->have, b.chunk)) {
		r->st.dup++;
		return;
	}
	struct slot *s = get_slot(r, b.chunk);
	if (s == NULL)
		return;
	if (s->done == s->nblocks) {
		/* Whole from what the file already held (spans of a resumed state): verify it now. */
		chunk_done(r, b.chunk, s->buf);
		release_slot(r, s);
		return;
	}
	struct blk *k = &s->blk[bi];
	if (k->complete || (k->bits[d->esi >> 6] >> (d->esi & 63) & 1)) {
		r->st.dup++;
		return;
	}
	if (pass <= 1 && gb >= r->est_from) {
		unsigned next = esi_span(k); /* the ESI this one would be without loss */
		if (d->esi >= next) {
			r->gap_span += d->esi - next + 1u;
			r->gap_lost += d->esi - next;
			if (r->gap_span > (1u << 22)) { /* a running estimate, as est_* */
				r->gap_span >>= 1;
				r->gap_lost >>= 1;
			}
		}
	}
	k->bits[d->esi >> 6] |= 1ULL << (d->esi & 63);
	uint8_t *base = s->buf + (size_t)bi * g->kmax * g->sym;
	if (d->esi < b.k) {
		memcpy(base + (size_t)d->esi * g->sym, d->sym, g->sym);
		k->nsrc++;
	} else {
		uint8_t *copy = malloc(g->sym);
		if (copy == NULL)
			return;
		memcpy(copy, d->sym, g->sym);
		k->rep[k->nrep] = copy;
		k->rep_esi[k->nrep] = (uint8_t)d->esi;
		k->nrep++;
	}
	r->st.payload_bytes += g->sym;
	if (k->nsrc + k->nrep < b.k)
		return;
	if (k->nsrc < b.k) {
		uint8_t *src[MC_RS_MAX], present[MC_RS_MAX];
		for (uint16_t e = 0; e < b.k; e++) {
			src[e] = base + (size_t)e * g->sym;
			present[e] = (k->bits[e >> 6] >> (e & 63)) & 1;
		}
		if (mc_fec_decode(r->fec, b.k, g->sym, src, present, k->rep, k->rep_esi, k->nrep) < 0) {
			r->st.bad++;
			return;
		}
		r->st.decoded_blocks++;
	}
	for (unsigned i = 0; i < k->nrep; i++)
		free(k->rep[i]);
	k->nrep = 0;
	k->complete = 1;
	loss_sample(r, gb);
	if (++s->done < s->nblocks)
		return;
	chunk_done(r, b.chunk, s->buf);
	/* A bad chunk is simply forgotten: its blocks are asked for again. */
	release_slot(r, s);
}

/* Symbols still needed in block gb: 0 complete, MC_NEED_ALL nothing there yet. */
static uint16_t need_of(const struct mc_receiver *r, uint32_t gb, const struct mc_block *b)
{
	if (bit(r->have, b->chunk) || bit(r->unverified, b->chunk))
		return 0;
	int32_t si = r->slot_of[b->chunk];
	if (si >= 0) {
		const struct blk *k = &r->slots[si].blk[b->index];
		if (k->complete)
			return 0;
		if (k->nsrc + k->nrep == 0)
			return MC_NEED_ALL;
		return (uint16_t)(b->k - k->nsrc - k->nrep);
	}
	if (r->spill[b->chunk]) {
		unsigned n = 0;
		for (uint16_t e = 0; e < b->k; e++)
			n += bit(r->spill[b->chunk], b->index * r->geom.kmax + e);
		if (r->held[b->chunk])
			n += r->held[b->chunk][b->index].n;
		if (n >= b->k)
			return 1; /* cannot happen: a block with k symbols is decoded before eviction */
		return n == 0 ? MC_NEED_ALL : (uint16_t)(b->k - n);
	}
	return MC_NEED_ALL;
}

/* Would the sender send this block again without being asked? If not, it may be NACKed. */
static int eligible(const struct mc_receiver *r, uint64_t now, uint32_t gb)
{
	uint16_t rp = r->req_pass[gb];

	if (rp == 0) {
		if (r->spass <= 1 && !r->sidle)
			return gone_past(r, gb, MC_INTERLEAVE); /* first pass: only what it has gone past */
		return 1;
	}
	if (r->spass <= 1 && !r->sidle) {
		uint32_t at = r->req_at[gb];
		if (at & REQ_SERVED)
			return gone_past(r, at & ~REQ_SERVED, MC_INTERLEAVE);
		return gone_past(r, at, P1_UNSERVED_BLOCKS);
	}
	/* Asked already: wait until the sender went past the point that should have served it. */
	uint32_t full = (r->spass & ~0xffffu) | rp;
	if (full > r->spass + 0x8000u)
		full -= 0x10000u;
	if (r->spass > full || (r->spass == full && gone_past(r, gb, MC_INTERLEAVE)))
		return 1;
	/* req_ms keeps the low 32 bits of the time: compare in that arithmetic. */
	return r->sidle && (uint32_t)((uint32_t)now - r->req_ms[gb]) > IDLE_RETRY_MS;
}

static void mark_requested(struct mc_receiver *r, uint64_t now, uint32_t gb)
{
	loss_sample(r, gb);
	/* Behind the sender's cursor: served next pass; ahead: this pass. */
	uint32_t by = (gb > r->sblock && !r->sidle && r->spass > 1) ? r->spass : r->spass + 1;
	if (r->spass <= 1 && !r->sidle)
		by = 2;
	r->req_pass[gb] = (uint16_t)(by ? by : 1);
	if (r->req_pass[gb] == 0)
		r->req_pass[gb] = 1;
	r->req_ms[gb] = (uint32_t)now;
	r->req_at[gb] = r->sblock & ~REQ_SERVED;
}

static void on_nack_heard(struct mc_receiver *r, uint64_t now, const struct mc_pkt *p)
{
	if (!r->have_session || p->session != r->session || p->u.nack.rid == r->cfg.rid)
		return;
	r->st.nacks_heard++;
	/* Another receiver told a loss as large as ours lately: ours need not be told (mc_recv_alive). */
	if (now - r->loss_heard_ms >= LOSS_REPORT_MS)
		r->loss_heard = 0;
	if (p->flags > r->loss_heard) {
		r->loss_heard = p->flags;
		r->loss_heard_ms = now;
	}
	for (unsigned i = 0; i < p->u.nack.n; i++) {
		const struct mc_nack_entry *e = &p->u.nack.e[i];
		if (e->block >= r->geom.nblocks)
			continue;
		uint32_t end = e->block + e->run > r->geom.nblocks ? r->geom.nblocks : e->block + e->run;
		for (uint32_t gb = e->block; gb < end; gb++) {
			struct mc_block b;
			if (mc_geom_block(&r->geom, gb, &b) < 0)
				continue;
			uint16_t mine = need_of(r, gb, &b);
			if (mine == 0)
				continue;
			uint16_t theirs = e->need == MC_NEED_ALL ? b.k : e->need;
			uint16_t m = mine == MC_NEED_ALL ? b.k : mine;
			if (theirs >= m && eligible(r, now, gb)) {
				mark_requested(r, now, gb);
				r->st.suppressed++;
			}
		}
	}
}

static void on_ctrl(struct mc_receiver *r, const struct mc_pkt *p)
{
	if (!r->have_session || p->session != r->session)
		return;
	for (unsigned i = 0; i < p->u.ctrl.n; i++) {
		if (p->u.ctrl.e[i].rid != r->cfg.rid)
			continue;
		switch (p->u.ctrl.e[i].code) {
		case MC_CTRL_WELCOME:
			if (!r->welcomed) {
				r->welcomed = 1;
				event(r, MC_REV_WELCOME, 0);
			}
			break;
		case MC_CTRL_LEAVE:
			if (r->phase == MC_RPH_JOINED) {
				r->phase = MC_RPH_FINISHED;
				event(r, MC_REV_LEAVE, 0);
			}
			break;
		case MC_CTRL_DONE:
			/* Only an answer to our DONE counts: an early (or forged) one must not stop the retries. */
			if (r->phase == MC_RPH_COMPLETE && r->done_tries > 0)
				r->done_acked = 1;
			break;
		}
	}
}

void mc_recv_packet(struct mc_receiver *r, uint64_t now, const uint8_t *buf, size_t len)
{
	struct mc_pkt p;

	r->st.packets++;
	if (r->place_due)
		place_image(r, now);
	if (mc_wire_decode(buf, len, &p) < 0) {
		r->st.bad++;
		return;
	}
	if (r->phase == MC_RPH_FINISHED)
		return;
	switch (p.type) {
	case MC_PKT_ANNOUNCE:
		on_announce(r, now, &p);
		break;
	case MC_PKT_MANIFEST:
		if (r->have_session && p.session == r->session)
			on_manifest(r, now, &p);
		break;
	case MC_PKT_DATA:
		if (r->phase == MC_RPH_WAIT || (r->phase == MC_RPH_JOINED && (!mc_geom_placed(&r->geom) || r->place_due)))
			hold_early(r, buf, len);
		else if (r->phase == MC_RPH_JOINED)
			on_data(r, now, &p);
		else if (r->phase == MC_RPH_COMPLETE)
			r->st.dup++;
		break;
	case MC_PKT_END:
		if (r->have_session && p.session == r->session && memcmp(p.u.end.id, r->ann.id, MC_ID_LEN) == 0) {
			r->last_heard = now;
			if (!r->ended) {
				r->ended = 1;
				if (r->phase == MC_RPH_JOINED) {
					r->phase = MC_RPH_FINISHED;
					event(r, MC_REV_END, p.u.end.reason);
				}
			}
		}
		break;
	case MC_PKT_CTRL:
		on_ctrl(r, &p);
		break;
	case MC_PKT_NACK:
		if (r->phase == MC_RPH_JOINED)
			on_nack_heard(r, now, &p);
		break;
	default:
		break; /* other receivers' hellos and dones */
	}
}

/*
 * Where the scans for blocks to ask for may stop: during the first pass
 * nothing within MC_INTERLEAVE of the sender's position or ahead of it can be
 * eligible (see eligible()), so a receiver keeping up does not walk the whole
 * package every SCAN_MS.
 */
static uint32_t scan_end(const struct mc_receiver *r)
{
	if (r->spass > 1 || r->sidle)
		return r->geom.nblocks;
	uint64_t o = blk_ord(r, r->sblock);
	if (o <= MC_INTERLEAVE)
		return 0;
	o -= MC_INTERLEAVE;
	if (r->bord == NULL)
		return (uint32_t)o;
	/* The block the sender sends o-th: in the last chunk whose blocks start at or before o. */
	uint32_t lo = 0, hi = r->geom.nchunks;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo + 1) / 2;
		if (r->bord[mid] <= o)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo >= r->geom.nchunks ? r->geom.nblocks : lo * r->geom.bpc + (uint32_t)(o - r->bord[lo]);
}

/* A NACK with no entries yet; it carries the overruns, which the sender thereby learns. */
static void nack_start(struct mc_receiver *r, struct mc_pkt *p)
{
	memset(p, 0, sizeof *p);
	p->type = MC_PKT_NACK;
	p->session = r->session;
	p->u.nack.rid = r->cfg.rid;
	p->u.nack.pass = r->spass;
	p->u.nack.overruns = (uint16_t)r->overruns;
	r->overruns_told = r->overruns;
}

/* Queues a NACK with the loss estimate as it stands (the scan that filled it may have sampled more). */
static void queue_nack(struct mc_receiver *r, struct mc_pkt *p)
{
	p->flags = loss_256(r);
	queue_fb(r, p);
}

/*
 * The first block the scans for blocks to ask for look at: every chunk
 * before r->gap is verified (it only moves forward, as chunks are verified
 * in any order and never lose it).
 */
static uint32_t scan_start(struct mc_receiver *r)
{
	while (r->gap < r->geom.nchunks && bit(r->have, r->gap))
		r->gap++;
	return r->gap * r->geom.bpc;
}

/*
 * One step of a scan over the blocks [lo, end), once around from where it
 * is: the next block, or the next chunk's first when the rest of this chunk
 * has nothing to ask for (verified, a hole, past its end). *left counts the
 * blocks not yet passed. A receiver ticks every SCAN_MS: walking every block
 * of every verified chunk and every number past a short chunk's end (most
 * of an image's, whose chunks are as long as they compress to) was a fifth
 * of mcast-recv --to's instructions.
 */
static uint32_t scan_step(const struct mc_receiver *r, uint32_t gb, int rest, uint32_t lo, uint32_t end,
			  uint32_t *left)
{
	uint32_t next = gb + 1;

	if (rest) {
		next = (gb / r->geom.bpc + 1) * r->geom.bpc;
		if (next > end)
			next = end;
	}
	*left = *left > next - gb ? *left - (next - gb) : 0;
	return next < end ? next : lo;
}

/* Builds NACKs for eligible blocks, run-length coded, at most NACK_PKTS_MAX datagrams. */
static void send_nacks(struct mc_receiver *r, uint64_t now)
{
	struct mc_pkt p;
	unsigned pkts = 0;

	nack_start(r, &p);
	uint32_t lo = scan_start(r), end = scan_end(r);
	uint32_t gb = r->scan_pos >= lo && r->scan_pos < end ? r->scan_pos : lo, left = end > lo ? end - lo : 0;
	for (uint32_t i = 0; left && i < NACK_SCAN_BUDGET && pkts < NACK_PKTS_MAX; i++) {
		struct mc_block b;
		uint32_t at = gb;
		if (mc_geom_block(&r->geom, at, &b) < 0 || bit(r->have, b.chunk)) {
			gb = scan_step(r, at, 1, lo, end, &left); /* nothing to ask for in the rest of this chunk */
			continue;
		}
		gb = scan_step(r, at, 0, lo, end, &left);
		uint16_t need = need_of(r, at, &b);
		if (need == 0 || !eligible(r, now, at))
			continue;
		mark_requested(r, now, at);
		struct mc_nack_entry *last = p.u.nack.n ? &p.u.nack.e[p.u.nack.n - 1] : NULL;
		if (last && last->need == need && last->block + last->run == at && last->run < 0xffff) {
			last->run++;
		} else if (last && last->need == need && need == MC_NEED_ALL && last->run < 0xffff &&
			   mc_geom_block(&r->geom, last->block + last->run, &b) < 0 &&
			   (at - last->block) < 0xffff) {
			/* Holes between chunks are skipped by the sender: extend across them. */
			last->run = (uint16_t)(at - last->block + 1);
		} else {
			if (p.u.nack.n == MC_WIRE_NACK_MAX) {
				queue_nack(r, &p);
				r->st.nacks_sent++;
				r->st.nack_entries_sent += p.u.nack.n;
				p.u.nack.n = 0;
				if (++pkts == NACK_PKTS_MAX)
					break;
			}
			p.u.nack.e[p.u.nack.n++] = (struct mc_nack_entry){at, 1, need};
		}
	}
	if (p.u.nack.n && pkts < NACK_PKTS_MAX) {
		queue_nack(r, &p);
		r->st.nacks_sent++;
		r->st.nack_entries_sent += p.u.nack.n;
	}
}

static int any_eligible(struct mc_receiver *r, uint64_t now)
{
	uint32_t lo = scan_start(r), end = scan_end(r);
	uint32_t left = end > lo ? end - lo : 0;

	if (r->scan_pos < lo || r->scan_pos >= end)
		r->scan_pos = lo;
	for (uint32_t i = 0; left && i < SCAN_BUDGET; i++) {
		uint32_t gb = r->scan_pos;
		struct mc_block b;
		/* A verified chunk, a hole, a short chunk's end: on to the next chunk (one block of the budget). */
		int rest = mc_geom_block(&r->geom, gb, &b) < 0 || bit(r->have, b.chunk);
		r->scan_pos = scan_step(r, gb, rest, lo, end, &left);
		if (!rest && need_of(r, gb, &b) && eligible(r, now, gb)) {
			r->scan_pos = gb; /* the NACK round starts here */
			return 1;
		}
	}
	return 0;
}

/*
 * Exponentially distributed back-off over the window: with many receivers,
 * few fire early and the rest hear them. The window is backoff_ms times
 * ln(receivers), at least backoff_ms: a few receivers ask at once (what they
 * lack waits in memory meanwhile), thousands spread their requests out.
 */
static uint64_t backoff(struct mc_receiver *r)
{
	double n = r->ann.joined > 1 ? r->ann.joined : 1;
	double lambda = log(n) + 1.0;
	double win = r->cfg.backoff_ms * (log(n) > 1.0 ? log(n) : 1.0);
	double x = (double)(rnd(r) >> 11) / 9007199254740992.0;
	double t = win * log(1.0 + x * (exp(lambda) - 1.0)) / lambda;
	return (uint64_t)t;
}

void mc_recv_overruns(struct mc_receiver *r, uint32_t dropped)
{
	r->overruns = dropped;
}

/* A NACK with no entries: tells the sender at once that this receiver's kernel dropped datagrams. */
static void report_overruns(struct mc_receiver *r, uint64_t now)
{
	struct mc_pkt p;

	nack_start(r, &p);
	r->overrun_next = now + OVERRUN_REPORT_MS;
	queue_nack(r, &p);
}

/* A hello when one is due (waiting or joined). */
static void hello_due(struct mc_receiver *r, uint64_t now)
{
	if (now >= r->next_hello) {
		send_hello(r);
		uint64_t every = r->phase == MC_RPH_WAIT ? HELLO_WAIT_MS : r->welcomed ? mc_heartbeat_ms(r->ann.joined) : HELLO_JOIN_MS;
		r->next_hello = now + every - every / 8 + rnd(r) % (every / 4);
	}
}

void mc_recv_alive(struct mc_receiver *r, uint64_t now)
{
	if (r->place_due)
		place_image(r, now);
	if (r->phase == MC_RPH_WAIT || r->phase == MC_RPH_JOINED)
		hello_due(r, now);
	/*
	 * Behind in its reading a receiver asks for nothing yet, but tells its
	 * loss while the first pass goes on (a NACK with no entries): a sender
	 * with --fec auto sends the rest of the pass with repair enough for
	 * it. At 5 Gbit/s the sender ends its first pass long before such a
	 * receiver has read it, and its NACKs came only then.
	 */
	uint8_t loss = loss_256(r);
	if (r->gap_span >= LOSS_MIN_SYMBOLS) {
		uint64_t g = (r->gap_lost * 256 + r->gap_span / 2) / r->gap_span;
		if (g > loss)
			loss = (uint8_t)(g > MC_LOSS_MAX ? MC_LOSS_MAX : g);
	}
	int told = r->loss_heard >= loss && now - r->loss_heard_ms < LOSS_REPORT_MS;
	/* Not once its own kernel dropped datagrams: the gaps count those too, and the sender leaves it out. */
	if (r->phase == MC_RPH_JOINED && r->spass <= 1 && !r->sidle && loss && !told && !r->overruns && now >= r->loss_next) {
		struct mc_pkt p;
		nack_start(r, &p);
		r->loss_next = now + LOSS_REPORT_MS;
		p.flags = loss;
		queue_fb(r, &p);
	}
}

uint64_t mc_recv_tick(struct mc_receiver *r, uint64_t now)
{
	uint64_t next = now + 1000;

	if (r->place_due)
		place_image(r, now);
	switch (r->phase) {
	case MC_RPH_WAIT:
	case MC_RPH_JOINED:
		hello_due(r, now);
		if (r->next_hello < next)
			next = r->next_hello;
		if (r->phase != MC_RPH_JOINED)
			break;
		if (r->overruns != r->overruns_told && now >= r->overrun_next)
			report_overruns(r, now);
		if (now >= r->next_scan) {
			r->next_scan = now + SCAN_MS;
			r->eligible = any_eligible(r, now);
			if (r->eligible && r->nack_at == 0)
				r->nack_at = now + backoff(r);
			if (!r->eligible)
				r->nack_at = 0;
		}
		if (r->nack_at && now >= r->nack_at) {
			send_nacks(r, now);
			r->nack_at = 0;
			r->next_scan = now + SCAN_MS;
		}
		if (r->next_scan < next)
			next = r->next_scan;
		if (r->nack_at && r->nack_at < next)
			next = r->nack_at;
		break;
	case MC_RPH_COMPLETE:
		if (r->done_acked || r->done_tries >= DONE_TRIES) {
			r->phase = MC_RPH_FINISHED;
			break;
		}
		if (now >= r->next_done) {
			struct mc_pkt p;
			memset(&p, 0, sizeof p);
			p.type = MC_PKT_DONE;
			p.session = r->session;
			p.u.done.rid = r->cfg.rid;
			memcpy(p.u.done.id, r->ann.id, MC_ID_LEN);
			queue_fb(r, &p);
			r->done_tries++;
			r->next_done = now + DONE_EVERY_MS;
		}
		next = r->next_done;
		break;
	default:
		break;
	}
	return next;
}

uint64_t mc_recv_next(const struct mc_receiver *r)
{
	uint64_t next = UINT64_MAX;

	switch (r->phase) {
	case MC_RPH_WAIT:
		return r->next_hello;
	case MC_RPH_JOINED:
		if (r->place_due)
			return 0; /* an image to place: at once */
		next = r->next_hello < r->next_scan ? r->next_hello : r->next_scan;
		if (r->nack_at && r->nack_at < next)
			next = r->nack_at;
		return next;
	case MC_RPH_COMPLETE:
		return r->next_done;
	default:
		return next;
	}
}

size_t mc_recv_feedback(struct mc_receiver *r, uint8_t *buf, size_t cap)
{
	if (r->fb_n == 0)
		return 0;
	size_t n = r->fb_len[r->fb_head];
	if (n > cap)
		n = 0;
	else
		memcpy(buf, r->fb[r->fb_head], n);
	r->fb_head = (r->fb_head + 1) % FBQ;
	r->fb_n--;
	return n;
}

int mc_recv_event(struct mc_receiver *r, struct mc_recv_event *ev)
{
	if (r->ev_len == 0)
		return 0;
	*ev = r->ev[r->ev_head];
	r->ev_head = (r->ev_head + 1) % EVQ;
	r->ev_len--;
	return 1;
}

int mc_recv_phase(const struct mc_receiver *r) { return r->phase; }
const struct mc_manifest *mc_recv_manifest(const struct mc_receiver *r) { return r->man_ok ? &r->man : NULL; }
const char *mc_recv_untrusted(const struct mc_receiver *r) { return r->untrusted_why; }

const struct mc_announce *mc_recv_other(const struct mc_receiver *r)
{
	return r->other_told ? &r->other : NULL;
}

const uint8_t *mc_recv_pinned(const struct mc_receiver *r)
{
	return r->pinned ? r->pin_id : NULL;
}

const struct mc_announce *mc_recv_announce(const struct mc_receiver *r) { return r->have_session ? &r->ann : NULL; }
uint64_t mc_recv_last_heard(const struct mc_receiver *r) { return r->last_heard; }
const struct mc_recv_stats *mc_recv_stats(const struct mc_receiver *r) { return &r->st; }

const uint8_t *mc_recv_have(const struct mc_receiver *r, uint32_t *nhave, uint32_t *nchunks)
{
	if (!r->have_session)
		return NULL;
	*nhave = r->nhave;
	*nchunks = r->geom.nchunks;
	return r->have;
}
