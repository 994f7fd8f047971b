/*
 * The session drivers (lib/txloop, lib/rxloop) and the package file sink
 * with the one resume sequence (lib/sink_pkg.c, lib/resume.c): a whole
 * package sent and received over multicast on loopback inside a network
 * namespace this test makes (root only; skipped otherwise), a receiver
 * stopped mid-session that resumes and finishes, the resume rule without
 * any network, a receiver killed mid-session after its state was saved
 * early (every few chunks verified, long before the save interval) that
 * resumes from that state, and the send driver on a fake clock and fake
 * network feeding receiver cores in this process (lossy, deterministic, no
 * sockets).
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
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "imgpkg.h"
#include "losession.h"
#include "net.h"
#include "pace.h"
#include "pkg.h"
#include "rand.h"
#include "resume.h"
#include "rxloop.h"
#include "sink.h"
#include "state.h"
#include "tap.h"
#include "txloop.h"

#define CS (64u * 1024)
#define NCH 200u

static char dir[] = "/tmp/mc-driver-XXXXXX";
static char pkgpath[256], outpath[256], imgpath[256];
static uint8_t *payload;
static uint64_t psize;

/* A raw package of NCH chunks of random bytes (the last one short). */
static int make_pkg(void)
{
	struct mc_manifest m;
	struct mc_pkg_layout l;
	uint8_t *dg;
	char err[256];
	int fd, rc = -1;

	psize = (uint64_t)NCH * CS - 1234;
	payload = malloc(psize);
	dg = malloc((size_t)NCH * MC_DIGEST_LEN);
	if (!payload || !dg)
		return -1;
	for (uint64_t i = 0; i < psize; i++)
		payload[i] = (uint8_t)(i * 2654435761u >> 13);
	memset(&m, 0, sizeof m);
	snprintf(m.name, sizeof m.name, "drv");
	m.chunk_size = CS;
	m.payload_size = psize;
	m.nchunks = NCH;
	m.compression = MC_COMP_NONE;
	m.kind = MC_KIND_RAW;
	mc_digest(payload, psize, m.payload_digest);
	for (uint32_t i = 0; i < NCH; i++) {
		uint64_t off = (uint64_t)i * CS;
		mc_digest(payload + off, psize - off < CS ? psize - off : CS, dg + (size_t)i * MC_DIGEST_LEN);
	}
	if (mc_manifest_encode(&m, dg, err, sizeof err) < 0)
		goto out;
	mc_manifest_layout(&m, &l);
	fd = open(pkgpath, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0 && mc_pkg_write_head(fd, &m) == 0 &&
	    pwrite(fd, payload, psize, (off_t)l.payload_off) == (ssize_t)psize)
		rc = 0;
	if (fd >= 0)
		close(fd);
	mc_manifest_free(&m);
out:
	free(dg);
	return rc;
}

/* The same bytes as an image package (format 2): NCH spans of CS stored raw, the last short. */
static int make_image_pkg(void)
{
	return imgpkg_write(imgpath, "drvimg", payload, psize, CS);
}

static int same_file(const char *a, const char *b)
{
	char cmd[600];
	snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
	return system(cmd) == 0;
}

/* A sender in a child process at rate bit/s for at most max_ms; returns its pid. */
static pid_t sender(uint64_t max_ms, uint64_t rate)
{
	return losession_sender(pkgpath, "239.9.9.9", 7500, max_ms, rate);
}

/* What a receiver in a child process tells the test (shared memory). */
struct rxshared {
	volatile uint32_t nhave;        /* verified chunks, after every event */
	volatile uint32_t at_manifest;  /* verified chunks when the manifest came: what a first save can hold */
	volatile int manifest, frozen;
};

struct rxrun {
	volatile sig_atomic_t stop;
	int stop_after;        /* chunks verified in this run before *stop is set; 0 never */
	unsigned chunks, sessions, completes;
	uint64_t save_ms, save_min_ms, save_bytes, timeout_ms; /* mc_rxloop_cfg's; 0 the defaults (timeout 10 s) */
	pid_t freeze;          /* SIGSTOP'd once freeze_after chunks are verified; 0 none */
	unsigned freeze_after;
	struct rxshared *sh;   /* or NULL */
};

static void on_report(void *ctx, struct mc_rxloop *l, const struct mc_rxloop_ev *ev)
{
	struct rxrun *x = ctx;

	if (ev->kind == MC_REV_SESSION)
		x->sessions++;
	if (ev->kind == MC_REV_COMPLETE)
		x->completes++;
	if (ev->kind == MC_REV_CHUNK && ++x->chunks >= (unsigned)x->stop_after && x->stop_after)
		x->stop = 1;
	if (x->sh) {
		uint32_t nh = 0, nc = 0;
		mc_recv_have(mc_rxloop_receiver(l), &nh, &nc);
		x->sh->nhave = nh;
		if (ev->kind == MC_REV_MANIFEST) {
			x->sh->at_manifest = nh;
			x->sh->manifest = 1;
		}
	}
	/* The sender stops in the middle of the package: nothing more can come, the saver catches up. */
	if (ev->kind == MC_REV_CHUNK && x->freeze && x->chunks >= x->freeze_after) {
		kill(x->freeze, SIGSTOP);
		x->freeze = 0;
		if (x->sh)
			x->sh->frozen = 1;
	}
}

/* One receiver run into outpath; returns the driver's result, fills nhave/nchunks. */
static int receive(struct rxrun *x, struct mc_resume *rs, uint32_t *nhave, uint32_t *nchunks)
{
	struct mc_rxloop_cfg c;
	struct mc_sink *sink = NULL;
	struct mc_rxloop *l = NULL;
	char err[512];
	int res = -1;

	memset(&c, 0, sizeof c);
	*nhave = *nchunks = 0;
	if (mc_net_group("239.9.9.9", 7500, NULL, &c.g, err, sizeof err) < 0 ||
	    mc_sink_pkg_open(outpath, &sink, err, sizeof err) < 0 || sink->ops->resume(sink, rs, err, sizeof err) < 0) {
		printf("# %s\n", err);
		goto out;
	}
	mc_net_group_port(&c.g, 7501, &c.gfb);
	c.ttl = 1;
	c.core.rid = mc_rxloop_rid(outpath);
	c.core.seed = 42;
	c.sink = sink;
	c.rs = rs;
	c.timeout_ms = x->timeout_ms ? x->timeout_ms : 10000;
	c.save_ms = x->save_ms;
	c.save_min_ms = x->save_min_ms;
	c.save_bytes = x->save_bytes;
	c.stop = &x->stop;
	c.report = on_report;
	c.ctx = x;
	if ((res = losession_receive(&c, &l)) >= 0)
		mc_recv_have(mc_rxloop_receiver(l), nhave, nchunks);
out:
	mc_rxloop_free(l);
	if (sink)
		sink->ops->close(sink);
	return res;
}

static int in_namespace(void)
{
	return losession_namespace();
}

static void test_session(void)
{
	struct rxrun x;
	struct mc_resume rs = {0};
	uint32_t nh, nc;
	int st = -1;

	/* A receiver stopped once a chunk is verified keeps PKG.part and its state. */
	memset(&x, 0, sizeof x);
	x.stop_after = 1;
	/* 50 Mbit/s: a receiver would have to be kept off the CPU for 2 s to find the whole package queued. */
	pid_t s = sender(20000, 50000000);
	int res = receive(&x, &rs, &nh, &nc);
	kill(s, SIGKILL);
	waitpid(s, &st, 0);
	ok(res == MC_RXL_INTERRUPTED, "stopped receiver: interrupted (%d)", res);
	ok(nc == NCH && nh >= 1 && nh < NCH, "stopped mid-way: %u of %u chunks", nh, nc);
	char part[300], state[300];
	snprintf(part, sizeof part, "%s.part", outpath);
	snprintf(state, sizeof state, "%s.state", outpath);
	ok(access(part, F_OK) == 0 && access(state, F_OK) == 0 && access(outpath, F_OK) != 0,
	   "PKG.part and PKG.state kept, no PKG");
	mc_resume_free(&rs);
	uint32_t had = nh;

	/* Run again: what was verified is resumed, the rest received, PKG is the package. */
	memset(&x, 0, sizeof x);
	s = sender(20000, 200000000);
	res = receive(&x, &rs, &nh, &nc);
	ok(rs.have_m && rs.st.nhave >= had, "resumed with %u chunks (had %u)", rs.have_m ? rs.st.nhave : 0, had);
	ok(res == MC_RXL_COMPLETE && nh == NCH, "resumed receiver completes (%d, %u of %u)", res, nh, nc);
	ok(x.chunks <= NCH - had, "only the missing chunks were received again (%u, had %u)", x.chunks, had);
	ok(x.sessions == 1 && x.completes == 1, "one session, one completion reported");
	ok(same_file(outpath, pkgpath), "PKG equals the sent package");
	ok(access(part, F_OK) != 0 && access(state, F_OK) != 0, "PKG.part and PKG.state gone");
	waitpid(s, &st, 0);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "sender ended the session by itself (status %d)", st);
	mc_resume_free(&rs);
}

/* Verified chunks PKG.state claims (part_fd -1: read as it is, however PKG.part changed); 0 when there is none. */
static uint32_t state_on_disk(void)
{
	struct mc_state st;
	char err[512];
	uint32_t n = 0;

	if (mc_state_load(outpath, -1, &st, err, sizeof err) == 1)
		n = st.nhave;
	mc_state_free(&st);
	return n;
}

static long state_on_disk_n(void)
{
	return state_on_disk();
}

/*
 * The early save: with save_ms an hour, a state on disk that holds chunks
 * verified after the first save can only come from the save made once
 * save_bytes more are verified. The receiver runs in a child process that
 * stops the sender (SIGSTOP) in the middle of the package; once PKG.state
 * claims every chunk the receiver verified it is killed (SIGKILL: no final
 * save), and a second run resumes from that state without receiving those
 * chunks again. No timing: the test waits for states, bounded only so that
 * a broken saver fails instead of hanging.
 */
static void test_early_save(void)
{
	struct rxshared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct mc_resume rs = {0};
	struct rxrun x;
	uint32_t nh, nc, saved = 0, seen = 0;
	char part[300], state[300];
	int st = -1, killed = 0;

	if (sh == MAP_FAILED) {
		ok(0, "early save: shared memory (%s)", strerror(errno));
		return;
	}
	memset(sh, 0, sizeof *sh);
	snprintf(part, sizeof part, "%s.part", outpath);
	snprintf(state, sizeof state, "%s.state", outpath);
	unlink(outpath);
	unlink(part);
	unlink(state);
	/*
	 * 20 Mbit/s: the package takes 5 s, the sender is stopped at a tenth of
	 * it (a receiver would have to be kept off the CPU for 4 s to find the
	 * rest queued).
	 */
	pid_t s = sender(60000, 20000000);
	pid_t r = fork();
	if (r == 0) {
		memset(&x, 0, sizeof x);
		x.save_ms = 3600000;
		x.save_min_ms = 1;
		x.save_bytes = CS; /* any chunk more: the state catches up with every chunk verified */
		x.timeout_ms = 120000;
		x.freeze = s;
		x.freeze_after = NCH / 10;
		x.sh = sh;
		receive(&x, &rs, &nh, &nc);
		_exit(0); /* the receiver was meant to be killed */
	}
	/* The same count on disk as in the receiver, three looks in a row: the saver caught up. */
	long last = -1;
	killed = losession_end_saved(r, &sh->frozen, &sh->nhave, state_on_disk_n, NCH / 10, NULL, &last);
	seen = last < 0 ? 0 : (uint32_t)last;
	kill(s, SIGKILL);
	waitpid(s, &st, 0);
	saved = state_on_disk();
	ok(killed && sh->manifest && saved >= NCH / 10 && saved < NCH,
	   "early save: a receiver stopped at %u of %u chunks was killed with all of them in PKG.state (%u, last seen %u, %u verified)",
	   NCH / 10, NCH, saved, seen, sh->nhave);
	ok(sh->manifest && sh->at_manifest < saved,
	   "early save: PKG.state holds chunks verified after the manifest (%u, then %u), with save_ms an hour", sh->at_manifest,
	   saved);

	/* Resume: the state is trusted (nothing was written after it) and its chunks are not received again. */
	memset(&x, 0, sizeof x);
	s = sender(20000, 200000000);
	int res = receive(&x, &rs, &nh, &nc);
	ok(rs.have_m && rs.loaded == 1 && rs.st.nhave >= saved,
	   "early save: the killed receiver's state is loaded (loaded %d, %u chunks, %u saved)", rs.loaded,
	   rs.have_m ? rs.st.nhave : 0, saved);
	ok(res == MC_RXL_COMPLETE && nh == NCH && x.chunks <= NCH - saved,
	   "early save: the resumed receiver completes receiving only what was not saved (%d, %u received, %u saved)", res,
	   x.chunks, saved);
	ok(same_file(outpath, pkgpath) && access(part, F_OK) != 0 && access(state, F_OK) != 0,
	   "early save: PKG equals the sent package, PKG.part and PKG.state gone");
	waitpid(s, &st, 0);
	mc_resume_free(&rs);
	munmap(sh, sizeof *sh);
}

static int refuse(void *ctx, const struct mc_manifest *m, char *err, size_t errlen)
{
	snprintf(err, errlen, "refused here");
	return -EPERM;
}

/* The resume rule, no network: a state is a lower bound; a stale one is not trusted. */
static void test_resume(void)
{
	struct mc_resume rs = {0};
	struct mc_pkg p;
	struct mc_sink *sink;
	struct mc_state st;
	char err[512], part[300];
	int fd;

	snprintf(part, sizeof part, "%s.part", outpath);
	unlink(outpath);
	ok(mc_pkg_open(pkgpath, &p, err, sizeof err) == 0, "package opens");
	/* PKG.part with chunks 0-9 and its head; a state marking only 0-4. */
	ok(mc_sink_pkg_open(outpath, &sink, err, sizeof err) == 0, "sink opens");
	ok(sink->ops->resume(sink, &rs, err, sizeof err) == 0 && !rs.have_m, "empty PKG.part: nothing to resume");
	ok(sink->ops->manifest(sink, &p.m, err, sizeof err) == 0, "head written");
	ok(mc_sink_write(sink, 0, payload, 10 * CS, err, sizeof err) == 0, "chunks 0-9 written");
	uint8_t back[100];
	ok(mc_sink_read(sink, 5 * CS + 7, back, sizeof back, err, sizeof err) == 0 &&
	   memcmp(back, payload + 5 * CS + 7, sizeof back) == 0, "read back at a payload offset");
	mc_state_init(&st, p.m.id, NCH);
	for (uint32_t i = 0; i < 5; i++)
		mc_state_set(&st, i);
	ok(sink->ops->sync(sink, err, sizeof err) == 0 && sink->ops->save(sink, &st, err, sizeof err) == 0, "state saved");
	sink->ops->close(sink);
	mc_resume_free(&rs);

	fd = open(part, O_RDWR);
	ok(mc_resume_part(outpath, fd, 0, &rs, err, sizeof err) == 1, "resumes");
	ok(rs.loaded == 1 && rs.st.nhave == 10 && rs.found == 5 && rs.why[0] == '\0',
	   "the state is loaded and the unmarked chunks checked: %u verified, %ld found", rs.st.nhave, rs.found);
	mc_resume_free(&rs);
	/* PKG.part changed after the state: stale, not loaded, every chunk checked. */
	ok(pwrite(fd, "x", 1, 100000000) == 1, "PKG.part changed");
	ok(mc_resume_part(outpath, fd, 0, &rs, err, sizeof err) == 1 && rs.loaded == 0 && rs.why[0] != '\0' &&
	   rs.st.nhave == 10, "a stale state is not trusted (%s), the check finds %u", rs.why, rs.st.nhave);
	mc_resume_free(&rs);
	/* A damaged chunk 2 is found missing even when the state is rescanned. */
	ok(pwrite(fd, "y", 1, (off_t)(p.l.payload_off + 2 * CS + 9)) == 1, "chunk 2 damaged");
	ok(mc_resume_part(outpath, fd, MC_RESUME_SAVE, &rs, err, sizeof err) == 1 && !mc_state_has(&rs.st, 2) &&
	   rs.st.nhave == 9, "a damaged chunk is not counted (%u)", rs.st.nhave);
	mc_resume_free(&rs);
	ok(mc_resume_part(outpath, fd, 0, &rs, err, sizeof err) == 1 && rs.loaded == 1 && rs.found == 0,
	   "MC_RESUME_SAVE kept what the check found (loaded %d, found %ld)", rs.loaded, rs.found);
	mc_resume_free(&rs);
	/* accept() refuses the package before anything is read or written: no state appears. */
	char sf0[300];
	snprintf(sf0, sizeof sf0, "%s.state", outpath);
	unlink(sf0);
	rs.accept = refuse;
	ok(mc_resume_part(outpath, fd, MC_RESUME_SAVE, &rs, err, sizeof err) == -EPERM && strcmp(err, "refused here") == 0 &&
	   access(sf0, F_OK) != 0, "a package accept() refuses is not resumed, and no state is written");
	rs.accept = NULL;
	mc_resume_free(&rs);
	close(fd);
	mc_state_free(&st);
	mc_pkg_close(&p);
	unlink(part);
	char sf[300];
	snprintf(sf, sizeof sf, "%s.state", outpath);
	unlink(sf);
}


/* The send driver in a fake world: its clock moves only when it waits; its datagrams reach receiver cores here. */
#define NRX 3
struct fake {
	uint64_t now;                  /* ns */
	struct mc_receiver *r[NRX];
	uint8_t *out[NRX];
	double loss[NRX];
	int complete[NRX];
	uint64_t rng;
	struct { unsigned from; size_t len; uint8_t buf[MC_WIRE_FEEDBACK_MAX]; } fb[4096];
	unsigned nfb, fbhead;
	uint64_t waited, datagrams;
	unsigned man_drop[NRX];        /* manifest datagrams still to be lost at receiver i */
	int behind[NRX];               /* receiver i reads as one behind in its reading: mc_recv_alive after each datagram */
	unsigned loss_reports;         /* NACKs with no entries that told a loss, as the sender got them */
	const uint8_t *src;            /* the payload the sender reads; NULL: payload */
};

static struct fake fk;

static double fk_u(void)
{
	return (double)(mc_xorshift(&fk.rng) >> 11) / 9007199254740992.0;
}

static int fk_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	memcpy((uint8_t *)ctx + off, buf, len);
	return 0;
}

static int fk_read(void *ctx, uint64_t off, void *buf, size_t len)
{
	memcpy(buf, (uint8_t *)ctx + off, len);
	return 0;
}

/* Events and feedback of receiver i after it was fed or ticked. */
static void fk_after(unsigned i)
{
	struct mc_recv_event ev;
	size_t n;

	while (mc_recv_event(fk.r[i], &ev))
		if (ev.kind == MC_REV_COMPLETE)
			fk.complete[i] = 1;
	while (fk.nfb < 4096 && (n = mc_recv_feedback(fk.r[i], fk.fb[(fk.fbhead + fk.nfb) % 4096].buf, MC_WIRE_FEEDBACK_MAX)) > 0) {
		fk.fb[(fk.fbhead + fk.nfb) % 4096].from = i;
		fk.fb[(fk.fbhead + fk.nfb) % 4096].len = n;
		fk.nfb++;
	}
}

static void fk_deliver(const uint8_t *p, size_t len)
{
	fk.datagrams++;
	for (unsigned i = 0; i < NRX; i++) {
		if (fk_u() < fk.loss[i])
			continue;
		if (fk.man_drop[i] && len > 4 && p[4] == MC_PKT_MANIFEST) {
			fk.man_drop[i]--;
			continue;
		}
		mc_recv_packet(fk.r[i], fk.now / 1000000, p, len);
		if (fk.behind[i])
			mc_recv_alive(fk.r[i], fk.now / 1000000);
		fk_after(i);
	}
}

static uint64_t fk_now(void *ctx) { return fk.now; }

static void fk_wait(void *ctx, uint64_t ns)
{
	uint64_t end = fk.now + ns;

	fk.waited += ns;
	/* The whole time passes, feedback or not: a fake clock moves only here. */
	while (fk.now < end) {
		uint64_t next = end;
		for (unsigned i = 0; i < NRX; i++) {
			uint64_t t = mc_recv_next(fk.r[i]);
			if (t < UINT64_MAX / 1000000 && t * 1000000 < next)
				next = t * 1000000;
		}
		fk.now = next > fk.now ? next : fk.now + 1000;
		if (fk.now > end)
			fk.now = end;
		for (unsigned i = 0; i < NRX; i++) {
			mc_recv_tick(fk.r[i], fk.now / 1000000);
			fk_after(i);
		}
	}
}

static int fk_send(void *ctx, const void *buf, size_t len)
{
	fk_deliver(buf, len);
	return 0;
}

static int fk_send_batch(void *ctx, struct iovec *iov, unsigned nseg, uint16_t seg, int gso)
{
	uint8_t d[9000];

	for (unsigned k = 0; k < nseg; k++) {
		size_t a = iov[2 * k].iov_len, b = iov[2 * k + 1].iov_len;
		memcpy(d, iov[2 * k].iov_base, a);
		memcpy(d + a, iov[2 * k + 1].iov_base, b);
		fk_deliver(d, a + b);
	}
	return 0;
}

static size_t fk_recv(void *ctx, uint8_t *buf, size_t cap, struct sockaddr_storage *from)
{
	if (fk.nfb == 0)
		return 0;
	unsigned i = fk.fb[fk.fbhead].from;
	size_t n = fk.fb[fk.fbhead].len;
	memcpy(buf, fk.fb[fk.fbhead].buf, n < cap ? n : cap);
	struct mc_pkt q;
	if (mc_wire_decode(fk.fb[fk.fbhead].buf, n, &q) == 0 && q.type == MC_PKT_NACK && q.u.nack.n == 0 && q.flags)
		fk.loss_reports++;
	struct sockaddr_in *sin = (struct sockaddr_in *)from;
	memset(from, 0, sizeof *from);
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(0xc6120701u + i); /* 198.18.7.1 + i */
	sin->sin_port = htons(7501);
	/* Feedback is multicast: the other receivers hear it (NACK suppression). */
	for (unsigned j = 0; j < NRX; j++)
		if (j != i)
			mc_recv_packet(fk.r[j], fk.now / 1000000, fk.fb[fk.fbhead].buf, n);
	fk.fbhead = (fk.fbhead + 1) % 4096;
	fk.nfb--;
	return n;
}

static int fk_pread(void *ctx, uint64_t off, void *buf, size_t len)
{
	memcpy(buf, (fk.src ? fk.src : payload) + off, len);
	return 0;
}

/* A fake world at its start: the clock, the random stream, no loss yet. */
static void fk_begin(uint64_t rng)
{
	memset(&fk, 0, sizeof fk);
	fk.now = 1000000000000ULL;
	fk.rng = rng;
}

/* Its NRX receiver cores, ids rid0.., back-off seeds seed0.., each into a buffer of its own. */
static void fk_receivers(uint64_t rid0, uint64_t seed0)
{
	for (unsigned i = 0; i < NRX; i++) {
		struct mc_recv_cfg rc;
		memset(&rc, 0, sizeof rc);
		fk.out[i] = calloc(1, psize);
		rc.rid = rid0 + i;
		rc.seed = seed0 + i;
		rc.io = (struct mc_recv_io){fk.out[i], fk_write, fk_read};
		fk.r[i] = mc_recv_new(&rc);
	}
}

/* Receivers that completed with the payload, byte for byte. */
static unsigned fk_identical(void)
{
	unsigned same = 0;

	for (unsigned i = 0; i < NRX; i++)
		same += fk.complete[i] && memcmp(fk.out[i], payload, psize) == 0;
	return same;
}

static void fk_end(void)
{
	for (unsigned i = 0; i < NRX; i++) {
		mc_recv_free(fk.r[i]);
		free(fk.out[i]);
	}
}

/* A send driver on io (a fake world) for package p: group 239.9.9.9:7500, GSO trains, linger 0.3 s. */
static void fake_cfg(struct mc_txloop_cfg *c, const struct mc_pkg *p, const struct mc_txloop_io *io, uint64_t rate,
		     uint32_t session)
{
	char err[256];

	memset(c, 0, sizeof *c);
	mc_net_group("239.9.9.9", 7500, NULL, &c->g, err, sizeof err);
	mc_net_group_port(&c->g, 7501, &c->gfb);
	c->pkg = p;
	c->rate = rate;
	c->mtu = 1500;
	c->core.linger_ms = 300;
	c->io = io;
	c->gso = 1;
	c->session = session;
}

static void test_fake_clock(void)
{
	static const struct mc_txloop_io io = {NULL, fk_now, fk_wait, fk_send, fk_send_batch, fk_recv, fk_pread};
	struct mc_txloop_cfg c;
	struct mc_txloop *l;
	struct mc_pkg p;
	char err[512];

	fk_begin(12345);
	fk.loss[1] = 0.05;
	fk.loss[2] = 0.15;
	ok(mc_pkg_open(pkgpath, &p, err, sizeof err) == 0, "fake clock: package opens");
	fk_receivers(100, 7);
	fake_cfg(&c, &p, &io, 100000000, 0x1234);
	c.core.peer_timeout_ms = 2000;
	c.core.max_passes = 12;
	uint64_t t0 = fk.now;
	int reason = -2;
	if ((l = mc_txloop_new(&c, err, sizeof err)) != NULL && mc_txloop_open(l, err, sizeof err) == 0)
		reason = mc_txloop_run(l, err, sizeof err);
	double secs = (double)(fk.now - t0) / 1e9;
	ok(reason == MC_END_COMPLETE, "fake clock: the session ends complete (%d: %s)", reason, reason < 0 ? err : "");
	unsigned same = fk_identical();
	ok(same == NRX, "fake clock: all %u receivers (0%%, 5%%, 15%% loss) complete, identical (%u)", NRX, same);
	const struct mc_txloop_info *in = l ? mc_txloop_info(l) : NULL;
	const struct mc_sender_stats *st = l ? mc_sender_stats(mc_txloop_sender(l)) : NULL;
	ok(st && st->joined == NRX && st->complete == NRX, "fake clock: the sender counted %u joined, %u complete",
	   st ? st->joined : 0, st ? st->complete : 0);
	/* Paced: never faster than -r (the bucket's 2 ms burst aside), all on the fake clock. */
	double bps = in ? (double)in->bytes_sent * 8 / secs : 0;
	ok(in && bps <= 1.02 * (double)c.rate && fk.waited > 0, "fake clock: paced at %.1f Mbit/s for -r 100M over %.3f s",
	   bps / 1e6, secs);
	ok(in && (double)in->bytes_sent / (double)psize < 1.6 && (double)in->bytes_sent / (double)psize > 1.0,
	   "fake clock: %.3fx the payload sent for 15%% loss at the worst receiver", in ? (double)in->bytes_sent / (double)psize : 0);
	ok(secs < 5.0, "fake clock: %.2f fake seconds (12.5 MiB at 100 Mbit/s, linger 0.3 s)", secs);
	mc_txloop_free(l);
	fk_end();
	mc_pkg_close(&p);
}

/*
 * An image session's DATA is placed only once the manifest is whole, and a
 * receiver holds MC_EARLY_MAX datagrams until then: a receiver that lost
 * one fragment of the manifest's first sending must have it again before
 * those are full, or it loses DATA the network delivered. At 5 Gbit/s the
 * whole package goes out in 20 ms, long before the next announcement's
 * manifest (ANNOUNCE_MS).
 */
static void test_image_manifest(void)
{
	static const struct mc_txloop_io io = {NULL, fk_now, fk_wait, fk_send, fk_send_batch, fk_recv, fk_pread};
	struct mc_txloop_cfg c;
	struct mc_txloop *l;
	struct mc_pkg p;
	char err[512];

	fk_begin(999);
	fk.man_drop[0] = 1;  /* the manifest's first fragment */
	fk.man_drop[1] = 10; /* all of the first sending (fewer than ten fragments) and some more */
	ok(make_image_pkg() == 0 && mc_pkg_open(imgpath, &p, err, sizeof err) == 0, "image manifest: image package opens");
	fk_receivers(200, 17);
	fake_cfg(&c, &p, &io, 5000000000ULL, 0x5678);
	c.core.peer_timeout_ms = 2000;
	c.core.max_passes = 12;
	int reason = -2;
	if ((l = mc_txloop_new(&c, err, sizeof err)) != NULL && mc_txloop_open(l, err, sizeof err) == 0)
		reason = mc_txloop_run(l, err, sizeof err);
	unsigned same = fk_identical();
	ok(reason == MC_END_COMPLETE && same == NRX, "image manifest: the session ends complete (%d), %u of %u identical",
	   reason, same, NRX);
	const struct mc_txloop_info *in = l ? mc_txloop_info(l) : NULL;
	const struct mc_sender_stats *st = l ? mc_sender_stats(mc_txloop_sender(l)) : NULL;
	/* Nothing was lost but manifest fragments: no DATA is asked for again. */
	ok(st && in && st->repair_symbols == 0 && (double)in->bytes_sent / (double)psize < 1.05,
	   "image manifest: receivers that lost manifest fragments asked for nothing (%llu repair symbols, %.3fx the payload)",
	   st ? (unsigned long long)st->repair_symbols : 0, in ? (double)in->bytes_sent / (double)psize : 0);
	mc_txloop_free(l);
	fk_end();
	mc_pkg_close(&p);
}

/*
 * Block numbers leave room for a whole span's blocks in every chunk, but a
 * hole has none and the sender skips it: past a long hole the numbers of
 * the blocks it sends leap far beyond those it is still sending (its
 * interleave window holds MC_INTERLEAVE blocks it sends). Receivers took
 * the leap for the sender's having passed the blocks before the hole,
 * NACKed them and counted their symbols still to come as lost: with --fec
 * auto a 100 MiB sparse image went out at 1.35x on a loopback with no loss.
 * At 100 Mbit/s here the receivers scan while the window that holds the
 * blocks on both sides of the hole goes out (without the fix: 3 NACKs, 364
 * repair symbols, 1.185x).
 */
static void test_image_holes(void)
{
	static const struct mc_txloop_io io = {NULL, fk_now, fk_wait, fk_send, fk_send_batch, fk_recv, fk_pread};
	struct mc_txloop_cfg c;
	struct mc_txloop *l;
	struct mc_pkg p;
	char err[512];
	uint8_t *img = malloc(psize), *stored = malloc(psize);
	uint64_t slen = 0;

	fk_begin(777);
	/* Chunks 40 to 179 of 200 are zeros: holes, 140 block numbers the sender never sends. */
	if (img && stored) {
		memcpy(img, payload, psize);
		memset(img + 40ull * CS, 0, 140ull * CS);
		memcpy(stored, img, 40ull * CS);
		memcpy(stored + 40ull * CS, img + 180ull * CS, psize - 180ull * CS);
		slen = psize - 140ull * CS;
		fk.src = stored;
	}
	ok(img && stored && imgpkg_write_holes(imgpath, "drvholes", img, psize, CS, 1) == 0 &&
		   mc_pkg_open(imgpath, &p, err, sizeof err) == 0 && p.m.payload_size == slen,
	   "image holes: a package with 140 holes of 200 chunks opens (%llu stored bytes)", (unsigned long long)slen);
	fk_receivers(500, 37);
	fake_cfg(&c, &p, &io, 100000000, 0x2468);
	c.core.peer_timeout_ms = 2000;
	c.core.max_passes = 12;
	c.core.fec_auto = 1;
	int reason = -2;
	if ((l = mc_txloop_new(&c, err, sizeof err)) != NULL && mc_txloop_open(l, err, sizeof err) == 0)
		reason = mc_txloop_run(l, err, sizeof err);
	unsigned same = 0;
	for (unsigned i = 0; i < NRX; i++)
		same += fk.complete[i] && memcmp(fk.out[i], stored, slen) == 0;
	ok(reason == MC_END_COMPLETE && same == NRX, "image holes: the session ends complete (%d), %u of %u identical",
	   reason, same, NRX);
	const struct mc_sender_stats *st = l ? mc_sender_stats(mc_txloop_sender(l)) : NULL;
	const struct mc_txloop_info *in = l ? mc_txloop_info(l) : NULL;
	ok(st && in && st->nacks == 0 && st->repair_symbols == 0,
	   "image holes: no loss, so no NACK and no repair with --fec auto (%llu NACKs, %llu repair symbols, %.3fx)",
	   st ? (unsigned long long)st->nacks : 0, st ? (unsigned long long)st->repair_symbols : 0,
	   in ? (double)in->bytes_sent / (double)slen : 0);
	mc_txloop_free(l);
	fk_end();
	mc_pkg_close(&p);
	free(img);
	free(stored);
}

/*
 * --fec auto and a receiver behind in its reading: it asks for nothing then,
 * but tells its loss (NACKs with no entries, at most every 250 ms), and the
 * sender's first pass carries repair for it.
 */
static void test_loss_reports(void)
{
	static const struct mc_txloop_io io = {NULL, fk_now, fk_wait, fk_send, fk_send_batch, fk_recv, fk_pread};
	struct mc_txloop_cfg c;
	struct mc_txloop *l;
	struct mc_pkg p;
	char err[512];

	fk_begin(4242);
	fk.loss[1] = 0.05;
	fk.behind[1] = 1;
	ok(mc_pkg_open(pkgpath, &p, err, sizeof err) == 0, "loss reports: package opens");
	fk_receivers(300, 27);
	fake_cfg(&c, &p, &io, 100000000, 0x9abc);
	c.core.peer_timeout_ms = 2000;
	c.core.max_passes = 12;
	c.core.fec_auto = 1;
	int reason = -2;
	uint64_t t0 = fk.now;
	if ((l = mc_txloop_new(&c, err, sizeof err)) != NULL && mc_txloop_open(l, err, sizeof err) == 0)
		reason = mc_txloop_run(l, err, sizeof err);
	double secs = (double)(fk.now - t0) / 1e9;
	unsigned same = fk_identical();
	ok(reason == MC_END_COMPLETE && same == NRX, "loss reports: the session ends complete (%d), %u of %u identical", reason,
	   same, NRX);
	const struct mc_sender_stats *st = l ? mc_sender_stats(mc_txloop_sender(l)) : NULL;
	ok(fk.loss_reports >= 1 && fk.loss_reports <= 2 + (unsigned)(secs * 4),
	   "loss reports: the receiver behind 5%% loss told it %u times in %.2f s (at most every 250 ms)", fk.loss_reports, secs);
	ok(st && st->repair_symbols > 0, "loss reports: the sender sent repair for it (%llu symbols)",
	   st ? (unsigned long long)st->repair_symbols : 0);
	mc_txloop_free(l);
	fk_end();
	mc_pkg_close(&p);
}

/* The send driver's io failing: its codes come back as codes (lib/exitcode.h), never through errno. */
static struct {
	uint64_t now, cut;  /* ns; reads at or past cut fail with -ENODATA (the file shrank) */
	unsigned batches, nogso, nogso_err;
} ef;

static uint64_t ef_now(void *ctx) { return ef.now; }
static void ef_wait(void *ctx, uint64_t ns) { ef.now += ns ? ns : 1000; }
static int ef_send(void *ctx, const void *buf, size_t len) { return 0; }
static size_t ef_recv(void *ctx, uint8_t *buf, size_t cap, struct sockaddr_storage *from) { return 0; }

static int ef_send_batch(void *ctx, struct iovec *iov, unsigned nseg, uint16_t seg, int gso)
{
	errno = ENOSPC; /* never the answer */
	if (gso)
		return -EIO; /* GSO refused: the driver goes on datagram by datagram */
	ef.batches++;
	return 0;
}

static int ef_read(void *ctx, uint64_t off, void *buf, size_t len)
{
	errno = EPERM; /* never the answer */
	if (off + len > ef.cut)
		return -ENODATA;
	memcpy(buf, payload + off, len);
	return 0;
}

static void ef_report(void *ctx, struct mc_txloop *l, const struct mc_txloop_ev *ev)
{
	if (ev->kind == MC_TXL_EV_NOGSO) {
		ef.nogso++;
		ef.nogso_err = (unsigned)ev->err;
	}
}

static void test_io_errors(void)
{
	static const struct mc_txloop_io io = {NULL, ef_now, ef_wait, ef_send, ef_send_batch, ef_recv, ef_read};
	struct mc_txloop_cfg c;
	struct mc_txloop *l;
	struct mc_pkg p;
	char err[512] = "";
	int reason = 0;

	memset(&ef, 0, sizeof ef);
	ef.now = 1000000000000ULL;
	ef.cut = psize / 2;
	ok(mc_pkg_open(pkgpath, &p, err, sizeof err) == 0, "io errors: package opens");
	fake_cfg(&c, &p, &io, 1000000000, 0x4321);
	c.report = ef_report;
	if ((l = mc_txloop_new(&c, err, sizeof err)) != NULL && mc_txloop_open(l, err, sizeof err) == 0)
		reason = mc_txloop_run(l, err, sizeof err);
	ok(ef.nogso == 1 && ef.nogso_err == EIO && ef.batches > 0,
	   "io errors: a batch refused with -EIO under GSO is said once (err %u) and the rest go without (%u batches)",
	   ef.nogso_err, ef.batches);
	ok(reason == -ENODATA && strstr(err, "file shrank while sending") != NULL,
	   "io errors: a read that fails with -ENODATA ends the run with -ENODATA (%d): %s", reason, err);
	mc_txloop_free(l);
	mc_pkg_close(&p);
}

int main(void)
{
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(pkgpath, sizeof pkgpath, "%s/drv.mcpkg", dir);
	snprintf(outpath, sizeof outpath, "%s/out.mcpkg", dir);
	snprintf(imgpath, sizeof imgpath, "%s/img.mcpkg", dir);
	ok(make_pkg() == 0, "package made");
	test_resume();
	test_fake_clock();
	test_image_manifest();
	test_image_holes();
	test_loss_reports();
	test_io_errors();
	if (in_namespace()) {
		test_session();
		test_early_save();
	} else
		printf("ok %d - # SKIP the session needs root (a network namespace)\n", ++tap_n);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir);
	free(payload);
	return tap_done();
}
