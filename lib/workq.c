/* Worker threads over a ring of slots: worked in any order, emitted and freed in order; see workq.h. */
#include "workq.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

struct mc_workq {
	const struct mc_workq_ops *ops;
	void *arg;
	unsigned depth, nth;
	pthread_t th[MC_WORKQ_MAX_THREADS], eth;
	int have_eth;
	pthread_mutex_t mu;
	pthread_cond_t work_cv; /* a slot put, or stop: workers */
	pthread_cond_t done_cv; /* a slot worked or freed: the emitter and the producer */
	uint64_t nput, taken, freed; /* slots put, taken by a worker, free again (counts: slot = n % depth) */
	uint8_t *worked;        /* per slot: its work is over (until it is freed) */
	int stop, err;          /* err: the first failure's code (an errno, positive), sticky; its reason in msg */
	char msg[MC_WORKQ_ERR];
	void *ts;               /* without threads: the caller's state (made at the first put) */
	int have_ts;
};

/* Records a failure, a callback's negative code (the first one wins); called with mu held, or with no threads. */
static void failed(struct mc_workq *q, int rc, const char *why)
{
	if (q->err)
		return;
	q->err = rc < 0 ? -rc : EIO;
	snprintf(q->msg, sizeof q->msg, "%s", why[0] ? why : "failed");
}

static int report(struct mc_workq *q, char *err, size_t errlen)
{
	if (q->err == 0)
		return 0;
	if (err && errlen)
		snprintf(err, errlen, "%s", q->msg);
	return -q->err;
}

/* Without emit: frees the worked slots at the head, in order. Called with mu held. */
static void retire(struct mc_workq *q)
{
	while (q->freed < q->nput && q->worked[q->freed % q->depth]) {
		q->worked[q->freed % q->depth] = 0;
		q->freed++;
	}
}

static void *worker(void *arg)
{
	struct mc_workq *q = arg;
	void *ts = q->ops->start ? q->ops->start(q->arg) : NULL;
	char why[MC_WORKQ_ERR];

	pthread_mutex_lock(&q->mu);
	for (;;) {
		while (q->taken == q->nput && !q->stop)
			pthread_cond_wait(&q->work_cv, &q->mu);
		if (q->taken == q->nput)
			break;
		unsigned slot = (unsigned)(q->taken++ % q->depth);
		int skip = q->err != 0; /* after a failure, nothing more is done */
		pthread_mutex_unlock(&q->mu);
		int rc = 0;
		why[0] = '\0';
		if (!skip)
			rc = q->ops->work(q->arg, ts, slot, why, sizeof why);
		pthread_mutex_lock(&q->mu);
		if (rc < 0)
			failed(q, rc, why);
		q->worked[slot] = 1;
		if (q->ops->emit == NULL)
			retire(q);
		pthread_cond_broadcast(&q->done_cv);
	}
	pthread_mutex_unlock(&q->mu);
	if (q->ops->stop)
		q->ops->stop(q->arg, ts);
	return NULL;
}

static void *emitter(void *arg)
{
	struct mc_workq *q = arg;
	char why[MC_WORKQ_ERR];

	pthread_mutex_lock(&q->mu);
	for (;;) {
		while (!(q->freed < q->nput && q->worked[q->freed % q->depth]) && !(q->stop && q->freed == q->nput))
			pthread_cond_wait(&q->done_cv, &q->mu);
		if (q->freed == q->nput)
			break;
		unsigned slot = (unsigned)(q->freed % q->depth);
		int skip = q->err != 0;
		pthread_mutex_unlock(&q->mu);
		int rc = 0;
		why[0] = '\0';
		if (!skip)
			rc = q->ops->emit(q->arg, slot, why, sizeof why);
		pthread_mutex_lock(&q->mu);
		if (rc < 0)
			failed(q, rc, why);
		q->worked[slot] = 0;
		q->freed++;
		pthread_cond_broadcast(&q->done_cv);
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

int mc_workq_new(struct mc_workq **qp, const struct mc_workq_ops *ops, void *arg, unsigned threads, unsigned depth)
{
	struct mc_workq *q = calloc(1, sizeof *q);
	int rc = 0;

	*qp = NULL;
	if (q == NULL || (q->worked = calloc(depth ? depth : 1, 1)) == NULL) {
		free(q);
		return -ENOMEM;
	}
	q->ops = ops;
	q->arg = arg;
	q->depth = depth ? depth : 1;
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->work_cv, NULL);
	pthread_cond_init(&q->done_cv, NULL);
	if (threads > MC_WORKQ_MAX_THREADS)
		threads = MC_WORKQ_MAX_THREADS;
	for (unsigned i = 0; i < threads; i++)
		if ((rc = pthread_create(&q->th[q->nth], NULL, worker, q)) == 0)
			q->nth++;
	if (threads && q->nth == 0)
		goto fail;
	if (threads && ops->emit) {
		if ((rc = pthread_create(&q->eth, NULL, emitter, q)) != 0)
			goto fail;
		q->have_eth = 1;
	}
	*qp = q;
	return 0;
fail:
	mc_workq_free(q);
	return -rc;
}

int mc_workq_get(struct mc_workq *q, unsigned *slot, char *err, size_t errlen)
{
	int rc;

	pthread_mutex_lock(&q->mu);
	while (q->err == 0 && q->nput - q->freed >= q->depth)
		pthread_cond_wait(&q->done_cv, &q->mu);
	*slot = (unsigned)(q->nput % q->depth);
	rc = report(q, err, errlen);
	pthread_mutex_unlock(&q->mu);
	return rc;
}

int mc_workq_put(struct mc_workq *q, char *err, size_t errlen)
{
	int rc;

	if (q->nth == 0) {
		/* No threads: worked and emitted here and now. */
		unsigned slot = (unsigned)(q->nput % q->depth);
		char why[MC_WORKQ_ERR] = "";
		if (!q->have_ts) {
			q->ts = q->ops->start ? q->ops->start(q->arg) : NULL;
			q->have_ts = 1;
		}
		q->nput++;
		if (q->err == 0 && ((rc = q->ops->work(q->arg, q->ts, slot, why, sizeof why)) < 0 ||
				    (q->ops->emit && (rc = q->ops->emit(q->arg, slot, why, sizeof why)) < 0)))
			failed(q, rc, why);
		q->freed++;
		return report(q, err, errlen);
	}
	pthread_mutex_lock(&q->mu);
	q->nput++;
	pthread_cond_signal(&q->work_cv);
	rc = report(q, err, errlen);
	pthread_mutex_unlock(&q->mu);
	return rc;
}

int mc_workq_wait(struct mc_workq *q, char *err, size_t errlen)
{
	int rc;

	pthread_mutex_lock(&q->mu);
	/* What was put before this call: a producer putting more meanwhile does not keep it waiting. */
	uint64_t until = q->nput;
	while (q->freed < until && q->err == 0)
		pthread_cond_wait(&q->done_cv, &q->mu);
	rc = report(q, err, errlen);
	pthread_mutex_unlock(&q->mu);
	return rc;
}

unsigned mc_workq_pending(struct mc_workq *q)
{
	unsigned n;

	pthread_mutex_lock(&q->mu);
	n = (unsigned)(q->nput - q->freed);
	pthread_mutex_unlock(&q->mu);
	return n;
}

void mc_workq_free(struct mc_workq *q)
{
	if (q == NULL)
		return;
	pthread_mutex_lock(&q->mu);
	q->stop = 1;
	pthread_cond_broadcast(&q->work_cv);
	pthread_cond_broadcast(&q->done_cv);
	pthread_mutex_unlock(&q->mu);
	for (unsigned i = 0; i < q->nth; i++)
		pthread_join(q->th[i], NULL);
	if (q->have_eth)
		pthread_join(q->eth, NULL);
	if (q->have_ts && q->ops->stop)
		q->ops->stop(q->arg, q->ts);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->work_cv);
	pthread_cond_destroy(&q->done_cv);
	free(q->worked);
	free(q);
}
