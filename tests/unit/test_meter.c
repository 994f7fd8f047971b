/* Unit tests of lib/meter.c: windowed rate, time left, end-line words and plurals. */
#include <string.h>

#include "meter.h"
#include "tap.h"

int main(void)
{
	struct mc_meter m;
	char buf[160];

	mc_meter_start(&m, 100u << 20, 0, 1000);
	ok(mc_meter_rate(&m) == 0, "no rate from one sample");
	ok(strcmp(mc_meter_line(&m, 0, buf, sizeof buf), "0 B of 100.0 MiB (0%), --/s, --:-- left") == 0, "line before a rate: %s", buf);
	/* 10 MiB a second for 4 s. */
	for (unsigned t = 1; t <= 4; t++)
		mc_meter_add(&m, (uint64_t)t * (10u << 20), 1000 + t * 1000);
	ok(mc_meter_rate(&m) > 10.4e6 && mc_meter_rate(&m) < 10.5e6, "rate 10 MiB/s");
	ok(strcmp(mc_meter_line(&m, 40u << 20, buf, sizeof buf), "40.0 MiB of 100.0 MiB (40%), 10.0 MiB/s, 0:06 left") == 0,
	   "line: %s", buf);
	/* Then a stall: the window forgets the fast start, the rate falls to nothing. */
	for (unsigned t = 5; t <= 12; t++)
		mc_meter_add(&m, 40u << 20, 1000 + t * 1000);
	ok(mc_meter_rate(&m) == 0, "a stall shows as no rate within the window");
	ok(strstr(mc_meter_line(&m, 40u << 20, buf, sizeof buf), "--:-- left") != NULL, "no time left promised: %s", buf);
	/* Points closer than 250 ms are no new sample, but the newest point moves on and the rate runs up to it. */
	mc_meter_start(&m, 0, 0, 0);
	mc_meter_add(&m, 100, 100);
	mc_meter_add(&m, 200, 200);
	ok(m.n == 1 && m.d[0] == 0 && m.last_done == 200, "points within 250 ms are one sample");
	ok(strcmp(mc_meter_line(&m, 200, buf, sizeof buf), "200 B, 1000 B/s") == 0, "no total: %s", buf);
	/* Work shorter than a sample (mcast-pack verify of a small package) still ends with its rate. */
	mc_meter_start(&m, 10u << 20, 0, 5000);
	mc_meter_add(&m, 10u << 20, 5100);
	ok(strcmp(mc_meter_line(&m, 10u << 20, buf, sizeof buf), "10.0 MiB of 10.0 MiB (100%), 100.0 MiB/s, 0:00 left") == 0,
	   "short work: %s", buf);
	mc_meter_start(&m, 10u << 20, 0, 5000);
	mc_meter_add(&m, 1u << 20, 5000);
	ok(mc_meter_rate(&m) == 0, "no rate before time has passed");
	/* A resumed extract: 100 MiB found on the target between 10 MiB written each second: done has them, the rate not. */
	mc_meter_start(&m, 200u << 20, 0, 1000);
	mc_meter_add(&m, 10u << 20, 2000);
	mc_meter_skip(&m, 100u << 20);
	mc_meter_add(&m, 120u << 20, 3000);
	ok(mc_meter_rate(&m) > 10.4e6 && mc_meter_rate(&m) < 10.5e6, "skipped bytes are not in the rate (%.0f)", mc_meter_rate(&m));
	ok(strcmp(mc_meter_line(&m, 120u << 20, buf, sizeof buf), "120.0 MiB of 200.0 MiB (60%), 10.0 MiB/s, 0:08 left") == 0,
	   "skipped bytes are done: %s", buf);

	ok(strcmp(mc_fmt_eta(65, buf, sizeof buf), "1:05") == 0, "eta 1:05");
	ok(strcmp(mc_fmt_eta(3723, buf, sizeof buf), "1:02:03") == 0, "eta 1:02:03");
	ok(strcmp(mc_fmt_done(154869760, 5.1, buf, sizeof buf), "147.7 MiB in 5.1 s, 29.0 MiB/s") == 0, "done: %s", buf);
	ok(strcmp(mc_fmt_done(10, 0, buf, sizeof buf), "10 B in 0.0 s") == 0, "done at once: %s", buf);
	ok(strcmp(mc_fmt_count(1, "pass", "passes", buf, sizeof buf), "1 pass") == 0, "1 pass");
	ok(strcmp(mc_fmt_count(0, "pass", "passes", buf, sizeof buf), "0 passes") == 0, "0 passes");
	ok(strcmp(mc_fmt_count(3, "receiver", "receivers", buf, sizeof buf), "3 receivers") == 0, "3 receivers");
	return tap_done();
}
