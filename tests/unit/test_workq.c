/* Unit tests of lib/workq.c: slots worked in parallel and emitted in order, the first failure sticky, no leak. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "workq.h"

#define DEPTH 6
#define N 2000

struct ctx {
	unsigned item[DEPTH];     /* the sequence number put in each slot */
	unsigned out[N], nout;    /* emitted, in the order emit saw them */
	unsigned fail_at;         /* work fails on this item (N: never) */
	unsigned fail_emit_at;    /* emit fails on this item (N: never) */
	unsigned starts, stops;   /* per-thread states made and freed */
	unsigned worked;          /* items worked (any order) */
	unsigned inflight, maxin; /* works running at once */
	pthread_mutex_t mu;
};

static void *t_start(void *arg)
{
	struct ctx *c = arg;
	unsigned *ts = malloc(sizeof *ts); /* freed by t_stop: valgrind sees a leak otherwise */

	pthread_mutex_lock(&c->mu);
	c->starts++;
	pthread_mutex_unlock(&c->mu);
	*ts = 0;
	return ts;
}

static void t_stop(void *arg, void *ts)
{
	struct ctx *c = arg;

	pthread_mutex_lock(&c->mu);
	c->stops++;
	pthread_mutex_unlock(&c->mu);
	free(ts);
}

static int t_work(void *arg, void *ts, unsigned slot, char *err, size_t errlen)
{
	struct ctx *c = arg;
	unsigned v = c->item[slot];

	pthread_mutex_lock(&c->mu);
	if (++c->inflight > c->maxin)
		c->maxin = c->inflight;
	pthread_mutex_unlock(&c->mu);
	/* Items take different times: later ones often finish first. */
	if (v % 7 == 0)
		usleep(200);
	++*(unsigned *)ts;
	pthread_mutex_lock(&c->mu);
	c->inflight--;
	c->worked++;
	pthread_mutex_unlock(&c->mu);
	if (v == c->fail_at) {
		snprintf(err, errlen, "item %u: failed on purpose", v);
		errno = EAGAIN; /* never the answer: the code is */
		return -EBADMSG;
	}
	return 0;
}

static int t_emit(void *arg, unsigned slot, char *err, size_t errlen)
{
	struct ctx *c = arg;
	unsigned v = c->item[slot];

	if (v == c->fail_emit_at) {
		snprintf(err, errlen, "item %u: cannot write", v);
		return -ENOSPC;
	}
	c->out[c->nout++] = v; /* only the emitter touches out */
	return 0;
}

static const struct mc_workq_ops ops = {t_start, t_stop, t_work, t_emit};
static const struct mc_workq_ops ops_noemit = {t_start, t_stop, t_work, NULL};

/* Puts items 0..n-1 (stops at the first refusal, its code into *code); returns how many were put. */
static unsigned run(struct mc_workq *q, struct ctx *c, unsigned n, int *code, char *err, size_t errlen)
{
	unsigned i, slot;
	int rc = 0;

	for (i = 0; i < n; i++) {
		if ((rc = mc_workq_get(q, &slot, err, errlen)) < 0)
			break;
		c->item[slot] = i;
		if ((rc = mc_workq_put(q, err, errlen)) < 0) {
			i++;
			break;
		}
	}
	if (code)
		*code = rc;
	return i;
}

static void init(struct ctx *c)
{
	memset(c, 0, sizeof *c);
	c->fail_at = c->fail_emit_at = N;
	pthread_mutex_init(&c->mu, NULL);
}

int main(void)
{
	struct ctx c;
	struct mc_workq *q;
	char err[MC_WORKQ_ERR];
	int inorder;

	for (unsigned th = 0; th <= 3; th += 3) {
		init(&c);
		ok(mc_workq_new(&q, &ops, &c, th, DEPTH) == 0 && q != NULL, "%u threads, %u slots", th, DEPTH);
		unsigned put = run(q, &c, N, NULL, err, sizeof err);
		ok(put == N && mc_workq_wait(q, err, sizeof err) == 0 && mc_workq_pending(q) == 0, "%u items put and done", put);
		inorder = c.nout == N;
		for (unsigned i = 0; inorder && i < N; i++)
			inorder = c.out[i] == i;
		ok(inorder, "%u threads: emitted in the order put (%u of %u)", th, c.nout, N);
		ok(c.maxin <= (th ? th : 1) && (th < 2 || c.maxin >= 2), "at most one work per thread at once, several with threads (%u)",
		   c.maxin);
		mc_workq_free(q);
		ok(c.starts == (th ? th : 1) && c.stops == c.starts, "a state per thread, each freed (%u, %u)", c.starts, c.stops);
		pthread_mutex_destroy(&c.mu);
	}

	/* A failure in work: sticky, nothing after it emitted, the reason and errno come back. */
	for (unsigned th = 0; th <= 2; th += 2) {
		init(&c);
		c.fail_at = 500;
		mc_workq_new(&q, &ops, &c, th, DEPTH);
		int code = 0;
		unsigned put = run(q, &c, N, &code, err, sizeof err);
		ok(put < N && put >= 501 && put <= 501 + DEPTH + 1 && code == -EBADMSG && strstr(err, "item 500: failed on purpose"),
		   "%u threads: the producer is refused soon after the failure (%u put, %d): %s", th, put, code, err);
		err[0] = '\0';
		ok(mc_workq_wait(q, err, sizeof err) == -EBADMSG && strstr(err, "item 500"), "wait says it too: %s", err);
		unsigned slot;
		ok(mc_workq_get(q, &slot, err, sizeof err) == -EBADMSG, "and get, again");
		inorder = c.nout <= 500 && c.nout + 2 + DEPTH >= 500;
		for (unsigned i = 0; inorder && i < c.nout; i++)
			inorder = c.out[i] == i;
		ok(inorder, "%u threads: items emitted in order up to the failure at most, none after it (%u)", th, c.nout);
		ok(c.worked <= 501 + DEPTH, "at most a ring's worth worked past it (%u)", c.worked);
		mc_workq_free(q);
		pthread_mutex_destroy(&c.mu);
	}

	/* A failure in emit (a write): the same. */
	init(&c);
	c.fail_emit_at = 100;
	mc_workq_new(&q, &ops, &c, 2, DEPTH);
	run(q, &c, N, NULL, err, sizeof err);
	ok(mc_workq_wait(q, err, sizeof err) == -ENOSPC && strstr(err, "item 100: cannot write") && c.nout == 100,
	   "a failed emit comes back as its code, -ENOSPC, and stops the rest (%u emitted): %s", c.nout, err);
	mc_workq_free(q);
	pthread_mutex_destroy(&c.mu);

	/* Without threads: put itself answers with the failed emit's code. */
	init(&c);
	c.fail_emit_at = 3;
	mc_workq_new(&q, &ops, &c, 0, DEPTH);
	int code = 0;
	unsigned put0 = run(q, &c, N, &code, err, sizeof err);
	ok(put0 == 4 && code == -ENOSPC && strstr(err, "item 3: cannot write") && c.nout == 3,
	   "no threads: the put of the item whose emit failed returns -ENOSPC (%u put, %d)", put0, code);
	mc_workq_free(q);
	pthread_mutex_destroy(&c.mu);

	/* Without emit: slots come free in order once worked; everything is worked. */
	init(&c);
	mc_workq_new(&q, &ops_noemit, &c, 3, DEPTH);
	ok(run(q, &c, N, NULL, err, sizeof err) == N && mc_workq_wait(q, err, sizeof err) == 0 && c.worked == N && c.nout == 0,
	   "no emit: %u worked", c.worked);
	mc_workq_free(q);
	pthread_mutex_destroy(&c.mu);

	/* Freed with slots still in flight: they are done first, nothing lost or leaked. */
	init(&c);
	mc_workq_new(&q, &ops, &c, 2, DEPTH);
	run(q, &c, 50, NULL, err, sizeof err);
	mc_workq_free(q);
	ok(c.nout == 50 && c.stops == 2, "freed at once: the 50 put were still emitted (%u)", c.nout);
	pthread_mutex_destroy(&c.mu);
	mc_workq_free(NULL);
	return tap_done();
}
