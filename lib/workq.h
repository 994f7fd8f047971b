/*
 * A small pool of worker threads over a ring of slots, the one behind
 * image create (spans compressed in parallel, written in order), signed or
 * encrypted format-1 create (chunks sealed and digested in parallel,
 * written in order) and a target's writers (chunks decoded and written).
 *
 * The caller owns the items: an array of `depth` of them, indexed by slot.
 * It takes the next slot with mc_workq_get (which waits until the item that
 * held it last has been emitted), fills it, and hands it over with
 * mc_workq_put. Workers run ops->work on slots in the order they were put,
 * several at once, each with a state of its own (ops->start: a compressor,
 * a decoder). ops->emit (optional) then runs on the slots in the order they
 * were put, one at a time, on a thread of its own: the in-order handoff (a
 * write to the package, the manifest's tables). A slot is free again once
 * it is emitted (or, without emit, worked and every slot before it too).
 *
 * With threads 0 there are no threads: mc_workq_put runs work and emit
 * itself, on the caller's thread, with one state made at the first put.
 *
 * Errors (lib/exitcode.h): work and emit return 0 or a negative errno code
 * (-ENOSPC, -EIO, -ENOMEM ...) with the reason in err (errlen bytes,
 * MC_WORKQ_ERR). The first failure is sticky: from then on nothing more is
 * worked or emitted (slots already worked may be left unemitted), and
 * mc_workq_get, mc_workq_put and mc_workq_wait return that code with that
 * reason. Nothing is said through errno.
 *
 * One thread (the producer) calls get and put, or a lock of the caller's
 * keeps them one at a time; mc_workq_wait may be called from any thread
 * (it returns once what was put before it is done).
 */
#ifndef MC_WORKQ_H
#define MC_WORKQ_H

#include <stddef.h>

#define MC_WORKQ_MAX_THREADS 16
#define MC_WORKQ_ERR 512

struct mc_workq_ops {
	/* A worker's own state, made on that worker before its first slot (NULL: none; may be NULL). */
	void *(*start)(void *arg);
	void (*stop)(void *arg, void *ts);
	/* Slot's item, on a worker (several at once, different slots). */
	int (*work)(void *arg, void *ts, unsigned slot, char *err, size_t errlen);
	/* Slot's item once worked, in the order the slots were put, one at a time (may be NULL). */
	int (*emit)(void *arg, unsigned slot, char *err, size_t errlen);
};

struct mc_workq;

/*
 * threads workers (at most MC_WORKQ_MAX_THREADS; 0: none, all on the
 * caller's thread) over depth slots (at least 1), into *q. Returns 0, or
 * -ENOMEM, or pthread_create's error negated when no thread could start
 * (*q NULL then).
 */
int mc_workq_new(struct mc_workq **q, const struct mc_workq_ops *ops, void *arg, unsigned threads, unsigned depth);

/* The next slot to fill into *slot, once it is free. Returns 0, or the failure's code (its reason in err). */
int mc_workq_get(struct mc_workq *q, unsigned *slot, char *err, size_t errlen);

/* Hands the slot mc_workq_get gave over. Returns 0, or a failure's code (without threads: maybe this one's). */
int mc_workq_put(struct mc_workq *q, char *err, size_t errlen);

/* Waits until every slot put before the call is worked and emitted. Returns 0, or the first failure's code. */
int mc_workq_wait(struct mc_workq *q, char *err, size_t errlen);

/* Slots put and not yet free (worked and emitted). */
unsigned mc_workq_pending(struct mc_workq *q);

/* Stops the threads once what was put is done (nothing more after a failure) and frees q. NULL is fine. */
void mc_workq_free(struct mc_workq *q);

#endif
