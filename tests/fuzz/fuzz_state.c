/*
 * libFuzzer target: resuming from a hostile PKG.part and PKG.state, the way
 * mcast-recv does it (lib/state.c plus the receiver's preload), then the real
 * session (session.h) delivered in full. Whatever the two files held:
 * nothing crashes, no write lands outside the payload, and when the .part's
 * head is the session's package the finished PKG holds the exact header,
 * manifest and payload.
 *
 * Input: [flags][state len hi][state len lo][state bytes][rest]
 *   flags & 1     fix the state file's XXH64 (else the bytes are taken as they are)
 *   flags & 2     .part starts from the real package head; rest is a script of
 *                 4-byte edits [pos hi][pos mid][pos lo][val] (pos top bit: truncate there)
 *                 else rest is the whole .part
 *   flags & 4     the real payload's chunks (mask flags >> 5) are written into the .part first
 *   flags & 8     no state file
 *   flags & 16    after the edits, the header's id is set to the digest of its manifest bytes
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "be.h"
#include "receiver.h"
#include "session.h"
#include "state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct fz_session sess;
static char dir[64], pkg[128];
static uint8_t *pkgfile; /* the real package file */
static struct mc_pkg_layout lay;

struct io {
	struct mc_receiver *r;
	int fd;
	uint64_t payload_off;
};

static void in_payload(struct io *x, uint64_t off, size_t len)
{
	const struct mc_announce *a = mc_recv_announce(x->r);
	assert(a != NULL);
	assert(len > 0 && off <= a->payload_size && len <= a->payload_size - off);
}

static int io_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct io *x = ctx;
	in_payload(x, off, len);
	assert(x->payload_off != 0);
	return pwrite(x->fd, buf, len, (off_t)(x->payload_off + off)) == (ssize_t)len ? 0 : -1;
}

static int io_read(void *ctx, uint64_t off, void *buf, size_t len)
{
	struct io *x = ctx;
	in_payload(x, off, len);
	assert(x->payload_off != 0);
	return pread(x->fd, buf, len, (off_t)(x->payload_off + off)) == (ssize_t)len ? 0 : -1;
}

static void put_file(const char *path, const uint8_t *b, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert(fd >= 0);
	if (n)
		assert(write(fd, b, n) == (ssize_t)n);
	close(fd);
}

static void cleanup(void);

static void remove_dir(void)
{
	cleanup();
	rmdir(dir);
}

static int setup(void)
{
	if (fz_session_build(&sess) < 0)
		return -1;
	snprintf(dir, sizeof dir, "/dev/shm/fuzz_state.XXXXXX");
	if (mkdtemp(dir) == NULL) {
		snprintf(dir, sizeof dir, "/tmp/fuzz_state.XXXXXX");
		if (mkdtemp(dir) == NULL)
			return -1;
	}
	snprintf(pkg, sizeof pkg, "%s/p.mcpkg", dir);
	atexit(remove_dir);
	mc_manifest_layout(&sess.m, &lay);
	pkgfile = calloc(1, lay.file_size);
	if (pkgfile == NULL)
		return -1;
	mc_pkg_header_encode(&sess.m, pkgfile);
	memcpy(pkgfile + lay.manifest_off, sess.m.raw, sess.m.raw_len);
	memcpy(pkgfile + lay.payload_off, sess.payload, lay.payload_len);
	return 0;
}

static void cleanup(void)
{
	char p[160];
	unlink(pkg);
	snprintf(p, sizeof p, "%s.part", pkg);
	unlink(p);
	snprintf(p, sizeof p, "%s.state", pkg);
	unlink(p);
	snprintf(p, sizeof p, "%s.state.tmp", pkg);
	unlink(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char part[160], err[512];
	struct mc_manifest pre;
	struct mc_state st = {0};
	int have_pre = 0, fd;

	if (sess.n == 0 && setup() < 0)
		abort();
	if (size < 3)
		return 0;
	unsigned flags = data[0];
	size_t slen = ((size_t)data[1] << 8 | data[2]) % 4096;
	data += 3;
	size -= 3;
	if (slen > size)
		slen = size;
	cleanup();
	snprintf(part, sizeof part, "%s.part", pkg);

	/* PKG.state */
	if (!(flags & 8)) {
		uint8_t *s = malloc(slen + 8);
		size_t n = slen;
		assert(s != NULL);
		memcpy(s, data, slen);
		if (flags & 1) {
			if (n < 8)
				n = 8;
			memset(s + slen, 0, n - slen);
			uint64_t h = XXH64(s, n - 8, 0);
			mc_put32(s + n - 8, (uint32_t)(h >> 32));
			mc_put32(s + n - 4, (uint32_t)h);
		}
		snprintf(err, sizeof err, "%s.state", pkg);
		put_file(err, s, n);
		free(s);
	}
	data += slen;
	size -= slen;

	/* PKG.part */
	if (flags & 2) {
		size_t plen = lay.file_size;
		uint8_t *b = calloc(1, plen);
		assert(b != NULL);
		memcpy(b, pkgfile, lay.payload_off);
		if (flags & 4)
			for (uint32_t c = 0; c < sess.m.nchunks; c++)
				if ((flags >> 5) >> c & 1)
					memcpy(b + lay.payload_off + mc_manifest_chunk_off(&sess.m, c),
					       sess.payload + mc_manifest_chunk_off(&sess.m, c), mc_manifest_chunk_len(&sess.m, c));
		for (; size >= 4; data += 4, size -= 4) {
			uint32_t pos = (uint32_t)data[0] << 16 | (uint32_t)data[1] << 8 | data[2];
			if (pos & 0x800000) {
				pos &= 0x7fffff;
				if (pos < plen)
					plen = pos;
			} else if (plen) {
				b[pos % plen] = data[3];
			}
		}
		if ((flags & 16) && plen >= MC_PKG_HDR_SIZE) {
			uint64_t ml = mc_get64(b + 24);
			if (ml <= plen - MC_PKG_HDR_SIZE)
				mc_digest(b + MC_PKG_HDR_SIZE, ml, b + 48);
		}
		put_file(part, b, plen);
		free(b);
	} else {
		put_file(part, data, size);
	}

	/* What mcast-recv does on start (cmd/mcast-recv.c). */
	if ((fd = mc_state_open_part(pkg, err, sizeof err)) < 0)
		abort();
	if (mc_state_read_part_manifest(fd, &pre)) {
		have_pre = 1;
		int lr = mc_state_load(pkg, fd, &st, err, sizeof err);
		if (lr > 0) {
			/* A loaded state saves and loads back the same. */
			struct mc_state st2;
			assert(st.have != NULL && st.nhave <= st.nchunks);
			assert(mc_state_save(pkg, fd, &st, err, sizeof err) == 0);
			assert(mc_state_load(pkg, fd, &st2, err, sizeof err) == 1);
			assert(st2.nchunks == st.nchunks && st2.nhave == st.nhave && memcmp(st2.id, st.id, MC_ID_LEN) == 0);
			assert(memcmp(st2.have, st.have, (size_t)st.nchunks / 8 + 1) == 0);
			mc_state_free(&st2);
		}
		if (lr <= 0 || memcmp(st.id, pre.id, MC_ID_LEN) != 0 || st.nchunks != pre.nchunks) {
			if (lr > 0)
				mc_state_free(&st);
			uint8_t *buf = malloc(pre.chunk_size);
			assert(buf != NULL);
			assert(mc_state_init(&st, pre.id, pre.nchunks) == 0);
			assert(mc_state_rescan(fd, &pre, &st, buf) >= 0);
			free(buf);
			assert(mc_state_save(pkg, fd, &st, err, sizeof err) == 0);
		}
		mc_state_spans_fit(&st, &pre);
		assert(st.nhave <= st.nchunks && st.nchunks == pre.nchunks);
	} else {
		/* A hostile state file alone is still loaded safely. */
		if (mc_state_load(pkg, fd, &st, err, sizeof err) > 0)
			assert(st.nhave <= st.nchunks);
		mc_state_free(&st);
	}

	struct mc_recv_cfg cfg;
	struct io x = {NULL, fd, 0};
	memset(&cfg, 0, sizeof cfg);
	cfg.rid = FZ_RID;
	cfg.mem_limit = 1;
	cfg.seed = 1;
	cfg.io = (struct mc_recv_io){&x, io_write, io_read};
	x.r = mc_recv_new(&cfg);
	assert(x.r != NULL);
	assert(!have_pre || mc_recv_preload(x.r, &pre, st.have, st.spans, st.nspans) == 0);
	if (have_pre)
		x.payload_off = ((uint64_t)MC_PKG_HDR_SIZE + pre.raw_len + MC_PKG_ALIGN - 1) / MC_PKG_ALIGN * MC_PKG_ALIGN;

	int complete = 0, ioerr = 0, head = have_pre;
	uint64_t now = 1000;
	for (unsigned i = 0; i < sess.n && !complete && !ioerr; i++) {
		struct mc_recv_event ev;
		uint8_t fb[MC_WIRE_FEEDBACK_MAX];
		mc_recv_packet(x.r, now++, sess.pkt[i], sess.len[i]);
		mc_recv_tick(x.r, now);
		while (mc_recv_feedback(x.r, fb, sizeof fb) > 0)
			;
		while (mc_recv_event(x.r, &ev)) {
			if (ev.kind == MC_REV_SESSION && x.payload_off == 0)
				x.payload_off = ((uint64_t)MC_PKG_HDR_SIZE + mc_recv_announce(x.r)->manifest_len + MC_PKG_ALIGN - 1) /
						MC_PKG_ALIGN * MC_PKG_ALIGN;
			if (ev.kind == MC_REV_MANIFEST && !head) {
				assert(mc_pkg_write_head(fd, mc_recv_manifest(x.r)) == 0);
				head = 1;
			}
			if (ev.kind == MC_REV_COMPLETE)
				complete = 1;
			if (ev.kind == MC_REV_IOERR)
				ioerr = 1;
		}
	}
	const struct mc_manifest *m = mc_recv_manifest(x.r);
	int ours = !have_pre || memcmp(pre.id, sess.m.id, MC_ID_LEN) == 0;
	if (ours && !ioerr) {
		/* The session is the package this .part holds (or none): it completes. */
		assert(complete);
	}
	if (complete) {
		assert(m != NULL && memcmp(m->id, sess.m.id, MC_ID_LEN) == 0);
		assert(mc_state_finish(pkg, fd, m, err, sizeof err) == 0);
		struct stat sb;
		assert(stat(pkg, &sb) == 0 && (uint64_t)sb.st_size == lay.file_size);
		uint8_t *got = malloc(lay.file_size);
		assert(got != NULL && pread(fd, got, lay.file_size, 0) == (ssize_t)lay.file_size);
		assert(memcmp(got, pkgfile, lay.manifest_off + lay.manifest_len) == 0);
		/* Finished means every chunk is the real one, whatever PKG.part and PKG.state held. */
		assert(memcmp(got + lay.payload_off, pkgfile + lay.payload_off, lay.payload_len) == 0);
		free(got);
	}
	mc_recv_free(x.r);
	close(fd);
	if (have_pre)
		mc_manifest_free(&pre);
	mc_state_free(&st);
	cleanup();
	return 0;
}
