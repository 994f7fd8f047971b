/* Unit tests of block geometry and Reed-Solomon encode/decode (fec.h). */
#include <stdlib.h>
#include <string.h>

#include "fec.h"
#include "tap.h"
#include "wire.h"

static int roundtrip(struct mc_fec *f, int k, int len, int nloss, unsigned seed)
{
	uint8_t *src[255], *orig[255], *rep[255], esi[255], present[255];
	int ok = 0, nrep = nloss + 2;

	srand(seed);
	for (int i = 0; i < k; i++) {
		src[i] = malloc((size_t)len);
		orig[i] = malloc((size_t)len);
		for (int j = 0; j < len; j++)
			orig[i][j] = (uint8_t)rand();
		memcpy(src[i], orig[i], (size_t)len);
		present[i] = 1;
	}
	for (int r = 0; r < nrep; r++) {
		rep[r] = malloc((size_t)len);
		/* Skip a few rows when there is room: any rows must work, not only the first. */
		int skip = 255 - k - nrep < 3 ? 255 - k - nrep : 3;
		esi[r] = (uint8_t)(k + skip + r);
	}
	if (mc_fec_encode(f, k, len, src, esi, nrep, rep) == 0) {
		/* Lose nloss random sources and the first repair symbol. */
		for (int l = 0; l < nloss;) {
			int i = rand() % k;
			if (present[i]) {
				present[i] = 0;
				memset(src[i], 0xee, (size_t)len);
				l++;
			}
		}
		if (mc_fec_decode(f, k, len, src, present, rep + 1, esi + 1, nrep - 1) == 0) {
			ok = 1;
			for (int i = 0; i < k; i++)
				if (memcmp(src[i], orig[i], (size_t)len) != 0)
					ok = 0;
		}
	}
	for (int i = 0; i < k; i++) {
		free(src[i]);
		free(orig[i]);
	}
	for (int r = 0; r < nrep; r++)
		free(rep[r]);
	return ok;
}

int main(void)
{
	struct mc_fec *f = mc_fec_new();
	struct mc_geom g;
	struct mc_block b;

	ok(f != NULL, "coder allocates");
	ok(roundtrip(f, 1, 100, 1, 1), "k=1 rebuilt from one repair symbol");
	ok(roundtrip(f, 64, 1408, 5, 2), "k=64 five losses rebuilt");
	ok(roundtrip(f, 128, 1408, 40, 3), "k=128 forty losses rebuilt");
	ok(roundtrip(f, 200, 64, 50, 4), "k=200 fifty losses rebuilt");
	ok(roundtrip(f, 7, 33, 7, 5), "all sources lost, rebuilt from repairs only");
	{
		uint8_t *s[2], p[2] = {0, 0}, buf[2][16];
		s[0] = buf[0];
		s[1] = buf[1];
		ok(mc_fec_decode(f, 2, 16, s, p, NULL, NULL, 1) < 0, "too few symbols is refused");
	}
	ok(mc_geom_init(&g, 3 * 1048576 + 5, 1048576, 1408, 128) == 0, "geometry of 3 MiB + 5");
	ok(g.nchunks == 4 && g.bpc == 6, "4 chunks of 6 blocks (%u, %u)", g.nchunks, g.bpc);
	ok(mc_geom_block(&g, 5, &b) == 0 && b.len == 1048576 - 5 * 128 * 1408 && b.k == (b.len + 1407) / 1408,
	   "last block of a chunk is short");
	ok(mc_geom_block(&g, 18, &b) == 0 && b.len == 5 && b.k == 1 && b.off == 3 * 1048576, "tail block");
	ok(mc_geom_block(&g, 19, &b) < 0, "hole after the tail block");
	ok(mc_geom_block(&g, 24, &b) < 0, "out of range");
	{
		/*
		 * An image of 5 spans of 1 MiB: chunk 1 a hole, chunk 2 one byte,
		 * chunk 3 stored raw (a whole span), chunk 4 a short last span.
		 */
		static const uint64_t off[6] = {0, 300000, 300000, 300001, 300001 + 1048576, 300001 + 1048576 + 7};
		uint64_t bad[6];
		ok(mc_geom_init_image(&g, 5, off[5], 1048576, 1408, 128) == 0 && g.image && g.nchunks == 5 &&
		   g.bpc == 6 && g.nblocks == 30, "image geometry: 5 chunks of 6 blocks at most");
		ok(!mc_geom_placed(&g) && mc_geom_block(&g, 0, &b) < 0 && mc_geom_chunk_blocks(&g, 0) == 0,
		   "no block is placed before the chunk table is known");
		memcpy(bad, off, sizeof bad);
		bad[4] = bad[3] + 1048577;
		ok(mc_geom_set_table(&g, bad) < 0 && !mc_geom_placed(&g), "a chunk longer than the span is refused");
		memcpy(bad, off, sizeof bad);
		bad[2] = bad[1] - 1;
		ok(mc_geom_set_table(&g, bad) < 0, "offsets going back are refused");
		memcpy(bad, off, sizeof bad);
		bad[5]++;
		ok(mc_geom_set_table(&g, bad) < 0, "a table that does not end at the payload size is refused");
		ok(mc_geom_set_table(&g, off) == 0 && mc_geom_placed(&g), "the table places the blocks");
		ok(mc_geom_chunk_blocks(&g, 0) == 2 && mc_geom_chunk_blocks(&g, 1) == 0 && mc_geom_chunk_blocks(&g, 2) == 1 &&
		   mc_geom_chunk_blocks(&g, 3) == 6 && mc_geom_chunk_blocks(&g, 4) == 1,
		   "blocks per chunk from each chunk's length (2, 0, 1, 6, 1)");
		ok(mc_geom_block(&g, 1, &b) == 0 && b.off == 128 * 1408 && b.len == 300000 - 128 * 1408,
		   "second block of chunk 0 is short");
		ok(mc_geom_block(&g, 2, &b) < 0 && mc_geom_block(&g, 6, &b) < 0, "past a short chunk and in a hole: none");
		ok(mc_geom_block(&g, 12, &b) == 0 && b.chunk == 2 && b.off == 300000 && b.len == 1 && b.k == 1,
		   "a chunk of one byte is one block of one symbol");
		ok(mc_geom_block(&g, 23, &b) == 0 && b.chunk == 3 && b.off == 300001 + 5 * 128 * 1408 &&
		   b.len == 1048576 - 5 * 128 * 1408, "a raw chunk fills its bpc blocks");
		ok(mc_geom_block(&g, 24, &b) == 0 && b.chunk == 4 && b.off == off[4] && b.len == 7, "the last chunk");
		ok(mc_geom_chunk_off(&g, 3) == 300001 && mc_geom_chunk_len(&g, 1) == 0 && mc_geom_chunk_len(&g, 3) == 1048576,
		   "chunk offsets and lengths from the table");
		ok(mc_geom_init_image(&g, 2, 2 * 1048576 + 1, 1048576, 1408, 128) < 0,
		   "an image storing more than its spans hold is refused");
		ok(mc_geom_init(&g, 3 * 1048576 + 5, 1048576, 1408, 128) == 0 && mc_geom_set_table(&g, off) < 0 &&
		   mc_geom_chunk_off(&g, 2) == 2 * 1048576, "a fixed geometry takes no table");
	}
	ok(mc_wire_sym_for_mtu(1500, 0) == 1456 && mc_wire_sym_for_mtu(1500, 1) == 1424,
	   "symbols of 1456 (IPv4) and 1424 (IPv6) bytes at MTU 1500 (%u, %u)", mc_wire_sym_for_mtu(1500, 0),
	   mc_wire_sym_for_mtu(1500, 1));
	ok(roundtrip(f, 128, 1456, 30, 6), "k=128 of 1456-byte symbols rebuilt");
	ok(roundtrip(f, 100, 1430, 9, 7), "symbols not a multiple of 16 rebuilt");
	mc_fec_free(f);
	return tap_done();
}
