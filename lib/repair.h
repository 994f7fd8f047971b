/* Repair: complete or heal a package from unicast sources, chunk by verified chunk. */
#ifndef MC_REPAIR_H
#define MC_REPAIR_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "source.h"
#include "state.h"

/*
 * mc_repair_run works on PKG, the final name given to mcast-recv -o:
 *   PKG.part exists   its state (or, when lost or damaged, a rescan) says
 *                     which chunks are there; the rest is fetched, and PKG.part
 *                     is renamed to PKG once every chunk is verified;
 *   only PKG exists   every chunk is checked and the damaged ones rewritten in
 *                     place (no state file: the rescan is the truth);
 *   neither           PKG.part is created, header and manifest are fetched
 *                     first, then everything.
 * Sources are tried in order. A source must declare the same package id as
 * the local manifest (or the first source that opened, when there is none).
 * Every chunk is checked against its XXH3-128 digest before it is written; a
 * source that serves a bad chunk is reported and not asked for it again.
 * Transient failures are retried with exponential back-off and jitter
 * (Retry-After honoured); permanent ones drop the source.
 *
 * A source that stalls (no byte for the stall window, o->src.stall_ms) or
 * trickles (under MC_REPAIR_MIN_RATE over a window, or under 1/16 of the best
 * rate another source still in play reached) is left at once for the next
 * source and tried again after the others; one left MC_REPAIR_MAX_LEFT times
 * in a row without giving a verified chunk is given up.
 */
#define MC_REPAIR_MIN_RATE 1024 /* bytes per second */
#define MC_REPAIR_SLOW_RATIO 16
#define MC_REPAIR_MAX_LEFT 3

enum mc_repair_ev_type {
	MC_REPAIR_EV_LOCAL,    /* local scan done: nchunks, have, need, bytes_need (0 chunks when no manifest);
	                          msg: why PKG.state was not used, if it was there */
	MC_REPAIR_EV_SPREAD,   /* waiting delay_ms before the first request */
	MC_REPAIR_EV_SOURCE,   /* source opened and accepted */
	MC_REPAIR_EV_REFUSED,  /* source serves another package (msg says which) */
	MC_REPAIR_EV_ERROR,    /* source failed: msg; delay_ms > 0: retrying after it, else given up */
	MC_REPAIR_EV_BAD,      /* source served chunk with a wrong digest */
	MC_REPAIR_EV_CHUNK,    /* chunk verified and written */
	MC_REPAIR_EV_MANIFEST, /* manifest taken from source */
	MC_REPAIR_EV_LEFT,     /* source stalled or too slow (msg): left for now, tried again after the others */
	MC_REPAIR_EV_UNUSABLE, /* local source that can never serve (msg: missing, not a package, ...) */
	MC_REPAIR_EV_TICK,     /* bytes arriving from source (at most every 250 ms): for a progress line */
};

struct mc_repair_event {
	enum mc_repair_ev_type type;
	const char *source;      /* name of the source concerned, or NULL */
	const char *msg;
	uint32_t chunk;
	uint32_t nchunks, have, need;
	uint64_t bytes_need, bytes_fetched, delay_ms;
	uint64_t bytes_have;     /* MC_REPAIR_EV_LOCAL only */
	const struct mc_manifest *manifest; /* MC_REPAIR_EV_MANIFEST only */
};

typedef void (*mc_repair_event_fn)(void *ctx, const struct mc_repair_event *ev);

struct mc_content_key;

struct mc_repair_opts {
	const char *pkg;
	const char *const *sources;
	unsigned nsources;
	struct mc_source_opts src;
	uint64_t spread_ms;          /* random wait up to this before the first request */
	uint64_t backoff_base_ms;    /* 0: 250 ms */
	unsigned max_attempts;       /* failures in a row without progress before a source is dropped; 0: 5 */
	mc_repair_event_fn event;
	void *ctx;
	volatile sig_atomic_t *stop; /* set by a signal handler: save state and return */
	/*
	 * --trust (crypto.h; NULL: any package): a local manifest (PKG.part,
	 * PKG) not signed by one of these keys is an error before anything is
	 * fetched; a source whose manifest is not is refused
	 * (MC_REPAIR_EV_REFUSED) before its head is written, and the next is
	 * tried.
	 */
	const struct mc_trust *trust;
	/*
	 * --to TARGET (lib/target.h, lib/tstate.h): complete a target written in
	 * place instead of a package file (pkg is then only the name in
	 * messages). The missing chunks' stored bytes are fetched, verified,
	 * decoded onto their spans; holes are zeroed as extract --to does. The
	 * state (state_path, required) is the one mcast-recv --to keeps; without
	 * one the manifest comes from the first source. Every chunk the state does
	 * not mark is read back and checked first, so nothing on the target that
	 * is already right is fetched. Refused before a byte is written (res->refused):
	 * an unsuitable target, a state of another package or target.
	 */
	const char *target;
	const char *state_path;
	/*
	 * --decrypt with --to (crypto.h; NULL: none): the key that opens an
	 * encrypted package before the target is opened; one that does not,
	 * or none for an encrypted package, is an error before a byte is written.
	 */
	const struct mc_content_key *dkey;
};

enum mc_repair_src_state {
	MC_REPAIR_SRC_UNUSED, MC_REPAIR_SRC_OK, MC_REPAIR_SRC_REFUSED, MC_REPAIR_SRC_FAILED,
	MC_REPAIR_SRC_STALLED,  /* last left for stalling or trickling */
	MC_REPAIR_SRC_UNUSABLE, /* a local path that can never serve */
};

struct mc_repair_src_summary {
	const char *name;          /* resolved address or path (owned by the result) */
	enum mc_repair_src_state state;
	uint64_t bytes, requests;  /* received from it */
	uint32_t chunks_ok, chunks_bad;
	int no_ranges;             /* answered range requests with the whole file */
	char reason[1400];         /* last failure, "" none */
};

struct mc_repair_result {
	int have_manifest;
	int in_place;              /* healed PKG itself */
	int refused;               /* --to: the target, package or state was refused before a byte was written
	                              (or PKG.part, PKG.state was a device node, FIFO or socket):
	                              a usage error (exit 2), reason in err */
	int no_source;             /* incomplete and no source can ever do better: every one is a local
	                              path that is missing, not this package or lacks what is missing */
	uint32_t nchunks, had, fetched, missing;
	uint64_t bytes_need, bytes_fetched, bytes_missing;
	uint64_t package_size;
	char name[MC_NAME_MAX + 1]; /* the package's name and id, once a manifest is known */
	uint8_t id[MC_ID_LEN];
	struct mc_state st;        /* final chunk map (have bits) */
	struct mc_repair_src_summary *src;
	unsigned nsrc;
	struct mc_source **handles; /* kept so names stay valid */
};

/*
 * Runs the repair. Returns 0 when PKG is complete and verified (renamed into
 * place), 1 when some chunks (or the manifest) could not be had (state saved,
 * nothing verified lost), or a negative errno code on a local error
 * (lib/exitcode.h; reason in err: "PKG.part: No space left on device" and
 * -ENOSPC, "out of memory" and -ENOMEM; with res->refused, a target,
 * package or state refused before a byte was written). res is filled in
 * every case; free it with mc_repair_result_free.
 */
int mc_repair_run(const struct mc_repair_opts *o, struct mc_repair_result *res, char *err, size_t errlen);
void mc_repair_result_free(struct mc_repair_result *res);

/*
 * Merges the chunks whose bit is set in want (nchunks bits) into ranges of
 * the package file, adjacent chunks joined, each at most max_len bytes (cut
 * on chunk boundaries, at least one chunk). A wanted chunk that has spans
 * (parts already in the file; sorted, fit to m) gets only the gaps between
 * them, gaps less than MC_REPAIR_GAP apart joined. out holds
 * nchunks + nspans + 1 entries. Returns the number of ranges.
 */
#define MC_REPAIR_GAP 4096
size_t mc_repair_ranges(const struct mc_manifest *m, const uint8_t *want, const struct mc_span *spans, uint32_t nspans,
			uint64_t max_len, struct mc_range *out);

/*
 * Delay before retry number attempt (0 the first): a random value in
 * [d/2, d] with d = base * 2^attempt capped at cap, but at least
 * retry_after_ms (the server's Retry-After). rnd is a uniform random value.
 */
uint64_t mc_repair_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t cap_ms, uint64_t retry_after_ms, uint32_t rnd);

/*
 * Lists the chunks not set in st as "0-3,7,9-12" into buf (cut with "..."
 * when it does not fit). Returns buf.
 */
char *mc_repair_list_missing(const struct mc_state *st, char *buf, size_t len);

#endif
