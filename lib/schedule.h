/* Scheduling conditions of mcast-sched: distinct receivers, package filter, quorum and deadline. */
#ifndef MC_SCHEDULE_H
#define MC_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

/*
 * A pure state machine like the sender schedule: hellos and the time (in
 * milliseconds of any monotonic clock) go in, a decision comes out. No
 * socket, clock or file inside, so unit tests drive it directly.
 */

#define MC_SCHED_ADDR_MAX 64  /* "[ffff:...]" text of a receiver's address */
#define MC_SCHED_NAME_MAX 255 /* as MC_NAME_MAX in pkg.h */
#define MC_SCHED_HOST_MAX 64  /* as MC_HOST_MAX in wire.h */
#define MC_SCHED_CLIENTS_MAX 1000000u /* bound on memory: beyond this, hellos are not counted */

struct mc_sched_cfg {
	uint64_t min_clients; /* 0: not set */
	int has_max_wait;     /* --max-wait given (0 ms is a valid, immediate deadline) */
	uint64_t max_wait_ms;
	int start_empty;      /* start at max-wait even with no client (the default; 0 with --skip-empty) */
	const char *package;  /* NULL or "": any package */
};

struct mc_sched_client {
	uint64_t rid;
	char addr[MC_SCHED_ADDR_MAX];     /* where its last hello came from */
	char name[MC_SCHED_NAME_MAX + 1]; /* what it asked for, "" for any */
	char host[MC_SCHED_HOST_MAX + 1];  /* host name its hellos carry (printable, wire.h), "" none */
	uint64_t first_ms, last_ms;       /* first counted hello, last hello */
	uint64_t hellos;
};

enum mc_sched_decision {
	MC_SCHED_WAIT = 0,  /* keep listening */
	MC_SCHED_START = 1, /* run the command now; see reason */
	MC_SCHED_EMPTY = 2, /* max-wait passed and nobody asked, with --skip-empty: give up */
};

enum mc_sched_reason {
	MC_SCHED_R_NONE = 0,
	MC_SCHED_R_FIRST,    /* no condition given: the first client */
	MC_SCHED_R_QUORUM,   /* --min-clients reached */
	MC_SCHED_R_MAX_WAIT, /* --max-wait passed */
	MC_SCHED_R_SIGNAL,   /* operator asked (SIGUSR1) */
};

struct mc_sched {
	struct mc_sched_cfg cfg;
	char package[MC_SCHED_NAME_MAX + 1];
	uint64_t start_ms;
	struct mc_sched_client *clients; /* in order of arrival */
	uint32_t *by_rid;                /* indices into clients, sorted by rid */
	size_t n, cap;
	uint64_t hellos, ignored, dropped; /* counted, for another package, over the bound */
	enum mc_sched_decision decision;
	enum mc_sched_reason reason;
	uint64_t decided_ms;
};

/*
 * Starts a wait at now_ms with cfg (the package name is copied). Returns 0,
 * or -1 when cfg->package is longer than MC_SCHED_NAME_MAX.
 */
int mc_sched_init(struct mc_sched *s, const struct mc_sched_cfg *cfg, uint64_t now_ms);

/* Frees what mc_sched_init and mc_sched_hello allocated. */
void mc_sched_free(struct mc_sched *s);

/*
 * 1 when a receiver asking for name (NULL or "": any package) counts for
 * this wait: every name counts when no package was given; otherwise the
 * same name, or any.
 */
int mc_sched_wanted(const struct mc_sched *s, const char *name);

/*
 * Offers one hello from receiver rid at addr (text, may be NULL) asking for
 * name. Returns 1 when it is a new counted receiver (stored as
 * s->clients[s->n - 1]), 0 when it was known already or does not count
 * (another package, or after the decision), -1 when out of memory. A
 * receiver that first asked for another package and then for this one
 * counts from then on.
 */
int mc_sched_hello(struct mc_sched *s, uint64_t rid, const char *name, const char *addr, uint64_t now_ms);

/* Index of receiver rid in s->clients, or -1. */
long mc_sched_find(const struct mc_sched *s, uint64_t rid);

/*
 * Decides at now_ms. signalled: the operator asked to start now (it starts
 * even with no client). Once a decision other than MC_SCHED_WAIT is taken it
 * sticks: later calls return it again. The reason is in s->reason.
 */
enum mc_sched_decision mc_sched_poll(struct mc_sched *s, uint64_t now_ms, int signalled);

/* Milliseconds from now_ms until the deadline (0 when passed), or UINT64_MAX when there is none. */
uint64_t mc_sched_remaining(const struct mc_sched *s, uint64_t now_ms);

/* Milliseconds waited so far (until the decision, once there is one). */
uint64_t mc_sched_waited(const struct mc_sched *s, uint64_t now_ms);

/*
 * The condition in words, for logs and the status file:
 * "3 clients or 30m", "3 clients", "30m", "first client" (with
 * " (skipped if nobody asked)" with --skip-empty). Writes into buf, returns buf.
 */
char *mc_sched_condition(const struct mc_sched *s, char *buf, size_t len);

/* Short names for reasons and decisions: "quorum", "max-wait", "signal", "first-client"; "waiting", "start", "empty". */
const char *mc_sched_reason_name(enum mc_sched_reason r);
const char *mc_sched_decision_name(enum mc_sched_decision d);

/* Formats ms as a short duration: "250ms", "90s", "5m", "2h", "1h30m", "1d2h". Returns buf. */
char *mc_sched_fmt_ms(uint64_t ms, char *buf, size_t len);

#endif
