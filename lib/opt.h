/* Strict parsing of numbers, sizes, bit rates and durations from the command line. */
#ifndef MC_OPT_H
#define MC_OPT_H

#include <stdint.h>

/*
 * Each parser accepts the whole string or nothing: "5x", "", "-1" and values
 * outside [min, max] fail. They return 0 and store *out, or -1 and leave
 * *out alone; the caller names the option in its usage error.
 */

/* Decimal unsigned integer in [min, max]. */
int mc_opt_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Size in bytes: 123, 64K, 1M, 4G, 1T (powers of 1024; a trailing "B" or "iB" is allowed). */
int mc_opt_size(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Rate in bits per second: 800M, 1G, 1.5G, 500k (powers of 1000; "bps"/"bit" suffix allowed). */
int mc_opt_rate(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Duration in milliseconds: 250ms, 90s, 5m, 2h, 1d; a bare number is seconds; decimals allowed (1.5s). */
int mc_opt_duration(const char *s, uint64_t min_ms, uint64_t max_ms, uint64_t *out_ms);

/* Formats bytes as "1.5 GiB" into buf; returns buf. */
char *mc_fmt_size(uint64_t bytes, char *buf, unsigned len);

/* Formats a bit rate as "800 Mbit/s" into buf; returns buf. */
char *mc_fmt_rate(uint64_t bps, char *buf, unsigned len);

#endif
