/* Unit tests of the target sink (lib/sink_target.c): an image package's chunks onto a file, spills in their spans, the state, resume and refusals. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pkg.h"
#include "sink_target.h"
#include "tap.h"
#include "target.h"

#define SPAN 65536u
#define NSPAN 6
#define LAST 1000u
#define IMG ((uint64_t)(NSPAN - 1) * SPAN + LAST)
#define EXTRA 4096u /* target bytes past the image: left alone */

static char dir[] = "/tmp/mcast-test-sink.XXXXXX";
static char err[512];

static char *path(const char *name)
{
	static char b[4][256];
	static int i;

	i = (i + 1) % 4;
	snprintf(b[i], sizeof b[i], "%s/%s", dir, name);
	return b[i];
}

/* Spans: text, zeros (a hole), random (stored raw), text, zeros, a short random one. */
static uint8_t *make_image(void)
{
	uint8_t *p = calloc(1, IMG);
	uint64_t x = 88172645463325252ULL;

	for (unsigned s = 0; s < NSPAN; s++) {
		uint8_t *q = p + (size_t)s * SPAN;
		size_t n = s + 1 == NSPAN ? LAST : SPAN;
		for (size_t i = 0; i < n; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			if (s == 0 || s == 3)
				q[i] = (uint8_t)("the quick brown fox "[i % 20] + (s == 3 && i % 97 == 0));
			else if (s == 2 || s == 5)
				q[i] = (uint8_t)x;
		}
	}
	return p;
}

static int write_file(const char *p, const void *b, size_t n)
{
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600), ok = fd >= 0 && write(fd, b, n) == (ssize_t)n;

	if (fd >= 0)
		close(fd);
	return ok ? 0 : -1;
}

/* A target file of IMG + EXTRA bytes of 0xaa. */
static int make_target(const char *p)
{
	uint8_t *b = malloc(IMG + EXTRA);
	int rc;

	memset(b, 0xaa, IMG + EXTRA);
	rc = write_file(p, b, IMG + EXTRA);
	free(b);
	return rc;
}

/* The stored bytes of chunk i of the open package. */
static uint8_t *stored(const struct mc_pkg *p, uint32_t i)
{
	uint32_t len = mc_manifest_chunk_len(&p->m, i);
	uint8_t *b = malloc(len ? len : 1);

	if (len && pread(p->fd, b, len, (off_t)(p->l.payload_off + mc_manifest_chunk_off(&p->m, i))) != (ssize_t)len) {
		free(b);
		return NULL;
	}
	return b;
}

static int chunk(struct mc_sink *s, const struct mc_pkg *p, uint32_t i)
{
	uint8_t *b = stored(p, i);
	uint32_t len = mc_manifest_chunk_len(&p->m, i);
	int rc = b ? s->ops->chunk(s, &p->m, i, len ? b : NULL, len, err, sizeof err) : -1;

	free(b);
	return rc;
}

int main(void)
{
	uint8_t *img = make_image(), *back = malloc(IMG + EXTRA);
	const char *paths[1];
	struct mc_pkg_create_opts o;
	struct mc_pkg p;
	struct mc_sink *s = NULL;
	struct mc_resume rs;
	struct mc_announce a;
	struct mc_state st;
	uint8_t id[MC_ID_LEN];
	char cmd[300];

	if (mkdtemp(dir) == NULL)
		return 1;
	paths[0] = path("img");
	memset(&o, 0, sizeof o);
	o.output = path("img.mcpkg");
	o.compression = MC_COMP_ZSTD;
	o.level = -1;
	o.chunk_size = SPAN;
	o.mtime = -1;
	o.paths = paths;
	o.npaths = 1;
	o.image = 1;
	ok(write_file(paths[0], img, IMG) == 0 && mc_pkg_create(&o, id, err, sizeof err) == 0 &&
	   mc_pkg_open(o.output, &p, err, sizeof err) == 0 && p.m.format == MC_PKG_VERSION_IMAGE && p.m.nchunks == NSPAN,
	   "an image package of %u spans: %s", NSPAN, err);
	ok(mc_manifest_chunk_len(&p.m, 1) == 0 && mc_manifest_chunk_len(&p.m, 4) == 0 &&
	   (mc_manifest_chunk_flags(&p.m, 2) & MC_CHUNK_RAW) && mc_manifest_chunk_len(&p.m, 0) < SPAN,
	   "holes, a raw chunk and compressed ones");

	/* First run: three chunks on the target, part of a fourth spilled in its span, the state saved. */
	ok(make_target(path("disk")) == 0 && mc_sink_target_open(path("disk"), path("disk.state"), 0, &s, err, sizeof err) == 0,
	   "the sink opens on a regular file");
	memset(&rs, 0, sizeof rs);
	ok(s->ops->resume(s, &rs, err, sizeof err) == 0 && !rs.have_m, "no state: nothing to resume");
	memset(&a, 0, sizeof a);
	a.image = 1;
	ok(s->ops->announce(s, &a, err, sizeof err) == 0 && s->ops->manifest(s, &p.m, err, sizeof err) == 0,
	   "an image session and its manifest are taken: %s", err);
	ok(chunk(s, &p, 0) == 0 && chunk(s, &p, 1) == 0 && chunk(s, &p, 2) == 0, "chunks 0, 1 (a hole) and 2 written: %s", err);
	uint8_t *c3 = stored(&p, 3), *half = malloc(SPAN);
	uint32_t l3 = mc_manifest_chunk_len(&p.m, 3);
	ok(s->ops->write(s, mc_manifest_chunk_off(&p.m, 3), c3, l3 / 2, err, sizeof err) == 0 &&
	   s->ops->read(s, mc_manifest_chunk_off(&p.m, 3), half, l3 / 2, err, sizeof err) == 0 && memcmp(half, c3, l3 / 2) == 0,
	   "half of chunk 3's stored bytes spilled and read back");
	int fd = open(path("disk"), O_RDONLY);
	ok(fd >= 0 && pread(fd, half, l3 / 2, 3 * SPAN) == (ssize_t)(l3 / 2) && memcmp(half, c3, l3 / 2) == 0,
	   "the spill lies at the start of chunk 3's own span");
	close(fd);
	mc_state_init(&st, p.m.id, NSPAN);
	mc_state_set(&st, 0);
	mc_state_set(&st, 1);
	mc_state_set(&st, 2);
	st.spans = malloc(sizeof *st.spans);
	st.spans[0] = (struct mc_span){3, 0, l3 / 2};
	st.nspans = 1;
	ok(s->ops->sync(s, err, sizeof err) == 0 && s->ops->save(s, &st, err, sizeof err) == 0, "synced, state saved: %s", err);
	mc_state_free(&st);
	/* Chunk 3 completes after the save: the next run must find it on the target. */
	ok(chunk(s, &p, 3) == 0 && s->ops->sync(s, err, sizeof err) == 0, "chunk 3 decoded over its spill");
	snprintf(cmd, sizeof cmd, "cp %s %s", path("disk.state"), path("saved.state"));
	ok(system(cmd) == 0, "the state kept aside");
	s->ops->close(s);

	/* Second run: resumes from the state alone, before any session. */
	ok(mc_sink_target_open(path("disk"), path("disk.state"), 0, &s, err, sizeof err) == 0, "the sink opens again");
	memset(&rs, 0, sizeof rs);
	ok(s->ops->resume(s, &rs, err, sizeof err) == 0 && rs.have_m && memcmp(rs.m.id, p.m.id, MC_ID_LEN) == 0,
	   "resumed: the package from the state (%s)", err);
	ok(rs.st.nhave == 4 && mc_state_has(&rs.st, 3) && rs.found == 1 && rs.st.nspans == 0,
	   "chunks 0-2 from the state, 3 found on the target, its spill forgotten (%u, %ld, %u)", rs.st.nhave, rs.found,
	   rs.st.nspans);
	mc_resume_free(&rs);
	ok(s->ops->announce(s, &a, err, sizeof err) == 0 && s->ops->manifest(s, &p.m, err, sizeof err) == 0 &&
	   chunk(s, &p, 4) == 0 && chunk(s, &p, 5) == 0, "the rest written");
	ok(s->ops->finish(s, &p.m, err, sizeof err) == 0 && access(path("disk.state"), F_OK) < 0, "finished: the state is gone");
	s->ops->close(s);
	fd = open(path("disk"), O_RDONLY);
	ok(fd >= 0 && pread(fd, back, IMG + EXTRA, 0) == (ssize_t)(IMG + EXTRA) && memcmp(back, img, IMG) == 0,
	   "the target equals the image, holes included");
	close(fd);
	ok(back[IMG] == 0xaa && back[IMG + EXTRA - 1] == 0xaa, "bytes past the image left alone");

	/* Refusals, nothing written. */
	ok(make_target(path("other")) == 0 && mc_sink_target_open(path("other"), path("saved.state"), 0, &s, err, sizeof err) == 0,
	   "a sink on another target with that state");
	memset(&rs, 0, sizeof rs);
	ok(s->ops->resume(s, &rs, err, sizeof err) == -EINVAL && strstr(err, "the state of another target") &&
	   mc_sink_target_refused(s), "refused: %s", err);
	s->ops->close(s);
	ok(mc_sink_target_open(dir, path("x.state"), 0, &s, err, sizeof err) == -EINVAL && strstr(err, "is a directory"),
	   "a directory is refused: %s", err);
	ok(mc_sink_target_open("/dev/null", path("x.state"), 0, &s, err, sizeof err) == -EINVAL &&
	   strstr(err, "character device"), "a character device is refused: %s", err);
	ok(mc_sink_target_open(path("other"), path("o.state"), 0, &s, err, sizeof err) == 0, "a sink on the other target");
	memset(&rs, 0, sizeof rs);
	a.image = 0;
	ok(s->ops->resume(s, &rs, err, sizeof err) == 0 && s->ops->announce(s, &a, err, sizeof err) == -EINVAL &&
	   strstr(err, "not a seekable image") && mc_sink_target_refused(s), "a session of a stream package is refused: %s",
	   err);
	s->ops->close(s);
	ok(write_file(path("small"), img, 1000) == 0 &&
	   mc_sink_target_open(path("small"), path("s.state"), 0, &s, err, sizeof err) == 0 &&
	   s->ops->manifest(s, &p.m, err, sizeof err) == -EINVAL && strstr(err, "smaller than the image") &&
	   s->ops->save(s, &st, err, sizeof err) == 0 && access(path("s.state"), F_OK) < 0,
	   "a target smaller than the image is refused once the manifest says so; no state written: %s", err);
	s->ops->close(s);
	ok(write_file(path("bad.state"), "MCTSTAT1 and then nonsense", 26) == 0 &&
	   mc_sink_target_open(path("other"), path("bad.state"), 0, &s, err, sizeof err) == 0, "a damaged state file");
	memset(&rs, 0, sizeof rs);
	ok(s->ops->resume(s, &rs, err, sizeof err) == 0 && !rs.have_m && rs.why[0], "is not used: %s", rs.why);
	s->ops->close(s);
	char sp[256];
	ok(mc_sink_target_state_path(path("disk"), sp, sizeof sp) == 0 && strcmp(sp, path("disk.state")) == 0,
	   "the default state beside a file: %s", sp);
	ok(mc_sink_target_state_path(path("disk"), sp, 8) < 0, "a state path that does not fit is refused");

	mc_pkg_close(&p);
	free(c3);
	free(half);
	free(img);
	free(back);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	return tap_done();
}
