/* Unit tests of the pure parts of repair: range planning, back-off, missing lists, multipart and Content-Range parsing. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include "repair.h"
#include "tap.h"

struct collect {
	uint8_t buf[4096];
	uint64_t base;
	size_t calls;
	uint64_t offs[16], lens[16];
	size_t nparts;
};

/* Copies bytes to buf[off - base] and records each contiguous piece. */
static int collect_sink(void *ctx, unsigned slot, uint64_t off, const uint8_t *p, size_t n)
{
	struct collect *c = ctx;

	(void)slot;
	if (off < c->base || off - c->base + n > sizeof c->buf)
		return -1;
	memcpy(c->buf + (off - c->base), p, n);
	if (c->nparts > 0 && c->offs[c->nparts - 1] + c->lens[c->nparts - 1] == off) {
		c->lens[c->nparts - 1] += n;
	} else if (c->nparts < 16) {
		c->offs[c->nparts] = off;
		c->lens[c->nparts++] = n;
	}
	c->calls++;
	return 0;
}

static int stop_sink(void *ctx, unsigned slot, uint64_t off, const uint8_t *p, size_t n)
{
	(void)ctx; (void)slot; (void)off; (void)p; (void)n;
	return -1;
}

static void test_ranges(void)
{
	struct mc_manifest m;
	struct mc_range r[16];
	uint8_t want[2] = {0};
	size_t n;

	memset(&m, 0, sizeof m);
	m.chunk_size = 65536;
	m.nchunks = 10;
	m.payload_size = 9ull * 65536 + 100; /* last chunk 100 bytes */
	m.raw_len = 200;                       /* payload at 4096 */
	want[0] = 0x0e;                        /* 1, 2, 3 */
	want[1] = 0x02 | 0x01;                 /* 8, 9 */
	n = mc_repair_ranges(&m, want, NULL, 0, 1ull << 30, r);
	ok(n == 2, "adjacent chunks merge: %zu ranges", n);
	ok(r[0].off == 4096 + 65536 && r[0].len == 3 * 65536, "first range covers chunks 1-3");
	ok(r[1].off == 4096 + 8ull * 65536 && r[1].len == 65536 + 100, "last range ends at the short chunk");
	n = mc_repair_ranges(&m, want, NULL, 0, 2 * 65536, r);
	ok(n == 3 && r[0].len == 2 * 65536 && r[1].len == 65536, "max_len cuts on chunk boundaries (%zu)", n);
	n = mc_repair_ranges(&m, want, NULL, 0, 1, r);
	ok(n == 5, "max_len below a chunk still gives whole chunks (%zu)", n);
	memset(want, 0, sizeof want);
	ok(mc_repair_ranges(&m, want, NULL, 0, 1ull << 30, r) == 0, "nothing wanted, no range");

	/* Chunk 2 partly there: only its gaps; gaps closer than MC_REPAIR_GAP join. */
	const struct mc_span sp[] = {
		{2, 0, 1000},                       /* gap 1000-2000 */
		{2, 2000, 30000},                   /* gap 32000-32100: joins the next, 100 bytes apart */
		{2, 32100, 100},                    /* gap 32200-40000 */
		{2, 40000, 25536},                  /* to the chunk's end: no tail gap */
		{5, 0, 65536},                      /* not wanted: ignored */
	};
	want[0] = 0x0e;                        /* 1, 2, 3 */
	n = mc_repair_ranges(&m, want, sp, 5, 1ull << 30, r);
	ok(n == 4, "partial chunk: its gaps only (%zu ranges)", n);
	ok(r[0].off == 4096 + 65536 && r[0].len == 65536, "whole chunk 1 alone");
	ok(r[1].off == 4096 + 2 * 65536 + 1000 && r[1].len == 1000, "first gap of chunk 2");
	ok(r[2].off == 4096 + 2 * 65536 + 32000 && r[2].len == 8000, "near gaps joined (%llu)", (unsigned long long)r[2].len);
	ok(r[3].off == 4096 + 3 * 65536 && r[3].len == 65536, "chunk 3 whole after it");
	const struct mc_span tail[] = {{1, 100, 5000}};
	want[0] = 0x02;
	n = mc_repair_ranges(&m, want, tail, 1, 1ull << 30, r);
	ok(n == 2 && r[0].len == 100 && r[1].off == 4096 + 65536 + 5100 && r[1].len == 65536 - 5100,
	   "gaps before and after a span (%zu)", n);
	const struct mc_span near[] = {{1, 100, 200}};
	n = mc_repair_ranges(&m, want, near, 1, 1ull << 30, r);
	ok(n == 1 && r[0].len == 65536, "a short span is fetched again rather than cut around (%zu)", n);
}

static void test_backoff(void)
{
	uint64_t d;

	d = mc_repair_backoff_ms(0, 250, 30000, 0, 0);
	ok(d == 125, "attempt 0, low jitter: half the base (%llu)", (unsigned long long)d);
	d = mc_repair_backoff_ms(0, 250, 30000, 0, UINT32_MAX);
	ok(d >= 249 && d <= 250, "attempt 0, high jitter: the base (%llu)", (unsigned long long)d);
	d = mc_repair_backoff_ms(3, 250, 30000, 0, UINT32_MAX);
	ok(d >= 1999 && d <= 2000, "doubles per attempt (%llu)", (unsigned long long)d);
	d = mc_repair_backoff_ms(40, 250, 30000, 0, UINT32_MAX);
	ok(d <= 30000 && d >= 29000, "capped (%llu)", (unsigned long long)d);
	d = mc_repair_backoff_ms(0, 250, 30000, 5000, 0);
	ok(d == 5000, "Retry-After is a floor (%llu)", (unsigned long long)d);
}

static void test_missing_list(void)
{
	struct mc_state st;
	uint8_t id[MC_ID_LEN] = {0};
	char buf[64], tiny[12];

	mc_state_init(&st, id, 12);
	for (uint32_t i = 0; i < 12; i++)
		mc_state_set(&st, i);
	ok(strcmp(mc_repair_list_missing(&st, buf, sizeof buf), "") == 0, "complete: empty list");
	mc_state_clear(&st, 0);
	mc_state_clear(&st, 3);
	mc_state_clear(&st, 4);
	mc_state_clear(&st, 5);
	mc_state_clear(&st, 11);
	mc_repair_list_missing(&st, buf, sizeof buf);
	ok(strcmp(buf, "0,3-5,11") == 0, "ranges listed: %s", buf);
	mc_repair_list_missing(&st, tiny, sizeof tiny);
	ok(strlen(tiny) < sizeof tiny && strstr(tiny, "...") != NULL, "cut with ... when too long: %s", tiny);
	mc_state_free(&st);
}

static void test_content_range(void)
{
	uint64_t off, len, total;

	ok(mc_content_range_parse(" bytes 10-19/100\r\n", &off, &len, &total) == 0 && off == 10 && len == 10 &&
	   total == 100, "Content-Range parsed");
	ok(mc_content_range_parse("bytes 0-0/*", &off, &len, &total) == 0 && len == 1 && total == UINT64_MAX,
	   "unknown total");
	ok(mc_content_range_parse("bytes 20-10/100", &off, &len, &total) < 0, "end before start refused");
	ok(mc_content_range_parse("bytes 10-199/100", &off, &len, &total) < 0, "past the total refused");
	ok(mc_content_range_parse("bytes */100", &off, &len, &total) < 0, "unsatisfied form refused");
	ok(mc_content_range_parse("items 1-2/3", &off, &len, &total) < 0, "other units refused");
	ok(mc_content_range_parse("bytes 1-2/3x", &off, &len, &total) < 0, "trailing junk refused");
	/* sscanf's %llu read "-1" as 2^64-1: the range wrapped past the end of the byte space. */
	ok(mc_content_range_parse("bytes 5--1/*", &off, &len, &total) < 0, "signed end refused");
	ok(mc_content_range_parse("bytes 5-+9/10", &off, &len, &total) < 0, "sign refused");
	ok(mc_content_range_parse("bytes 5- 9/10", &off, &len, &total) < 0, "space inside refused");
	ok(mc_content_range_parse("bytes 0-18446744073709551615/*", &off, &len, &total) < 0, "end 2^64-1 refused");
	ok(mc_content_range_parse("bytes 0-99999999999999999999/*", &off, &len, &total) < 0, "overflowing number refused");
}

static const char body[] =
	"\r\n--XYZ\r\n"
	"Content-Type: application/octet-stream\r\n"
	"Content-Range: bytes 100-104/1000\r\n"
	"\r\n"
	"HELLO\r\n"
	"--XYZ\r\n"
	"content-range: bytes 200-209/1000\r\n"
	"\r\n"
	"0123\r\n5678\r\n"
	"--XYZ--\r\n";

static void test_multipart(void)
{
	struct mc_multipart mp;
	struct collect c;
	int rc = 0;

	ok(mc_multipart_init(&mp, "text/plain") < 0, "not multipart refused");
	ok(mc_multipart_init(&mp, "multipart/byteranges") < 0, "no boundary refused");
	ok(mc_multipart_init(&mp, "multipart/byteranges; boundary=\"XYZ\"") == 0 && strcmp(mp.boundary, "--XYZ") == 0,
	   "quoted boundary");

	/* Whole body at once. */
	memset(&c, 0, sizeof c);
	c.base = 0;
	mc_multipart_init(&mp, "multipart/byteranges; boundary=XYZ");
	rc = mc_multipart_feed(&mp, (const uint8_t *)body, sizeof body - 1, collect_sink, &c, 0);
	ok(rc == 0 && mp.state == 3, "parsed to the end (rc %d state %d)", rc, mp.state);
	ok(c.nparts == 2 && c.offs[0] == 100 && c.lens[0] == 5 && c.offs[1] == 200 && c.lens[1] == 10,
	   "two parts at their offsets");
	ok(memcmp(c.buf + 100, "HELLO", 5) == 0 && memcmp(c.buf + 200, "0123\r\n5678", 10) == 0,
	   "data exact, CR LF inside data kept");

	/* One byte at a time: every split point. */
	memset(&c, 0, sizeof c);
	mc_multipart_init(&mp, "multipart/byteranges; boundary=XYZ");
	for (size_t i = 0; i < sizeof body - 1 && rc == 0; i++)
		rc = mc_multipart_feed(&mp, (const uint8_t *)body + i, 1, collect_sink, &c, 0);
	ok(rc == 0 && mp.state == 3 && memcmp(c.buf + 100, "HELLO", 5) == 0 &&
	   memcmp(c.buf + 200, "0123\r\n5678", 10) == 0, "byte by byte gives the same");

	/* A part without Content-Range is malformed. */
	static const char noRange[] = "--XYZ\r\nContent-Type: x\r\n\r\nabc\r\n--XYZ--\r\n";
	mc_multipart_init(&mp, "multipart/byteranges; boundary=XYZ");
	ok(mc_multipart_feed(&mp, (const uint8_t *)noRange, sizeof noRange - 1, collect_sink, &c, 0) == -1,
	   "part without Content-Range refused");

	/* The sink can stop the parse. */
	mc_multipart_init(&mp, "multipart/byteranges; boundary=XYZ");
	ok(mc_multipart_feed(&mp, (const uint8_t *)body, sizeof body - 1, stop_sink, NULL, 0) == -2,
	   "sink stop reported");

	/* Very long junk lines before the first boundary are skipped. */
	char big[1200];
	memset(big, 'a', sizeof big);
	memset(&c, 0, sizeof c);
	mc_multipart_init(&mp, "multipart/byteranges; boundary=XYZ");
	rc = mc_multipart_feed(&mp, (const uint8_t *)big, sizeof big, collect_sink, &c, 0);
	rc |= mc_multipart_feed(&mp, (const uint8_t *)body, sizeof body - 1, collect_sink, &c, 0);
	ok(rc == 0 && c.nparts == 2, "long preamble line skipped");
}

/* A local error comes back as its code (lib/exitcode.h), the reason naming the file. */
static void test_local_error(void)
{
	char dir[] = "/tmp/mcast-test-repair.XXXXXX", pkg[300], err[512] = "";
	struct mc_repair_result res;

	if (mkdtemp(dir) == NULL) {
		ok(0, "temporary directory");
		return;
	}
	snprintf(pkg, sizeof pkg, "%s/no/such/dir/p.mcpkg", dir);
	struct mc_repair_opts o = {.pkg = pkg};
	errno = 0;
	int rc = mc_repair_run(&o, &res, err, sizeof err);
	ok(rc == -ENOENT && strstr(err, "p.mcpkg.part") != NULL,
	   "PKG.part in a directory that is not there: -ENOENT (%d), naming it: %s", rc, err);
	mc_repair_result_free(&res);
	rmdir(dir);
}

int main(void)
{
	test_ranges();
	test_backoff();
	test_missing_list();
	test_content_range();
	test_multipart();
	test_local_error();
	return tap_done();
}
