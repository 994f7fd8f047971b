/* The monotonic clock: the one clock the library and the programs read. */
#ifndef MC_CLOCK_H
#define MC_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds, milliseconds and seconds: durations, timeouts, rates (never wall time). */
uint64_t mc_now_ns(void);
uint64_t mc_now_ms(void);
double mc_now_s(void);

#endif
