/*
 * A real, small session for the fuzzers: payload, manifest, and the exact
 * datagrams the lib's own sender emits (announcements, manifest fragments,
 * DATA of two passes, a CTRL welcome, another receiver's NACK, END), so
 * fuzz_receiver and mkcorpus start from deep states. Deterministic.
 */
#ifndef FZ_SESSION_H
#define FZ_SESSION_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fec.h"
#include "pkg.h"
#include "rand.h"
#include "sender.h"
#include "wire.h"

/* Three chunks (two full, one short) so two memory slots must spill. */
#define FZ_CHUNK MC_CHUNK_MIN
#define FZ_PAYLOAD (2u * FZ_CHUNK + 1500u)
#define FZ_SYM 1024
#define FZ_KMAX 16
#define FZ_FEC 25
#define FZ_SESSION 0x5eed0001u
#define FZ_RID 7          /* the fuzzed receiver */
#define FZ_OTHER_RID 99   /* another receiver whose NACK it hears */
#define FZ_PKT_MAX 2048

/*
 * The image session (fz_session_make(s, 1)): 5 spans of FZ_CHUNK, the last
 * of 100 bytes; chunk 0 stores 1500 bytes, 1 is a hole, 2 is raw, 3 stores
 * one byte, 4 is raw.
 */
#define FZ_IMAGE (4u * FZ_CHUNK + 100u)
#define FZ_IMAGE_CHUNKS 5

struct fz_session {
	uint8_t *payload;
	uint64_t payload_size;
	struct mc_manifest m;
	uint8_t **pkt;
	uint16_t *len;
	unsigned n, cap;
};

static int fz_add(struct fz_session *s, const uint8_t *buf, size_t len)
{
	if (len == 0 || len > 65535)
		return -1;
	if (s->n == s->cap) {
		unsigned ncap = s->cap ? 2 * s->cap : 256;
		uint8_t **np = realloc(s->pkt, ncap * sizeof *np);
		uint16_t *nl = realloc(s->len, ncap * sizeof *nl);
		if (np)
			s->pkt = np;
		if (nl)
			s->len = nl;
		if (!np || !nl)
			return -1;
		s->cap = ncap;
	}
	if ((s->pkt[s->n] = malloc(len)) == NULL)
		return -1;
	memcpy(s->pkt[s->n], buf, len);
	s->len[s->n++] = (uint16_t)len;
	return 0;
}

static void fz_session_free(struct fz_session *s)
{
	for (unsigned i = 0; i < s->n; i++)
		free(s->pkt[i]);
	free(s->pkt);
	free(s->len);
	free(s->payload);
	mc_manifest_free(&s->m);
	memset(s, 0, sizeof *s);
}

/* Emits the announcement and manifest fragment frag (all fragments when frag < 0). */
static int fz_announce(struct fz_session *s, struct mc_sender *snd, int frag, uint8_t *pkt, size_t cap)
{
	size_t n = mc_sender_announce_pkt(snd, &s->m, 100000000, pkt, cap);
	uint32_t nfrag = (s->m.raw_len + MC_MANIFEST_FRAG - 1) / MC_MANIFEST_FRAG;

	if (fz_add(s, pkt, n) < 0)
		return -1;
	for (uint32_t i = 0; i < nfrag; i++) {
		if (frag >= 0 && i != (uint32_t)frag % nfrag)
			continue;
		if (fz_add(s, pkt, mc_sender_manifest_pkt(FZ_SESSION, &s->m, i, pkt, cap)) < 0)
			return -1;
	}
	return 0;
}

/* The chunk tables of the image session into m (payload of the stored bytes at p). Returns 0 or -1. */
static int fz_image_manifest(struct mc_manifest *m, const uint8_t *p, char *err, size_t errlen)
{
	static const uint32_t slen[FZ_IMAGE_CHUNKS] = {1500, 0, FZ_CHUNK, 1, 100};
	static const uint8_t flags[FZ_IMAGE_CHUNKS] = {0, MC_CHUNK_HOLE, MC_CHUNK_RAW, 0, MC_CHUNK_RAW};
	uint8_t dig[FZ_IMAGE_CHUNKS * MC_DIGEST_LEN], sdig[FZ_IMAGE_CHUNKS * MC_DIGEST_LEN];
	uint8_t *zero = calloc(1, FZ_CHUNK);
	uint64_t off = 0;

	if (zero == NULL)
		return -1;
	for (unsigned c = 0; c < FZ_IMAGE_CHUNKS; c++) {
		mc_digest(p + off, slen[c], dig + c * MC_DIGEST_LEN);
		/* No receiver decodes: a span digest of the stored bytes will do, but a hole's must be of zeros. */
		if (flags[c] & MC_CHUNK_HOLE)
			mc_digest(zero, FZ_CHUNK, sdig + c * MC_DIGEST_LEN);
		else
			memcpy(sdig + c * MC_DIGEST_LEN, dig + c * MC_DIGEST_LEN, MC_DIGEST_LEN);
		off += slen[c];
	}
	free(zero);
	m->compression = MC_COMP_ZSTD;
	m->image_size = FZ_IMAGE;
	mc_digest(p, off, m->payload_digest);
	return mc_manifest_encode_image(m, slen, flags, dig, sdig, err, errlen);
}

/* Builds the session (of an image package when image); returns 0 or -1 with a message on stderr. */
static int fz_session_make(struct fz_session *s, int image)
{
	struct mc_sender_cfg sc;
	struct mc_sender *snd = NULL;
	struct mc_fec *fec = mc_fec_new();
	struct mc_sender_job job;
	uint8_t *digests = NULL, *block = NULL, *repair = NULL, pkt[FZ_SYM + MC_WIRE_DATA_HDR + 1024];
	uint8_t (*hdr)[MC_WIRE_DATA_HDR] = NULL;
	const uint8_t *sym[MC_RS_MAX];
	uint64_t rng = 0x1234567, now = 0;
	char err[256] = "out of memory";
	int rc = -1, ndata = 0, st, asked = 0, helloed = 0;

	memset(s, 0, sizeof *s);
	s->payload_size = image ? 1500u + FZ_CHUNK + 1u + 100u : FZ_PAYLOAD;
	s->payload = malloc(s->payload_size);
	digests = malloc(3 * MC_DIGEST_LEN);
	block = malloc((size_t)FZ_KMAX * FZ_SYM);
	repair = malloc((size_t)MC_RS_MAX * FZ_SYM);
	hdr = malloc(MC_RS_MAX * sizeof *hdr);
	if (!s->payload || !digests || !block || !repair || !hdr || !fec)
		goto out;
	for (size_t i = 0; i < s->payload_size; i++)
		s->payload[i] = (uint8_t)(mc_xorshift(&rng) >> 56);
	strcpy(s->m.name, "fuzz");
	strcpy(s->m.version, "1");
	s->m.ctime = 1700000000;
	s->m.compression = MC_COMP_NONE;
	s->m.kind = MC_KIND_RAW;
	s->m.chunk_size = FZ_CHUNK;
	s->m.payload_size = FZ_PAYLOAD;
	s->m.nchunks = 3;
	for (uint32_t c = 0; !image && c < 3; c++) {
		uint64_t off = (uint64_t)c * FZ_CHUNK;
		mc_digest(s->payload + off, FZ_PAYLOAD - off < FZ_CHUNK ? FZ_PAYLOAD - off : FZ_CHUNK, digests + c * MC_DIGEST_LEN);
	}
	if (!image)
		mc_digest(s->payload, FZ_PAYLOAD, s->m.payload_digest);
	if ((image ? fz_image_manifest(&s->m, s->payload, err, sizeof err)
		   : mc_manifest_encode(&s->m, digests, err, sizeof err)) < 0)
		goto out;
	memset(&sc, 0, sizeof sc);
	if (mc_geom_init_manifest(&sc.geom, &s->m, FZ_SYM, FZ_KMAX) < 0) {
		snprintf(err, sizeof err, "bad geometry");
		goto out;
	}
	sc.fec_pct = FZ_FEC;
	sc.linger_ms = 500;
	sc.peer_timeout_ms = 5000;
	memcpy(sc.id, s->m.id, MC_ID_LEN);
	strcpy(sc.name, s->m.name);
	if ((snd = mc_sender_new(&sc, FZ_SESSION, 0)) == NULL)
		goto out;

	if (fz_announce(s, snd, -1, pkt, sizeof pkt) < 0)
		goto out;
	for (;;) {
		while ((st = mc_sender_next(snd, now, &job)) == MC_SENDER_RUN) {
			memset(block, 0, (size_t)FZ_KMAX * FZ_SYM);
			memcpy(block, s->payload + job.b.off, job.b.len);
			if (mc_sender_datagrams(fec, FZ_SESSION, FZ_SYM, &job, block, repair, hdr, sym) < 0) {
				snprintf(err, sizeof err, "mc_sender_datagrams failed");
				goto out;
			}
			for (unsigned i = 0; i < job.n; i++) {
				memcpy(pkt, hdr[i], MC_WIRE_DATA_HDR);
				memcpy(pkt + MC_WIRE_DATA_HDR, sym[i], FZ_SYM);
				if (fz_add(s, pkt, MC_WIRE_DATA_HDR + FZ_SYM) < 0)
					goto out;
				if (++ndata % 40 == 0 && fz_announce(s, snd, ndata / 40, pkt, sizeof pkt) < 0)
					goto out;
			}
			now += 1;
			if (ndata > 60 && !helloed) {
				/* Our receiver says hello: the sender welcomes it. */
				struct mc_pkt p;
				memset(&p, 0, sizeof p);
				p.type = MC_PKT_HELLO;
				p.session = FZ_SESSION;
				p.u.hello.rid = FZ_RID;
				mc_sender_feedback(snd, now, &p, NULL);
				while (mc_sender_ctrl(snd, &p))
					if (fz_add(s, pkt, mc_wire_encode(&p, pkt, sizeof pkt)) < 0)
						goto out;
				helloed = 1;
			}
		}
		if (asked || st != MC_SENDER_IDLE || s->n >= FZ_PKT_MAX)
			break;
		/* Pass 1 is over: another receiver asks for blocks of every chunk; we hear its NACK too. */
		struct mc_pkt p;
		memset(&p, 0, sizeof p);
		p.type = MC_PKT_NACK;
		p.session = FZ_SESSION;
		p.u.nack.rid = FZ_OTHER_RID;
		p.u.nack.pass = mc_sender_stats(snd)->passes;
		p.u.nack.n = 3;
		p.u.nack.e[0] = (struct mc_nack_entry){0, 2, 3};
		p.u.nack.e[1] = (struct mc_nack_entry){sc.geom.bpc + 1, 1, MC_NEED_ALL};
		p.u.nack.e[2] = (struct mc_nack_entry){2 * sc.geom.bpc, 1, 1};
		mc_sender_feedback(snd, now, &p, NULL);
		if (fz_add(s, pkt, mc_wire_encode(&p, pkt, sizeof pkt)) < 0)
			goto out;
		asked = 1;
	}
	/* Idle: the announcement says so; then the end. */
	if (fz_announce(s, snd, 0, pkt, sizeof pkt) < 0)
		goto out;
	{
		struct mc_pkt p;
		memset(&p, 0, sizeof p);
		p.type = MC_PKT_END;
		p.session = FZ_SESSION;
		memcpy(p.u.end.id, s->m.id, MC_ID_LEN);
		p.u.end.reason = MC_END_COMPLETE;
		if (fz_add(s, pkt, mc_wire_encode(&p, pkt, sizeof pkt)) < 0)
			goto out;
	}
	rc = 0;
out:
	if (rc < 0) {
		fprintf(stderr, "fuzz session: %s\n", err);
		fz_session_free(s);
	}
	mc_sender_free(snd);
	mc_fec_free(fec);
	free(digests);
	free(block);
	free(repair);
	free(hdr);
	return rc;
}

static int fz_session_build(struct fz_session *s)
{
	return fz_session_make(s, 0);
}

#endif
