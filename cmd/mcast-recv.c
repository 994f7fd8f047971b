/* mcast-recv: joins a session, writes the package, keeps resumable state, exits 3 when something is missing. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "clock.h"
#include "crypto.h"
#include "defaults.h"
#include "exitcode.h"
#include "fe.h"
#include "log.h"
#include "meter.h"
#include "net.h"
#include "opt.h"
#include "pkg.h"
#include "receiver.h"
#include "resume.h"
#include "rxloop.h"
#include "sink.h"
#include "sink_target.h"
#include "state.h"
#include "target.h"
#include "wire.h"

static const char usage_text[] =
	"usage: mcast-recv [-qv] [--json] [-g GROUP] [-p PORT] [-i IFACE] [-t TTL] -o PKG\n"
	"                  [--package NAME] [--expect ID] [--timeout DUR] [--mem SIZE]\n"
	"                  [--trust KEY.pub|DIR]... [--session-key FILE]\n"
	"       mcast-recv [-qv] [--json] [-g GROUP] [-p PORT] [-i IFACE] [-t TTL] --to TARGET\n"
	"                  [--state FILE] [--zeroed] [--package NAME] [--expect ID] [--timeout DUR] [--mem SIZE]\n"
	"                  [--trust KEY.pub|DIR]... [--session-key FILE] [--decrypt KEY]\n"
	"       mcast-recv -h | --help | --version\n";

static const struct mc_fe_prog prog = {
	.usage = usage_text,
	.help = "\nJoins the session on GROUP:PORT (at any moment) and writes PKG.part and PKG.state,\n"
	      "renamed to PKG once every chunk is verified; or, with --to, writes the image of a\n"
	      "seekable image package (format 2, mcast-package(5)) onto TARGET in place, keeping what\n"
	      "is durably there in a state file. Run the same command again to resume.\n"
	      "  -g, --group GROUP  multicast group, IPv4 or IPv6 (default " MC_DEFAULT_GROUP4 ")\n"
	      "  -p, --port PORT  data port; feedback goes to PORT+1 (default 7077)\n"
	      "  -i, --interface IFACE  join on this interface\n"
	      "  -t, --ttl TTL    TTL / hop limit of feedback (default 1)\n"
	      "  -o, --output PKG  the package to write (a file: not -, not a device)\n"
	      "  --to TARGET       write the image onto TARGET, a block device or regular file\n"
	      "  --state FILE      state of --to (default TARGET.state beside a file,\n"
	      "                    " MC_TARGET_STATE_DIR "/NAME.state for /dev/NAME)\n"
	      "  --zeroed          TARGET already reads as zeros: holes are not written\n"
	      "  --package NAME    join only a session of this package name\n"
	      "  --expect ID       join only this package id (32 hex digits, or a prefix of 8 or more)\n"
	      "  --timeout DUR     give up (exit 3) after DUR of silence: no session, or a quiet sender\n"
	      "  --trust KEY|DIR   take only a session whose package is signed by this public key\n"
	      "                    (or any DIR/*.pub); repeatable. Nothing is written before that.\n"
	      "  --session-key FILE  authenticate every datagram with this 32-byte key; others' are dropped\n"
	      "  --decrypt KEY     (--to) the key of an encrypted package: a 32-byte key file or a box secret\n"
	      "                    key; one that does not open it is refused before TARGET is opened\n"
	      "  --mem SIZE        memory for chunks being assembled (default 1/8 s of the\n"
	      "                    sender's rate, 64M to 256M; with --to 32M)\n"
	      "  --json            one JSON event per line on stdout\n"
	      "  --syslog          talk to syslog (the journal), not standard error; MCAST_LOG_TIME=1:\n"
	      "                    each line on standard error starts with the time (ISO 8601)\n"
	      "  -q, --quiet       errors and warnings only\n"
	      "  -v, --verbose     more detail\n"
	      "  -h, --help        this help    --version  program version\n"
	      "Exit: 0 complete and verified, 1 error, 2 usage, 3 incomplete (state kept: run again or mcast-repair).\n",
};

static volatile sig_atomic_t got_signal;

struct opts {
	struct mc_fe_net net;
	const char *out, *package, *expect, *state;
	uint64_t timeout, mem;
	struct mc_fe_common fe;
	int to, zeroed;
	const char **trust; /* --trust KEY.pub|DIR, as given */
	unsigned ntrust;
	const char *session_key;
	const char *decrypt;  /* --decrypt KEY (--to) */
};

/* The key of --decrypt, read before the target is opened. */
static struct mc_content_key dkey;

/* --to: the default memory for chunk slots (the target holds what they spill). */
#define TO_MEM (32u << 20)

/* The keys of --trust (empty: any package is taken). */
static struct mc_trust trust;

static void parse(int argc, char **argv, struct opts *o)
{
	enum { O_EXPECT = MC_FE_OPT_OWN, O_MEM, O_PACKAGE, O_SESSION_KEY, O_STATE, O_TIMEOUT, O_TO, O_TRUST, O_ZEROED, O_DECRYPT };
	static const struct option lopts[] = {
		{"decrypt", required_argument, NULL, O_DECRYPT},
		{"expect", required_argument, NULL, O_EXPECT},
		{"group", required_argument, NULL, 'g'},
		{"help", no_argument, NULL, 'h'},
		{"interface", required_argument, NULL, 'i'},
		{"json", no_argument, NULL, MC_FE_OPT_JSON},
		{"mem", required_argument, NULL, O_MEM},
		{"output", required_argument, NULL, 'o'},
		{"package", required_argument, NULL, O_PACKAGE},
		{"port", required_argument, NULL, 'p'},
		{"session-key", required_argument, NULL, O_SESSION_KEY},
		{"quiet", no_argument, NULL, 'q'},
		{"state", required_argument, NULL, O_STATE},
		MC_FE_SYSLOG_OPTION,
		{"timeout", required_argument, NULL, O_TIMEOUT},
		{"to", required_argument, NULL, O_TO},
		{"trust", required_argument, NULL, O_TRUST},
		{"ttl", required_argument, NULL, 't'},
		{"verbose", no_argument, NULL, 'v'},
		{"version", no_argument, NULL, MC_FE_OPT_VERSION},
		{"zeroed", no_argument, NULL, O_ZEROED},
		{NULL, 0, NULL, 0},
	};
	static const char shortopts[] = "g:hi:o:p:qt:v";
	int c;

	mc_fe_prescan(&prog, argc, argv, shortopts, lopts);
	memset(o, 0, sizeof *o);
	mc_fe_net_defaults(&o->net);
	o->mem = 0; /* from the sender's rate */
	o->fe.verbosity = 1;
	opterr = 0; /* our own message, with the program name alone */
	while ((c = getopt_long(argc, argv, shortopts, lopts, NULL)) != -1) {
		if (mc_fe_net_option(usage_text, c, optarg, &o->net) || mc_fe_common_option(&prog, c, &o->fe))
			continue;
		switch (c) {
		case 'o':
			if (o->to)
				mc_fe_usage_error(usage_text, "-o and --to: one or the other");
			o->out = optarg;
			break;
		case O_DECRYPT:
			if (*optarg == '\0')
				mc_fe_bad_value(usage_text, "--decrypt", optarg, "must name a key file");
			o->decrypt = optarg;
			break;
		case O_EXPECT: o->expect = optarg; break;
		case O_MEM:
			if (mc_opt_size(optarg, 4u << 20, 1ULL << 40, &o->mem) < 0)
				mc_fe_bad_value(usage_text, "--mem", optarg, "must be a size from 4M, such as 64M");
			break;
		case O_PACKAGE:
			if (*optarg == '\0' || strlen(optarg) > MC_NAME_MAX)
				mc_fe_bad_value(usage_text, "--package", optarg, "must be a name of 1 to %d bytes", MC_NAME_MAX);
			o->package = optarg;
			break;
		case O_STATE:
			if (*optarg == '\0')
				mc_fe_bad_value(usage_text, "--state", optarg, "must name a file");
			o->state = optarg;
			break;
		case O_TIMEOUT:
			o->timeout = mc_fe_duration(usage_text, "--timeout", optarg, 1, 366ULL * 86400000);
			break;
		case O_SESSION_KEY: o->session_key = optarg; break;
		case O_TO:
			if (o->out)
				mc_fe_usage_error(usage_text, "-o and --to: one or the other");
			if (*optarg == '\0')
				mc_fe_bad_value(usage_text, "--to", optarg, "must name a block device or regular file");
			o->out = optarg;
			o->to = 1;
			break;
		case O_TRUST: {
			const char **t = realloc(o->trust, (o->ntrust + 1) * sizeof *t);
			if (t == NULL) {
				mc_log_init("mcast-recv", 1, 0); /* not set up yet while options are read */
				mc_err("--trust: %s", mc_strerror(-ENOMEM)); /* not the user's doing: a runtime error */
				exit(MC_EXIT_RUNTIME);
			}
			o->trust = t;
			o->trust[o->ntrust++] = optarg;
			break;
		}
		case O_ZEROED: o->zeroed = 1; break;
		default:
			mc_fe_bad_option(usage_text, argv);
		}
	}
	if (optind != argc)
		mc_fe_usage_error(usage_text, "unexpected argument '%s'", argv[optind]);
	if (o->out == NULL || *o->out == '\0')
		mc_fe_usage_error(usage_text, "-o PKG or --to TARGET is required");
	if (!o->to && (o->state || o->zeroed || o->decrypt))
		mc_fe_usage_error(usage_text, "%s: only with --to TARGET (-o keeps an encrypted package encrypted)",
				  o->state ? "--state" : o->zeroed ? "--zeroed" : "--decrypt");
	if (!o->to && mc_fe_output_refusal(o->out))
		mc_fe_bad_value(usage_text, "-o", o->out, "%s", mc_fe_output_refusal(o->out));
}

/* A complete PKG from an earlier run: nothing to do when it is intact and the one asked for. */
static int already_complete(const struct opts *o, uint32_t *nchunks)
{
	struct mc_pkg p;
	uint8_t want[MC_ID_LEN], *buf;
	char err[512];
	int ok = 1, nhex = 0;

	if (access(o->out, F_OK) != 0 || mc_pkg_open(o->out, &p, err, sizeof err) < 0)
		return 0;
	if (o->expect && ((nhex = mc_id_parse(o->expect, want)) < 0 || !mc_id_match(p.m.id, want, nhex)))
		ok = 0;
	if (o->package && strcmp(o->package, p.m.name) != 0)
		ok = 0;
	buf = ok ? malloc(p.m.chunk_size) : NULL;
	for (uint32_t i = 0; ok && buf && i < p.m.nchunks; i++)
		if (mc_pkg_check_chunk(&p, i, buf) != 1)
			ok = 0;
	*nchunks = p.m.nchunks;
	free(buf);
	mc_pkg_close(&p);
	return ok;
}


/* What the messages need besides the driver. */
struct run {
	struct opts o;
	char kept[PATH_MAX + 64];   /* what an incomplete run keeps: "PKG.part and its state", "the state FILE" */
	char state[PATH_MAX];       /* --to: the state file */
	struct mc_sink *sink;
	struct mc_rxloop *l;
	uint8_t expect[MC_ID_LEN]; /* --expect, parsed */
	int expect_nhex;
	uint64_t start, last_prog_json;
	uint32_t last_prog_have;
};

static void summary(const struct run *x, const char *result)
{
	static const struct mc_recv_stats none;
	static const struct mc_rxloop_info noinfo;
	struct mc_receiver *r = x->l ? mc_rxloop_receiver(x->l) : NULL;
	const struct mc_recv_stats *s = r ? mc_recv_stats(r) : &none;
	const struct mc_rxloop_info *in = x->l ? mc_rxloop_info(x->l) : &noinfo;
	uint32_t nhave = 0, nchunks = 0;
	struct mc_json j;

	if (r)
		mc_recv_have(r, &nhave, &nchunks);
	mc_fe_summary(&j, result);
	mc_json_str(&j, "path", x->o.out);
	if (x->o.to)
		mc_json_str(&j, "state", x->state);
	mc_json_u64(&j, "chunks", nchunks);
	mc_json_u64(&j, "verified", nhave);
	mc_json_u64(&j, "partial", in->partial);
	mc_json_u64(&j, "packets", s->packets);
	mc_json_u64(&j, "data_packets", s->data);
	mc_json_u64(&j, "duplicates", s->dup);
	mc_json_u64(&j, "dropped", s->bad + s->other);
	mc_json_u64(&j, "decoded_blocks", s->decoded_blocks);
	mc_json_u64(&j, "bad_chunks", s->bad_chunks);
	mc_json_u64(&j, "nacks", s->nacks_sent);
	mc_json_u64(&j, "nacks_suppressed", s->suppressed);
	mc_json_u64(&j, "feedback_failed", in->fb_failed);
	mc_json_u64(&j, "overruns", in->overruns);
	mc_json_u64(&j, "spills", s->spills);
	mc_fe_auth_json(&j);
	mc_json_dbl(&j, "seconds", (double)(mc_now_ms() - (in->start_ms ? in->start_ms : x->start)) / 1000.0);
	mc_json_end(&j);
}

static void on_other(const struct run *x, struct mc_receiver *r, uint32_t why)
{
	const struct mc_announce *o = mc_recv_other(r);
	const char *g = mc_rxloop_group(x->l);
	char oid[40], pid[40];

	mc_id_hex(o->id, oid);
	if (why == MC_OTHER_UNTRUSTED)
		mc_warn("not taking the session of %s (id %.16s) on %s: refused: %s; waiting for another",
			o->name, oid, g, mc_recv_untrusted(r));
	else if (why == MC_OTHER_PART && x->o.to)
		mc_warn("not taking the session of %s (id %.16s) on %s: the state %s is of package %.16s; "
			"remove it (or use another --state) to receive this one",
			o->name, oid, g, x->state, mc_id_hex(mc_recv_pinned(r), pid));
	else if (why == MC_OTHER_PART)
		mc_warn("not taking the session of %s (id %.16s) on %s: %s.part holds package %.16s; "
			"remove it (or use another -o) to receive this one",
			o->name, oid, g, x->o.out, mc_id_hex(mc_recv_pinned(r), pid));
	else
		mc_info("not taking the session of %s (id %.16s) on %s: not %s %s", o->name, oid, g,
			why == MC_OTHER_EXPECT ? "--expect" : "--package",
			why == MC_OTHER_EXPECT ? x->o.expect : x->o.package);
}

static void on_progress(struct run *x, struct mc_rxloop *l, uint64_t now)
{
	static struct mc_meter meter;
	struct mc_receiver *r = mc_rxloop_receiver(l);
	uint32_t nh = 0, nc = 0;
	struct mc_json j;

	if (mc_recv_have(r, &nh, &nc) == NULL) {
		mc_progress(0, "%s: waiting for a session on %s (%llu s)", x->o.out, mc_rxloop_group(l),
			    (unsigned long long)((now - mc_rxloop_info(l)->start_ms) / 1000));
		return;
	}
	const struct mc_manifest *pm = mc_recv_manifest(r);
	uint64_t tot = pm ? pm->payload_size : 0;
	char rs[64];
	snprintf(rs, sizeof rs, "receiving (%u of %u chunks)", nh, nc);
	/* Bytes that came (symbols received; verified chunks when more), never past the total. */
	uint64_t vb = !nc ? 0 : nh == nc ? tot : tot / nc * nh, rb = mc_recv_stats(r)->payload_bytes;
	rb = rb < tot ? rb : tot;
	mc_meter_show(&meter, 0, x->o.out, vb > rb ? vb : rb, tot, now, rs);
	/* A progress event when the count moved (at most four a second), else once a second. */
	if (now - x->last_prog_json >= 1000 || (nh != x->last_prog_have && now - x->last_prog_json >= 250)) {
		x->last_prog_have = nh;
		mc_json_begin(&j, "progress");
		mc_json_u64(&j, "verified", nh);
		mc_json_u64(&j, "chunks", nc);
		mc_json_u64(&j, "packets", mc_recv_stats(r)->data);
		mc_json_end(&j);
		x->last_prog_json = now;
	}
}

/* The driver's reports, said as the program says them. */
static void on_report(void *ctx, struct mc_rxloop *l, const struct mc_rxloop_ev *ev)
{
	struct run *x = ctx;
	struct mc_receiver *r = mc_rxloop_receiver(l);
	const struct mc_rxloop_info *in = mc_rxloop_info(l);
	const struct mc_announce *a = mc_recv_announce(r);
	const struct mc_manifest *m = mc_recv_manifest(r);
	char addr[80], sz[96], idhex[40], sess[12];
	struct mc_json j;

	switch (ev->kind) {
	case MC_REV_SESSION:
		if (a == NULL) /* taken and refused (--trust) within one batch: MC_REV_OTHER tells */
			break;
		mc_net_addr_str(&in->sender, addr, sizeof addr);
		mc_info("joined session %08x of %s (id %.16s, %s) from %s", ev->arg, a->name,
			mc_id_hex(a->id, idhex), mc_fmt_size(a->payload_size, sz, sizeof sz), addr);
		mc_json_begin(&j, "joined");
		snprintf(sess, sizeof sess, "%08x", (unsigned)ev->arg); /* as people read it (mcast-json(7)) */
		mc_json_str(&j, "session", sess);
		mc_json_str(&j, "name", a->name);
		mc_json_str(&j, "id", idhex);
		mc_json_str(&j, "sender", addr);
		mc_json_u64(&j, "chunks", a->nchunks);
		mc_json_end(&j);
		break;
	case MC_REV_MANIFEST:
		mc_debug("manifest complete: %u chunks of %u bytes", m->nchunks, m->chunk_size);
		break;
	case MC_REV_BADCHUNK:
		mc_warn("chunk %u failed verification; asking for it again", ev->arg);
		break;
	case MC_REV_WELCOME:
		mc_debug("counted by the sender");
		break;
	case MC_REV_OTHER:
		on_other(x, r, ev->arg);
		break;
	case MC_REV_COMPLETE: {
		char nc[32];
		mc_progress_end();
		mc_info("%s: complete and verified: %s (%s)", x->o.out,
			mc_fmt_done(m->payload_size, (double)(ev->now - in->start_ms) / 1000.0, sz, sizeof sz),
			mc_fmt_count(m->nchunks, "chunk", "chunks", nc, sizeof nc));
		mc_json_begin(&j, "done");
		mc_json_str(&j, "path", x->o.out);
		mc_json_str(&j, "id", mc_id_hex(m->id, idhex));
		mc_json_u64(&j, "chunks", m->nchunks);
		mc_json_end(&j);
		break;
	}
	case MC_RXL_EV_OVERRUN:
		mc_debug("the kernel dropped %u datagrams for want of socket buffer (%u so far, %.3f s in)",
			 ev->arg, in->overruns, (double)(ev->now - in->start_ms) / 1000.0);
		break;
	case MC_RXL_EV_FEEDBACK:
		mc_warn("%s: cannot send feedback: %s (the sender cannot count or repair this receiver)",
			mc_rxloop_group(l), mc_strerror(ev->err));
		break;
	case MC_RXL_EV_PROGRESS:
		on_progress(x, l, ev->now);
		break;
	case MC_RXL_EV_PARTS_LOST:
		mc_warn("%s%s: %s; chunks not yet complete will be received again", x->o.out, x->o.to ? "" : ".part",
			ev->msg);
		break;
	}
}

/* The sender ended the session, or told us to leave: what is kept, and why. */
static void ended(const struct run *x)
{
	struct mc_recv_event ev = mc_rxloop_end(x->l);
	const struct mc_rxloop_info *in = mc_rxloop_info(x->l);
	uint32_t nh = 0, nc = 0;
	const char *why = ev.kind == MC_REV_LEAVE ? "told to leave by the sender (too slow or too lossy)"
			  : ev.arg == MC_END_DAMAGED ? "the session ended (the sender's package is damaged)"
			  : ev.arg == MC_END_MAX_TIME ? "the session ended (the sender's --max-time)"
			  : "the session ended";

	mc_recv_have(mc_rxloop_receiver(x->l), &nh, &nc);
	if (mc_recv_manifest(mc_rxloop_receiver(x->l)) && in->partial)
		mc_err("%s: %s with %u of %u chunks and parts of %u more; %s are kept "
		       "(run mcast-repair or again)", x->o.out, why, nh, nc, in->partial, x->kept);
	else if (mc_recv_manifest(mc_rxloop_receiver(x->l)))
		mc_err("%s: %s with %u of %u chunks; %s are kept (run mcast-repair or again)",
		       x->o.out, why, nh, nc, x->kept);
	else
		mc_err("%s: %s before the manifest arrived; nothing kept (run mcast-repair or again)", x->o.out, why);
	summary(x, ev.kind == MC_REV_END ? "ended" : "left");
}

/* Says the outcome of a run and picks the exit status. */
static int outcome(struct run *x, int res, const char *err, int resumed)
{
	char serr[512];

	switch (res) {
	case MC_RXL_COMPLETE:
		summary(x, "complete");
		return MC_EXIT_OK;
	case MC_RXL_INTERRUPTED:
		mc_rxloop_save(x->l, serr, sizeof serr);
		mc_info("interrupted; %s are kept, run again to resume", x->kept);
		summary(x, "interrupted");
		return MC_EXIT_INCOMPLETE;
	case MC_RXL_ENDED:
		mc_rxloop_save(x->l, serr, sizeof serr);
		ended(x);
		return MC_EXIT_INCOMPLETE;
	case MC_RXL_NOSESSION:
		mc_err("no session%s%s on %s within the timeout; %s", x->o.package ? " of " : "",
		       x->o.package ? x->o.package : "", mc_rxloop_group(x->l), resumed ? "state kept" : "nothing received");
		summary(x, "timeout");
		return MC_EXIT_INCOMPLETE;
	case MC_RXL_SILENT:
		mc_rxloop_save(x->l, serr, sizeof serr);
		mc_err("%s: the sender went silent; %s are kept (run mcast-repair or again)", x->o.out, x->kept);
		summary(x, "timeout");
		return MC_EXIT_INCOMPLETE;
	}
	mc_err("%s", err);
	/* A target refused once the session said what it carries (not an image, too small): a usage error. */
	return x->o.to && mc_sink_target_refused(x->sink) ? MC_EXIT_USAGE : MC_EXIT_RUNTIME;
}

/* PKG is already there, complete and verified: say so, exit 0. */
static void already(const struct opts *o, uint32_t nchunks) __attribute__((noreturn));
static void already(const struct opts *o, uint32_t nchunks)
{
	struct mc_json j;

	/* A run killed between its rename and the state's removal left PKG.state behind. */
	if (mc_state_drop_stale(o->out))
		mc_debug("%s.state: stale beside a complete %s; removed", o->out, o->out);
	mc_info("%s: already complete and verified", o->out);
	mc_fe_summary(&j, "complete");
	mc_json_str(&j, "path", o->out);
	mc_json_u64(&j, "chunks", nchunks);
	mc_json_u64(&j, "verified", nchunks);
	mc_json_bool(&j, "already", 1);
	mc_json_dbl(&j, "seconds", 0);
	mc_json_end(&j);
	exit(mc_fe_finish(MC_EXIT_OK));
}

/*
 * The package of PKG.part (or of the --to state) is taken only when --trust
 * and --expect allow it, before anything else is read.
 */
static int accept_part(void *ctx, const struct mc_manifest *m, char *err, size_t errlen)
{
	const struct run *x = ctx;
	char idhex[40], why[512], what[PATH_MAX + 16];

	if (x->o.to)
		snprintf(what, sizeof what, "%s: the state of", x->state);
	else
		snprintf(what, sizeof what, "%s.part: holds", x->o.out);
	if (trust.n && mc_manifest_trust(m, &trust, why, sizeof why) != MC_SIG_TRUSTED) {
		snprintf(err, errlen, "%s package %s, refused: %s; remove it or choose another %s", what,
			 mc_id_hex(m->id, idhex), why, x->o.to ? "--state" : "-o");
		return -EPERM;
	}
	if (x->o.expect && !mc_id_match(m->id, x->expect, x->expect_nhex)) {
		snprintf(err, errlen, "%s package %s, not --expect %s; remove it or choose another %s", what,
			 mc_id_hex(m->id, idhex), x->o.expect, x->o.to ? "--state" : "-o");
		return -EPERM;
	}
	return 0;
}

/*
 * What PKG.part (or the target and its state) holds already (the one resume
 * sequence), said. Returns 0, or the exit status when it cannot be used.
 */
static int resume(struct run *x, struct mc_sink *sink, struct mc_resume *rs)
{
	char err[1024];
	int e;

	rs->accept = accept_part;
	rs->accept_ctx = x;
	if ((e = sink->ops->resume(sink, rs, err, sizeof err)) < 0) {
		mc_err("%s", err);
		/* A state of another target, a target too small for the state's image: refused, a usage error. */
		return e == -EINVAL ? MC_EXIT_USAGE : MC_EXIT_RUNTIME;
	}
	if (x->o.to && rs->why[0])
		mc_warn("%s; every chunk is written again", rs->why);
	if (!rs->have_m)
		return 0;
	if (rs->why[0] && !x->o.to)
		mc_warn("%s; checking %s.part instead", rs->why, x->o.out);
	if (rs->save_err[0])
		mc_warn("%s", rs->save_err);
	uint32_t npart = mc_span_chunks(rs->st.spans, rs->st.nspans);
	if (npart)
		mc_info("resuming %s: %u of %u chunks already verified, parts of %u more", x->o.out, rs->st.nhave,
			rs->st.nchunks, npart);
	else
		mc_info("resuming %s: %u of %u chunks already verified", x->o.out, rs->st.nhave, rs->st.nchunks);
	return 0;
}

/*
 * The sink: PKG.part, or the target (--to) with its state file, said. Returns
 * 0, or the exit status when it cannot be opened or is refused.
 */
static int open_sink(struct run *x, struct mc_sink **sink)
{
	char err[512];
	struct stat sb;
	int e;

	if (!x->o.to) {
		if (stat(x->o.out, &sb) == 0 && S_ISDIR(sb.st_mode))
			mc_fe_bad_value(usage_text, "-o", x->o.out, "is a directory; -o names the package file to write");
		snprintf(x->kept, sizeof x->kept, "%s.part and its state", x->o.out);
		if ((e = mc_sink_pkg_open(x->o.out, sink, err, sizeof err)) < 0) {
			mc_err("%s", err);
			/* PKG.part or its state a device node, FIFO or socket: refused, nothing written. */
			return e == -EINVAL ? MC_EXIT_USAGE : MC_EXIT_RUNTIME;
		}
		return 0;
	}
	mc_fe_target_state(usage_text, x->o.out, x->o.state, x->state, sizeof x->state);
	snprintf(x->kept, sizeof x->kept, "what is on %s and its state %s", x->o.out, x->state);
	if ((e = mc_sink_target_open(x->o.out, x->state, x->o.zeroed ? MC_TARGET_ZEROED : 0, sink, err,
				     sizeof err)) < 0) {
		mc_err("%s", err);
		return e == -EINVAL ? MC_EXIT_USAGE : MC_EXIT_RUNTIME;
	}
	x->sink = *sink;
	if (x->o.decrypt)
		mc_sink_target_decrypt(*sink, &dkey);
	mc_info("writing onto %s; state in %s", x->o.out, x->state);
	return 0;
}

int main(int argc, char **argv)
{
	struct run x;
	struct mc_rxloop_cfg c;
	struct mc_resume rs;
	struct mc_sink *sink = NULL;
	struct mc_auth *auth = NULL;
	char err[512];
	int rcode = MC_EXIT_RUNTIME, res = MC_RXL_ERROR;
	uint32_t done_chunks = 0;

	memset(&x, 0, sizeof x);
	memset(&c, 0, sizeof c);
	memset(&rs, 0, sizeof rs);
	x.start = mc_now_ms();
	parse(argc, argv, &x.o);
	mc_fe_start(&prog, argv[0], &x.o.fe);
	mc_fe_summary_about(NULL, x.o.out);
	if (x.o.expect && (x.expect_nhex = mc_id_parse(x.o.expect, x.expect)) < 0)
		mc_fe_bad_value(usage_text, "--expect", x.o.expect, "a package id is 32 hex digits (or a prefix of at least 8)");
	memcpy(c.core.expect, x.expect, MC_ID_LEN);
	c.core.expect_nhex = x.expect_nhex;
	mc_fe_net_group(&x.o.net, (unsigned)x.o.net.port, &c.g);
	mc_net_group_port(&c.g, (uint16_t)(x.o.net.port + 1), &c.gfb);
	/* Every --trust key is read first: a bad one is an error, never a smaller trust set. */
	for (unsigned i = 0; i < x.o.ntrust; i++)
		if (mc_trust_add(&trust, x.o.trust[i], err, sizeof err) < 0) {
			mc_err("--trust %s", err);
			exit(MC_EXIT_RUNTIME);
		}
	if (trust.n)
		c.core.trust = &trust;
	if (x.o.session_key)
		auth = mc_fe_session_key(x.o.session_key);
	if (x.o.decrypt && mc_fe_decrypt_key(x.o.decrypt, &dkey) < 0)
		exit(MC_EXIT_RUNTIME);
	if (!x.o.to && already_complete(&x.o, &done_chunks))
		already(&x.o, done_chunks);
	if ((rcode = open_sink(&x, &sink)) != 0 || (rcode = resume(&x, sink, &rs)) != 0)
		goto out;
	rcode = MC_EXIT_RUNTIME;
	c.core.rid = mc_rxloop_rid(x.o.out);
	if (x.o.package)
		snprintf(c.core.package, sizeof c.core.package, "%s", x.o.package);
	c.core.mem_limit = x.o.mem ? x.o.mem : x.o.to ? TO_MEM : 0;
	getrandom(&c.core.seed, sizeof c.core.seed, 0);
	c.ttl = (int)x.o.net.ttl;
	c.sink = sink;
	c.rs = &rs;
	c.timeout_ms = x.o.timeout;
	c.stop = &got_signal;
	c.report = on_report;
	c.ctx = &x;
	if ((x.l = mc_rxloop_new(&c, err, sizeof err)) == NULL || mc_rxloop_open(x.l, err, sizeof err) < 0) {
		mc_err("%s", err);
		goto out;
	}
	/* Bursts arrive at the sender's rate; a small buffer turns them into loss and NACKs. */
	if (mc_rxloop_info(x.l)->rcvbuf > 0 && mc_rxloop_info(x.l)->rcvbuf < (4 << 20))
		mc_warn("%s: receive buffer only %d KiB (raise net.core.rmem_max, or run as root): expect loss at high rates",
			c.g.text, mc_rxloop_info(x.l)->rcvbuf / 1024);
	mc_fe_signals(&got_signal);
	mc_info("waiting for %s%s on %s", x.o.package ? "package " : "a session",
		x.o.package ? x.o.package : "", c.g.text);
	res = mc_rxloop_run(x.l, err, sizeof err);
	rcode = outcome(&x, res, err, rs.have_m);
out:
	mc_progress_end();
	if (rcode == MC_EXIT_RUNTIME && x.l && !mc_rxloop_info(x.l)->complete)
		mc_rxloop_save(x.l, err, sizeof err);
	if (rcode == MC_EXIT_RUNTIME)
		summary(&x, "error");
	/* Never close PKG.part (or the target) under the saver's feet. */
	if (mc_rxloop_stop_saver(x.l, err, sizeof err) < 0 && rcode != MC_EXIT_RUNTIME) {
		mc_err("%s", err);
		rcode = MC_EXIT_RUNTIME;
	}
	mc_rxloop_free(x.l);
	if (sink)
		sink->ops->close(sink);
	mc_resume_free(&rs);
	mc_fe_auth_report(auth);
	mc_trust_free(&trust);
	free(x.o.trust);
	explicit_bzero(&dkey, sizeof dkey);
	return mc_fe_finish(rcode);
}
