/* The sender schedule and receiver assembly together, in memory, with loss, late joins, reordering and duplicates. */
#include "../sim/sim.h"
#include "tap.h"

static struct sim_cfg base(unsigned nrx, struct sim_rx_cfg *rx)
{
	struct sim_cfg c;
	memset(&c, 0, sizeof c);
	c.payload = 3 * 1048576 + 12345;
	c.chunk = 1048576;
	c.sym = 1408;
	c.kmax = 128;
	c.fec = 5;
	c.rate_bps = 1000000000ULL;
	c.nrx = nrx;
	c.rx = rx;
	c.fb_delay_us = 500;
	c.limit_us = 60ULL * 1000000;
	c.max_passes = 50;
	c.seed = 42;
	return c;
}

int main(void)
{
	struct sim_rx_cfg rx[8];
	struct sim_res r;
	struct sim_cfg c;

	memset(rx, 0, sizeof rx);
	for (int i = 0; i < 3; i++)
		rx[i].keep = 1;
	c = base(3, rx);
	ok(sim_run(&c, &r) == 0 && r.complete == 3 && r.identical == 3, "no loss: 3 of 3 complete and identical (%u, %u)", r.complete, r.identical);
	ok(r.passes <= 1, "no loss: one pass (%llu)", (unsigned long long)r.passes);
	ok((double)r.wire_bytes / r.payload_bytes < 1.12, "no loss: wire/payload %.3f", (double)r.wire_bytes / r.payload_bytes);

	rx[0].loss = 0.05;
	rx[1].loss = 0.20;
	rx[2].join_us = 15000; /* joins after about half the first pass */
	c = base(3, rx);
	ok(sim_run(&c, &r) == 0 && r.complete == 3 && r.identical == 3, "5%%, 20%% loss and a late joiner: all identical (%u, %u)", r.complete, r.identical);
	ok((double)r.wire_bytes / r.payload_bytes < 2.0, "late joiner costs at most one more pass: wire/payload %.3f", (double)r.wire_bytes / r.payload_bytes);

	/*
	 * A late joiner on a loss-free LAN: at 1 Gbit/s a tenth of a second
	 * between announcements is twice the DATA a receiver holds before its
	 * first, and the blocks around the gap lack symbols. Taken for loss, they
	 * had it report 40% and be sent each block it asked for 1.7 times.
	 */
	/* Joining early, and so late that the gap runs into the end of the first pass (no DATA after it). */
	static const unsigned joins_ms[] = {60, 150, 190};
	for (unsigned i = 0; i < 3; i++) {
		memset(rx, 0, sizeof rx);
		rx[0].keep = rx[1].keep = 1;
		rx[1].join_us = joins_ms[i] * 1000ULL;
		c = base(2, rx);
		c.payload = 32u << 20;
		ok(sim_run(&c, &r) == 0 && r.complete == 2 && r.identical == 2,
		   "a late joiner without loss at %u ms: both identical (%u, %u)", joins_ms[i], r.complete, r.identical);
		ok(r.nack_loss_max == 0, "and its NACKs tell no loss (%u/256)", r.nack_loss_max);
	}

	memset(rx, 0, sizeof rx);
	for (int i = 0; i < 4; i++) {
		rx[i].keep = 1;
		rx[i].reorder = 0.1;
		rx[i].dup = 0.1;
		rx[i].loss = 0.02 * i;
	}
	c = base(4, rx);
	ok(sim_run(&c, &r) == 0 && r.complete == 4 && r.identical == 4, "reordering and duplication: all identical (%u, %u)", r.complete, r.identical);

	memset(rx, 0, sizeof rx);
	for (int i = 0; i < 3; i++) {
		rx[i].keep = 1;
		rx[i].burst = 1;
		rx[i].loss = 0.9;
		rx[i].p_gb = 0.01;
		rx[i].p_bg = 0.2;
	}
	c = base(3, rx);
	c.mem = 2u << 20; /* two slots: forces spill and reload */
	ok(sim_run(&c, &r) == 0 && r.complete == 3 && r.identical == 3, "bursty loss with two memory slots: all identical (%u, %u)", r.complete, r.identical);

	/*
	 * An image package (format 2): 17 spans of 256 KiB (the last of 1000
	 * bytes), four of them holes, one storing a single byte, four raw, the
	 * rest a third of their span. No loss, 5% loss, a late joiner, bursty
	 * loss with two memory slots; two take chunks through the callback.
	 */
	memset(rx, 0, sizeof rx);
	for (int i = 0; i < 4; i++)
		rx[i].keep = 1;
	rx[1].loss = 0.05;
	rx[2].join_us = 8000; /* about half the first pass */
	rx[3].burst = 1;
	rx[3].loss = 0.9;
	rx[3].p_gb = 0.01;
	rx[3].p_bg = 0.2;
	c = base(4, rx);
	c.image = 1;
	c.chunk = 256u << 10;
	c.payload = 16 * (256u << 10) + 1000;
	c.mem = 1u << 20;
	ok(sim_run(&c, &r) == 0 && r.complete == 4 && r.identical == 4,
	   "image with holes, a 1-byte and raw chunks: loss, a late joiner, bursts, all identical (%u, %u)", r.complete,
	   r.identical);
	ok(r.payload_bytes < c.payload / 2 && (double)r.wire_bytes / r.payload_bytes < 2.0,
	   "holes cost nothing on the wire: %llu stored of %llu, wire/stored %.3f", (unsigned long long)r.payload_bytes,
	   (unsigned long long)c.payload, (double)r.wire_bytes / r.payload_bytes);
	c.chunk_cb = 1;
	ok(sim_run(&c, &r) == 0 && r.complete == 4 && r.identical == 4 && r.cb_bad == 0,
	   "image through the chunk callback: all identical (%u, %u), no wrong call (%u)", r.complete, r.identical,
	   r.cb_bad);
	ok(r.cb_chunks == 4 * 17 && r.cb_holes == 4 * 4, "each receiver got 17 chunks once, 4 of them holes (%u, %u)",
	   r.cb_chunks, r.cb_holes);
	/*
	 * Symbols damaged on the way (0.2% of DATA packets, no loss): their chunks
	 * fail their digest and are asked for again; the chunk callback, which
	 * a target sink writes without digesting again, only ever gets the
	 * true stored bytes.
	 */
	memset(rx, 0, sizeof rx);
	rx[0].keep = rx[1].keep = 1;
	rx[0].corrupt = 0.002;
	rx[1].corrupt = 0.002;
	rx[1].loss = 0.05;
	c = base(2, rx);
	c.image = 1;
	c.chunk = 256u << 10;
	c.payload = 16 * (256u << 10) + 1000;
	c.chunk_cb = 1;
	ok(sim_run(&c, &r) == 0 && r.complete == 2 && r.identical == 2 && r.bad_chunks > 0 && r.cb_bad == 0,
	   "image, damaged symbols: %llu chunks failed their digest, none reached the chunk callback (%u wrong), "
	   "all identical (%u, %u)", (unsigned long long)r.bad_chunks, r.cb_bad, r.complete, r.identical);
	memset(rx, 0, sizeof rx);
	rx[0].keep = 1;
	c = base(1, rx);
	c.image = 1;
	c.chunk = 256u << 10;
	c.payload = 8 * (256u << 10);
	ok(sim_run(&c, &r) == 0 && r.complete == 1 && r.identical == 1 && r.passes <= 1,
	   "image, no loss: one pass (%llu), identical", (unsigned long long)r.passes);
	/* As a format-1 package (1.12), and the 1-byte chunk's block: a whole symbol and its 5% repair one. */
	ok((double)r.wire_bytes / r.payload_bytes < 1.14, "image, no loss: wire/stored %.3f",
	   (double)r.wire_bytes / r.payload_bytes);
	c.chunk_cb = 1;
	ok(sim_run(&c, &r) == 0 && r.complete == 1 && r.identical == 1 && r.cb_bad == 0 && r.cb_chunks == 8 &&
	   r.cb_holes == 2, "image, no loss, through the callback (%u chunks, %u holes)", r.cb_chunks,
	   r.cb_holes);
	c = base(2, rx);
	c.chunk_cb = 1;
	rx[1].loss = 0.1;
	ok(sim_run(&c, &r) == 0 && r.complete == 2 && r.identical == 1 && r.cb_bad == 0 && r.cb_chunks == 4 &&
	   r.cb_holes == 0, "a format-1 package through the chunk callback (%u chunks)", r.cb_chunks);

	memset(rx, 0, sizeof rx);
	rx[0].keep = 1;
	rx[1].keep = 1;
	rx[1].loss = 0.6;
	c = base(2, rx);
	c.max_passes = 2;
	ok(sim_run(&c, &r) == 0 && r.complete == 1 && r.left == 1, "slow-receiver policy: the 60%%-loss receiver is told to leave (%u complete, %u left)", r.complete, r.left);
	return tap_done();
}
