/*
 * mcast-repair: completes a partial or damaged package from unicast sources
 * (HTTP/HTTPS ranges or a file path), fetching only what is missing.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "crypto.h"
#include "exitcode.h"
#include "fe.h"
#include "log.h"
#include "meter.h"
#include "opt.h"
#include "repair.h"
#include "sink_target.h"

#define MAX_SOURCES 64
#define MAX_HEADERS 64
#define MAX_PARALLEL 64
#define DEFAULT_PARALLEL 4
#define MAX_SPREAD_MS (24ULL * 3600 * 1000)

static const char usage_text[] =
	"usage: mcast-repair -s SOURCE [-s SOURCE]... [-j PARALLEL] [--timeout DUR]\n"
	"                    [--cacert FILE] [--insecure] [-H HEADER]... [--spread DUR]\n"
	"                    [--trust KEY.pub|DIR]... [--json] [-q] [-v] PKG\n"
	"       mcast-repair --to TARGET [--state FILE] [--decrypt KEY] -s SOURCE [-s SOURCE]... [options]\n"
	"       mcast-repair -h | --help | --version\n";

static volatile sig_atomic_t got_stop;
static struct mc_meter meter; /* bytes fetched against bytes needed, for the live line */

/* The live line: fetched of needed, rate, time left, and what it is doing. */
static void live(const char *pkg, const struct mc_repair_event *ev, int force)
{
	char line[160];
	uint64_t done = ev->bytes_fetched < ev->bytes_need ? ev->bytes_fetched : ev->bytes_need;

	if (meter.start_ms == 0)
		mc_meter_start(&meter, ev->bytes_need, 0, mc_now_ms());
	meter.total = ev->bytes_need;
	mc_meter_add(&meter, done, mc_now_ms());
	mc_progress(force, "%s: %s, repairing (%u of %u chunks)", pkg, mc_meter_line(&meter, done, line, sizeof line),
		    ev->have, ev->nchunks);
}
static int to_target; /* --to: pkg in messages is the target */

static const struct mc_fe_prog prog = {
	.usage = usage_text,
	.help = "\nCompletes PKG (PKG.part and its state from mcast-recv, a damaged PKG, or\n"
		      "nothing yet) from the sources, fetching and verifying only missing chunks.\n"
		      "  -s, --source SOURCE  http://, https:// or file:// URL, or a path; at least\n"
		      "                    one, tried in order (a trailing / or a directory gets PKG's name)\n"
		      "  -j, --parallel N  transfers at once per source (default 4)\n"
		      "  --timeout DUR     a source that sends nothing (or trickles) this long is\n"
		      "                    left for the next and tried again later (default 15s)\n"
		      "  --cacert FILE     trust the CA certificates in FILE for HTTPS\n"
		      "  --insecure        do not verify HTTPS certificates\n"
		      "  -H, --header HEADER  extra request header 'Name: value'; repeatable\n"
		      "  --spread DUR      wait a random time up to DUR before the first request\n"
		      "  --trust KEY|DIR   take only a package signed by this public key (or any\n"
		      "                    DIR/*.pub); repeatable. A source serving another is refused.\n"
		      "  --to TARGET       complete TARGET (a block device or file an image package is\n"
		      "                    written onto, by mcast-recv --to or not yet) instead of PKG:\n"
		      "                    missing chunks fetched, verified, decoded in place\n"
		      "  --state FILE      with --to: the state mcast-recv --to keeps for TARGET (default\n"
		      "                    as there: TARGET.state beside a file, " MC_TARGET_STATE_DIR "/NAME.state\n"
		      "                    for /dev/NAME); made when missing, removed once TARGET is complete\n"
		      "  --decrypt KEY     with --to: the key of an encrypted package (a 32-byte key\n"
		      "                    file or a box secret key); refused before TARGET is opened\n"
		      "                    when it does not open it\n"
		      "  --json            one JSON event per line on stdout\n"
		      "  --syslog          talk to syslog (the journal), not standard error; MCAST_LOG_TIME=1:\n"
		      "                    each line on standard error starts with the time (ISO 8601)\n"
		      "  -q, --quiet       errors and warnings only\n"
		      "  -v, --verbose     more detail\n"
		      "Exit status: 0 complete and verified (--to: every chunk on TARGET and flushed),\n"
		      "1 error (also: no source can ever serve, every one a path that is missing, not\n"
		      "this package or lacks what is missing), 2 usage (also --to: a target too small, a directory or character\n"
		      "device, a package that is not an image, a state of another package or\n"
		      "target), 3 still incomplete, state saved\n"
		      "(run again later: a network source may come back).\n",
};

static const char *src_state_name(enum mc_repair_src_state s)
{
	static const char *const names[] = {"unused", "ok", "refused", "failed", "stalled", "unusable"};
	return names[s];
}

/* An event about a source and why: refused, source_error (with retry_ms), source_left, source_unusable. */
static void source_json(const char *event, const struct mc_repair_event *ev, int retry)
{
	struct mc_json j;

	mc_json_begin(&j, event);
	mc_json_str(&j, "source", ev->source);
	mc_json_str(&j, "reason", ev->msg);
	if (retry)
		mc_json_u64(&j, "retry_ms", ev->delay_ms);
	mc_json_end(&j);
}

static void on_event(void *ctx, const struct mc_repair_event *ev)
{
	const char *pkg = ctx;
	struct mc_json j;
	char a[32];

	switch (ev->type) {
	case MC_REPAIR_EV_LOCAL:
		if (ev->msg)
			mc_warn(to_target ? "%s; every span of %s was checked instead" : "%s; every chunk of %s.part was checked instead",
				ev->msg, pkg);
		mc_json_begin(&j, "need");
		mc_json_str(&j, "path", pkg);
		mc_json_u64(&j, "chunks", ev->nchunks);
		mc_json_u64(&j, "have", ev->have);
		mc_json_u64(&j, "need", ev->need);
		mc_json_u64(&j, "bytes", ev->bytes_need);
		mc_json_bool(&j, "manifest", ev->nchunks > 0);
		mc_json_end(&j);
		if (ev->nchunks)
			mc_info("%s: %u of %u chunks present, %u to fetch (%s)", pkg, ev->have, ev->nchunks,
				ev->need, mc_fmt_size(ev->bytes_need, a, sizeof a));
		else
			mc_info("%s: no manifest yet: fetching everything", pkg);
		break;
	case MC_REPAIR_EV_SPREAD:
		mc_json_begin(&j, "spread");
		mc_json_u64(&j, "delay_ms", ev->delay_ms);
		mc_json_end(&j);
		mc_debug("waiting %.1fs before the first request (--spread)", (double)ev->delay_ms / 1000);
		break;
	case MC_REPAIR_EV_MANIFEST:
		mc_json_begin(&j, "manifest");
		mc_json_str(&j, "source", ev->source);
		if (ev->manifest) {
			char hex[2 * MC_ID_LEN + 1];
			mc_json_str(&j, "name", ev->manifest->name);
			mc_json_str(&j, "version", ev->manifest->version);
			mc_json_str(&j, "id", mc_id_hex(ev->manifest->id, hex));
		}
		mc_json_end(&j);
		mc_info("%s: manifest of %s", ev->source, ev->msg);
		break;
	case MC_REPAIR_EV_SOURCE:
		mc_json_begin(&j, "source");
		mc_json_str(&j, "source", ev->source);
		mc_json_end(&j);
		mc_debug("%s: serves the same package", ev->source);
		break;
	case MC_REPAIR_EV_REFUSED:
		source_json("refused", ev, 0);
		mc_err("%s: %s", ev->source, ev->msg);
		break;
	case MC_REPAIR_EV_ERROR:
		source_json("source_error", ev, 1);
		if (ev->delay_ms)
			mc_warn("%s: %s; retrying in %.1fs", ev->source, ev->msg, (double)ev->delay_ms / 1000);
		else
			mc_warn("%s: %s; not used further", ev->source, ev->msg);
		break;
	case MC_REPAIR_EV_LEFT:
		source_json("source_left", ev, 0);
		mc_warn("%s: %s; left for now, tried again after the other sources", ev->source, ev->msg);
		break;
	case MC_REPAIR_EV_UNUSABLE:
		source_json("source_unusable", ev, 0);
		mc_err("%s: cannot serve: %s", ev->source, ev->msg);
		break;
	case MC_REPAIR_EV_BAD:
		mc_json_begin(&j, "bad_chunk");
		mc_json_str(&j, "source", ev->source);
		mc_json_u64(&j, "chunk", ev->chunk);
		mc_json_end(&j);
		mc_warn("%s: chunk %u: digest mismatch: bad data, not trusted for this chunk", ev->source, ev->chunk);
		break;
	case MC_REPAIR_EV_CHUNK:
		mc_json_begin(&j, "fetched");
		mc_json_str(&j, "source", ev->source);
		mc_json_u64(&j, "chunk", ev->chunk);
		mc_json_u64(&j, "have", ev->have);
		mc_json_u64(&j, "chunks", ev->nchunks);
		mc_json_u64(&j, "bytes_fetched", ev->bytes_fetched);
		mc_json_end(&j);
		mc_debug("%s: chunk %u verified", ev->source, ev->chunk);
		live(pkg, ev, ev->have == ev->nchunks);
		break;
	case MC_REPAIR_EV_TICK:
		if (ev->nchunks)
			live(pkg, ev, 0);
		break;
	}
}

/* The result word of mcast-json(7). */
static const char *result_word(int rc, const struct mc_repair_result *res)
{
	if (rc == 0)
		return "complete";
	if (rc > 0 && got_stop)
		return "interrupted";
	return rc > 0 && !res->no_source ? "incomplete" : "error";
}

static void report(const char *pkg, int rc, const struct mc_repair_result *res, double secs)
{
	struct mc_json j;
	char list[4096] = "", a[32];

	mc_progress_end();
	for (unsigned k = 0; k < res->nsrc; k++) {
		const struct mc_repair_src_summary *s = &res->src[k];
		mc_json_begin(&j, "source_summary");
		mc_json_str(&j, "source", s->name);
		mc_json_str(&j, "state", src_state_name(s->state));
		mc_json_u64(&j, "bytes", s->bytes);
		mc_json_u64(&j, "requests", s->requests);
		mc_json_u64(&j, "chunks_ok", s->chunks_ok);
		mc_json_u64(&j, "chunks_bad", s->chunks_bad);
		if (s->reason[0])
			mc_json_str(&j, "reason", s->reason);
		mc_json_bool(&j, "ranges", !s->no_ranges);
		mc_json_end(&j);
		if (s->no_ranges) {
			char b[32];
			mc_warn("%s: the server ignores Range requests: %s received for %s missing; serve packages "
				"from one that honours ranges (nginx, Apache, lighttpd; not python's http.server)",
				s->name, mc_fmt_size(s->bytes, a, sizeof a), mc_fmt_size(res->bytes_need, b, sizeof b));
		}
		mc_debug("%s: %s, %s in %llu requests, %u chunks good, %u bad", s->name, src_state_name(s->state),
			 mc_fmt_size(s->bytes, a, sizeof a), (unsigned long long)s->requests, s->chunks_ok,
			 s->chunks_bad);
	}
	if (res->have_manifest && rc >= 0)
		mc_repair_list_missing(&res->st, list, sizeof list);
	mc_fe_summary(&j, result_word(rc, res));
	mc_json_str(&j, "path", pkg);
	if (res->have_manifest) {
		char hex[2 * MC_ID_LEN + 1];
		mc_json_str(&j, "name", res->name);
		mc_json_str(&j, "id", mc_id_hex(res->id, hex));
	}
	mc_json_bool(&j, "manifest", res->have_manifest);
	mc_json_bool(&j, "in_place", res->in_place);
	mc_json_u64(&j, "chunks", res->nchunks);
	mc_json_u64(&j, "had", res->had);
	mc_json_u64(&j, "fetched", res->fetched);
	mc_json_u64(&j, "missing", res->missing);
	mc_json_u64(&j, "bytes_needed", res->bytes_need);
	mc_json_u64(&j, "bytes_fetched", res->bytes_fetched);
	mc_json_u64(&j, "bytes_missing", res->bytes_missing);
	/* Bytes fetched per byte needed: 1 when nothing was needed (nothing was fetched in vain). */
	mc_json_dbl(&j, "fetch_ratio", res->bytes_need ? (double)res->bytes_fetched / (double)res->bytes_need : 1.0);
	mc_json_str(&j, "missing_chunks", list);
	mc_json_dbl(&j, "seconds", secs);
	mc_json_end(&j);
	if (rc == 0) {
		char d[96], n[48];
		mc_info("%s: complete and verified: %s (%s fetched, %s received)", pkg,
			mc_fmt_done(res->bytes_need, secs, d, sizeof d),
			mc_fmt_count(res->fetched, "chunk", "chunks", n, sizeof n),
			mc_fmt_size(res->bytes_fetched, a, sizeof a));
	} else if (rc > 0 && !res->have_manifest) {
		mc_err("%s: still missing: everything (no source served the header and manifest)", pkg);
	} else if (rc > 0) {
		mc_err("%s: still missing %u of %u chunks (%s): %s", pkg, res->missing, res->nchunks,
		       mc_fmt_size(res->bytes_missing, a, sizeof a), list);
	}
}

/* The command line, checked: every source, header and --trust key as given. */
struct args {
	struct mc_repair_opts o;
	const char *sources[MAX_SOURCES], *headers[MAX_HEADERS], *trusts[MAX_SOURCES];
	unsigned ntrust;
	const char *decrypt;
	const char *unchecked; /* a -s that could not be checked (no memory), and its code */
	int unchecked_rc;
	struct mc_fe_common fe;
};

static void parse(int argc, char **argv, struct args *a)
{
	enum { O_CACERT = MC_FE_OPT_OWN, O_DECRYPT, O_INSECURE, O_SPREAD, O_STATE, O_TIMEOUT, O_TO, O_TRUST };
	static const struct option longopts[] = {
		{"cacert", required_argument, NULL, O_CACERT},
		{"decrypt", required_argument, NULL, O_DECRYPT},
		{"header", required_argument, NULL, 'H'},
		{"help", no_argument, NULL, 'h'},
		{"insecure", no_argument, NULL, O_INSECURE},
		{"json", no_argument, NULL, MC_FE_OPT_JSON},
		{"parallel", required_argument, NULL, 'j'},
		{"quiet", no_argument, NULL, 'q'},
		{"source", required_argument, NULL, 's'},
		{"spread", required_argument, NULL, O_SPREAD},
		{"state", required_argument, NULL, O_STATE},
		MC_FE_SYSLOG_OPTION,
		{"timeout", required_argument, NULL, O_TIMEOUT},
		{"to", required_argument, NULL, O_TO},
		{"trust", required_argument, NULL, O_TRUST},
		{"verbose", no_argument, NULL, 'v'},
		{"version", no_argument, NULL, MC_FE_OPT_VERSION},
		{NULL, 0, NULL, 0},
	};
	struct mc_repair_opts *o = &a->o;
	char err[2048];
	uint64_t v;
	static const char shortopts[] = "H:hj:qs:v";
	int c, rc;

	mc_fe_prescan(&prog, argc, argv, shortopts, longopts);
	memset(a, 0, sizeof *a);
	a->fe.verbosity = 1;
	o->src.parallel = DEFAULT_PARALLEL;
	opterr = 0; /* our own message, with the program name alone */
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		if (mc_fe_common_option(&prog, c, &a->fe))
			continue;
		switch (c) {
		case 'H':
			if (o->src.nheaders == MAX_HEADERS)
				mc_fe_usage_error(usage_text, "-H: at most %d headers", MAX_HEADERS);
			if (strchr(optarg, ':') == NULL || optarg[0] == ':' || strpbrk(optarg, "\r\n"))
				mc_fe_bad_value(usage_text, "-H", optarg, "not a 'Name: value' header");
			a->headers[o->src.nheaders++] = optarg;
			break;
		case 'j':
			if (mc_opt_uint(optarg, 1, MAX_PARALLEL, &v) < 0)
				mc_fe_bad_value(usage_text, "-j", optarg, "not a number from 1 to %d", MAX_PARALLEL);
			o->src.parallel = (unsigned)v;
			break;
		case 's':
			if (o->nsources == MAX_SOURCES)
				mc_fe_usage_error(usage_text, "-s: at most %d sources", MAX_SOURCES);
			if (optarg[0] == '\0')
				mc_fe_bad_value(usage_text, "-s", optarg, "must not be empty");
			if ((rc = mc_source_check_spec(optarg, err, sizeof err)) == -EINVAL)
				mc_fe_bad_value(usage_text, "-s", optarg, "%s", err);
			if (rc < 0 && a->unchecked == NULL) { /* out of memory: not the user's error, said once logging is up */
				a->unchecked = optarg;
				a->unchecked_rc = rc;
			}
			a->sources[o->nsources++] = optarg;
			break;
		case O_CACERT:
			o->src.cacert = optarg;
			break;
		case O_DECRYPT:
			if (optarg[0] == '\0')
				mc_fe_bad_value(usage_text, "--decrypt", optarg, "must not be empty");
			a->decrypt = optarg;
			break;
		case O_INSECURE:
			o->src.insecure = 1;
			break;
		case O_SPREAD:
			if (mc_opt_duration(optarg, 0, MAX_SPREAD_MS, &o->spread_ms) < 0)
				mc_fe_bad_value(usage_text, "--spread", optarg, "not a duration (90s, 5m, 250ms)");
			break;
		case O_STATE:
			if (optarg[0] == '\0')
				mc_fe_bad_value(usage_text, "--state", optarg, "must not be empty");
			o->state_path = optarg;
			break;
		case O_TIMEOUT:
			o->src.stall_ms = mc_fe_duration(usage_text, "--timeout", optarg, 100, MAX_SPREAD_MS);
			break;
		case O_TO:
			if (optarg[0] == '\0')
				mc_fe_bad_value(usage_text, "--to", optarg, "must not be empty");
			o->target = optarg;
			break;
		case O_TRUST:
			if (a->ntrust == MAX_SOURCES)
				mc_fe_usage_error(usage_text, "--trust: at most %d", MAX_SOURCES);
			a->trusts[a->ntrust++] = optarg;
			break;
		default:
			mc_fe_bad_option(usage_text, argv);
		}
	}
	if (o->target) {
		/* --to: the target is the output; its state beside the command, never PKG.state. */
		if (argc != optind)
			mc_fe_bad_value(usage_text, "--to", o->target, "no PKG with --to (the package comes from the state or the sources)");
		/* Without --state, the one mcast-recv --to keeps by default for the same target. */
		static char state[PATH_MAX];
		o->state_path = mc_fe_target_state(usage_text, o->target, o->state_path, state, sizeof state);
	} else {
		if (o->state_path)
			mc_fe_usage_error(usage_text, "--state: only with --to TARGET (PKG keeps its state in PKG.state)");
		if (a->decrypt)
			mc_fe_usage_error(usage_text, "--decrypt: only with --to TARGET (PKG is completed encrypted, as it is)");
		if (argc - optind != 1)
			mc_fe_usage_error(usage_text, argc == optind ? "no PKG given" : "one PKG only");
		if (argv[optind][0] == '\0')
			mc_fe_usage_error(usage_text, "PKG: empty name");
		if (mc_fe_output_refusal(argv[optind]))
			mc_fe_usage_error(usage_text, "PKG %s: %s", argv[optind], mc_fe_output_refusal(argv[optind]));
	}
	if (o->nsources == 0)
		mc_fe_usage_error(usage_text, "no source: give at least one -s SOURCE (an http(s):// URL or a path)");
	o->pkg = o->target ? o->target : argv[optind];
	o->sources = a->sources;
	o->src.headers = a->headers;
}

int main(int argc, char **argv)
{
	struct args a;
	struct mc_trust trust = {0};
	struct mc_content_key dkey;
	struct mc_repair_result res;
	double t0;
	char err[2048];
	int rc, status = MC_EXIT_RUNTIME;

	parse(argc, argv, &a);
	mc_fe_start(&prog, argv[0], &a.fe);
	mc_fe_summary_about(NULL, a.o.pkg);
	if (a.unchecked) {
		mc_err("-s '%s': %s", a.unchecked, mc_strerror(a.unchecked_rc));
		goto out;
	}
	/* Every --trust key is read before anything else: a bad one is an error, never a smaller trust set. */
	for (unsigned i = 0; i < a.ntrust; i++)
		if (mc_trust_add(&trust, a.trusts[i], err, sizeof err) < 0) {
			mc_err("--trust %s", err);
			goto out;
		}
	if (trust.n)
		a.o.trust = &trust;
	if (a.decrypt) {
		if (mc_fe_decrypt_key(a.decrypt, &dkey) < 0)
			goto out;
		a.o.dkey = &dkey;
	}
	to_target = a.o.target != NULL;
	a.o.event = on_event;
	a.o.ctx = (void *)a.o.pkg;
	a.o.stop = &got_stop;
	mc_fe_signals(&got_stop);
	if ((rc = mc_source_global_init()) < 0) {
		/* -ENOMEM is said as out of memory (lib/exitcode.h); -EIO: its TLS library did not start. */
		mc_err("libcurl: cannot initialise: %s", rc == -ENOMEM ? mc_strerror(rc) : "its TLS library did not start");
		goto out;
	}
	t0 = mc_now_s();
	rc = mc_repair_run(&a.o, &res, err, sizeof err);
	if (rc < 0)
		mc_err("%s", err);
	report(a.o.pkg, rc, &res, mc_now_s() - t0);
	if (rc > 0 && got_stop)
		mc_err("%s: interrupted; state saved, run again to resume", a.o.pkg);
	else if (rc > 0 && res.no_source)
		mc_err("%s: no usable source: every source is a path that cannot serve what is missing", a.o.pkg);
	status = rc == 0 ? MC_EXIT_OK : rc > 0 && !res.no_source ? MC_EXIT_INCOMPLETE : MC_EXIT_RUNTIME;
	if (rc < 0 && res.refused)
		status = MC_EXIT_USAGE; /* refused before a byte was written (unsuitable target, package or state;
					   a PKG.part or PKG.state that is a device node, FIFO or socket) */
	mc_repair_result_free(&res);
	mc_source_global_cleanup();
out:
	mc_trust_free(&trust);
	if (a.decrypt)
		explicit_bzero(&dkey, sizeof dkey);
	return mc_fe_finish(status);
}
