/*
 * The protocol at a few hundred receivers (the small bench/sim): wire
 * overhead, NACKs per chunk and their growth with N, passes, and that no
 * receiver at an ordinary loss rate is sent away by the slow-receiver policy.
 * Assertions marked TODO are issue 6's goals not met yet: they are reported
 * (run-all.sh counts them as skipped) and become hard once the sender meets them.
 */
#include <math.h>

#include "receiver.h"
#include "sender.h"

static void count_recv_free(struct mc_receiver *r);
#define mc_recv_free(r) count_recv_free(r)
#include "../sim/sim.h"
#undef mc_recv_free
#include "tap.h"

static uint64_t nacks_sent;

static void count_recv_free(struct mc_receiver *r)
{
	if (r)
		nacks_sent += mc_recv_stats(r)->nacks_sent;
	(mc_recv_free)(r);
}

#define PAYLOAD (2u << 20)
#define CHUNK (256u << 10)

static int run(unsigned n, double loss, struct sim_res *r, double *nack_chunk)
{
	struct sim_rx_cfg *rx = calloc(n, sizeof *rx);
	struct sim_cfg c;

	for (unsigned i = 0; i < n; i++) {
		rx[i].loss = loss;
		rx[i].keep = i < 2;
	}
	memset(&c, 0, sizeof c);
	c.payload = PAYLOAD;
	c.chunk = CHUNK;
	c.sym = mc_wire_sym_for_mtu(1500, 0);
	c.kmax = 128;
	c.fec = 5;
	c.rate_bps = 50000000ULL;
	c.nrx = n;
	c.rx = rx;
	c.fb_delay_us = 1000;
	c.limit_us = 120ULL * 1000000;
	c.max_passes = 8;
	c.mem = 512u << 10;
	c.seed = 7 + n;
	nacks_sent = 0;
	int rc = sim_run(&c, r);
	*nack_chunk = (double)nacks_sent / (PAYLOAD / CHUNK);
	free(rx);
	return rc;
}

int main(void)
{
	struct sim_res a, b;
	double fa, fb;

	ok(run(100, 0.0, &a, &fa) == 0 && a.complete == 100 && a.identical == 2, "100 receivers, no loss: all complete (%u)", a.complete);
	ok(a.passes == 1 && fa == 0, "no loss: one pass (%llu), no NACK (%.2f per chunk)", (unsigned long long)a.passes, fa);
	ok((double)a.wire_bytes / a.payload_bytes < 1.12, "no loss: wire/payload %.4f < 1.12", (double)a.wire_bytes / a.payload_bytes);

	ok(run(20, 0.05, &a, &fa) == 0 && a.complete + a.left == 20 && a.identical == 2, "20 receivers at 5%%: all end verified or sent to repair (%u + %u)", a.complete, a.left);
	ok(run(200, 0.05, &b, &fb) == 0 && b.complete + b.left == 200 && b.identical == 2, "200 receivers at 5%%: all end verified or sent to repair (%u + %u)", b.complete, b.left);
	double wire = (double)b.wire_bytes / b.payload_bytes;
	/* Regression bounds: what the sender does today, with room for noise. */
	ok(wire < 1.6, "200 at 5%%: wire/payload %.4f < 1.6", wire);
	ok(fb < 40.0 * log(200), "200 at 5%%: NACKs per chunk %.2f < 40 ln N", fb);
	/* NACKs at most logarithmic in N: ten times the receivers may cost ln(200)/ln(20) = 1.77x, not 10x. */
	ok(fb <= 3.0 * (fa > 1 ? fa : 1), "NACKs per chunk grow sublinearly: %.2f at 20, %.2f at 200 (ratio %.2f, 10x receivers)", fa, fb, fb / (fa > 0 ? fa : 1));
	/* No block code of k=128 can do better than the floor (bench/README.md); stay near it. */
	double lo = sim_block_floor(200, 0.05, 128, mc_wire_sym_for_mtu(1500, 0));
	ok(wire <= lo * 1.06, "200 at 5%%: wire/payload %.4f within 6%% of the k=128 block-code floor %.4f", wire, lo);
	/* Issue 6's goal at this size lies below that floor: a TODO no block code can meet. */
	{
		int met = wire <= 1.15;
		printf("%sok %d - 200 at 5%%: wire/payload %.4f <= 1.15%s (floor %.4f)\n", met ? "" : "not ", ++tap_n, wire,
		       met ? "" : " # TODO issue 6 goal", lo);
	}
	/* The policy counts a receiver's own repair rounds: plain 5% loss never reaches it. */
	ok(b.left == 0, "200 at 5%%: no receiver sent to repair by the slow-receiver policy (%u)", b.left);
	return tap_done();
}
