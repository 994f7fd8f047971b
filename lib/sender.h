/* The sender schedule: a pure state machine (feedback and time in; what to send and when to stop out). */
#ifndef MC_SENDER_H
#define MC_SENDER_H

#include <stdint.h>
#include <sys/socket.h>

#include "fec.h"
#include "wire.h"

/*
 * Pass 1 sweeps every block in order: its k source symbols and
 * ceil(k * fec / 100) repair symbols. NACKs raise a per-block demand (the
 * largest need any receiver reported); the cursor serves a block's demand
 * when it next reaches that block, with fresh repair symbols (ESIs cycle
 * k..254, then 0..254 again), so one packet heals different losses at many
 * receivers. Later passes visit only blocks with demand. See
 * mcast-protocol(7) for the end rule and the slow-receiver policy.
 */
/* Repair requests from one receiver closer together than this count as one round of the slow-receiver policy. */
#define MC_ROUND_MS 100
/* Repair after the first pass: at least this percent more than asked for, and one symbol. */
#define MC_REPAIR_MARGIN 5
/*
 * --fec auto: first-pass repair of twice the worst loss that receivers
 * reported in their NACKs over the last MC_FEC_AUTO_MS to twice that, at
 * most MC_FEC_AUTO_MAX percent; none while nobody reports loss.
 */
#define MC_FEC_AUTO_MS 500
#define MC_FEC_AUTO_MAX 25

struct mc_sender_cfg {
	struct mc_geom geom;
	unsigned fec_pct;          /* repair symbols per block in the first pass, percent of k */
	int fec_auto;              /* --fec auto: the first pass's repair follows the loss receivers report (fec_pct unused there) */
	uint64_t linger_ms;
	uint64_t max_time_ms;      /* 0: no limit */
	uint64_t peer_timeout_ms;  /* a silent receiver is no longer waited for */
	unsigned max_passes;       /* repair rounds a receiver may ask for before it is told to leave; 0: never */
	uint8_t id[MC_ID_LEN];     /* the package: HELLOs for another id or name are not ours */
	char name[MC_NAME_MAX + 1];
};

struct mc_sender_job {
	uint32_t block;        /* global block number */
	struct mc_block b;
	uint32_t pass;
	uint16_t n;            /* symbols to send */
	uint8_t esi[255];
};

struct mc_peer {
	uint64_t rid;
	struct sockaddr_storage addr;
	uint64_t joined_ms, heard_ms;
	uint32_t join_pass;
	uint32_t rounds;           /* passes in which it asked for repair (slow-receiver policy) */
	uint32_t last_round_pass;
	uint64_t round_ms;         /* when its last counted round began */
	uint32_t have, total;
	uint32_t nacks;
	uint16_t overruns;         /* as it last reported (modulo 65536) */
	uint64_t overrun_ms;       /* when they last grew; 0 never (--fec auto leaves the loss of one that overran out) */
	char host[MC_HOST_MAX + 1]; /* host name from its hellos, "" until one names it */
	uint8_t welcomed, done, left, gone, told_leave, acked_done;
};

struct mc_sender_stats {
	uint64_t symbols, repair_symbols, passes;
	uint64_t nacks, nack_entries, feedback_bad;
	uint64_t nack_stale;       /* blocks asked for by a NACK older than the pass that last sent them: not taken */
	uint64_t overruns;         /* datagrams receivers' kernels dropped for want of buffer, as reported */
	uint64_t overrun_reports;  /* reports that the count grew: the caller slows down when this moves */
	uint32_t joined, complete, active, gone, left;
};

enum mc_sender_state { MC_SENDER_RUN = 0, MC_SENDER_IDLE = 1, MC_SENDER_OVER = 2 };

struct mc_sender;

/* Returns a new schedule starting at time now_ms, or NULL (ENOMEM or bad geometry). */
struct mc_sender *mc_sender_new(const struct mc_sender_cfg *cfg, uint32_t session, uint64_t now_ms);
void mc_sender_free(struct mc_sender *s);

/* Feeds one decoded feedback packet (HELLO, NACK, DONE, BYE) from addr. Out-of-bounds numbers are dropped and counted. */
void mc_sender_feedback(struct mc_sender *s, uint64_t now_ms, const struct mc_pkt *p, const struct sockaddr_storage *addr);

/*
 * Next block to send. Returns MC_SENDER_RUN with *job filled, MC_SENDER_IDLE
 * when nothing is wanted right now (call again after feedback or time), or
 * MC_SENDER_OVER when the session has ended (see mc_sender_end_reason).
 */
int mc_sender_next(struct mc_sender *s, uint64_t now_ms, struct mc_sender_job *job);

/*
 * Up to max jobs of one pass, for a window of interleaved blocks; *state as
 * mc_sender_next returns it. A job of the next pass waits for the next
 * window: receivers take DATA of a new pass as the end of the last one, so
 * mixed into the last one's window it would have them ask for blocks still
 * on their way. Until the next call the window counts as on the wire:
 * announcements give its pass and last block, and never IDLE.
 */
unsigned mc_sender_window(struct mc_sender *s, uint64_t now_ms, struct mc_sender_job *jobs, unsigned max, int *state);

/* Advances timers (peer timeouts, end rule) without sending. Returns the state as mc_sender_next would. */
int mc_sender_tick(struct mc_sender *s, uint64_t now_ms);

/* Pending verdicts for receivers (welcome, leave, done). Returns 1 with *p filled, 0 when none. */
int mc_sender_ctrl(struct mc_sender *s, struct mc_pkt *p);

/* Fills the dynamic fields of an announcement (pass, cursor, counts) and returns header flags. */
uint8_t mc_sender_announce(const struct mc_sender *s, struct mc_announce *a);

int mc_sender_end_reason(const struct mc_sender *s);
const struct mc_sender_stats *mc_sender_stats(const struct mc_sender *s);

/* Peers, for events: count and i-th (stable until the next feedback call). */
unsigned mc_sender_npeers(const struct mc_sender *s);
const struct mc_peer *mc_sender_peer(const struct mc_sender *s, unsigned i);

/* Events since the last call: returns 1 and the peer index and kind (MC_PKT_HELLO joined, MC_PKT_DONE, MC_PKT_BYE, MC_CTRL_LEAVE as 0x100, 0x101 gone). */
int mc_sender_event(struct mc_sender *s, unsigned *peer, unsigned *kind);
#define MC_SEV_JOIN 1
#define MC_SEV_DONE 2
#define MC_SEV_BYE 3
#define MC_SEV_LEAVE 4
#define MC_SEV_GONE 5

/*
 * Turns a job into its DATA datagrams without copying payload: block holds
 * the block's k source symbols (block.len bytes, zero-padded to k * sym),
 * repair has room for job->n symbols. For each i < job->n, hdr[i] gets the
 * 32-byte header and sym[i] points at the symbol (into block or repair).
 * Returns 0, or -1 when the coder fails.
 */
int mc_sender_datagrams(struct mc_fec *f, uint32_t session, uint16_t symsize, const struct mc_sender_job *job,
			uint8_t *block, uint8_t *repair, uint8_t (*hdr)[MC_WIRE_DATA_HDR], const uint8_t **sym);

/*
 * The order in which to send the datagrams of njobs jobs: symbol 0 of every
 * job, then symbol 1 of every job, and so on (see MC_INTERLEAVE). Fills
 * order[] with (job, index) pairs and returns how many.
 */
unsigned mc_sender_interleave(const struct mc_sender_job *jobs, unsigned njobs, uint16_t (*order)[2]);

/* Encodes fragment idx of manifest m for session into out; returns the length, 0 past the end. */
size_t mc_sender_manifest_pkt(uint32_t session, const struct mc_manifest *m, uint32_t idx, uint8_t *out, size_t cap);
/* Encodes the announcement (static fields from m and geometry, dynamic ones from s); returns the length. */
size_t mc_sender_announce_pkt(const struct mc_sender *s, const struct mc_manifest *m, uint64_t rate, uint8_t *out, size_t cap);

#endif
