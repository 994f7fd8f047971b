/* mcast-send: multicasts one package as a session that receivers may join at any time. */
#include <errno.h>
#include <stdarg.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "auth.h"
#include "defaults.h"
#include "exitcode.h"
#include "fe.h"
#include "fec.h"
#include "log.h"
#include "meter.h"
#include "net.h"
#include "opt.h"
#include "pace.h"
#include "pkg.h"
#include "sender.h"
#include "wire.h"

#define KMAX 128                /* source symbols per coding block: see mcast-protocol(7) */
#define ANNOUNCE_MS 100         /* announcements ten times a second, and every MC_ANNOUNCE_PKTS datagrams */
#define MANIFEST_MIN_MS 100     /* the whole manifest at most this often ... */
#define MANIFEST_MAX_MS 1000    /* ... and at least this often */
#define MEASURE_MS 50           /* the sent rate is measured over this much time at least */
#define GSO_MAX_SEGS 64
#define GSO_MAX_BYTES 65000

static const char usage_text[] =
	"usage: mcast-send [-qv] [--json] [-g GROUP] [-p PORT] [-i IFACE] [-t TTL] [-r RATE]\n"
	"                  [--fec PERCENT] [--linger DUR] [--max-time DUR] [--max-passes N]\n"
	"                  [--mtu BYTES] [--peer-timeout DUR] [--session-key FILE] PKG\n"
	"       mcast-send -h | --help | --version\n";

static volatile sig_atomic_t got_signal;

static void help(void) __attribute__((noreturn));
static void help(void)
{
	mc_fe_help(usage_text,
	"\nMulticasts PKG to every receiver on GROUP:PORT; receivers may join at any time.\n"
	      "  -g, --group GROUP  multicast group, IPv4 or IPv6 (default " MC_DEFAULT_GROUP4 ")\n"
	      "  -p, --port PORT  data port; feedback comes back on PORT+1 (default 7077)\n"
	      "  -i, --interface IFACE  send on this interface\n"
	      "  -t, --ttl TTL    multicast TTL / hop limit (default 1)\n"
	      "  -r, --rate RATE  bits per second, e.g. 800M, 1G (default 500M); lower while receivers overrun\n"
	      "  --fec PERCENT     repair symbols in the first pass (default 0: NACKs ask)\n"
	      "  --linger DUR      wait this long for new receivers after all completed (default 2s)\n"
	      "  --max-time DUR    end the session after DUR whatever its state\n"
	      "  --max-passes N    passes in which a receiver may ask for repair before it is\n"
	      "                    told to leave and use mcast-repair (default 12, 0 never)\n"
	      "  --mtu BYTES       path MTU; datagrams are sized to fit (default 1500)\n"
	      "  --peer-timeout DUR  a silent receiver is no longer waited for (default 5s)\n"
	      "  --session-key FILE  authenticate every datagram with this 32-byte key (mcast-pack\n"
	      "                    keygen --session): others' are dropped, receivers without it not counted\n"
	      "  --json            one JSON event per line on stdout\n"
	      "  -q, --quiet       errors only\n"
	      "  -v, --verbose     more detail\n"
	      "  -h, --help        this help    --version  program version\n");
}

struct opts {
	struct mc_fe_net net;
	const char *pkg;
	uint64_t rate, fec, linger, max_time, max_passes, mtu, peer_timeout;
	int verbosity, json;
	const char *session_key;
};

static void parse(int argc, char **argv, struct opts *o)
{
	enum { O_FEC = 256, O_JSON, O_LINGER, O_MAX_PASSES, O_MAX_TIME, O_MTU, O_PEER_TIMEOUT, O_SESSION_KEY, O_VERSION };
	static const struct option lopts[] = {
		{"fec", required_argument, NULL, O_FEC},
		{"group", required_argument, NULL, 'g'},
		{"help", no_argument, NULL, 'h'},
		{"interface", required_argument, NULL, 'i'},
		{"json", no_argument, NULL, O_JSON},
		{"linger", required_argument, NULL, O_LINGER},
		{"max-passes", required_argument, NULL, O_MAX_PASSES},
		{"max-time", required_argument, NULL, O_MAX_TIME},
		{"mtu", required_argument, NULL, O_MTU},
		{"peer-timeout", required_argument, NULL, O_PEER_TIMEOUT},
		{"port", required_argument, NULL, 'p'},
		{"quiet", no_argument, NULL, 'q'},
		{"rate", required_argument, NULL, 'r'},
		{"session-key", required_argument, NULL, O_SESSION_KEY},
		{"ttl", required_argument, NULL, 't'},
		{"verbose", no_argument, NULL, 'v'},
		{"version", no_argument, NULL, O_VERSION},
		{NULL, 0, NULL, 0},
	};
	int c;

	memset(o, 0, sizeof *o);
	mc_fe_net_defaults(&o->net);
	o->rate = MC_DEFAULT_RATE;
	o->fec = MC_DEFAULT_FEC;
	o->linger = MC_DEFAULT_LINGER_MS;
	o->max_passes = MC_DEFAULT_MAX_PASSES;
	o->mtu = MC_DEFAULT_MTU;
	o->peer_timeout = MC_DEFAULT_PEER_TIMEOUT_MS;
	o->verbosity = 1;
	opterr = 0; /* our own message, with the program name alone */
	while ((c = getopt_long(argc, argv, "g:hi:p:qr:t:v", lopts, NULL)) != -1) {
		if (mc_fe_net_option(usage_text, c, optarg, &o->net))
			continue;
		switch (c) {
		case 'h': help();
		case 'q': o->verbosity = 0; break;
		case 'r':
			if (mc_opt_rate(optarg, 1000, 400000000000ULL, &o->rate) < 0)
				mc_fe_usage_error(usage_text, "-r %s: rate must be bits per second from 1K to 400G, such as 800M or 1G", optarg);
			break;
		case 'v': o->verbosity = 2; break;
		case O_FEC:
			if (mc_opt_uint(optarg, 0, 100, &o->fec) < 0)
				mc_fe_usage_error(usage_text, "--fec %s: must be a percentage from 0 to 100", optarg);
			break;
		case O_JSON: o->json = 1; break;
		case O_LINGER:
			if (mc_opt_duration(optarg, 0, 86400000, &o->linger) < 0)
				mc_fe_usage_error(usage_text, "--linger %s: must be a duration such as 2s or 500ms", optarg);
			break;
		case O_MAX_PASSES:
			if (mc_opt_uint(optarg, 0, 10000, &o->max_passes) < 0)
				mc_fe_usage_error(usage_text, "--max-passes %s: must be a number from 0 to 10000", optarg);
			break;
		case O_MAX_TIME:
			o->max_time = mc_fe_duration(usage_text, "--max-time", optarg, 1, 30ULL * 86400000);
			break;
		case O_MTU:
			if (mc_opt_uint(optarg, 576, 65535, &o->mtu) < 0)
				mc_fe_usage_error(usage_text, "--mtu %s: must be a number from 576 to 65535", optarg);
			break;
		case O_PEER_TIMEOUT:
			if (mc_opt_duration(optarg, 2000, 86400000, &o->peer_timeout) < 0)
				mc_fe_usage_error(usage_text, "--peer-timeout %s: must be a duration of 2s or more (receivers speak every second)", optarg);
			break;
		case O_SESSION_KEY: o->session_key = optarg; break;
		case O_VERSION:
			mc_fe_version();
		default:
			mc_fe_bad_option(usage_text, argv);
		}
	}
	if (optind != argc - 1)
		mc_fe_usage_error(usage_text, optind == argc ? "missing PKG" : "one PKG only");
	o->pkg = argv[optind];
}

struct sess {
	struct opts o;
	struct mc_pkg pkg;
	struct mc_group g, gfb;
	struct mc_sender *s;
	struct mc_fec *fec;
	uint32_t session;
	int tx, fb, gso;
	struct mc_pace pace;
	struct mc_rate rate;
	uint64_t start_ms, bytes_sent, pkts_sent, send_drops;
	/* What the sender really sends while it has work: where a rate cut starts from. */
	uint64_t meas_ns, meas_bytes, meas_idle_ns, sent_bps;
	int over;       /* the end rule was met in the middle of a window: stop it there */
	struct mc_chunk_check check; /* the first pass checks each chunk it reads against the manifest */
	int damaged;    /* ... and stops at the first that does not match */
	struct slot {
		uint8_t *block, *repair;
		uint8_t (*hdr)[MC_WIRE_DATA_HDR];
		const uint8_t *syms[MC_RS_MAX];
	} win[MC_INTERLEAVE];
	struct mc_sender_job jobs[MC_INTERLEAVE];
	uint16_t (*order)[2];
	struct mc_rx rx;
	uint32_t man_idx, nfrag;
	int man_sent;
	uint64_t next_ann;
	uint64_t ann_pkts; /* pkts_sent at the last announcement */
};

static unsigned wire_overhead(const struct sess *x)
{
	return x->g.family == AF_INET6 ? 48 : 28; /* IP + UDP headers, counted against the rate */
}

static void send_small(struct sess *x, const uint8_t *buf, size_t len)
{
	if (len == 0)
		return;
	if (mc_net_send(x->tx, &x->g, buf, len) < 0)
		x->send_drops++;
	x->bytes_sent += len;
	x->pkts_sent++;
	mc_pace_spend(&x->pace, len + wire_overhead(x));
}

/* The announcement alone; announce() adds the manifest. */
static void announce_only(struct sess *x)
{
	uint8_t buf[2048];

	send_small(x, buf, mc_sender_announce_pkt(x->s, &x->pkg.m, x->rate.cur, buf, sizeof buf));
	x->ann_pkts = x->pkts_sent;
}

static void announce(struct sess *x)
{
	uint8_t buf[2048];

	announce_only(x);
	/*
	 * The manifest goes out whole at the start, then repeats every
	 * MANIFEST_MIN_MS to MANIFEST_MAX_MS, as often as 1% of the rate allows,
	 * in step with the announcements: a receiver parks what it gets before
	 * the manifest and verifies it all at once when the manifest is whole,
	 * so the sooner that is the less it has to catch up on (at 5 Gbit/s, a
	 * second of parked data stalled receivers long enough to overflow them).
	 */
	uint64_t every = (uint64_t)x->nfrag * (MC_MANIFEST_FRAG + 64) * 8 * 1000 / (x->rate.cur / 100 ? x->rate.cur / 100 : 1);
	every = every < MANIFEST_MIN_MS ? MANIFEST_MIN_MS : every > MANIFEST_MAX_MS ? MANIFEST_MAX_MS : every;
	uint32_t per = x->man_sent ? (uint32_t)((x->nfrag * ANNOUNCE_MS + every - 1) / every) : x->nfrag;
	x->man_sent = 1;
	for (uint32_t i = 0; i < per; i++) {
		send_small(x, buf, mc_sender_manifest_pkt(x->session, &x->pkg.m, x->man_idx, buf, sizeof buf));
		x->man_idx = (x->man_idx + 1) % x->nfrag;
	}
}

static void peer_event(struct sess *x, unsigned pi, unsigned kind)
{
	static const char *const names[] = {"", "joined", "done", "bye", "leave", "gone"};
	const struct mc_peer *p = mc_sender_peer(x->s, pi);
	char addr[80], rid[20];
	struct mc_json j;

	mc_net_addr_str(&p->addr, addr, sizeof addr);
	snprintf(rid, sizeof rid, "%016llx", (unsigned long long)p->rid);
	if (kind == MC_SEV_LEAVE)
		mc_info("receiver %s at %s: still incomplete after %llu passes, told to leave (mcast-repair)", rid, addr,
			(unsigned long long)x->o.max_passes);
	else if (kind == MC_SEV_GONE)
		mc_info("receiver %s at %s: silent, no longer waited for", rid, addr);
	else
		mc_debug("receiver %s at %s: %s", rid, addr, names[kind]);
	mc_json_begin(&j, names[kind]);
	mc_json_str(&j, "receiver", rid);
	mc_json_str(&j, "address", addr);
	if (p->total) { /* from its hellos: a receiver first heard by a NACK or DONE has said nothing yet */
		mc_json_u64(&j, "have", p->have);
		mc_json_u64(&j, "total", p->total);
	}
	mc_json_end(&j);
}

static void drain_feedback(struct sess *x)
{
	int n;

	while ((n = mc_net_rx(x->fb, &x->rx)) > 0) {
		uint64_t now = mc_now_ms();
		for (int i = 0; i < n; i++) {
			const uint8_t *p;
			size_t len;
			for (unsigned j = 0; (len = mc_net_rx_seg(&x->rx, (unsigned)i, j, &p)) > 0; j++) {
				struct mc_pkt pkt;
				if (mc_wire_decode(p, len, &pkt) == 0)
					mc_sender_feedback(x->s, now, &pkt, &x->rx.from[i]);
			}
		}
		if (n < (int)x->rx.n)
			break;
	}
	unsigned pi, kind;
	while (mc_sender_event(x->s, &pi, &kind))
		peer_event(x, pi, kind);
	struct mc_pkt cp;
	uint8_t buf[2048];
	while (mc_sender_ctrl(x->s, &cp))
		send_small(x, buf, mc_wire_encode(&cp, buf, sizeof buf));
}

/*
 * The rate sent over the last MEASURE_MS or more, idle time (nothing to
 * send) left out; a measure with less than MEASURE_MS/2 of work in it keeps
 * the last one.
 */
static void measure(struct sess *x)
{
	uint64_t now = mc_now_ns(), dt = now - x->meas_ns;

	if (dt < MEASURE_MS * 1000000ULL)
		return;
	uint64_t busy = dt > x->meas_idle_ns ? dt - x->meas_idle_ns : 0;
	if (busy >= MEASURE_MS * 500000ULL)
		x->sent_bps = (uint64_t)((double)x->meas_bytes * 8e9 / (double)busy);
	x->meas_ns = now;
	x->meas_bytes = x->meas_idle_ns = 0;
}

/* Feedback and the announcement timer: run between batches, so a long window never starves them. */
static void housekeeping(struct sess *x)
{
	uint64_t now = mc_now_ms();

	drain_feedback(x);
	measure(x);
	/* --max-time and the end rule hold within a window too: at a low rate one lasts seconds. */
	if (mc_sender_tick(x->s, now) == MC_SENDER_OVER)
		x->over = 1;
	if (mc_rate_update(&x->rate, mc_sender_stats(x->s)->overrun_reports, x->sent_bps, now)) {
		char rt[32];
		mc_pace_set_rate(&x->pace, x->rate.cur);
		mc_debug("rate %s (receivers reported %llu overruns)", mc_fmt_rate(x->rate.cur, rt, sizeof rt),
			 (unsigned long long)mc_sender_stats(x->s)->overruns);
	}
	if (now >= x->next_ann) {
		announce(x);
		x->next_ann = now + ANNOUNCE_MS;
	} else if (x->pkts_sent - x->ann_pkts >= MC_ANNOUNCE_PKTS) {
		/*
		 * A receiver holds the DATA it hears before its first announcement,
		 * up to MC_EARLY_MAX datagrams: at 10 Gbit/s a tenth of a second is
		 * 17 times that, and a late joiner lost what came in between.
		 */
		announce_only(x);
	}
}

/* Waits for feedback up to ns nanoseconds. */
static void wait_fb(struct sess *x, uint64_t ns)
{
	struct pollfd pfd = {x->fb, POLLIN, 0};
	struct timespec ts = {(time_t)(ns / 1000000000ULL), (long)(ns % 1000000000ULL)};

	ppoll(&pfd, 1, &ts, NULL);
}

/*
 * Sends iov (header/symbol pairs) as paced GSO batches, falling back to
 * sendmmsg if GSO is refused. Returns 0 sent, 1 not sent because the session
 * ended while it waited for its turn, -1 error or signal.
 */
static int send_batch(struct sess *x, struct iovec *iov, unsigned nseg, uint16_t seg)
{
	size_t bytes = (size_t)nseg * (seg + wire_overhead(x));
	uint64_t w;

	while ((w = mc_pace_wait(&x->pace, mc_now_ns(), bytes)) > 0) {
		if (w > 200000)
			housekeeping(x);
		if (x->over)
			return 1;
		wait_fb(x, w > 2000000 ? 2000000 : w);
		if (got_signal)
			return -1;
	}
	for (;;) {
		if (mc_net_send_batch(x->tx, &x->g, iov, 2 * nseg, seg, x->gso) == 0)
			break;
		if (x->gso && (errno == EIO || errno == EINVAL || errno == ENOPROTOOPT)) {
			mc_debug("%s: UDP GSO refused (%s), sending datagram by datagram", x->g.text, strerror(errno));
			x->gso = 0;
			continue;
		}
		if (errno == EAGAIN || errno == ENOBUFS) {
			struct pollfd pfd = {x->tx, POLLOUT, 0};
			poll(&pfd, 1, 10);
			continue;
		}
		if (errno == EINTR) {
			if (got_signal)
				return -1;
			continue;
		}
		if (errno == EMSGSIZE)
			mc_err("%s: send: %s: --mtu %llu is more than the way to the group takes", x->g.text, strerror(errno),
			       (unsigned long long)x->o.mtu);
		else if (errno == ENETUNREACH && x->g.ifindex == 0)
			mc_err("%s: send: %s (no route to the group: name the interface with -i)", x->g.text, strerror(errno));
		else
			mc_err("%s: send: %s", x->g.text, strerror(errno));
		return -1;
	}
	mc_pace_spend(&x->pace, bytes);
	x->meas_bytes += bytes;
	x->bytes_sent += (size_t)nseg * seg;
	x->pkts_sent += nseg;
	return 0;
}

/*
 * Sends a window of jobs: each block read from the package and its repair
 * symbols computed, then the datagrams of all of them interleaved
 * (mc_sender_interleave) and cut into paced GSO batches.
 */
static int send_window(struct sess *x, unsigned nj, uint16_t sym)
{
	struct iovec iov[2 * GSO_MAX_SEGS];
	uint16_t seg = (uint16_t)(MC_WIRE_DATA_HDR + sym);
	unsigned per = GSO_MAX_BYTES / seg, total;
	ssize_t r;

	if (per > GSO_MAX_SEGS)
		per = GSO_MAX_SEGS;
	for (unsigned j = 0; j < nj; j++) {
		const struct mc_sender_job *job = &x->jobs[j];
		struct slot *w = &x->win[j];
		r = pread(x->pkg.fd, w->block, job->b.len, (off_t)(x->pkg.l.payload_off + job->b.off));
		if (r != (ssize_t)job->b.len) {
			mc_err("%s: read: %s", x->o.pkg, r < 0 ? strerror(errno) : "file shrank while sending");
			return -1;
		}
		uint32_t bad;
		if (mc_chunk_check_feed(&x->check, job->b.off, w->block, job->b.len, &bad) < 0) {
			uint64_t first = x->pkg.l.payload_off + mc_manifest_chunk_off(&x->pkg.m, bad);
			mc_err("%s: chunk %u (bytes %llu-%llu) does not match its digest: the package is damaged "
			       "(mcast-pack verify names every bad chunk, mcast-repair heals it)",
			       x->o.pkg, bad, (unsigned long long)first,
			       (unsigned long long)(first + mc_manifest_chunk_len(&x->pkg.m, bad) - 1));
			x->damaged = 1;
			return -1;
		}
		memset(w->block + job->b.len, 0, (size_t)job->b.k * sym - job->b.len);
		if (mc_sender_datagrams(x->fec, x->session, sym, job, w->block, w->repair, w->hdr, w->syms) < 0) {
			mc_err("%s: erasure coder failed", x->o.pkg);
			return -1;
		}
	}
	total = mc_sender_interleave(x->jobs, nj, x->order);
	for (unsigned i = 0; i < total; i += per) {
		unsigned n = total - i < per ? total - i : per;
		for (unsigned j = 0; j < n; j++) {
			const struct slot *w = &x->win[x->order[i + j][0]];
			unsigned k = x->order[i + j][1];
			iov[2 * j].iov_base = (void *)w->hdr[k];
			iov[2 * j].iov_len = MC_WIRE_DATA_HDR;
			iov[2 * j + 1].iov_base = (void *)w->syms[k];
			iov[2 * j + 1].iov_len = sym;
		}
		int rc = send_batch(x, iov, n, seg);
		if (rc < 0)
			return -1;
		if ((i / per) % 8 == 7)
			housekeeping(x);
		if (rc > 0 || x->over)
			return 0; /* the session is over: the rest of the window is not sent */
	}
	return 0;
}

static void progress(struct sess *x, int force)
{
	static struct mc_meter meter; /* the rate of the last seconds, not the session's average */
	const struct mc_sender_stats *st = mc_sender_stats(x->s);
	char state[96];

	/* Every receiver that joined is done and nothing is asked: the sender only lingers for late joiners. */
	if (st->joined > 0 && st->active == 0 && st->complete == st->joined)
		snprintf(state, sizeof state, "lingering, receivers %u joined, %u done", st->joined, st->complete);
	else
		snprintf(state, sizeof state, "pass %llu, receivers %u joined, %u done, %u active",
			 (unsigned long long)(st->passes + 1), st->joined, st->complete, st->active);
	mc_meter_show(&meter, force, "sent", x->bytes_sent, 0, mc_now_ms(), state);
}

static void end_session(struct sess *x, int reason)
{
	struct mc_pkt p;
	uint8_t buf[64];

	memset(&p, 0, sizeof p);
	p.type = MC_PKT_END;
	p.session = x->session;
	memcpy(p.u.end.id, x->pkg.m.id, MC_ID_LEN);
	p.u.end.reason = (uint8_t)reason;
	size_t n = mc_wire_encode(&p, buf, sizeof buf);
	/* Repeated, so that a loss does not leave a receiver waiting for its timeout. */
	for (int i = 0; i < 5; i++) {
		mc_net_send(x->tx, &x->g, buf, n);
		usleep(20000);
	}
}

int main(int argc, char **argv)
{
	static const char *const reasons[] = {"complete", "max-time", "signal", "nobody", "damaged"};
	const unsigned nreasons = sizeof reasons / sizeof reasons[0];
	struct sess x;
	struct mc_sender_cfg cfg;
	char err[512], idhex[40], sz[32], rt[32];
	int rc = MC_EXIT_RUNTIME, st = MC_SENDER_RUN, reason, summed = 0;
	struct mc_auth *auth = NULL;

	memset(&x, 0, sizeof x);
	x.tx = x.fb = -1;
	x.pkg.fd = -1;
	parse(argc, argv, &x.o);
	mc_log_init(argv[0], x.o.verbosity, x.o.json);
	if (mc_net_group(x.o.net.group, (uint16_t)x.o.net.port, x.o.net.iface, &x.g, err, sizeof err) < 0) {
		mc_err("%s", err);
		exit(MC_EXIT_USAGE); /* a group that is not multicast, an interface that does not exist */
	}
	mc_net_group_port(&x.g, (uint16_t)(x.o.net.port + 1), &x.gfb);
	if (x.o.session_key)
		auth = mc_fe_session_key(x.o.session_key);
	if (mc_pkg_open(x.o.pkg, &x.pkg, err, sizeof err) < 0) {
		/* A package cut short or with a damaged head is damaged, as a bad chunk is (mcast-pack verify says 3 too). */
		if (errno == EBADMSG)
			rc = MC_EXIT_INCOMPLETE;
		mc_err("%s%s", err, rc == MC_EXIT_INCOMPLETE ? " (the package is damaged: mcast-repair heals it)" : "");
		goto out;
	}
	/* With a session key every datagram carries MC_AUTH_LEN more bytes: the symbols make room for them. */
	uint16_t sym = mc_geom_sym_for_mtu((unsigned)x.o.mtu - (x.o.session_key ? MC_AUTH_LEN : 0), x.g.family == AF_INET6);
	memset(&cfg, 0, sizeof cfg);
	if (mc_geom_init_manifest(&cfg.geom, &x.pkg.m, sym, KMAX) < 0) {
		mc_err("%s: cannot cut into coding blocks", x.o.pkg);
		goto out;
	}
	cfg.fec_pct = (unsigned)x.o.fec;
	cfg.linger_ms = x.o.linger;
	cfg.max_time_ms = x.o.max_time;
	cfg.peer_timeout_ms = x.o.peer_timeout;
	cfg.max_passes = (unsigned)x.o.max_passes;
	memcpy(cfg.id, x.pkg.m.id, MC_ID_LEN);
	memcpy(cfg.name, x.pkg.m.name, sizeof cfg.name);
	if (getrandom(&x.session, sizeof x.session, 0) != sizeof x.session)
		x.session = (uint32_t)getpid() ^ (uint32_t)mc_now_ns();
	if (x.session == 0)
		x.session = 1; /* 0 means "no session" in hellos */
	x.start_ms = mc_now_ms();
	x.s = mc_sender_new(&cfg, x.session, x.start_ms);
	x.fec = mc_fec_new();
	int nomem = !x.s || !x.fec || mc_chunk_check_init(&x.check, &x.pkg.m) < 0;
	for (unsigned j = 0; j < MC_INTERLEAVE; j++) {
		x.win[j].block = malloc((size_t)KMAX * sym);
		x.win[j].repair = malloc((size_t)MC_RS_MAX * sym);
		x.win[j].hdr = malloc(MC_RS_MAX * sizeof *x.win[j].hdr);
		nomem |= !x.win[j].block || !x.win[j].repair || !x.win[j].hdr;
	}
	x.order = malloc((size_t)MC_INTERLEAVE * MC_RS_MAX * sizeof *x.order);
	if (nomem || !x.order || mc_net_rx_init(&x.rx, 32, 2048) < 0) {
		mc_err("out of memory");
		goto out;
	}
	if ((x.tx = mc_net_sender(&x.g, (int)x.o.net.ttl, err, sizeof err)) < 0 ||
	    (x.fb = mc_net_listen(&x.gfb, 0, err, sizeof err)) < 0) {
		mc_err("%s", err);
		goto out;
	}
	x.gso = mc_net_gso_ok(x.tx);
	x.nfrag = (x.pkg.m.raw_len + MC_MANIFEST_FRAG - 1) / MC_MANIFEST_FRAG;
	/*
	 * The bucket holds 2 ms of the rate (at least four GSO batches): reading
	 * and coding a window of blocks takes about a millisecond, and a sleep
	 * oversleeps by tens of microseconds; a smaller bucket would lose that
	 * time for good and send slower than -r.
	 */
	size_t burst = (size_t)(x.o.rate / 8 / 500);
	if (burst < 4 * GSO_MAX_BYTES)
		burst = 4 * GSO_MAX_BYTES;
	mc_pace_init(&x.pace, x.o.rate, burst, mc_now_ns());
	mc_rate_init(&x.rate, x.o.rate, mc_now_ms());
	x.meas_ns = mc_now_ns();
	mc_fe_signals(&got_signal);

	mc_id_hex(x.pkg.m.id, idhex);
	mc_info("sending %s (id %.16s, %s, %u chunks) to %s at %s, fec %llu%%, %u-byte symbols%s",
		x.pkg.m.name, idhex, mc_fmt_size(x.pkg.l.file_size, sz, sizeof sz), x.pkg.m.nchunks, x.g.text,
		mc_fmt_rate(x.o.rate, rt, sizeof rt), (unsigned long long)x.o.fec, sym, x.gso ? ", UDP GSO" : "");
	{
		struct mc_json j;
		mc_json_begin(&j, "start");
		mc_json_str(&j, "path", x.o.pkg);
		mc_json_str(&j, "name", x.pkg.m.name);
		mc_json_str(&j, "id", idhex);
		mc_json_str(&j, "group", x.g.text);
		mc_json_u64(&j, "session", x.session);
		mc_json_u64(&j, "rate", x.o.rate);
		mc_json_u64(&j, "bytes", x.pkg.l.file_size);
		mc_json_u64(&j, "chunks", x.pkg.m.nchunks);
		mc_json_u64(&j, "symbol_size", sym);
		mc_json_bool(&j, "gso", x.gso);
		mc_json_end(&j);
	}

	uint64_t next_prog = 0, last_passes = 0;
	int was_idle = 0;
	for (;;) {
		uint64_t now = mc_now_ms();
		unsigned nj;
		if (got_signal) {
			reason = MC_END_SIGNAL;
			break;
		}
		housekeeping(&x);
		now = mc_now_ms(); /* after feedback: no receiver may look heard "in the future" */
		if (now >= next_prog) {
			progress(&x, 0);
			next_prog = now + 250;
		}
		if (mc_sender_stats(x.s)->passes != last_passes) {
			const struct mc_sender_stats *ps = mc_sender_stats(x.s);
			struct mc_json j;
			last_passes = ps->passes;
			mc_debug("pass %llu done after %.2fs, %llu bytes sent", (unsigned long long)last_passes,
				 (double)(now - x.start_ms) / 1000.0, (unsigned long long)x.bytes_sent);
			mc_json_begin(&j, "pass");
			mc_json_u64(&j, "pass", last_passes);
			mc_json_u64(&j, "bytes_sent", x.bytes_sent);
			mc_json_u64(&j, "receivers", ps->joined);
			mc_json_u64(&j, "complete", ps->complete);
			mc_json_u64(&j, "nacks", ps->nacks);
			mc_json_dbl(&j, "seconds", (double)(now - x.start_ms) / 1000.0);
			mc_json_end(&j);
		}
		nj = mc_sender_window(x.s, now, x.jobs, MC_INTERLEAVE, &st);
		if (nj == 0 && st == MC_SENDER_OVER) {
			reason = mc_sender_end_reason(x.s);
			break;
		}
		if (nj == 0) {
			if (!was_idle) {
				announce(&x); /* receivers learn at once that nothing is queued */
				x.next_ann = now + ANNOUNCE_MS;
			}
			was_idle = 1;
			uint64_t t0 = mc_now_ns();
			wait_fb(&x, 10000000);
			x.meas_idle_ns += mc_now_ns() - t0;
			continue;
		}
		was_idle = 0;
		if (send_window(&x, nj, sym) < 0) {
			if (got_signal)
				continue;
			if (x.damaged) {
				reason = MC_END_DAMAGED; /* receivers keep what they verified and hear why it ended */
				break;
			}
			goto out;
		}
	}
	end_session(&x, reason);
	progress(&x, 1);
	mc_progress_end();
	{
		const struct mc_sender_stats *s = mc_sender_stats(x.s);
		double secs = (double)(mc_now_ms() - x.start_ms) / 1000.0;
		unsigned incomplete = 0;
		for (unsigned i = 0; i < mc_sender_npeers(x.s); i++)
			incomplete += !mc_sender_peer(x.s, i)->done;
		struct mc_json j;
		/* The outcome (mcast-json(7)); reason stays as why the session ended. Never "complete" beside exit 3. */
		const char *result = reason == MC_END_SIGNAL    ? "interrupted"
				     : reason == MC_END_DAMAGED ? "damaged"
				     : incomplete ? (reason == MC_END_MAX_TIME ? "timeout" : "incomplete")
						  : "complete";
		char done[96], np[32];
		double times = (double)x.bytes_sent / (double)(x.pkg.l.file_size ? x.pkg.l.file_size : 1);
		mc_fmt_done(x.bytes_sent, secs, done, sizeof done);
		mc_fmt_count(s->passes, "pass", "passes", np, sizeof np);
		if (incomplete && reason != MC_END_SIGNAL && reason != MC_END_DAMAGED)
			mc_info("session ended%s: %u of %u complete, %u silent, %u told to leave: they must run mcast-repair; "
				"sent %s (%.2fx the package, %s)", reason == MC_END_MAX_TIME ? " at --max-time" : "",
				s->complete, s->joined, s->gone, s->left, done, times, np);
		else
			mc_info("session over (%s): sent %s (%.2fx the package, %s); receivers: %u joined, %u complete, %u told to leave, %u silent",
				reason == MC_END_NOBODY ? "no receiver joined" : reasons[(unsigned)reason < nreasons ? reason : 0],
				done, times, np, s->joined, s->complete, s->left, s->gone);
		mc_json_summary(&j, result);
		mc_json_str(&j, "path", x.o.pkg);
		mc_json_str(&j, "name", x.pkg.m.name);
		mc_json_str(&j, "id", idhex);
		mc_json_str(&j, "reason", reasons[(unsigned)reason < nreasons ? reason : 0]);
		mc_json_u64(&j, "bytes_sent", x.bytes_sent);
		mc_json_u64(&j, "packets_sent", x.pkts_sent);
		mc_json_u64(&j, "package_bytes", x.pkg.l.file_size);
		mc_json_u64(&j, "symbols", s->symbols);
		mc_json_u64(&j, "repair_symbols", s->repair_symbols);
		mc_json_u64(&j, "passes", s->passes);
		mc_json_u64(&j, "receivers", s->joined);
		mc_json_u64(&j, "complete", s->complete);
		mc_json_u64(&j, "left", s->left);
		mc_json_u64(&j, "silent", s->gone);
		mc_json_u64(&j, "nacks", s->nacks);
		mc_json_u64(&j, "stale_nack_blocks", s->nack_stale);
		mc_json_u64(&j, "feedback_dropped", s->feedback_bad);
		mc_json_u64(&j, "overruns", s->overruns);
		mc_json_u64(&j, "rate_cuts", x.rate.cuts);
		mc_json_u64(&j, "lowest_rate", x.rate.lowest);
		mc_json_dbl(&j, "seconds", secs);
		mc_json_end(&j);
		summed = 1;
		/* 0 when everyone who joined has the package; 3 when some must still run mcast-repair. */
		if (reason == MC_END_SIGNAL)
			rc = MC_EXIT_RUNTIME;
		else if (reason == MC_END_DAMAGED)
			rc = MC_EXIT_INCOMPLETE; /* as mcast-pack verify: damaged, mcast-repair heals it */
		else
			rc = incomplete ? MC_EXIT_INCOMPLETE : MC_EXIT_OK;
	}
out:
	if (!summed) {
		/* A run error (said on standard error): scripts still get their last line. */
		struct mc_json j;
		mc_json_summary(&j, "error");
		mc_json_str(&j, "path", x.o.pkg);
		mc_json_str(&j, "reason", "error");
		mc_json_u64(&j, "bytes_sent", x.bytes_sent);
		mc_json_u64(&j, "packets_sent", x.pkts_sent);
		mc_json_dbl(&j, "seconds", x.start_ms ? (double)(mc_now_ms() - x.start_ms) / 1000.0 : 0.0);
		mc_json_end(&j);
	}
	if (x.tx >= 0)
		close(x.tx);
	if (x.fb >= 0)
		close(x.fb);
	mc_net_rx_free(&x.rx);
	mc_sender_free(x.s);
	mc_fec_free(x.fec);
	for (unsigned j = 0; j < MC_INTERLEAVE; j++) {
		free(x.win[j].block);
		free(x.win[j].repair);
		free(x.win[j].hdr);
	}
	free(x.order);
	mc_chunk_check_free(&x.check);
	mc_pkg_close(&x.pkg);
	mc_fe_auth_report(auth);
	if (mc_log_close_stdout() < 0 && rc == MC_EXIT_OK)
		rc = MC_EXIT_RUNTIME;
	return rc;
}
