/* Unit tests of lib/tstate.c: the state of a target written in place (format, keys, resume check). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fail.h"
#include "pkg.h"
#include "repair.h"
#include "source.h"
#include "tap.h"
#include "target.h"
#include "tstate.h"

#define SPAN 65536u
#define NSPAN 6
#define IMG ((uint64_t)NSPAN * SPAN)

static char dir[] = "/tmp/mcast-test-tstate.XXXXXX";

static void path(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", dir, name);
}

/* Spans 0, 3 text; 1, 4 zeros (holes); 2, 5 other text. seed changes the text (another package). */
static void fill_img(uint8_t *img, int seed)
{
	for (uint64_t i = 0; i < IMG; i++) {
		uint64_t s = i / SPAN;
		if (s == 0 || s == 3)
			img[i] = (uint8_t)"target state text, "[(i + (uint64_t)seed) % 19];
		else if (s == 2 || s == 5)
			img[i] = (uint8_t)(i * 7 + s);
	}
}

static int make_pkg(const char *src, const char *out, int seed, char *err, size_t errlen)
{
	uint8_t *img = calloc(1, IMG);
	const char *paths[] = {src};
	uint8_t id[MC_ID_LEN];
	int fd, rc;

	fill_img(img, seed);
	fd = open(src, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	rc = fd >= 0 && write(fd, img, IMG) == (ssize_t)IMG ? 0 : -1;
	if (fd >= 0)
		close(fd);
	free(img);
	if (rc < 0)
		return -1;
	struct mc_pkg_create_opts o = {.output = out, .name = seed ? "other" : "img", .compression = MC_COMP_ZSTD,
				       .level = -1, .chunk_size = SPAN, .mtime = 1700000000, .paths = paths,
				       .npaths = 1, .image = 1};
	return mc_pkg_create(&o, id, err, errlen);
}

int main(void)
{
	char src[256], pa[256], pb[256], tg[256], t2[256], sf[256], err[1024] = "";
	struct mc_pkg p, q;
	struct mc_manifest m;
	struct mc_state st, ld;
	struct mc_target *t, *u;
	uint8_t tid[MC_DIGEST_LEN], tid2[MC_DIGEST_LEN];

	ok(mkdtemp(dir) != NULL, "scratch directory");
	path(src, sizeof src, "src.img");
	path(pa, sizeof pa, "a.mcpkg");
	path(pb, sizeof pb, "b.mcpkg");
	path(tg, sizeof tg, "target");
	path(t2, sizeof t2, "target2");
	path(sf, sizeof sf, "state");
	ok(make_pkg(src, pa, 0, err, sizeof err) == 0 && make_pkg(src, pb, 5, err, sizeof err) == 0, "packages: %s", err);
	ok(mc_pkg_open(pa, &p, err, sizeof err) == 0 && mc_pkg_open(pb, &q, err, sizeof err) == 0, "open: %s", err);
	ok(memcmp(p.m.id, q.m.id, MC_ID_LEN) != 0, "two packages");

	ok(mc_tstate_load(sf, &m, tid, &ld, err, sizeof err) == 0, "no state file: 0");

	/* A new target file (reads as zeros): the check finds the holes only. */
	mc_target_open(tg, &p.m, 0, &t, err, sizeof err);
	ok(t != NULL, "target opened: %s", err);
	mc_target_identity(t, tid);
	ok(mc_state_init(&st, p.m.id, p.m.nchunks) == 0, "state");
	ok(mc_tstate_check(t, &p.m, &st, err, sizeof err) == 2 && mc_state_has(&st, 1) && mc_state_has(&st, 4) &&
		   st.nhave == 2, "check: the two holes read as zeros");

	/* Chunk 0 written; chunk 2 half received (a span); saved and loaded back. */
	uint8_t *buf = malloc(SPAN);
	ok(mc_pkg_check_chunk(&p, 0, buf) == 1 && mc_target_put_chunk(t, 0, buf, mc_manifest_chunk_len(&p.m, 0), err,
									 sizeof err) == 0 &&
		   mc_target_sync(t, err, sizeof err) == 0, "chunk 0 on the target: %s", err);
	mc_state_set(&st, 0);
	st.spans = malloc(sizeof *st.spans);
	st.spans[0] = (struct mc_span){2, 0, 10};
	st.nspans = 1;
	ok(mc_tstate_save(sf, &p.m, tid, &st, err, sizeof err) == 0, "saved: %s", err);
	ok(access(sf, F_OK) == 0, "state file there");
	char tmp[300];
	snprintf(tmp, sizeof tmp, "%s.tmp", sf);
	ok(access(tmp, F_OK) < 0, "no temporary left");
	uint8_t lt[MC_DIGEST_LEN];
#ifdef FAIL_PREAD
	pread_fails = EUCLEAN;
	ok(mc_tstate_load(sf, &m, lt, &ld, err, sizeof err) == -EUCLEAN && strstr(err, strerror(EUCLEAN)) &&
		   m.raw == NULL && ld.have == NULL, "a read that fails says its own code and reason, not -EIO: %s", err);
	pread_fails = ENOMEM;
	ok(mc_tstate_load(sf, &m, lt, &ld, err, sizeof err) == -ENOMEM && strstr(err, ": out of memory") &&
		   m.raw == NULL && ld.have == NULL, "a read that fails for want of memory says so (mc_strerror): %s", err);
#endif
	ok(mc_tstate_load(sf, &m, lt, &ld, err, sizeof err) == 1, "loaded: %s", err);
	ok(memcmp(m.id, p.m.id, MC_ID_LEN) == 0 && m.format == 2 && m.nchunks == NSPAN && m.image_size == IMG,
	   "the manifest kept is the package's");
	ok(memcmp(lt, tid, MC_DIGEST_LEN) == 0, "the target identity kept");
	ok(ld.nhave == 3 && mc_state_has(&ld, 0) && mc_state_has(&ld, 1) && mc_state_has(&ld, 4) && !mc_state_has(&ld, 2),
	   "the chunk map kept");
	ok(ld.nspans == 1 && ld.spans[0].chunk == 2 && ld.spans[0].off == 0 && ld.spans[0].len == 10, "the span kept");

	/* Keys: the same package and target pass; another package, another target are refused. */
	ok(mc_tstate_match(sf, &m, lt, &p.m, t, err, sizeof err) == 0, "same package and target");
	ok(mc_tstate_match(sf, &m, lt, NULL, t, err, sizeof err) == 0, "no package known yet");
	ok(mc_tstate_match(sf, &m, lt, &q.m, t, err, sizeof err) == -EINVAL &&
		   strstr(err, "the state of package img") && strstr(err, "not of other") && strstr(err, "refused"),
	   "another package refused: %s", err);
	mc_target_open(t2, &p.m, 0, &u, err, sizeof err);
	ok(u != NULL, "a second target: %s", err);
	mc_target_identity(u, tid2);
	ok(memcmp(tid, tid2, MC_DIGEST_LEN) != 0, "identities differ");
	ok(mc_tstate_match(sf, &m, lt, &p.m, u, err, sizeof err) == -EINVAL &&
		   strstr(err, "another target"), "another target refused: %s", err);
	mc_target_close(u);
	/* t2 removed and made again (it may get the same inode): another target, where files have a birth time. */
	struct statx sx;
	int bt = statx(AT_FDCWD, t2, 0, STATX_BTIME, &sx) == 0 && (sx.stx_mask & STATX_BTIME);
	unlink(t2);
	usleep(2000);
	mc_target_open(t2, &p.m, 0, &u, err, sizeof err);
	uint8_t tid3[MC_DIGEST_LEN];
	if (u)
		mc_target_identity(u, tid3);
	ok(u != NULL && (!bt || memcmp(tid2, tid3, MC_DIGEST_LEN) != 0), "a file made again is another target%s",
	   bt ? "" : " (no birth time here: not checked)");
	if (u)
		mc_target_close(u);

	/* The resume check marks what is right on the target and drops the spans of chunks found. */
	ok(mc_pkg_check_chunk(&p, 2, buf) == 1 && mc_target_put_chunk(t, 2, buf, mc_manifest_chunk_len(&p.m, 2), err,
									 sizeof err) == 0, "chunk 2 written after the save");
	ok(mc_tstate_check(t, &m, &ld, err, sizeof err) == 1 && mc_state_has(&ld, 2) && ld.nspans == 0,
	   "check: chunk 2 found, its span dropped");
	mc_state_free(&ld);
	mc_manifest_free(&m);

	/* Damage: one flipped byte, a truncated file, another kind of file are refused, nothing half-loaded. */
	int fd = open(sf, O_RDWR);
	struct stat sb;
	uint8_t c;
	ok(fd >= 0 && fstat(fd, &sb) == 0 && pread(fd, &c, 1, 100) == 1, "state readable");
	c ^= 1;
	ok(pwrite(fd, &c, 1, 100) == 1, "a byte flipped");
	ok(mc_tstate_load(sf, &m, lt, &ld, err, sizeof err) == -EINVAL && strstr(err, "damaged") &&
		   m.raw == NULL && ld.have == NULL, "damaged state refused: %s", err);
	c ^= 1;
	ok(pwrite(fd, &c, 1, 100) == 1 && ftruncate(fd, sb.st_size - 9) == 0, "truncated");
	ok(mc_tstate_load(sf, &m, lt, &ld, err, sizeof err) == -EINVAL, "truncated state refused: %s", err);
	close(fd);
	ok(mc_tstate_load(pa, &m, lt, &ld, err, sizeof err) == -EINVAL, "a package is not a state: %s", err);
	ok(mc_tstate_load(dir, &m, lt, &ld, err, sizeof err) < 0, "a directory is not a state: %s", err);

	/* Spilled stored bytes land in their chunk's own span, at the same distance from its start. */
	ok(mc_tstate_spill_off(&p.m, mc_manifest_chunk_off(&p.m, 2) + 7) == mc_manifest_span_off(&p.m, 2) + 7 &&
		   mc_tstate_spill_off(&p.m, mc_manifest_chunk_off(&p.m, 5)) == 5 * (uint64_t)SPAN,
	   "spill offsets");

	/* The resume sequence: a damaged state counts as empty (said why), another package's is refused. */
	char why[512] = "";
	long n = mc_tstate_resume(sf, t, &p.m, &ld, why, sizeof why, err, sizeof err);
	ok(n == 4 && ld.nhave == 4 && strstr(why, "damaged"), "resume over a damaged state: the check finds 4 (%s)", why);
	mc_state_free(&ld);
	ok(mc_tstate_save(sf, &p.m, tid, &st, err, sizeof err) == 0, "a good state again");
	n = mc_tstate_resume(sf, t, &p.m, &ld, why, sizeof why, err, sizeof err);
	ok(n == 1 && ld.nhave == 4 && why[0] == '\0', "resume: the state's 3 and chunk 2 found by the check");
	mc_state_free(&ld);
	ok(mc_tstate_resume(sf, t, &q.m, &ld, why, sizeof why, err, sizeof err) == -EINVAL &&
		   ld.have == NULL && strstr(err, "not of other"), "resume refuses the state of another package: %s", err);

	/*
	 * mcast-repair --to over what a receiver left: chunk 0's first 10
	 * stored bytes spilled into its own span (a span in the state), chunk 3
	 * decoded and marked. Only the rest is fetched; the target ends equal
	 * to the image and the state goes.
	 */
	char t3[256], s3[256];
	path(t3, sizeof t3, "target3");
	path(s3, sizeof s3, "state3");
	mc_target_open(t3, &p.m, 0, &u, err, sizeof err);
	ok(u != NULL, "a third target: %s", err);
	mc_target_identity(u, tid2);
	struct mc_state rs;
	ok(mc_state_init(&rs, p.m.id, p.m.nchunks) == 0 && mc_pkg_check_chunk(&p, 0, buf) == 1 &&
		   mc_target_pwrite(u, buf, 10, mc_tstate_spill_off(&p.m, mc_manifest_chunk_off(&p.m, 0))) == 0 &&
		   mc_pkg_check_chunk(&p, 3, buf) == 1 &&
		   mc_target_put_chunk(u, 3, buf, mc_manifest_chunk_len(&p.m, 3), err, sizeof err) == 0 &&
		   mc_target_sync(u, err, sizeof err) == 0, "a receiver's leftovers: %s", err);
	mc_state_set(&rs, 3);
	rs.spans = malloc(sizeof *rs.spans);
	rs.spans[0] = (struct mc_span){0, 0, 10};
	rs.nspans = 1;
	ok(mc_tstate_save(s3, &p.m, tid2, &rs, err, sizeof err) == 0, "its state saved: %s", err);
	mc_state_free(&rs);
	mc_target_close(u);
	const char *srcs[] = {pa};
	struct mc_repair_opts ro = {.pkg = t3, .sources = srcs, .nsources = 1, .src = {.parallel = 1},
				    .target = t3, .state_path = s3};
	struct mc_repair_result res;
	uint64_t want = 0;
	for (uint32_t i = 0; i < p.m.nchunks; i++)
		want += i == 3 ? 0 : mc_manifest_chunk_len(&p.m, i);
	ok(mc_source_global_init() == 0, "sources ready");
	int rc = mc_repair_run(&ro, &res, err, sizeof err);
	ok(rc == 0 && res.missing == 0 && res.had == 3, "repair --to complete (had the two holes and chunk 3): %d %s", rc,
	   err);
	ok(res.bytes_need == want - 10, "only the rest of chunk 0 was needed (%llu of %llu)",
	   (unsigned long long)res.bytes_need, (unsigned long long)want);
	ok(access(s3, F_OK) < 0, "the state went");
	mc_repair_result_free(&res);
	mc_source_global_cleanup();
	uint8_t *a1 = calloc(1, IMG), *a2 = malloc(IMG);
	int f2 = open(t3, O_RDONLY);
	if (a1)
		fill_img(a1, 0);
	ok(a1 && a2 && f2 >= 0 && pread(f2, a2, IMG, 0) == (ssize_t)IMG && memcmp(a1, a2, IMG) == 0,
	   "the target equals the image");
	free(a1);
	free(a2);
	if (f2 >= 0)
		close(f2);
	unlink(t3);

	free(buf);
	mc_state_free(&st);
	mc_target_close(t);
	mc_pkg_close(&p);
	mc_pkg_close(&q);
	unlink(src);
	unlink(pa);
	unlink(pb);
	unlink(tg);
	unlink(t2);
	unlink(sf);
	rmdir(dir);
	return tap_done();
}
