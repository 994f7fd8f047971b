/*
 * libFuzzer target: the sender schedule (lib/sender.h) under hostile
 * feedback. The input picks a geometry, then a script of operations:
 * HELLO/NACK/DONE/BYE with arbitrary numbers, mc_sender_next, time steps,
 * ticks, verdict and event draining. Every job must stay inside the
 * geometry, and the datagrams it makes must decode back to that block.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fec.h"
#include "sender.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct in {
	const uint8_t *p;
	size_t n;
};

static uint64_t take(struct in *in, unsigned bytes)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < bytes; i++) {
		v <<= 8;
		if (in->n) {
			v |= *in->p++;
			in->n--;
		}
	}
	return v;
}

static struct mc_fec *fec;

/* Builds the DATA datagrams of a job (small geometries only) and checks they decode as that block. */
static void datagrams(const struct mc_geom *g, uint32_t session, const struct mc_sender_job *job)
{
	static uint8_t block[254 * 512], repair[255 * 512], pkt[MC_WIRE_DATA_HDR + 512];
	static uint8_t hdr[MC_RS_MAX][MC_WIRE_DATA_HDR];
	const uint8_t *sym[MC_RS_MAX];
	struct mc_pkt p;

	if (g->sym > 512)
		return;
	memset(block, (int)job->block, (size_t)job->b.k * g->sym);
	assert(mc_sender_datagrams(fec, session, g->sym, job, block, repair, hdr, sym) == 0);
	for (unsigned i = 0; i < job->n; i++) {
		memcpy(pkt, hdr[i], MC_WIRE_DATA_HDR);
		memcpy(pkt + MC_WIRE_DATA_HDR, sym[i], g->sym);
		assert(mc_wire_decode(pkt, MC_WIRE_DATA_HDR + g->sym, &p) == 0);
		assert(p.type == MC_PKT_DATA && p.session == session);
		assert(p.u.data.block == job->block && p.u.data.esi == job->esi[i]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = {data, size};
	struct mc_sender_cfg cfg;
	struct mc_sender *s;
	struct mc_sender_job job;
	struct mc_pkt p;
	struct mc_announce a;
	uint64_t now = 1000;
	uint32_t session = 0x5e55;
	static const uint64_t rids[4] = {1, 2, 0xffffffffffffffffULL, 0};
	unsigned runs = 0, peer, kind;

	if (fec == NULL && (fec = mc_fec_new()) == NULL)
		abort();
	memset(&cfg, 0, sizeof cfg);
	/* Geometry: small payloads (a few chunks), any symbol size and kmax. */
	uint64_t payload = 1 + take(&in, 3) * 64;          /* up to 1 GB */
	uint32_t chunk = MC_CHUNK_MIN << (take(&in, 1) % 5); /* 64K..1M */
	uint16_t sym = (uint16_t)(64 * (1 + take(&in, 1) % 64)); /* 64..4096 */
	uint16_t kmax = (uint16_t)(1 + take(&in, 1) % 254);
	if (payload / chunk > 64)
		payload = 1 + payload % (64ULL * chunk);
	if (mc_geom_init(&cfg.geom, payload, chunk, sym, kmax) < 0)
		return 0;
	unsigned flags = (unsigned)take(&in, 1);
	cfg.fec_pct = (unsigned)take(&in, 1) % 201;
	cfg.linger_ms = take(&in, 1) * 10;
	cfg.max_time_ms = (flags & 1) ? take(&in, 2) * 10 : 0;
	cfg.peer_timeout_ms = take(&in, 1) * 20;
	cfg.max_passes = (unsigned)take(&in, 1) % 8;
	memset(cfg.id, 0x11, MC_ID_LEN);
	strcpy(cfg.name, "pkg");
	if ((s = mc_sender_new(&cfg, session, now)) == NULL)
		return 0;

	while (in.n && runs < 4096) {
		unsigned op = (unsigned)take(&in, 1);
		memset(&p, 0, sizeof p);
		p.session = (op & 0x80) ? (uint32_t)take(&in, 4) : session;
		uint64_t rid = (op & 0x40) ? take(&in, 8) : rids[take(&in, 1) & 3];
		switch (op & 0x0f) {
		case 0: case 1: case 2: { /* next */
			int st = mc_sender_next(s, now, &job);
			assert(st == MC_SENDER_RUN || st == MC_SENDER_IDLE || st == MC_SENDER_OVER);
			if (st == MC_SENDER_RUN) {
				struct mc_block b;
				runs++;
				assert(job.block < cfg.geom.nblocks);
				assert(mc_geom_block(&cfg.geom, job.block, &b) == 0);
				assert(b.chunk == job.b.chunk && b.index == job.b.index && b.off == job.b.off);
				assert(b.len == job.b.len && b.k == job.b.k);
				assert(job.n >= 1 && job.n <= MC_RS_MAX);
				for (unsigned i = 0; i < job.n; i++)
					assert(job.esi[i] < MC_RS_MAX);
				if (op & 0x20)
					datagrams(&cfg.geom, session, &job);
			}
			break;
		}
		case 3: /* time passes */
			now += take(&in, 2);
			break;
		case 4:
			(void)mc_sender_tick(s, now);
			break;
		case 5: case 6: { /* NACK with arbitrary entries */
			p.type = MC_PKT_NACK;
			p.u.nack.rid = rid;
			if (op & 0x20) {
				/* The receiver's loss estimate (flags) and its socket overruns. */
				p.flags = (uint8_t)take(&in, 1);
				p.u.nack.overruns = (uint16_t)take(&in, 2);
			}
			p.u.nack.pass = (uint32_t)take(&in, 2);
			p.u.nack.n = (uint16_t)(take(&in, 1) % (MC_WIRE_NACK_MAX + 1));
			for (unsigned i = 0; i < p.u.nack.n && in.n; i++) {
				unsigned how = (unsigned)take(&in, 1);
				struct mc_nack_entry *e = &p.u.nack.e[i];
				/* Mostly plausible blocks, sometimes anything. */
				e->block = (how & 1) ? (uint32_t)take(&in, 4) : (uint32_t)(take(&in, 2) % (cfg.geom.nblocks + 2));
				e->run = (how & 2) ? (uint16_t)take(&in, 2) : (uint16_t)(take(&in, 1) % 4);
				e->need = (how & 4) ? (uint16_t)take(&in, 2) : (how & 8) ? MC_NEED_ALL : (uint16_t)take(&in, 1);
			}
			mc_sender_feedback(s, now, &p, NULL);
			break;
		}
		case 7: case 8: { /* HELLO */
			static const uint8_t zero[MC_ID_LEN];
			p.type = MC_PKT_HELLO;
			p.flags = (uint8_t)take(&in, 1);
			p.u.hello.rid = rid;
			memcpy(p.u.hello.want_id, (op & 0x20) ? zero : cfg.id, MC_ID_LEN);
			p.u.hello.want_nhex = (op & 0x20) ? 0 : 2 * MC_ID_LEN;
			p.u.hello.have = (uint32_t)take(&in, 4);
			p.u.hello.total = (uint32_t)take(&in, 4);
			if (op & 0x10)
				strcpy(p.u.hello.name, "other");
			mc_sender_feedback(s, now, &p, NULL);
			break;
		}
		case 9: case 10: /* DONE, BYE */
			p.type = (op & 0x0f) == 9 ? MC_PKT_DONE : MC_PKT_BYE;
			p.u.done.rid = rid;
			memcpy(p.u.done.id, cfg.id, MC_ID_LEN);
			if (op & 0x20)
				p.u.done.id[0] ^= 1;
			mc_sender_feedback(s, now, &p, NULL);
			break;
		case 11: { /* anything else the socket might deliver */
			p.type = (uint8_t)take(&in, 1);
			mc_sender_feedback(s, now, &p, NULL);
			break;
		}
		case 12: { /* many distinct receivers: with 0x20, up to past the sender's bound on them */
			static const struct sockaddr_storage addr;
			unsigned n = (unsigned)take(&in, 1);
			if (op & 0x20)
				n *= 300;
			for (unsigned i = 0; i < n; i++) {
				p.type = MC_PKT_HELLO;
				p.u.hello.rid = rid + i;
				mc_sender_feedback(s, now, &p, (i & 1) ? &addr : NULL);
			}
			break;
		}
		default: /* verdicts, events, announcement */
			while (mc_sender_ctrl(s, &p)) {
				uint8_t out[MC_WIRE_HDR + 2 + 12 * MC_WIRE_CTRL_MAX];
				assert(p.type == MC_PKT_CTRL && p.u.ctrl.n >= 1 && p.u.ctrl.n <= MC_WIRE_CTRL_MAX);
				assert(mc_wire_encode(&p, out, sizeof out) > 0);
			}
			while (mc_sender_event(s, &peer, &kind)) {
				assert(peer < mc_sender_npeers(s));
				assert(kind >= MC_SEV_JOIN && kind <= MC_SEV_GONE);
				(void)mc_sender_peer(s, peer);
			}
			memset(&a, 0, sizeof a);
			(void)mc_sender_announce(s, &a);
			assert(a.cursor <= cfg.geom.nblocks);
			if (op & 0x20) {
				/* The announcement as a datagram: it must decode to what the sender says. */
				static struct mc_manifest m;
				uint8_t buf[1024];
				struct mc_pkt q;
				if (m.raw == NULL) {
					uint8_t d[MC_DIGEST_LEN] = {0};
					strcpy(m.name, "pkg");
					m.chunk_size = MC_CHUNK_MIN;
					m.payload_size = 1;
					m.nchunks = 1;
					assert(mc_manifest_encode(&m, d, (char[64]){0}, 64) == 0);
				}
				size_t n = mc_sender_announce_pkt(s, &m, 1000000, buf, sizeof buf);
				assert(n > 0 && mc_wire_decode(buf, n, &q) == 0 && q.type == MC_PKT_ANNOUNCE && q.session == session);
			}
			break;
		}
		const struct mc_sender_stats *st = mc_sender_stats(s);
		assert(st->complete <= st->joined && st->active <= mc_sender_npeers(s));
		assert(mc_sender_npeers(s) <= 65535);
	}
	mc_sender_free(s);
	return 0;
}
