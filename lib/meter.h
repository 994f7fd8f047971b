/* Progress meter: the rate and time left of long work, and the words of its live and end lines. */
#ifndef MC_METER_H
#define MC_METER_H

#include <stddef.h>
#include <stdint.h>

/*
 * A meter follows bytes done out of a total. The rate is measured over the
 * last few seconds (a ring of samples), so a stall shows at once as a
 * falling rate and a growing time left, not as a lifetime average.
 */
#define MC_METER_SAMPLES 16
#define MC_METER_WINDOW_MS 5000

struct mc_meter {
	uint64_t total;          /* bytes in all, 0 when not known yet */
	uint64_t start_ms, start_done;
	uint64_t t[MC_METER_SAMPLES], d[MC_METER_SAMPLES];
	unsigned n, head;
	uint64_t last_ms, last_done; /* the newest point, also between samples: the rate runs up to it */
};

/* Starts a meter at now_ms with done bytes already there (not counted in the rate). */
void mc_meter_start(struct mc_meter *m, uint64_t total, uint64_t done, uint64_t now_ms);

/*
 * Records that done bytes are there at now_ms: the newest point always,
 * a sample of the window at most every 250 ms.
 */
void mc_meter_add(struct mc_meter *m, uint64_t done, uint64_t now_ms);

/*
 * Bytes found done without work (already there, skipped over): the next
 * points count them in done, the rate does not see them.
 */
void mc_meter_skip(struct mc_meter *m, uint64_t bytes);

/* Bytes per second from the oldest sample of the last window to the newest point (0 until time has passed). */
double mc_meter_rate(const struct mc_meter *m);

/*
 * The live line's figures: "53.2 MiB of 147.7 MiB (36%), 29.1 MiB/s, 0:03 left".
 * Without a total: "53.2 MiB, 29.1 MiB/s"; without a rate yet: "..., -- left".
 * Returns buf.
 */
char *mc_meter_line(const struct mc_meter *m, uint64_t done, char *buf, size_t len);

/*
 * Draws the live line on a terminal (mc_progress): "LABEL: 53.2 MiB of 147.7
 * MiB (36%), 29.1 MiB/s, 0:03 left, STATE" (no ", STATE" when state is
 * NULL). Starts m at the first call (and when the total becomes known);
 * force redraws at once.
 */
void mc_meter_show(struct mc_meter *m, int force, const char *label, uint64_t done, uint64_t total, uint64_t now_ms,
		   const char *state);

/* "147.7 MiB in 5.1 s, 29 MiB/s": size, time and average rate of an end line. Returns buf. */
char *mc_fmt_done(uint64_t bytes, double secs, char *buf, size_t len);

/* "1:05", "1:02:03": a duration in seconds for people. Returns buf. */
char *mc_fmt_eta(double secs, char *buf, size_t len);

/* "1 pass", "3 passes": n and the noun, singular or plural. Returns buf. */
char *mc_fmt_count(uint64_t n, const char *one, const char *many, char *buf, size_t len);

#endif
