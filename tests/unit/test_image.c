/* Unit tests of lib/image.c and lib/target.c: seekable image packages built, decoded chunk by chunk, written onto a target. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "pkg.h"
#include "tap.h"
#include "target.h"

#define SPAN 65536u
#define NSPAN 7
#define LAST 1000u /* the last span's length */
#define IMG ((uint64_t)(NSPAN - 1) * SPAN + LAST)

static char dir[] = "/tmp/mcast-test-image.XXXXXX";
static uint8_t *img;

static void path(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", dir, name);
}

static int write_file(const char *p, const uint8_t *b, size_t n)
{
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600), ok = fd >= 0 && write(fd, b, n) == (ssize_t)n;

	if (fd >= 0)
		close(fd);
	return ok ? 0 : -1;
}

static int read_file(const char *p, uint8_t *b, size_t n)
{
	int fd = open(p, O_RDONLY), ok = fd >= 0 && read(fd, b, n) == (ssize_t)n;

	if (fd >= 0)
		close(fd);
	return ok ? 0 : -1;
}

/*
 * The image: span 0 text (compresses), 1 written zeros, 2 a hole of the
 * sparse file, 3 random (stored raw), 4 text, 5 zeros, 6 (1000 bytes) text.
 */
static void make_image(const char *p)
{
	uint64_t x = 88172645463325252ull;
	int fd;

	img = calloc(1, IMG);
	for (uint64_t i = 0; i < IMG; i++) {
		uint64_t s = i / SPAN;
		if (s == 0 || s == 4 || s == 6)
			img[i] = (uint8_t)"mcast image text, "[i % 18];
		else if (s == 3) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			img[i] = (uint8_t)x;
		}
	}
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	/* Everything but span 2, which stays a hole of the file. */
	ok(fd >= 0 && pwrite(fd, img, 2 * SPAN, 0) == 2 * SPAN &&
		   pwrite(fd, img + 3 * SPAN, IMG - 3 * SPAN, 3 * SPAN) == (ssize_t)(IMG - 3 * SPAN),
	   "sparse image file written");
	close(fd);
}

static int create(const char *src, const char *out, unsigned threads, unsigned comp, char *err, size_t errlen)
{
	const char *paths[] = {src};
	uint8_t id[MC_ID_LEN];
	struct mc_pkg_create_opts o = {.output = out, .name = "img", .compression = comp, .level = -1,
				       .threads = threads, .chunk_size = SPAN, .mtime = 1700000000,
				       .paths = paths, .npaths = 1, .image = 1};
	return mc_pkg_create(&o, id, err, errlen);
}

static void seen_bad(void *arg, uint32_t i)
{
	*(uint64_t *)arg |= 1ull << i;
}

int main(void)
{
	char src[256], a[256], b[256], t[256], err[512] = "";
	struct mc_pkg p, q;
	uint8_t *buf, *out, *back;
	struct mc_image_dec *d;

	ok(mkdtemp(dir) != NULL, "scratch directory");
	/* mc_image_is_zero: unaligned starts and a late nonzero byte. */
	uint8_t z[100] = {0};
	ok(mc_image_is_zero(z, 100) && mc_image_is_zero(z + 3, 97) && mc_image_is_zero(z, 0), "zeros are zero");
	z[99] = 1;
	ok(!mc_image_is_zero(z + 1, 99) && mc_image_is_zero(z + 1, 98), "a last nonzero byte is seen");

	path(src, sizeof src, "src.img");
	path(a, sizeof a, "a.mcpkg");
	path(b, sizeof b, "b.mcpkg");
	make_image(src);
	ok(create(src, a, 0, MC_COMP_ZSTD, err, sizeof err) == 0, "create --image: %s", err);
	ok(create(src, b, 3, MC_COMP_ZSTD, err, sizeof err) == 0, "create --image -j 3: %s", err);
	ok(mc_pkg_open(a, &p, err, sizeof err) == 0 && mc_pkg_open(b, &q, err, sizeof err) == 0, "both open: %s", err);
	ok(memcmp(p.m.id, q.m.id, MC_ID_LEN) == 0 && p.file_size == q.file_size, "the thread count changes nothing");
	mc_pkg_close(&q);
	ok(p.m.format == 2 && p.m.kind == MC_KIND_IMAGE && p.m.image_size == IMG && p.m.nchunks == NSPAN,
	   "format 2, image of %llu bytes in %u spans", (unsigned long long)IMG, NSPAN);
	ok(mc_manifest_chunk_flags(&p.m, 0) == 0 && mc_manifest_chunk_flags(&p.m, 1) == MC_CHUNK_HOLE &&
		   mc_manifest_chunk_flags(&p.m, 2) == MC_CHUNK_HOLE && mc_manifest_chunk_flags(&p.m, 3) == MC_CHUNK_RAW &&
		   mc_manifest_chunk_flags(&p.m, 5) == MC_CHUNK_HOLE && mc_manifest_chunk_flags(&p.m, 6) == 0,
	   "text compressed, zeros and the file's hole are holes, random bytes raw");
	ok(mc_manifest_chunk_len(&p.m, 0) < SPAN / 10 && mc_manifest_chunk_len(&p.m, 3) == SPAN &&
		   mc_manifest_span_len(&p.m, 6) == LAST, "stored lengths");

	/* Decoding chunk by chunk. */
	buf = malloc(SPAN);
	out = malloc(SPAN);
	back = calloc(1, IMG);
	d = mc_image_dec_new();
	int all = 1;
	for (uint32_t i = 0; i < NSPAN; i++) {
		uint32_t len = mc_manifest_chunk_len(&p.m, i);
		all &= mc_pkg_check_chunk(&p, i, buf) == 1 &&
		       mc_image_decode(d, &p.m, i, buf, len, out, err, sizeof err) == 0 &&
		       memcmp(out, img + mc_manifest_span_off(&p.m, i), mc_manifest_span_len(&p.m, i)) == 0;
	}
	ok(all, "every chunk decodes alone to its span");
	uint32_t l0 = mc_manifest_chunk_len(&p.m, 0), l4 = mc_manifest_chunk_len(&p.m, 4);
	mc_pkg_check_chunk(&p, 0, buf);
	buf[l0 / 2] ^= 1;
	ok(mc_image_decode(d, &p.m, 0, buf, l0, out, err, sizeof err) == -EBADMSG, "a flipped bit: %s", err);
	mc_pkg_check_chunk(&p, 4, buf);
	ok(mc_image_decode(d, &p.m, 0, buf, l4, out, err, sizeof err) == -EBADMSG,
	   "another chunk's valid frame: %s", err);
	mc_pkg_check_chunk(&p, 0, buf);
	ok(mc_image_decode(d, &p.m, 0, buf, l0 - 1, out, err, sizeof err) == -EBADMSG, "short: %s", err);
	ok(mc_image_decode(d, &p.m, NSPAN, buf, 0, out, err, sizeof err) == -EINVAL, "out of range: %s", err);

	/* -z none: every stored chunk raw, holes still holes. */
	ok(create(src, b, 2, MC_COMP_NONE, err, sizeof err) == 0 && mc_pkg_open(b, &q, err, sizeof err) == 0 &&
		   q.m.compression == MC_COMP_NONE && q.m.payload_size == 4 * (uint64_t)SPAN - SPAN + LAST &&
		   mc_manifest_chunk_flags(&q.m, 0) == MC_CHUNK_RAW,
	   "-z none: %llu bytes stored", (unsigned long long)q.m.payload_size);
	mc_pkg_close(&q);

	/* A target: a new file, then a used one (holes punched), checked, damaged, refused. */
	struct mc_target *tg, *no = NULL;
	path(t, sizeof t, "new.img");
	ok(mc_target_open(t, &p.m, 0, &tg, err, sizeof err) == 0 && mc_target_size(tg) == IMG &&
		   !mc_target_is_blockdev(tg), "a new file becomes a target of the image's size: %s", err);
	all = 1;
	for (uint32_t i = 0; tg && i < NSPAN; i++) {
		mc_pkg_check_chunk(&p, i, buf);
		all &= mc_target_put_chunk(tg, i, buf, mc_manifest_chunk_len(&p.m, i), err, sizeof err) == 0;
	}
	ok(all && tg && mc_target_sync(tg, err, sizeof err) == 0, "every chunk put, synced: %s", err);
	uint64_t badset = 0;
	ok(tg && mc_target_check(tg, seen_bad, NULL, &badset, err, sizeof err) == 0 && badset == 0, "check: intact");
	ok(read_file(t, back, IMG) == 0 && memcmp(back, img, IMG) == 0, "the file is the image");
	mc_target_close(tg);

	path(t, sizeof t, "used.img");
	memset(back, 0xa5, IMG);
	ok(write_file(t, back, IMG) == 0, "a used file of the image's size");
	ok(mc_target_open(t, &p.m, 0, &tg, err, sizeof err) == 0, "opens: %s", err);
	uint8_t before[MC_DIGEST_LEN], after[MC_DIGEST_LEN], ident[MC_DIGEST_LEN], ident2[MC_DIGEST_LEN];
	mc_digest(back, IMG, before);
	mc_pkg_check_chunk(&p, 0, buf);
	buf[3] ^= 1;
	ok(tg && mc_target_put_chunk(tg, 0, buf, l0, err, sizeof err) == -EBADMSG,
	   "wrong bytes refused: %s", err);
	ok(read_file(t, back, IMG) == 0 && (mc_digest(back, IMG, after), memcmp(before, after, 16) == 0),
	   "and nothing written");
	/*
	 * Bytes said to be verified that are not (put_verified skips the stored
	 * digest): a frame still fails to decode or its span digest, a raw span
	 * given unverified still fails both digests; nothing is written.
	 */
	ok(tg && mc_target_put_verified(tg, 0, buf, l0, err, sizeof err) == -EBADMSG,
	   "a damaged frame put as verified is refused: %s", err);
	uint32_t l3 = mc_manifest_chunk_len(&p.m, 3);
	mc_pkg_check_chunk(&p, 3, buf);
	buf[l3 - 1] ^= 0x40;
	ok(tg && mc_target_put_chunk(tg, 3, buf, l3, err, sizeof err) == -EBADMSG,
	   "a damaged raw span is refused: %s", err);
	mc_pkg_check_chunk(&p, 4, buf);
	ok(tg && mc_target_put_verified(tg, 0, buf, l0, err, sizeof err) == -EBADMSG,
	   "another chunk's intact bytes put as verified chunk 0 are refused: %s", err);
	ok(read_file(t, back, IMG) == 0 && (mc_digest(back, IMG, after), memcmp(before, after, 16) == 0),
	   "and nothing of them written");
	badset = 0;
	ok(tg && mc_target_check(tg, seen_bad, NULL, &badset, err, sizeof err) == NSPAN && badset == 0x7f,
	   "check names every span of a foreign file");
	for (uint32_t i = 0; tg && i < NSPAN; i++) {
		/* Checked by mc_pkg_check_chunk: every other one put as verified (raw span 3 among them). */
		mc_pkg_check_chunk(&p, i, buf);
		(i % 2 ? mc_target_put_verified : mc_target_put_chunk)(tg, i, buf, mc_manifest_chunk_len(&p.m, i), err,
									sizeof err);
	}
	ok(read_file(t, back, IMG) == 0 && memcmp(back, img, IMG) == 0, "holes punched: the file is the image");
	/* Raw access: a chunk's stored bytes kept in its own span, unaligned, then read back; span checks. */
	mc_pkg_check_chunk(&p, 4, buf);
	ok(mc_target_span_ok(tg, 4, err, sizeof err) == 1 && mc_target_pwrite(tg, buf + 1, l4 - 1, 4 * SPAN + 7) == 0 &&
		   mc_target_span_ok(tg, 4, err, sizeof err) == 0, "stored bytes spilled into span 4: it no longer checks");
	ok(mc_target_pread(tg, out, l4 - 1, 4 * SPAN + 7) == 0 && memcmp(out, buf + 1, l4 - 1) == 0,
	   "and read back as they were");
	ok(mc_target_pwrite(tg, buf, 2, IMG - 1) == -ENOSPC, "no raw write past the target's end");
	ok(mc_target_put_chunk(tg, 4, buf, l4, err, sizeof err) == 0 && mc_target_span_ok(tg, 4, err, sizeof err) == 1,
	   "the chunk put over them: span 4 checks again");
	/* Decoded by the caller (a thread of its own), then put. */
	ok(mc_image_decode(d, &p.m, 4, buf, l4, out, err, sizeof err) == 0 && mc_target_pwrite(tg, "junk", 4, 4 * SPAN) == 0 &&
		   mc_target_put_decoded(tg, 4, out, err, sizeof err) == 0 && mc_target_span_ok(tg, 4, err, sizeof err) == 1,
	   "a span decoded by the caller is put: %s", err);
	out[10] ^= 1;
	ok(mc_target_put_decoded(tg, 4, out, err, sizeof err) == -EBADMSG &&
		   mc_target_span_ok(tg, 4, err, sizeof err) == 1, "a wrong decoded span is refused, nothing written: %s", err);
	mc_target_identity(tg, ident);
	mc_target_close(tg);

	/* Writer threads: chunks queued in any order (holes 1 and 2 next to each other: one zeroing), then drained. */
	path(t, sizeof t, "queued.img");
	memset(back, 0x5a, IMG);
	ok(write_file(t, back, IMG) == 0, "another used file of the image's size");
	ok(mc_target_open(t, &p.m, 0, &tg, err, sizeof err) == 0 && mc_target_start(tg, 3, err, sizeof err) == 0,
	   "three writers started: %s", err);
	all = 1;
	for (uint32_t k = 0; tg && k < NSPAN; k++) {
		uint32_t i = k < 3 ? k : NSPAN - 1 - (k - 3); /* 0 1 2, then 6 5 4 3 */
		uint32_t len = mc_manifest_chunk_flags(&p.m, i) & MC_CHUNK_HOLE ? 0 : mc_manifest_chunk_len(&p.m, i);
		if (len)
			mc_pkg_check_chunk(&p, i, buf);
		all &= mc_target_queue(tg, i, buf, len, err, sizeof err) == 0;
		memset(buf, 0xee, SPAN); /* the queue keeps its own copy */
	}
	ok(all && tg && mc_target_sync(tg, err, sizeof err) == 0, "every chunk queued, drained and synced: %s", err);
	ok(read_file(t, back, IMG) == 0 && memcmp(back, img, IMG) == 0, "the file is the image");
	mc_pkg_check_chunk(&p, 0, buf);
	buf[5] ^= 1;
	int qrc = tg ? mc_target_queue(tg, 0, buf, l0, err, sizeof err) : -1;
	ok(tg && (qrc < 0 ? qrc : mc_target_drain(tg, err, sizeof err)) == -EBADMSG,
	   "wrong bytes queued: the writers' failure comes back: %s", err);
	mc_pkg_check_chunk(&p, 0, buf);
	ok(tg && mc_target_queue(tg, 0, buf, l0, err, sizeof err) == -EBADMSG, "and stays: %s", err);
	ok(read_file(t, back, IMG) == 0 && memcmp(back, img, IMG) == 0, "nothing of the wrong bytes written");
	mc_target_close(tg);
	/* Three writers, one decoding at a time (a receiver's): every chunk, in reverse order, as verified. */
	memset(back, 0x3c, IMG);
	ok(write_file(t, back, IMG) == 0 && mc_target_open(t, &p.m, 0, &tg, err, sizeof err) == 0 &&
		   mc_target_start_writers(tg, 3, 1, err, sizeof err) == 0, "three writers, one decoder: %s", err);
	all = 1;
	for (uint32_t k = 0; tg && k < NSPAN; k++) {
		uint32_t i = NSPAN - 1 - k;
		uint32_t len = mc_manifest_chunk_flags(&p.m, i) & MC_CHUNK_HOLE ? 0 : mc_manifest_chunk_len(&p.m, i);
		if (len)
			mc_pkg_check_chunk(&p, i, buf);
		all &= mc_target_queue_verified(tg, i, buf, len, err, sizeof err) == 0;
	}
	ok(all && tg && mc_target_sync(tg, err, sizeof err) == 0 && read_file(t, back, IMG) == 0 && memcmp(back, img, IMG) == 0,
	   "the file is the image: %s", err);
	mc_target_close(tg);
	/* The same through mc_target_queue_verified: the writer decodes, the span digest refuses. */
	ok(mc_target_open(t, &p.m, 0, &tg, err, sizeof err) == 0 && mc_target_start(tg, 2, err, sizeof err) == 0,
	   "writers again: %s", err);
	mc_pkg_check_chunk(&p, 4, buf);
	buf[7] ^= 1;
	qrc = tg ? mc_target_queue_verified(tg, 4, buf, l4, err, sizeof err) : -1;
	ok(tg && (qrc < 0 ? qrc : mc_target_drain(tg, err, sizeof err)) == -EBADMSG,
	   "a damaged frame queued as verified is refused by its writer: %s", err);
	ok(read_file(t, back, IMG) == 0 && memcmp(back, img, IMG) == 0, "nothing of the wrong bytes written");
	mc_target_close(tg);
	path(t, sizeof t, "new.img");
	mc_target_open(t, &p.m, MC_TARGET_READONLY, &tg, err, sizeof err);
	mc_target_identity(tg, ident2);
	ok(tg && memcmp(ident, ident2, 16) != 0, "two files, two identities");
	ok(tg && mc_target_put_hole(tg, 1, err, sizeof err) == -EBADF, "read-only: %s", err);
	mc_target_close(tg);

	/* Refusals, before a byte is written. */
	path(t, sizeof t, "small.img");
	ok(write_file(t, img, IMG - 1) == 0, "a file one byte short");
	ok(mc_target_open(t, &p.m, 0, &no, err, sizeof err) == -EINVAL && strstr(err, "smaller"),
	   "too small: %s", err);
	ok(mc_target_open(dir, &p.m, 0, &no, err, sizeof err) == -EINVAL && strstr(err, "directory"),
	   "a directory: %s", err);
	ok(mc_target_open("/dev/null", &p.m, 0, &no, err, sizeof err) == -EINVAL &&
		   strstr(err, "character device"), "a character device: %s", err);
	struct mc_manifest v1;
	memset(&v1, 0, sizeof v1);
	v1.format = 1;
	v1.kind = MC_KIND_TAR;
	path(t, sizeof t, "v1.img");
	ok(mc_target_open(t, &v1, 0, &no, err, sizeof err) == -EINVAL && strstr(err, "not a seekable image") &&
		   access(t, F_OK) < 0, "a format-1 package, and no file made: %s", err);
	path(t, sizeof t, "missing.img");
	ok(mc_target_open(t, &p.m, MC_TARGET_READONLY, &no, err, sizeof err) == -ENOENT,
	   "read-only never creates: %s", err);

	mc_image_dec_free(d);
	mc_pkg_close(&p);
	free(buf);
	free(out);
	free(back);
	free(img);
	const char *names[] = {"src.img", "a.mcpkg", "b.mcpkg", "new.img", "used.img", "small.img"};
	for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++) {
		path(t, sizeof t, names[i]);
		unlink(t);
	}
	rmdir(dir);
	return tap_done();
}
