/* Token-bucket pacing of the sender to a bit rate, from a monotonic clock the caller reads. */
#ifndef MC_PACE_H
#define MC_PACE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Tokens are bytes on the wire. The bucket holds at most burst bytes, so
 * after an idle spell the sender may send one burst at line speed and is
 * then held to the rate; bursts of one GSO batch keep syscalls few without
 * overrunning switch buffers.
 */
struct mc_pace {
	double bytes_per_ns;
	double tokens;
	double burst;
	uint64_t last_ns;
};

void mc_pace_init(struct mc_pace *p, uint64_t rate_bps, size_t burst, uint64_t now_ns);
/* Nanoseconds to wait before len bytes may be sent (0: now). */
uint64_t mc_pace_wait(struct mc_pace *p, uint64_t now_ns, size_t len);
/* Takes len bytes from the bucket (may go negative: the next wait pays it back). */
void mc_pace_spend(struct mc_pace *p, size_t len);

/* Changes the rate, keeping the tokens in the bucket. */
void mc_pace_set_rate(struct mc_pace *p, uint64_t rate_bps);

/*
 * The sending rate under receivers' reports of overruns (their kernels
 * dropped datagrams for want of buffer): each new report halves the rate (at
 * most once per MC_RATE_HOLD_MS, so one episode reported by several
 * receivers or several times costs one cut), and every MC_RATE_STEP_MS
 * without one it climbs back by a thirty-second of -r up to 7/8 of the rate
 * it was cut at, then by a 256th, never above -r nor below a sixteenth of it:
 * a receiver that overflows loses a socket buffer's worth at once, and what
 * it lost costs more to repair than slowing down. The cut starts from what
 * the sender really sent, when that is less than its rate (an -r the CPU or
 * the link cannot reach): halving a rate that was never reached would not
 * slow it down. Network loss is not an overrun and does not slow the sender:
 * slowing would not bring those datagrams back.
 */
#define MC_RATE_HOLD_MS 100
#define MC_RATE_STEP_MS 100
struct mc_rate {
	uint64_t max, min, cur;
	uint64_t knee;          /* the rate at the last cut */
	uint64_t reports;       /* the last count of reports seen */
	uint64_t cut_ms, step_ms;
	uint64_t cuts, lowest;
};

void mc_rate_init(struct mc_rate *r, uint64_t max_bps, uint64_t now_ms);
/*
 * Takes the sender's running count of overrun reports and the rate it
 * achieved lately (bits per second while it had data to send; 0 unknown);
 * returns 1 when cur changed.
 */
int mc_rate_update(struct mc_rate *r, uint64_t reports, uint64_t sent_bps, uint64_t now_ms);

#endif
