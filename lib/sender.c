/* The sender schedule; see sender.h and mcast-protocol(7). No sockets, clocks or files here. */
#include "sender.h"

#include <stdlib.h>
#include <string.h>

#define QMAX 4096
#define P1_REPAIR_SHARE 4
#define EXTRA_LOSS_MIN 64 /* in 256ths: a quarter */

struct qent {
	unsigned peer;
	unsigned kind;
};

struct mc_sender {
	struct mc_sender_cfg cfg;
	uint32_t session;
	uint64_t start_ms, pass1_end_ms, last_change_ms;
	uint32_t pass, cursor;
	int pass1_done, state, reason;
	/*
	 * The window last handed out (its pass, 0 none, and its last block) is
	 * on the wire until the next mc_sender_window call: announcements give
	 * it, not where the schedule moved on to, and when it ended the first
	 * pass, the linger of the end rules counts from that call, not from when
	 * the window was handed out.
	 */
	uint32_t win_pass, win_last;
	uint16_t *demand;   /* per block: symbols wanted, 0 none */
	uint8_t *next_esi;  /* per block: next ESI to send when serving demand */
	uint8_t *extra;     /* per block: symbols beyond the demand that the asker's loss will take */
	uint8_t *partial;   /* per block: some receiver has part of it (else only whole-block demand) */
	/*
	 * Per block: the pass that last sent it (0 never) and how many symbols.
	 * A NACK stamped with an earlier pass was written before its receiver
	 * heard that one: a late joiner busy with the end of the first pass
	 * asked again for blocks the second had just sent it, and the sender
	 * sent them a third time (214 blocks of 6144 in one run at 10 Gbit/s).
	 */
	uint32_t *sent_pass;
	uint8_t *sent_n;
	uint32_t npending;
	/*
	 * During the first pass, demand for blocks the cursor has passed is
	 * served at once (up to one symbol in P1_REPAIR_SHARE of the pass's), so
	 * that a lossy receiver completes its chunks while they are still in its
	 * memory, and is whole soon after the pass ends. behind counts such
	 * blocks, rcursor finds them.
	 */
	uint32_t behind, rcursor;
	uint64_t p1_syms, p1_rep_syms;
	/* --fec auto: the worst loss reported (256ths) in this window of MC_FEC_AUTO_MS and the one before */
	uint8_t loss_cur, loss_prev;
	uint64_t loss_win_ms;
	int p1_caught_up;   /* the blocks sent before --fec auto first said some got theirs (fec_catch_up) */
	struct mc_peer *peers;
	unsigned npeers, cap;
	unsigned *hash;     /* open addressing: peer index + 1, 0 empty */
	unsigned hcap;
	struct qent ctrl[QMAX];
	unsigned cq_head, cq_len;
	struct qent ev[QMAX];
	unsigned eq_head, eq_len;
	int ever_joined;
	struct mc_sender_stats st;
};

/* next_job: the next job would open a new pass (a window ends before it) */
#define NEW_PASS 3

static void push(struct qent *q, unsigned *head, unsigned *len, unsigned peer, unsigned kind)
{
	if (*len == QMAX)
		return; /* receivers repeat themselves; dropping a verdict only delays it */
	q[(*head + *len) % QMAX] = (struct qent){peer, kind};
	(*len)++;
}

static int pop(struct qent *q, unsigned *head, unsigned *len, struct qent *out)
{
	if (*len == 0)
		return 0;
	*out = q[*head];
	*head = (*head + 1) % QMAX;
	(*len)--;
	return 1;
}

struct mc_sender *mc_sender_new(const struct mc_sender_cfg *cfg, uint32_t session, uint64_t now_ms)
{
	struct mc_sender *s = calloc(1, sizeof *s);

	if (s == NULL)
		return NULL;
	s->cfg = *cfg;
	s->session = session;
	s->start_ms = now_ms;
	s->last_change_ms = now_ms;
	s->pass = 1;
	s->demand = calloc(cfg->geom.nblocks ? cfg->geom.nblocks : 1, sizeof *s->demand);
	s->next_esi = calloc(cfg->geom.nblocks ? cfg->geom.nblocks : 1, 1);
	s->extra = calloc(cfg->geom.nblocks ? cfg->geom.nblocks : 1, 1);
	s->partial = calloc(cfg->geom.nblocks ? cfg->geom.nblocks : 1, 1);
	s->sent_pass = calloc(cfg->geom.nblocks ? cfg->geom.nblocks : 1, sizeof *s->sent_pass);
	s->sent_n = calloc(cfg->geom.nblocks ? cfg->geom.nblocks : 1, 1);
	s->hcap = 1024;
	s->hash = calloc(s->hcap, sizeof *s->hash);
	if (!s->demand || !s->next_esi || !s->extra || !s->partial || !s->sent_pass || !s->sent_n || !s->hash) {
		mc_sender_free(s);
		return NULL;
	}
	return s;
}

void mc_sender_free(struct mc_sender *s)
{
	if (s == NULL)
		return;
	free(s->demand);
	free(s->next_esi);
	free(s->extra);
	free(s->partial);
	free(s->sent_pass);
	free(s->sent_n);
	free(s->peers);
	free(s->hash);
	free(s);
}

/* Milliseconds from then to now; 0 when feedback stamped a later time than the caller's now. */
static uint64_t since(uint64_t now, uint64_t then)
{
	return now > then ? now - then : 0;
}

static unsigned hslot(uint64_t rid, unsigned cap)
{
	rid ^= rid >> 33;
	rid *= 0xff51afd7ed558ccdULL;
	rid ^= rid >> 33;
	return (unsigned)rid & (cap - 1);
}

static struct mc_peer *find_peer(struct mc_sender *s, uint64_t rid)
{
	for (unsigned h = hslot(rid, s->hcap);; h = (h + 1) & (s->hcap - 1)) {
		if (s->hash[h] == 0)
			return NULL;
		if (s->peers[s->hash[h] - 1].rid == rid)
			return &s->peers[s->hash[h] - 1];
	}
}

static struct mc_peer *add_peer(struct mc_sender *s, uint64_t rid)
{
	if (s->npeers >= 65535)
		return NULL; /* bound what hostile feedback can make us allocate */
	if (s->npeers == s->cap) {
		unsigned ncap = s->cap ? s->cap * 2 : 16;
		struct mc_peer *np = realloc(s->peers, ncap * sizeof *np);
		if (np == NULL)
			return NULL;
		s->peers = np;
		s->cap = ncap;
	}
	if ((s->npeers + 1) * 2 > s->hcap) {
		unsigned ncap = s->hcap * 2, *nh = calloc(ncap, sizeof *nh);
		if (nh == NULL)
			return NULL;
		for (unsigned i = 0; i < s->npeers; i++) {
			unsigned h = hslot(s->peers[i].rid, ncap);
			while (nh[h])
				h = (h + 1) & (ncap - 1);
			nh[h] = i + 1;
		}
		free(s->hash);
		s->hash = nh;
		s->hcap = ncap;
	}
	struct mc_peer *p = &s->peers[s->npeers];
	memset(p, 0, sizeof *p);
	p->rid = rid;
	unsigned h = hslot(rid, s->hcap);
	while (s->hash[h])
		h = (h + 1) & (s->hcap - 1);
	s->hash[h] = ++s->npeers;
	return p;
}

static unsigned idx(const struct mc_sender *s, const struct mc_peer *p)
{
	return (unsigned)(p - s->peers);
}

/* A receiver (new, or back after falling silent) joins: counted, welcomed. */
static void join(struct mc_sender *s, struct mc_peer *p, uint64_t now)
{
	p->joined_ms = now;
	p->join_pass = s->pass;
	p->rounds = 0;
	p->last_round_pass = 0;
	p->done = p->left = p->gone = p->told_leave = p->acked_done = 0;
	p->welcomed = 1;
	s->ever_joined = 1;
	s->st.joined++;
	s->last_change_ms = now;
	push(s->ctrl, &s->cq_head, &s->cq_len, idx(s, p), MC_CTRL_WELCOME);
	push(s->ev, &s->eq_head, &s->eq_len, idx(s, p), MC_SEV_JOIN);
}

/*
 * Demand for block gb: need symbols, asked by a receiver that loses loss/256
 * of what is sent. From EXTRA_LOSS_MIN of loss on, the sweeps after the
 * first pass send need*loss/(256-loss) more (see serve()): at 50% loss
 * exactly the asked-for symbols arrive half of them, and the block would
 * take round after round (a dozen and more: the slow-receiver policy then
 * sends every receiver away). Below it the extra costs more wire than the
 * rounds it saves.
 */
static void add_demand(struct mc_sender *s, uint32_t gb, uint16_t need, uint8_t loss)
{
	struct mc_block b;

	if (mc_geom_block(&s->cfg.geom, gb, &b) < 0)
		return;
	if (need == MC_NEED_ALL || need > b.k)
		need = b.k;
	if (need == 0)
		return;
	if (loss > MC_LOSS_MAX)
		loss = MC_LOSS_MAX;
	unsigned more = loss >= EXTRA_LOSS_MIN ? (unsigned)need * loss / (256u - loss) : 0;
	if (more > s->extra[gb])
		s->extra[gb] = (uint8_t)(more > 255 ? 255 : more);
	if (s->demand[gb] == 0)
		s->npending++;
	/*
	 * Only a receiver that has part of the block is served during the first
	 * pass: its chunk waits in its memory. One that has none of it (a late
	 * joiner) gets it in the next pass, as it would anyway, without holding
	 * up the receivers that are on time.
	 */
	if (need < b.k && !s->partial[gb]) {
		s->partial[gb] = 1;
		if (!s->pass1_done && gb < s->cursor)
			s->behind++;
	}
	if (need > s->demand[gb])
		s->demand[gb] = need;
}

/*
 * Was block gb sent, with at least the need asked for, in a pass after the
 * one the NACK's receiver had heard (0: it heard no DATA yet)? NACKs carry
 * the whole 32-bit pass (the receiver widens DATA's 16 bits).
 */
static int stale(const struct mc_sender *s, uint32_t gb, uint32_t heard, uint16_t need)
{
	struct mc_block b;

	if (heard == 0 || s->sent_pass[gb] <= heard)
		return 0;
	if (need == MC_NEED_ALL)
		need = mc_geom_block(&s->cfg.geom, gb, &b) == 0 ? b.k : MC_NEED_ALL;
	return need <= s->sent_n[gb];
}

/* Records that this pass sends block gb, n symbols of it. */
static void mark_sent(struct mc_sender *s, uint32_t gb, unsigned n)
{
	s->sent_pass[gb] = s->pass;
	s->sent_n[gb] = (uint8_t)(n > 255 ? 255 : n);
}

static int wants_us(const struct mc_sender *s, const struct mc_hello *h)
{
	if (h->want_nhex && !mc_id_match(s->cfg.id, h->want_id, h->want_nhex))
		return 0;
	return h->name[0] == '\0' || strcmp(h->name, s->cfg.name) == 0;
}

/* The receiver a feedback packet comes from, when it is about this session and package: 1 with *rid, else 0. */
static int feedback_rid(const struct mc_sender *s, const struct mc_pkt *p, uint64_t *rid)
{
	switch (p->type) {
	case MC_PKT_HELLO:
		/* Waiting receivers say hello with session 0; others name this session. */
		if ((p->session != 0 && p->session != s->session) || !wants_us(s, &p->u.hello))
			return 0;
		*rid = p->u.hello.rid;
		return 1;
	case MC_PKT_NACK:
		if (p->session != s->session)
			return 0;
		*rid = p->u.nack.rid;
		return 1;
	case MC_PKT_DONE:
	case MC_PKT_BYE:
		if (p->session != s->session || memcmp(p->u.done.id, s->cfg.id, MC_ID_LEN) != 0)
			return 0;
		*rid = p->u.done.rid;
		return 1;
	default:
		return 0;
	}
}

/*
 * Peer admission: the receiver rid as known, heard now. One not known yet
 * joins (a DONE without a hello seen counts it as joined and done), one
 * that fell silent joins again; a BYE admits nobody. NULL: not admitted.
 */
static struct mc_peer *admit(struct mc_sender *s, uint64_t now, const struct mc_pkt *p, uint64_t rid,
			     const struct sockaddr_storage *addr)
{
	struct mc_peer *peer = find_peer(s, rid);

	if (peer == NULL) {
		if (p->type == MC_PKT_BYE)
			return NULL;
		if ((peer = add_peer(s, rid)) == NULL) {
			s->st.feedback_bad++;
			return NULL;
		}
		join(s, peer, now);
	} else if (peer->gone) {
		s->st.gone--;
		join(s, peer, now);
	}
	peer->heard_ms = now;
	if (addr)
		peer->addr = *addr;
	return peer;
}

/* Feedback of a receiver told to leave: repeat the verdict (or the acknowledgement) until it stops talking. */
static void feedback_told(struct mc_sender *s, uint64_t now, struct mc_peer *peer, const struct mc_pkt *p)
{
	if (p->type == MC_PKT_DONE && !peer->done) {
		/* It missed the verdict and completed after all, from repair others asked for. */
		peer->done = 1;
		peer->left = 0;
		s->st.left--;
		s->st.complete++;
		s->last_change_ms = now;
		push(s->ev, &s->eq_head, &s->eq_len, idx(s, peer), MC_SEV_DONE);
	}
	if (p->type != MC_PKT_BYE)
		push(s->ctrl, &s->cq_head, &s->cq_len, idx(s, peer), peer->done ? MC_CTRL_DONE : MC_CTRL_LEAVE);
}

/* --fec auto's windows: the current one becomes the last once MC_FEC_AUTO_MS old; both are forgotten after twice that. */
static void loss_roll(struct mc_sender *s, uint64_t now)
{
	uint64_t age = since(now, s->loss_win_ms);

	if (age < MC_FEC_AUTO_MS)
		return;
	s->loss_prev = age < 2 * MC_FEC_AUTO_MS ? s->loss_cur : 0;
	s->loss_cur = 0;
	s->loss_win_ms = now;
}

/*
 * Repair symbols of a first-pass block, in percent of its k: --fec, or with
 * --fec auto twice the worst loss reported lately. Blocks a lossy receiver
 * completes from the first pass alone are blocks it never asks for and
 * never sets aside: at 5% loss (bench/image, one receiver onto a disk) its
 * NACKs come back only after the pass, behind the datagrams still in its
 * socket, and each round of them costs the time the whole tail takes.
 */
static unsigned first_pass_pct(struct mc_sender *s, uint64_t now)
{
	if (!s->cfg.fec_auto)
		return s->cfg.fec_pct;
	loss_roll(s, now);
	unsigned worst = s->loss_cur > s->loss_prev ? s->loss_cur : s->loss_prev;
	unsigned pct = (worst * 200 + 255) / 256;
	return pct > MC_FEC_AUTO_MAX ? MC_FEC_AUTO_MAX : pct;
}

/*
 * --fec auto, the first time in the first pass it says some: the blocks the
 * cursor passed before went out without repair, and get it now, as demand
 * served behind the cursor (serve_behind) within the same pass. Loss is told
 * first some 10-30 ms into a session, 5-10% of a first pass at 5 Gbit/s:
 * without this those blocks waited for a second pass, and the end of the
 * session for them.
 */
static void fec_catch_up(struct mc_sender *s, uint64_t now)
{
	if (s->pass1_done || s->p1_caught_up)
		return;
	unsigned pct = first_pass_pct(s, now);
	if (pct == 0)
		return;
	s->p1_caught_up = 1;
	for (uint32_t gb = 0; gb < s->cursor; gb++) {
		struct mc_block b;
		if (mc_geom_block(&s->cfg.geom, gb, &b) == 0)
			add_demand(s, gb, (uint16_t)((b.k * pct + 99) / 100), 0);
	}
}

/* NACK accounting: overruns, demand for the blocks named, a round of the slow-receiver policy. */
static void on_nack(struct mc_sender *s, uint64_t now, struct mc_peer *peer, const struct mc_pkt *p)
{
	uint16_t grew = (uint16_t)(p->u.nack.overruns - peer->overruns);

	if (grew && grew < 0x8000) {
		peer->overruns = p->u.nack.overruns;
		peer->overrun_ms = now ? now : 1;
		s->st.overruns += grew;
		s->st.overrun_reports++;
	}
	/*
	 * Its loss, for --fec auto (also from a NACK with no entries: a
	 * receiver behind in its reading reports its loss so); never from a
	 * receiver whose own kernel dropped datagrams this session (overruns):
	 * its estimate counts those drops as loss, a rate cut answers them, and
	 * more repair would worsen them (on a loaded machine such a receiver
	 * on loopback had the sender send 1.34x its package).
	 */
	if (s->cfg.fec_auto && !peer->overrun_ms) {
		loss_roll(s, now);
		uint8_t l = p->flags > MC_LOSS_MAX ? MC_LOSS_MAX : p->flags;
		if (l > s->loss_cur)
			s->loss_cur = l;
		fec_catch_up(s, now);
	}
	if (p->u.nack.n == 0)
		return; /* a report of overruns or loss alone */
	s->st.nacks++;
	peer->nacks++;
	uint64_t taken = 0;
	/*
	 * A receiver names each block once per NACK, so its runs add up to
	 * at most the package's blocks; past that the NACK is forged, and
	 * 146 runs of 65535 would cost the sender 9.5M block updates.
	 */
	uint64_t budget = s->cfg.geom.nblocks;
	for (unsigned i = 0; i < p->u.nack.n; i++) {
		const struct mc_nack_entry *e = &p->u.nack.e[i];
		if (e->block >= s->cfg.geom.nblocks || e->run == 0 || (e->need > MC_RS_MAX && e->need != MC_NEED_ALL)) {
			s->st.feedback_bad++;
			continue;
		}
		uint32_t end = e->block + e->run > s->cfg.geom.nblocks ? s->cfg.geom.nblocks : e->block + e->run;
		if (end - e->block > budget) {
			s->st.feedback_bad++;
			break;
		}
		budget -= end - e->block;
		for (uint32_t gb = e->block; gb < end; gb++) {
			if (stale(s, gb, p->u.nack.pass, e->need)) {
				s->st.nack_stale++;
				continue;
			}
			add_demand(s, gb, e->need, p->flags);
			taken++;
		}
		s->st.nack_entries++;
	}
	/*
	 * A round of the slow-receiver policy; not for a NACK whose every
	 * block is on its way (stale), nor for requests closer together
	 * than a round: the sweeps after a pass can be quick.
	 */
	if (taken && peer->last_round_pass != s->pass &&
	    (peer->rounds == 0 || since(now, peer->round_ms) >= MC_ROUND_MS)) {
		peer->last_round_pass = s->pass;
		peer->round_ms = now;
		peer->rounds++;
	}
}

void mc_sender_feedback(struct mc_sender *s, uint64_t now, const struct mc_pkt *p, const struct sockaddr_storage *addr)
{
	struct mc_peer *peer;
	uint64_t rid;

	if (s->state == MC_SENDER_OVER || !feedback_rid(s, p, &rid) || (peer = admit(s, now, p, rid, addr)) == NULL)
		return;
	if (peer->told_leave) {
		feedback_told(s, now, peer, p);
		return;
	}
	switch (p->type) {
	case MC_PKT_HELLO:
		peer->have = p->u.hello.have;
		peer->total = p->u.hello.total;
		if (p->u.hello.host[0]) /* made printable by the decoder */
			memcpy(peer->host, p->u.hello.host, sizeof peer->host);
		if (!(p->flags & MC_FLAG_WELCOMED) && !peer->done)
			push(s->ctrl, &s->cq_head, &s->cq_len, idx(s, peer), MC_CTRL_WELCOME);
		break;
	case MC_PKT_NACK:
		on_nack(s, now, peer, p);
		break;
	case MC_PKT_DONE:
		if (!peer->done) {
			peer->done = 1;
			if (peer->total)
				peer->have = peer->total; /* its last hello predates completion */
			s->st.complete++;
			s->last_change_ms = now;
			push(s->ev, &s->eq_head, &s->eq_len, idx(s, peer), MC_SEV_DONE);
		}
		push(s->ctrl, &s->cq_head, &s->cq_len, idx(s, peer), MC_CTRL_DONE);
		break;
	case MC_PKT_BYE:
		if (!peer->left && !peer->done) {
			peer->left = 1;
			s->st.left++;
			s->last_change_ms = now;
			push(s->ev, &s->eq_head, &s->eq_len, idx(s, peer), MC_SEV_BYE);
		}
		break;
	}
}

int mc_sender_tick(struct mc_sender *s, uint64_t now)
{
	unsigned active = 0;
	/* Receivers beat less often in a big session (mc_heartbeat_ms): wait for them as much longer. */
	uint64_t timeout = s->cfg.peer_timeout_ms * mc_heartbeat_ms(s->npeers) / MC_HEARTBEAT_MS;

	if (s->state == MC_SENDER_OVER)
		return s->state;
	for (unsigned i = 0; i < s->npeers; i++) {
		struct mc_peer *p = &s->peers[i];
		if (p->done || p->left || p->gone)
			continue;
		if (since(now, p->heard_ms) > timeout) {
			p->gone = 1;
			s->st.gone++;
			s->last_change_ms = now;
			push(s->ev, &s->eq_head, &s->eq_len, i, MC_SEV_GONE);
			continue;
		}
		if (s->cfg.max_passes && p->rounds > s->cfg.max_passes) {
			/*
			 * Slow-receiver policy: it asked for repair in more passes than
			 * allowed; the rest comes from mcast-repair. Counting its own
			 * rounds, not the sender's sweeps, spares a receiver that others'
			 * late requests made the sender sweep for.
			 */
			p->told_leave = p->left = 1;
			s->st.left++;
			s->last_change_ms = now;
			push(s->ctrl, &s->cq_head, &s->cq_len, i, MC_CTRL_LEAVE);
			push(s->ev, &s->eq_head, &s->eq_len, i, MC_SEV_LEAVE);
			continue;
		}
		active++;
	}
	s->st.active = active;
	if (s->cfg.max_time_ms && since(now, s->start_ms) >= s->cfg.max_time_ms) {
		s->state = MC_SENDER_OVER;
		s->reason = MC_END_MAX_TIME;
	} else if (active == 0) {
		if (!s->ever_joined || s->st.complete == 0) {
			/*
			 * Nobody joined, or all who did fell silent or left without
			 * completing: as if nobody had, one full pass plus linger, for
			 * those that join late or come back.
			 */
			if (s->pass1_done && s->win_pass != 1 && since(now, s->pass1_end_ms) >= s->cfg.linger_ms &&
			    since(now, s->last_change_ms) >= s->cfg.linger_ms) {
				s->state = MC_SENDER_OVER;
				s->reason = s->ever_joined ? MC_END_COMPLETE : MC_END_NOBODY;
			}
		} else if (since(now, s->last_change_ms) >= s->cfg.linger_ms) {
			s->state = MC_SENDER_OVER;
			s->reason = MC_END_COMPLETE;
		}
	}
	return s->state;
}

/* Next ESI in the block's cycle: after the first pass's rows, the remaining repair rows, then all 255 again. */
static uint8_t take_esi(struct mc_sender *s, uint32_t gb)
{
	uint8_t e = s->next_esi[gb];

	s->next_esi[gb] = (uint8_t)(e + 1 >= MC_RS_MAX ? 0 : e + 1);
	return e;
}

static void end_first_pass(struct mc_sender *s, uint64_t now)
{
	s->pass1_done = 1;
	s->pass1_end_ms = now;
	s->pass = 2;
	s->cursor = 0;
	s->st.passes = 1;
}

/* Forgets block gb's demand (served, sent anyway by the first pass, or a hole). */
static void drop_demand(struct mc_sender *s, uint32_t gb)
{
	if (s->demand[gb])
		s->npending--;
	s->demand[gb] = 0;
	s->extra[gb] = 0;
	s->partial[gb] = 0;
}

/* Takes block gb's demand into *job: what was asked for and a margin of fresh repair symbols. */
static void serve(struct mc_sender *s, uint32_t gb, struct mc_sender_job *job, int margin)
{
	uint16_t need = s->demand[gb];
	/*
	 * With margin, a few more than asked for (the first pass's proportion,
	 * at least MC_REPAIR_MARGIN percent, so at least one), so that a
	 * receiver that loses some of its repair rarely needs another sweep.
	 * Without (first pass), exactly what was asked: another round costs
	 * only a NACK there, and the wire carries nothing in vain.
	 */
	unsigned pct = s->cfg.fec_pct > MC_REPAIR_MARGIN ? s->cfg.fec_pct : MC_REPAIR_MARGIN;
	uint32_t n = need + (margin ? s->extra[gb] + (need * pct + 99) / 100 : 0);
	unsigned i = 0;

	if (n > MC_RS_MAX)
		n = MC_RS_MAX;
	drop_demand(s, gb);
	mark_sent(s, gb, n);
	job->block = gb;
	job->pass = s->pass;
	job->n = (uint16_t)n;
	if (need >= job->b.k) {
		/* Someone has nothing of this block: its sources cost the same and need no decoding. */
		for (; i < job->b.k; i++)
			job->esi[i] = (uint8_t)i;
	}
	for (; i < n; i++)
		job->esi[i] = take_esi(s, gb);
	s->st.symbols += n;
	s->st.repair_symbols += n;
	s->state = MC_SENDER_RUN;
}

/* First pass: serves demand behind the cursor while the share allows. Returns 1 with *job filled. */
static int serve_behind(struct mc_sender *s, struct mc_sender_job *job)
{
	const struct mc_geom *g = &s->cfg.geom;

	if (s->behind == 0 || s->p1_rep_syms * P1_REPAIR_SHARE > s->p1_syms)
		return 0;
	for (uint32_t i = 0; i < s->cursor && s->behind; i++) {
		uint32_t gb = s->rcursor < s->cursor ? s->rcursor : 0;
		s->rcursor = gb + 1;
		if (s->demand[gb] == 0 || !s->partial[gb])
			continue;
		s->behind--;
		if (mc_geom_block(g, gb, &job->b) < 0) {
			drop_demand(s, gb);
			continue;
		}
		serve(s, gb, job, 0);
		s->p1_rep_syms += job->n;
		return 1;
	}
	s->behind = 0; /* cannot happen: the count and the array disagree */
	return 0;
}

/*
 * The next job, as mc_sender_next without the tick. With pass set (a window
 * being filled), a job of a later pass is not taken: NEW_PASS says the
 * window ends here, and the next call without it opens that pass.
 */
static int next_job(struct mc_sender *s, uint64_t now, struct mc_sender_job *job, uint32_t pass)
{
	const struct mc_geom *g = &s->cfg.geom;

	if (pass && s->pass != pass)
		return NEW_PASS;
	if (!s->pass1_done) {
		if (serve_behind(s, job))
			return MC_SENDER_RUN;
		while (s->cursor < g->nblocks && mc_geom_block(g, s->cursor, &job->b) < 0)
			s->cursor++;
		if (s->cursor >= g->nblocks) {
			/* Only holes were left: the first pass ended with the previous block. */
			end_first_pass(s, now);
			if (pass)
				return NEW_PASS;
		} else {
			uint32_t gb = s->cursor++;
			uint16_t k = job->b.k, r = (uint16_t)((k * first_pass_pct(s, now) + 99) / 100);
			if (k + r > MC_RS_MAX)
				r = (uint16_t)(MC_RS_MAX - k);
			job->block = gb;
			job->pass = s->pass;
			job->n = (uint16_t)(k + r);
			for (unsigned i = 0; i < job->n; i++)
				job->esi[i] = (uint8_t)i;
			s->next_esi[gb] = (uint8_t)(k + r < MC_RS_MAX ? k + r : 0);
			drop_demand(s, gb); /* this pass sends it whole */
			mark_sent(s, gb, job->n);
			s->st.symbols += job->n;
			s->st.repair_symbols += r;
			s->p1_syms += job->n;
			if (s->cursor >= g->nblocks)
				end_first_pass(s, now);
			s->state = MC_SENDER_RUN;
			return MC_SENDER_RUN;
		}
	}
	for (int wrapped = 0; wrapped < 2; wrapped++) {
		if (s->npending == 0)
			break;
		while (s->cursor < g->nblocks && s->demand[s->cursor] == 0)
			s->cursor++;
		if (s->cursor < g->nblocks) {
			uint32_t gb = s->cursor++;
			if (mc_geom_block(g, gb, &job->b) < 0) {
				drop_demand(s, gb);
				continue;
			}
			serve(s, gb, job, 1);
			return MC_SENDER_RUN;
		}
		/* End of a sweep with demand left behind the cursor: a new pass. */
		if (pass)
			return NEW_PASS;
		s->cursor = 0;
		s->pass++;
		s->st.passes = s->pass - 1;
	}
	s->state = MC_SENDER_IDLE;
	return MC_SENDER_IDLE;
}

int mc_sender_next(struct mc_sender *s, uint64_t now, struct mc_sender_job *job)
{
	if (mc_sender_tick(s, now) == MC_SENDER_OVER)
		return MC_SENDER_OVER;
	return next_job(s, now, job, 0);
}

int mc_sender_ctrl(struct mc_sender *s, struct mc_pkt *p)
{
	struct qent q;

	p->type = MC_PKT_CTRL;
	p->flags = 0;
	p->pass = 0;
	p->session = s->session;
	p->u.ctrl.n = 0;
	while (p->u.ctrl.n < MC_WIRE_CTRL_MAX && pop(s->ctrl, &s->cq_head, &s->cq_len, &q)) {
		p->u.ctrl.e[p->u.ctrl.n].rid = s->peers[q.peer].rid;
		p->u.ctrl.e[p->u.ctrl.n].code = (uint8_t)q.kind;
		p->u.ctrl.n++;
	}
	return p->u.ctrl.n > 0;
}

uint8_t mc_sender_announce(const struct mc_sender *s, struct mc_announce *a)
{
	/* While a window goes out, what is on the wire, not what the schedule moved on to. */
	a->pass = s->win_pass ? s->win_pass : s->pass;
	a->cursor = s->win_pass ? s->win_last : s->cursor;
	a->joined = (uint16_t)(s->st.joined > 65535 ? 65535 : s->st.joined);
	a->complete = (uint16_t)(s->st.complete > 65535 ? 65535 : s->st.complete);
	a->max_passes = (uint16_t)s->cfg.max_passes;
	a->image = s->cfg.geom.image != 0;
	return (s->state == MC_SENDER_IDLE && !s->win_pass ? MC_FLAG_IDLE : 0) | (s->cfg.geom.image ? MC_FLAG_IMAGE : 0);
}

int mc_sender_end_reason(const struct mc_sender *s) { return s->reason; }
const struct mc_sender_stats *mc_sender_stats(const struct mc_sender *s) { return &s->st; }
unsigned mc_sender_npeers(const struct mc_sender *s) { return s->npeers; }
const struct mc_peer *mc_sender_peer(const struct mc_sender *s, unsigned i) { return &s->peers[i]; }

int mc_sender_event(struct mc_sender *s, unsigned *peer, unsigned *kind)
{
	struct qent q;

	if (!pop(s->ev, &s->eq_head, &s->eq_len, &q))
		return 0;
	*peer = q.peer;
	*kind = q.kind;
	return 1;
}

int mc_sender_datagrams(struct mc_fec *f, uint32_t session, uint16_t symsize, const struct mc_sender_job *job,
			uint8_t *block, uint8_t *repair, uint8_t (*hdr)[MC_WIRE_DATA_HDR], const uint8_t **sym)
{
	uint8_t *src[MC_RS_MAX], *out[MC_RS_MAX], esi[MC_RS_MAX];
	int nrep = 0;
	struct mc_data d;

	for (unsigned i = 0; i < job->b.k; i++)
		src[i] = block + (size_t)i * symsize;
	for (unsigned i = 0; i < job->n; i++) {
		if (job->esi[i] < job->b.k) {
			sym[i] = src[job->esi[i]];
		} else {
			out[nrep] = repair + (size_t)i * symsize;
			esi[nrep++] = job->esi[i];
			sym[i] = repair + (size_t)i * symsize;
		}
	}
	if (nrep && mc_fec_encode(f, job->b.k, symsize, src, esi, nrep, out) < 0)
		return -1;
	d.block = job->block;
	for (unsigned i = 0; i < job->n; i++) {
		d.esi = job->esi[i];
		mc_wire_encode_data_hdr(session, (uint16_t)job->pass, &d, hdr[i]);
	}
	return 0;
}

size_t mc_sender_manifest_pkt(uint32_t session, const struct mc_manifest *m, uint32_t idx, uint8_t *out, size_t cap)
{
	struct mc_pkt p;
	uint64_t off = (uint64_t)idx * MC_MANIFEST_FRAG;

	if (off >= m->raw_len)
		return 0;
	memset(&p, 0, sizeof p);
	p.type = MC_PKT_MANIFEST;
	p.session = session;
	p.u.man.total = m->raw_len;
	p.u.man.offset = (uint32_t)off;
	p.u.man.len = (uint16_t)(m->raw_len - off < MC_MANIFEST_FRAG ? m->raw_len - off : MC_MANIFEST_FRAG);
	p.u.man.bytes = m->raw + off;
	return mc_wire_encode(&p, out, cap);
}

size_t mc_sender_announce_pkt(const struct mc_sender *s, const struct mc_manifest *m, uint64_t rate, uint8_t *out, size_t cap)
{
	struct mc_pkt p;
	struct mc_announce *a = &p.u.ann;

	memset(&p, 0, sizeof p);
	p.type = MC_PKT_ANNOUNCE;
	p.session = s->session;
	memcpy(a->id, m->id, MC_ID_LEN);
	a->payload_size = m->payload_size;
	a->manifest_len = m->raw_len;
	a->chunk_size = m->chunk_size;
	a->nchunks = m->nchunks;
	a->symbol_size = s->cfg.geom.sym;
	a->kmax = s->cfg.geom.kmax;
	a->rate = rate;
	memcpy(a->name, m->name, sizeof a->name);
	p.flags = mc_sender_announce(s, a);
	return mc_wire_encode(&p, out, cap);
}

unsigned mc_sender_interleave(const struct mc_sender_job *jobs, unsigned njobs, uint16_t (*order)[2])
{
	unsigned n = 0, most = 0;

	for (unsigned j = 0; j < njobs; j++)
		if (jobs[j].n > most)
			most = jobs[j].n;
	for (unsigned i = 0; i < most; i++)
		for (unsigned j = 0; j < njobs; j++)
			if (i < jobs[j].n) {
				order[n][0] = (uint16_t)j;
				order[n][1] = (uint16_t)i;
				n++;
			}
	return n;
}

unsigned mc_sender_window(struct mc_sender *s, uint64_t now, struct mc_sender_job *jobs, unsigned max, int *state)
{
	unsigned nj = 0;
	int st;

	if (s->win_pass == 1 && s->pass1_done)
		s->pass1_end_ms = now; /* the window that ended the first pass has been sent */
	s->win_pass = 0;
	if ((st = mc_sender_tick(s, now)) == MC_SENDER_OVER || max == 0) {
		*state = st;
		return 0;
	}
	while (nj < max && (st = next_job(s, now, &jobs[nj], nj ? jobs[0].pass : 0)) == MC_SENDER_RUN)
		nj++;
	*state = nj ? MC_SENDER_RUN : st;
	if (nj) {
		s->win_pass = jobs[0].pass;
		s->win_last = jobs[nj - 1].block;
	}
	return nj;
}
