/* Receiver assembly: a pure state machine (packets and time in; writes, feedback and decisions out). */
#ifndef MC_RECEIVER_H
#define MC_RECEIVER_H

#include <stddef.h>
#include <stdint.h>

#include "fec.h"
#include "pkg.h"
#include "wire.h"

/*
 * The receiver never touches a socket, clock or file: the caller feeds it
 * datagrams (from the data port and the feedback port, where other
 * receivers' NACKs are heard for suppression) and the time, sends the
 * feedback it queues, and gives it two callbacks to write and read back
 * payload bytes (PKG.part in mcast-recv, memory in tests and the simulator).
 * Chunks are assembled in a bounded set of memory slots; a slot evicted
 * before its chunk completes spills its source symbols through write and
 * reloads them through read. A chunk counts only after its XXH3-128 matches
 * the manifest; only then is it written as verified.
 *
 * A session of an image package (format 2, announced with MC_FLAG_IMAGE)
 * has chunks of their own lengths, known only from the manifest: its DATA
 * is held (as DATA heard before any announcement is) and placed once the
 * manifest is complete; its hole chunks count as verified from then on.
 */
struct mc_recv_io {
	void *ctx;
	/* Both return 0 or -1; off is a payload offset. */
	int (*write)(void *ctx, uint64_t off, const void *buf, size_t len);
	int (*read)(void *ctx, uint64_t off, void *buf, size_t len);
};

struct mc_recv_cfg {
	uint64_t rid;                  /* receiver id, stable for one output */
	uint8_t expect[MC_ID_LEN];     /* --expect: package id or prefix */
	int expect_nhex;               /* hex digits of expect that must match; 0: any */
	char package[MC_NAME_MAX + 1]; /* --package NAME, "" any */
	char host[MC_HOST_MAX + 1];    /* said in every HELLO so the sender names this machine; "" none */
	size_t mem_limit;              /* bytes of chunk slots; 0: 1/8 s of the announced rate, 64 MiB to 256 MiB */
	int mem_hard;                  /* mem_limit binds below a window's chunks (simulations of thousands) */
	uint64_t seed;                 /* random back-off */
	uint32_t backoff_ms;           /* NACK back-off window; 0: default */
	struct mc_recv_io io;
	/*
	 * Optional (NULL: verified chunks go through io.write, holes need
	 * nothing): a verified chunk's stored bytes, whole (len bytes at buf,
	 * chunk c of the manifest), handed over instead of being written at its
	 * payload offset, for a sink that decodes chunks (a target disk). A hole
	 * chunk of an image package comes with len 0 and buf NULL once the
	 * manifest is known. The chunk counts as verified only when it returns
	 * 0; -1 is an I/O error (MC_REV_IOERR) and the chunk is asked for again.
	 * It takes io.ctx. (Here rather than in struct mc_recv_io, whose
	 * callers fill it by position.)
	 */
	int (*chunk)(void *ctx, uint32_t c, const void *buf, size_t len);
	/*
	 * --trust (crypto.h; NULL: any package): a session is taken only once
	 * its manifest is signed by one of these keys. Until then nothing of
	 * it is written (no parked chunk, no spilled symbol); a session whose
	 * manifest is refused is forgotten whole (MC_REV_OTHER, MC_OTHER_UNTRUSTED)
	 * and never taken again, so a forger's session of the same name costs
	 * a late start at worst, never the right one.
	 */
	const struct mc_trust *trust;
};

enum mc_recv_evkind {
	MC_REV_SESSION = 1, /* locked onto a session (announce seen) */
	MC_REV_MANIFEST,    /* manifest complete and verified: mc_recv_manifest() is valid */
	MC_REV_CHUNK,       /* chunk verified and written */
	MC_REV_BADCHUNK,    /* chunk failed its digest: discarded, asked for again */
	MC_REV_WELCOME,     /* the sender counted us */
	MC_REV_COMPLETE,    /* every chunk verified */
	MC_REV_END,         /* the sender ended the session (reason in .arg) */
	MC_REV_LEAVE,       /* told to leave by the slow-receiver policy */
	MC_REV_IOERR,       /* the write or read callback failed */
	MC_REV_OTHER,       /* a session of a package not wanted, first seen (why in .arg: MC_OTHER_*; mc_recv_other) */
};

struct mc_recv_event {
	int kind;
	uint32_t arg;
};

struct mc_recv_stats {
	uint64_t packets, data, dup, bad, other, decoded_blocks, bad_chunks;
	uint64_t nacks_sent, nack_entries_sent, nacks_heard, suppressed, hellos_sent;
	uint64_t spills, reloads, payload_bytes;
};

enum mc_recv_phase { MC_RPH_WAIT = 0, MC_RPH_JOINED, MC_RPH_COMPLETE, MC_RPH_FINISHED };

struct mc_receiver;

struct mc_receiver *mc_recv_new(const struct mc_recv_cfg *cfg);
void mc_recv_free(struct mc_receiver *r);

/*
 * Resuming: the package is known (manifest from PKG.part) and have marks
 * verified chunks (bitmap of m->nchunks bits, or NULL); spans (sorted, fit to
 * m: mc_state_spans_fit) are parts of other chunks already in the file, used
 * as received symbols once the session's coding is known. The receiver then
 * accepts only a session of this package. Returns 0 or -1 (ENOMEM).
 */
int mc_recv_preload(struct mc_receiver *r, const struct mc_manifest *m, const uint8_t *have,
		    const struct mc_span *spans, uint32_t nspans);

/*
 * Before stopping: writes the source symbols of every chunk still being
 * assembled in memory to the file (io.write), so that mc_recv_spans can
 * name them. Repair symbols cannot be kept. Returns 0, or -1 on a write error.
 */
int mc_recv_flush(struct mc_receiver *r);

/*
 * The parts of unverified chunks that are in the file (after mc_recv_flush,
 * all that was received), merged and sorted, as a malloc'd array in *out.
 * Returns the count (0 with *out NULL when none), or -1 (ENOMEM).
 */
long mc_recv_spans(const struct mc_receiver *r, struct mc_span **out);

/* Feeds one datagram. */
void mc_recv_packet(struct mc_receiver *r, uint64_t now_ms, const uint8_t *buf, size_t len);

/*
 * The kernel's count of datagrams it dropped for this receiver's socket (its
 * buffer was full): reported to the sender in NACKs, at once when it grows,
 * so that the sender slows down for a receiver that cannot keep up.
 */
void mc_recv_overruns(struct mc_receiver *r, uint32_t dropped);

/* Runs timers (hello, NACK back-off, done); returns when it next wants to run (absolute ms). */
uint64_t mc_recv_tick(struct mc_receiver *r, uint64_t now_ms);

/*
 * Only what cannot wait while the loop is still behind in its reading (its
 * socket holds more): a hello when due, so that the sender keeps waiting
 * for this receiver, an image's placing, and in the first pass a report of
 * its loss (a NACK with no entries, for --fec auto). No NACK that asks:
 * what it would ask for may be in the datagrams not read yet.
 */
void mc_recv_alive(struct mc_receiver *r, uint64_t now_ms);

/* When the timers next want mc_recv_tick (absolute ms); packets may bring it forward. */
uint64_t mc_recv_next(const struct mc_receiver *r);

/* Pops one queued feedback datagram into buf; returns its length, 0 when none. */
size_t mc_recv_feedback(struct mc_receiver *r, uint8_t *buf, size_t cap);

/* Pops one event; returns 1, or 0 when none. */
int mc_recv_event(struct mc_receiver *r, struct mc_recv_event *ev);

int mc_recv_phase(const struct mc_receiver *r);
const struct mc_manifest *mc_recv_manifest(const struct mc_receiver *r); /* NULL until known */
const struct mc_announce *mc_recv_announce(const struct mc_receiver *r); /* NULL until a session */
/* Why a session was not taken (MC_REV_OTHER): PKG.part holds another package, --expect, --package. */
enum { MC_OTHER_PART = 1, MC_OTHER_EXPECT, MC_OTHER_PACKAGE, MC_OTHER_UNTRUSTED };
/* Why the last session was refused by the trust set (MC_OTHER_UNTRUSTED): names the signer's key id. */
const char *mc_recv_untrusted(const struct mc_receiver *r);
const struct mc_announce *mc_recv_other(const struct mc_receiver *r); /* the last one not taken, NULL none */
const uint8_t *mc_recv_pinned(const struct mc_receiver *r);             /* the package PKG.part holds, NULL none */
/* Verified-chunk bitmap (nchunks bits) and counts; NULL before the session is known. */
const uint8_t *mc_recv_have(const struct mc_receiver *r, uint32_t *nhave, uint32_t *nchunks);
uint64_t mc_recv_last_heard(const struct mc_receiver *r); /* ms of the last packet of our session, 0 none */
const struct mc_recv_stats *mc_recv_stats(const struct mc_receiver *r);

#endif
