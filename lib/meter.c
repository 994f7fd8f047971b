/* Progress meter: windowed rate, time left and the words of progress and end lines; see meter.h. */
#include "meter.h"

#include <inttypes.h>
#include <stdio.h>

#include "log.h"
#include "opt.h"

void mc_meter_start(struct mc_meter *m, uint64_t total, uint64_t done, uint64_t now_ms)
{
	*m = (struct mc_meter){.total = total, .start_ms = now_ms, .start_done = done};
	mc_meter_add(m, done, now_ms);
}

void mc_meter_add(struct mc_meter *m, uint64_t done, uint64_t now_ms)
{
	m->last_ms = now_ms;
	m->last_done = done;
	if (m->n > 0) {
		unsigned last = (m->head + MC_METER_SAMPLES - 1) % MC_METER_SAMPLES;
		if (now_ms - m->t[last] < 250)
			return; /* too soon for a new sample: only the newest point moves on */
	}
	m->t[m->head] = now_ms;
	m->d[m->head] = done;
	m->head = (m->head + 1) % MC_METER_SAMPLES;
	if (m->n < MC_METER_SAMPLES)
		m->n++;
}

void mc_meter_skip(struct mc_meter *m, uint64_t bytes)
{
	/* Every point moves up by them: differences, the rate, stay what was done. */
	for (unsigned i = 0; i < MC_METER_SAMPLES; i++)
		m->d[i] += bytes;
	m->start_done += bytes;
	m->last_done += bytes;
}

double mc_meter_rate(const struct mc_meter *m)
{
	unsigned first;

	if (m->n < 1)
		return 0;
	first = (m->head + MC_METER_SAMPLES - m->n) % MC_METER_SAMPLES;
	/*
	 * The oldest sample still inside the window, up to the newest point:
	 * work shorter than one sample's 250 ms still has a rate at its end.
	 */
	for (unsigned k = 0; k + 1 < m->n && m->last_ms - m->t[first] > MC_METER_WINDOW_MS; k++)
		first = (first + 1) % MC_METER_SAMPLES;
	if (m->last_ms <= m->t[first] || m->last_done < m->d[first])
		return 0;
	return (double)(m->last_done - m->d[first]) * 1000.0 / (double)(m->last_ms - m->t[first]);
}

char *mc_fmt_eta(double secs, char *buf, size_t len)
{
	uint64_t s = secs < 0 ? 0 : secs > 359999 ? 359999 : (uint64_t)(secs + 0.5);

	if (s >= 3600)
		snprintf(buf, len, "%" PRIu64 ":%02" PRIu64 ":%02" PRIu64, s / 3600, s / 60 % 60, s % 60);
	else
		snprintf(buf, len, "%" PRIu64 ":%02" PRIu64, s / 60, s % 60);
	return buf;
}

char *mc_meter_line(const struct mc_meter *m, uint64_t done, char *buf, size_t len)
{
	char a[32], b[32], r[32], e[32];
	double rate = mc_meter_rate(m);

	if (rate > 0)
		mc_fmt_size((uint64_t)rate, r, sizeof r);
	else
		snprintf(r, sizeof r, "--"); /* not measured yet */
	if (m->total == 0) {
		snprintf(buf, len, "%s, %s/s", mc_fmt_size(done, a, sizeof a), r);
		return buf;
	}
	if (rate > 0 && done < m->total)
		mc_fmt_eta((double)(m->total - done) / rate, e, sizeof e);
	else
		snprintf(e, sizeof e, done >= m->total ? "0:00" : "--:--");
	snprintf(buf, len, "%s of %s (%u%%), %s/s, %s left", mc_fmt_size(done, a, sizeof a),
		 mc_fmt_size(m->total, b, sizeof b), (unsigned)(done >= m->total ? 100 : done * 100 / m->total), r, e);
	return buf;
}

void mc_meter_show(struct mc_meter *m, int force, const char *label, uint64_t done, uint64_t total, uint64_t now_ms,
		   const char *state)
{
	char line[160];

	if (m->start_ms == 0 || (m->total == 0 && total != 0))
		mc_meter_start(m, total, done, now_ms ? now_ms : 1);
	m->total = total;
	mc_meter_add(m, done, now_ms);
	mc_progress(force, "%s: %s%s%s", label, mc_meter_line(m, done, line, sizeof line), state ? ", " : "",
		    state ? state : "");
}

char *mc_fmt_done(uint64_t bytes, double secs, char *buf, size_t len)
{
	char a[32], r[32];

	mc_fmt_size(bytes, a, sizeof a);
	if (secs < 0.05)
		snprintf(buf, len, "%s in %.1f s", a, secs);
	else
		snprintf(buf, len, "%s in %.1f s, %s/s", a, secs, mc_fmt_size((uint64_t)((double)bytes / secs), r, sizeof r));
	return buf;
}

char *mc_fmt_count(uint64_t n, const char *one, const char *many, char *buf, size_t len)
{
	snprintf(buf, len, "%" PRIu64 " %s", n, n == 1 ? one : many);
	return buf;
}
