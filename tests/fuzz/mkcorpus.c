/*
 * Writes seed inputs for the fuzz targets into DIR/<target>/, from a real
 * small session made with the lib's own encoders (session.h), so the
 * fuzzers start deep: usage mkcorpus DIR.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "session.h"

static const char *dir;

static void put(const char *target, const char *name, const uint8_t *b, size_t n)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", dir, target);
	if (mkdir(path, 0777) < 0 && errno != EEXIST) {
		perror(path);
		exit(1);
	}
	snprintf(path, sizeof path, "%s/%s/%s", dir, target, name);
	if ((f = fopen(path, "wb")) == NULL || (n && fwrite(b, 1, n, f) != n) || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

struct buf {
	uint8_t *b;
	size_t n, cap;
};

static void add(struct buf *x, const void *p, size_t n)
{
	if (x->n + n > x->cap) {
		x->cap = (x->n + n) * 2;
		if ((x->b = realloc(x->b, x->cap)) == NULL)
			exit(1);
	}
	memcpy(x->b + x->n, p, n);
	x->n += n;
}

static void record(struct buf *x, uint8_t ctl, const uint8_t *p, size_t n)
{
	uint8_t h[3] = {ctl, (uint8_t)(n >> 8), (uint8_t)n};
	add(x, h, 3);
	add(x, p, n);
}

/* The whole session as raw records for fuzz_receiver, one millisecond apart. */
static void raw_session(const struct fz_session *s, uint8_t mode, unsigned skip_every, const char *name)
{
	struct buf x = {0};

	add(&x, &mode, 1);
	for (unsigned i = 0; i < s->n; i++)
		if (skip_every == 0 || i % skip_every != 5 || s->pkt[i][4] != MC_PKT_DATA)
			record(&x, 1, s->pkt[i], s->len[i]);
	put("fuzz_receiver", name, x.b, x.n);
	free(x.b);
}

int main(int argc, char **argv)
{
	struct fz_session s;
	struct mc_pkt p;
	uint8_t pkt[2048];
	size_t n;
	char name[64];
	int seen[256] = {0};

	if (argc != 2) {
		fprintf(stderr, "usage: mkcorpus DIR\n");
		return 2;
	}
	dir = argv[1];
	if (mkdir(dir, 0777) < 0 && errno != EEXIST) {
		perror(dir);
		return 1;
	}
	if (fz_session_build(&s) < 0)
		return 1;

	/* fuzz_wire: one of each packet type the session has, plus receiver feedback. */
	for (unsigned i = 0; i < s.n; i++) {
		uint8_t t = s.pkt[i][4];
		if (seen[t]++ >= 2)
			continue;
		snprintf(name, sizeof name, "session-%s-%d", mc_wire_type_name(t), seen[t]);
		put("fuzz_wire", name, s.pkt[i], s.len[i] > 200 && t == MC_PKT_DATA ? s.len[i] : s.len[i]);
	}
	memset(&p, 0, sizeof p);
	p.session = FZ_SESSION;
	p.type = MC_PKT_HELLO;
	p.flags = MC_FLAG_WELCOMED;
	p.u.hello.rid = FZ_RID;
	memcpy(p.u.hello.want_id, s.m.id, MC_ID_LEN);
	p.u.hello.want_nhex = 2 * MC_ID_LEN;
	p.u.hello.have = 1;
	p.u.hello.total = 3;
	strcpy(p.u.hello.name, "fuzz");
	n = mc_wire_encode(&p, pkt, sizeof pkt);
	put("fuzz_wire", "hello", pkt, n);
	p.type = MC_PKT_DONE;
	p.u.done.rid = FZ_RID;
	memcpy(p.u.done.id, s.m.id, MC_ID_LEN);
	n = mc_wire_encode(&p, pkt, sizeof pkt);
	put("fuzz_wire", "done", pkt, n);
	p.type = MC_PKT_BYE;
	n = mc_wire_encode(&p, pkt, sizeof pkt);
	put("fuzz_wire", "bye", pkt, n);
	{
		/* A short DATA packet (small symbol) keeps the seed small. */
		struct mc_data d = {.block = 0, .esi = 1, .sym = NULL, .sym_len = 64};
		uint8_t sym[64] = {1, 2, 3};
		memset(&p, 0, sizeof p);
		p.type = MC_PKT_DATA;
		p.session = FZ_SESSION;
		p.pass = 3;
		p.u.data = d;
		p.u.data.sym = sym;
		n = mc_wire_encode(&p, pkt, sizeof pkt);
		put("fuzz_wire", "data-small", pkt, n);
	}

	/* fuzz_manifest: the manifest, and the package header with its file size after it. */
	put("fuzz_manifest", "manifest", s.m.raw, s.m.raw_len);
	{
		struct mc_pkg_layout l;
		uint8_t h[MC_PKG_HDR_SIZE + 8];
		mc_manifest_layout(&s.m, &l);
		mc_pkg_header_encode(&s.m, h);
		for (int i = 0; i < 8; i++)
			h[MC_PKG_HDR_SIZE + i] = (uint8_t)(l.file_size >> (56 - 8 * i));
		put("fuzz_manifest", "header-size", h, sizeof h);
		put("fuzz_manifest", "header", h, MC_PKG_HDR_SIZE);
	}
	{
		/* A format-2 image manifest: compressed, hole, raw (the last span shorter). */
		static const uint8_t zero[65536];
		uint32_t lens[3] = {100, 0, 1000};
		uint8_t fl[3] = {0, MC_CHUNK_HOLE, MC_CHUNK_RAW}, dg[48], sp[48];
		struct mc_manifest im;
		memset(&im, 0, sizeof im);
		strcpy(im.name, "disk");
		im.compression = MC_COMP_ZSTD;
		im.chunk_size = 65536;
		im.image_size = 2 * 65536 + 1000;
		memset(dg, 7, sizeof dg);
		memset(sp, 9, sizeof sp);
		mc_digest("", 0, dg + 16);
		mc_digest(zero, 65536, sp + 16);
		if (mc_manifest_encode_image(&im, lens, fl, dg, sp, (char[128]){0}, 128) == 0)
			put("fuzz_manifest", "manifest-image", im.raw, im.raw_len);
		mc_manifest_free(&im);
	}

	/* fuzz_receiver: the session as raw records (mode 0), resumed (mode 1), with losses. */
	raw_session(&s, 0, 0, "raw-session");
	raw_session(&s, 1, 0, "raw-session-resume");
	raw_session(&s, 4, 7, "raw-session-loss");
	{
		/* Two sessions of the same package: the first falls silent, the second has other coding parameters. */
		struct buf x = {0};
		uint8_t mode = 0, a[512];
		add(&x, &mode, 1);
		for (unsigned i = 0; i < 40 && i < s.n; i++)
			record(&x, 1, s.pkt[i], s.len[i]);
		memcpy(a, s.pkt[0], s.len[0]);
		a[8] ^= 0x01;              /* another session id */
		a[48] = 0x02, a[49] = 0x00; /* symbol size 512 */
		a[50] = 0x00, a[51] = 0x20; /* kmax 32 */
		record(&x, 0x3f, a, s.len[0]);
		record(&x, 0x3f, a, s.len[0]);
		put("fuzz_receiver", "raw-two-sessions", x.b, x.n);
		free(x.b);
	}
	{
		/* Mutation scripts over the session (modes 2 and 3). */
		static const uint8_t clean[] = {2};
		static const uint8_t resume[] = {3, 0, 0, 0, 5, 0, 0, 0, 0};
		static const uint8_t drops[] = {6, 0, 0, 30, 0, 0, 0, 0, 90, 0, 0, 0, 0, 150, 0, 0,
						 4, 0, 10, 0, 0, 7, 0, 100, 0, 200};
		static const uint8_t flips[] = {2, 2, 0, 50, 40, 1, 3, 0, 60, 12, 0xff, 6, 0, 70, 100, 0};
		put("fuzz_receiver", "mut-clean", clean, sizeof clean);
		put("fuzz_receiver", "mut-resume", resume, sizeof resume);
		put("fuzz_receiver", "mut-drops", drops, sizeof drops);
		put("fuzz_receiver", "mut-flips", flips, sizeof flips);
		/* --trust of a key that signed nothing (bit 2): refused with nothing written; resumed, taken as preloaded. */
		static const uint8_t trust[] = {6}, trust_resume[] = {7, 0, 0, 0, 5, 0, 0, 0, 0};
		put("fuzz_receiver", "mut-trust", trust, sizeof trust);
		put("fuzz_receiver", "mut-trust-resume", trust_resume, sizeof trust_resume);
		/* The image session (byte 0 bit 6), plain and through the chunk callback (bit 2), and resumed. */
		static const uint8_t image[] = {0x42}, image_cb[] = {0x46};
		static const uint8_t image_drops[] = {0x46, 0, 0, 30, 0, 0, 0, 0, 90, 0, 0, 4, 0, 10, 0, 0};
		static const uint8_t image_resume[] = {0x43, 0, 0, 0, 0x15, 0, 0, 0, 0};
		put("fuzz_receiver", "mut-image", image, sizeof image);
		put("fuzz_receiver", "mut-image-cb", image_cb, sizeof image_cb);
		put("fuzz_receiver", "mut-image-drops", image_drops, sizeof image_drops);
		put("fuzz_receiver", "mut-image-resume", image_resume, sizeof image_resume);
	}

	/* fuzz_sender: geometry then a script (next, NACKs, hellos, time). */
	{
		static const uint8_t a[] = {0, 0x10, 0, 1, 15, 15, 0, 25, 50, 100, 2,
					    7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 0,
					    0x20, 0, 0x20, 0, 0x20, 0, 0x20, 0, 0x20, 0, 0x20, 0,
					    5, 1, 0, 3, 0, 0, 2, 3, 6, 0, 0, 9, 3, 8, 0, 1, 0xff,
					    0x20, 0, 0x20, 0, 0x20, 0, 3, 0, 0, 10, 4, 0, 15, 0,
					    9, 1, 3, 0, 0xff, 0xff, 4, 0, 0x20, 0, 15, 0};
		static const uint8_t b[] = {0xff, 0xff, 0xff, 4, 63, 253, 1, 200, 1, 1, 7,
					    12, 1, 200, 5, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1,
					    0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 4, 0, 15, 0};
		put("fuzz_sender", "script-a", a, sizeof a);
		put("fuzz_sender", "script-b", b, sizeof b);
	}
	/* fuzz_state: PKG.state and PKG.part scripts (see fuzz_state.c for the layout). */
	{
		struct mc_pkg_layout l;
		uint8_t st[3 + 41 + 4];
		mc_manifest_layout(&s.m, &l);
		st[0] = 0;
		st[1] = 0;
		st[2] = 41;
		memcpy(st + 3, "MCSTATE2", 8);
		memcpy(st + 11, s.m.id, MC_ID_LEN);
		memset(st + 27, 0, 4 + 4 + 1 + 8);
		st[30] = 3;   /* nchunks */
		st[34] = 2;   /* nhave (not trusted) */
		st[35] = 5;   /* chunks 0 and 2 */
		st[0] = 1 | 2 | 4 | (5 << 5);
		put("fuzz_state", "resume-0-2", st, 44);
		st[0] = 1 | 2 | 4 | (7 << 5);
		st[35] = 7;
		put("fuzz_state", "resume-all", st, 44);
		st[0] = 1 | 2;    /* the state claims chunks the .part does not hold */
		put("fuzz_state", "state-lies", st, 44);
		st[0] = 1 | 2 | 4 | (7 << 5); /* claims all, .part truncated inside chunk 1 */
		uint32_t cut = (uint32_t)(l.payload_off + s.m.chunk_size + 100) | 0x800000;
		st[44] = (uint8_t)(cut >> 16), st[45] = (uint8_t)(cut >> 8), st[46] = (uint8_t)cut, st[47] = 0;
		put("fuzz_state", "state-part-truncated", st, 48);
		st[0] = 2 | 4 | (3 << 5); /* damaged state: rescan */
		put("fuzz_state", "state-damaged", st, 44);
		st[0] = 8 | 2 | 4 | (6 << 5); /* no state: rescan */
		put("fuzz_state", "no-state", st, 3);
		st[0] = 1 | 2 | 16; /* a manifest byte flipped, id fixed: another package */
		uint32_t pos = (uint32_t)l.manifest_off + 10;
		st[44] = (uint8_t)(pos >> 16), st[45] = (uint8_t)(pos >> 8), st[46] = (uint8_t)pos, st[47] = 'X';
		put("fuzz_state", "other-package", st, 48);
		static const uint8_t empty[] = {8, 0, 0};
		put("fuzz_state", "empty", empty, sizeof empty);
	}
	/* fuzz_multipart: [split seed][content-type length][content-type][body], as a server answers a range request. */
	{
		static const char ct[] = "multipart/byteranges; boundary=3d6b6a416f9b5";
		static const char body[] = "\r\n--3d6b6a416f9b5\r\nContent-Type: application/octet-stream\r\n"
					   "Content-Range: bytes 4096-4105/1000000\r\n\r\n0123456789\r\n"
					   "--3d6b6a416f9b5\r\nContent-Range: bytes 70000-70003/1000000\r\n\r\nabcd\r\n"
					   "--3d6b6a416f9b5--\r\n";
		static const char cr[] = "bytes 4096-69631/304096";
		struct buf x = {0};
		uint8_t h[2] = {7, (uint8_t)(sizeof ct - 1)};
		add(&x, h, 2);
		add(&x, ct, sizeof ct - 1);
		add(&x, body, sizeof body - 1);
		put("fuzz_multipart", "two-parts", x.b, x.n);
		x.n = 0;
		h[1] = (uint8_t)(sizeof cr - 1);
		add(&x, h, 2);
		add(&x, cr, sizeof cr - 1);
		put("fuzz_multipart", "content-range", x.b, x.n);
		free(x.b);
	}
	fz_session_free(&s);
	return 0;
}
