/*
 * libFuzzer target: the receiver state machine (lib/receiver.h) fed
 * arbitrary datagram sequences with time advancing; timers, feedback and
 * events drained after every step. The io callbacks write into a fixed-size
 * memory buffer and abort on any write or read outside the announced
 * payload; every chunk reported verified must hold its manifest digest.
 *
 * Input: byte 0 picks a mode (bits 0-1) and the back-off seed; bit 7 also
 * sets --package and --expect to the real session's name and id; bit 6
 * takes the session of an image package (holes, a 1-byte chunk, raw chunks)
 * instead, and bit 2 then hands verified chunks through mc_recv_cfg.chunk;
 * with the other package, bit 2 sets --trust to a key that never signed it:
 * its sessions must be refused with nothing written or read (unless a
 * resume preloaded the manifest: the program checks that one itself).
 *   mode 0, 1: raw records: [ctl][len hi][len lo][len bytes]... ;
 *     ctl & 0x3f is the time step, ctl & 0x40 runs the timers now,
 *     mode 1 first preloads the real session's manifest (resume).
 *   mode 2, 3: the real session (session.h), its packets edited by a script
 *     of 5-byte operations [op][idx hi][idx lo][arg][val]: drop, duplicate,
 *     flip or set a byte, move to the end, swap, truncate, delay. Mode 3
 *     preloads the manifest and a have bitmap (arg of the first op). An
 *     empty script must complete with the exact payload.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "receiver.h"
#include "session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OUTCAP (256u * 1024) /* holds the real session's payload; larger payloads are only bounds-checked */

struct out {
	struct mc_receiver *r;
	uint8_t buf[OUTCAP];
	uint64_t writes, reads;
};

static struct fz_session sessions[2];
static struct fz_session *cur = &sessions[0];
static struct out o;
/* --trust: one key that signed nothing here (so every session is refused, unless preloaded). */
static struct mc_key fz_key = {.pub = {0xd7, 0x5a, 0x98, 0x01}};
static struct mc_trust fz_trust = {&fz_key, 1};
static int fz_trusting; /* cfg.trust set and no manifest preloaded */

static void in_payload(uint64_t off, size_t len)
{
	const struct mc_announce *a = mc_recv_announce(o.r);
	const struct mc_manifest *m = mc_recv_manifest(o.r);

	/* No write or read before a session is known, none outside its payload. */
	assert(a != NULL);
	assert(len > 0 && len <= a->chunk_size);
	assert(off <= a->payload_size && len <= a->payload_size - off);
	if (m)
		assert(off <= m->payload_size && len <= m->payload_size - off);
}

static int io_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct out *x = ctx;

	in_payload(off, len);
	x->writes++;
	if (off < OUTCAP)
		memcpy(x->buf + off, buf, len < OUTCAP - off ? len : OUTCAP - off);
	return 0;
}

/* mc_recv_cfg.chunk: the stored bytes of a verified chunk, whole (a hole: none), put where write would. */
static int io_chunk(void *ctx, uint32_t c, const void *buf, size_t len)
{
	struct out *x = ctx;
	const struct mc_manifest *m = mc_recv_manifest(o.r);
	uint8_t d[MC_DIGEST_LEN];

	assert(m != NULL && c < m->nchunks && len == mc_manifest_chunk_len(m, c) && (len == 0) == (buf == NULL));
	mc_chunk_digest(m, buf ? buf : "", len, d);
	assert(memcmp(d, m->digests + (size_t)c * MC_DIGEST_LEN, MC_DIGEST_LEN) == 0);
	if (len)
		in_payload(mc_manifest_chunk_off(m, c), len);
	if (len && mc_manifest_chunk_off(m, c) < OUTCAP) {
		uint64_t off = mc_manifest_chunk_off(m, c);
		memcpy(x->buf + off, buf, len < OUTCAP - off ? len : OUTCAP - off);
	}
	return 0;
}

static int io_read(void *ctx, uint64_t off, void *buf, size_t len)
{
	struct out *x = ctx;

	in_payload(off, len);
	x->reads++;
	memset(buf, 0, len);
	if (off < OUTCAP)
		memcpy(buf, x->buf + off, len < OUTCAP - off ? len : OUTCAP - off);
	return 0;
}

struct run {
	uint64_t now, next;
	int complete, chunks;
};

/* Timers, feedback, events: everything the program does between datagrams. */
static void drain(struct run *u, int force)
{
	struct mc_recv_event ev;
	uint8_t fb[MC_WIRE_FEEDBACK_MAX];
	size_t n;

	if (force || u->now >= u->next) {
		u->next = mc_recv_tick(o.r, u->now);
		assert(u->next >= u->now || mc_recv_phase(o.r) == MC_RPH_FINISHED || u->next == 0);
	}
	(void)mc_recv_next(o.r);
	while ((n = mc_recv_feedback(o.r, fb, sizeof fb)) > 0) {
		struct mc_pkt p;
		assert(n <= MC_WIRE_FEEDBACK_MAX);
		/* What we send must be well-formed. */
		assert(mc_wire_decode(fb, n, &p) == 0);
		assert(p.type == MC_PKT_HELLO || p.type == MC_PKT_NACK || p.type == MC_PKT_DONE || p.type == MC_PKT_BYE);
	}
	while (mc_recv_event(o.r, &ev)) {
		const struct mc_manifest *m = mc_recv_manifest(o.r);
		uint32_t nhave = 0, nchunks = 0;
		const uint8_t *have = mc_recv_have(o.r, &nhave, &nchunks);
		switch (ev.kind) {
		case MC_REV_CHUNK:
			assert(!fz_trusting);
			u->chunks++;
			assert(m != NULL && have != NULL && ev.arg < m->nchunks && ev.arg < nchunks);
			assert(have[ev.arg / 8] >> (ev.arg % 8) & 1);
			{
				uint64_t off = mc_manifest_chunk_off(m, ev.arg);
				uint32_t len = mc_manifest_chunk_len(m, ev.arg);
				/* Verified means verified: what was written holds the digest. */
				if (off + len <= OUTCAP) {
					uint8_t d[MC_DIGEST_LEN];
					mc_chunk_digest(m, o.buf + off, len, d);
					assert(memcmp(d, m->digests + (size_t)ev.arg * MC_DIGEST_LEN, MC_DIGEST_LEN) == 0);
				}
			}
			break;
		case MC_REV_COMPLETE: {
			const struct mc_announce *a = mc_recv_announce(o.r);
			u->complete = 1;
			assert(m != NULL && a != NULL && have != NULL && nhave == nchunks && nchunks == m->nchunks);
			/* Complete means every payload byte is in a verified chunk. */
			/* An empty package (no payload, no chunks) is a valid session of its manifest alone. */
			assert(m->payload_size == a->payload_size && (m->nchunks > 0 || m->payload_size == 0));
			if (m->format == MC_PKG_VERSION_IMAGE) {
				/* An image: the spans cover the image, and hold what is stored of them. */
				assert(m->nchunks == 0 || (uint64_t)(m->nchunks - 1) * m->chunk_size < m->image_size);
				assert((uint64_t)m->nchunks * m->chunk_size >= m->image_size && m->image_size >= m->payload_size);
			} else {
				assert(m->nchunks == 0 || (uint64_t)(m->nchunks - 1) * m->chunk_size < m->payload_size);
				assert((uint64_t)m->nchunks * m->chunk_size >= m->payload_size);
			}
			break;
		}
		case MC_REV_MANIFEST:
			assert(m != NULL && !fz_trusting);
			break;
		case MC_REV_OTHER:
			assert(mc_recv_other(o.r) != NULL && ev.arg >= MC_OTHER_PART && ev.arg <= MC_OTHER_UNTRUSTED);
			assert(ev.arg != MC_OTHER_UNTRUSTED || (fz_trusting && mc_recv_untrusted(o.r)[0]));
			break;
		default:
			assert(ev.kind >= MC_REV_SESSION && ev.kind <= MC_REV_IOERR);
		}
	}
	(void)mc_recv_stats(o.r);
	(void)mc_recv_last_heard(o.r);
}

static void feed(struct run *u, const uint8_t *buf, size_t len)
{
	/* A private copy of exactly len bytes: ASan sees any read past the datagram. */
	uint8_t *copy = malloc(len ? len : 1);
	if (copy == NULL)
		return;
	memcpy(copy, buf, len);
	mc_recv_packet(o.r, u->now, copy, len);
	free(copy);
	drain(u, 0);
}

static void raw_records(struct run *u, const uint8_t *p, size_t n)
{
	while (n >= 3) {
		unsigned ctl = p[0];
		size_t len = (size_t)p[1] << 8 | p[2];
		p += 3;
		n -= 3;
		if (len > n)
			len = n;
		unsigned dt = ctl & 0x3f;
		u->now += dt < 48 ? dt : (uint64_t)(dt - 47) * 250; /* up to 4 s of silence */
		if (ctl & 0x40)
			drain(u, 1);
		feed(u, p, len);
		p += len;
		n -= len;
	}
}

struct wpkt {
	uint8_t *b;
	uint16_t len;
	uint32_t delay;
};

static void mutated_session(struct run *u, const uint8_t *p, size_t n)
{
	unsigned cap = cur->n * 2 + 1, cnt = cur->n;
	struct wpkt *w = calloc(cap, sizeof *w);
	int clean = n == 0;

	if (w == NULL)
		return;
	for (unsigned i = 0; i < cur->n; i++) {
		w[i].b = malloc(cur->len[i]);
		memcpy(w[i].b, cur->pkt[i], cur->len[i]);
		w[i].len = cur->len[i];
	}
	for (; n >= 5 && cnt > 0; p += 5, n -= 5) {
		unsigned op = p[0] % 8, i = ((unsigned)p[1] << 8 | p[2]) % cnt, arg = p[3], val = p[4];
		struct wpkt *x = &w[i];
		switch (op) {
		case 0: /* drop */
			free(x->b);
			memmove(x, x + 1, (cnt - i - 1) * sizeof *x);
			cnt--;
			break;
		case 1: /* duplicate */
			if (cnt == cap)
				break;
			memmove(x + 1, x, (cnt - i) * sizeof *x);
			w[i + 1].b = malloc(x->len);
			memcpy(w[i + 1].b, x->b, x->len);
			cnt++;
			break;
		case 2: /* flip bits of a byte; arg < 64: in the headers */
		case 3: { /* set a byte */
			size_t pos = arg < 64 ? arg % x->len : (size_t)(arg - 64) * x->len / 192;
			if (op == 2)
				x->b[pos] ^= (uint8_t)(val ? val : 1);
			else
				x->b[pos] = (uint8_t)val;
			break;
		}
		case 4: { /* move to the end: reordering across chunks, spills */
			struct wpkt t = *x;
			memmove(x, x + 1, (cnt - i - 1) * sizeof *x);
			w[cnt - 1] = t;
			break;
		}
		case 5: { /* swap with a neighbour */
			unsigned j = (i + 1 + arg) % cnt;
			struct wpkt t = w[i];
			w[i] = w[j];
			w[j] = t;
			break;
		}
		case 6: /* truncate */
			if (x->len > 1)
				x->len = (uint16_t)(1 + (size_t)(x->len - 1) * arg / 256);
			break;
		case 7: /* silence before this packet */
			x->delay += (uint32_t)val * 20 + arg;
			break;
		}
	}
	for (unsigned i = 0; i < cnt; i++) {
		u->now += 1 + w[i].delay;
		if (w[i].delay)
			drain(u, 1);
		feed(u, w[i].b, w[i].len);
		free(w[i].b);
	}
	free(w);
	if (clean && !fz_trusting) {
		/* The unedited session: every chunk, the exact payload. */
		assert(u->complete);
		assert(memcmp(o.buf, cur->payload, cur->payload_size) == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mc_recv_cfg cfg;
	struct run u = {1000, 0, 0, 0};

	if (sessions[0].n == 0 && (fz_session_make(&sessions[0], 0) < 0 || fz_session_make(&sessions[1], 1) < 0))
		abort();
	if (size < 1)
		return 0;
	cur = &sessions[data[0] >> 6 & 1];
	unsigned mode = data[0] % 4;
	memset(&cfg, 0, sizeof cfg);
	cfg.rid = FZ_RID;
	cfg.mem_limit = 1; /* two chunk slots: the third chunk spills and reloads */
	cfg.seed = 1 + (data[0] >> 2);
	cfg.io = (struct mc_recv_io){&o, io_write, io_read};
	if (cur == &sessions[1] && (data[0] & 4))
		cfg.chunk = io_chunk;
	if (cur == &sessions[0] && (data[0] & 4))
		cfg.trust = &fz_trust;
	fz_trusting = cfg.trust && (mode == 0 || mode == 2);
	if (data[0] & 0x80) {
		/* --package and --expect (a prefix of 8 to 32 hex digits of the real id): mutated names and ids are refused. */
		strcpy(cfg.package, cur->m.name);
		memcpy(cfg.expect, cur->m.id, MC_ID_LEN);
		cfg.expect_nhex = 8 + (data[0] >> 4 & 3) * 8;
	}
	memset(o.buf, 0, sizeof o.buf);
	o.writes = o.reads = 0;
	if ((o.r = mc_recv_new(&cfg)) == NULL)
		return 0;
	if (mode == 1 || mode == 3) {
		uint8_t have[1] = {size > 4 ? (uint8_t)(data[4] & 31) : 0};
		/* What a resumed PKG.part holds: the chunks marked verified. */
		for (uint32_t c = 0; c < cur->m.nchunks; c++)
			if (mode == 3 && (have[0] >> c & 1))
				memcpy(o.buf + mc_manifest_chunk_off(&cur->m, c), cur->payload + mc_manifest_chunk_off(&cur->m, c),
				       mc_manifest_chunk_len(&cur->m, c));
		assert(mc_recv_preload(o.r, &cur->m, mode == 3 ? have : NULL, NULL, 0) == 0);
	}
	drain(&u, 1);
	if (mode < 2)
		raw_records(&u, data + 1, size - 1);
	else
		mutated_session(&u, data + 1, size - 1);
	/* Let every timer run out. */
	for (int i = 0; i < 50; i++) {
		u.now += 250;
		drain(&u, 1);
	}
	/* Refused by --trust: not one byte written nor read. */
	assert(!fz_trusting || (o.writes == 0 && o.reads == 0 && !u.complete));
	mc_recv_free(o.r);
	o.r = NULL;
	return 0;
}
