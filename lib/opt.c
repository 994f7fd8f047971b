/* Strict number, size, rate and duration parsing; see opt.h. */
#include "opt.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Parses "digits[.digits]" and returns the rest; -1 when there are no digits or too many. */
static int parse_decimal(const char *s, long double *val, const char **rest)
{
	long double v = 0, scale = 1;
	int digits = 0;

	while (isdigit((unsigned char)*s)) {
		v = v * 10 + (*s++ - '0');
		if (++digits > 20)
			return -1;
	}
	if (*s == '.') {
		s++;
		while (isdigit((unsigned char)*s)) {
			scale /= 10;
			v += scale * (*s++ - '0');
			digits++;
		}
	}
	if (digits == 0)
		return -1;
	*val = v;
	*rest = s;
	return 0;
}

static int suffix_is(const char *rest, const char *const *names)
{
	for (; *names; names++)
		if (strcasecmp(rest, *names) == 0)
			return 1;
	return 0;
}

static int finish(long double v, uint64_t min, uint64_t max, uint64_t *out)
{
	if (!(v >= 0) || v > 18446744073709551615.0L)
		return -1;
	v = roundl(v);
	if (v < (long double)min || v > (long double)max)
		return -1;
	*out = (uint64_t)v;
	return 0;
}

int mc_opt_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (s == NULL || *s == '\0')
		return -1;
	for (; *s; s++) {
		if (!isdigit((unsigned char)*s))
			return -1;
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int mc_opt_size(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	static const char *const bytes[] = {"", "b", NULL};
	static const char *const units[] = {"k", "m", "g", "t", "p"};
	long double v;
	const char *rest;

	if (s == NULL || parse_decimal(s, &v, &rest) < 0)
		return -1;
	if (!suffix_is(rest, bytes)) {
		const char *p = NULL;
		for (unsigned i = 0; i < sizeof units / sizeof units[0]; i++)
			if (tolower((unsigned char)*rest) == units[i][0]) {
				v *= powl(1024.0L, i + 1);
				p = rest + 1;
				break;
			}
		static const char *const tail[] = {"", "b", "ib", NULL};
		if (p == NULL || !suffix_is(p, tail))
			return -1;
	}
	return finish(v, min, max, out);
}

int mc_opt_rate(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	static const char *const tail[] = {"", "bps", "bit", "bit/s", "b/s", NULL};
	long double v;
	const char *rest;

	if (s == NULL || parse_decimal(s, &v, &rest) < 0)
		return -1;
	switch (tolower((unsigned char)*rest)) {
	case 'k': v *= 1e3L; rest++; break;
	case 'm': v *= 1e6L; rest++; break;
	case 'g': v *= 1e9L; rest++; break;
	case 't': v *= 1e12L; rest++; break;
	default: break;
	}
	if (!suffix_is(rest, tail))
		return -1;
	return finish(v, min, max, out);
}

int mc_opt_duration(const char *s, uint64_t min_ms, uint64_t max_ms, uint64_t *out_ms)
{
	static const struct { const char *name; long double ms; } units[] = {
		{"", 1000}, {"ms", 1}, {"s", 1000}, {"sec", 1000}, {"m", 60000},
		{"min", 60000}, {"h", 3600000}, {"d", 86400000},
	};
	long double v;
	const char *rest;

	if (s == NULL || parse_decimal(s, &v, &rest) < 0)
		return -1;
	for (unsigned i = 0; i < sizeof units / sizeof units[0]; i++)
		if (strcasecmp(rest, units[i].name) == 0)
			return finish(v * units[i].ms, min_ms, max_ms, out_ms);
	return -1;
}

char *mc_fmt_size(uint64_t bytes, char *buf, unsigned len)
{
	static const char *const u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	double v = (double)bytes;
	unsigned i = 0;

	while (v >= 1024 && i < 5) {
		v /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%.1f %s", v, u[i]);
	return buf;
}

char *mc_fmt_rate(uint64_t bps, char *buf, unsigned len)
{
	static const char *const u[] = {"bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"};
	double v = (double)bps;
	unsigned i = 0;

	while (v >= 1000 && i < 4) {
		v /= 1000;
		i++;
	}
	snprintf(buf, len, "%.4g %s", v, u[i]);
	return buf;
}
