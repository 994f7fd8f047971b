/* Unit tests of the wire codec: round trips of every packet type and refusal of malformed datagrams. */
#include <string.h>

#include "net.h"
#include "tap.h"
#include "wire.h"

static int roundtrip(const struct mc_pkt *in, struct mc_pkt *out, size_t *len)
{
	static uint8_t buf[70000];

	memset(out, 0, sizeof *out);
	*len = mc_wire_encode(in, buf, sizeof buf);
	return *len > 0 && mc_wire_decode(buf, *len, out) == 0 && out->type == in->type && out->session == in->session;
}

int main(void)
{
	struct mc_pkt p, q;
	uint8_t buf[2048], sym[1408];
	size_t len;

	memset(&p, 0, sizeof p);
	p.type = MC_PKT_ANNOUNCE;
	p.session = 0xdeadbeef;
	p.flags = MC_FLAG_IDLE;
	for (int i = 0; i < MC_ID_LEN; i++)
		p.u.ann.id[i] = (uint8_t)i;
	p.u.ann.payload_size = 3 * 1048576 + 5;
	p.u.ann.chunk_size = 1048576;
	p.u.ann.nchunks = 4;
	p.u.ann.manifest_len = 4 * 16 + 60;
	p.u.ann.symbol_size = 1408;
	p.u.ann.kmax = 128;
	p.u.ann.pass = 7;
	p.u.ann.cursor = 12;
	p.u.ann.rate = 800000000;
	strcpy(p.u.ann.name, "win11");
	ok(roundtrip(&p, &q, &len), "announce round trip (%zu bytes)", len);
	ok(memcmp(&p.u.ann, &q.u.ann, sizeof p.u.ann) == 0 && q.flags == MC_FLAG_IDLE, "announce fields equal");
	p.u.ann.nchunks = 5;
	ok(!roundtrip(&p, &q, &len), "announce whose chunk count does not match its sizes is refused");
	p.u.ann.nchunks = 4;
	p.u.ann.payload_size = UINT64_MAX;
	ok(!roundtrip(&p, &q, &len), "announce with an overflowing payload size is refused");
	p.u.ann.payload_size = 3 * 1048576 + 5;
	p.u.ann.kmax = 255;
	ok(!roundtrip(&p, &q, &len), "announce with 255 source symbols per block is refused");
	p.u.ann.kmax = 128;
	/* Encrypted: a digest and a tag per chunk, and a sealed box for each of many recipients. */
	p.u.ann.manifest_len = 4 * 32 + 1024 * 88 + 600;
	ok(roundtrip(&p, &q, &len), "announce of an encrypted package for 1024 recipients");
	p.u.ann.manifest_len = 4 * MC_MANIFEST_PER_CHUNK + MC_MANIFEST_EXTRA_MAX + 1;
	ok(!roundtrip(&p, &q, &len), "announce with a manifest too long for its chunks is refused");
	p.u.ann.manifest_len = 4 * 16 + 60;
	{
		/* A v1 announcement is byte for byte what it was: the image flag is the only difference. */
		uint8_t v1[2048], v2[2048];
		size_t n1 = mc_wire_encode(&p, v1, sizeof v1);
		p.flags = MC_FLAG_IDLE | MC_FLAG_IMAGE;
		size_t n2 = mc_wire_encode(&p, v2, sizeof v2);
		ok(n1 == n2 && v1[5] == MC_FLAG_IDLE && v2[5] == (MC_FLAG_IDLE | MC_FLAG_IMAGE) &&
		   memcmp(v1, v2, 5) == 0 && memcmp(v1 + 6, v2 + 6, n1 - 6) == 0,
		   "the image flag is one bit of the header's flags, nothing else changes");
	}
	/* An image of 10 spans of 1 MiB with 3 MiB stored (holes, compression): the counts need not match. */
	p.flags = MC_FLAG_IMAGE;
	p.u.ann.nchunks = 10;
	p.u.ann.payload_size = 3 * 1048576;
	p.u.ann.manifest_len = 10 * 37 + 100;
	ok(roundtrip(&p, &q, &len) && q.flags == MC_FLAG_IMAGE && q.u.ann.nchunks == 10 && q.u.ann.image,
	   "image announce: 10 chunks holding 3 MiB");
	p.flags = 0;
	p.u.ann.image = 1;
	ok(roundtrip(&p, &q, &len) && q.flags == MC_FLAG_IMAGE && q.u.ann.image, "the image field sets the flag");
	p.u.ann.image = 0;
	p.flags = 0;
	ok(!roundtrip(&p, &q, &len), "the same counts without the image flag are refused");
	p.flags = MC_FLAG_IMAGE;
	p.u.ann.payload_size = 10 * 1048576 + 1;
	ok(!roundtrip(&p, &q, &len), "image announce storing more than its spans is refused");
	p.u.ann.payload_size = 3 * 1048576;
	p.u.ann.manifest_len = 10 * 16;
	ok(!roundtrip(&p, &q, &len), "image announce with a manifest too short for two digests per chunk is refused");
	p.u.ann.manifest_len = 10 * MC_IMAGE_MANIFEST_PER_CHUNK + MC_MANIFEST_EXTRA_MAX + 1;
	ok(!roundtrip(&p, &q, &len), "image announce with a manifest too long for its chunks is refused");

	memset(&p, 0, sizeof p);
	memset(sym, 0xab, sizeof sym);
	p.type = MC_PKT_DATA;
	p.session = 9;
	p.pass = 3;
	p.u.data = (struct mc_data){.block = 70001, .esi = 130, .sym = sym, .sym_len = 1408};
	ok(roundtrip(&p, &q, &len) && len == MC_WIRE_DATA_HDR + 1408, "data round trip");
	ok(q.pass == 3 && q.u.data.block == 70001 && q.u.data.esi == 130 && q.flags == 0 &&
	   memcmp(q.u.data.sym, sym, 1408) == 0, "data fields equal");
	p.u.data.esi = 255; /* GF(2^8) has 255 coded symbols per block: ESI 255 cannot exist */
	ok(!roundtrip(&p, &q, &len), "data with ESI 255 is refused");

	memset(&p, 0, sizeof p);
	p.type = MC_PKT_NACK;
	p.session = 9;
	p.u.nack.rid = 0x1122334455667788ULL;
	p.u.nack.n = MC_WIRE_NACK_MAX;
	for (unsigned i = 0; i < p.u.nack.n; i++)
		p.u.nack.e[i] = (struct mc_nack_entry){i * 3, 2, (uint16_t)(i % 7 ? i : MC_NEED_ALL)};
	ok(roundtrip(&p, &q, &len) && len <= MC_WIRE_FEEDBACK_MAX, "full NACK round trip fits %d bytes (%zu)", MC_WIRE_FEEDBACK_MAX, len);
	ok(q.u.nack.n == p.u.nack.n && memcmp(q.u.nack.e, p.u.nack.e, p.u.nack.n * sizeof p.u.nack.e[0]) == 0, "NACK entries equal");

	memset(&p, 0, sizeof p);
	p.type = MC_PKT_HELLO;
	p.u.hello.rid = 42;
	p.u.hello.have = 3;
	p.u.hello.total = 9;
	strcpy(p.u.hello.name, "debian");
	ok(roundtrip(&p, &q, &len) && q.u.hello.rid == 42 && strcmp(q.u.hello.name, "debian") == 0 && q.u.hello.total == 9, "hello round trip");
	ok(len == 45 + 7 && q.u.hello.host[0] == '\0', "a hello without a host name is the older form, and decodes with none (%zu bytes)", len);
	strcpy(p.u.hello.host, "lab-pc-07.example");
	ok(roundtrip(&p, &q, &len) && strcmp(q.u.hello.host, "lab-pc-07.example") == 0 && strcmp(q.u.hello.name, "debian") == 0,
	   "hello host name round trip");
	ok(len == 45 + 7 + 1 + 17, "the host name is a trailing field after the package name (%zu bytes)", len);
	{
		/* A later version's fields after the host name are skipped. */
		uint8_t hb[512];
		size_t hl = mc_wire_encode(&p, hb, sizeof hb);
		memcpy(hb + hl, "\x05later", 6);
		ok(mc_wire_decode(hb, hl + 6, &q) == 0 && strcmp(q.u.hello.host, "lab-pc-07.example") == 0,
		   "bytes after the host name (a later field) are skipped");
		/* A host length that runs past the datagram is refused. */
		hb[45 + 7] = 200;
		ok(mc_wire_decode(hb, hl, &q) == MC_WIRE_EFIELD, "a host name longer than the datagram is refused");
		/* Hostile: 255 bytes of binary, control characters and escapes. */
		hb[45 + 7] = 255;
		for (int i = 0; i < 255; i++)
			hb[45 + 8 + i] = (uint8_t)(i % 3 == 0 ? '\033' : i % 3 == 1 ? '\n' : 0x80 + i % 100);
		hb[45 + 8] = 'x';
		ok(mc_wire_decode(hb, 45 + 8 + 255, &q) == 0, "a hello with a 255-byte binary host name is taken");
		size_t n = strlen(q.u.hello.host);
		int clean = 1;
		for (size_t i = 0; i < n; i++)
			clean &= q.u.hello.host[i] > 0x20 && q.u.hello.host[i] < 0x7f;
		ok(n == MC_HOST_MAX && clean && q.u.hello.host[0] == 'x' && q.u.hello.host[1] == '?',
		   "its host name is cut to %d bytes, every byte outside 0x21-0x7e made '?'", MC_HOST_MAX);
		/* The encoder cleans too: a receiver never sends what it could not say. */
		memset(p.u.hello.host, 0, sizeof p.u.hello.host);
		strcpy(p.u.hello.host, "a b\tc");
		ok(roundtrip(&p, &q, &len) && strcmp(q.u.hello.host, "a?b?c") == 0, "space and tab in a host name sent as '?'");
		char out[MC_HOST_MAX + 1];
		mc_wire_host("\0x", 2, out);
		ok(strcmp(out, "?x") == 0, "mc_wire_host: a NUL inside is '?', not the end");
	}

	memset(&p, 0, sizeof p);
	p.type = MC_PKT_CTRL;
	p.u.ctrl.n = 2;
	p.u.ctrl.e[0] = (struct mc_ctrl_entry){7, MC_CTRL_WELCOME};
	p.u.ctrl.e[1] = (struct mc_ctrl_entry){8, MC_CTRL_LEAVE};
	ok(roundtrip(&p, &q, &len) && q.u.ctrl.n == 2 && q.u.ctrl.e[1].rid == 8 && q.u.ctrl.e[1].code == MC_CTRL_LEAVE, "ctrl round trip");

	memset(&p, 0, sizeof p);
	p.type = MC_PKT_END;
	p.u.end.reason = MC_END_MAX_TIME;
	ok(roundtrip(&p, &q, &len) && q.u.end.reason == MC_END_MAX_TIME, "end round trip");

	/* Malformed input of every kind is refused, never read past. */
	len = mc_wire_encode(&p, buf, sizeof buf);
	ok(mc_wire_decode(buf, 5, &q) == MC_WIRE_EMAGIC, "truncated header refused");
	ok(mc_wire_decode(buf, len - 1, &q) == MC_WIRE_ESHORT, "truncated end refused");
	buf[3] = MC_WIRE_VERSION + 1;
	ok(mc_wire_decode(buf, len, &q) == MC_WIRE_EVERSION, "other protocol version refused");
	buf[3] = MC_WIRE_VERSION;
	buf[4] = 99;
	ok(mc_wire_decode(buf, len, &q) == MC_WIRE_ETYPE, "unknown type refused");
	buf[0] = 'X';
	ok(mc_wire_decode(buf, len, &q) == MC_WIRE_EMAGIC, "bad magic refused");
	memset(&p, 0, sizeof p);
	p.type = MC_PKT_NACK;
	p.u.nack.n = 3;
	len = mc_wire_encode(&p, buf, sizeof buf);
	buf[25] = 200; /* claims 200 entries in a datagram that holds 3 */
	ok(mc_wire_decode(buf, len, &q) == MC_WIRE_EFIELD, "NACK whose count lies is refused");

	/* The receiver id's hardware addresses: "xx:xx:..|" each, cut to the buffer. */
	char hw[512], small[8];
	size_t hn = mc_net_hwaddrs(hw, sizeof hw);
	int wellformed = hn == strlen(hw) && (hn == 0 || hw[hn - 1] == '|');
	for (char *e = hw, *bar; wellformed && (bar = strchr(e, '|')) != NULL; e = bar + 1) {
		*bar = '\0';
		wellformed = strspn(e, "0123456789abcdef:") == strlen(e) && strlen(e) % 3 == 2;
		*bar = '|';
	}
	ok(wellformed, "hardware addresses well formed (%zu bytes)", hn);
	ok(mc_net_hwaddrs(small, sizeof small) <= sizeof small - 1 && strlen(small) < sizeof small, "cut to the buffer");
	return tap_done();
}
