/* Scheduling conditions: counting distinct receivers and deciding when to start; see schedule.h. */
#include "schedule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mc_sched_init(struct mc_sched *s, const struct mc_sched_cfg *cfg, uint64_t now_ms)
{
	memset(s, 0, sizeof *s);
	s->cfg = *cfg;
	if (cfg->package) {
		if (strlen(cfg->package) > MC_SCHED_NAME_MAX)
			return -1;
		strcpy(s->package, cfg->package);
	}
	s->cfg.package = s->package;
	s->start_ms = now_ms;
	return 0;
}

void mc_sched_free(struct mc_sched *s)
{
	free(s->clients);
	free(s->by_rid);
	s->clients = NULL;
	s->by_rid = NULL;
	s->n = s->cap = 0;
}

int mc_sched_wanted(const struct mc_sched *s, const char *name)
{
	if (s->package[0] == '\0' || !name || name[0] == '\0')
		return 1;
	return strcmp(s->package, name) == 0;
}

/* Position of rid in by_rid, or where it would go (*found says which). */
static size_t search(const struct mc_sched *s, uint64_t rid, int *found)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint64_t r = s->clients[s->by_rid[mid]].rid;
		if (r == rid) {
			*found = 1;
			return mid;
		}
		if (r < rid)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = 0;
	return lo;
}

long mc_sched_find(const struct mc_sched *s, uint64_t rid)
{
	int found;
	size_t pos = search(s, rid, &found);

	return found ? (long)s->by_rid[pos] : -1;
}

static void copy(char *dst, size_t cap, const char *src)
{
	size_t n = src ? strlen(src) : 0;

	if (n >= cap)
		n = cap - 1;
	if (n)
		memcpy(dst, src, n);
	dst[n] = '\0';
}

static int grow(struct mc_sched *s)
{
	size_t cap = s->cap ? s->cap * 2 : 64;
	struct mc_sched_client *c;
	uint32_t *idx;

	c = realloc(s->clients, cap * sizeof *c);
	if (!c)
		return -1;
	s->clients = c;
	idx = realloc(s->by_rid, cap * sizeof *idx);
	if (!idx)
		return -1;
	s->by_rid = idx;
	s->cap = cap;
	return 0;
}

int mc_sched_hello(struct mc_sched *s, uint64_t rid, const char *name, const char *addr, uint64_t now_ms)
{
	struct mc_sched_client *c;
	int found;
	size_t pos;

	/* Known receivers stay known whatever they ask for next: counting is by id. */
	pos = search(s, rid, &found);
	if (found) {
		c = &s->clients[s->by_rid[pos]];
		c->last_ms = now_ms;
		c->hellos++;
		if (addr)
			copy(c->addr, sizeof c->addr, addr);
		s->hellos++;
		return 0;
	}
	if (!mc_sched_wanted(s, name)) {
		s->ignored++;
		return 0;
	}
	if (s->decision != MC_SCHED_WAIT)
		return 0;
	if (s->n >= MC_SCHED_CLIENTS_MAX) {
		s->dropped++;
		return 0;
	}
	if (s->n == s->cap && grow(s) < 0)
		return -1;
	c = &s->clients[s->n];
	memset(c, 0, sizeof *c);
	c->rid = rid;
	copy(c->addr, sizeof c->addr, addr);
	copy(c->name, sizeof c->name, name);
	c->first_ms = c->last_ms = now_ms;
	c->hellos = 1;
	memmove(s->by_rid + pos + 1, s->by_rid + pos, (s->n - pos) * sizeof *s->by_rid);
	s->by_rid[pos] = (uint32_t)s->n;
	s->n++;
	s->hellos++;
	return 1;
}

static int deadline_passed(const struct mc_sched *s, uint64_t now_ms)
{
	return s->cfg.has_max_wait && now_ms >= s->start_ms &&
	       now_ms - s->start_ms >= s->cfg.max_wait_ms;
}

static enum mc_sched_decision decide(struct mc_sched *s, uint64_t now_ms,
				     enum mc_sched_decision d, enum mc_sched_reason r)
{
	s->decision = d;
	s->reason = r;
	s->decided_ms = now_ms;
	return d;
}

enum mc_sched_decision mc_sched_poll(struct mc_sched *s, uint64_t now_ms, int signalled)
{
	if (s->decision != MC_SCHED_WAIT)
		return s->decision;
	if (signalled)
		return decide(s, now_ms, MC_SCHED_START, MC_SCHED_R_SIGNAL);
	if (s->cfg.min_clients && s->n >= s->cfg.min_clients)
		return decide(s, now_ms, MC_SCHED_START, MC_SCHED_R_QUORUM);
	if (!s->cfg.min_clients && !s->cfg.has_max_wait && s->n > 0)
		return decide(s, now_ms, MC_SCHED_START, MC_SCHED_R_FIRST);
	if (deadline_passed(s, now_ms)) {
		if (s->n > 0 || s->cfg.start_empty)
			return decide(s, now_ms, MC_SCHED_START, MC_SCHED_R_MAX_WAIT);
		return decide(s, now_ms, MC_SCHED_EMPTY, MC_SCHED_R_MAX_WAIT);
	}
	return MC_SCHED_WAIT;
}

uint64_t mc_sched_remaining(const struct mc_sched *s, uint64_t now_ms)
{
	uint64_t waited;

	if (!s->cfg.has_max_wait)
		return UINT64_MAX;
	waited = now_ms > s->start_ms ? now_ms - s->start_ms : 0;
	return waited >= s->cfg.max_wait_ms ? 0 : s->cfg.max_wait_ms - waited;
}

uint64_t mc_sched_waited(const struct mc_sched *s, uint64_t now_ms)
{
	uint64_t end = s->decision != MC_SCHED_WAIT ? s->decided_ms : now_ms;

	return end > s->start_ms ? end - s->start_ms : 0;
}

char *mc_sched_fmt_ms(uint64_t ms, char *buf, size_t len)
{
	static const struct { uint64_t ms; char unit; } u[] = {
		{ 86400000, 'd' }, { 3600000, 'h' }, { 60000, 'm' }, { 1000, 's' },
	};

	if (ms == 0) {
		snprintf(buf, len, "0s");
		return buf;
	}
	if (ms % 1000) {
		if (ms < 1000)
			snprintf(buf, len, "%llums", (unsigned long long)ms);
		else
			snprintf(buf, len, "%.3gs", (double)ms / 1000.0);
		return buf;
	}
	/* The two largest units that are not zero are enough for a human. */
	for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
		if (ms < u[i].ms)
			continue;
		uint64_t a = ms / u[i].ms, rest = ms % u[i].ms;
		if (rest && i + 1 < sizeof u / sizeof u[0] && rest / u[i + 1].ms)
			snprintf(buf, len, "%llu%c%llu%c", (unsigned long long)a, u[i].unit,
				 (unsigned long long)(rest / u[i + 1].ms), u[i + 1].unit);
		else
			snprintf(buf, len, "%llu%c", (unsigned long long)a, u[i].unit);
		return buf;
	}
	return buf;
}

char *mc_sched_condition(const struct mc_sched *s, char *buf, size_t len)
{
	char dur[32];
	const char *empty = !s->cfg.start_empty && s->cfg.has_max_wait ? " (skipped if nobody asked)" : "";

	if (s->cfg.has_max_wait)
		mc_sched_fmt_ms(s->cfg.max_wait_ms, dur, sizeof dur);
	if (s->cfg.min_clients && s->cfg.has_max_wait)
		snprintf(buf, len, "%llu client%s or %s%s", (unsigned long long)s->cfg.min_clients,
			 s->cfg.min_clients == 1 ? "" : "s", dur, empty);
	else if (s->cfg.min_clients)
		snprintf(buf, len, "%llu client%s", (unsigned long long)s->cfg.min_clients,
			 s->cfg.min_clients == 1 ? "" : "s");
	else if (s->cfg.has_max_wait)
		snprintf(buf, len, "%s%s", dur, empty);
	else
		snprintf(buf, len, "first client");
	return buf;
}

const char *mc_sched_reason_name(enum mc_sched_reason r)
{
	switch (r) {
	case MC_SCHED_R_FIRST: return "first-client";
	case MC_SCHED_R_QUORUM: return "quorum";
	case MC_SCHED_R_MAX_WAIT: return "max-wait";
	case MC_SCHED_R_SIGNAL: return "signal";
	default: return "none";
	}
}

const char *mc_sched_decision_name(enum mc_sched_decision d)
{
	switch (d) {
	case MC_SCHED_START: return "start";
	case MC_SCHED_EMPTY: return "empty";
	default: return "waiting";
	}
}
