/* Unit tests of lib/pkg.c: digests, ids, manifest and header codecs, and their rejection of lies. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exitcode.h"
#include "pkg.h"
#include "tap.h"

/*
 * The next allocation of exactly fail_size bytes fails, once: how lib says
 * no memory is tested on the real paths. Plain builds only: ASan brings its
 * own malloc, and glibc's __libc_malloc is what ours stands in front of.
 */
#ifndef __SANITIZE_ADDRESS__
#define FAIL_MALLOC 1
extern void *__libc_malloc(size_t n);
static size_t fail_size;
void *malloc(size_t n)
{
	if (fail_size && n == fail_size) {
		fail_size = 0;
		errno = ENOMEM;
		return NULL;
	}
	return __libc_malloc(n);
}
#endif

static void fill(struct mc_manifest *m, uint64_t payload, uint32_t chunk)
{
	memset(m, 0, sizeof *m);
	strcpy(m->name, "win11");
	strcpy(m->version, "2026.11");
	m->ctime = 1700000000;
	m->compression = MC_COMP_ZSTD;
	m->kind = MC_KIND_TAR;
	m->chunk_size = chunk;
	m->payload_size = payload;
	m->nchunks = (uint32_t)((payload + chunk - 1) / chunk);
	memset(m->payload_digest, 0xab, MC_DIGEST_LEN);
}

/* verify callbacks: the bad chunks in the order reported, and the last progress. */
struct vseen {
	uint32_t bad[16];
	unsigned nbad;
	uint64_t done;
};

static void seen_bad(void *arg, uint32_t i)
{
	struct vseen *s = arg;
	if (s->nbad < 16)
		s->bad[s->nbad] = i;
	s->nbad++;
}

static void seen_progress(void *arg, uint64_t done)
{
	((struct vseen *)arg)->done = done;
}

/*
 * mc_pkg_create from a raw image on stdin (written in pieces that do not
 * line up with the chunks), then mc_pkg_verify on it: intact, two damaged
 * chunks, a file cut inside a chunk.
 */
static void create_and_verify(uint32_t chunk, const char *what)
{
	char dir[] = "/tmp/mcast-test-create.XXXXXX", in[64], out[80], err[512] = "";
	const uint64_t size = (chunk < (1u << 20) ? 3 * (1u << 20) : 2 * (uint64_t)chunk) + 12345; /* 3 chunks or more */
	uint8_t *pl = malloc(size), id[MC_ID_LEN], d[MC_DIGEST_LEN];
	const char *paths[] = {"-"};
	struct mc_pkg pk;
	struct vseen seen;
	struct mc_pkg_verify_cb cb = {seen_bad, seen_progress, &seen};
	int okv = 0, fd, saved = dup(STDIN_FILENO);
	uint64_t x = 88172645463325252ull;

	ok(mkdtemp(dir) != NULL && pl != NULL, "%s: scratch", what);
	for (uint64_t i = 0; i < size; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		pl[i] = (uint8_t)x;
	}
	snprintf(in, sizeof in, "%s/in", dir);
	snprintf(out, sizeof out, "%s/out.mcpkg", dir);
	fd = open(in, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ok(fd >= 0 && write(fd, pl, size) == (ssize_t)size && lseek(fd, 0, SEEK_SET) == 0 &&
		   dup2(fd, STDIN_FILENO) == STDIN_FILENO, "%s: input on stdin", what);
	close(fd);
	struct mc_pkg_create_opts o = {.output = out, .name = "img", .compression = MC_COMP_NONE, .level = -1,
				       .chunk_size = chunk, .mtime = 1700000000, .paths = paths, .npaths = 1};
	ok(mc_pkg_create(&o, id, err, sizeof err) == 0, "%s: create: %s", what, err);
	dup2(saved, STDIN_FILENO);
	close(saved);
	ok(mc_pkg_open(out, &pk, err, sizeof err) == 0, "%s: opens: %s", what, err);
	uint32_t n = (uint32_t)((size + chunk - 1) / chunk), same = 0;
	for (uint32_t i = 0; i < n && pk.m.nchunks == n; i++) {
		uint64_t off = (uint64_t)i * chunk, len = size - off < chunk ? size - off : chunk;
		mc_digest(pl + off, len, d);
		same += memcmp(d, pk.m.digests + (size_t)i * MC_DIGEST_LEN, MC_DIGEST_LEN) == 0;
	}
	mc_digest(pl, size, d);
	ok(pk.m.payload_size == size && pk.m.nchunks == n && same == n &&
		   memcmp(d, pk.m.payload_digest, MC_DIGEST_LEN) == 0,
	   "%s: %u chunk digests and the payload digest are those of the input", what, n);
	memset(&seen, 0, sizeof seen);
	ok(mc_pkg_verify(&pk, &cb, NULL, &okv, err, sizeof err) == 0 && okv && seen.nbad == 0 && seen.done == size,
	   "%s: verify: intact", what);
	mc_pkg_close(&pk);

	/* Damage the last byte of chunk 1 and the first of the last chunk. */
	fd = open(out, O_RDWR);
	ok(fd >= 0 && pwrite(fd, "\xff", 1, 4096 + 2 * (uint64_t)chunk - 1) == 1 &&
		   pwrite(fd, "\xff", 1, 4096 + (uint64_t)(n - 1) * chunk) == 1, "%s: damaged", what);
	ok(mc_pkg_open(out, &pk, err, sizeof err) == 0, "%s: damaged opens", what);
	memset(&seen, 0, sizeof seen);
	long bad = mc_pkg_verify(&pk, &cb, NULL, &okv, err, sizeof err);
	ok(bad == 2 && seen.nbad == 2 && seen.bad[0] == 1 && seen.bad[1] == n - 1 && !okv && seen.done == size,
	   "%s: verify names chunks 1 and %u in order (%ld bad)", what, n - 1, bad);
	/* Damage comes back as the return code (lib/exitcode.h), not through errno. */
	int null = open("/dev/null", O_WRONLY);
	int xrc = mc_pkg_extract_fd(&pk, null, err, sizeof err);
	ok(xrc == -EBADMSG && strstr(err, "chunk 1 "), "%s: extract -O of a damaged package: -EBADMSG: %s", what, err);
	close(null);
	mc_pkg_close(&pk);

	/* Cut the file inside chunk 1: chunks 1.. are missing. */
	ok(fd >= 0 && ftruncate(fd, 4096 + (uint64_t)chunk + 100) == 0, "%s: truncated", what);
	ok(mc_pkg_open_flags(out, MC_PKG_OPEN_PARTIAL, &pk, err, sizeof err) == 0, "%s: partial opens: %s", what, err);
	memset(&seen, 0, sizeof seen);
	bad = mc_pkg_verify(&pk, &cb, NULL, &okv, err, sizeof err);
	ok(bad == n - 1 && seen.nbad == n - 1 && seen.bad[0] == 1 && !okv, "%s: truncated: %ld of %u chunks missing",
	   what, bad, n);
	mc_pkg_close(&pk);
	close(fd);
	unlink(out);
	unlink(in);
	rmdir(dir);
	free(pl);
}

/* A hostile copy of a format-2 manifest: f edits it; parse must refuse it, naming why. */
static void image_lie(const struct mc_manifest *m, void (*f)(uint8_t *b), const char *want, const char *what)
{
	uint8_t *b = malloc(m->raw_len);
	struct mc_manifest p;
	char err[256] = "";

	memcpy(b, m->raw, m->raw_len);
	f(b);
	int rc = mc_manifest_parse(b, m->raw_len, &p, err, sizeof err);
	ok(rc < 0 && (want == NULL || strstr(err, want)), "image manifest: %s refused: %s", what, err);
	if (rc == 0)
		mc_manifest_free(&p);
	free(b);
}

/* Offsets in the test image manifest below (name "win11", version "2026.11", 6 chunks). */
#define IM_COMP 30
#define IM_KIND 31
#define IM_NCHUNKS 44
#define IM_IMAGE 64
#define IM_LENS 72
#define IM_FLAGS 96
#define IM_DIG 102
#define IM_SPAN 198
static void put32(uint8_t *b, uint32_t v) { b[0] = (uint8_t)(v >> 24); b[1] = (uint8_t)(v >> 16); b[2] = (uint8_t)(v >> 8); b[3] = (uint8_t)v; }
static uint32_t get32(const uint8_t *b) { return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]; }
static void lie_sum(uint8_t *b) { put32(b + IM_LENS, get32(b + IM_LENS) + 1); }
static void lie_hole_bytes(uint8_t *b) { put32(b + IM_LENS + 4, 1); put32(b + IM_LENS, 999); }
static void lie_flag(uint8_t *b) { b[IM_FLAGS] |= 8; }
static void lie_raw_len(uint8_t *b) { put32(b + IM_LENS + 8, 65535); put32(b + IM_LENS, 1001); }
static void lie_over_span(uint8_t *b) { b[IM_FLAGS + 5] = 0; put32(b + IM_LENS + 20, 101); put32(b + IM_LENS, 999); }
static void lie_hole_digest(uint8_t *b) { b[IM_SPAN + 16]++; }
static void lie_hole_stored_digest(uint8_t *b) { b[IM_DIG + 16 * 3]++; }
static void lie_dontcare(uint8_t *b) { b[IM_FLAGS] |= MC_CHUNK_DONTCARE; }
static void lie_kind(uint8_t *b) { b[IM_KIND] = MC_KIND_RAW; }
static void lie_nchunks(uint8_t *b) { b[IM_NCHUNKS + 3]++; }
static void lie_image_size(uint8_t *b) { b[IM_IMAGE + 5]++; }
static void lie_huge_image(uint8_t *b) { b[IM_IMAGE] = 0x80; }
static void lie_comp_none(uint8_t *b) { b[IM_COMP] = MC_COMP_NONE; }
static void lie_comp_gzip(uint8_t *b) { b[IM_COMP] = MC_COMP_GZIP; }
static void lie_empty(uint8_t *b) { b[IM_FLAGS + 1] = 0; }
static void lie_hole_raw(uint8_t *b) { b[IM_FLAGS + 1] |= MC_CHUNK_RAW; }

/*
 * A format-2 manifest: 6 spans of 64 KiB (the last 100 bytes): compressed,
 * hole, raw, hole, compressed, raw. Encoded, parsed back, its tables, every
 * lie refused, and a package of it opened, checked and verified.
 */
/* mc_pkg_create's answers are codes (lib/exitcode.h), never -1 with errno, and nothing is left behind. */
static void create_codes(void)
{
	char dir[] = "/tmp/mc-pkgcodes.XXXXXX", out[512], missing[512], err[512];
	const char *paths[1];
	uint8_t id[MC_ID_LEN];
	struct mc_pkg_create_opts o = {.output = out, .compression = MC_COMP_ZSTD, .level = -1,
				       .chunk_size = 1u << 20, .mtime = -1, .paths = paths, .npaths = 0};

	ok(mkdtemp(dir) != NULL, "codes: scratch");
	snprintf(out, sizeof out, "%s/out.mcpkg", dir);
	snprintf(missing, sizeof missing, "%s/missing", dir);
	ok(mc_pkg_create(&o, id, err, sizeof err) == -EINVAL && strstr(err, "no PATH"), "no PATH: -EINVAL: %s", err);
	paths[0] = missing;
	o.npaths = 1;
	ok(mc_pkg_create(&o, id, err, sizeof err) == -ENOENT && strstr(err, missing), "a missing PATH: -ENOENT: %s", err);
	o.chunk_size = 1;
	ok(mc_pkg_create(&o, id, err, sizeof err) == -EINVAL && strstr(err, "chunk size"), "chunk size 1: -EINVAL: %s", err);
	o.chunk_size = 1u << 20;
	paths[0] = dir;
	o.image = 1;
	ok(mc_pkg_create(&o, id, err, sizeof err) == -EISDIR && strstr(err, "is a directory"),
	   "--image of a directory: -EISDIR: %s", err);
	o.image = 0;
	snprintf(out, sizeof out, "%s/no/such/dir/out.mcpkg", dir);
	ok(mc_pkg_create(&o, id, err, sizeof err) == -ENOENT && strstr(err, "temporary file"),
	   "an output in no directory: -ENOENT: %s", err);
	ok(rmdir(dir) == 0, "codes: nothing left behind");
}

static void image_manifest(void)
{
	const uint32_t lens[6] = {1000, 0, 65536, 0, 5, 100};
	const uint8_t flags[6] = {0, MC_CHUNK_HOLE, MC_CHUNK_RAW, MC_CHUNK_HOLE | MC_CHUNK_DONTCARE, 0, MC_CHUNK_RAW};
	const uint64_t image = 5 * 65536 + 100, payload = 1000 + 65536 + 5 + 100;
	uint8_t dig[6 * 16], span[6 * 16], *zero = calloc(1, 65536), *pl = malloc(payload), hdr[MC_PKG_HDR_SIZE], id[16];
	struct mc_manifest m, p;
	struct mc_pkg_layout l;
	char err[256] = "";
	uint64_t hb = 0;

	for (uint64_t i = 0; i < payload; i++)
		pl[i] = (uint8_t)(i * 13 + 1);
	for (uint32_t i = 0, off = 0; i < 6; off += lens[i], i++) {
		mc_digest(pl + off, lens[i], dig + 16 * i);
		if (flags[i] & MC_CHUNK_HOLE)
			mc_digest(zero, i == 5 ? 100 : 65536, span + 16 * i);
		else
			memset(span + 16 * i, (int)i, 16); /* what the decoded span would hash to */
	}
	fill(&m, 0, 65536);
	m.image_size = image;
	mc_digest(pl, payload, m.payload_digest);
	ok(mc_manifest_encode_image(&m, lens, flags, dig, span, err, sizeof err) == 0, "image manifest encodes: %s", err);
	ok(m.format == 2 && m.kind == MC_KIND_IMAGE && m.nchunks == 6 && m.payload_size == payload,
	   "format 2, kind image, 6 chunks, payload = stored bytes");
	ok(m.raw_len == 60 + 5 + 7 + 6 * 37 && m.raw[5] == 2, "length is 60 + name + version + 37 per chunk (%u)",
	   m.raw_len);
	ok(mc_manifest_parse(m.raw, m.raw_len, &p, err, sizeof err) == 0 && memcmp(p.id, m.id, 16) == 0 &&
		   p.image_size == image && p.format == 2, "parses back, same id: %s", err);
	ok(mc_manifest_chunk_off(&p, 0) == 0 && mc_manifest_chunk_off(&p, 1) == 1000 && mc_manifest_chunk_off(&p, 2) == 1000 &&
		   mc_manifest_chunk_off(&p, 4) == 66536 && mc_manifest_chunk_off(&p, 5) == 66541 &&
		   mc_manifest_chunk_off(&p, 6) == payload, "chunk offsets from the stored lengths");
	ok(mc_manifest_chunk_len(&p, 0) == 1000 && mc_manifest_chunk_len(&p, 1) == 0 && mc_manifest_chunk_len(&p, 2) == 65536 &&
		   mc_manifest_chunk_len(&p, 5) == 100 && mc_manifest_chunk_len(&p, 6) == 0, "chunk lengths");
	ok(mc_manifest_chunk_of(&p, 0) == 0 && mc_manifest_chunk_of(&p, 999) == 0 && mc_manifest_chunk_of(&p, 1000) == 2 &&
		   mc_manifest_chunk_of(&p, 66535) == 2 && mc_manifest_chunk_of(&p, 66536) == 4 &&
		   mc_manifest_chunk_of(&p, 66541) == 5 && mc_manifest_chunk_of(&p, payload - 1) == 5 &&
		   mc_manifest_chunk_of(&p, payload) == 6, "chunk of a payload offset skips holes");
	ok(mc_manifest_span_off(&p, 5) == 5 * 65536 && mc_manifest_span_len(&p, 5) == 100 &&
		   mc_manifest_span_len(&p, 1) == 65536 && mc_manifest_span_len(&p, 6) == 0, "span offsets and lengths");
	ok(mc_manifest_chunk_flags(&p, 3) == (MC_CHUNK_HOLE | MC_CHUNK_DONTCARE) && mc_manifest_chunk_flags(&p, 2) == MC_CHUNK_RAW &&
		   mc_manifest_chunk_flags(&p, 6) == 0 && memcmp(mc_manifest_span_digest(&p, 4), span + 64, 16) == 0 &&
		   mc_manifest_span_digest(&p, 6) == NULL && memcmp(p.digests + 32, dig + 32, 16) == 0, "flags and digests");
	ok(mc_manifest_holes(&p, &hb) == 2 && hb == 2 * 65536, "two holes of 64 KiB");
	mc_manifest_layout(&p, &l);
	ok(l.format == 2 && l.payload_len == payload && l.payload_off == 4096, "layout");
	ok(mc_manifest_payload_off(&m) == 4096, "payload offset planned before the tables are known");
	mc_pkg_header_encode(&p, hdr);
	ok(hdr[9] == 2 && mc_pkg_header_decode(hdr, 4096 + payload, &l, id, err, sizeof err) == 0 && l.format == 2,
	   "header says format 2 and decodes: %s", err);
	mc_manifest_free(&p);

	image_lie(&m, lie_sum, "add up", "stored lengths that do not add up");
	image_lie(&m, lie_hole_bytes, "hole", "a hole with a stored byte");
	image_lie(&m, lie_flag, "flags", "an unknown flag");
	image_lie(&m, lie_raw_len, "raw chunk", "a raw chunk shorter than its span");
	image_lie(&m, lie_over_span, "more than its span", "a stored length past the span");
	image_lie(&m, lie_hole_digest, "zeros", "a hole's span digest not of zeros");
	image_lie(&m, lie_hole_stored_digest, "zeros", "a hole's stored digest not of nothing");
	image_lie(&m, lie_dontcare, "don't-care", "don't-care on a stored chunk");
	image_lie(&m, lie_kind, "images", "kind raw in format 2");
	image_lie(&m, lie_nchunks, "chunk count", "a chunk count lie");
	image_lie(&m, lie_image_size, "chunk count", "an image size lie");
	image_lie(&m, lie_huge_image, "chunk count", "an image of 2^63 bytes");
	image_lie(&m, lie_comp_none, "uncompressed", "a compressed chunk with compression none");
	image_lie(&m, lie_comp_gzip, "zstd", "gzip");
	image_lie(&m, lie_empty, "not a hole", "nothing stored and not a hole");
	image_lie(&m, lie_hole_raw, "hole", "a raw hole");
	ok(mc_manifest_parse(m.raw, m.raw_len - 1, &p, err, sizeof err) < 0, "one byte short refused: %s", err);
	uint8_t *big = calloc(1, m.raw_len + 37);
	memcpy(big, m.raw, m.raw_len);
	ok(mc_manifest_parse(big, m.raw_len + 37, &p, err, sizeof err) < 0, "one chunk's bytes too many refused: %s", err);
	free(big);
#ifdef FAIL_MALLOC
	/* No memory for the chunk offsets: -ENOMEM and "out of memory", not a bad manifest. */
	fail_size = 7 * sizeof *p.chunk_offs;
	ok(mc_manifest_parse(m.raw, m.raw_len, &p, err, sizeof err) == -ENOMEM && strcmp(err, "manifest: out of memory") == 0,
	   "no memory for the chunk offsets: -ENOMEM, %s", err);
	fail_size = 0;
#endif

	/* encode refuses what parse would. */
	struct mc_manifest q;
	uint32_t badlens[6] = {1000, 0, 65536, 0, 5, 101};
	fill(&q, 0, 65536);
	q.image_size = image;
	ok(mc_manifest_encode_image(&q, badlens, flags, dig, span, err, sizeof err) < 0 && q.raw == NULL,
	   "encode refuses a stored length past its span: %s", err);

	/* Volume records: after the span digests, parsed back, payload offset planned with them; lies refused. */
	struct mc_vol vols[2] = {{.start = 0, .size = 65536, .used = 65536, .stored = 1000, .fstype = ""},
				 {.start = 65536, .size = image - 65536, .used = 4096, .stored = 100, .fstype = "ext4",
				  .flags = MC_VOL_USED_ONLY}},
		      gv;
	fill(&q, 0, 65536);
	q.image_size = image;
	q.nvols = 2;
	mc_digest(pl, payload, q.payload_digest);
	ok(mc_manifest_payload_off(&q) == 4096 &&
		   mc_manifest_encode_image_vols(&q, lens, flags, dig, span, "gpt", vols, 2, err, sizeof err) == 0 &&
		   q.raw_len == 60 + 5 + 7 + 6 * 37 + 10 + 2 * 48, "volume records encode (%u bytes): %s", q.raw_len, err);
	ok(mc_manifest_parse(q.raw, q.raw_len, &p, err, sizeof err) == 0 && p.nvols == 2 &&
		   strcmp(p.vol_table, "gpt") == 0 && mc_manifest_vol(&p, 1, &gv) == 0 && gv.start == 65536 &&
		   gv.used == 4096 && gv.stored == 100 && strcmp(gv.fstype, "ext4") == 0 && gv.flags == MC_VOL_USED_ONLY &&
		   mc_manifest_vol(&p, 2, &gv) < 0, "volume records parse back: %s", err);
	mc_manifest_free(&p);
	vols[1].size = image; /* past the end */
	ok(mc_manifest_encode_image_vols(&q, lens, flags, dig, span, "gpt", vols, 2, err, sizeof err) < 0 &&
		   strstr(err, "past the end"), "a volume past the image refused: %s", err);
	vols[1].size = image - 65536;
	strcpy(vols[1].fstype, "EXT4");
	ok(mc_manifest_encode_image_vols(&q, lens, flags, dig, span, "gpt", vols, 2, err, sizeof err) < 0,
	   "a file system name outside [a-z0-9_-] refused: %s", err);
	mc_manifest_free(&q);

	/* A package of it: opens, each chunk checks (holes too), verify passes; a v1 header over it does not open. */
	char path[] = "/tmp/mcast-test-img.XXXXXX";
	int fd = mkstemp(path), okv = 0;
	uint8_t *buf = malloc(65536);
	struct mc_pkg pk;
	ok(fd >= 0 && mc_pkg_write_head(fd, &m) == 0 && pwrite(fd, pl, payload, 4096) == (ssize_t)payload,
	   "image package written");
	ok(mc_pkg_open(path, &pk, err, sizeof err) == 0 && pk.m.format == 2, "image package opens: %s", err);
	int all = 1;
	for (uint32_t i = 0; i < 6; i++)
		all &= mc_pkg_check_chunk(&pk, i, buf) == 1;
	ok(all, "every chunk checks, holes included");
	ok(mc_pkg_verify(&pk, NULL, NULL, &okv, err, sizeof err) == 0 && okv, "verify: intact, payload digest ok");
	pwrite(fd, "x", 1, 4096 + 66540);
	ok(mc_pkg_check_chunk(&pk, 4, buf) == 0 && mc_pkg_check_chunk(&pk, 5, buf) == 1, "damaged chunk 4 found");
	mc_pkg_close(&pk);
	hdr[9] = 1;
	ok(pwrite(fd, hdr, 10, 0) == 10, "header rewritten as format 1");
	ok(mc_pkg_open(path, &pk, err, sizeof err) == -EBADMSG && strstr(err, "format"),
	   "a format-1 header over a format-2 manifest: %s", err);
	close(fd);
	unlink(path);
	free(buf);
	free(pl);
	free(zero);
	mc_manifest_free(&m);
}

int main(void)
{
	uint8_t d[MC_DIGEST_LEN], id[MC_ID_LEN], hdr[MC_PKG_HDR_SIZE], id2[MC_ID_LEN];
	char hex[2 * MC_ID_LEN + 1], err[256];
	struct mc_manifest m, p;
	struct mc_pkg_layout l;

	/* XXH3-128 canonical, as xxhsum -H2 prints it. */
	mc_digest("hello", 5, d);
	ok(strcmp(mc_id_hex(d, hex), "b5e9c1ad071b3e7fc779cfaa5e523818") == 0, "mc_digest(hello) = xxhsum -H2 (%s)", hex);

	ok(mc_id_parse("b5e9c1ad071b3e7fc779cfaa5e523818", id) == 32 && memcmp(id, d, 16) == 0, "full id parses");
	ok(mc_id_parse("B5E9C1AD", id) == 8 && mc_id_match(d, id, 8), "8-digit prefix parses and matches");
	ok(mc_id_parse("b5e9c1ad0", id) == 9 && mc_id_match(d, id, 9), "odd-length prefix matches");
	ok(mc_id_parse("b5e9c1a", id) == -1, "7 digits are too few");
	ok(mc_id_parse("b5e9c1adz", id) == -1, "non-hex refused");
	ok(mc_id_parse("b5e9c1ad071b3e7fc779cfaa5e5238180", id) == -1, "33 digits refused");
	mc_id_parse("b5e9c1ae", id);
	ok(!mc_id_match(d, id, 8), "different prefix does not match");

	ok(strcmp(mc_comp_name(MC_COMP_XZ), "xz") == 0 && mc_comp_parse("gzip") == MC_COMP_GZIP &&
	   mc_comp_parse("lz4") == -1, "compression names");
	ok(strcmp(mc_kind_name(MC_KIND_RAW), "raw") == 0 && strcmp(mc_kind_name(9), "unknown") == 0, "kind names");

	/* Encode, parse back, same id. */
	uint64_t payload = 5 * 65536 + 10;
	uint8_t digests[6 * MC_DIGEST_LEN];
	for (unsigned i = 0; i < sizeof digests; i++)
		digests[i] = (uint8_t)i;
	fill(&m, payload, 65536);
	ok(mc_manifest_encode(&m, digests, err, sizeof err) == 0, "manifest encodes");
	ok(m.raw_len == 52 + 5 + 7 + 6 * 16, "manifest length is 52 + name + version + 16 per chunk (%u)", m.raw_len);
	ok(memcmp(m.raw, "MCMF", 4) == 0 && m.raw[4] == 0 && m.raw[5] == 1, "manifest magic and version");
	ok(mc_manifest_parse(m.raw, m.raw_len, &p, err, sizeof err) == 0, "manifest parses: %s", err);
	ok(strcmp(p.name, "win11") == 0 && strcmp(p.version, "2026.11") == 0 && p.ctime == 1700000000 &&
	   p.compression == MC_COMP_ZSTD && p.kind == MC_KIND_TAR && p.chunk_size == 65536 &&
	   p.payload_size == payload && p.nchunks == 6, "fields survive");
	ok(memcmp(p.id, m.id, MC_ID_LEN) == 0, "same id after parse");
	mc_digest(m.raw, m.raw_len, d);
	ok(memcmp(d, m.id, MC_ID_LEN) == 0, "id is the digest of the manifest");
	ok(memcmp(p.digests + 5 * 16, digests + 5 * 16, 16) == 0, "chunk digests point into the copy");
	ok(mc_manifest_chunk_off(&p, 5) == 5 * 65536 && mc_manifest_chunk_len(&p, 5) == 10 &&
	   mc_manifest_chunk_len(&p, 0) == 65536 && mc_manifest_chunk_len(&p, 6) == 0, "chunk offsets and lengths");
	mc_manifest_layout(&p, &l);
	ok(l.manifest_off == 64 && l.manifest_len == m.raw_len && l.payload_off == 4096 &&
	   l.file_size == 4096 + payload, "layout");
	mc_manifest_free(&p);
#ifdef FAIL_MALLOC
	fail_size = m.raw_len; /* its copy of the manifest */
	ok(mc_manifest_parse(m.raw, m.raw_len, &p, err, sizeof err) == -ENOMEM && strcmp(err, "manifest: out of memory") == 0,
	   "no memory for the copy: -ENOMEM, said as %s", err);
	fail_size = 0;
#endif
	ok(strcmp(mc_strerror(-ENOMEM), "out of memory") == 0 && strcmp(mc_strerror(ENOMEM), "out of memory") == 0 &&
		   mc_strerror(-ENOMEM) == mc_strerror(-ENOMEM) && strcmp(mc_strerror(-ENOSPC), strerror(ENOSPC)) == 0 &&
		   strcmp(mc_strerror(EIO), strerror(EIO)) == 0,
	   "mc_strerror: out of memory for ENOMEM (one string), strerror's text for the rest");

	/* Lies: every one of them refused. */
	uint8_t *bad = malloc(m.raw_len + 16);
	size_t o = 4 + 2 + 2 + 5 + 2 + 7; /* ctime */
	memcpy(bad, m.raw, m.raw_len);
	bad[o + 8 + 1 + 1 + 4 + 8 + 3]++; /* chunk count */
	ok(mc_manifest_parse(bad, m.raw_len, &p, err, sizeof err) < 0 && strstr(err, "chunk count"), "count lie: %s", err);
	memcpy(bad, m.raw, m.raw_len);
	bad[o + 8 + 1 + 1 + 4 + 4] = 0xff; /* payload size */
	ok(mc_manifest_parse(bad, m.raw_len, &p, err, sizeof err) < 0, "payload size lie: %s", err);
	ok(mc_manifest_parse(m.raw, m.raw_len - 1, &p, err, sizeof err) < 0, "short by one byte: %s", err);
	memcpy(bad, m.raw, m.raw_len);
	ok(mc_manifest_parse(bad, m.raw_len + 16, &p, err, sizeof err) < 0, "16 bytes too many: %s", err);
	memcpy(bad, m.raw, m.raw_len);
	bad[7] = 200; /* name length past the data that follows */
	ok(mc_manifest_parse(bad, m.raw_len, &p, err, sizeof err) < 0, "name length lie: %s", err);
	memcpy(bad, m.raw, m.raw_len);
	bad[9] = 0; /* NUL inside the name */
	ok(mc_manifest_parse(bad, m.raw_len, &p, err, sizeof err) < 0, "NUL in name refused");
	memcpy(bad, m.raw, m.raw_len);
	bad[o + 8] = 7;
	ok(mc_manifest_parse(bad, m.raw_len, &p, err, sizeof err) < 0, "unknown compression: %s", err);
	memcpy(bad, m.raw, m.raw_len);
	bad[o + 8 + 1 + 1 + 1] = 0; /* chunk size 65536 -> 0 */
	ok(mc_manifest_parse(bad, m.raw_len, &p, err, sizeof err) < 0, "chunk size 0: %s", err);
	memcpy(bad, m.raw, m.raw_len);
	bad[0] = 'X';
	ok(mc_manifest_parse(bad, m.raw_len, &p, err, sizeof err) < 0, "bad magic");
	ok(mc_manifest_parse(bad, 3, &p, err, sizeof err) < 0, "3 bytes");
	free(bad);

	/* Header. */
	mc_pkg_header_encode(&m, hdr);
	ok(memcmp(hdr, MC_PKG_MAGIC, 8) == 0 && hdr[9] == MC_PKG_VERSION, "header magic and version");
	ok(mc_pkg_header_decode(hdr, 4096 + payload, &l, id2, err, sizeof err) == 0 && memcmp(id2, m.id, 16) == 0 &&
	   l.payload_off == 4096 && l.payload_len == payload, "header decodes: %s", err);
	ok(mc_pkg_header_decode(hdr, UINT64_MAX, &l, id2, err, sizeof err) == 0, "header decodes against an unknown size");
	ok(mc_pkg_header_decode(hdr, 4095 + payload, &l, id2, err, sizeof err) == -EBADMSG,
	   "one byte short: %s", err);
	hdr[30] = 0x13; /* manifest length 5000: the payload would have to start at 8192 */
	hdr[31] = 0x88;
	ok(mc_pkg_header_decode(hdr, UINT64_MAX, &l, id2, err, sizeof err) < 0, "manifest length lie: %s", err);
	mc_pkg_header_encode(&m, hdr);
	memset(hdr + 24, 0xff, 8);
	ok(mc_pkg_header_decode(hdr, UINT64_MAX, &l, id2, err, sizeof err) < 0, "huge manifest length refused: %s", err);
	mc_pkg_header_encode(&m, hdr);
	memset(hdr + 40, 0xff, 8);
	ok(mc_pkg_header_decode(hdr, UINT64_MAX, &l, id2, err, sizeof err) < 0, "payload length overflow refused: %s", err);
	mc_pkg_header_encode(&m, hdr);
	hdr[39] = 0; /* payload offset 4096 -> 0 */
	hdr[38] = 0;
	ok(mc_pkg_header_decode(hdr, UINT64_MAX, &l, id2, err, sizeof err) < 0, "payload offset lie: %s", err);
	mc_pkg_header_encode(&m, hdr);
	hdr[1] = 'X';
	ok(mc_pkg_header_decode(hdr, UINT64_MAX, &l, id2, err, sizeof err) == -EINVAL, "not a package: %s", err);

	/* A whole package through a file: write head + payload, open, check chunks. */
	char path[] = "/tmp/mcast-test-pkg.XXXXXX";
	int fd = mkstemp(path);
	uint8_t *pl = calloc(1, payload), *buf = malloc(65536);
	struct mc_pkg pk;
	for (uint64_t i = 0; i < payload; i++)
		pl[i] = (uint8_t)(i * 7);
	for (uint32_t i = 0; i < 6; i++)
		mc_digest(pl + (uint64_t)i * 65536, i == 5 ? 10 : 65536, digests + i * 16);
	mc_digest(pl, payload, m.payload_digest);
	ok(mc_manifest_encode(&m, digests, err, sizeof err) == 0, "re-encode with real digests");
	ok(mc_pkg_write_head(fd, &m) == 0 && pwrite(fd, pl, payload, 4096) == (ssize_t)payload, "package written");
	ok(mc_pkg_open(path, &pk, err, sizeof err) == 0, "package opens: %s", err);
	ok(mc_pkg_check_chunk(&pk, 0, buf) == 1 && mc_pkg_check_chunk(&pk, 5, buf) == 1, "chunks intact");
	int okv = 0;
	ok(mc_pkg_verify(&pk, NULL, buf, &okv, err, sizeof err) == 0 && okv, "verify: intact, payload digest ok");
	pwrite(fd, "x", 1, 4096 + 3 * 65536 + 1);
	ok(mc_pkg_check_chunk(&pk, 3, buf) == 0 && mc_pkg_check_chunk(&pk, 2, buf) == 1, "damaged chunk 3 found");
	ok(mc_pkg_verify(&pk, NULL, buf, &okv, err, sizeof err) == 1, "verify counts one bad chunk");
	mc_pkg_close(&pk);
	ok(ftruncate(fd, 4096 + 2 * 65536) == 0, "truncate");
	ok(mc_pkg_open(path, &pk, err, sizeof err) == -EBADMSG && strstr(err, path), "truncated: %s", err);
	ok(mc_pkg_open_flags(path, MC_PKG_OPEN_PARTIAL, &pk, err, sizeof err) == 0, "partial open works");
	ok(mc_pkg_check_chunk(&pk, 4, buf) == 0 && mc_pkg_check_chunk(&pk, 1, buf) == 1, "missing chunk is damaged");
	mc_pkg_close(&pk);
	ok(mc_pkg_open("/nonexistent/x.mcpkg", &pk, err, sizeof err) == -ENOENT, "missing: %s", err);
	close(fd);
	unlink(path);
	free(pl);
	free(buf);

	/*
	 * create and verify end to end: chunks smaller than, unaligned with and
	 * larger than the read and write pieces; verify with and without its
	 * reader thread, and left to choose while pinned to one CPU.
	 */
	mc_pkg_verify_threads = 1;
	create_and_verify(65536, "64K chunks");
	create_and_verify(100000, "100000-byte chunks");
	create_and_verify(1536 * 1024, "1.5M chunks");
	create_and_verify(5 * 1024 * 1024, "5M chunks");
	mc_pkg_verify_threads = 0;
	create_and_verify(100000, "no reader thread, 100000-byte chunks");
	create_and_verify(5 * 1024 * 1024, "no reader thread, 5M chunks");
	mc_pkg_verify_threads = -1;
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu() >= 0 ? sched_getcpu() : 0, &one);
	ok(sched_setaffinity(0, sizeof one, &one) == 0, "pinned to one CPU");
	create_and_verify(100000, "one CPU, 100000-byte chunks");
	create_and_verify(1536 * 1024, "one CPU, 1.5M chunks");

	image_manifest();
	create_codes();

	/* Too many chunks for the manifest bound. */
	fill(&p, (uint64_t)MC_CHUNK_MIN * (17u << 20), MC_CHUNK_MIN);
	ok(mc_manifest_encode(&p, NULL, err, sizeof err) < 0, "too many chunks refused: %s", err);
	fill(&p, 0, MC_CHUNK_MIN);
	p.image_size = (uint64_t)MC_CHUNK_MIN << 30;
	ok(mc_manifest_encode_image(&p, NULL, NULL, NULL, NULL, err, sizeof err) == -EINVAL &&
		   strncmp(err, "image too large for chunk size ", 31) == 0 && strstr(err, " chunks)"),
	   "an image of too many chunks refused: %s", err);
	mc_manifest_free(&m);
	return tap_done();
}
