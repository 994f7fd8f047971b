/* Unit tests of the sender schedule with scripted feedback: passes, demand, hostile NACKs, end rule, timeouts. */
#include <string.h>

#include "sender.h"
#include "tap.h"

static struct mc_sender_cfg cfg(void)
{
	struct mc_sender_cfg c;

	memset(&c, 0, sizeof c);
	mc_geom_init(&c.geom, 2 * 1048576 + 100, 1048576, 1408, 128); /* 3 chunks, blocks 0-5, 6-11, 12 */
	c.fec_pct = 5;
	c.linger_ms = 1000;
	c.peer_timeout_ms = 5000;
	c.max_passes = 3;
	memset(c.id, 7, MC_ID_LEN);
	strcpy(c.name, "img");
	return c;
}

static void feed(struct mc_sender *s, uint64_t now, int type, uint64_t rid, uint32_t session)
{
	struct mc_pkt p;

	memset(&p, 0, sizeof p);
	p.type = (uint8_t)type;
	p.session = session;
	if (type == MC_PKT_HELLO) {
		p.u.hello.rid = rid;
	} else {
		p.u.done.rid = rid;
		memset(p.u.done.id, 7, MC_ID_LEN);
	}
	mc_sender_feedback(s, now, &p, NULL);
}

/* A NACK from a receiver that loses loss/256 of what is sent and last heard DATA of pass `pass` (0: none). */
static void nack_full(struct mc_sender *s, uint64_t now, uint64_t rid, uint32_t block, uint16_t run, uint16_t need,
		      uint8_t loss, uint32_t pass)
{
	struct mc_pkt p;

	memset(&p, 0, sizeof p);
	p.type = MC_PKT_NACK;
	p.flags = loss;
	p.session = 1;
	p.u.nack.rid = rid;
	p.u.nack.pass = pass;
	p.u.nack.n = 1;
	p.u.nack.e[0] = (struct mc_nack_entry){block, run, need};
	mc_sender_feedback(s, now, &p, NULL);
}

static void nack_lossy(struct mc_sender *s, uint64_t now, uint64_t rid, uint32_t block, uint16_t run, uint16_t need,
		       uint8_t loss)
{
	nack_full(s, now, rid, block, run, need, loss, 0);
}

static void nack(struct mc_sender *s, uint64_t now, uint64_t rid, uint32_t block, uint16_t run, uint16_t need)
{
	nack_lossy(s, now, rid, block, run, need, 0);
}

/* Windows never mix passes, and lose no job at the boundary. */
static void test_window(void)
{
	struct mc_sender_cfg c = cfg();
	struct mc_sender *s = mc_sender_new(&c, 1, 0);
	struct mc_sender_job jobs[32];
	unsigned total = 0, mixed = 0, p2 = 0, nj;
	int st;

	feed(s, 0, MC_PKT_HELLO, 100, 1);
	nj = mc_sender_window(s, 1, jobs, 12, &st);
	total += nj;
	/* All of blocks 0-11 wanted whole (a late joiner): that waits for pass 2. */
	nack(s, 2, 100, 0, 12, MC_NEED_ALL);
	while ((nj = mc_sender_window(s, 3, jobs, 32, &st)) > 0) {
		for (unsigned i = 1; i < nj; i++)
			mixed += jobs[i].pass != jobs[0].pass;
		p2 += jobs[0].pass == 2 ? nj : 0;
		total += nj;
	}
	ok(mixed == 0, "a window holds one pass only (%u jobs of another)", mixed);
	ok(p2 > 0 && total == 13 + 12, "pass 2 serves what pass 1 could not, no job lost (%u jobs, %u in pass 2)", total, p2);
	ok(st == MC_SENDER_IDLE, "then idle");
	mc_sender_free(s);
}

/* In the first pass, part of a block is served at once; a whole block (a late joiner) waits for pass 2. */
static void test_behind(void)
{
	struct mc_sender_cfg c = cfg();
	struct mc_sender *s = mc_sender_new(&c, 1, 0);
	struct mc_sender_job j;
	unsigned p1_of[13] = {0};

	feed(s, 0, MC_PKT_HELLO, 100, 1);
	for (int i = 0; i < 6; i++)
		mc_sender_next(s, 1, &j); /* blocks 0-5 */
	nack(s, 2, 100, 1, 1, 7);           /* a lossy receiver lacks 7 symbols of block 1 */
	nack(s, 2, 101, 2, 1, MC_NEED_ALL); /* a late one has nothing of block 2 */
	while (mc_sender_next(s, 3, &j) == MC_SENDER_RUN && j.pass == 1)
		p1_of[j.block]++;
	ok(p1_of[1] == 1 && p1_of[2] == 0, "pass 1 repairs the partial block (%u), not the whole one (%u)", p1_of[1], p1_of[2]);
	ok(j.pass == 2 && j.block == 2 && j.n == j.b.k + (j.b.k * 5 + 99) / 100, "the whole block in pass 2 (block %u, %u symbols)",
	   j.block, j.n);
	mc_sender_free(s);
}

/* While the last window of a pass goes out, announcements say so: that pass, never IDLE. */
static void test_inflight(void)
{
	struct mc_sender_cfg c = cfg();
	struct mc_sender *s = mc_sender_new(&c, 1, 0);
	struct mc_sender_job jobs[32];
	struct mc_announce a;
	int st;

	feed(s, 0, MC_PKT_HELLO, 100, 1);
	unsigned nj = mc_sender_window(s, 1, jobs, 32, &st);
	uint8_t fl = mc_sender_announce(s, &a);
	ok(nj == 13 && !(fl & MC_FLAG_IDLE) && a.pass == 1 && a.cursor == 12,
	   "the whole first pass in one window: announced as pass 1 at block 12, not idle (%u jobs, pass %u)", nj, a.pass);
	nj = mc_sender_window(s, 2, jobs, 32, &st);
	fl = mc_sender_announce(s, &a);
	ok(nj == 0 && (fl & MC_FLAG_IDLE) && a.pass == 2, "once it is out: idle, pass 2");
	mc_sender_free(s);
}

/* A lossy asker gets more than it asked for after the first pass, in proportion to its loss. */
static void test_loss_extra(void)
{
	struct mc_sender_cfg c = cfg();
	struct mc_sender *s = mc_sender_new(&c, 1, 0);
	struct mc_sender_job j;

	feed(s, 0, MC_PKT_HELLO, 100, 1);
	while (mc_sender_next(s, 1, &j) == MC_SENDER_RUN)
		;
	nack_lossy(s, 2, 100, 3, 1, 10, 13); /* 5%: nothing more */
	ok(mc_sender_next(s, 3, &j) == MC_SENDER_RUN && j.n == 10 + 1, "5%% loss: need plus the margin (%u)", j.n);
	nack_lossy(s, 4, 100, 3, 1, 10, 128); /* 50%: twice */
	ok(mc_sender_next(s, 5, &j) == MC_SENDER_RUN && j.n == 10 + 10 + 1, "50%% loss: twice the need (%u)", j.n);
	nack_lossy(s, 6, 100, 3, 1, 10, 255); /* beyond 3/4: counted as 3/4 */
	ok(mc_sender_next(s, 7, &j) == MC_SENDER_RUN && j.n == 10 + 30 + 1, "loss capped at 3/4 (%u)", j.n);
	nack_lossy(s, 8, 100, 3, 1, 200, 128);
	ok(mc_sender_next(s, 9, &j) == MC_SENDER_RUN && j.n <= 255, "never more than 255 symbols (%u)", j.n);
	mc_sender_free(s);
}

/*
 * --fec auto: no first-pass repair until a receiver reports loss, then
 * twice its loss (at most MC_FEC_AUTO_MAX percent), back to none once
 * nobody has reported any for two windows; a receiver whose own kernel
 * dropped datagrams (overruns) does not count.
 */
/* The next block of the first pass (what NACKs asked for is served first, and skipped here). */
static int next_fresh(struct mc_sender *s, uint64_t now, struct mc_sender_job *j)
{
	int rc;

	while ((rc = mc_sender_next(s, now, j)) == MC_SENDER_RUN && j->n < j->b.k)
		;
	return rc == MC_SENDER_RUN && j->pass == 1;
}

static void test_fec_auto(void)
{
	struct mc_sender_cfg c = cfg();
	c.fec_pct = 0;
	c.fec_auto = 1;
	struct mc_sender *s = mc_sender_new(&c, 1, 0);
	struct mc_sender_job j;

	feed(s, 1000, MC_PKT_HELLO, 100, 1);
	ok(next_fresh(s, 1000, &j) && j.block == 0 && j.n == j.b.k, "auto: no loss heard, no repair (%u)", j.n - j.b.k);
	nack_lossy(s, 1001, 100, 0, 1, 3, 13); /* 13/256: 5.1%, so 11% */
	ok(next_fresh(s, 1002, &j) && j.block == 1 && j.n - j.b.k == (j.b.k * 11 + 99) / 100,
	   "auto: 5%% loss reported, 11%% repair (%u of k %u)", j.n - j.b.k, j.b.k);
	nack_lossy(s, 1003, 100, 0, 1, 3, 128); /* 50% */
	ok(next_fresh(s, 1004, &j) && j.block == 2 && j.n - j.b.k == (j.b.k * MC_FEC_AUTO_MAX + 99) / 100,
	   "auto: 50%% loss, at most %u%% (%u of k %u)", MC_FEC_AUTO_MAX, j.n - j.b.k, j.b.k);
	ok(next_fresh(s, 1004 + 2 * MC_FEC_AUTO_MS, &j) && j.block == 3 && j.n == j.b.k,
	   "auto: nothing reported for two windows, none again (%u)", j.n - j.b.k);
	struct mc_pkt p;
	memset(&p, 0, sizeof p);
	p.type = MC_PKT_NACK;
	p.flags = 64;
	p.session = 1;
	p.u.nack.rid = 100;
	p.u.nack.overruns = 3;
	p.u.nack.n = 1;
	p.u.nack.e[0] = (struct mc_nack_entry){0, 1, 3};
	mc_sender_feedback(s, 2100, &p, NULL);
	ok(next_fresh(s, 2101, &j) && j.block == 4 && j.n == j.b.k,
	   "auto: the loss of a receiver that overran is not repaired ahead (%u)", j.n - j.b.k);
	p.u.nack.n = 0; /* its next report, overruns unchanged, seconds later */
	mc_sender_feedback(s, 5300, &p, NULL);
	ok(next_fresh(s, 5301, &j) && j.n == j.b.k, "auto: nor its next report, 3 s later (%u)", j.n - j.b.k);
	p.u.nack.rid = 101; /* another receiver's report of loss alone, no entries */
	p.u.nack.overruns = 0;
	p.flags = 13;
	mc_sender_feedback(s, 5302, &p, NULL);
	ok(next_fresh(s, 5303, &j) && j.n - j.b.k == (j.b.k * 11 + 99) / 100,
	   "auto: a NACK with no entries that tells 5%% loss counts (%u)", j.n - j.b.k);
	mc_sender_free(s);

	/*
	 * The first report in the first pass: the blocks already sent without
	 * repair get it, served behind the cursor in the same pass.
	 */
	c = cfg();
	c.fec_pct = 0;
	c.fec_auto = 1;
	s = mc_sender_new(&c, 1, 0);
	feed(s, 1000, MC_PKT_HELLO, 100, 1);
	for (int i = 0; i < 4; i++)
		next_fresh(s, 1000, &j); /* blocks 0-3, no repair */
	nack_lossy(s, 1001, 100, 5, 1, 3, 13); /* 5%: 11% from now on */
	unsigned caught = 0, fresh = 0, want = 0;
	while (fresh < 2 && mc_sender_next(s, 1002, &j) == MC_SENDER_RUN && j.pass == 1) {
		if (j.n >= j.b.k) {
			fresh++;
			continue;
		}
		want = (j.b.k * 11 + 99) / 100;
		caught += j.block < 4 && j.n == want;
	}
	ok(caught == 4, "auto: the first loss told, the 4 blocks sent before get their %u repair symbols in the same pass (%u)",
	   want, caught);
	mc_sender_free(s);

	c = cfg();
	c.fec_pct = 0;
	s = mc_sender_new(&c, 1, 0);
	feed(s, 1000, MC_PKT_HELLO, 100, 1);
	next_fresh(s, 1000, &j);
	nack_lossy(s, 1001, 100, 0, 1, 3, 128);
	ok(next_fresh(s, 1002, &j) && j.n == j.b.k, "--fec 0: none whatever is reported (%u)", j.n - j.b.k);
	mc_sender_free(s);
}

/*
 * A NACK written before its receiver heard the pass that sent the block
 * (a late joiner still busy with the end of the first pass) is not taken:
 * the block is on its way. One from a receiver that heard that pass is.
 */
static void test_stale(void)
{
	struct mc_sender_cfg c = cfg();
	struct mc_sender *s = mc_sender_new(&c, 1, 0);
	struct mc_sender_job j;

	feed(s, 0, MC_PKT_HELLO, 100, 1);
	while (mc_sender_next(s, 1, &j) == MC_SENDER_RUN && mc_sender_stats(s)->passes == 0)
		;
	nack_full(s, 2, 100, 3, 2, MC_NEED_ALL, 0, 1); /* blocks 3 and 4, asked in pass 1 */
	ok(mc_sender_next(s, 3, &j) == MC_SENDER_RUN && j.block == 3 && j.pass == 2, "pass 2 sends block 3 (block %u, pass %u)",
	   j.block, j.pass);
	nack_full(s, 4, 100, 3, 2, MC_NEED_ALL, 0, 1); /* the same, written before pass 2 reached it */
	ok(mc_sender_stats(s)->nack_stale == 1, "block 3 again from pass 1: not taken (%llu stale)",
	   (unsigned long long)mc_sender_stats(s)->nack_stale);
	ok(mc_sender_next(s, 5, &j) == MC_SENDER_RUN && j.block == 4, "block 4, not yet sent this pass, still is (%u)", j.block);
	ok(mc_sender_next(s, 6, &j) == MC_SENDER_IDLE, "and nothing else: block 3 is not sent a third time");
	nack_full(s, 7, 100, 3, 1, 20, 0, 2); /* it heard pass 2 and still lacks part of block 3 */
	ok(mc_sender_next(s, 8, &j) == MC_SENDER_RUN && j.block == 3, "asked again after hearing pass 2: sent (%u)", j.block);
	nack_full(s, 9, 100, 5, 1, 20, 0, 0); /* a receiver that has heard no DATA yet */
	ok(mc_sender_next(s, 10, &j) == MC_SENDER_RUN && j.block == 5, "a NACK without a pass is taken (%u)", j.block);
	nack_full(s, 11, 101, 7, 1, 2, 0, 2); /* another receiver lacks 2 symbols of block 7 */
	ok(mc_sender_next(s, 12, &j) == MC_SENDER_RUN && j.block == 7 && j.n < 10, "block 7: 2 and the margin (%u)", j.n);
	nack_full(s, 13, 100, 7, 1, MC_NEED_ALL, 0, 2); /* asked whole before that pass reached it */
	ok(mc_sender_next(s, 14, &j) == MC_SENDER_RUN && j.block == 7 && j.n > j.b.k,
	   "a NACK from before asking for more than that pass sent is taken (%u symbols)", j.n);
	mc_sender_free(s);
}

/* A forged NACK whose runs add up to more blocks than the package has is cut off there. */
static void test_forged_runs(void)
{
	struct mc_sender_cfg c = cfg();
	struct mc_sender *s = mc_sender_new(&c, 1, 0);
	struct mc_sender_job j;
	struct mc_pkt p;
	unsigned served = 0;

	feed(s, 0, MC_PKT_HELLO, 100, 1);
	while (mc_sender_next(s, 1, &j) == MC_SENDER_RUN && mc_sender_stats(s)->passes == 0)
		;
	memset(&p, 0, sizeof p);
	p.type = MC_PKT_NACK;
	p.session = 1;
	p.u.nack.rid = 100;
	p.u.nack.n = MC_WIRE_NACK_MAX;
	for (unsigned i = 0; i < MC_WIRE_NACK_MAX; i++)
		p.u.nack.e[i] = (struct mc_nack_entry){0, 65535, 5};
	mc_sender_feedback(s, 2, &p, NULL);
	ok(mc_sender_stats(s)->nack_entries == 1 && mc_sender_stats(s)->feedback_bad == 1,
	   "the first run covers the package; the second is past the budget and ends the NACK (%llu taken, %llu bad)",
	   (unsigned long long)mc_sender_stats(s)->nack_entries, (unsigned long long)mc_sender_stats(s)->feedback_bad);
	while (mc_sender_next(s, 3, &j) == MC_SENDER_RUN)
		served++;
	ok(served == 13, "each of the 13 blocks served once (%u)", served);
	mc_sender_free(s);
}

int main(void)
{
	test_window();
	test_forged_runs();
	test_stale();
	test_behind();
	test_inflight();
	test_loss_extra();
	test_fec_auto();

	struct mc_sender_cfg c = cfg();
	struct mc_sender_job j;
	struct mc_sender *s = mc_sender_new(&c, 1, 0);
	unsigned blocks = 0, holes_sent = 0, n;

	ok(s != NULL, "schedule for 3 chunks");
	while (mc_sender_next(s, 10, &j) == MC_SENDER_RUN && mc_sender_stats(s)->passes == 0) {
		blocks++;
		holes_sent += j.block > 12;
		if (j.block == 0)
			ok(j.n == 128 + 7 && j.esi[0] == 0 && j.esi[134] == 134, "first pass: 128 sources and 7 repair symbols");
	}
	ok(blocks == 13 && holes_sent == 0, "first pass visits the 13 real blocks, never a hole (%u)", blocks);
	ok(mc_sender_next(s, 20, &j) == MC_SENDER_IDLE, "idle after the first pass without NACKs");

	feed(s, 30, MC_PKT_HELLO, 100, 1);
	nack(s, 30, 100, 3, 1, 10);
	nack(s, 31, 101, 3, 1, 4);  /* a second receiver asks for less: the larger need wins */
	nack(s, 31, 101, 1u << 31, 1, 5);        /* outside the package */
	nack(s, 31, 101, 12, 65535, MC_NEED_ALL); /* a run far past the end is clipped */
	nack(s, 31, 101, 0, 1, 300);             /* more than 255 symbols: nonsense */
	ok(mc_sender_stats(s)->feedback_bad == 2, "hostile entries dropped and counted (%llu)", (unsigned long long)mc_sender_stats(s)->feedback_bad);
	ok(mc_sender_next(s, 40, &j) == MC_SENDER_RUN && j.block == 3 && j.n == 10 + 1, "block 3 served with its largest need plus 5%% (%u symbols)", j.n);
	ok(j.esi[0] == 135 && j.esi[10] == 145, "with fresh repair rows after the first pass's (%u..%u)", j.esi[0], j.esi[10]);
	ok(mc_sender_next(s, 40, &j) == MC_SENDER_RUN && j.block == 12 && j.n == j.b.k + 1 && j.esi[0] == 0,
	   "a block wanted whole is served with its sources (k=%u, n=%u)", j.b.k, j.n);
	ok(mc_sender_next(s, 40, &j) == MC_SENDER_IDLE, "nothing else was asked for");

	for (n = 0; n < 300; n++) {
		nack(s, 50, 1000 + n, 4, 1, 200); /* new receivers: the slow-receiver policy must not interfere */
		if (mc_sender_next(s, 50, &j) != MC_SENDER_RUN)
			break;
		for (unsigned i = 0; i < j.n; i++)
			if (j.esi[i] >= 255)
				n = 1000;
	}
	ok(n == 300, "ESIs stay below 255 however often a block is asked for");

	/* End rule: one receiver joined; it completes; linger passes. */
	feed(s, 100, MC_PKT_DONE, 100, 1);
	feed(s, 100, MC_PKT_DONE, 101, 1);
	for (n = 0; n < 300; n++)
		feed(s, 100, MC_PKT_DONE, 1000 + n, 1);
	ok(mc_sender_tick(s, 500) != MC_SENDER_OVER, "not over within the linger");
	ok(mc_sender_tick(s, 1200) == MC_SENDER_OVER && mc_sender_end_reason(s) == MC_END_COMPLETE, "over after everyone completed and the linger passed");
	mc_sender_free(s);

	/* Nobody joins: one pass plus linger. */
	s = mc_sender_new(&c, 1, 0);
	while (mc_sender_next(s, 0, &j) == MC_SENDER_RUN)
		;
	ok(mc_sender_tick(s, 999) != MC_SENDER_OVER && mc_sender_tick(s, 1001) == MC_SENDER_OVER &&
	   mc_sender_end_reason(s) == MC_END_NOBODY, "nobody joined: over one linger after the first pass");
	mc_sender_free(s);

	/* Windows: the linger counts from when the last window of the pass was sent, not handed out. */
	{
		struct mc_sender_job wj[32];
		int wst;
		s = mc_sender_new(&c, 1, 0);
		do
			n = mc_sender_window(s, 0, wj, 32, &wst);
		while (n > 0 && mc_sender_stats(s)->passes == 0);
		/* The window with the pass's last block is handed out at 0 and takes 5 s to send. */
		ok(mc_sender_tick(s, 4000) != MC_SENDER_OVER, "the last window is still on the wire: not over");
		n = mc_sender_window(s, 5000, wj, 32, &wst);
		ok(n == 0 && mc_sender_tick(s, 5999) != MC_SENDER_OVER && mc_sender_tick(s, 6001) == MC_SENDER_OVER,
		   "over one linger after the last window was sent");
		mc_sender_free(s);
	}

	/* The only receiver falls silent in the first pass: the pass is still sent whole, for late joiners. */
	s = mc_sender_new(&c, 1, 0);
	feed(s, 0, MC_PKT_HELLO, 7, 0);
	ok(mc_sender_next(s, 0, &j) == MC_SENDER_RUN, "first pass under way");
	ok(mc_sender_tick(s, 6000) != MC_SENDER_OVER && mc_sender_stats(s)->gone == 1,
	   "its only receiver silent mid-pass: the session goes on");
	while (mc_sender_next(s, 6000, &j) == MC_SENDER_RUN)
		;
	ok(mc_sender_tick(s, 6999) != MC_SENDER_OVER && mc_sender_tick(s, 7001) == MC_SENDER_OVER &&
	   mc_sender_end_reason(s) == MC_END_COMPLETE, "over one linger after the first pass");
	mc_sender_free(s);

	/* A big session: 1000 receivers beat every 2 s, so silence counts only after twice the timeout. */
	ok(mc_heartbeat_ms(10) == 1000 && mc_heartbeat_ms(1000) == 2000 && mc_heartbeat_ms(10000) == 20000,
	   "heartbeats every 1 s up to 500 receivers, then receivers/500 s (%llu at 10000)",
	   (unsigned long long)mc_heartbeat_ms(10000));
	s = mc_sender_new(&c, 1, 0);
	for (unsigned i = 0; i < 1000; i++)
		feed(s, 0, MC_PKT_HELLO, 100 + i, 0);
	ok(mc_sender_tick(s, 9000) != MC_SENDER_OVER && mc_sender_stats(s)->gone == 0,
	   "1000 receivers: none given up after 9 s of silence (timeout 10 s)");
	mc_sender_tick(s, 10001);
	ok(mc_sender_stats(s)->gone == 1000, "all given up after 10 s (%u)", mc_sender_stats(s)->gone);
	mc_sender_free(s);

	/* A silent receiver is no longer waited for; when it speaks again it joins anew. */
	s = mc_sender_new(&c, 1, 0);
	feed(s, 0, MC_PKT_HELLO, 5, 0);
	while (mc_sender_next(s, 0, &j) == MC_SENDER_RUN)
		;
	ok(mc_sender_tick(s, 4000) != MC_SENDER_OVER, "waiting for the silent receiver within its timeout");
	ok(mc_sender_tick(s, 5001) != MC_SENDER_OVER && mc_sender_stats(s)->gone == 1, "silent receiver given up after the timeout");
	feed(s, 5500, MC_PKT_HELLO, 5, 1);
	ok(mc_sender_stats(s)->gone == 0 && mc_sender_stats(s)->joined == 2, "it comes back as a new joiner");
	ok(mc_sender_tick(s, 9000) != MC_SENDER_OVER, "and is waited for again");
	unsigned pi, kind, joins = 0;
	while (mc_sender_event(s, &pi, &kind))
		joins += kind == MC_SEV_JOIN;
	ok(joins == 2, "two join events");
	/* Slow-receiver policy: still incomplete three passes after joining. */
	/* Requests a round apart count (see MC_ROUND_MS); requests in quick sweeps count once. */
	for (n = 0; n < 10; n++) {
		nack(s, 9000 + n, 5, 0, 1, 3);
		while (mc_sender_next(s, 9000 + n, &j) == MC_SENDER_RUN)
			;
	}
	ok(mc_sender_stats(s)->left == 0, "ten requests within a round are one round");
	for (n = 0; n < 10 && mc_sender_stats(s)->left == 0; n++) {
		uint64_t t = 9000 + (n + 1) * MC_ROUND_MS;
		nack(s, t, 5, 0, 1, 3);
		feed(s, t, MC_PKT_HELLO, 5, 1);
		while (mc_sender_next(s, t, &j) == MC_SENDER_RUN)
			;
	}
	struct mc_pkt cp;
	int leave = 0;
	while (mc_sender_ctrl(s, &cp))
		for (unsigned i = 0; i < cp.u.ctrl.n; i++)
			leave |= cp.u.ctrl.e[i].rid == 5 && cp.u.ctrl.e[i].code == MC_CTRL_LEAVE;
	ok(mc_sender_stats(s)->left == 1 && leave, "told to leave after its passes (%u rounds)", n);
	/* It missed the verdict and completes from others' repair: complete, not left. */
	unsigned before = mc_sender_stats(s)->complete;
	feed(s, 20000, MC_PKT_DONE, 5, 1);
	int acked = 0;
	while (mc_sender_ctrl(s, &cp))
		for (unsigned i = 0; i < cp.u.ctrl.n; i++)
			acked |= cp.u.ctrl.e[i].rid == 5 && cp.u.ctrl.e[i].code == MC_CTRL_DONE;
	ok(mc_sender_stats(s)->left == 0 && mc_sender_stats(s)->complete == before + 1 && acked,
	   "a DONE after the verdict counts it complete, and is acknowledged");
	mc_sender_free(s);

	/* Feedback for another package or session is not ours. */
	s = mc_sender_new(&c, 1, 0);
	struct mc_pkt h;
	memset(&h, 0, sizeof h);
	h.type = MC_PKT_HELLO;
	h.u.hello.rid = 9;
	strcpy(h.u.hello.name, "other");
	mc_sender_feedback(s, 0, &h, NULL);
	feed(s, 0, MC_PKT_DONE, 10, 2);
	ok(mc_sender_stats(s)->joined == 0, "hello for another package and done of another session ignored");
	mc_sender_free(s);
	return tap_done();
}
