/* mcast-send: multicasts one package as a session that receivers may join at any time. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "clock.h"
#include "defaults.h"
#include "exitcode.h"
#include "fe.h"
#include "fec.h"
#include "log.h"
#include "meter.h"
#include "net.h"
#include "opt.h"
#include "pkg.h"
#include "sender.h"
#include "txloop.h"
#include "wire.h"

static const char usage_text[] =
	"usage: mcast-send [-qv] [--json] [-g GROUP] [-p PORT] [-i IFACE] [-t TTL] [-r RATE]\n"
	"                  [--fec PERCENT|auto] [--linger DUR] [--max-time DUR] [--max-passes N]\n"
	"                  [--mtu BYTES] [--peer-timeout DUR] [--session-key FILE] PKG\n"
	"       mcast-send -h | --help | --version\n";

static const struct mc_fe_prog prog = {
	.usage = usage_text,
	.help = "\nMulticasts PKG to every receiver on GROUP:PORT; receivers may join at any time.\n"
	      "  -g, --group GROUP  multicast group, IPv4 or IPv6 (default " MC_DEFAULT_GROUP4 ")\n"
	      "  -p, --port PORT  data port; feedback comes back on PORT+1 (default 7077)\n"
	      "  -i, --interface IFACE  send on this interface\n"
	      "  -t, --ttl TTL    multicast TTL / hop limit (default 1)\n"
	      "  -r, --rate RATE  bits per second, e.g. 800M, 1G (default 500M); lower while receivers overrun\n"
	      "  --fec PERCENT|auto  repair symbols in the first pass, in percent of each block\n"
	      "                    (default auto: twice the loss receivers report, none without)\n"
	      "  --linger DUR      wait this long for new receivers after all completed (default 2s)\n"
	      "  --max-time DUR    end the session after DUR whatever its state\n"
	      "  --max-passes N    passes in which a receiver may ask for repair before it is\n"
	      "                    told to leave and use mcast-repair (default 12, 0 never)\n"
	      "  --mtu BYTES       path MTU; datagrams are sized to fit (default: the route's, at most 1500)\n"
	      "  --peer-timeout DUR  a silent receiver is no longer waited for (default 5s)\n"
	      "  --session-key FILE  authenticate every datagram with this 32-byte key (mcast-pack\n"
	      "                    keygen --session): others' are dropped, receivers without it not counted\n"
	      "  --json            one JSON event per line on stdout\n"
	      "  --syslog          talk to syslog (the journal), not standard error; MCAST_LOG_TIME=1:\n"
	      "                    each line on standard error starts with the time (ISO 8601)\n"
	      "  -q, --quiet       errors and warnings only\n"
	      "  -v, --verbose     more detail\n"
	      "  -h, --help        this help    --version  program version\n",
};

static volatile sig_atomic_t got_signal;

struct opts {
	struct mc_fe_net net;
	const char *pkg;
	uint64_t rate, fec, linger, max_time, max_passes, mtu, peer_timeout;
	int fec_auto; /* --fec auto */
	struct mc_fe_common fe;
	const char *session_key;
};

static void parse(int argc, char **argv, struct opts *o)
{
	enum { O_FEC = MC_FE_OPT_OWN, O_LINGER, O_MAX_PASSES, O_MAX_TIME, O_MTU, O_PEER_TIMEOUT, O_SESSION_KEY };
	static const struct option lopts[] = {
		{"fec", required_argument, NULL, O_FEC},
		{"group", required_argument, NULL, 'g'},
		{"help", no_argument, NULL, 'h'},
		{"interface", required_argument, NULL, 'i'},
		{"json", no_argument, NULL, MC_FE_OPT_JSON},
		{"linger", required_argument, NULL, O_LINGER},
		{"max-passes", required_argument, NULL, O_MAX_PASSES},
		{"max-time", required_argument, NULL, O_MAX_TIME},
		{"mtu", required_argument, NULL, O_MTU},
		{"peer-timeout", required_argument, NULL, O_PEER_TIMEOUT},
		{"port", required_argument, NULL, 'p'},
		{"quiet", no_argument, NULL, 'q'},
		{"rate", required_argument, NULL, 'r'},
		{"session-key", required_argument, NULL, O_SESSION_KEY},
		MC_FE_SYSLOG_OPTION,
		{"ttl", required_argument, NULL, 't'},
		{"verbose", no_argument, NULL, 'v'},
		{"version", no_argument, NULL, MC_FE_OPT_VERSION},
		{NULL, 0, NULL, 0},
	};
	static const char shortopts[] = "g:hi:p:qr:t:v";
	int c;

	mc_fe_prescan(&prog, argc, argv, shortopts, lopts);
	memset(o, 0, sizeof *o);
	mc_fe_net_defaults(&o->net);
	o->rate = MC_DEFAULT_RATE;
	o->linger = MC_DEFAULT_LINGER_MS;
	o->max_passes = MC_DEFAULT_MAX_PASSES;
	o->mtu = 0; /* from the group's route (at most MC_DEFAULT_MTU) unless --mtu says */
	o->peer_timeout = MC_DEFAULT_PEER_TIMEOUT_MS;
	o->fec_auto = 1; /* --fec auto: none on a clean LAN, twice the loss told on a lossy one */
	o->fe.verbosity = 1;
	opterr = 0; /* our own message, with the program name alone */
	while ((c = getopt_long(argc, argv, shortopts, lopts, NULL)) != -1) {
		if (mc_fe_net_option(usage_text, c, optarg, &o->net) || mc_fe_common_option(&prog, c, &o->fe))
			continue;
		switch (c) {
		case 'r':
			if (mc_opt_rate(optarg, 1000, 400000000000ULL, &o->rate) < 0)
				mc_fe_bad_value(usage_text, "-r", optarg, "rate must be bits per second from 1K to 400G, such as 800M or 1G");
			break;
		case O_FEC:
			o->fec_auto = strcmp(optarg, "auto") == 0;
			if (!o->fec_auto && mc_opt_uint(optarg, 0, 100, &o->fec) < 0)
				mc_fe_bad_value(usage_text, "--fec", optarg, "must be a percentage from 0 to 100, or auto");
			break;
		case O_LINGER:
			if (mc_opt_duration(optarg, 0, 86400000, &o->linger) < 0)
				mc_fe_bad_value(usage_text, "--linger", optarg, "must be a duration such as 2s or 500ms");
			break;
		case O_MAX_PASSES:
			if (mc_opt_uint(optarg, 0, 10000, &o->max_passes) < 0)
				mc_fe_bad_value(usage_text, "--max-passes", optarg, "must be a number from 0 to 10000");
			break;
		case O_MAX_TIME:
			o->max_time = mc_fe_duration(usage_text, "--max-time", optarg, 1, 30ULL * 86400000);
			break;
		case O_MTU:
			if (mc_opt_uint(optarg, 576, 65535, &o->mtu) < 0)
				mc_fe_bad_value(usage_text, "--mtu", optarg, "must be a number from 576 to 65535");
			break;
		case O_PEER_TIMEOUT:
			if (mc_opt_duration(optarg, 2000, 86400000, &o->peer_timeout) < 0)
				mc_fe_bad_value(usage_text, "--peer-timeout", optarg, "must be a duration of 2s or more (receivers speak every second)");
			break;
		case O_SESSION_KEY: o->session_key = optarg; break;
		default:
			mc_fe_bad_option(usage_text, argv);
		}
	}
	if (optind != argc - 1)
		mc_fe_usage_error(usage_text, optind == argc ? "missing PKG" : "one PKG only");
	o->pkg = argv[optind];
}

/* What the messages need besides the driver. */
struct run {
	struct opts o;
	struct mc_pkg pkg;
	struct mc_txloop *l;
	const char *group; /* "239.1.2.3:7077" */
};

/*
 * A receiver as the lines name it: id, address and the host name its hellos
 * gave (printable, lib/wire.c), so "silent" names a machine an admin can walk to.
 */
static void peer_names(const struct mc_peer *p, char rid[20], char addr[80], char who[200])
{
	mc_net_addr_str(&p->addr, addr, 80);
	snprintf(rid, 20, "%016llx", (unsigned long long)p->rid);
	snprintf(who, 200, "%s at %s%s%s%s", rid, addr, p->host[0] ? " (host " : "", p->host, p->host[0] ? ")" : "");
}

/* Why a receiver that joined does not have the package, for the end. */
static const char *peer_state(const struct mc_peer *p)
{
	return p->gone ? "silent" : p->told_leave ? "told to leave" : p->left ? "left" : "incomplete";
}

static void peer_event(const struct run *x, const struct mc_sender *s, unsigned pi, unsigned kind)
{
	static const char *const names[] = {"", "joined", "done", "bye", "leave", "gone"};
	const struct mc_peer *p = mc_sender_peer(s, pi);
	char addr[80], rid[20], who[200];
	struct mc_json j;

	peer_names(p, rid, addr, who);
	if (kind == MC_SEV_LEAVE)
		mc_info("receiver %s: still incomplete after %llu passes, told to leave (mcast-repair)", who,
			(unsigned long long)x->o.max_passes);
	else if (kind == MC_SEV_GONE)
		mc_info("receiver %s: silent, no longer waited for", who);
	else
		mc_debug("receiver %s: %s", who, names[kind]);
	mc_json_begin(&j, names[kind]);
	mc_json_str(&j, "receiver", rid);
	mc_json_str(&j, "address", addr);
	if (p->host[0])
		mc_json_str(&j, "host", p->host);
	if (p->total) { /* from its hellos: a receiver first heard by a NACK or DONE has said nothing yet */
		mc_json_u64(&j, "have", p->have);
		mc_json_u64(&j, "total", p->total);
	}
	mc_json_end(&j);
}

static void progress(const struct mc_txloop *l, int force)
{
	static struct mc_meter meter; /* the rate of the last seconds, not the session's average */
	const struct mc_sender_stats *st = mc_sender_stats(mc_txloop_sender(l));
	const struct mc_txloop_info *in = mc_txloop_info(l);
	char state[96];

	/* Every receiver that joined is done and nothing is asked: the sender only lingers for late joiners. */
	if (st->joined > 0 && st->active == 0 && st->complete == st->joined)
		snprintf(state, sizeof state, "lingering, receivers %u joined, %u done", st->joined, st->complete);
	else
		snprintf(state, sizeof state, "pass %llu, receivers %u joined, %u done, %u active",
			 (unsigned long long)(st->passes + 1), st->joined, st->complete, st->active);
	mc_meter_show(&meter, force, "sent", in->bytes_sent, 0, mc_now_ms(), state);
}

static void pass_done(const struct mc_txloop *l)
{
	const struct mc_sender_stats *ps = mc_sender_stats(mc_txloop_sender(l));
	const struct mc_txloop_info *in = mc_txloop_info(l);
	double secs = (double)(mc_now_ms() - in->start_ms) / 1000.0;
	struct mc_json j;

	mc_debug("pass %llu done after %.2fs, %llu bytes sent", (unsigned long long)ps->passes, secs,
		 (unsigned long long)in->bytes_sent);
	mc_json_begin(&j, "pass");
	mc_json_u64(&j, "pass", ps->passes);
	mc_json_u64(&j, "bytes_sent", in->bytes_sent);
	mc_json_u64(&j, "receivers", ps->joined);
	mc_json_u64(&j, "complete", ps->complete);
	mc_json_u64(&j, "nacks", ps->nacks);
	mc_json_dbl(&j, "seconds", secs);
	mc_json_end(&j);
}

/* The driver's reports, said as the program says them. */
static void on_report(void *ctx, struct mc_txloop *l, const struct mc_txloop_ev *ev)
{
	const struct run *x = ctx;
	const struct mc_txloop_info *in = mc_txloop_info(l);
	char rt[32];

	switch (ev->kind) {
	case MC_TXL_EV_PEER:
		peer_event(x, mc_txloop_sender(l), ev->arg, ev->arg2);
		break;
	case MC_TXL_EV_PROGRESS:
		progress(l, 0);
		break;
	case MC_TXL_EV_PASS:
		pass_done(l);
		break;
	case MC_TXL_EV_RATE:
		mc_debug("rate %s (receivers reported %llu overruns)", mc_fmt_rate(in->rate.cur, rt, sizeof rt),
			 (unsigned long long)mc_sender_stats(mc_txloop_sender(l))->overruns);
		break;
	case MC_TXL_EV_NOGSO:
		mc_debug("%s: UDP GSO refused (%s), sending datagram by datagram", x->group, mc_strerror(ev->err));
		break;
	case MC_TXL_EV_DAMAGED:
		mc_err("%s", ev->msg);
		break;
	}
}

static void started(const struct run *x, const struct mc_txloop_cfg *c)
{
	const struct mc_txloop_info *in = mc_txloop_info(x->l);
	char idhex[40], sz[32], rt[32], sess[12];
	struct mc_json j;

	mc_id_hex(x->pkg.m.id, idhex);
	/* The session id in one form for people and scripts: 8 hex digits, as mcast-recv says it. */
	snprintf(sess, sizeof sess, "%08x", (unsigned)in->session);
	char fec[32] = "auto";
	if (!x->o.fec_auto)
		snprintf(fec, sizeof fec, "%llu%%", (unsigned long long)x->o.fec);
	mc_info("sending %s (id %.16s, %s, %u chunks) to %s at %s, fec %s, %u-byte symbols%s, session %s",
		x->pkg.m.name, idhex, mc_fmt_size(x->pkg.l.file_size, sz, sizeof sz), x->pkg.m.nchunks, c->g.text,
		mc_fmt_rate(x->o.rate, rt, sizeof rt), fec, in->sym, in->gso ? ", UDP GSO" : "", sess);
	mc_json_begin(&j, "start");
	mc_json_str(&j, "path", x->o.pkg);
	mc_json_str(&j, "name", x->pkg.m.name);
	mc_json_str(&j, "id", idhex);
	mc_json_str(&j, "group", c->g.text);
	mc_json_str(&j, "session", sess);
	mc_json_u64(&j, "rate", x->o.rate);
	mc_json_u64(&j, "bytes", x->pkg.l.file_size);
	mc_json_u64(&j, "chunks", x->pkg.m.nchunks);
	mc_json_u64(&j, "symbol_size", in->sym);
	mc_json_bool(&j, "gso", in->gso);
	mc_json_end(&j);
}

#define MISSING_SHOWN 10 /* receivers without the package named one line each at the end */

/* The session is over: what was sent, who has the package; returns the exit status. */
static int finished(const struct run *x, int reason)
{
	static const char *const reasons[] = {"complete", "max-time", "signal", "nobody", "damaged"};
	const unsigned nreasons = sizeof reasons / sizeof reasons[0];
	const struct mc_sender *sd = mc_txloop_sender(x->l);
	const struct mc_sender_stats *s = mc_sender_stats(sd);
	const struct mc_txloop_info *in = mc_txloop_info(x->l);
	double secs = (double)(mc_now_ms() - in->start_ms) / 1000.0;
	const char *why = reasons[(unsigned)reason < nreasons ? reason : 0];
	unsigned incomplete = 0;
	struct mc_json j;

	for (unsigned i = 0; i < mc_sender_npeers(sd); i++)
		incomplete += !mc_sender_peer(sd, i)->done;
	/* The outcome (mcast-json(7)); reason stays as why the session ended. Never "complete" beside exit 3. */
	const char *result = reason == MC_END_SIGNAL    ? "interrupted"
			     : reason == MC_END_DAMAGED ? "damaged"
			     : incomplete ? (reason == MC_END_MAX_TIME ? "timeout" : "incomplete")
					  : "complete";
	char done[96], np[32], idhex[40];
	double times = (double)in->bytes_sent / (double)(x->pkg.l.file_size ? x->pkg.l.file_size : 1);
	mc_fmt_done(in->bytes_sent, secs, done, sizeof done);
	mc_fmt_count(s->passes, "pass", "passes", np, sizeof np);
	if (incomplete && reason != MC_END_SIGNAL && reason != MC_END_DAMAGED)
		mc_info("session ended%s: %u of %u complete, %u silent, %u told to leave: they must run mcast-repair; "
			"sent %s (%.2fx the package, %s)", reason == MC_END_MAX_TIME ? " at --max-time" : "",
			s->complete, s->joined, s->gone, s->left, done, times, np);
	else
		mc_info("session over (%s): sent %s (%.2fx the package, %s); receivers: %u joined, %u complete, %u told to leave, %u silent",
			reason == MC_END_NOBODY ? "no receiver joined" : why, done, times, np, s->joined, s->complete, s->left,
			s->gone);
	/* Which machines must still run mcast-repair: a line each (the first few), and in the summary. */
	char list[4096];
	size_t ll = 0, shown = 0;
	list[ll++] = '[';
	for (unsigned i = 0; i < mc_sender_npeers(sd) && reason != MC_END_DAMAGED; i++) {
		const struct mc_peer *p = mc_sender_peer(sd, i);
		char rid[20], addr[80], who[200];
		if (p->done)
			continue;
		peer_names(p, rid, addr, who);
		if (shown < MISSING_SHOWN)
			mc_info("receiver %s: %s, %u of %u chunks", who, peer_state(p), p->have, p->total);
		else if (shown == MISSING_SHOWN)
			mc_info("and %u more receivers without the package (--json lists them)", incomplete - (unsigned)shown);
		shown++;
		/* Each entry whole or not at all: the array stays valid JSON whatever the count. */
		char e[512];
		size_t el = 0;
		e[el++] = ll > 1 ? ',' : '{';
		if (ll > 1)
			e[el++] = '{';
		el += (size_t)snprintf(e + el, sizeof e - el, "\"receiver\":\"%s\",\"address\":", rid);
		mc_json_escape(e, sizeof e, &el, addr);
		if (p->host[0]) {
			el += (size_t)snprintf(e + el, sizeof e - el, ",\"host\":");
			mc_json_escape(e, sizeof e, &el, p->host);
		}
		el += (size_t)snprintf(e + el, sizeof e - el, ",\"state\":\"%s\",\"have\":%u,\"total\":%u}",
				       peer_state(p), p->have, p->total);
		if (el < sizeof e && ll + el + 2 < sizeof list) {
			memcpy(list + ll, e, el);
			ll += el;
		}
	}
	list[ll++] = ']';
	list[ll] = '\0';
	mc_fe_summary(&j, result);
	mc_json_str(&j, "path", x->o.pkg);
	mc_json_str(&j, "name", x->pkg.m.name);
	mc_json_str(&j, "id", mc_id_hex(x->pkg.m.id, idhex));
	mc_json_str(&j, "reason", why);
	mc_json_u64(&j, "bytes_sent", in->bytes_sent);
	mc_json_u64(&j, "packets_sent", in->pkts_sent);
	mc_json_u64(&j, "package_bytes", x->pkg.l.file_size);
	mc_json_u64(&j, "symbols", s->symbols);
	mc_json_u64(&j, "repair_symbols", s->repair_symbols);
	mc_json_u64(&j, "passes", s->passes);
	mc_json_u64(&j, "receivers", s->joined);
	mc_json_u64(&j, "complete", s->complete);
	mc_json_u64(&j, "left", s->left);
	mc_json_u64(&j, "silent", s->gone);
	mc_json_raw(&j, "incomplete_receivers", list);
	mc_json_u64(&j, "nacks", s->nacks);
	mc_json_u64(&j, "stale_nack_blocks", s->nack_stale);
	mc_json_u64(&j, "feedback_dropped", s->feedback_bad);
	mc_json_u64(&j, "overruns", s->overruns);
	mc_json_u64(&j, "rate_cuts", in->rate.cuts);
	mc_json_u64(&j, "lowest_rate", in->rate.lowest);
	mc_fe_auth_json(&j);
	mc_json_dbl(&j, "seconds", secs);
	mc_json_end(&j);
	/* 0 when everyone who joined has the package; 3 when some must still run mcast-repair. */
	if (reason == MC_END_SIGNAL)
		return MC_EXIT_RUNTIME;
	if (reason == MC_END_DAMAGED)
		return MC_EXIT_INCOMPLETE; /* as mcast-pack verify: damaged, mcast-repair heals it */
	return incomplete ? MC_EXIT_INCOMPLETE : MC_EXIT_OK;
}

int main(int argc, char **argv)
{
	struct run x;
	struct mc_txloop_cfg c;
	char err[512];
	int rc = MC_EXIT_RUNTIME, reason = -1, e;
	struct mc_auth *auth = NULL;

	memset(&x, 0, sizeof x);
	memset(&c, 0, sizeof c);
	x.pkg.fd = -1;
	parse(argc, argv, &x.o);
	mc_fe_start(&prog, argv[0], &x.o.fe);
	mc_fe_summary_about(NULL, x.o.pkg);
	mc_fe_net_group(&x.o.net, (unsigned)x.o.net.port, &c.g);
	mc_net_group_port(&c.g, (uint16_t)(x.o.net.port + 1), &c.gfb);
	if (x.o.mtu == 0) {
		/* A 1400-byte link (a VPN, some clouds) must not need --mtu: size datagrams from the route's MTU. */
		unsigned rm = mc_net_route_mtu(&c.g);
		x.o.mtu = rm >= 576 && rm < MC_DEFAULT_MTU ? rm : MC_DEFAULT_MTU;
	}
	if (x.o.session_key)
		auth = mc_fe_session_key(x.o.session_key);
	if ((e = mc_pkg_open(x.o.pkg, &x.pkg, err, sizeof err)) < 0) {
		/* A package cut short or with a damaged head is damaged, as a bad chunk is (mcast-pack verify says 3 too). */
		if (e == -EBADMSG)
			rc = MC_EXIT_INCOMPLETE;
		mc_err("%s%s", err, rc == MC_EXIT_INCOMPLETE ? " (the package is damaged: mcast-repair heals it)" : "");
		goto out;
	}
	x.group = c.g.text;
	c.ttl = (int)x.o.net.ttl;
	c.pkg = &x.pkg;
	c.rate = x.o.rate;
	c.mtu = (unsigned)x.o.mtu;
	/* With a session key every datagram carries MC_AUTH_LEN more bytes: the symbols make room for them. */
	c.sym = mc_wire_sym_for_mtu((unsigned)x.o.mtu - (x.o.session_key ? MC_AUTH_LEN : 0), c.g.family == AF_INET6);
	c.core.fec_pct = (unsigned)x.o.fec;
	c.core.fec_auto = x.o.fec_auto;
	c.core.linger_ms = x.o.linger;
	c.core.max_time_ms = x.o.max_time;
	c.core.peer_timeout_ms = x.o.peer_timeout;
	c.core.max_passes = (unsigned)x.o.max_passes;
	c.stop = &got_signal;
	c.report = on_report;
	c.ctx = &x;
	if ((x.l = mc_txloop_new(&c, err, sizeof err)) == NULL || mc_txloop_open(x.l, err, sizeof err) < 0) {
		mc_err("%s", err);
		goto out;
	}
	mc_fe_signals(&got_signal);
	started(&x, &c);
	if ((reason = mc_txloop_run(x.l, err, sizeof err)) < 0) {
		mc_err("%s", err);
		goto out;
	}
	mc_txloop_end(x.l, reason);
	progress(x.l, 1);
	mc_progress_end();
	rc = finished(&x, reason);
out:
	if (reason < 0) {
		/* A run error (said on standard error): scripts still get their last line. */
		const struct mc_txloop_info *in = x.l ? mc_txloop_info(x.l) : NULL;
		struct mc_json j;
		mc_fe_summary(&j, "error");
		mc_json_str(&j, "path", x.o.pkg);
		mc_json_str(&j, "reason", "error");
		mc_json_u64(&j, "bytes_sent", in ? in->bytes_sent : 0);
		mc_json_u64(&j, "packets_sent", in ? in->pkts_sent : 0);
		mc_fe_auth_json(&j);
		mc_json_dbl(&j, "seconds", in ? (double)(mc_now_ms() - in->start_ms) / 1000.0 : 0.0);
		mc_json_end(&j);
	}
	mc_txloop_free(x.l);
	mc_pkg_close(&x.pkg);
	mc_fe_auth_report(auth);
	return mc_fe_finish(rc);
}
