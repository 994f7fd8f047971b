/* Unit tests of lib/sched.c: distinct receivers, package filter, quorum, deadline, signal. */
#include <stdint.h>
#include <string.h>

#include "schedule.h"
#include "tap.h"

static struct mc_sched_cfg cfg(uint64_t min, int has_wait, uint64_t wait_ms, int empty, const char *pkg)
{
	struct mc_sched_cfg c;

	memset(&c, 0, sizeof c);
	c.min_clients = min;
	c.has_max_wait = has_wait;
	c.max_wait_ms = wait_ms;
	c.start_empty = empty;
	c.package = pkg;
	return c;
}

static void test_distinct(void)
{
	struct mc_sched s;
	struct mc_sched_cfg c = cfg(3, 1, 60000, 0, NULL);

	ok(mc_sched_init(&s, &c, 1000) == 0, "init");
	ok(mc_sched_hello(&s, 42, "", "198.18.0.1", 1100) == 1, "first hello of a receiver is new");
	for (int i = 0; i < 50; i++)
		mc_sched_hello(&s, 42, "", "198.18.0.1", 1200 + (uint64_t)i);
	ok(s.n == 1, "one receiver counted once however many hellos (n=%zu)", s.n);
	ok(s.clients[0].hellos == 51, "its hellos are counted (%llu)", (unsigned long long)s.clients[0].hellos);
	ok(mc_sched_poll(&s, 2000, 0) == MC_SCHED_WAIT, "1 of 3: wait");
	ok(mc_sched_hello(&s, 7, "win11", "198.18.0.2", 2100) == 1, "second receiver");
	ok(mc_sched_poll(&s, 2200, 0) == MC_SCHED_WAIT, "2 of 3: wait");
	ok(mc_sched_hello(&s, 43, NULL, "198.18.0.3", 2300) == 1, "third receiver");
	ok(mc_sched_poll(&s, 2400, 0) == MC_SCHED_START && s.reason == MC_SCHED_R_QUORUM, "3 of 3: start on quorum");
	ok(mc_sched_waited(&s, 99999) == 1400, "waited stops at the decision (%llu)",
	   (unsigned long long)mc_sched_waited(&s, 99999));
	ok(mc_sched_find(&s, 7) == 1 && mc_sched_find(&s, 43) == 2 && mc_sched_find(&s, 42) == 0,
	   "find by rid, clients in arrival order");
	ok(mc_sched_find(&s, 8) == -1, "unknown rid not found");
	ok(mc_sched_hello(&s, 99, "", "x", 2500) == 0 && s.n == 3, "no new client after the decision");
	ok(mc_sched_poll(&s, 70000, 0) == MC_SCHED_START && s.reason == MC_SCHED_R_QUORUM, "decision sticks");
	mc_sched_free(&s);
}

static void test_many(void)
{
	struct mc_sched s;
	struct mc_sched_cfg c = cfg(5000, 0, 0, 0, NULL);
	int good = 1;

	mc_sched_init(&s, &c, 0);
	/* Out-of-order rids exercise the sorted index. */
	for (uint64_t i = 0; i < 4000; i++)
		if (mc_sched_hello(&s, (i * 2654435761u) % 100003, "", NULL, i) != 1)
			good = 0;
	for (uint64_t i = 0; i < 4000; i++)
		if (mc_sched_hello(&s, (i * 2654435761u) % 100003, "", NULL, i) != 0)
			good = 0;
	ok(good && s.n == 4000, "4000 distinct receivers, each counted once (n=%zu)", s.n);
	for (size_t i = 1; i < s.n; i++)
		if (s.clients[s.by_rid[i - 1]].rid >= s.clients[s.by_rid[i]].rid)
			good = 0;
	ok(good, "index sorted by rid");
	ok(mc_sched_poll(&s, 1u << 30, 0) == MC_SCHED_WAIT, "no deadline: waits for the quorum");
	ok(mc_sched_remaining(&s, 5) == UINT64_MAX, "no deadline: remaining is unbounded");
	mc_sched_free(&s);
}

static void test_package(void)
{
	struct mc_sched s;
	struct mc_sched_cfg c = cfg(2, 0, 0, 0, "win11");

	mc_sched_init(&s, &c, 0);
	ok(mc_sched_wanted(&s, "win11") && mc_sched_wanted(&s, "") && mc_sched_wanted(&s, NULL),
	   "same name and any are wanted");
	ok(!mc_sched_wanted(&s, "debian") && !mc_sched_wanted(&s, "win11x") && !mc_sched_wanted(&s, "win1"),
	   "other names are not");
	ok(mc_sched_hello(&s, 1, "debian", "a", 1) == 0 && s.n == 0 && s.ignored == 1, "hello for another package not counted");
	ok(mc_sched_hello(&s, 2, "", "b", 2) == 1, "hello for any package counted");
	ok(mc_sched_poll(&s, 3, 0) == MC_SCHED_WAIT, "1 of 2");
	ok(mc_sched_hello(&s, 1, "win11", "a", 4) == 1, "receiver that changed its mind counts");
	ok(mc_sched_poll(&s, 5, 0) == MC_SCHED_START, "2 of 2: start");
	mc_sched_free(&s);

	c = cfg(0, 0, 0, 0, NULL);
	mc_sched_init(&s, &c, 0);
	ok(mc_sched_wanted(&s, "debian") && mc_sched_wanted(&s, ""), "no --package: every name is wanted");
	mc_sched_free(&s);

	char longname[300];
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	c = cfg(0, 0, 0, 0, longname);
	ok(mc_sched_init(&s, &c, 0) == -1, "package name too long refused");
}

static void test_deadline(void)
{
	struct mc_sched s;
	struct mc_sched_cfg c = cfg(10, 1, 30000, 0, NULL);

	mc_sched_init(&s, &c, 5000);
	ok(mc_sched_remaining(&s, 5000) == 30000 && mc_sched_remaining(&s, 20000) == 15000, "remaining counts down");
	mc_sched_hello(&s, 1, "", "a", 6000);
	mc_sched_hello(&s, 2, "", "b", 7000);
	ok(mc_sched_poll(&s, 34999, 0) == MC_SCHED_WAIT, "before max-wait: wait");
	ok(mc_sched_poll(&s, 35000, 0) == MC_SCHED_START && s.reason == MC_SCHED_R_MAX_WAIT,
	   "at max-wait with fewer clients: start");
	ok(mc_sched_remaining(&s, 99999) == 0, "remaining 0 past the deadline");
	mc_sched_free(&s);

	c = cfg(0, 1, 1000, 0, NULL);
	mc_sched_init(&s, &c, 0);
	ok(mc_sched_poll(&s, 500, 0) == MC_SCHED_WAIT, "max-wait alone, nobody yet: wait");
	ok(mc_sched_hello(&s, 5, "", "a", 600) == 1 && mc_sched_poll(&s, 700, 0) == MC_SCHED_WAIT,
	   "max-wait alone: a client does not start it early");
	ok(mc_sched_poll(&s, 1000, 0) == MC_SCHED_START, "max-wait alone with a client: start at the deadline");
	mc_sched_free(&s);

	mc_sched_init(&s, &c, 0);
	ok(mc_sched_poll(&s, 1000, 0) == MC_SCHED_EMPTY && s.reason == MC_SCHED_R_MAX_WAIT,
	   "max-wait alone, nobody: give up");
	ok(mc_sched_poll(&s, 2000, 1) == MC_SCHED_EMPTY, "giving up sticks, even against a signal");
	mc_sched_free(&s);

	c = cfg(0, 1, 1000, 1, NULL);
	mc_sched_init(&s, &c, 0);
	ok(mc_sched_poll(&s, 1000, 0) == MC_SCHED_START, "--start-empty: start with nobody");
	mc_sched_free(&s);

	c = cfg(3, 1, 0, 1, NULL);
	mc_sched_init(&s, &c, 0);
	ok(mc_sched_poll(&s, 0, 0) == MC_SCHED_START, "max-wait 0: immediate");
	mc_sched_free(&s);
}

static void test_first_and_signal(void)
{
	struct mc_sched s;
	struct mc_sched_cfg c = cfg(0, 0, 0, 0, NULL);

	mc_sched_init(&s, &c, 0);
	ok(mc_sched_poll(&s, 1u << 31, 0) == MC_SCHED_WAIT, "no condition: waits for a client for ever");
	mc_sched_hello(&s, 9, "x", "a", 10);
	ok(mc_sched_poll(&s, 11, 0) == MC_SCHED_START && s.reason == MC_SCHED_R_FIRST, "no condition: start at the first client");
	mc_sched_free(&s);

	c = cfg(100, 1, 3600000, 0, NULL);
	mc_sched_init(&s, &c, 0);
	ok(mc_sched_poll(&s, 10, 1) == MC_SCHED_START && s.reason == MC_SCHED_R_SIGNAL && s.n == 0,
	   "signal starts at once, even with nobody");
	mc_sched_free(&s);
}

static void test_text(void)
{
	struct mc_sched s;
	struct mc_sched_cfg c;
	char buf[64];

	ok(strcmp(mc_sched_fmt_ms(90000, buf, sizeof buf), "1m30s") == 0, "fmt 90s: %s", buf);
	ok(strcmp(mc_sched_fmt_ms(1800000, buf, sizeof buf), "30m") == 0, "fmt 30m: %s", buf);
	ok(strcmp(mc_sched_fmt_ms(250, buf, sizeof buf), "250ms") == 0, "fmt 250ms: %s", buf);
	ok(strcmp(mc_sched_fmt_ms(1500, buf, sizeof buf), "1.5s") == 0, "fmt 1.5s: %s", buf);
	ok(strcmp(mc_sched_fmt_ms(0, buf, sizeof buf), "0s") == 0, "fmt 0s: %s", buf);
	ok(strcmp(mc_sched_fmt_ms(7200000, buf, sizeof buf), "2h") == 0, "fmt 2h: %s", buf);
	c = cfg(20, 1, 1800000, 1, NULL);
	mc_sched_init(&s, &c, 0);
	ok(strcmp(mc_sched_condition(&s, buf, sizeof buf), "20 clients or 30m") == 0, "condition: %s", buf);
	c = cfg(0, 0, 0, 0, NULL);
	mc_sched_init(&s, &c, 0);
	ok(strcmp(mc_sched_condition(&s, buf, sizeof buf), "first client") == 0, "condition: %s", buf);
	c = cfg(0, 1, 5000, 0, NULL);
	mc_sched_init(&s, &c, 0);
	ok(strcmp(mc_sched_condition(&s, buf, sizeof buf), "5s (skipped if nobody asked)") == 0, "condition: %s", buf);
	ok(strcmp(mc_sched_reason_name(MC_SCHED_R_QUORUM), "quorum") == 0 &&
	   strcmp(mc_sched_decision_name(MC_SCHED_EMPTY), "empty") == 0, "names");
}

int main(void)
{
	test_distinct();
	test_many();
	test_package();
	test_deadline();
	test_first_and_signal();
	test_text();
	return tap_done();
}
