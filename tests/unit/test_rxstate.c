/*
 * What a resumed receiver's state keeps across kills (lib/rxloop.c's saves,
 * the target sink, lib/tstate.c): a target state made by hand marks a few
 * chunks durable and holds parts of others (their stored bytes spilled into
 * their own spans, one part ending inside a symbol); a receiver resumed from
 * it receives a while, the sender is stopped (SIGSTOP) before those chunks,
 * and once the state on disk claims every chunk the receiver verified the
 * receiver is killed (SIGKILL: no final save, only the saves of the state
 * thread). Twice; then once stopped (its final save). Each time the state
 * must still hold every part it started with: an earlier run's durable work
 * is never dropped by a later run's save.
 * A last run completes the target from those parts; it equals the image.
 * Needs root (a network namespace on loopback); skipped otherwise. No timing:
 * the test waits for states, bounded only so that a broken saver fails.
 * The other two users of the resume sequence (mc_tstate_resume) keep the
 * parts too: mcast-repair --to stopped before those chunks, and mcast-pack
 * extract --to --state (MCAST_BIN, default bin/) from a package spoiled at them.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "imgpkg.h"
#include "losession.h"
#include "net.h"
#include "pkg.h"
#include "repair.h"
#include "resume.h"
#include "rxloop.h"
#include "sink.h"
#include "sink_target.h"
#include "target.h"
#include "tap.h"
#include "tstate.h"
#include "txloop.h"

#define CS (64u * 1024)
#define NCH 160u
#define DONE0 4u /* chunks 0..DONE0-1: durable and marked in the first state */

static char dir[] = "/tmp/mc-rxstate-XXXXXX";
static char pkgpath[256], tgtpath[256], statepath[256];
static uint8_t *image;
static uint64_t isize;

/* The parts of chunks the first state holds: the last chunks, never reached before the sender is stopped. */
static const struct mc_span parts[] = {
	{NCH - 3, 0, CS / 2},              /* half a chunk, from its start */
	{NCH - 2, 1000, 5000},             /* ends inside a symbol: kept whole all the same */
	{NCH - 2, 20000, 30001},
	{NCH - 1, 0, 3 * CS / 4},          /* the short last chunk */
};
#define NPARTS (sizeof parts / sizeof parts[0])

/* An image package (format 2) of NCH raw chunks of pseudo-random bytes, the last one short. */
static int make_pkg(void)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL;

	isize = (uint64_t)NCH * CS - 777;
	if ((image = malloc(isize)) == NULL)
		return -1;
	for (uint64_t i = 0; i < isize; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		image[i] = (uint8_t)x;
	}
	return imgpkg_write(pkgpath, "rxstate", image, isize, CS);
}

/*
 * The first state, by hand: a target of zeros with chunks 0..DONE0-1 on it
 * and the stored bytes of parts[] at their spill places (raw chunks: stored
 * bytes are the image's), then a state that says so.
 */
static int make_first_state(void)
{
	struct mc_pkg p;
	struct mc_target *t = NULL;
	struct mc_state st;
	uint8_t tid[MC_DIGEST_LEN];
	char err[512];
	int fd, rc = -1;

	memset(&st, 0, sizeof st);
	if ((fd = open(tgtpath, O_RDWR | O_CREAT | O_TRUNC, 0600)) < 0 || ftruncate(fd, (off_t)isize) < 0 ||
	    pwrite(fd, image, (size_t)DONE0 * CS, 0) != (ssize_t)DONE0 * CS)
		goto out;
	for (size_t i = 0; i < NPARTS; i++) {
		uint64_t at = (uint64_t)parts[i].chunk * CS + parts[i].off; /* raw: the payload offset is the image's */
		if (pwrite(fd, image + at, parts[i].len, (off_t)at) != (ssize_t)parts[i].len)
			goto out;
	}
	if (fsync(fd) < 0 || mc_pkg_open(pkgpath, &p, err, sizeof err) < 0)
		goto out;
	if (mc_target_open(tgtpath, &p.m, 0, &t, err, sizeof err) == 0 && mc_state_init(&st, p.m.id, NCH) == 0 &&
	    (st.spans = malloc(sizeof parts)) != NULL) {
		for (uint32_t i = 0; i < DONE0; i++)
			mc_state_set(&st, i);
		/* The spill place of a payload offset is where this test wrote it. */
		rc = mc_tstate_spill_off(&p.m, (uint64_t)parts[1].chunk * CS + parts[1].off) ==
				     (uint64_t)parts[1].chunk * CS + parts[1].off
			     ? 0
			     : -1;
		memcpy(st.spans, parts, sizeof parts);
		st.nspans = NPARTS;
		mc_target_identity(t, tid);
		if (rc == 0 && mc_tstate_save(statepath, &p.m, tid, &st, err, sizeof err) < 0)
			rc = -1;
	}
	if (rc < 0)
		printf("# first state: %s\n", err);
	mc_target_close(t);
	mc_state_free(&st);
	mc_pkg_close(&p);
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

/* A sender in a child process at rate bit/s; returns its pid. */
static pid_t sender(uint64_t rate)
{
	return losession_sender(pkgpath, "239.9.9.21", 7520, 60000, rate);
}

/* What the receiver in a child process tells the test. */
struct shared {
	volatile uint32_t nhave, chunks;
	volatile int frozen, loaded;
	volatile sig_atomic_t stop; /* set by the test: the receiver stops and makes its final save */
};

struct run {
	volatile sig_atomic_t stop;
	pid_t freeze; /* the sender, SIGSTOP'd once freeze_after chunks came in this run; 0 never */
	unsigned freeze_after, chunks;
	struct shared *sh;
};

static void on_report(void *ctx, struct mc_rxloop *l, const struct mc_rxloop_ev *ev)
{
	struct run *x = ctx;
	uint32_t nh = 0, nc = 0;

	if (ev->kind != MC_REV_CHUNK)
		return;
	x->chunks++;
	mc_recv_have(mc_rxloop_receiver(l), &nh, &nc);
	if (x->sh) {
		x->sh->nhave = nh;
		x->sh->chunks = x->chunks;
	}
	if (x->freeze && x->chunks >= x->freeze_after) {
		kill(x->freeze, SIGSTOP);
		x->freeze = 0;
		if (x->sh)
			x->sh->frozen = 1;
	}
}

/* One receiver run onto the target, resumed from its state; returns the driver's result. */
static int receive(struct run *x, int *complete)
{
	struct mc_rxloop_cfg c;
	struct mc_resume rs;
	struct mc_sink *sink = NULL;
	struct mc_rxloop *l = NULL;
	char err[512];
	int res = -1;

	memset(&c, 0, sizeof c);
	memset(&rs, 0, sizeof rs);
	if (mc_net_group("239.9.9.21", 7520, NULL, &c.g, err, sizeof err) < 0 ||
	    mc_sink_target_open(tgtpath, statepath, 0, &sink, err, sizeof err) < 0 ||
	    sink->ops->resume(sink, &rs, err, sizeof err) < 0) {
		printf("# %s\n", err);
		goto out;
	}
	if (x->sh)
		x->sh->loaded = rs.loaded;
	mc_net_group_port(&c.g, 7521, &c.gfb);
	c.ttl = 1;
	c.core.rid = mc_rxloop_rid(tgtpath);
	c.core.seed = 7;
	c.sink = sink;
	c.rs = &rs;
	c.timeout_ms = 120000;
	c.save_ms = 3600000; /* the saves of the state thread only: one each chunk more */
	c.save_min_ms = 1;
	c.save_bytes = CS;
	c.stop = x->sh ? &x->sh->stop : &x->stop;
	c.report = on_report;
	c.ctx = x;
	if ((res = losession_receive(&c, &l)) >= 0 && complete)
		*complete = mc_rxloop_info(l)->complete;
out:
	mc_rxloop_free(l);
	if (sink)
		sink->ops->close(sink);
	mc_resume_free(&rs);
	return res;
}

/* The state on disk (-1: none or unreadable); spans copied to sp when asked. */
static long state_have(struct mc_state *keep)
{
	struct mc_manifest m;
	struct mc_state st;
	uint8_t tid[MC_DIGEST_LEN];
	char err[512];
	long n = -1;

	if (mc_tstate_load(statepath, &m, tid, &st, err, sizeof err) != 1)
		return -1;
	n = st.nhave;
	mc_manifest_free(&m);
	if (keep)
		*keep = st;
	else
		mc_state_free(&st);
	return n;
}

/* 1 when every byte of parts[] is inside a span of st. */
static int parts_kept(const struct mc_state *st)
{
	for (size_t i = 0; i < NPARTS; i++) {
		uint32_t at = parts[i].off, end = parts[i].off + parts[i].len;
		for (uint32_t j = 0; j < st->nspans && at < end; j++)
			if (st->spans[j].chunk == parts[i].chunk && st->spans[j].off <= at &&
			    at < st->spans[j].off + st->spans[j].len)
				at = st->spans[j].off + st->spans[j].len;
		if (at < end) {
			printf("# chunk %u bytes %u-%u not in the state (%u spans)\n", parts[i].chunk, at, end, st->nspans);
			return 0;
		}
	}
	return 1;
}

static long state_now(void)
{
	return state_have(NULL);
}

/*
 * A receiver resumed, the sender stopped after `after` chunks, the receiver
 * killed once the state caught up; or (stop) stopped then: its final save.
 */
static void killed_run(int round, unsigned after, int stop)
{
	struct shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct mc_state st;
	long before = state_have(NULL), seen = -1;
	int status, killed = 0;

	if (sh == MAP_FAILED) {
		ok(0, "round %d: shared memory (%s)", round, strerror(errno));
		return;
	}
	memset(sh, 0, sizeof *sh);
	/* 20 Mbit/s: the image takes 4 s; the sender is stopped long before the last chunks. */
	pid_t s = sender(20000000);
	pid_t r = fork();
	if (r == 0) {
		struct run x;
		memset(&x, 0, sizeof x);
		x.freeze = s;
		x.freeze_after = after;
		x.sh = sh;
		receive(&x, NULL);
		_exit(0); /* meant to be killed */
	}
	killed = losession_end_saved(r, &sh->frozen, &sh->nhave, state_now, before + 1, stop ? &sh->stop : NULL, &seen);
	kill(s, SIGKILL);
	waitpid(s, &status, 0);
	memset(&st, 0, sizeof st);
	long now = state_have(&st);
	ok(killed && sh->loaded && now > before && now < (long)NCH,
	   "round %d: a resumed receiver %s once its state held every chunk it verified (%ld, had %ld, %u verified)",
	   round, stop ? "stopped" : "killed", now, before, sh->nhave);
	ok(now >= 0 && parts_kept(&st), "round %d: the %s receiver's state still holds the parts of chunks its run started with",
	   round, stop ? "stopped" : "killed");
	mc_state_free(&st);
	munmap(sh, sizeof *sh);
}

static int target_is_image(void)
{
	uint8_t *b = malloc(isize);
	int fd = open(tgtpath, O_RDONLY), same = 0;

	if (b && fd >= 0 && pread(fd, b, isize, 0) == (ssize_t)isize)
		same = memcmp(b, image, isize) == 0;
	if (fd >= 0)
		close(fd);
	free(b);
	return same;
}

/* A copy of the package at path with chunk `bad` and those after it spoiled. */
static int pkg_copy(const char *path, uint32_t bad)
{
	struct mc_pkg p;
	char err[256];
	uint64_t poff;
	int in, out, rc = -1;

	if (mc_pkg_open(pkgpath, &p, err, sizeof err) < 0)
		return -1;
	poff = p.l.payload_off;
	mc_pkg_close(&p);
	uint64_t len = poff + isize;
	uint8_t *b = malloc(len);
	if (b && (in = open(pkgpath, O_RDONLY)) >= 0) {
		if (pread(in, b, len, 0) == (ssize_t)len) {
			for (uint32_t c = bad; c < NCH; c++)
				b[poff + (uint64_t)c * CS + 100] ^= 0x5a; /* no part covers byte 100 of these: the spill stays right */
			if ((out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) >= 0) {
				rc = write(out, b, len) == (ssize_t)len ? 0 : -1;
				close(out);
			}
		}
		close(in);
	}
	free(b);
	return rc;
}

static volatile sig_atomic_t repair_stop;

/* Stops a repair once 20 chunks came: long before the last ones, where the parts are. */
static void repair_event(void *ctx, const struct mc_repair_event *ev)
{
	unsigned *n = ctx;

	if (ev->type == MC_REPAIR_EV_CHUNK && ++*n >= 20)
		repair_stop = 1;
}

/*
 * mcast-repair --to shares the resume sequence: stopped before it reaches
 * the chunks with parts, the state it saves keeps every part.
 */
static void test_repair_keeps_parts(void)
{
	char err[512];
	const char *srcs[1] = {pkgpath};
	struct mc_repair_opts o;
	struct mc_repair_result res;
	struct mc_state st;
	unsigned chunks = 0;

	if (make_first_state() < 0) {
		ok(0, "repair --to: fixtures");
		return;
	}
	repair_stop = 0;
	memset(&o, 0, sizeof o);
	memset(&res, 0, sizeof res);
	o.pkg = pkgpath;
	o.sources = srcs;
	o.event = repair_event;
	o.ctx = &chunks;
	o.stop = &repair_stop;
	o.nsources = 1;
	o.src.parallel = 1;
	o.backoff_base_ms = 1;
	o.max_attempts = 1;
	o.target = tgtpath;
	o.state_path = statepath;
	int rc = mc_repair_run(&o, &res, err, sizeof err);
	if (rc < 0)
		printf("# %s\n", err);
	mc_repair_result_free(&res);
	memset(&st, 0, sizeof st);
	long n = state_have(&st);
	ok(rc == 1 && n > DONE0 && n < NCH - 3, "repair --to stopped mid-way: incomplete, %ld of %u chunks (%d)", n, NCH, rc);
	ok(n >= 0 && parts_kept(&st), "repair --to: its state still holds every part");
	mc_state_free(&st);
}

/*
 * mcast-pack extract --to --state too: a package spoiled from the chunks
 * with parts on writes the others and exits 3; its state keeps every part.
 */
static void test_extract_keeps_parts(void)
{
	char bad[300], cmd[1200];
	const char *bin = getenv("MCAST_BIN") ? getenv("MCAST_BIN") : "bin";
	struct mc_state st;

	snprintf(bad, sizeof bad, "%s/bad.mcpkg", dir);
	snprintf(cmd, sizeof cmd, "%s/mcast-pack", bin);
	if (access(cmd, X_OK) != 0) {
		printf("ok %d - # SKIP extract --to: no %s (MCAST_BIN)\n", ++tap_n, cmd);
		return;
	}
	if (make_first_state() < 0 || pkg_copy(bad, NCH - 3) < 0) {
		ok(0, "extract --to: fixtures");
		return;
	}
	snprintf(cmd, sizeof cmd, "'%s/mcast-pack' -q extract --to '%s' --state '%s' '%s' 2>/dev/null", bin, tgtpath,
		 statepath, bad);
	int w = system(cmd);
	memset(&st, 0, sizeof st);
	long n = state_have(&st);
	ok(WIFEXITED(w) && WEXITSTATUS(w) == 3 && n == NCH - 3,
	   "extract --to --state from a package spoiled at the parts: exit 3, %ld of %u chunks", n, NCH);
	ok(n >= 0 && parts_kept(&st), "extract --to --state: its state still holds every part");
	mc_state_free(&st);
}

static int in_namespace(void)
{
	return losession_namespace();
}

int main(void)
{
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(pkgpath, sizeof pkgpath, "%s/img.mcpkg", dir);
	snprintf(tgtpath, sizeof tgtpath, "%s/target", dir);
	snprintf(statepath, sizeof statepath, "%s/target.state", dir);
	ok(make_pkg() == 0 && make_first_state() == 0, "image package, target and first state made");
	test_repair_keeps_parts();
	test_extract_keeps_parts();
	ok(make_first_state() == 0, "the first state again");
	if (in_namespace()) {
		struct mc_state st;
		memset(&st, 0, sizeof st);
		ok(state_have(&st) == DONE0 && st.nspans == NPARTS && parts_kept(&st), "the first state: %u chunks, %zu parts",
		   DONE0, NPARTS);
		mc_state_free(&st);
		killed_run(1, NCH / 8, 0);
		killed_run(2, NCH / 8, 0);
		/* The final save too: parts not a whole symbol of this session are kept as they are. */
		killed_run(3, NCH / 8, 1);
		/* The last run: everything, the parts taken from the target; the state goes once the target is whole. */
		struct run x;
		int complete = 0, status;
		memset(&x, 0, sizeof x);
		pid_t s = sender(200000000);
		int res = receive(&x, &complete);
		kill(s, SIGKILL);
		waitpid(s, &status, 0);
		ok(res == MC_RXL_COMPLETE && complete, "the last run completes the target (%d)", res);
		ok(target_is_image(), "the target equals the image");
		ok(access(statepath, F_OK) != 0, "the state is gone");
	} else {
		printf("ok %d - # SKIP the session needs root (a network namespace)\n", ++tap_n);
	}
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir);
	free(image);
	return tap_done();
}
