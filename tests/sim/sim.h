/*
 * In-process session simulator: mcast-send's own send loop (lib/txloop.c,
 * through its I/O table) and the real receiver assembly from lib/, N
 * virtual receivers with their own loss and join time, over a virtual
 * clock. Used by tests/unit/test_session.c and test_sim.c (small, in make
 * check) and bench/sim (up to 10,000 receivers).
 */
#ifndef MC_SIM_H
#define MC_SIM_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fec.h"
#include "pkg.h"
#include "rand.h"
#include "receiver.h"
#include "sender.h"
#include "txloop.h"
#include "wire.h"

struct sim_rx_cfg {
	double loss;           /* Bernoulli loss, or the loss in the bad state with burst */
	int burst;             /* Gilbert-Elliott: 1 */
	double p_gb, p_bg;     /* good->bad, bad->good per packet */
	uint64_t join_us;      /* when it starts listening */
	double dup, reorder;   /* probability of duplicating / swapping a packet */
	double corrupt;        /* probability of a DATA packet arriving with its last byte flipped */
	int keep;              /* keep the bytes and compare at the end */
};

struct sim_cfg {
	uint64_t payload;
	uint32_t chunk;
	uint16_t sym, kmax;
	unsigned fec;
	uint64_t rate_bps;
	unsigned nrx;
	struct sim_rx_cfg *rx;
	uint64_t fb_delay_us;
	uint64_t limit_us;
	unsigned max_passes;
	size_t mem;
	uint64_t seed;
	/*
	 * An image package (format 2) of payload bytes of image in spans of
	 * chunk: span c is a hole when c % 4 == 1, stores 1 byte when c % 4 ==
	 * 2, is raw (its whole span) when c % 4 == 3, and stores a third of its
	 * span otherwise. The stored bytes are random: no receiver decodes.
	 */
	int image;
	int chunk_cb;          /* receivers take verified chunks through mc_recv_cfg.chunk */
};

struct sim_rx {
	struct mc_receiver *r;
	struct sim_rx_cfg c;
	uint8_t *out;
	int bad_state, joined, finished, result; /* result: MC_REV_COMPLETE, _END, _LEAVE */
	uint64_t next_us, done_us;
	uint8_t held[1600];
	size_t held_len;
	uint64_t rng;
	unsigned chunks, holes, bad_cb; /* through the chunk callback: chunks, holes, calls out of order or with wrong bytes */
};

struct sim_res {
	uint64_t data_pkts, ctrl_pkts, feedback_pkts, wire_bytes, payload_bytes;
	unsigned cb_chunks, cb_holes, cb_bad; /* chunk callbacks (of kept receivers): all, holes, wrong */
	uint64_t bad_chunks;    /* chunks that failed their digest, all receivers */
	uint64_t passes;
	uint64_t last_done_us, end_us;
	unsigned complete, ended, left, identical;
	unsigned nack_loss_max; /* the largest loss, in 256ths, any NACK told */
};

struct sim_fb {
	uint64_t at;
	unsigned from;
	size_t len;
	uint8_t buf[MC_WIRE_FEEDBACK_MAX];
};

static struct sim_ctx {
	const struct sim_cfg *cfg;
	const struct mc_manifest *m;
	uint8_t *payload;
	uint64_t payload_size;  /* stored bytes: cfg->payload, less for an image */
	struct sim_rx *rx;
	struct sim_fb *fb;
	size_t nfb, capfb;
	struct sim_res res;
	uint64_t now;           /* us */
	uint64_t now_ns;        /* the sender's clock: now in ns */
	size_t fbh;             /* sim.fb[fbh..nfb) not yet read by the sender, */
	size_t fbx;             /* sim.fb[fbx..nfb) not yet heard by the other receivers */
	volatile sig_atomic_t stop; /* the time limit: the send loop ends */
} sim;

static double sim_u(uint64_t *s) { return (double)(mc_xorshift(s) >> 11) / 9007199254740992.0; }

static int sim_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct sim_rx *x = ctx;
	if (x->out)
		memcpy(x->out + off, buf, len);
	return 0;
}

static int sim_read(void *ctx, uint64_t off, void *buf, size_t len)
{
	struct sim_rx *x = ctx;
	/* Without a kept copy, what was written is the true payload (it is verified again anyway). */
	memcpy(buf, x->out ? x->out + off : sim.payload + off, len);
	return 0;
}

/* mc_recv_cfg.chunk: a verified chunk's stored bytes whole, a hole with none. */
static int sim_chunk(void *ctx, uint32_t c, const void *buf, size_t len)
{
	struct sim_rx *x = ctx;

	if (c >= sim.m->nchunks || len != mc_manifest_chunk_len(sim.m, c) || (len == 0) != (buf == NULL)) {
		x->bad_cb++;
		return -1;
	}
	/* Only verified bytes may come here: a sink trusts them (lib/sink_target.c writes them without a second digest). */
	if (len && memcmp(buf, sim.payload + mc_manifest_chunk_off(sim.m, c), len) != 0) {
		x->bad_cb++;
		return -1;
	}
	if (len == 0)
		x->holes++;
	x->chunks++;
	if (x->out && len)
		memcpy(x->out + mc_manifest_chunk_off(sim.m, c), buf, len);
	return 0;
}

static void sim_events(struct sim_rx *x)
{
	struct mc_recv_event ev;
	while (mc_recv_event(x->r, &ev)) {
		if (ev.kind == MC_REV_COMPLETE) {
			x->result = MC_REV_COMPLETE;
			x->done_us = sim.now;
		} else if (ev.kind == MC_REV_END || ev.kind == MC_REV_LEAVE) {
			x->result = ev.kind;
		}
	}
}

static void sim_collect_fb(unsigned i)
{
	struct sim_rx *x = &sim.rx[i];
	uint8_t buf[MC_WIRE_FEEDBACK_MAX];
	size_t n;

	while ((n = mc_recv_feedback(x->r, buf, sizeof buf)) > 0) {
		if (sim.nfb == sim.capfb) {
			sim.capfb = sim.capfb ? sim.capfb * 2 : 256;
			sim.fb = realloc(sim.fb, sim.capfb * sizeof *sim.fb);
		}
		struct sim_fb *f = &sim.fb[sim.nfb++];
		f->at = sim.now + sim.cfg->fb_delay_us;
		f->from = i;
		f->len = n;
		memcpy(f->buf, buf, n);
		sim.res.feedback_pkts++;
	}
}

static int sim_lost(struct sim_rx *x)
{
	if (x->c.burst) {
		if (x->bad_state) {
			if (sim_u(&x->rng) < x->c.p_bg)
				x->bad_state = 0;
		} else if (sim_u(&x->rng) < x->c.p_gb) {
			x->bad_state = 1;
		}
		return x->bad_state && sim_u(&x->rng) < x->c.loss;
	}
	return sim_u(&x->rng) < x->c.loss;
}

/* What a datagram costs on an Ethernet wire beyond its UDP payload: Ethernet 14, then IPv4 and UDP. */
#define SIM_FRAME_OVERHEAD (14 + MC_WIRE_IP4_UDP)

/*
 * The least any code that works block by block can put on the wire: each of
 * the n receivers must hold k symbols of every block, so a block costs the
 * most transmissions any receiver needs. With independent loss p a receiver
 * needs T = k + (failures before its k-th success); E[max of n draws of T] =
 * k + sum over t >= k of P(max > t), P(max > t) = 1 - (1 - P(T > t))^n, and
 * P(T > t) = P(Binomial(t, 1 - p) < k). Returned per source symbol, times
 * what each symbol costs in a frame (DATA, UDP, IPv4 and Ethernet headers).
 */
static inline double sim_block_floor(unsigned n, double p, unsigned k, unsigned sym)
{
	double e = k, frame = (double)(sym + MC_WIRE_DATA_HDR + SIM_FRAME_OVERHEAD) / sym;

	if (p <= 0)
		return frame;
	for (unsigned t = k; t < k + 4000; t++) {
		double u = 0; /* P(T > t) = P(fewer than k of t arrive) */
		for (unsigned j = 0; j < k; j++)
			u += exp(lgamma(t + 1.0) - lgamma(j + 1.0) - lgamma(t - j + 1.0) + j * log1p(-p) + (t - j) * log(p));
		double more = -expm1(n * log1p(-(u < 1 ? u : 1 - 1e-16)));
		e += more;
		if (more < 1e-9)
			break;
	}
	return e / k * frame;
}

/* One sender datagram to every listening receiver, each with its own fate. */
static void sim_deliver(const uint8_t *buf, size_t len)
{
	uint64_t ms = sim.now / 1000;

	sim.res.wire_bytes += len + SIM_FRAME_OVERHEAD;
	for (unsigned i = 0; i < sim.cfg->nrx; i++) {
		struct sim_rx *x = &sim.rx[i];
		if (!x->joined || x->finished || sim_lost(x))
			continue;
		if (x->c.reorder > 0 && x->held_len == 0 && len <= sizeof x->held && sim_u(&x->rng) < x->c.reorder) {
			memcpy(x->held, buf, len);
			x->held_len = len;
			continue;
		}
		struct mc_pkt pk;
		if (x->c.corrupt > 0 && len <= sizeof x->held && sim_u(&x->rng) < x->c.corrupt &&
		    mc_wire_decode(buf, len, &pk) == 0 && pk.type == MC_PKT_DATA) {
			/* A symbol damaged on the way (no checksum on the wire): its chunk must fail its digest. */
			uint8_t bad[sizeof x->held];
			memcpy(bad, buf, len);
			bad[len - 1] ^= 0x5a;
			mc_recv_packet(x->r, ms, bad, len);
		} else {
			mc_recv_packet(x->r, ms, buf, len);
		}
		if (x->held_len) {
			mc_recv_packet(x->r, ms, x->held, x->held_len);
			x->held_len = 0;
		}
		if (x->c.dup > 0 && sim_u(&x->rng) < x->c.dup)
			mc_recv_packet(x->r, ms, buf, len);
		sim_events(x);
		sim_collect_fb(i);
		uint64_t nx = mc_recv_next(x->r);
		if (nx < UINT64_MAX / 1000 && nx * 1000 < x->next_us)
			x->next_us = nx * 1000;
	}
}

static void sim_tick_rx(void)
{
	uint64_t ms = sim.now / 1000;

	for (unsigned i = 0; i < sim.cfg->nrx; i++) {
		struct sim_rx *x = &sim.rx[i];
		if (x->finished)
			continue;
		if (!x->joined) {
			if (sim.now < x->c.join_us)
				continue;
			x->joined = 1;
			x->next_us = 0;
		}
		if (sim.now >= x->next_us) {
			x->next_us = mc_recv_tick(x->r, ms) * 1000;
			sim_events(x);
			sim_collect_fb(i);
		}
		if (mc_recv_phase(x->r) == MC_RPH_FINISHED)
			x->finished = 1;
	}
}

/*
 * The I/O table through which the simulator runs mcast-send's own loop
 * (lib/txloop.c): a clock that moves only when the sender waits, datagrams
 * delivered to every receiver at once, feedback back after fb_delay_us.
 */
static uint64_t sim_io_now(void *ctx) { return sim.now_ns; }

/* Feedback is multicast: when a NACK arrives, the other receivers hear it too (suppression). */
static void sim_overhear(void)
{
	struct mc_pkt p;

	for (; sim.fbx < sim.nfb && sim.fb[sim.fbx].at <= sim.now; sim.fbx++) {
		struct sim_fb *f = &sim.fb[sim.fbx];
		if (mc_wire_decode(f->buf, f->len, &p) < 0 || p.type != MC_PKT_NACK)
			continue;
		if (p.flags > sim.res.nack_loss_max)
			sim.res.nack_loss_max = p.flags;
		for (unsigned i = 0; i < sim.cfg->nrx; i++)
			if (i != f->from && sim.rx[i].joined && !sim.rx[i].finished)
				mc_recv_packet(sim.rx[i].r, sim.now / 1000, f->buf, f->len);
	}
}

/* The time passes in steps of at most a millisecond, receivers ticking and hearing each other's NACKs at each. */
static void sim_io_wait(void *ctx, uint64_t ns)
{
	uint64_t end = sim.now_ns + ns;

	while (sim.now_ns < end) {
		sim.now_ns = end - sim.now_ns > 1000000 ? sim.now_ns + 1000000 : end;
		sim.now = sim.now_ns / 1000;
		sim_overhear();
		sim_tick_rx();
	}
	if (sim.now >= sim.cfg->limit_us)
		sim.stop = 1;
}

static int sim_io_send(void *ctx, const void *buf, size_t len)
{
	if (len > 4 && ((const uint8_t *)buf)[4] == MC_PKT_CTRL)
		sim.res.ctrl_pkts++;
	sim_deliver(buf, len);
	return 0;
}

/*
 * DATA leaves one datagram after another at the rate (a batch is not one
 * instant): receivers tick and hear NACKs every 64, as the time passes.
 */
static int sim_io_send_batch(void *ctx, struct iovec *iov, unsigned nseg, uint16_t seg, int gso)
{
	uint8_t pkt[70000];

	for (unsigned k = 0; k < nseg; k++) {
		size_t len = iov[2 * k].iov_len + iov[2 * k + 1].iov_len;
		memcpy(pkt, iov[2 * k].iov_base, iov[2 * k].iov_len);
		memcpy(pkt + iov[2 * k].iov_len, iov[2 * k + 1].iov_base, iov[2 * k + 1].iov_len);
		sim_deliver(pkt, len);
		sim.now_ns += (uint64_t)((double)(len + MC_WIRE_IP4_UDP) * 8e9 / (double)sim.cfg->rate_bps);
		sim.now = sim.now_ns / 1000;
		if (++sim.res.data_pkts % 64 == 0) {
			sim_overhear();
			sim_tick_rx();
		}
	}
	return 0;
}

/* The feedback due by now, one datagram at a time. */
static size_t sim_io_recv(void *ctx, uint8_t *buf, size_t cap, struct sockaddr_storage *from)
{
	sim_overhear();
	if (sim.fbh == sim.nfb || sim.fb[sim.fbh].at > sim.now) {
		if (sim.fbh == sim.nfb && sim.fbx == sim.nfb)
			sim.fbh = sim.fbx = sim.nfb = 0;
		return 0;
	}
	struct sim_fb *f = &sim.fb[sim.fbh++];
	size_t n = f->len < cap ? f->len : cap;
	memcpy(buf, f->buf, n);
	memset(from, 0, sizeof *from);
	from->ss_family = AF_INET;
	return n;
}

static int sim_io_read(void *ctx, uint64_t off, void *buf, size_t len)
{
	memcpy(buf, sim.payload + off, len);
	return 0;
}

/* Runs one session; returns 0, or -1 on setup failure. */
static int sim_run(const struct sim_cfg *cfg, struct sim_res *out)
{
	struct mc_manifest m;
	struct mc_geom g;
	struct mc_sender_cfg sc;
	uint64_t rng = cfg->seed ? cfg->seed : 1;
	char err[256];
	int rc = -1;

	memset(&sim, 0, sizeof sim);
	sim.cfg = cfg;
	sim.m = &m;
	memset(&m, 0, sizeof m);
	strcpy(m.name, "sim");
	m.chunk_size = cfg->chunk;
	uint32_t nch = (uint32_t)mc_chunk_count(cfg->payload, cfg->chunk);
	uint32_t *slen = calloc(nch ? nch : 1, sizeof *slen);
	uint8_t *flags = calloc(nch ? nch : 1, 1);
	uint8_t *digests = malloc(((size_t)nch ? nch : 1) * MC_DIGEST_LEN);
	uint8_t *sdig = malloc(((size_t)nch ? nch : 1) * MC_DIGEST_LEN);
	uint64_t stored = 0;
	for (uint32_t c = 0; c < nch; c++) {
		uint64_t off = (uint64_t)c * cfg->chunk;
		uint32_t span = (uint32_t)(cfg->payload - off < cfg->chunk ? cfg->payload - off : cfg->chunk);
		slen[c] = !cfg->image ? span : c % 4 == 1 ? 0 : c % 4 == 2 ? 1 : c % 4 == 3 ? span : span / 3 + 1;
		flags[c] = !cfg->image ? 0 : c % 4 == 1 ? MC_CHUNK_HOLE : c % 4 == 3 ? MC_CHUNK_RAW : 0;
		stored += slen[c];
	}
	sim.payload_size = stored;
	sim.payload = malloc(stored ? stored : 1);
	for (uint64_t i = 0; i < stored; i += 8) {
		uint64_t v = mc_xorshift(&rng);
		memcpy(sim.payload + i, &v, stored - i < 8 ? stored - i : 8);
	}
	stored = 0;
	for (uint32_t c = 0; c < nch; c++) {
		mc_digest(sim.payload + stored, slen[c], digests + (size_t)c * MC_DIGEST_LEN);
		if (flags[c] & MC_CHUNK_HOLE) {
			uint64_t off = (uint64_t)c * cfg->chunk;
			size_t span = (size_t)(cfg->payload - off < cfg->chunk ? cfg->payload - off : cfg->chunk);
			uint8_t *z = calloc(1, span);
			mc_digest(z, span, sdig + (size_t)c * MC_DIGEST_LEN);
			free(z);
		} else {
			memcpy(sdig + (size_t)c * MC_DIGEST_LEN, digests + (size_t)c * MC_DIGEST_LEN, MC_DIGEST_LEN);
		}
		stored += slen[c];
	}
	mc_digest(sim.payload, sim.payload_size, m.payload_digest);
	if (cfg->image) {
		m.compression = MC_COMP_ZSTD;
		m.image_size = cfg->payload;
	} else {
		m.payload_size = cfg->payload;
		m.nchunks = nch;
	}
	if ((cfg->image ? mc_manifest_encode_image(&m, slen, flags, digests, sdig, err, sizeof err)
			: mc_manifest_encode(&m, digests, err, sizeof err)) < 0 ||
	    mc_geom_init_manifest(&g, &m, cfg->sym, cfg->kmax) < 0) {
		fprintf(stderr, "sim: %s\n", err);
		free(slen);
		free(flags);
		free(sdig);
		goto out;
	}
	free(slen);
	free(flags);
	free(sdig);
	memset(&sc, 0, sizeof sc);
	sc.geom = g;
	sc.fec_pct = cfg->fec;
	sc.linger_ms = 500;
	sc.peer_timeout_ms = 5000;
	sc.max_passes = cfg->max_passes;
	memcpy(sc.id, m.id, MC_ID_LEN);
	strcpy(sc.name, m.name);
	static const struct mc_txloop_io io = {NULL, sim_io_now, sim_io_wait, sim_io_send, sim_io_send_batch, sim_io_recv, sim_io_read};
	struct mc_txloop_cfg tc;
	struct mc_pkg pkg;
	struct mc_txloop *l = NULL;
	sim.rx = calloc(cfg->nrx, sizeof *sim.rx);
	for (unsigned i = 0; i < cfg->nrx; i++) {
		struct sim_rx *x = &sim.rx[i];
		struct mc_recv_cfg rc2;
		memset(&rc2, 0, sizeof rc2);
		x->c = cfg->rx[i];
		x->rng = (cfg->seed + 1) * 7919 + i * 104729 + 1;
		if (x->c.keep)
			x->out = calloc(1, sim.payload_size ? sim.payload_size : 1);
		rc2.rid = 1000 + i;
		rc2.mem_limit = cfg->mem;
		rc2.mem_hard = 1; /* thousands of receivers in one process: their I/O is memory, a park costs little */
		rc2.seed = x->rng ^ 0xabcdef;
		rc2.io = (struct mc_recv_io){x, sim_write, sim_read};
		if (cfg->chunk_cb)
			rc2.chunk = sim_chunk;
		x->r = mc_recv_new(&rc2);
	}
	memset(&pkg, 0, sizeof pkg);
	pkg.fd = -1;
	pkg.path = (char *)"sim";
	pkg.m = m;
	memset(&tc, 0, sizeof tc);
	mc_net_group("239.1.1.1", 7000, NULL, &tc.g, err, sizeof err);
	mc_net_group_port(&tc.g, 7001, &tc.gfb);
	tc.pkg = &pkg;
	tc.rate = cfg->rate_bps;
	tc.mtu = 1500;
	tc.sym = cfg->sym;
	tc.kmax = cfg->kmax;
	tc.core = sc;
	tc.stop = &sim.stop;
	tc.io = &io;
	tc.gso = 1;
	tc.session = 0x5151;
	sim_tick_rx(); /* receivers there from the start hear the first datagram */
	if ((l = mc_txloop_new(&tc, err, sizeof err)) == NULL || mc_txloop_open(l, err, sizeof err) < 0 ||
	    mc_txloop_run(l, err, sizeof err) < 0) {
		fprintf(stderr, "sim: %s\n", err);
		mc_txloop_free(l);
		goto out;
	}
	sim.res.end_us = sim.now;
	mc_txloop_end(l, MC_END_COMPLETE);
	sim.res.passes = mc_sender_stats(mc_txloop_sender(l))->passes;
	sim.res.payload_bytes = sim.payload_size;
	for (unsigned i = 0; i < cfg->nrx; i++) {
		struct sim_rx *x = &sim.rx[i];
		sim_events(x);
		if (x->result == MC_REV_COMPLETE) {
			sim.res.complete++;
			if (x->done_us > sim.res.last_done_us)
				sim.res.last_done_us = x->done_us;
			if (x->out && memcmp(x->out, sim.payload, sim.payload_size) == 0)
				sim.res.identical++;
		} else if (x->result == MC_REV_LEAVE) {
			sim.res.left++;
		} else {
			sim.res.ended++;
		}
		sim.res.bad_chunks += mc_recv_stats(x->r)->bad_chunks;
		if (x->out) {
			sim.res.cb_chunks += x->chunks;
			sim.res.cb_holes += x->holes;
			sim.res.cb_bad += x->bad_cb;
		}
		mc_recv_free(x->r);
		free(x->out);
	}
	mc_txloop_free(l);
	*out = sim.res;
	rc = 0;
out:
	free(digests);
	free(sim.rx);
	free(sim.fb);
	free(sim.payload);
	mc_manifest_free(&m);
	return rc;
}

#endif
