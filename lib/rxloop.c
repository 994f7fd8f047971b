/* The receive driver; see rxloop.h. */
#include "rxloop.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "defaults.h"
#include "clock.h"
#include "exitcode.h"

/* The defaults of mc_rxloop_cfg's save_ms, save_min_ms, save_bytes: */
#define SAVE_MS 1000   /* state made durable at least this often while chunks come: what a crash can cost */
#define SAVE_MIN_MS 250 /* and sooner, once SAVE_BYTES more are verified and the last save is done */
#define SAVE_BYTES (64u << 20)
#define FINISH_MS 1500 /* after completing, time to tell the sender (DONE) */
#define FB_SAY_MS 10000 /* feedback that cannot be sent is said again after this long */
#define DRAIN_MS 25    /* datagrams read at most this long before a hello or a loss report can go out */

/*
 * The state is made durable by a thread of its own: fdatasync of a file being
 * written at hundreds of MB/s can take a second or more, and a receiver that
 * stopped reading for that long would overflow its socket and turn the stall
 * into loss for the whole session. The loop hands over a copy of the
 * verified bitmap and the parts of chunks (spans_union), taken after the
 * chunks' writes; the thread syncs the sink, then saves the state, so the
 * state never claims what is not durable.
 * It saves again as soon as SAVE_BYTES more are verified and the last save
 * is done, not only once a SAVE_MS: each sync then writes back a slice while
 * the next chunks come, instead of all of it at the end (on bench/image's
 * page-cached target the final flush took 0.68 s of a 1.6 s session, now
 * 0.05 s). Not more often: every 32 MiB and 100 ms, the writes onto that
 * target waited for the syncs (a 1 MiB write took 2.1 ms instead of 0.65 ms).
 */
struct saver {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int started, pending, busy, quit, failed;
	struct mc_sink *sink;
	struct mc_state snap, work;
	char err[512];
};

struct mc_rxloop {
	struct mc_rxloop_cfg cfg;
	struct mc_receiver *r;
	struct mc_sink *sink;
	int data, fbl, tx;
	struct mc_rx rx, rxfb;
	int dirty, announced, head;
	struct mc_span *carried; /* parts of chunks the loaded state or a save claimed, kept by every save (spans_union) */
	uint32_t ncarried;
	uint64_t last_save, fb_failed_ms, finish_at;
	uint32_t saved_have;  /* verified chunks at the last save handed over */
	struct mc_rxloop_info info;
	struct mc_recv_event end;
	struct saver saver;
	char err[512];     /* the sink's reason for the last failed write or read */
};

/*
 * The parts of chunks (spans of their stored bytes) a save claims: those the
 * run started with (the loaded state's) or an earlier save claimed
 * (l->carried), and those the core spilled (mc_recv_spans), of chunks have
 * does not mark. The core keeps the loaded ones only as whole symbols of
 * chunks not in memory, and the state thread's saves held none at all: a
 * resumed receiver killed after a save lost what an earlier run had made
 * durable. Both lists sorted by chunk then offset, not overlapping; the
 * union is too (what mc_state_spans_get takes). Returns the count (*out
 * malloc'd) or -1, out of memory.
 */
static long spans_union(const struct mc_span *a, uint32_t na, const struct mc_span *b, uint32_t nb,
			const uint8_t *have, uint32_t nchunks, struct mc_span **out)
{
	struct mc_span *v = malloc(((size_t)na + nb + 1) * sizeof *v);
	uint32_t i = 0, j = 0;
	long n = 0;

	if ((*out = v) == NULL)
		return -1;
	while (i < na || j < nb) {
		const struct mc_span *s = j >= nb || (i < na && (a[i].chunk < b[j].chunk ||
								  (a[i].chunk == b[j].chunk && a[i].off <= b[j].off)))
						  ? &a[i++]
						  : &b[j++];
		if (s->len == 0 || s->chunk >= nchunks || (have[s->chunk >> 3] >> (s->chunk & 7) & 1))
			continue;
		struct mc_span *pv = n ? &v[n - 1] : NULL;
		if (pv && pv->chunk == s->chunk && s->off <= pv->off + pv->len) {
			if (s->off + s->len > pv->off + pv->len)
				pv->len = s->off + s->len - pv->off;
		} else {
			v[n++] = *s;
		}
	}
	return n;
}

static void *saver_main(void *arg)
{
	struct saver *v = arg;

	pthread_mutex_lock(&v->mu);
	for (;;) {
		while (!v->pending && !v->quit)
			pthread_cond_wait(&v->cv, &v->mu);
		if (!v->pending)
			break;
		memcpy(v->work.id, v->snap.id, MC_ID_LEN);
		v->work.nchunks = v->snap.nchunks;
		v->work.nhave = v->snap.nhave;
		memcpy(v->work.have, v->snap.have, (size_t)v->snap.nchunks / 8 + 1);
		free(v->work.spans);
		v->work.spans = v->snap.spans;
		v->work.nspans = v->snap.nspans;
		v->snap.spans = NULL;
		v->snap.nspans = 0;
		v->pending = 0;
		v->busy = 1;
		pthread_mutex_unlock(&v->mu);
		char err[512];
		int bad = v->sink->ops->sync(v->sink, err, sizeof err) < 0 ||
			  v->sink->ops->save(v->sink, &v->work, err, sizeof err) < 0;
		pthread_mutex_lock(&v->mu);
		v->busy = 0;
		if (bad && !v->failed) {
			v->failed = 1;
			memcpy(v->err, err, sizeof err);
		}
	}
	pthread_mutex_unlock(&v->mu);
	return NULL;
}

/*
 * Hands a snapshot to the saver (started on first use): the verified map and
 * the parts of chunks (spans, taken over: freed here whatever happens).
 * Returns 0, or -1 when it failed earlier.
 */
static int saver_post(struct saver *v, const struct mc_manifest *m, const uint8_t *have, uint32_t nhave, uint32_t nchunks,
		      struct mc_span *spans, uint32_t nspans)
{
	int rc = 0;

	if (!v->started) {
		if (mc_state_init(&v->snap, m->id, nchunks) < 0 || mc_state_init(&v->work, m->id, nchunks) < 0) {
			free(spans);
			return -1;
		}
		pthread_mutex_init(&v->mu, NULL);
		pthread_cond_init(&v->cv, NULL);
		if (pthread_create(&v->th, NULL, saver_main, v) != 0) {
			free(spans);
			return -1;
		}
		v->started = 1;
	}
	pthread_mutex_lock(&v->mu);
	if (v->failed) {
		rc = -1;
		free(spans);
	} else {
		memcpy(v->snap.id, m->id, MC_ID_LEN);
		v->snap.nhave = nhave;
		memcpy(v->snap.have, have, (size_t)nchunks / 8 + 1);
		free(v->snap.spans); /* a snapshot not taken yet: this one replaces it */
		v->snap.spans = spans;
		v->snap.nspans = nspans;
		v->pending = 1;
		pthread_cond_signal(&v->cv);
	}
	pthread_mutex_unlock(&v->mu);
	return rc;
}

/* 1 when the saver has nothing to do (or has not started). */
static int saver_idle(struct saver *v)
{
	int idle = 1;

	if (v->started) {
		pthread_mutex_lock(&v->mu);
		idle = !v->pending && !v->busy;
		pthread_mutex_unlock(&v->mu);
	}
	return idle;
}

/* Finishes the saver's work and stops it; returns -1 when any save failed (reason in err). */
static int saver_stop(struct saver *v, char *err, size_t errlen)
{
	if (!v->started)
		return 0;
	pthread_mutex_lock(&v->mu);
	v->quit = 1;
	pthread_cond_signal(&v->cv);
	pthread_mutex_unlock(&v->mu);
	pthread_join(v->th, NULL);
	v->started = 0;
	mc_state_free(&v->snap);
	mc_state_free(&v->work);
	if (v->failed)
		snprintf(err, errlen, "%s", v->err);
	return v->failed ? -1 : 0;
}

/*
 * Tells the sink the session once it is known. The core may write (park a
 * chunk that completed before the manifest, spill a slot) while it takes
 * the datagrams of one read, before its SESSION event is handled.
 */
static int announce(struct mc_rxloop *l, char *err, size_t errlen)
{
	const struct mc_announce *a = mc_recv_announce(l->r);

	if (l->announced)
		return 0;
	if (a == NULL) {
		snprintf(err, errlen, "no session yet");
		return -EINVAL;
	}
	int rc = l->sink->ops->announce(l->sink, a, err, errlen);
	l->announced = rc == 0;
	return rc;
}

/* The core's I/O callbacks: payload offsets, through the sink; the reason stays for MC_REV_IOERR. */
static int io_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct mc_rxloop *l = ctx;

	if (announce(l, l->err, sizeof l->err) < 0)
		return -1;
	return mc_sink_write(l->sink, off, buf, len, l->err, sizeof l->err) < 0 ? -1 : 0;
}

static int io_read(void *ctx, uint64_t off, void *buf, size_t len)
{
	struct mc_rxloop *l = ctx;

	if (announce(l, l->err, sizeof l->err) < 0)
		return -1;
	return mc_sink_read(l->sink, off, buf, len, l->err, sizeof l->err) < 0 ? -1 : 0;
}

/* A verified chunk, whole, for a sink that decodes it onto its place (instead of io_write). */
static int io_chunk(void *ctx, uint32_t c, const void *buf, size_t len)
{
	struct mc_rxloop *l = ctx;

	return l->sink->ops->chunk(l->sink, mc_recv_manifest(l->r), c, buf, len, l->err, sizeof l->err) < 0 ? -1 : 0;
}

struct mc_rxloop *mc_rxloop_new(const struct mc_rxloop_cfg *cfg, char *err, size_t errlen)
{
	struct mc_rxloop *l = calloc(1, sizeof *l);
	struct mc_recv_cfg rc;
	const struct mc_resume *rs = cfg->rs;

	if (l == NULL)
		goto nomem;
	l->cfg = *cfg;
	if (l->cfg.save_ms == 0)
		l->cfg.save_ms = SAVE_MS;
	if (l->cfg.save_min_ms == 0)
		l->cfg.save_min_ms = SAVE_MIN_MS;
	if (l->cfg.save_bytes == 0)
		l->cfg.save_bytes = SAVE_BYTES;
	l->sink = cfg->sink;
	l->saver.sink = cfg->sink;
	l->data = l->fbl = l->tx = -1;
	l->head = rs && rs->have_m;
	rc = cfg->core;
	rc.io = (struct mc_recv_io){l, io_write, io_read};
	rc.chunk = cfg->sink->ops->chunk ? io_chunk : NULL;
	if (rc.host[0] == '\0') {
		/* The sender's lines name this machine ("silent" names one an admin can walk to). */
		char h[256] = "";
		/* "(none)": the kernel's name before anyone set one (an initramfs): say nothing. */
		if (gethostname(h, sizeof h - 1) == 0 && strcmp(h, "(none)") != 0)
			mc_wire_host(h, strnlen(h, sizeof h - 1), rc.host);
	}
	l->r = mc_recv_new(&rc);
	if (l->r == NULL || (rs && rs->have_m && mc_recv_preload(l->r, &rs->m, rs->st.have, rs->st.spans, rs->st.nspans) < 0) ||
	    mc_net_rx_init(&l->rx, 16, 65536) < 0 || mc_net_rx_init(&l->rxfb, 8, 2048) < 0)
		goto nomem;
	if (rs && rs->have_m && rs->st.nspans) {
		if ((l->carried = malloc((size_t)rs->st.nspans * sizeof *l->carried)) == NULL)
			goto nomem;
		memcpy(l->carried, rs->st.spans, (size_t)rs->st.nspans * sizeof *l->carried);
		l->ncarried = rs->st.nspans;
	}
	return l;
nomem:
	mc_rxloop_free(l);
	snprintf(err, errlen, "%s", mc_strerror(-ENOMEM));
	return NULL;
}

int mc_rxloop_open(struct mc_rxloop *l, char *err, size_t errlen)
{
	socklen_t rl = sizeof l->info.rcvbuf;

	/* A negative code left in a socket's place is no socket: mc_rxloop_free closes only those >= 0. */
	if ((l->data = mc_net_listen(&l->cfg.g, 1, err, errlen)) < 0)
		return l->data;
	if ((l->fbl = mc_net_listen(&l->cfg.gfb, 0, err, errlen)) < 0)
		return l->fbl;
	if ((l->tx = mc_net_sender(&l->cfg.gfb, l->cfg.ttl, err, errlen)) < 0)
		return l->tx;
	if (getsockopt(l->data, SOL_SOCKET, SO_RCVBUF, &l->info.rcvbuf, &rl) < 0)
		l->info.rcvbuf = 0;
	l->info.start_ms = mc_now_ms();
	return 0;
}

static void report(struct mc_rxloop *l, int kind, uint32_t arg, int e, uint64_t now)
{
	struct mc_rxloop_ev ev = {kind, arg, e, now, NULL};

	if (l->cfg.report)
		l->cfg.report(l->cfg.ctx, l, &ev);
}

/* Reads what is queued on both sockets into the core. */
/* Reads what the sockets hold; returns 1 when it stopped after DRAIN_MS with datagrams still there. */
static int drain(struct mc_rxloop *l, uint64_t now)
{
	uint64_t t0 = mc_now_ms();
	int behind = 0;

	for (int s = 0; s < 2; s++) {
		struct mc_rx *r = s == 0 ? &l->rx : &l->rxfb;
		int fd = s == 0 ? l->data : l->fbl;
		int n;
		for (int rounds = 0; rounds < 64 && (n = mc_net_rx(fd, r)) > 0; rounds++) {
			for (int i = 0; i < n; i++) {
				const uint8_t *p;
				size_t len;
				for (unsigned j = 0; (len = mc_net_rx_seg(r, (unsigned)i, j, &p)) > 0; j++)
					mc_recv_packet(l->r, now, p, len);
				if (s == 0)
					l->info.sender = r->from[i];
			}
			if (n < (int)r->n)
				break;
			/* Falling behind: stop reading to tell the sender at once (mc_recv_overruns). */
			if (s == 0 && mc_net_overruns(l->data) != l->info.overruns)
				break;
			/*
			 * A receiver seconds behind (its 128 MiB socket buffer holds
			 * them, so no overrun) still says it is there: back to a
			 * hello within DRAIN_MS (mc_recv_alive). 64 full rounds can be
			 * 45,000 datagrams, 4 s for a receiver behind loss on a busy
			 * disk (bench/image): the sender heard nothing for its peer
			 * timeout and ended the session without it.
			 */
			if (mc_now_ms() - t0 >= DRAIN_MS) {
				behind = 1;
				break;
			}
		}
	}
	uint32_t ovr = mc_net_overruns(l->data);
	if (ovr != l->info.overruns) {
		uint32_t was = l->info.overruns;
		l->info.overruns = ovr;
		report(l, MC_RXL_EV_OVERRUN, ovr - was, 0, now);
	}
	mc_recv_overruns(l->r, l->info.overruns);
	return behind;
}

static void send_feedback(struct mc_rxloop *l, uint64_t now)
{
	uint8_t fb[MC_WIRE_FEEDBACK_MAX];
	size_t fl;

	while ((fl = mc_recv_feedback(l->r, fb, sizeof fb)) > 0) {
		int rc = mc_net_send(l->tx, &l->cfg.gfb, fb, fl);
		if (rc < 0 && rc != -EAGAIN && rc != -ENOBUFS) {
			/* The sender never hears this receiver: no repair, not counted. Say so, now and then. */
			if (l->info.fb_failed++ == 0 || now - l->fb_failed_ms >= FB_SAY_MS) {
				report(l, MC_RXL_EV_FEEDBACK, 0, -rc, now);
				l->fb_failed_ms = now;
			}
		}
	}
}

/* Handles the core's events; returns -1 to go on, else the run's result. */
static int events(struct mc_rxloop *l, uint64_t now, char *err, size_t errlen)
{
	struct mc_recv_event ev;

	while (mc_recv_event(l->r, &ev)) {
		const struct mc_manifest *m = mc_recv_manifest(l->r);
		switch (ev.kind) {
		case MC_REV_SESSION:
			/* Taken and refused (--trust) within one read: no session to lay out; MC_REV_OTHER says why. */
			if (mc_recv_announce(l->r) != NULL && announce(l, err, errlen) < 0)
				return MC_RXL_ERROR;
			break;
		case MC_REV_MANIFEST:
			if (l->sink->ops->manifest(l->sink, m, err, errlen) < 0)
				return MC_RXL_ERROR;
			l->head = 1;
			l->dirty = 1;
			break;
		case MC_REV_CHUNK:
			l->dirty = 1;
			break;
		case MC_REV_COMPLETE:
			if (saver_stop(&l->saver, err, errlen) < 0 || l->sink->ops->finish(l->sink, m, err, errlen) < 0)
				return MC_RXL_ERROR;
			l->info.complete = 1;
			l->finish_at = now + FINISH_MS;
			break;
		case MC_REV_END:
		case MC_REV_LEAVE:
			l->end = ev;
			return MC_RXL_ENDED;
		case MC_REV_IOERR:
			snprintf(err, errlen, "%s", l->err[0] ? l->err : "I/O error");
			return MC_RXL_ERROR;
		case MC_REV_BADCHUNK: {
			/* The core forgot the chunk, parts on the sink included (fetched whole again): so do the saves. */
			uint32_t n = 0;
			for (uint32_t i = 0; i < l->ncarried; i++)
				if (l->carried[i].chunk != ev.arg)
					l->carried[n++] = l->carried[i];
			l->ncarried = n;
			break;
		}
		}
		report(l, ev.kind, ev.arg, 0, now);
	}
	return -1;
}

/* Hands the verified map to the state-saving thread once a save_ms, or sooner (see struct saver). Returns 0 or -1. */
static int save_now_and_then(struct mc_rxloop *l, uint64_t now, char *err, size_t errlen)
{
	uint32_t sh = 0, sc = 0;
	const uint8_t *bm;
	const struct mc_manifest *sm;

	if (!l->dirty || now - l->last_save < l->cfg.save_min_ms || !l->head)
		return 0;
	bm = mc_recv_have(l->r, &sh, &sc);
	sm = mc_recv_manifest(l->r);
	if (bm == NULL || sm == NULL)
		return 0;
	if (now - l->last_save < l->cfg.save_ms &&
	    ((uint64_t)(sh > l->saved_have ? sh - l->saved_have : 0) * sm->chunk_size < l->cfg.save_bytes ||
	     !saver_idle(&l->saver)))
		return 0;
	/*
	 * The parts of chunks too: the carried ones are durable since an earlier
	 * run, the spilled ones were written before this snapshot and the thread
	 * syncs the sink before it saves. (A chunk verified after the snapshot
	 * may be written over its parts before the next save: the resume check
	 * finds it whole, or its parts fail their digest and it is fetched again.)
	 */
	struct mc_span *sp = NULL, *u = NULL;
	long ns = mc_recv_spans(l->r, &sp);
	long nu = spans_union(l->carried, l->ncarried, sp, ns > 0 ? (uint32_t)ns : 0, bm, sc, &u);
	free(sp);
	if (nu < 0) {
		/* Never a state without the parts it had: none now (a state is a lower bound, the resume check finds the rest). */
		snprintf(err, errlen, "cannot save the state: %s", mc_strerror(-ENOMEM));
		return -1;
	}
	/*
	 * What a save claims stays claimed until its chunk is verified or fails:
	 * a chunk taken up again holds its spilled parts in memory (mc_recv_spans
	 * lists them no more), and they are still on the sink. A copy, as the
	 * thread takes u; without memory for it the carried ones stay as they were.
	 */
	struct mc_span *keep = nu ? malloc((size_t)nu * sizeof *keep) : NULL;
	if (keep || nu == 0) {
		if (keep)
			memcpy(keep, u, (size_t)nu * sizeof *keep);
		free(l->carried);
		l->carried = keep;
		l->ncarried = (uint32_t)nu;
	}
	if (saver_post(&l->saver, sm, bm, sh, sc, u, (uint32_t)nu) < 0) {
		snprintf(err, errlen, "%s", l->saver.err[0] ? l->saver.err : "cannot save the state");
		return -1;
	}
	l->dirty = 0;
	l->last_save = now;
	l->saved_have = sh;
	return 0;
}

int mc_rxloop_run(struct mc_rxloop *l, char *err, size_t errlen)
{
	const uint64_t start = l->info.start_ms;

	for (;;) {
		uint64_t now = mc_now_ms();
		struct pollfd pfd[2] = {{l->data, POLLIN, 0}, {l->fbl, POLLIN, 0}};
		uint64_t next = mc_recv_next(l->r);
		int wait = next > now ? (int)(next - now < 200 ? next - now : 200) : 0;
		int res;

		if (l->cfg.stop && *l->cfg.stop)
			return MC_RXL_INTERRUPTED;
		if (poll(pfd, 2, wait) < 0 && errno != EINTR) {
			snprintf(err, errlen, "poll: %s", mc_strerror(-errno));
			return MC_RXL_ERROR;
		}
		now = mc_now_ms();
		/* Still behind in the reading: only a hello (the sender must keep waiting), no NACK yet. */
		if (drain(l, now))
			mc_recv_alive(l->r, mc_now_ms());
		else
			mc_recv_tick(l->r, now);
		send_feedback(l, now);
		if ((res = events(l, now, err, errlen)) >= 0)
			return res;
		if (l->info.complete) {
			if (mc_recv_phase(l->r) == MC_RPH_FINISHED || now >= l->finish_at)
				return MC_RXL_COMPLETE;
			continue;
		}
		if (save_now_and_then(l, now, err, errlen) < 0)
			return MC_RXL_ERROR;
		report(l, MC_RXL_EV_PROGRESS, 0, 0, now);
		uint64_t heard = mc_recv_last_heard(l->r);
		if (heard == 0) {
			if (l->cfg.timeout_ms && now - start >= l->cfg.timeout_ms)
				return MC_RXL_NOSESSION;
		} else if (now - heard >= (l->cfg.timeout_ms ? l->cfg.timeout_ms : MC_DEFAULT_RECV_SILENCE_MS)) {
			return MC_RXL_SILENT;
		}
	}
}

int mc_rxloop_save(struct mc_rxloop *l, char *warn, size_t warnlen)
{
	const struct mc_manifest *m = mc_recv_manifest(l->r);
	struct mc_state st;
	uint32_t nhave, nchunks;
	const uint8_t *have = mc_recv_have(l->r, &nhave, &nchunks);

	if (m == NULL || have == NULL || !l->head)
		return 0;
	/* The final, synchronous save: the thread must not write an older state after it. */
	if (saver_stop(&l->saver, warn, warnlen) < 0)
		return -1;
	/* Chunks half received are kept too: their symbols go to the sink, their extent to the state. */
	memset(&st, 0, sizeof st);
	l->err[0] = '\0';
	struct mc_span *sp = NULL;
	long ns = mc_recv_flush(l->r) < 0 ? -1 : mc_recv_spans(l->r, &sp);
	long nu = spans_union(l->carried, l->ncarried, sp, ns > 0 ? (uint32_t)ns : 0, have, nchunks, &st.spans);
	free(sp);
	if (nu < 0) {
		/* Not saved rather than saved without the parts it had; the state on disk stays a lower bound. */
		snprintf(warn, warnlen, "cannot save the state: %s", mc_strerror(-ENOMEM));
		return -1;
	}
	if (ns < 0) {
		struct mc_rxloop_ev ev = {MC_RXL_EV_PARTS_LOST, 0, 0, mc_now_ms(), l->err[0] ? l->err : mc_strerror(-ENOMEM)};
		if (l->cfg.report)
			l->cfg.report(l->cfg.ctx, l, &ev);
	}
	if (l->sink->ops->sync(l->sink, warn, warnlen) < 0) {
		free(st.spans);
		return -1;
	}
	memcpy(st.id, m->id, MC_ID_LEN);
	st.nchunks = nchunks;
	st.nhave = nhave;
	st.have = (uint8_t *)have;
	st.nspans = nu > 0 ? (uint32_t)nu : 0;
	l->info.partial = mc_span_chunks(st.spans, st.nspans);
	int sr = l->sink->ops->save(l->sink, &st, warn, warnlen);
	free(st.spans);
	if (sr < 0)
		return -1;
	l->dirty = 0;
	l->last_save = mc_now_ms();
	return 0;
}

int mc_rxloop_stop_saver(struct mc_rxloop *l, char *err, size_t errlen)
{
	return l ? saver_stop(&l->saver, err, errlen) : 0;
}

void mc_rxloop_free(struct mc_rxloop *l)
{
	char err[512];

	if (l == NULL)
		return;
	saver_stop(&l->saver, err, sizeof err); /* never free what the thread uses */
	if (l->data >= 0)
		close(l->data);
	if (l->fbl >= 0)
		close(l->fbl);
	if (l->tx >= 0)
		close(l->tx);
	mc_net_rx_free(&l->rx);
	mc_net_rx_free(&l->rxfb);
	mc_recv_free(l->r);
	free(l->carried);
	free(l);
}

struct mc_receiver *mc_rxloop_receiver(const struct mc_rxloop *l) { return l->r; }
const struct mc_rxloop_info *mc_rxloop_info(const struct mc_rxloop *l) { return &l->info; }
struct mc_recv_event mc_rxloop_end(const struct mc_rxloop *l) { return l->end; }
const char *mc_rxloop_group(const struct mc_rxloop *l) { return l->cfg.g.text; }

uint64_t mc_rxloop_rid(const char *out)
{
	char buf[PATH_MAX * 2 + 1024], dir[PATH_MAX], real[PATH_MAX], *slash;
	size_t n = 0;
	struct stat sb;
	FILE *f;

	memset(buf, 0, sizeof buf);
	if ((f = fopen("/etc/machine-id", "r")) != NULL) {
		n = fread(buf, 1, 64, f);
		fclose(f);
	}
	if (stat("/proc/self/ns/net", &sb) == 0)
		n += (size_t)snprintf(buf + n, sizeof buf - n, "|%llu|", (unsigned long long)sb.st_ino);
	n += mc_net_hwaddrs(buf + n, 768);
	snprintf(dir, sizeof dir, "%s", out);
	slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	if (realpath(slash ? (dir[0] ? dir : "/") : ".", real) != NULL)
		n += (size_t)snprintf(buf + n, sizeof buf - n, "%s/", real);
	n += (size_t)snprintf(buf + n, sizeof buf - n, "%s", slash ? slash + 1 : out);
	uint64_t rid = XXH64(buf, n < sizeof buf ? n : sizeof buf, 0x6d63617374ULL);
	return rid ? rid : 1;
}
