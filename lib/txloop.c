/* The send driver; see txloop.h. */
#include "txloop.h"
#include "exitcode.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "fec.h"
#include "wire.h"

#define ANNOUNCE_MS 100         /* announcements ten times a second, and every MC_ANNOUNCE_PKTS datagrams */
#define MANIFEST_MIN_MS 100     /* the whole manifest at most this often ... */
#define MANIFEST_MAX_MS 1000    /* ... and at least this often */
#define MANIFEST_PKTS_PCT 2     /* an image session's manifest: at most this share of every MC_ANNOUNCE_PKTS datagrams */
#define MEASURE_MS 50           /* the sent rate is measured over this much time at least */
#define PROGRESS_MS 250
#define GSO_MAX_SEGS 64
#define GSO_MAX_BYTES 65000

struct mc_txloop {
	struct mc_txloop_cfg cfg;
	struct mc_txloop_io io;
	int real;                 /* io is the sockets' */
	unsigned kmax;
	unsigned rx_i, rx_j, rx_n; /* the feedback batch being handed out (real io) */
	int rx_last;              /* ... was the last one queued */
	const struct mc_pkg *pkg;
	struct mc_txloop_info info;
	struct mc_sender *s;
	struct mc_fec *fec;
	int tx, fb;
	struct mc_pace pace;
	/* What the sender really sends while it has work: where a rate cut starts from. */
	uint64_t meas_ns, meas_bytes, meas_idle_ns, sent_bps;
	int sending;    /* a window is going out: its waits are for the pacer alone */
	struct mc_chunk_check check; /* the first pass checks each chunk it reads against the manifest */
	int damaged;    /* ... and stops at the first that does not match */
	struct slot {
		uint8_t *block, *repair;
		uint8_t (*hdr)[MC_WIRE_DATA_HDR];
		const uint8_t *syms[MC_RS_MAX];
	} win[MC_INTERLEAVE];
	struct mc_sender_job jobs[MC_INTERLEAVE];
	uint16_t (*order)[2];
	struct mc_rx rx;
	uint32_t man_idx, nfrag;
	int man_sent;
	int image;         /* an image session: the manifest places its DATA (announce_due) */
	uint64_t next_ann;
	uint64_t ann_pkts; /* pkts_sent at the last announcement */
	char *err;         /* the run's error buffer */
	size_t errlen;
};

static uint64_t now_ns(const struct mc_txloop *l) { return l->io.now_ns(l->io.ctx); }
static uint64_t now_ms(const struct mc_txloop *l) { return now_ns(l) / 1000000; }

/* The real world: sockets, the package file, the monotonic clock. */
static uint64_t real_now_ns(void *ctx) { return mc_now_ns(); }

/* Feedback ends the wait only between windows: within one it waits in the socket (ppoll skips a negative fd). */
static void real_wait(void *ctx, uint64_t ns)
{
	struct mc_txloop *l = ctx;
	struct pollfd pfd = {l->sending ? -1 : l->fb, POLLIN, 0};
	struct timespec ts = {(time_t)(ns / 1000000000ULL), (long)(ns % 1000000000ULL)};

	ppoll(&pfd, 1, &ts, NULL);
}

static int real_send(void *ctx, const void *buf, size_t len)
{
	struct mc_txloop *l = ctx;

	return mc_net_send(l->tx, &l->cfg.g, buf, len);
}

static int real_send_batch(void *ctx, struct iovec *iov, unsigned nseg, uint16_t seg, int gso)
{
	struct mc_txloop *l = ctx;

	for (;;) {
		int rc = mc_net_send_batch(l->tx, &l->cfg.g, iov, 2 * nseg, seg, gso);
		if (rc == 0)
			return 0;
		if (rc != -EAGAIN && rc != -ENOBUFS)
			return rc;
		struct pollfd pfd = {l->tx, POLLOUT, 0};
		poll(&pfd, 1, 10);
	}
}

/* Hands out the datagrams of recvmmsg batches one by one, until a batch that was not full is used up. */
static size_t real_recv(void *ctx, uint8_t *buf, size_t cap, struct sockaddr_storage *from)
{
	struct mc_txloop *l = ctx;

	for (;;) {
		if (l->rx_i < l->rx_n) {
			const uint8_t *p;
			size_t len = mc_net_rx_seg(&l->rx, l->rx_i, l->rx_j, &p);
			if (len == 0) {
				l->rx_i++;
				l->rx_j = 0;
				continue;
			}
			l->rx_j++;
			*from = l->rx.from[l->rx_i];
			if (len > cap)
				len = cap;
			memcpy(buf, p, len);
			return len;
		}
		if (l->rx_last) {
			l->rx_last = 0;
			l->rx_n = 0;
			return 0;
		}
		int n = mc_net_rx(l->fb, &l->rx);
		l->rx_i = l->rx_j = 0;
		l->rx_n = n > 0 ? (unsigned)n : 0;
		if (n <= 0)
			return 0;
		l->rx_last = n < (int)l->rx.n;
	}
}

static int real_read(void *ctx, uint64_t off, void *buf, size_t len)
{
	struct mc_txloop *l = ctx;
	ssize_t r = pread(l->pkg->fd, buf, len, (off_t)(l->pkg->l.payload_off + off));

	if (r == (ssize_t)len)
		return 0;
	return r >= 0 ? -ENODATA : -errno;
}

static void report(struct mc_txloop *l, int kind, unsigned arg, unsigned arg2, int e, const char *msg)
{
	struct mc_txloop_ev ev = {kind, arg, arg2, e, msg};

	if (l->cfg.report)
		l->cfg.report(l->cfg.ctx, l, &ev);
}

static int stopped(const struct mc_txloop *l)
{
	return l->cfg.stop && *l->cfg.stop;
}

static unsigned wire_overhead(const struct mc_txloop *l)
{
	return mc_wire_ip_udp(l->cfg.g.family == AF_INET6);
}

static void send_small(struct mc_txloop *l, const uint8_t *buf, size_t len)
{
	if (len == 0)
		return;
	if (l->io.send(l->io.ctx, buf, len) < 0)
		l->info.send_drops++;
	l->info.bytes_sent += len;
	l->info.pkts_sent++;
	mc_pace_spend(&l->pace, len + wire_overhead(l));
}

/* The announcement alone; announce() adds the manifest. */
static void announce_only(struct mc_txloop *l)
{
	uint8_t buf[2048];

	send_small(l, buf, mc_sender_announce_pkt(l->s, &l->pkg->m, l->info.rate.cur, buf, sizeof buf));
	l->ann_pkts = l->info.pkts_sent;
}

/* The next n fragments of the manifest, where the last ones left off. */
static void manifest_frags(struct mc_txloop *l, uint32_t n)
{
	uint8_t buf[2048];

	for (uint32_t i = 0; i < n; i++) {
		send_small(l, buf, mc_sender_manifest_pkt(l->info.session, &l->pkg->m, l->man_idx, buf, sizeof buf));
		l->man_idx = (l->man_idx + 1) % l->nfrag;
	}
}

static void announce(struct mc_txloop *l)
{
	uint64_t cur = l->info.rate.cur;

	announce_only(l);
	/*
	 * The manifest goes out whole at the start, then repeats every
	 * MANIFEST_MIN_MS to MANIFEST_MAX_MS, as often as 1% of the rate allows,
	 * in step with the announcements: a receiver parks what it gets before
	 * the manifest and verifies it all at once when the manifest is whole,
	 * so the sooner that is the less it has to catch up on (at 5 Gbit/s, a
	 * second of parked data stalled receivers long enough to overflow them).
	 */
	uint64_t every = (uint64_t)l->nfrag * (MC_MANIFEST_FRAG + 64) * 8 * 1000 / (cur / 100 ? cur / 100 : 1);
	every = every < MANIFEST_MIN_MS ? MANIFEST_MIN_MS : every > MANIFEST_MAX_MS ? MANIFEST_MAX_MS : every;
	uint32_t per = l->man_sent ? (uint32_t)((l->nfrag * ANNOUNCE_MS + every - 1) / every) : l->nfrag;
	l->man_sent = 1;
	manifest_frags(l, per);
}

static void drain_feedback(struct mc_txloop *l)
{
	uint8_t fb[2048];
	struct sockaddr_storage from;
	uint64_t now = now_ms(l);
	size_t len;

	while ((len = l->io.recv(l->io.ctx, fb, sizeof fb, &from)) > 0) {
		struct mc_pkt pkt;
		if (mc_wire_decode(fb, len, &pkt) == 0)
			mc_sender_feedback(l->s, now, &pkt, &from);
	}
	unsigned pi, kind;
	while (mc_sender_event(l->s, &pi, &kind))
		report(l, MC_TXL_EV_PEER, pi, kind, 0, NULL);
	struct mc_pkt cp;
	uint8_t buf[2048];
	while (mc_sender_ctrl(l->s, &cp))
		send_small(l, buf, mc_wire_encode(&cp, buf, sizeof buf));
}

/*
 * The rate sent over the last MEASURE_MS or more, idle time (nothing to
 * send) left out; a measure with less than MEASURE_MS/2 of work in it keeps
 * the last one.
 */
static void measure(struct mc_txloop *l)
{
	uint64_t now = now_ns(l), dt = now - l->meas_ns;

	if (dt < MEASURE_MS * 1000000ULL)
		return;
	uint64_t busy = dt > l->meas_idle_ns ? dt - l->meas_idle_ns : 0;
	if (busy >= MEASURE_MS * 500000ULL)
		l->sent_bps = (uint64_t)((double)l->meas_bytes * 8e9 / (double)busy);
	l->meas_ns = now;
	l->meas_bytes = l->meas_idle_ns = 0;
}

/*
 * Announcements ten times a second, and every MC_ANNOUNCE_PKTS datagrams:
 * within a window too, between its batches (they change nothing, and at a
 * low rate a window lasts seconds).
 */
static void announce_due(struct mc_txloop *l)
{
	uint64_t now = now_ms(l);

	if (now >= l->next_ann) {
		announce(l);
		l->next_ann = now + ANNOUNCE_MS;
	} else if (l->info.pkts_sent - l->ann_pkts >= MC_ANNOUNCE_PKTS) {
		/*
		 * A receiver holds MC_EARLY_MAX datagrams before its first
		 * announcement: at 10 Gbit/s a tenth of a second is 17 times that,
		 * and a late joiner lost what came in between.
		 */
		announce_only(l);
		/*
		 * An image session's DATA cannot be placed before the whole
		 * manifest (its chunks have lengths of their own), and what a
		 * receiver holds meanwhile is MC_EARLY_MAX datagrams. Sent only
		 * every ANNOUNCE_MS, a manifest that lost one fragment of its
		 * first sending cost a receiver behind 5% loss a tenth of a
		 * second of DATA at 5 Gbit/s: its first pass asked for two
		 * thirds of the package again (bench/image). So fragments go
		 * out here too, as many as MANIFEST_PKTS_PCT of the datagrams
		 * since the last announcement allow: a manifest of up to about 50 fragments
		 * (a 1 GiB image) comes whole within MC_ANNOUNCE_PKTS.
		 */
		if (l->image) {
			uint64_t per = (uint64_t)MC_ANNOUNCE_PKTS * (MC_WIRE_DATA_HDR + l->info.sym) * MANIFEST_PKTS_PCT / 100 /
				       (MC_MANIFEST_FRAG + 64);
			manifest_frags(l, per < l->nfrag ? (uint32_t)per : l->nfrag);
		}
	}
}

/* --max-time is over: the one end rule a window does not wait for (at 5 Mbit/s one lasts 9 s). */
static int past_max_time(const struct mc_txloop *l)
{
	return l->cfg.core.max_time_ms && now_ms(l) - l->info.start_ms >= l->cfg.core.max_time_ms;
}

/*
 * Sends iov (header/symbol pairs) as paced GSO batches, falling back to
 * sendmmsg if GSO is refused. Returns 0 sent, 1 not sent because the session
 * ended while it waited for its turn, -EINTR on a signal, else the send's
 * negative code (the reason in l->err).
 */
static int send_batch(struct mc_txloop *l, struct iovec *iov, unsigned nseg, uint16_t seg)
{
	size_t bytes = (size_t)nseg * (seg + wire_overhead(l));
	const struct mc_group *g = &l->cfg.g;
	uint64_t w;

	while ((w = mc_pace_wait(&l->pace, now_ns(l), bytes)) > 0) {
		if (past_max_time(l))
			return 1;
		announce_due(l);
		l->io.wait(l->io.ctx, w > 2000000 ? 2000000 : w);
		if (stopped(l))
			return -EINTR;
	}
	for (;;) {
		int rc = l->io.send_batch(l->io.ctx, iov, nseg, seg, l->info.gso);
		if (rc == 0)
			break;
		if (l->info.gso && (rc == -EIO || rc == -EINVAL || rc == -ENOPROTOOPT)) {
			report(l, MC_TXL_EV_NOGSO, 0, 0, -rc, NULL);
			l->info.gso = 0;
			continue;
		}
		if (rc == -EINTR) {
			if (stopped(l))
				return rc;
			continue;
		}
		if (rc == -EMSGSIZE)
			snprintf(l->err, l->errlen, "%s: send: %s: --mtu %u is more than the way to the group takes", g->text,
				 mc_strerror(rc), l->cfg.mtu);
		else if (rc == -ENETUNREACH && g->ifindex == 0)
			snprintf(l->err, l->errlen, "%s: send: %s (no route to the group: name the interface with -i)", g->text,
				 mc_strerror(rc));
		else
			snprintf(l->err, l->errlen, "%s: send: %s", g->text, mc_strerror(rc));
		return rc;
	}
	mc_pace_spend(&l->pace, bytes);
	l->meas_bytes += bytes;
	l->info.bytes_sent += (size_t)nseg * seg;
	l->info.pkts_sent += nseg;
	return 0;
}

/* A read of the package that failed (io.read's code): the reason into l->err. */
static void read_failed(struct mc_txloop *l, int rc)
{
	snprintf(l->err, l->errlen, "%s: read: %s", l->pkg->path,
		 rc == -ENODATA ? "file shrank while sending" : mc_strerror(rc));
}

/*
 * A signed package's payload did not match its digest at the end of the first
 * pass: reads and hashes chunk after chunk (SHA-256, as the receivers do) for
 * the first bad one. Returns 0 with its index in *bad (MC_CHUNK_CHECK_WHOLE
 * when every chunk matches: the payload digest itself is wrong), or a
 * negative code with the reason in l->err (-ENOMEM, a read that failed).
 */
static int find_bad_chunk(struct mc_txloop *l, uint32_t *bad)
{
	const struct mc_manifest *m = &l->pkg->m;
	uint8_t *buf = NULL, d[MC_DIGEST_LEN];
	size_t cap = 0;

	*bad = MC_CHUNK_CHECK_WHOLE;
	for (uint32_t c = 0; c < m->nchunks; c++) {
		uint32_t len = mc_manifest_chunk_len(m, c);
		if (len > cap) {
			uint8_t *nb = realloc(buf, len);
			if (nb == NULL) {
				free(buf);
				snprintf(l->err, l->errlen, "%s", mc_strerror(-ENOMEM));
				return -ENOMEM;
			}
			buf = nb;
			cap = len;
		}
		int rc = l->io.read(l->io.ctx, mc_manifest_chunk_off(m, c), buf, len);
		if (rc < 0) {
			read_failed(l, rc);
			free(buf);
			return rc;
		}
		mc_chunk_digest(m, buf, len, d);
		if (memcmp(d, m->digests + (size_t)c * MC_DIGEST_LEN, MC_DIGEST_LEN) != 0) {
			*bad = c;
			break;
		}
	}
	free(buf);
	return 0;
}

/*
 * Reads each block of a window from the package, checks it in the first
 * pass, and computes its repair symbols. Returns 0, or a negative code with
 * the reason in l->err (-EBADMSG: the package is damaged, said as an event).
 */
static int code_window(struct mc_txloop *l, unsigned nj)
{
	const struct mc_pkg *pkg = l->pkg;
	uint16_t sym = l->info.sym;
	int rc;

	for (unsigned j = 0; j < nj; j++) {
		const struct mc_sender_job *job = &l->jobs[j];
		struct slot *w = &l->win[j];
		if ((rc = l->io.read(l->io.ctx, job->b.off, w->block, job->b.len)) < 0) {
			read_failed(l, rc);
			return rc;
		}
		uint32_t bad;
		if (mc_chunk_check_feed(&l->check, job->b.off, w->block, job->b.len, &bad) < 0) {
			char msg[1024];
			if (bad == MC_CHUNK_CHECK_WHOLE && (rc = find_bad_chunk(l, &bad)) < 0)
				return rc;
			if (bad == MC_CHUNK_CHECK_WHOLE) {
				snprintf(msg, sizeof msg, "%s: the payload does not match its digest, although each chunk matches "
					 "its own: the package is damaged (mcast-pack verify)", pkg->path);
			} else {
				uint64_t first = pkg->l.payload_off + mc_manifest_chunk_off(&pkg->m, bad);
				snprintf(msg, sizeof msg, "%s: chunk %u (bytes %llu-%llu) does not match its digest: the package is "
					 "damaged (mcast-pack verify names every bad chunk, mcast-repair heals it)",
					 pkg->path, bad, (unsigned long long)first,
					 (unsigned long long)(first + mc_manifest_chunk_len(&pkg->m, bad) - 1));
			}
			report(l, MC_TXL_EV_DAMAGED, bad, 0, 0, msg);
			l->damaged = 1;
			return -EBADMSG;
		}
		memset(w->block + job->b.len, 0, (size_t)job->b.k * sym - job->b.len);
		if (mc_sender_datagrams(l->fec, l->info.session, sym, job, w->block, w->repair, w->hdr, w->syms) < 0) {
			snprintf(l->err, l->errlen, "%s: erasure coder failed", pkg->path);
			return -EIO;
		}
	}
	return 0;
}

/*
 * Sends a coded window: the datagrams of all its blocks interleaved
 * (mc_sender_interleave), cut into paced GSO batches. Feedback and the end
 * rule wait until it is out, --max-time aside. Returns 0 or send_batch's
 * negative code.
 */
static int send_window(struct mc_txloop *l, unsigned nj)
{
	struct iovec iov[2 * GSO_MAX_SEGS];
	uint16_t sym = l->info.sym, seg = (uint16_t)(MC_WIRE_DATA_HDR + sym);
	unsigned per = GSO_MAX_BYTES / seg, total = mc_sender_interleave(l->jobs, nj, l->order);
	int rc = 0;

	if (per > GSO_MAX_SEGS)
		per = GSO_MAX_SEGS;
	l->sending = 1;
	for (unsigned i = 0; i < total && rc == 0; i += per) {
		unsigned n = total - i < per ? total - i : per;
		for (unsigned j = 0; j < n; j++) {
			const struct slot *w = &l->win[l->order[i + j][0]];
			unsigned k = l->order[i + j][1];
			iov[2 * j].iov_base = (void *)w->hdr[k];
			iov[2 * j].iov_len = MC_WIRE_DATA_HDR;
			iov[2 * j + 1].iov_base = (void *)w->syms[k];
			iov[2 * j + 1].iov_len = sym;
		}
		rc = send_batch(l, iov, n, seg); /* 1: --max-time is over, the rest of the window is not sent */
		announce_due(l);
	}
	l->sending = 0;
	return rc < 0 ? rc : 0;
}

struct mc_txloop *mc_txloop_new(const struct mc_txloop_cfg *cfg, char *err, size_t errlen)
{
	struct mc_txloop *l = calloc(1, sizeof *l);
	struct mc_sender_cfg sc;
	const struct mc_pkg *pkg = cfg->pkg;
	int nomem;

	if (l == NULL) {
		snprintf(err, errlen, "%s", mc_strerror(-ENOMEM));
		return NULL;
	}
	l->cfg = *cfg;
	l->pkg = pkg;
	l->tx = l->fb = -1;
	l->real = cfg->io == NULL;
	if (cfg->io)
		l->io = *cfg->io;
	else
		l->io = (struct mc_txloop_io){l, real_now_ns, real_wait, real_send, real_send_batch, real_recv, real_read};
	l->info.sym = cfg->sym ? cfg->sym : mc_wire_sym_for_mtu(cfg->mtu, cfg->g.family == AF_INET6);
	l->kmax = cfg->kmax ? cfg->kmax : MC_KMAX;
	sc = cfg->core;
	if (mc_geom_init_manifest(&sc.geom, &pkg->m, l->info.sym, l->kmax) < 0) {
		snprintf(err, errlen, "%s: cannot cut into coding blocks", pkg->path);
		free(l);
		return NULL;
	}
	l->image = sc.geom.image;
	memcpy(sc.id, pkg->m.id, MC_ID_LEN);
	memcpy(sc.name, pkg->m.name, sizeof sc.name);
	l->info.session = cfg->session;
	if (l->info.session == 0 && getrandom(&l->info.session, sizeof l->info.session, 0) != sizeof l->info.session)
		l->info.session = (uint32_t)getpid() ^ (uint32_t)mc_now_ns();
	if (l->info.session == 0)
		l->info.session = 1; /* 0 means "no session" in hellos */
	l->info.start_ms = now_ms(l);
	l->s = mc_sender_new(&sc, l->info.session, l->info.start_ms);
	l->fec = mc_fec_new();
	nomem = !l->s || !l->fec || mc_chunk_check_init(&l->check, &pkg->m) < 0;
	for (unsigned j = 0; j < MC_INTERLEAVE; j++) {
		l->win[j].block = malloc((size_t)l->kmax * l->info.sym);
		l->win[j].repair = malloc((size_t)MC_RS_MAX * l->info.sym);
		l->win[j].hdr = malloc(MC_RS_MAX * sizeof *l->win[j].hdr);
		nomem |= !l->win[j].block || !l->win[j].repair || !l->win[j].hdr;
	}
	l->order = malloc((size_t)MC_INTERLEAVE * MC_RS_MAX * sizeof *l->order);
	if (nomem || !l->order || mc_net_rx_init(&l->rx, 32, 2048) < 0) {
		mc_txloop_free(l);
		snprintf(err, errlen, "%s", mc_strerror(-ENOMEM));
		return NULL;
	}
	l->nfrag = (pkg->m.raw_len + MC_MANIFEST_FRAG - 1) / MC_MANIFEST_FRAG;
	return l;
}

int mc_txloop_open(struct mc_txloop *l, char *err, size_t errlen)
{
	if (!l->real) {
		l->info.gso = l->cfg.gso;
	} else {
		/* A negative code left in tx or fb is no socket: mc_txloop_free closes only those >= 0. */
		if ((l->tx = mc_net_sender(&l->cfg.g, l->cfg.ttl, err, errlen)) < 0)
			return l->tx;
		if ((l->fb = mc_net_listen(&l->cfg.gfb, 0, err, errlen)) < 0)
			return l->fb;
		l->info.gso = mc_net_gso_ok(l->tx);
	}
	/*
	 * The bucket holds 2 ms of the rate (at least four GSO batches): reading
	 * and coding a window of blocks takes about a millisecond, and a sleep
	 * oversleeps by tens of microseconds; a smaller bucket would lose that
	 * time for good and send slower than -r.
	 */
	size_t burst = (size_t)(l->cfg.rate / 8 / 500);
	if (burst < 4 * GSO_MAX_BYTES)
		burst = 4 * GSO_MAX_BYTES;
	mc_pace_init(&l->pace, l->cfg.rate, burst, now_ns(l));
	mc_rate_init(&l->info.rate, l->cfg.rate, now_ms(l));
	l->meas_ns = now_ns(l);
	return 0;
}

/*
 * One loop: between windows, feedback (verdicts, events, the rate) and the
 * end rule (in mc_sender_window); then a window is coded and sent, its
 * batches each waiting for the pacer; with nothing to send, a wait for
 * feedback.
 */
int mc_txloop_run(struct mc_txloop *l, char *err, size_t errlen)
{
	uint64_t next_prog = 0, last_passes = 0;
	int was_idle = 0, st = MC_SENDER_RUN;

	l->err = err;
	l->errlen = errlen;
	for (;;) {
		uint64_t now;
		unsigned nj;
		if (stopped(l))
			return MC_END_SIGNAL;
		drain_feedback(l);
		measure(l);
		now = now_ms(l); /* after feedback: no receiver may look heard "in the future" */
		if (mc_rate_update(&l->info.rate, mc_sender_stats(l->s)->overrun_reports, l->sent_bps, now)) {
			mc_pace_set_rate(&l->pace, l->info.rate.cur);
			report(l, MC_TXL_EV_RATE, 0, 0, 0, NULL);
		}
		announce_due(l);
		if (now >= next_prog) {
			report(l, MC_TXL_EV_PROGRESS, 0, 0, 0, NULL);
			next_prog = now + PROGRESS_MS;
		}
		if (mc_sender_stats(l->s)->passes != last_passes) {
			last_passes = mc_sender_stats(l->s)->passes;
			report(l, MC_TXL_EV_PASS, (unsigned)last_passes, 0, 0, NULL);
		}
		nj = mc_sender_window(l->s, now, l->jobs, MC_INTERLEAVE, &st);
		if (nj == 0 && st == MC_SENDER_OVER)
			return mc_sender_end_reason(l->s);
		if (nj == 0) {
			if (!was_idle) {
				announce(l); /* receivers learn at once that nothing is queued */
				l->next_ann = now + ANNOUNCE_MS;
			}
			was_idle = 1;
			uint64_t t0 = now_ns(l);
			l->io.wait(l->io.ctx, 10000000);
			l->meas_idle_ns += now_ns(l) - t0;
			continue;
		}
		was_idle = 0;
		int rc = code_window(l, nj);
		if (rc == 0)
			rc = send_window(l, nj);
		if (rc < 0) {
			if (stopped(l))
				continue;
			if (l->damaged)
				return MC_END_DAMAGED; /* receivers keep what they verified and hear why it ended */
			return rc;
		}
	}
}

void mc_txloop_end(struct mc_txloop *l, int reason)
{
	struct mc_pkt p;
	uint8_t buf[64];

	memset(&p, 0, sizeof p);
	p.type = MC_PKT_END;
	p.session = l->info.session;
	memcpy(p.u.end.id, l->pkg->m.id, MC_ID_LEN);
	p.u.end.reason = (uint8_t)reason;
	size_t n = mc_wire_encode(&p, buf, sizeof buf);
	/* Repeated, so that a loss does not leave a receiver waiting for its timeout. */
	for (int i = 0; i < 5; i++) {
		l->io.send(l->io.ctx, buf, n);
		if (l->real)
			usleep(20000);
		else
			l->io.wait(l->io.ctx, 20000000);
	}
}

void mc_txloop_free(struct mc_txloop *l)
{
	if (l == NULL)
		return;
	if (l->tx >= 0)
		close(l->tx);
	if (l->fb >= 0)
		close(l->fb);
	mc_net_rx_free(&l->rx);
	mc_sender_free(l->s);
	mc_fec_free(l->fec);
	for (unsigned j = 0; j < MC_INTERLEAVE; j++) {
		free(l->win[j].block);
		free(l->win[j].repair);
		free(l->win[j].hdr);
	}
	free(l->order);
	mc_chunk_check_free(&l->check);
	free(l);
}

const struct mc_sender *mc_txloop_sender(const struct mc_txloop *l) { return l->s; }
const struct mc_txloop_info *mc_txloop_info(const struct mc_txloop *l) { return &l->info; }
