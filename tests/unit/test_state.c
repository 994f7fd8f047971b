/* Unit tests of lib/state.c: PKG.state round trip, spans, staleness against PKG.part. */
#include "fail.h"
#include "state.h"
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/mcast-test-state.XXXXXX";
static char pkg[256];

static int open_part(void)
{
	char err[256];
	int fd = mc_state_open_part(pkg, err, sizeof err);

	if (fd < 0)
		fprintf(stderr, "%s\n", err);
	return fd;
}

static void test_round_trip(void)
{
	struct mc_state st, back;
	uint8_t id[MC_ID_LEN];
	char err[256] = "";
	int fd = open_part();

	ok(fd >= 0, "PKG.part opened");
	ok(pwrite(fd, "0123456789", 10, 0) == 10, "PKG.part written");
	memset(id, 0x5a, sizeof id);
	ok(mc_state_init(&st, id, 20) == 0, "state made");
	mc_state_set(&st, 3);
	mc_state_set(&st, 19);
	st.spans = malloc(3 * sizeof *st.spans);
	st.spans[0] = (struct mc_span){4, 0, 100};
	st.spans[1] = (struct mc_span){4, 200, 50};
	st.spans[2] = (struct mc_span){7, 1000, 1};
	st.nspans = 3;
	ok(mc_state_save(pkg, fd, &st, err, sizeof err) == 0, "saved: %s", err);
#ifdef FAIL_PREAD
	pread_fails = EUCLEAN;
	ok(mc_state_load(pkg, fd, &back, err, sizeof err) == -EUCLEAN && strstr(err, ".state: ") &&
		   strstr(err, strerror(EUCLEAN)) && back.have == NULL,
	   "a read that fails says its own code and reason, not -EIO: %s", err);
#endif
#ifdef FAIL_PREAD
	/* A code is said through mc_strerror (lib/exitcode.h): no memory reads as such, not as a device fault. */
	pread_fails = ENOMEM;
	ok(mc_state_load(pkg, fd, &back, err, sizeof err) == -ENOMEM && strstr(err, ".state: out of memory") &&
		   back.have == NULL, "a read that fails for want of memory says so: %s", err);
	fstat_fails = ENOMEM;
	ok(mc_state_save(pkg, fd, &st, err, sizeof err) == -ENOMEM && strstr(err, ".part: out of memory"),
	   "a save whose fstat of PKG.part fails for want of memory says so: %s", err);
#endif
	ok(mc_state_save(pkg, -1, &st, err, sizeof err) == -EBADF && strstr(err, ".part: ") && strstr(err, strerror(EBADF)),
	   "a save with no PKG.part open says fstat's code and reason: %s", err);
	ok(mc_state_load(pkg, fd, &back, err, sizeof err) == 1, "loaded: %s", err);
	ok(back.nchunks == 20 && back.nhave == 2 && mc_state_has(&back, 3) && mc_state_has(&back, 19) &&
	       !mc_state_has(&back, 4), "the map comes back");
	ok(back.nspans == 3 && back.spans[1].chunk == 4 && back.spans[1].off == 200 && back.spans[1].len == 50 &&
	       back.spans[2].chunk == 7, "the spans come back");
	mc_state_free(&back);

	/* Written to after the save (a killed receiver, another program): stale. */
	usleep(20000);
	ok(pwrite(fd, "x", 1, 3) == 1, "PKG.part changed");
	ok(mc_state_load(pkg, fd, &back, err, sizeof err) == -EBADMSG && strstr(err, "changed") != NULL,
	   "a state older than PKG.part is refused: %s", err);
	ok(mc_state_save(pkg, fd, &st, err, sizeof err) == 0, "saved again");
	ok(ftruncate(fd, 5) == 0, "PKG.part truncated");
	ok(mc_state_load(pkg, fd, &back, err, sizeof err) == -EBADMSG, "a truncated PKG.part is noticed: %s", err);
	ok(mc_state_save(pkg, fd, &st, err, sizeof err) == 0, "saved again");
	ok(mc_state_load(pkg, -1, &back, err, sizeof err) == 1, "without PKG.part, no check");
	mc_state_free(&back);

	/* Spans out of order: the map stays, the spans go. */
	st.spans[1] = (struct mc_span){4, 50, 10}; /* overlaps the first */
	ok(mc_state_save(pkg, fd, &st, err, sizeof err) == 0, "saved with overlapping spans");
	ok(mc_state_load(pkg, fd, &back, err, sizeof err) == 1 && back.nspans == 0 && back.nhave == 2,
	   "overlapping spans dropped, map kept (%u spans)", back.nspans);
	mc_state_free(&back);

	/* Fit to a manifest: verified chunks and spans past a chunk's end go. */
	struct mc_manifest m;
	memset(&m, 0, sizeof m);
	m.chunk_size = 65536;
	m.nchunks = 20;
	m.payload_size = 19ull * 65536 + 500;
	st.spans[0] = (struct mc_span){3, 0, 100};   /* chunk 3 is verified */
	st.spans[1] = (struct mc_span){5, 65000, 536}; /* fits exactly */
	st.spans[2] = (struct mc_span){19, 400, 101};  /* past the short last chunk */
	ok(mc_state_spans_fit(&st, &m) == 1 && st.spans[0].chunk == 5, "fit keeps only what fits");
	mc_state_free(&st);

	/* A damaged file: refused, not trusted. */
	char path[300];
	snprintf(path, sizeof path, "%s.state", pkg);
	int sfd = open(path, O_WRONLY);
	ok(sfd >= 0 && pwrite(sfd, "X", 1, 40) == 1, "state damaged");
	close(sfd);
	ok(mc_state_load(pkg, fd, &back, err, sizeof err) == -EBADMSG && strstr(err, "damaged") != NULL, "damage found: %s", err);

	/* Held elsewhere: the lock is per open file, so a second open here is another program's. */
	snprintf(path, sizeof path, "%s.part", pkg);
	int fd2 = open(path, O_RDWR);
	ok(fd2 >= 0 && mc_state_lock(fd2) == -EWOULDBLOCK, "a held PKG.part: mc_state_lock says -EWOULDBLOCK");
	close(fd2);
	err[0] = '\0';
	ok(mc_state_open_part(pkg, err, sizeof err) == -EWOULDBLOCK && strstr(err, "in use by another process"),
	   "mc_state_open_part of a held PKG.part: -EWOULDBLOCK: %s", err);
#ifdef FAIL_PREAD
	/* A file system without locks is not another process: the lock's own reason. */
	flock_fails = ENOLCK;
	err[0] = '\0';
	ok(mc_state_open_part(pkg, err, sizeof err) == -ENOLCK && strstr(err, "cannot lock: ") != NULL &&
	       strstr(err, "in use") == NULL,
	   "mc_state_open_part whose lock fails with ENOLCK: -ENOLCK: %s", err);
#endif

	/* More than the file system holds: -ENOSPC naming what is short, errno left alone. */
	errno = 0;
	ok(mc_state_space_check(pkg, ".part", fd, UINT64_MAX / 2, err, sizeof err) == -ENOSPC && errno == 0 &&
	       strstr(err, "not enough space") != NULL,
	   "space check: -ENOSPC: %s", err);
	ok(mc_state_space_check(pkg, ".part", fd, 1, err, sizeof err) == 0, "space check: one byte fits");
	close(fd);
	ok(mc_state_lock(-1) == -EBADF, "mc_state_lock of a bad fd: flock's -EBADF");
}

int main(void)
{
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(pkg, sizeof pkg, "%s/p.mcpkg", dir);
	test_round_trip();
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return tap_done();
}
