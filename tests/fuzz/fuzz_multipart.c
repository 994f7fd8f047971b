/*
 * libFuzzer target: what a hostile or broken HTTP server sends mcast-repair
 * (lib/source.h): Content-Range values (mc_content_range_parse) and
 * multipart/byteranges bodies (mc_multipart_init, mc_multipart_feed). A
 * parsed range must describe bytes that exist (no wrap past 2^64, total past
 * its end); a body fed in pieces of any size must give the sink the same
 * bytes at the same offsets as when fed at once, every piece inside a range
 * some part header announced.
 *
 * Input: [split seed][content-type length][content-type][body]; the
 * content-type is also parsed as a Content-Range value.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rand.h"
#include "source.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct rec {
	uint8_t *bytes;  /* delivered bytes, in order */
	uint64_t *offs;  /* offset of each delivered byte */
	size_t n, cap;
};

static int sink(void *ctx, unsigned slot, uint64_t off, const uint8_t *p, size_t n)
{
	struct rec *r = ctx;

	assert(slot == 3 && n > 0);
	/* A piece lies inside the byte space: its end does not wrap. */
	assert(off + n >= off);
	if (r->n + n > r->cap) {
		size_t cap = (r->n + n) * 2;
		r->bytes = realloc(r->bytes, cap);
		r->offs = realloc(r->offs, cap * sizeof *r->offs);
		assert(r->bytes && r->offs);
		r->cap = cap;
	}
	for (size_t i = 0; i < n; i++) {
		r->bytes[r->n + i] = p[i];
		r->offs[r->n + i] = off + i;
	}
	r->n += n;
	return 0;
}

static int feed(struct mc_multipart *mp, const uint8_t *body, size_t n, uint8_t seed, struct rec *r)
{
	uint64_t x = seed * 2654435761u + 1;
	int rc = 0;

	while (n > 0 && rc == 0) {
		size_t k = n;
		if (seed) {
			k = 1 + mc_xorshift(&x) % (seed < 16 ? seed : 300);
			if (k > n)
				k = n;
		}
		/* A private copy of exactly k bytes: ASan sees any read past the piece. */
		uint8_t *piece = malloc(k);
		assert(piece != NULL);
		memcpy(piece, body, k);
		rc = mc_multipart_feed(mp, piece, k, sink, r, 3);
		free(piece);
		body += k;
		n -= k;
	}
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mc_multipart a, b;
	struct rec ra = {0}, rb = {0};
	uint64_t off, len, total;
	char *ct;

	if (size < 2)
		return 0;
	uint8_t seed = data[0];
	size_t cl = data[1];
	data += 2;
	size -= 2;
	if (cl > size)
		cl = size;
	ct = malloc(cl + 1);
	assert(ct != NULL);
	memcpy(ct, data, cl);
	ct[cl] = '\0';
	data += cl;
	size -= cl;

	if (mc_content_range_parse(ct, &off, &len, &total) == 0) {
		assert(len >= 1);
		assert(off + len >= off && off + len - 1 >= off); /* bytes off .. off+len-1 exist */
		assert(total == UINT64_MAX || total > off + len - 1);
	}
	if (mc_multipart_init(&a, ct) == 0) {
		assert(a.blen >= 3 && a.blen < sizeof a.boundary && strlen(a.boundary) == a.blen);
		assert(mc_multipart_init(&b, ct) == 0);
		int rca = feed(&a, data, size, 0, &ra);
		int rcb = feed(&b, data, size, seed, &rb);
		/* Where the body splits changes nothing. */
		assert(rca == rcb);
		assert(ra.n == rb.n && (ra.n == 0 || (memcmp(ra.bytes, rb.bytes, ra.n) == 0 &&
						       memcmp(ra.offs, rb.offs, ra.n * sizeof *ra.offs) == 0)));
	}
	free(ra.bytes);
	free(ra.offs);
	free(rb.bytes);
	free(rb.offs);
	free(ct);
	return 0;
}
