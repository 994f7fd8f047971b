/* Packet encoding and decoding; see wire.h and mcast-protocol(7) for the layouts. */
#include "wire.h"

#include <string.h>

#include "be.h"
#include "fec.h"

static void put_hdr(uint8_t *out, uint8_t type, uint8_t flags, uint32_t session)
{
	out[0] = 'M';
	out[1] = 'C';
	out[2] = 'S';
	out[3] = MC_WIRE_VERSION;
	out[4] = type;
	out[5] = flags;
	out[6] = out[7] = 0;
	mc_put32(out + 8, session);
}

/* Copies a length-prefixed name; rejects NULs inside (names are C strings everywhere else). */
static int get_name(const uint8_t *p, size_t avail, char *out)
{
	if (avail < 1 || (size_t)p[0] + 1 > avail)
		return -1;
	if (memchr(p + 1, 0, p[0]) != NULL)
		return -1;
	memcpy(out, p + 1, p[0]);
	out[p[0]] = '\0';
	return 1 + p[0];
}

static size_t put_name(uint8_t *p, size_t avail, const char *name)
{
	size_t n = strnlen(name, MC_NAME_MAX);

	if (n + 1 > avail)
		return 0;
	p[0] = (uint8_t)n;
	memcpy(p + 1, name, n);
	return n + 1;
}

void mc_wire_host(const char *src, size_t n, char *out)
{
	if (n > MC_HOST_MAX)
		n = MC_HOST_MAX;
	for (size_t i = 0; i < n; i++)
		out[i] = src[i] > 0x20 && src[i] < 0x7f ? src[i] : '?';
	out[n] = '\0';
}

void mc_wire_encode_data_hdr(uint32_t session, uint16_t pass, const struct mc_data *d, uint8_t out[MC_WIRE_DATA_HDR])
{
	put_hdr(out, MC_PKT_DATA, (uint8_t)d->esi, session);
	mc_put16(out + 6, pass);
	mc_put32(out + 12, d->block);
}

size_t mc_wire_encode(const struct mc_pkt *p, uint8_t *out, size_t cap)
{
	size_t n = MC_WIRE_HDR, k;

	if (cap < MC_WIRE_HDR)
		return 0;
	put_hdr(out, p->type, p->flags, p->session);
	switch (p->type) {
	case MC_PKT_ANNOUNCE: {
		const struct mc_announce *a = &p->u.ann;
		if (cap < 76)
			return 0;
		if (a->image)
			out[5] |= MC_FLAG_IMAGE;
		memcpy(out + 12, a->id, MC_ID_LEN);
		mc_put64(out + 28, a->payload_size);
		mc_put32(out + 36, a->manifest_len);
		mc_put32(out + 40, a->chunk_size);
		mc_put32(out + 44, a->nchunks);
		mc_put16(out + 48, a->symbol_size);
		mc_put16(out + 50, a->kmax);
		mc_put32(out + 52, a->pass);
		mc_put32(out + 56, a->cursor);
		mc_put64(out + 60, a->rate);
		mc_put16(out + 68, a->joined);
		mc_put16(out + 70, a->complete);
		mc_put16(out + 72, a->max_passes);
		mc_put16(out + 74, 0);
		k = put_name(out + 76, cap - 76, a->name);
		if (k == 0)
			return 0;
		n = 76 + k;
		break;
	}
	case MC_PKT_MANIFEST:
		if (cap < 24u + p->u.man.len)
			return 0;
		mc_put32(out + 12, p->u.man.total);
		mc_put32(out + 16, p->u.man.offset);
		mc_put16(out + 20, p->u.man.len);
		mc_put16(out + 22, 0);
		memcpy(out + 24, p->u.man.bytes, p->u.man.len);
		n = 24u + p->u.man.len;
		break;
	case MC_PKT_DATA:
		if (cap < MC_WIRE_DATA_HDR + (size_t)p->u.data.sym_len)
			return 0;
		mc_wire_encode_data_hdr(p->session, p->pass, &p->u.data, out);
		memcpy(out + MC_WIRE_DATA_HDR, p->u.data.sym, p->u.data.sym_len);
		n = MC_WIRE_DATA_HDR + (size_t)p->u.data.sym_len;
		break;
	case MC_PKT_END:
		if (cap < 29)
			return 0;
		memcpy(out + 12, p->u.end.id, MC_ID_LEN);
		out[28] = p->u.end.reason;
		n = 29;
		break;
	case MC_PKT_CTRL:
		if (p->u.ctrl.n > MC_WIRE_CTRL_MAX || cap < 14u + 12u * p->u.ctrl.n)
			return 0;
		mc_put16(out + 12, p->u.ctrl.n);
		for (unsigned i = 0; i < p->u.ctrl.n; i++) {
			uint8_t *e = out + 14 + 12 * i;
			mc_put64(e, p->u.ctrl.e[i].rid);
			e[8] = p->u.ctrl.e[i].code;
			e[9] = e[10] = e[11] = 0;
		}
		n = 14u + 12u * p->u.ctrl.n;
		break;
	case MC_PKT_HELLO: {
		const struct mc_hello *h = &p->u.hello;
		if (cap < 45)
			return 0;
		mc_put64(out + 12, h->rid);
		memcpy(out + 20, h->want_id, MC_ID_LEN);
		mc_put32(out + 36, h->have);
		mc_put32(out + 40, h->total);
		out[44] = h->want_nhex;
		k = put_name(out + 45, cap - 45, h->name);
		if (k == 0)
			return 0;
		n = 45 + k;
		if (h->host[0]) { /* optional: receivers that know no host name send none */
			size_t hl = strnlen(h->host, MC_HOST_MAX);
			if (n + 1 + hl > cap)
				return 0;
			out[n] = (uint8_t)hl;
			mc_wire_host(h->host, hl, (char *)out + n + 1);
			n += 1 + hl;
		}
		break;
	}
	case MC_PKT_NACK:
		if (p->u.nack.n > MC_WIRE_NACK_MAX || cap < 28u + 8u * p->u.nack.n)
			return 0;
		mc_put64(out + 12, p->u.nack.rid);
		mc_put32(out + 20, p->u.nack.pass);
		mc_put16(out + 24, p->u.nack.n);
		mc_put16(out + 26, p->u.nack.overruns);
		for (unsigned i = 0; i < p->u.nack.n; i++) {
			uint8_t *e = out + 28 + 8 * i;
			mc_put32(e, p->u.nack.e[i].block);
			mc_put16(e + 4, p->u.nack.e[i].run);
			mc_put16(e + 6, p->u.nack.e[i].need);
		}
		n = 28u + 8u * p->u.nack.n;
		break;
	case MC_PKT_DONE:
	case MC_PKT_BYE:
		if (cap < 36)
			return 0;
		mc_put64(out + 12, p->u.done.rid);
		memcpy(out + 20, p->u.done.id, MC_ID_LEN);
		n = 36;
		break;
	default:
		return 0;
	}
	return n;
}

int mc_wire_decode(const uint8_t *b, size_t len, struct mc_pkt *p)
{
	int k;

	if (len < MC_WIRE_HDR || b[0] != 'M' || b[1] != 'C' || b[2] != 'S')
		return MC_WIRE_EMAGIC;
	if (b[3] != MC_WIRE_VERSION)
		return MC_WIRE_EVERSION;
	p->type = b[4];
	p->flags = b[5];
	p->pass = mc_get16(b + 6);
	p->session = mc_get32(b + 8);
	switch (p->type) {
	case MC_PKT_ANNOUNCE: {
		struct mc_announce *a = &p->u.ann;
		if (len < 77)
			return MC_WIRE_ESHORT;
		memcpy(a->id, b + 12, MC_ID_LEN);
		a->payload_size = mc_get64(b + 28);
		a->manifest_len = mc_get32(b + 36);
		a->chunk_size = mc_get32(b + 40);
		a->nchunks = mc_get32(b + 44);
		a->symbol_size = mc_get16(b + 48);
		a->kmax = mc_get16(b + 50);
		a->pass = mc_get32(b + 52);
		a->cursor = mc_get32(b + 56);
		a->rate = mc_get64(b + 60);
		a->joined = mc_get16(b + 68);
		a->complete = mc_get16(b + 70);
		a->max_passes = mc_get16(b + 72);
		a->image = (p->flags & MC_FLAG_IMAGE) != 0;
		if ((k = get_name(b + 76, len - 76, a->name)) < 0 || 76u + (size_t)k != len)
			return MC_WIRE_EFIELD;
		/* Sizes that could not describe a package are refused here, once for all callers. */
		if (a->symbol_size == 0 || a->kmax == 0 || a->kmax >= MC_RS_MAX ||
		    a->chunk_size < a->symbol_size || a->manifest_len == 0 ||
		    a->manifest_len > MC_MANIFEST_MAX || a->chunk_size > MC_CHUNK_MAX)
			return MC_WIRE_EFIELD;
		if (p->flags & MC_FLAG_IMAGE) {
			/*
			 * An image: no chunk stores more than its span; the manifest
			 * holds at least two digests per chunk (stored and span).
			 */
			if (a->payload_size > (uint64_t)a->nchunks * a->chunk_size ||
			    a->manifest_len < 32ULL * a->nchunks || a->manifest_len > MC_IMAGE_MANIFEST_PER_CHUNK * (uint64_t)a->nchunks + MC_MANIFEST_EXTRA_MAX)
				return MC_WIRE_EFIELD;
		} else if (a->nchunks != mc_chunk_count(a->payload_size, a->chunk_size) ||
			   a->manifest_len < 16ULL * a->nchunks ||
			   a->manifest_len > MC_MANIFEST_PER_CHUNK * (uint64_t)a->nchunks + MC_MANIFEST_EXTRA_MAX) {
			return MC_WIRE_EFIELD;
		}
		return 0;
	}
	case MC_PKT_MANIFEST:
		if (len < 24)
			return MC_WIRE_ESHORT;
		p->u.man.total = mc_get32(b + 12);
		p->u.man.offset = mc_get32(b + 16);
		p->u.man.len = mc_get16(b + 20);
		p->u.man.bytes = b + 24;
		if (24u + p->u.man.len != len || p->u.man.len == 0 ||
		    p->u.man.total > MC_MANIFEST_MAX ||
		    (uint64_t)p->u.man.offset + p->u.man.len > p->u.man.total)
			return MC_WIRE_EFIELD;
		return 0;
	case MC_PKT_DATA: {
		struct mc_data *d = &p->u.data;
		if (len <= MC_WIRE_DATA_HDR)
			return MC_WIRE_ESHORT;
		d->esi = b[5];
		p->flags = 0;
		d->block = mc_get32(b + 12);
		d->sym = b + MC_WIRE_DATA_HDR;
		d->sym_len = (uint16_t)(len - MC_WIRE_DATA_HDR);
		if (len - MC_WIRE_DATA_HDR > 65535 || d->esi >= MC_RS_MAX)
			return MC_WIRE_EFIELD;
		return 0;
	}
	case MC_PKT_END:
		if (len != 29)
			return MC_WIRE_ESHORT;
		memcpy(p->u.end.id, b + 12, MC_ID_LEN);
		p->u.end.reason = b[28];
		return 0;
	case MC_PKT_CTRL: {
		if (len < 14)
			return MC_WIRE_ESHORT;
		unsigned n = mc_get16(b + 12);
		if (n > MC_WIRE_CTRL_MAX || len != 14u + 12u * n)
			return MC_WIRE_EFIELD;
		p->u.ctrl.n = (uint16_t)n;
		for (unsigned i = 0; i < n; i++) {
			p->u.ctrl.e[i].rid = mc_get64(b + 14 + 12 * i);
			p->u.ctrl.e[i].code = b[14 + 12 * i + 8];
		}
		return 0;
	}
	case MC_PKT_HELLO: {
		struct mc_hello *h = &p->u.hello;
		if (len < 46)
			return MC_WIRE_ESHORT;
		h->rid = mc_get64(b + 12);
		memcpy(h->want_id, b + 20, MC_ID_LEN);
		h->have = mc_get32(b + 36);
		h->total = mc_get32(b + 40);
		h->want_nhex = b[44];
		if (h->want_nhex > 2 * MC_ID_LEN)
			return MC_WIRE_EFIELD;
		if ((k = get_name(b + 45, len - 45, h->name)) < 0)
			return MC_WIRE_EFIELD;
		/*
		 * Optional fields follow the name: a host name (a length byte
		 * and that many bytes, cut to MC_HOST_MAX and made printable),
		 * then whatever a later version adds, which is skipped.
		 */
		h->host[0] = '\0';
		size_t at = 45u + (size_t)k;
		if (at < len) {
			if (at + 1 + b[at] > len)
				return MC_WIRE_EFIELD;
			mc_wire_host((const char *)b + at + 1, b[at], h->host);
		}
		return 0;
	}
	case MC_PKT_NACK: {
		if (len < 28)
			return MC_WIRE_ESHORT;
		unsigned n = mc_get16(b + 24);
		if (n > MC_WIRE_NACK_MAX || len != 28u + 8u * n)
			return MC_WIRE_EFIELD;
		p->u.nack.rid = mc_get64(b + 12);
		p->u.nack.pass = mc_get32(b + 20);
		p->u.nack.n = (uint16_t)n;
		p->u.nack.overruns = mc_get16(b + 26);
		for (unsigned i = 0; i < n; i++) {
			const uint8_t *e = b + 28 + 8 * i;
			p->u.nack.e[i].block = mc_get32(e);
			p->u.nack.e[i].run = mc_get16(e + 4);
			p->u.nack.e[i].need = mc_get16(e + 6);
		}
		return 0;
	}
	case MC_PKT_DONE:
	case MC_PKT_BYE:
		if (len != 36)
			return MC_WIRE_ESHORT;
		p->u.done.rid = mc_get64(b + 12);
		memcpy(p->u.done.id, b + 20, MC_ID_LEN);
		return 0;
	default:
		return MC_WIRE_ETYPE;
	}
}

const char *mc_wire_type_name(unsigned type)
{
	switch (type) {
	case MC_PKT_ANNOUNCE: return "announce";
	case MC_PKT_MANIFEST: return "manifest";
	case MC_PKT_DATA: return "data";
	case MC_PKT_END: return "end";
	case MC_PKT_CTRL: return "ctrl";
	case MC_PKT_HELLO: return "hello";
	case MC_PKT_NACK: return "nack";
	case MC_PKT_DONE: return "done";
	case MC_PKT_BYE: return "bye";
	default: return "unknown";
	}
}

uint16_t mc_wire_sym_for_mtu(unsigned mtu, int ipv6)
{
	unsigned over = mc_wire_ip_udp(ipv6) + MC_WIRE_DATA_HDR;
	unsigned s;

	if (mtu < over + 64)
		return 0;
	/* Multiples of 16 keep symbols aligned for the SIMD coder; no more, every byte counts on the wire. */
	s = (mtu - over) / 16 * 16;
	return (uint16_t)(s > 65472 - MC_WIRE_DATA_HDR ? 65472 - MC_WIRE_DATA_HDR : s);
}
