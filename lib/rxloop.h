/* The receive driver: sockets, clock and state saving around the pure receiver core, writing through a sink. */
#ifndef MC_RXLOOP_H
#define MC_RXLOOP_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "net.h"
#include "receiver.h"
#include "sink.h"

/*
 * mc_rxloop owns the data and feedback sockets and the clock, feeds the
 * receiver core (lib/receiver.h) what arrives, sends the feedback it
 * queues, writes what it keeps through a sink (lib/sink.h), and makes the
 * sink's state durable on a thread of its own, at least once a second. It
 * never prints: what a program says about the session comes out through the
 * report callback, and the outcome is what mc_rxloop_run returns.
 */
enum mc_rxloop_evkind {
	/* MC_REV_* of lib/receiver.h: SESSION, MANIFEST (head written), CHUNK, BADCHUNK, WELCOME, OTHER, COMPLETE (after finish) */
	MC_RXL_EV_OVERRUN = 100, /* the kernel dropped arg datagrams for want of socket buffer (mc_rxloop_info: overruns) */
	MC_RXL_EV_FEEDBACK,      /* feedback could not be sent (errno in err): said at most every 10 s */
	MC_RXL_EV_PROGRESS,      /* once a loop until complete (waiting for a session, then receiving) */
	MC_RXL_EV_PARTS_LOST,    /* mc_rxloop_save: chunks not yet complete could not be kept (reason in msg) */
};

struct mc_rxloop_ev {
	int kind;
	uint32_t arg;
	int err;
	uint64_t now;     /* ms, the driver's clock */
	const char *msg;  /* or NULL */
};

struct mc_rxloop;
typedef void (*mc_rxloop_report_fn)(void *ctx, struct mc_rxloop *l, const struct mc_rxloop_ev *ev);

struct mc_rxloop_cfg {
	struct mc_group g, gfb;      /* data group and port; the same group on port + 1 for feedback */
	int ttl;                     /* of feedback */
	struct mc_recv_cfg core;     /* rid, expect, package, mem_limit, seed (io is the driver's) */
	struct mc_sink *sink;        /* borrowed */
	const struct mc_resume *rs;  /* what the sink holds already (have_m 0: nothing) */
	uint64_t timeout_ms;         /* --timeout: no session, or a sender silent this long; 0 none */
	volatile sig_atomic_t *stop; /* set by a signal handler: return MC_RXL_INTERRUPTED */
	/*
	 * When the state is handed to the saving thread (0: the defaults, what
	 * the programs use): at least once a save_ms while chunks come (1000),
	 * never sooner than save_min_ms after the last (250), and in between as
	 * soon as save_bytes more are verified and the last save is done
	 * (64 MiB). Tests make the early save visible with a small save_bytes.
	 */
	uint64_t save_ms, save_min_ms, save_bytes;
	mc_rxloop_report_fn report;
	void *ctx;
};

/* How a run ended. */
enum mc_rxloop_result {
	MC_RXL_COMPLETE = 0, /* every chunk verified and the sink finished */
	MC_RXL_INTERRUPTED,  /* *stop was set */
	MC_RXL_ENDED,        /* the sender ended (MC_REV_END) or told us to leave (MC_REV_LEAVE): mc_rxloop_end */
	MC_RXL_NOSESSION,    /* no session within timeout_ms */
	MC_RXL_SILENT,       /* the sender went silent mid-session */
	MC_RXL_ERROR,        /* a local error: reason in err */
};

struct mc_rxloop_info {
	uint64_t start_ms;               /* when the sockets opened */
	uint64_t fb_failed;              /* feedback datagrams that could not be sent */
	uint32_t overruns;               /* the data socket's, from the kernel */
	uint32_t partial;                /* chunks of which parts were kept at the last save */
	struct sockaddr_storage sender;  /* where the last data came from */
	int complete;                    /* the sink finished */
	int rcvbuf;                      /* the data socket's receive buffer, bytes */
};

/*
 * Makes the driver and its receiver core (preloaded with cfg->rs). Returns
 * NULL with the reason in err ("out of memory").
 */
struct mc_rxloop *mc_rxloop_new(const struct mc_rxloop_cfg *cfg, char *err, size_t errlen);

/* Opens the sockets (a group or interface at fault is named in err). Returns 0 or a negative errno-like code. */
int mc_rxloop_open(struct mc_rxloop *l, char *err, size_t errlen);

/* Runs the session until it ends; returns enum mc_rxloop_result (MC_RXL_ERROR: reason in err). */
int mc_rxloop_run(struct mc_rxloop *l, char *err, size_t errlen);

/*
 * The final save (after the state-saving thread stopped): the parts of
 * chunks still being assembled are written, the sink synced and its state
 * saved with them and with the parts the run started with (the resumed
 * state's spans, of chunks not verified or failed since: every save keeps
 * them, the state thread's too). Parts of this run that cannot be kept are
 * reported as MC_RXL_EV_PARTS_LOST, the rest is saved all the same; out of
 * memory for the list, nothing is saved (the state on disk stays a lower
 * bound). Returns 0, or -1 with the reason in err. Nothing to do before the
 * sink holds the manifest.
 */
int mc_rxloop_save(struct mc_rxloop *l, char *err, size_t errlen);

/* Stops the state-saving thread; returns -1 when one of its saves failed (reason in err), else 0. */
int mc_rxloop_stop_saver(struct mc_rxloop *l, char *err, size_t errlen);

/* Closes the sockets and frees (the sink is the caller's). NULL is fine. */
void mc_rxloop_free(struct mc_rxloop *l);

struct mc_receiver *mc_rxloop_receiver(const struct mc_rxloop *l);
const struct mc_rxloop_info *mc_rxloop_info(const struct mc_rxloop *l);
/* The event that ended an MC_RXL_ENDED run. */
struct mc_recv_event mc_rxloop_end(const struct mc_rxloop *l);
/* The group's text, as given ("239.1.2.3:7077"). */
const char *mc_rxloop_group(const struct mc_rxloop *l);

/*
 * Receiver id: the same machine (its machine id and its cards' addresses:
 * clones of one image share the first), network namespace and output give
 * the same id (the sender and mcast-sched count ids). Never 0.
 */
uint64_t mc_rxloop_rid(const char *out);

#endif
