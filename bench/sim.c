/*
 * bench/sim: the protocol at scale with no sockets. Drives mcast-send's send
 * loop (lib/txloop.c around lib/sender.c) and the real receiver assembly
 * (lib/receiver.c) through the in-process simulator tests/sim/sim.h with N = 1 .. 10,000 virtual
 * receivers, each with its own loss, and reports wire overhead, feedback per
 * chunk, passes, virtual time, the slow-receiver policy and late joiners,
 * next to the goals of issue 6. Build: make bench/sim (or B=... bench/sim).
 */
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <sys/resource.h>
#include <time.h>

#include "clock.h"
#include "receiver.h"
#include "sender.h"

/*
 * sim_run frees every receiver before it returns, and its result holds only
 * totals. To count NACKs apart from hellos and dones, and to time each
 * receiver against its join, the frees are routed through this hook, which
 * reads the statistics first (sim.h itself is not changed).
 */
static void bench_recv_free(struct mc_receiver *r);
#define mc_recv_free(r) bench_recv_free(r)
#include "../tests/sim/sim.h"
#undef mc_recv_free

struct bench_acc {
	uint64_t nacks, nack_entries, suppressed, hellos, spills;
	unsigned freed;
	/* late joiners: (done - join) in units of one nominal pass */
	double late_worst, late_sum;
	unsigned late_n, late_done;
	uint64_t late_join_us;
	double pass_us;
};
static struct bench_acc acc;

static void bench_recv_free(struct mc_receiver *r)
{
	if (r == NULL)
		return;
	const struct mc_recv_stats *st = mc_recv_stats(r);
	acc.nacks += st->nacks_sent;
	acc.nack_entries += st->nack_entries_sent;
	acc.suppressed += st->suppressed;
	acc.hellos += st->hellos_sent;
	acc.spills += st->spills;
	/* sim_run frees receivers in index order, right after reading their result */
	unsigned i = acc.freed++;
	if (i < sim.cfg->nrx && sim.rx[i].r == r && sim.rx[i].c.join_us > 0 && sim.rx[i].c.join_us == acc.late_join_us) {
		acc.late_n++;
		if (sim.rx[i].result == MC_REV_COMPLETE) {
			double p = (double)(sim.rx[i].done_us - sim.rx[i].c.join_us) / acc.pass_us;
			acc.late_done++;
			acc.late_sum += p;
			if (p > acc.late_worst)
				acc.late_worst = p;
		}
	}
	(mc_recv_free)(r);
}

struct opts {
	uint64_t payload;
	uint32_t chunk;
	uint64_t rate;
	unsigned fec, max_passes;
	size_t mem;
	uint64_t fb_delay_us;
	int quick;
};

struct row {
	unsigned n;
	double loss;
	const char *kind;
	struct sim_res r;
	double wire, fb_chunk, nack_chunk, secs, wall, late_avg, late_worst;
	unsigned late_n, late_done;
	uint64_t nacks;
};

static long maxrss_mib(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss / 1024;
}

/*
 * One session: n receivers at loss (Bernoulli, or Gilbert-Elliott with that
 * mean and bursts of mean length 5 when burst), nlate of them joining at 30%
 * of the first pass, nslow of them at 60% loss.
 */
static int run(const struct opts *o, unsigned n, double loss, int burst, unsigned nlate, unsigned nslow, struct row *w)
{
	struct sim_rx_cfg *rx = calloc(n, sizeof *rx);
	struct sim_cfg c;
	uint32_t nchunks = (uint32_t)((o->payload + o->chunk - 1) / o->chunk);
	double pass_us = (double)o->payload * (1 + o->fec / 100.0) * (MC_WIRE_DATA_HDR + mc_wire_sym_for_mtu(1500, 0) + MC_WIRE_IP4_UDP) / mc_wire_sym_for_mtu(1500, 0) * 8e6 / (double)o->rate;

	if (rx == NULL)
		return -1;
	for (unsigned i = 0; i < n; i++) {
		rx[i].loss = loss;
		if (burst && loss > 0) {
			/* bad state drops all; stationary share of bad = loss; mean burst 5 packets */
			rx[i].burst = 1;
			rx[i].p_bg = 0.2;
			rx[i].p_gb = 0.2 * loss / (1 - loss);
			rx[i].loss = 1.0;
		}
		rx[i].keep = i < 2 && n <= 1000; /* a couple of byte-for-byte checks where memory allows */
	}
	memset(&acc, 0, sizeof acc);
	acc.pass_us = pass_us;
	acc.late_join_us = (uint64_t)(0.3 * pass_us);
	for (unsigned i = 0; i < nlate && i < n; i++)
		rx[n - 1 - i].join_us = acc.late_join_us;
	for (unsigned i = 0; i < nslow && i < n; i++)
		rx[i].loss = 0.6, rx[i].burst = 0;
	memset(&c, 0, sizeof c);
	c.payload = o->payload;
	c.chunk = o->chunk;
	c.sym = mc_wire_sym_for_mtu(1500, 0);
	c.kmax = MC_KMAX; /* as mcast-send */
	c.fec = o->fec;
	c.rate_bps = o->rate;
	c.nrx = n;
	c.rx = rx;
	c.fb_delay_us = o->fb_delay_us;
	c.limit_us = 600ULL * 1000000;
	c.max_passes = o->max_passes;
	c.mem = o->mem;
	c.seed = 1000 + n + (uint64_t)(loss * 1000);
	double t0 = mc_now_s();
	int rc = sim_run(&c, &w->r);
	w->wall = mc_now_s() - t0;
	free(rx);
	if (rc < 0)
		return -1;
	w->n = n;
	w->loss = loss;
	w->wire = (double)w->r.wire_bytes / (double)w->r.payload_bytes;
	w->fb_chunk = (double)w->r.feedback_pkts / nchunks;
	w->nacks = acc.nacks;
	w->nack_chunk = (double)acc.nacks / nchunks;
	w->secs = w->r.last_done_us / 1e6;
	w->late_n = acc.late_n;
	w->late_done = acc.late_done;
	w->late_avg = acc.late_done ? acc.late_sum / acc.late_done : 0;
	w->late_worst = acc.late_worst;
	return 0;
}

static void print_row(const struct row *w)
{
	printf("%6u %5.0f%% %-6s %8.4f %9.2f %10.3f %6llu %9.3f %9.3f %5u/%-5u %5u %6u %7.1f\n", w->n, w->loss * 100, w->kind,
	       w->wire, w->nack_chunk, w->fb_chunk, (unsigned long long)w->r.passes, w->secs, w->r.end_us / 1e6,
	       w->r.complete, w->n, w->r.left, w->r.identical, w->wall);
	fflush(stdout);
}

static void header(void)
{
	printf("%6s %6s %-6s %8s %9s %10s %6s %9s %9s %11s %5s %6s %7s\n", "N", "loss", "kind", "wire/pkg", "nack/chk",
	       "fb/chunk", "passes", "last_done", "end_s", "complete", "left", "ident", "wall_s");
}

/* Least squares y = a + b ln N over the rows with y > 0 at one loss; also the power-law exponent. */
static void fit(const struct row *rows, size_t nrows, double loss, const char *kind)
{
	double sx = 0, sy = 0, sxx = 0, sxy = 0, syy = 0, lsy = 0, lsxy = 0;
	unsigned k = 0;

	for (size_t i = 0; i < nrows; i++) {
		const struct row *w = &rows[i];
		if (w->loss != loss || strcmp(w->kind, kind) != 0)
			continue;
		double x = log(w->n), y = w->nack_chunk;
		sx += x, sy += y, sxx += x * x, sxy += x * y, syy += y * y;
		lsy += log(y > 0 ? y : 1e-3);
		lsxy += x * log(y > 0 ? y : 1e-3);
		k++;
	}
	if (k < 3)
		return;
	double den = k * sxx - sx * sx;
	double b = (k * sxy - sx * sy) / den, a = (sy - b * sx) / k;
	double ss_tot = syy - sy * sy / k, ss_res = 0;
	for (size_t i = 0; i < nrows; i++) {
		const struct row *w = &rows[i];
		if (w->loss != loss || strcmp(w->kind, kind) != 0)
			continue;
		double e = w->nack_chunk - (a + b * log(w->n));
		ss_res += e * e;
	}
	double p = (k * lsxy - sx * lsy) / den;
	printf("  loss %4.0f%% %-6s NACKs/chunk = %.3f + %.3f ln N   (R^2 %.3f; power-law exponent %.3f, linear would be 1)\n",
	       loss * 100, kind, a, b, ss_tot > 0 ? 1 - ss_res / ss_tot : 1.0, p);
	printf("       fitted:");
	for (unsigned n = 1; n <= 100000; n *= 10)
		printf("  N=%u: %.2f", n, a + b * log(n));
	printf("\n");
}

static void usage(FILE *f)
{
	fprintf(f, "usage: sim [--quick] [-n N,...] [-l PCT,...] [--payload MIB] [--chunk KIB] [--rate MBPS] [--fec PCT] [--mem KIB]\n");
}

int main(int argc, char **argv)
{
	struct opts o = {.payload = 4u << 20, .chunk = 256u << 10, .rate = 50000000ULL, .fec = 5, .max_passes = 8,
			 .mem = 512u << 10, .fb_delay_us = 1000};
	unsigned ns[8] = {1, 10, 100, 1000, 10000}, nn = 5;
	double ls[8] = {0, 0.01, 0.05, 0.20};
	unsigned nl = 4;
	static const struct option lo[] = {
		{"chunk", required_argument, NULL, 'c'}, {"fec", required_argument, NULL, 'f'},
		{"help", no_argument, NULL, 'h'},        {"mem", required_argument, NULL, 'm'},
		{"payload", required_argument, NULL, 'P'}, {"quick", no_argument, NULL, 'Q'},
		{"rate", required_argument, NULL, 'r'},  {NULL, 0, NULL, 0},
	};
	int ch;
	char *s, *e;

	while ((ch = getopt_long(argc, argv, "hl:n:", lo, NULL)) != -1) {
		switch (ch) {
		case 'c': o.chunk = (uint32_t)strtoul(optarg, NULL, 10) << 10; break;
		case 'f': o.fec = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'h': usage(stdout); return 0;
		case 'l':
			for (nl = 0, s = optarg; nl < 8 && *s; s = *e ? e + 1 : e)
				ls[nl++] = strtod(s, &e) / 100;
			break;
		case 'm': o.mem = (size_t)strtoul(optarg, NULL, 10) << 10; break;
		case 'n':
			for (nn = 0, s = optarg; nn < 8 && *s; s = *e ? e + 1 : e)
				ns[nn++] = (unsigned)strtoul(s, &e, 10);
			break;
		case 'P': o.payload = (uint64_t)strtoull(optarg, NULL, 10) << 20; break;
		case 'Q': o.quick = 1; break;
		case 'r': o.rate = strtoull(optarg, NULL, 10) * 1000000ULL; break;
		default: usage(stderr); return 2;
		}
	}
	if (o.quick && nn == 5)
		nn = 4; /* up to 1,000 */

	uint32_t nchunks = (uint32_t)((o.payload + o.chunk - 1) / o.chunk);
	printf("bench/sim: payload %llu MiB in %u chunks of %u KiB, symbols of %u bytes, k<=128, FEC %u%%, rate %llu Mbit/s "
	       "(one pass %.3f s virtual), feedback delay %llu us, receiver memory %zu KiB, max passes %u\n",
	       (unsigned long long)(o.payload >> 20), nchunks, o.chunk >> 10, mc_wire_sym_for_mtu(1500, 0), o.fec,
	       (unsigned long long)(o.rate / 1000000), (double)o.payload * 1.05 * 8 * (mc_wire_sym_for_mtu(1500, 0) + MC_WIRE_DATA_HDR + MC_WIRE_IP4_UDP) / mc_wire_sym_for_mtu(1500, 0) / o.rate,
	       (unsigned long long)o.fb_delay_us, o.mem >> 10, o.max_passes);
	printf("columns: wire/pkg = bytes the sender put on the wire (data, repair, announcements, manifest, control, each with its Ethernet, IPv4 and UDP headers) / payload;\n"
	       "  nack/chk = NACK packets / chunk (all receivers); fb/chunk = all feedback (hello, NACK, done) / chunk;\n"
	       "  passes = sender passes; last_done = virtual s until the last receiver verified all; end_s = session end;\n"
	       "  left = receivers the slow-receiver policy sent to mcast-repair; ident = kept copies byte-identical\n\n");

	struct row rows[64];
	size_t nrows = 0;
	header();
	for (unsigned j = 0; j < nl; j++)
		for (unsigned i = 0; i < nn; i++) {
			struct row *w = &rows[nrows];
			w->kind = "bern";
			if (run(&o, ns[i], ls[j], 0, 0, 0, w) < 0) {
				fprintf(stderr, "sim: run failed (N %u, loss %.0f%%)\n", ns[i], ls[j] * 100);
				return 1;
			}
			print_row(w);
			nrows++;
		}
	/* Bursty loss (Gilbert-Elliott, mean 5%, bursts of 5) at the largest two sizes. */
	for (unsigned i = nn >= 2 ? nn - 2 : 0; i < nn; i++) {
		struct row *w = &rows[nrows];
		w->kind = "GE";
		if (run(&o, ns[i], 0.05, 1, 0, 0, w) < 0)
			return 1;
		print_row(w);
		nrows++;
	}

	printf("\nFeedback growth (fits over N = ");
	for (unsigned i = 0; i < nn; i++)
		printf("%s%u", i ? ", " : "", ns[i]);
	printf("):\n");
	for (unsigned j = 0; j < nl; j++)
		if (ls[j] > 0)
			fit(rows, nrows, ls[j], "bern");

	/* Late joiners: 10% of the receivers join at 30% of the first pass, 5% loss everywhere. */
	printf("\nLate joiners (10%% of N join at 30%% of pass 1; 5%% loss; 'passes after join' = (done - join) / one nominal pass):\n");
	printf("%6s %7s %8s %9s %9s %9s %8s\n", "N", "late", "done", "avg", "worst", "wire/pkg", "passes");
	unsigned lns[3] = {100, 1000, 10000};
	for (unsigned i = 0; i < 3; i++) {
		struct row w;
		if (lns[i] > ns[nn - 1])
			continue;
		if (run(&o, lns[i], 0.05, 0, lns[i] / 10, 0, &w) < 0)
			return 1;
		printf("%6u %7u %8u %9.2f %9.2f %9.4f %8llu\n", lns[i], w.late_n, w.late_done, w.late_avg, w.late_worst, w.wire,
		       (unsigned long long)w.r.passes);
		fflush(stdout);
	}

	/* Slow receivers: 1% of N at 60% loss among receivers at 5%; the policy sends them to repair. */
	printf("\nSlow receivers (1%% of N at 60%% loss, the rest at 5%%; max passes %u):\n", o.max_passes);
	header();
	unsigned sns[2] = {100, 1000};
	for (unsigned i = 0; i < 2; i++) {
		struct row w;
		w.kind = "slow";
		if (sns[i] > ns[nn - 1])
			continue;
		if (run(&o, sns[i], 0.05, 0, 0, sns[i] / 100, &w) < 0)
			return 1;
		print_row(&w);
	}

	printf("\nGoals (issue 6):\n");
	for (size_t i = 0; i < nrows; i++)
		if (rows[i].loss == 0.05 && !strcmp(rows[i].kind, "bern") && rows[i].n == ns[nn - 1])
			printf("  wire/pkg <= 1.15 at 5%% loss and N=%u: %.4f  %s (floor for any block code of k=128: %.4f)\n",
			       rows[i].n, rows[i].wire, rows[i].wire <= 1.15 ? "MET" : "NOT MET",
			       sim_block_floor(rows[i].n, 0.05, 128, mc_wire_sym_for_mtu(1500, 0)));
	printf("  floor for any block code of k=128 at 5%% loss, frames included:");
	for (unsigned n = 1; n <= 100000; n *= 10)
		printf("  N=%u: %.4f", n, sim_block_floor(n, 0.05, 128, mc_wire_sym_for_mtu(1500, 0)));
	printf("\n  (with k=200, N=10000: %.4f; symbols sent per source symbol alone, k=128, N=10000: %.4f)\n",
	       sim_block_floor(10000, 0.05, 200, mc_wire_sym_for_mtu(1500, 0)),
	       sim_block_floor(10000, 0.05, 128, mc_wire_sym_for_mtu(1500, 0)) * mc_wire_sym_for_mtu(1500, 0) /
		       (mc_wire_sym_for_mtu(1500, 0) + MC_WIRE_DATA_HDR + SIM_FRAME_OVERHEAD));
	printf("  feedback per chunk at most logarithmic in N: see the fits above (b ln N; power exponent << 1)\n");
	printf("  late joiners done one pass after joining: see the 'worst' column (<= ~1.1 passes)\n");
	printf("peak RSS %ld MiB\n", maxrss_mib());
	return 0;
}
