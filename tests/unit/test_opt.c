/* Unit tests of lib/opt.c: strict sizes, rates, durations and numbers. */
#include <string.h>

#include "opt.h"
#include "tap.h"

int main(void)
{
	uint64_t v = 42;
	char buf[32];

	ok(mc_opt_uint("0", 0, 10, &v) == 0 && v == 0, "uint 0");
	ok(mc_opt_uint("10", 0, 10, &v) == 0 && v == 10, "uint at max");
	ok(mc_opt_uint("11", 0, 10, &v) < 0 && v == 10, "uint above max, out untouched");
	ok(mc_opt_uint("-1", 0, 10, &v) < 0, "uint -1");
	ok(mc_opt_uint("5x", 0, 10, &v) < 0, "uint 5x");
	ok(mc_opt_uint("", 0, 10, &v) < 0, "uint empty");
	ok(mc_opt_uint(" 5", 0, 10, &v) < 0, "uint leading space");
	ok(mc_opt_uint("18446744073709551615", 0, UINT64_MAX, &v) == 0 && v == UINT64_MAX, "uint64 max");
	ok(mc_opt_uint("18446744073709551616", 0, UINT64_MAX, &v) < 0, "uint64 overflow");

	ok(mc_opt_size("64K", 0, UINT64_MAX, &v) == 0 && v == 65536, "64K");
	ok(mc_opt_size("1M", 0, UINT64_MAX, &v) == 0 && v == 1048576, "1M");
	ok(mc_opt_size("4G", 0, UINT64_MAX, &v) == 0 && v == 4ull << 30, "4G");
	ok(mc_opt_size("1MiB", 0, UINT64_MAX, &v) == 0 && v == 1048576, "1MiB");
	ok(mc_opt_size("1.5k", 0, UINT64_MAX, &v) == 0 && v == 1536, "1.5k");
	ok(mc_opt_size("123", 0, UINT64_MAX, &v) == 0 && v == 123, "bare bytes");
	ok(mc_opt_size("5x", 0, UINT64_MAX, &v) < 0, "size 5x");
	ok(mc_opt_size("-1", 0, UINT64_MAX, &v) < 0, "size -1");
	ok(mc_opt_size("M", 0, UINT64_MAX, &v) < 0, "size without digits");
	ok(mc_opt_size("1K", 65536, UINT64_MAX, &v) < 0, "size below min");
	ok(mc_opt_size("99999999999T", 0, UINT64_MAX, &v) < 0, "size overflow");

	ok(mc_opt_rate("800M", 0, UINT64_MAX, &v) == 0 && v == 800000000, "800M");
	ok(mc_opt_rate("1G", 0, UINT64_MAX, &v) == 0 && v == 1000000000, "1G (powers of 1000)");
	ok(mc_opt_rate("1.5G", 0, UINT64_MAX, &v) == 0 && v == 1500000000, "1.5G");
	ok(mc_opt_rate("500kbps", 0, UINT64_MAX, &v) == 0 && v == 500000, "500kbps");
	ok(mc_opt_rate("5x", 0, UINT64_MAX, &v) < 0, "rate 5x");
	ok(mc_opt_rate("-1M", 0, UINT64_MAX, &v) < 0, "rate -1M");

	ok(mc_opt_duration("90s", 0, UINT64_MAX, &v) == 0 && v == 90000, "90s");
	ok(mc_opt_duration("5m", 0, UINT64_MAX, &v) == 0 && v == 300000, "5m");
	ok(mc_opt_duration("2h", 0, UINT64_MAX, &v) == 0 && v == 7200000, "2h");
	ok(mc_opt_duration("250ms", 0, UINT64_MAX, &v) == 0 && v == 250, "250ms");
	ok(mc_opt_duration("3", 0, UINT64_MAX, &v) == 0 && v == 3000, "bare number is seconds");
	ok(mc_opt_duration("1.5s", 0, UINT64_MAX, &v) == 0 && v == 1500, "1.5s");
	ok(mc_opt_duration("5x", 0, UINT64_MAX, &v) < 0, "duration 5x");
	ok(mc_opt_duration("-1s", 0, UINT64_MAX, &v) < 0, "duration -1s");
	ok(mc_opt_duration("s", 0, UINT64_MAX, &v) < 0, "duration without digits");

	ok(strcmp(mc_fmt_size(1536, buf, sizeof buf), "1.5 KiB") == 0, "fmt 1.5 KiB: %s", buf);
	ok(strcmp(mc_fmt_size(100, buf, sizeof buf), "100 B") == 0, "fmt 100 B: %s", buf);
	ok(strcmp(mc_fmt_rate(800000000, buf, sizeof buf), "800 Mbit/s") == 0, "fmt 800 Mbit/s: %s", buf);
	return tap_done();
}
