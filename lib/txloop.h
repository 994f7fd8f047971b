/* The send driver: sockets, clock and pacing around the pure sender schedule, for one package. */
#ifndef MC_TXLOOP_H
#define MC_TXLOOP_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "net.h"
#include "pace.h"
#include "pkg.h"
#include "sender.h"

/*
 * mc_txloop owns the data and feedback sockets, the pacer and the clock: it
 * reads the package's blocks, codes them, sends them in paced GSO batches,
 * repeats the announcement and the manifest, hears feedback and runs the
 * sender schedule (lib/sender.h) until the session is over. It never prints:
 * what the program says comes out through the report callback.
 */
enum mc_txloop_evkind {
	MC_TXL_EV_PEER = 1, /* a receiver event (MC_SEV_* in arg2) of peer arg (mc_sender_peer) */
	MC_TXL_EV_PROGRESS, /* four times a second (arg: 1 forced, the last one) */
	MC_TXL_EV_PASS,     /* pass arg done */
	MC_TXL_EV_RATE,     /* the rate changed (mc_txloop_info: rate) */
	MC_TXL_EV_NOGSO,    /* UDP GSO refused (the errno, positive, in err): datagram by datagram from now on */
	MC_TXL_EV_DAMAGED,  /* a chunk of the package does not match its digest (msg): the session ends (MC_END_DAMAGED) */
};

struct mc_txloop_ev {
	int kind;
	unsigned arg, arg2;
	int err;
	const char *msg;
};

/*
 * What the driver does to the world, for a simulator or a test with a fake
 * clock (cfg.io NULL: the real ones, sockets and CLOCK_MONOTONIC). Every op
 * takes ctx.
 */
struct mc_txloop_io {
	void *ctx;
	uint64_t (*now_ns)(void *ctx);
	/* Waits up to ns, or less when feedback comes in. */
	void (*wait)(void *ctx, uint64_t ns);
	/* One datagram to the group. Returns 0 or a negative errno code (counted as dropped). */
	int (*send)(void *ctx, const void *buf, size_t len);
	/*
	 * nseg datagrams of seg bytes, each a header/symbol pair of iov (2 * nseg
	 * entries), with UDP GSO when gso is set. Returns 0 or a negative errno
	 * code: -EIO, -EINVAL or -ENOPROTOOPT when GSO is refused, -EINTR, else
	 * fatal (lib/exitcode.h: never through errno).
	 */
	int (*send_batch)(void *ctx, struct iovec *iov, unsigned nseg, uint16_t seg, int gso);
	/* One feedback datagram into buf, its sender in *from: returns its length, 0 when none is waiting. */
	size_t (*recv)(void *ctx, uint8_t *buf, size_t cap, struct sockaddr_storage *from);
	/* Payload bytes [off, off + len) of the package. Returns 0 or a negative errno code (-ENODATA: the file shrank). */
	int (*read)(void *ctx, uint64_t off, void *buf, size_t len);
};

struct mc_txloop;
typedef void (*mc_txloop_report_fn)(void *ctx, struct mc_txloop *l, const struct mc_txloop_ev *ev);

struct mc_txloop_cfg {
	struct mc_group g, gfb;      /* data group and port; the same group on port + 1 for feedback */
	int ttl;
	const struct mc_pkg *pkg;    /* open (borrowed) */
	uint64_t rate;               /* bits per second */
	unsigned mtu;
	uint16_t sym, kmax;          /* symbol size and source symbols per block; 0: from mtu, and 128 */
	struct mc_sender_cfg core;   /* fec_pct, linger_ms, max_time_ms, peer_timeout_ms, max_passes (geometry, id and name: the driver's) */
	volatile sig_atomic_t *stop; /* set by a signal handler: the session ends (MC_END_SIGNAL) */
	const struct mc_txloop_io *io; /* NULL: sockets, the package file and the monotonic clock */
	int gso;                     /* with io: hand batches to send_batch as GSO trains */
	uint32_t session;            /* with io: the session id (0: random) */
	mc_txloop_report_fn report;
	void *ctx;
};

struct mc_txloop_info {
	uint32_t session;
	uint16_t sym;                /* symbol size */
	int gso;                     /* UDP GSO in use */
	uint64_t start_ms;
	uint64_t bytes_sent, pkts_sent, send_drops;
	struct mc_rate rate;         /* current, cuts, lowest */
};

/*
 * Makes the driver and its schedule for cfg->pkg. Returns NULL with the
 * reason in err ("out of memory", "PKG: cannot cut into coding blocks").
 */
struct mc_txloop *mc_txloop_new(const struct mc_txloop_cfg *cfg, char *err, size_t errlen);

/* Opens the sockets (not with cfg.io) and starts the pacer. Returns 0 or the failed call's -errno with the reason in err. */
int mc_txloop_open(struct mc_txloop *l, char *err, size_t errlen);

/*
 * Runs the session until it is over; returns why (enum mc_end_reason, 0 or
 * more), or a negative errno code with the reason in err: a send or read
 * that failed (-ENODATA: the package shrank), -ENOMEM, -EIO (the coder).
 */
int mc_txloop_run(struct mc_txloop *l, char *err, size_t errlen);

/* Tells the receivers the session ended (END, repeated against loss). */
void mc_txloop_end(struct mc_txloop *l, int reason);

void mc_txloop_free(struct mc_txloop *l);

const struct mc_sender *mc_txloop_sender(const struct mc_txloop *l);
const struct mc_txloop_info *mc_txloop_info(const struct mc_txloop *l);

#endif
