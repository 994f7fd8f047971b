/*
 * libFuzzer target: mc_wire_decode on arbitrary bytes. What decodes must
 * re-encode (mc_wire_encode) to the same bytes, reserved fields aside, and
 * decode again to the same fields. A HELLO re-encodes to its canonical form:
 * the fields up to the package name byte for byte, then the host name as
 * decoded (at most MC_HOST_MAX printable bytes, absent when empty), without
 * the later fields a newer peer may add.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fec.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Bytes the encoder writes as zero and the decoder ignores (mcast-protocol(7)). */
static int reserved(uint8_t type, size_t i)
{
	if (type != MC_PKT_DATA && (i == 6 || i == 7))
		return 1; /* pass: DATA only */
	if (type == MC_PKT_DATA && i == 5)
		return 1; /* flags: none defined for DATA, written as zero */
	switch (type) {
	case MC_PKT_ANNOUNCE: return i == 74 || i == 75;
	case MC_PKT_MANIFEST: return i == 22 || i == 23;
	case MC_PKT_CTRL: return i >= 14 && (i - 14) % 12 >= 9;
	default: return 0;
	}
}

static void same(const struct mc_pkt *a, const struct mc_pkt *b)
{
	assert(a->type == b->type && a->session == b->session);
	assert(a->flags == b->flags || (a->type == MC_PKT_DATA && b->flags == 0));
	switch (a->type) {
	case MC_PKT_ANNOUNCE: {
		const struct mc_announce *x = &a->u.ann, *y = &b->u.ann;
		assert(memcmp(x->id, y->id, MC_ID_LEN) == 0);
		assert(x->payload_size == y->payload_size && x->manifest_len == y->manifest_len);
		assert(x->chunk_size == y->chunk_size && x->nchunks == y->nchunks);
		assert(x->symbol_size == y->symbol_size && x->kmax == y->kmax);
		assert(x->pass == y->pass && x->cursor == y->cursor && x->rate == y->rate);
		assert(x->joined == y->joined && x->complete == y->complete && x->max_passes == y->max_passes);
		assert(x->image == y->image && x->image == ((a->flags & MC_FLAG_IMAGE) != 0));
		assert(strcmp(x->name, y->name) == 0);
		break;
	}
	case MC_PKT_MANIFEST:
		assert(a->u.man.total == b->u.man.total && a->u.man.offset == b->u.man.offset);
		assert(a->u.man.len == b->u.man.len && memcmp(a->u.man.bytes, b->u.man.bytes, a->u.man.len) == 0);
		break;
	case MC_PKT_DATA: {
		const struct mc_data *x = &a->u.data, *y = &b->u.data;
		assert(a->pass == b->pass);
		assert(x->block == y->block && x->esi == y->esi && x->sym_len == y->sym_len);
		assert(memcmp(x->sym, y->sym, x->sym_len) == 0);
		break;
	}
	case MC_PKT_END:
		assert(memcmp(a->u.end.id, b->u.end.id, MC_ID_LEN) == 0 && a->u.end.reason == b->u.end.reason);
		break;
	case MC_PKT_CTRL:
		assert(a->u.ctrl.n == b->u.ctrl.n);
		for (unsigned i = 0; i < a->u.ctrl.n; i++)
			assert(a->u.ctrl.e[i].rid == b->u.ctrl.e[i].rid && a->u.ctrl.e[i].code == b->u.ctrl.e[i].code);
		break;
	case MC_PKT_HELLO: {
		const struct mc_hello *x = &a->u.hello, *y = &b->u.hello;
		assert(x->rid == y->rid && memcmp(x->want_id, y->want_id, MC_ID_LEN) == 0 && x->want_nhex == y->want_nhex);
		assert(x->have == y->have && x->total == y->total && strcmp(x->name, y->name) == 0);
		assert(strcmp(x->host, y->host) == 0);
		break;
	}
	case MC_PKT_NACK:
		assert(a->u.nack.rid == b->u.nack.rid && a->u.nack.pass == b->u.nack.pass && a->u.nack.n == b->u.nack.n);
		assert(a->u.nack.overruns == b->u.nack.overruns);
		for (unsigned i = 0; i < a->u.nack.n; i++) {
			const struct mc_nack_entry *x = &a->u.nack.e[i], *y = &b->u.nack.e[i];
			assert(x->block == y->block && x->run == y->run && x->need == y->need);
		}
		break;
	case MC_PKT_DONE:
	case MC_PKT_BYE:
		assert(a->u.done.rid == b->u.done.rid && memcmp(a->u.done.id, b->u.done.id, MC_ID_LEN) == 0);
		break;
	default:
		assert(!"decoded an unknown type");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mc_pkt p, q;
	uint8_t *in, *out;
	size_t n;

	/* A private copy of exactly size bytes: ASan sees any read past the datagram. */
	if ((in = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(in, data, size);
	memset(&p, 0xa5, sizeof p);
	if (mc_wire_decode(in, size, &p) != 0) {
		free(in);
		return 0;
	}
	(void)mc_wire_type_name(p.type);
	if (p.type == MC_PKT_ANNOUNCE) {
		/*
		 * "Sizes that could not describe a package are refused": the chunks
		 * cover the payload exactly, or for an image hold it (each at most
		 * chunk_size bytes).
		 */
		const struct mc_announce *a = &p.u.ann;
		struct mc_geom g;
		uint64_t want = a->payload_size / a->chunk_size + (a->payload_size % a->chunk_size != 0);
		int rc;
		if (p.flags & MC_FLAG_IMAGE) {
			assert(a->nchunks >= want);
			rc = mc_geom_init_image(&g, a->nchunks, a->payload_size, a->chunk_size, a->symbol_size, a->kmax);
		} else {
			assert(a->nchunks == want);
			rc = mc_geom_init(&g, a->payload_size, a->chunk_size, a->symbol_size, a->kmax);
		}
		if (rc == 0) {
			assert(g.nchunks == a->nchunks);
			assert((uint64_t)g.nchunks * g.chunk_size >= g.payload_size);
			assert((uint64_t)g.bpc * g.kmax * g.sym >= g.chunk_size);
		}
	}
	/* What the encoder writes: all of it, or a HELLO's canonical form (see the top). */
	size_t want = size, exact = size;
	if (p.type == MC_PKT_HELLO) {
		const struct mc_hello *h = &p.u.hello;
		size_t hl = strlen(h->host);
		assert(hl <= MC_HOST_MAX);
		for (size_t i = 0; i < hl; i++)
			assert(h->host[i] > 0x20 && h->host[i] < 0x7f); /* nothing a log line or JSON could choke on */
		exact = 45 + 1 + strlen(h->name);
		want = exact + (hl ? 1 + hl : 0);
		assert(want <= size);
	}
	out = malloc(size + 1);
	assert(out != NULL);
	/* One byte short never fits; the exact size does. */
	assert(mc_wire_encode(&p, out, want - 1) == 0);
	n = mc_wire_encode(&p, out, size + 1);
	assert(n == want);
	for (size_t i = 0; i < exact; i++)
		assert(out[i] == in[i] || (reserved(p.type, i) && out[i] == 0));
	memset(&q, 0x5a, sizeof q);
	assert(mc_wire_decode(out, n, &q) == 0);
	same(&p, &q);
	if (p.type == MC_PKT_DATA) {
		uint8_t h[MC_WIRE_DATA_HDR];
		mc_wire_encode_data_hdr(p.session, p.pass, &p.u.data, h);
		assert(memcmp(h, out, MC_WIRE_DATA_HDR) == 0);
	}
	free(out);
	free(in);
	return 0;
}
