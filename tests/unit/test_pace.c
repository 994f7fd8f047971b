/* Unit tests of lib/pace.c: the token bucket and the rate under overrun reports. */
#include "pace.h"
#include "tap.h"

static void test_rate(void)
{
	struct mc_rate r;
	const uint64_t G = 1000000000ULL;

	mc_rate_init(&r, 10 * G, 0);
	ok(r.cur == 10 * G && r.min == 10 * G / 16, "starts at -r, floor a sixteenth");
	ok(mc_rate_update(&r, 0, 0, 50) == 0 && r.cur == 10 * G, "no report, at -r: unchanged");

	/* Reached only 4G of 10G: the cut starts from what was sent, else it would not slow down. */
	ok(mc_rate_update(&r, 1, 4 * G, 100) == 1 && r.cur == 2 * G, "cut from the rate sent: %llu",
	   (unsigned long long)r.cur);
	ok(r.knee == 4 * G && r.cuts == 1 && r.lowest == 2 * G, "knee at the rate sent");
	ok(mc_rate_update(&r, 3, 2 * G, 150) == 0 && r.cur == 2 * G, "second report within the hold: no cut");
	ok(r.reports == 3, "but the count is taken");
	ok(mc_rate_update(&r, 3, 2 * G, 199) == 0, "no step within 100 ms of the cut");
	ok(mc_rate_update(&r, 3, 2 * G, 200) == 1 && r.cur == 2 * G + 10 * G / 32, "climbs a 32nd of -r: %llu",
	   (unsigned long long)r.cur);
	uint64_t t = 200;
	while (r.cur < r.knee / 8 * 7)
		mc_rate_update(&r, 3, r.cur, t += 100);
	uint64_t near = r.cur;
	ok(near >= 4 * G / 8 * 7 && near < 4 * G / 8 * 7 + 10 * G / 32, "quickly to 7/8 of the knee: %llu",
	   (unsigned long long)near);
	mc_rate_update(&r, 3, r.cur, t += 100);
	ok(r.cur == near + 10 * G / 256, "then by a 256th");

	/* A rate sent above cur (a stale measure) does not raise the cut's start. */
	uint64_t before = r.cur;
	mc_rate_update(&r, 4, 20 * G, t += 100);
	ok(r.knee == before && r.cur == before / 2, "cut from cur when it sent more");

	/* Never below the floor, and never above -r. */
	for (unsigned i = 5; i < 40; i++)
		mc_rate_update(&r, i, 0, t += 100);
	ok(r.cur == r.min && r.lowest == r.min, "floor holds: %llu", (unsigned long long)r.cur);
	for (unsigned i = 0; i < 1000; i++)
		mc_rate_update(&r, 40, 0, t += 100);
	ok(r.cur == 10 * G, "back to -r and no further");
}

static void test_bucket(void)
{
	struct mc_pace p;

	/* 8 Mbit/s = 1 byte per microsecond, a bucket of 10,000 bytes. */
	mc_pace_init(&p, 8000000, 10000, 0);
	ok(mc_pace_wait(&p, 0, 10000) == 0, "a full bucket sends at once");
	mc_pace_spend(&p, 10000);
	uint64_t w = mc_pace_wait(&p, 0, 1000);
	ok(w >= 999000 && w <= 1001000, "empty bucket: wait 1 ms for 1000 bytes (%llu ns)", (unsigned long long)w);
	ok(mc_pace_wait(&p, 1000000, 1000) == 0, "after 1 ms it may send");
	ok(mc_pace_wait(&p, 1000000000, 1000) == 0, "idle a second");
	mc_pace_spend(&p, 10000);
	ok(mc_pace_wait(&p, 1000000000, 1000) > 0, "the bucket holds no more than its size, however long idle");
}

int main(void)
{
	test_rate();
	test_bucket();
	return tap_done();
}
