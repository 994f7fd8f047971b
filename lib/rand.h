/* Pseudo-random numbers for jitter: the one generator of the library, its tests and the simulator. */
#ifndef MC_RAND_H
#define MC_RAND_H

#include <stdint.h>

/*
 * xorshift64*: the next number from state *s (which must not be 0). For
 * back-off jitter and simulated loss only, never for anything secret: seed
 * it from getrandom or a receiver id.
 */
static inline uint64_t mc_xorshift(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

#endif
