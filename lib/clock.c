/* The monotonic clock; see clock.h. */
#include "clock.h"

#include <time.h>

uint64_t mc_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t mc_now_ms(void)
{
	return mc_now_ns() / 1000000;
}

double mc_now_s(void)
{
	return (double)mc_now_ns() / 1e9;
}
