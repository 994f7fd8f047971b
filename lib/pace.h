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

/* Monotonic clock in nanoseconds and milliseconds (the only clock the programs use). */
uint64_t mc_now_ns(void);
uint64_t mc_now_ms(void);

#endif
