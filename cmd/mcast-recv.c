/* mcast-recv: joins a session, writes the package, keeps resumable state, exits 3 when something is missing. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "auth.h"
#include "crypto.h"
#include "defaults.h"
#include "exitcode.h"
#include "fe.h"
#include "log.h"
#include "meter.h"
#include "net.h"
#include "opt.h"
#include "pace.h"
#include "pkg.h"
#include "receiver.h"
#include "state.h"
#include "wire.h"

#define SAVE_MS 1000              /* state fsync'd at most this often: what a crash can cost */
#define FINISH_MS 1500            /* after completing, time to tell the sender (DONE) */

static const char usage_text[] =
	"usage: mcast-recv [-qv] [--json] [-g GROUP] [-p PORT] [-i IFACE] [-t TTL] -o PKG\n"
	"                  [--package NAME] [--expect ID] [--timeout DUR] [--mem SIZE]\n"
	"                  [--trust KEY.pub|DIR]... [--session-key FILE]\n"
	"       mcast-recv -h | --help | --version\n";

static volatile sig_atomic_t got_signal;

static void help(void) __attribute__((noreturn));
static void help(void)
{
	mc_fe_help(usage_text,
	"\nJoins the session on GROUP:PORT (at any moment) and writes PKG.part and PKG.state,\n"
	      "renamed to PKG once every chunk is verified. Run again with the same -o to resume.\n"
	      "  -g, --group GROUP  multicast group, IPv4 or IPv6 (default " MC_DEFAULT_GROUP4 ")\n"
	      "  -p, --port PORT  data port; feedback goes to PORT+1 (default 7077)\n"
	      "  -i, --interface IFACE  join on this interface\n"
	      "  -t, --ttl TTL    TTL / hop limit of feedback (default 1)\n"
	      "  -o, --output PKG  the package to write (a file: not -, not a device)\n"
	      "  --package NAME    join only a session of this package name\n"
	      "  --expect ID       join only this package id (32 hex digits, or a prefix of 8 or more)\n"
	      "  --timeout DUR     give up (exit 3) after DUR of silence: no session, or a quiet sender\n"
	      "  --trust KEY|DIR   take only a session whose package is signed by this public key\n"
	      "                    (or any DIR/*.pub); repeatable. Nothing is written before that.\n"
	      "  --session-key FILE  authenticate every datagram with this 32-byte key; others' are dropped\n"
	      "  --mem SIZE        memory for chunks being assembled (default 1/8 s of the\n"
	      "                    sender's rate, 64M to 256M)\n"
	      "  --json            one JSON event per line on stdout\n"
	      "  -q, --quiet       errors only\n"
	      "  -v, --verbose     more detail\n"
	      "  -h, --help        this help    --version  program version\n"
	      "Exit: 0 complete and verified, 1 error, 2 usage, 3 incomplete (state kept: run again or mcast-repair).\n");
}

struct opts {
	struct mc_fe_net net;
	const char *out, *package, *expect;
	uint64_t timeout, mem;
	int verbosity, json;
	const char **trust; /* --trust KEY.pub|DIR, as given */
	unsigned ntrust;
	const char *session_key;
};

/* The keys of --trust (empty: any package is taken). */
static struct mc_trust trust;

static void parse(int argc, char **argv, struct opts *o)
{
	enum { O_EXPECT = 256, O_JSON, O_MEM, O_PACKAGE, O_SESSION_KEY, O_TIMEOUT, O_TRUST, O_VERSION };
	static const struct option lopts[] = {
		{"expect", required_argument, NULL, O_EXPECT},
		{"group", required_argument, NULL, 'g'},
		{"help", no_argument, NULL, 'h'},
		{"interface", required_argument, NULL, 'i'},
		{"json", no_argument, NULL, O_JSON},
		{"mem", required_argument, NULL, O_MEM},
		{"output", required_argument, NULL, 'o'},
		{"package", required_argument, NULL, O_PACKAGE},
		{"port", required_argument, NULL, 'p'},
		{"session-key", required_argument, NULL, O_SESSION_KEY},
		{"quiet", no_argument, NULL, 'q'},
		{"timeout", required_argument, NULL, O_TIMEOUT},
		{"trust", required_argument, NULL, O_TRUST},
		{"ttl", required_argument, NULL, 't'},
		{"verbose", no_argument, NULL, 'v'},
		{"version", no_argument, NULL, O_VERSION},
		{NULL, 0, NULL, 0},
	};
	int c;

	memset(o, 0, sizeof *o);
	mc_fe_net_defaults(&o->net);
	o->mem = 0; /* from the sender's rate */
	o->verbosity = 1;
	opterr = 0; /* our own message, with the program name alone */
	while ((c = getopt_long(argc, argv, "g:hi:o:p:qt:v", lopts, NULL)) != -1) {
		if (mc_fe_net_option(usage_text, c, optarg, &o->net))
			continue;
		switch (c) {
		case 'h': help();
		case 'o': o->out = optarg; break;
		case 'q': o->verbosity = 0; break;
		case 'v': o->verbosity = 2; break;
		case O_EXPECT: o->expect = optarg; break;
		case O_JSON: o->json = 1; break;
		case O_MEM:
			if (mc_opt_size(optarg, 4u << 20, 1ULL << 40, &o->mem) < 0)
				mc_fe_usage_error(usage_text, "--mem %s: must be a size from 4M, such as 64M", optarg);
			break;
		case O_PACKAGE:
			if (*optarg == '\0' || strlen(optarg) > MC_NAME_MAX)
				mc_fe_usage_error(usage_text, "--package: a name of 1 to %d bytes", MC_NAME_MAX);
			o->package = optarg;
			break;
		case O_TIMEOUT:
			o->timeout = mc_fe_duration(usage_text, "--timeout", optarg, 1, 366ULL * 86400000);
			break;
		case O_SESSION_KEY: o->session_key = optarg; break;
		case O_TRUST: {
			const char **t = realloc(o->trust, (o->ntrust + 1) * sizeof *t);
			if (t == NULL)
				mc_fe_usage_error(usage_text, "--trust: %s", strerror(ENOMEM));
			o->trust = t;
			o->trust[o->ntrust++] = optarg;
			break;
		}
		case O_VERSION:
			mc_fe_version();
		default:
			mc_fe_bad_option(usage_text, argv);
		}
	}
	if (optind != argc)
		mc_fe_usage_error(usage_text, "unexpected argument '%s'", argv[optind]);
	if (o->out == NULL || *o->out == '\0')
		mc_fe_usage_error(usage_text, "-o PKG is required");
	if (mc_fe_output_refusal(o->out))
		mc_fe_usage_error(usage_text, "-o %s: %s", o->out, mc_fe_output_refusal(o->out));
}

/*
 * The state is made durable by a thread of its own: fdatasync of a file being
 * written at hundreds of MB/s can take a second or more, and a receiver that
 * stopped reading for that long would overflow its socket and turn the stall
 * into loss for the whole session. The main loop hands over a copy of the
 * verified bitmap, taken after the chunks' pwrite; the thread syncs the data,
 * then replaces PKG.state, so the state never claims what is not on disk.
 */
struct saver {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int started, pending, quit, failed;
	int fd;
	const char *out;
	struct mc_state snap, work;
	char err[512];
};

static void *saver_main(void *arg)
{
	struct saver *v = arg;

	pthread_mutex_lock(&v->mu);
	for (;;) {
		while (!v->pending && !v->quit)
			pthread_cond_wait(&v->cv, &v->mu);
		if (!v->pending)
			break;
		memcpy(v->work.id, v->snap.id, MC_ID_LEN);
		v->work.nchunks = v->snap.nchunks;
		v->work.nhave = v->snap.nhave;
		memcpy(v->work.have, v->snap.have, (size_t)v->snap.nchunks / 8 + 1);
		v->pending = 0;
		pthread_mutex_unlock(&v->mu);
		char err[512];
		int bad = 0;
		if (fdatasync(v->fd) < 0) {
			snprintf(err, sizeof err, "%s.part: %s", v->out, strerror(errno));
			bad = 1;
		} else if (mc_state_save(v->out, v->fd, &v->work, err, sizeof err) < 0) {
			bad = 1;
		}
		pthread_mutex_lock(&v->mu);
		if (bad && !v->failed) {
			v->failed = 1;
			memcpy(v->err, err, sizeof err);
		}
	}
	pthread_mutex_unlock(&v->mu);
	return NULL;
}

/* Hands a snapshot to the saver (started on first use). Returns 0, or -1 when it failed earlier. */
static int saver_post(struct saver *v, const struct mc_manifest *m, const uint8_t *have, uint32_t nhave, uint32_t nchunks)
{
	int rc = 0;

	if (!v->started) {
		if (mc_state_init(&v->snap, m->id, nchunks) < 0 || mc_state_init(&v->work, m->id, nchunks) < 0)
			return -1;
		pthread_mutex_init(&v->mu, NULL);
		pthread_cond_init(&v->cv, NULL);
		if (pthread_create(&v->th, NULL, saver_main, v) != 0)
			return -1;
		v->started = 1;
	}
	pthread_mutex_lock(&v->mu);
	if (v->failed) {
		rc = -1;
	} else {
		memcpy(v->snap.id, m->id, MC_ID_LEN);
		v->snap.nhave = nhave;
		memcpy(v->snap.have, have, (size_t)nchunks / 8 + 1);
		v->pending = 1;
		pthread_cond_signal(&v->cv);
	}
	pthread_mutex_unlock(&v->mu);
	return rc;
}

/* Finishes the saver's work and stops it; returns -1 when any save failed (reason in err). */
static int saver_stop(struct saver *v, char *err, size_t errlen)
{
	if (!v->started)
		return 0;
	pthread_mutex_lock(&v->mu);
	v->quit = 1;
	pthread_cond_signal(&v->cv);
	pthread_mutex_unlock(&v->mu);
	pthread_join(v->th, NULL);
	v->started = 0;
	mc_state_free(&v->snap);
	mc_state_free(&v->work);
	if (v->failed)
		snprintf(err, errlen, "%s", v->err);
	return v->failed ? -1 : 0;
}

struct rstate {
	struct opts o;
	struct mc_receiver *r;
	int fd;                   /* PKG.part */
	uint64_t payload_off;
	int head_written, dirty, complete;
	uint32_t partial;         /* chunks of which parts were kept at the last save */
	uint64_t last_save;
	uint64_t fb_failed, fb_failed_ms; /* feedback that could not be sent, and when that was last said */
	struct sockaddr_storage sender;
	struct saver saver;
	uint32_t overruns;        /* the data socket's, from the kernel */
	char err[512];
};

static uint64_t payload_off_for(uint32_t manifest_len)
{
	/* The layout of mcast-package(5): payload at the first 4096 boundary after header and manifest. */
	return ((uint64_t)MC_PKG_HDR_SIZE + manifest_len + MC_PKG_ALIGN - 1) / MC_PKG_ALIGN * MC_PKG_ALIGN;
}

static int io_off(struct rstate *x)
{
	if (x->payload_off == 0) {
		const struct mc_announce *a = mc_recv_announce(x->r);
		if (a == NULL)
			return -1;
		x->payload_off = payload_off_for(a->manifest_len);
	}
	return 0;
}

static int io_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct rstate *x = ctx;
	const uint8_t *p = buf;

	if (io_off(x) < 0)
		return -1;
	while (len) {
		ssize_t n = pwrite(x->fd, p, len, (off_t)(x->payload_off + off));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			snprintf(x->err, sizeof x->err, "%s.part: %s", x->o.out, strerror(errno));
			return -1;
		}
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

static int io_read(void *ctx, uint64_t off, void *buf, size_t len)
{
	struct rstate *x = ctx;
	ssize_t n;

	if (io_off(x) < 0)
		return -1;
	n = pread(x->fd, buf, len, (off_t)(x->payload_off + off));
	if (n != (ssize_t)len) {
		snprintf(x->err, sizeof x->err, "%s.part: %s", x->o.out, n < 0 ? strerror(errno) : "short read");
		return -1;
	}
	return 0;
}

/*
 * Receiver id: the same machine (its machine id and its cards' addresses:
 * clones of one image share the first), network namespace and output give
 * the same id (the sender and mcast-sched count ids).
 */
static uint64_t make_rid(const char *out)
{
	char buf[PATH_MAX * 2 + 1024], dir[PATH_MAX], *slash;
	size_t n = 0;
	struct stat sb;
	FILE *f;

	memset(buf, 0, sizeof buf);
	if ((f = fopen("/etc/machine-id", "r")) != NULL) {
		n = fread(buf, 1, 64, f);
		fclose(f);
	}
	if (stat("/proc/self/ns/net", &sb) == 0)
		n += (size_t)snprintf(buf + n, sizeof buf - n, "|%llu|", (unsigned long long)sb.st_ino);
	n += mc_net_hwaddrs(buf + n, 768);
	snprintf(dir, sizeof dir, "%s", out);
	slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	char real[PATH_MAX];
	if (realpath(slash ? (dir[0] ? dir : "/") : ".", real) != NULL)
		n += (size_t)snprintf(buf + n, sizeof buf - n, "%s/", real);
	n += (size_t)snprintf(buf + n, sizeof buf - n, "%s", slash ? slash + 1 : out);
	uint64_t rid = XXH64(buf, n < sizeof buf ? n : sizeof buf, 0x6d63617374ULL);
	return rid ? rid : 1;
}

static int save_state(struct rstate *x)
{
	const struct mc_manifest *m = mc_recv_manifest(x->r);
	struct mc_state st;
	uint32_t nhave, nchunks;
	const uint8_t *have = mc_recv_have(x->r, &nhave, &nchunks);

	if (m == NULL || have == NULL || !x->head_written)
		return 0;
	/* The final, synchronous save: the thread must not write an older state after it. */
	if (saver_stop(&x->saver, x->err, sizeof x->err) < 0)
		return -1;
	/* Chunks half received are kept too: their symbols go to the file, their extent to the state. */
	memset(&st, 0, sizeof st);
	long ns = mc_recv_flush(x->r) < 0 ? -1 : mc_recv_spans(x->r, &st.spans);
	if (ns < 0)
		mc_warn("%s.part: %s; chunks not yet complete will be received again", x->o.out,
			x->err[0] ? x->err : strerror(ENOMEM));
	if (fdatasync(x->fd) < 0) {
		free(st.spans);
		snprintf(x->err, sizeof x->err, "%s.part: %s", x->o.out, strerror(errno));
		return -1;
	}
	memcpy(st.id, m->id, MC_ID_LEN);
	st.nchunks = nchunks;
	st.nhave = nhave;
	st.have = (uint8_t *)have;
	st.nspans = ns > 0 ? (uint32_t)ns : 0;
	x->partial = mc_span_chunks(st.spans, st.nspans);
	int rc = mc_state_save(x->o.out, x->fd, &st, x->err, sizeof x->err);
	free(st.spans);
	if (rc < 0)
		return -1;
	x->dirty = 0;
	x->last_save = mc_now_ms();
	return 0;
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

static void summary(struct rstate *x, const char *result, uint64_t start)
{
	static const struct mc_recv_stats none;
	const struct mc_recv_stats *s = x->r ? mc_recv_stats(x->r) : &none;
	uint32_t nhave = 0, nchunks = 0;
	struct mc_json j;

	if (x->r)
		mc_recv_have(x->r, &nhave, &nchunks);
	mc_json_summary(&j, result);
	mc_json_str(&j, "path", x->o.out);
	mc_json_u64(&j, "chunks", nchunks);
	mc_json_u64(&j, "verified", nhave);
	mc_json_u64(&j, "partial", x->partial);
	mc_json_u64(&j, "packets", s->packets);
	mc_json_u64(&j, "data_packets", s->data);
	mc_json_u64(&j, "duplicates", s->dup);
	mc_json_u64(&j, "dropped", s->bad + s->other);
	mc_json_u64(&j, "decoded_blocks", s->decoded_blocks);
	mc_json_u64(&j, "bad_chunks", s->bad_chunks);
	mc_json_u64(&j, "nacks", s->nacks_sent);
	mc_json_u64(&j, "nacks_suppressed", s->suppressed);
	mc_json_u64(&j, "feedback_failed", x->fb_failed);
	mc_json_u64(&j, "overruns", x->overruns);
	mc_json_u64(&j, "spills", s->spills);
	mc_json_dbl(&j, "seconds", (double)(mc_now_ms() - start) / 1000.0);
	mc_json_end(&j);
}

int main(int argc, char **argv)
{
	struct rstate x;
	struct mc_group g, gfb;
	struct mc_recv_cfg rc;
	struct mc_auth *auth = NULL;
	struct mc_rx rx, rxfb;
	struct mc_manifest pre;
	struct mc_state st;
	char err[512], idhex[40];
	int data = -1, fbl = -1, tx = -1, rcode = MC_EXIT_RUNTIME, have_pre = 0;
	uint64_t start = mc_now_ms(), finish_at = 0, last_prog_json = 0;
	uint32_t last_prog_have = 0;

	memset(&x, 0, sizeof x);
	memset(&pre, 0, sizeof pre);
	memset(&st, 0, sizeof st);
	memset(&rx, 0, sizeof rx);
	memset(&rxfb, 0, sizeof rxfb);
	x.fd = -1;
	parse(argc, argv, &x.o);
	x.saver.out = x.o.out;
	mc_log_init(argv[0], x.o.verbosity, x.o.json);
	memset(&rc, 0, sizeof rc);
	if (x.o.expect && (rc.expect_nhex = mc_id_parse(x.o.expect, rc.expect)) < 0)
		mc_fe_usage_error(usage_text, "--expect %s: a package id is 32 hex digits (or a prefix of at least 8)", x.o.expect);
	if (mc_net_group(x.o.net.group, (uint16_t)x.o.net.port, x.o.net.iface, &g, err, sizeof err) < 0) {
		mc_err("%s", err);
		exit(MC_EXIT_USAGE); /* a group that is not multicast, an interface that does not exist */
	}
	mc_net_group_port(&g, (uint16_t)(x.o.net.port + 1), &gfb);
	struct stat osb;
	if (stat(x.o.out, &osb) == 0 && S_ISDIR(osb.st_mode))
		mc_fe_usage_error(usage_text, "-o %s: is a directory; -o names the package file to write", x.o.out);
	/* Every --trust key is read first: a bad one is an error, never a smaller trust set. */
	for (unsigned i = 0; i < x.o.ntrust; i++)
		if (mc_trust_add(&trust, x.o.trust[i], err, sizeof err) < 0) {
			mc_err("--trust %s", err);
			exit(MC_EXIT_RUNTIME);
		}
	if (trust.n)
		rc.trust = &trust;
	if (x.o.session_key)
		auth = mc_fe_session_key(x.o.session_key);
	uint32_t done_chunks = 0;
	if (already_complete(&x.o, &done_chunks)) {
		struct mc_json j;
		/* A run killed between its rename and the state's removal left PKG.state behind. */
		if (mc_state_drop_stale(x.o.out))
			mc_debug("%s.state: stale beside a complete %s; removed", x.o.out, x.o.out);
		mc_info("%s: already complete and verified", x.o.out);
		mc_json_summary(&j, "complete");
		mc_json_str(&j, "path", x.o.out);
		mc_json_u64(&j, "chunks", done_chunks);
		mc_json_u64(&j, "verified", done_chunks);
		mc_json_bool(&j, "already", 1);
		mc_json_dbl(&j, "seconds", 0);
		mc_json_end(&j);
		exit(mc_log_close_stdout() < 0 ? MC_EXIT_RUNTIME : MC_EXIT_OK);
	}
	if ((x.fd = mc_state_open_part(x.o.out, err, sizeof err)) < 0) {
		mc_err("%s", err);
		goto out;
	}
	x.saver.fd = x.fd;
	/* Resume: a head in PKG.part pins the package; the state (or a rescan) says what is verified. */
	if (mc_state_read_part_manifest(x.fd, &pre)) {
		have_pre = 1;
		if (trust.n && mc_manifest_trust(&pre, &trust, err, sizeof err) != MC_SIG_TRUSTED) {
			mc_err("%s.part: holds package %s, refused: %s; remove it or choose another -o", x.o.out,
			       mc_id_hex(pre.id, idhex), err);
			goto out;
		}
		if (rc.expect_nhex && !mc_id_match(pre.id, rc.expect, rc.expect_nhex)) {
			mc_err("%s.part: holds package %s, not --expect %s; remove it or choose another -o", x.o.out,
			       mc_id_hex(pre.id, idhex), x.o.expect);
			goto out;
		}
		int lr = mc_state_load(x.o.out, x.fd, &st, err, sizeof err);
		if (lr <= 0 || memcmp(st.id, pre.id, MC_ID_LEN) != 0 || st.nchunks != pre.nchunks) {
			if (lr < 0)
				mc_warn("%s; checking %s.part instead", err, x.o.out);
			if (lr > 0)
				mc_state_free(&st);
			uint8_t *buf = malloc(pre.chunk_size);
			if (buf == NULL || mc_state_init(&st, pre.id, pre.nchunks) < 0 ||
			    mc_state_rescan(x.fd, &pre, &st, buf) < 0) {
				free(buf);
				mc_err("%s.part: %s", x.o.out, strerror(errno ? errno : ENOMEM));
				goto out;
			}
			free(buf);
			/* What the rescan found is kept at once: whatever happens next, PKG.state is there. */
			if (mc_state_save(x.o.out, x.fd, &st, err, sizeof err) < 0)
				mc_warn("%s", err);
		}
		mc_state_spans_fit(&st, &pre);
		uint32_t npart = mc_span_chunks(st.spans, st.nspans);
		if (npart)
			mc_info("resuming %s: %u of %u chunks already verified, parts of %u more", x.o.out, st.nhave,
				st.nchunks, npart);
		else
			mc_info("resuming %s: %u of %u chunks already verified", x.o.out, st.nhave, st.nchunks);
	}
	rc.rid = make_rid(x.o.out);
	if (x.o.package)
		snprintf(rc.package, sizeof rc.package, "%s", x.o.package);
	rc.mem_limit = x.o.mem;
	getrandom(&rc.seed, sizeof rc.seed, 0);
	rc.io = (struct mc_recv_io){&x, io_write, io_read};
	x.r = mc_recv_new(&rc);
	if (x.r == NULL || (have_pre && mc_recv_preload(x.r, &pre, st.have, st.spans, st.nspans) < 0) ||
	    mc_net_rx_init(&rx, 16, 65536) < 0 || mc_net_rx_init(&rxfb, 8, 2048) < 0) {
		mc_err("out of memory");
		goto out;
	}
	if (have_pre) {
		x.payload_off = payload_off_for(pre.raw_len);
		x.head_written = 1;
	}
	if ((data = mc_net_listen(&g, 1, err, sizeof err)) < 0 || (fbl = mc_net_listen(&gfb, 0, err, sizeof err)) < 0 ||
	    (tx = mc_net_sender(&gfb, (int)x.o.net.ttl, err, sizeof err)) < 0) {
		mc_err("%s", err);
		goto out;
	}
	{
		/* Bursts arrive at the sender's rate; a small buffer turns them into loss and NACKs. */
		int rb = 0;
		socklen_t rl = sizeof rb;
		if (getsockopt(data, SOL_SOCKET, SO_RCVBUF, &rb, &rl) == 0 && rb < (4 << 20))
			mc_warn("%s: receive buffer only %d KiB (raise net.core.rmem_max, or run as root): expect loss at high rates",
				g.text, rb / 1024);
	}
	mc_fe_signals(&got_signal);
	mc_info("waiting for %s%s on %s", x.o.package ? "package " : "a session",
		x.o.package ? x.o.package : "", g.text);
	start = mc_now_ms();

	for (;;) {
		uint64_t now = mc_now_ms();
		struct pollfd pfd[2] = {{data, POLLIN, 0}, {fbl, POLLIN, 0}};
		uint64_t next = mc_recv_next(x.r);
		int wait = next > now ? (int)(next - now < 200 ? next - now : 200) : 0;

		if (got_signal) {
			save_state(&x);
			mc_info("interrupted; %s.part and its state are kept, run again to resume", x.o.out);
			summary(&x, "interrupted", start);
			rcode = MC_EXIT_INCOMPLETE;
			break;
		}
		if (poll(pfd, 2, wait) < 0 && errno != EINTR) {
			mc_err("poll: %s", strerror(errno));
			goto out;
		}
		now = mc_now_ms();
		for (int s = 0; s < 2; s++) {
			struct mc_rx *r = s == 0 ? &rx : &rxfb;
			int fd = s == 0 ? data : fbl;
			int n;
			for (int rounds = 0; rounds < 64 && (n = mc_net_rx(fd, r)) > 0; rounds++) {
				for (int i = 0; i < n; i++) {
					const uint8_t *p;
					size_t len;
					for (unsigned j = 0; (len = mc_net_rx_seg(r, (unsigned)i, j, &p)) > 0; j++)
						mc_recv_packet(x.r, now, p, len);
					if (s == 0)
						x.sender = r->from[i];
				}
				if (n < (int)r->n)
					break;
				/* Falling behind: stop reading to tell the sender at once (mc_recv_overruns). */
				if (s == 0 && mc_net_overruns(data) != x.overruns)
					break;
			}
		}
		uint32_t ovr = mc_net_overruns(data);
		if (ovr != x.overruns)
			mc_debug("the kernel dropped %u datagrams for want of socket buffer (%u so far, %.3f s in)",
				 ovr - x.overruns, ovr, (double)(now - start) / 1000.0);
		x.overruns = ovr;
		mc_recv_overruns(x.r, x.overruns);
		mc_recv_tick(x.r, now);
		uint8_t fb[MC_WIRE_FEEDBACK_MAX];
		size_t fl;
		while ((fl = mc_recv_feedback(x.r, fb, sizeof fb)) > 0) {
			if (mc_net_send(tx, &gfb, fb, fl) < 0 && errno != EAGAIN && errno != ENOBUFS) {
				/* The sender never hears this receiver: no repair, not counted. Say so, now and then. */
				if (x.fb_failed++ == 0 || now - x.fb_failed_ms >= 10000) {
					mc_warn("%s: cannot send feedback: %s (the sender cannot count or repair this receiver)",
						gfb.text, strerror(errno));
					x.fb_failed_ms = now;
				}
			}
		}

		struct mc_recv_event ev;
		int stop = 0;
		while (!stop && mc_recv_event(x.r, &ev)) {
			struct mc_json j;
			const struct mc_announce *a = mc_recv_announce(x.r);
			const struct mc_manifest *m = mc_recv_manifest(x.r);
			char addr[80], sz[32];
			switch (ev.kind) {
			case MC_REV_SESSION:
				if (a == NULL) /* taken and refused (--trust) within one batch: MC_REV_OTHER tells */
					break;
				mc_net_addr_str(&x.sender, addr, sizeof addr);
				mc_info("joined session %08x of %s (id %.16s, %s) from %s", ev.arg, a->name,
					mc_id_hex(a->id, idhex), mc_fmt_size(a->payload_size, sz, sizeof sz), addr);
				mc_json_begin(&j, "joined");
				mc_json_u64(&j, "session", ev.arg);
				mc_json_str(&j, "name", a->name);
				mc_json_str(&j, "id", idhex);
				mc_json_str(&j, "sender", addr);
				mc_json_u64(&j, "chunks", a->nchunks);
				mc_json_end(&j);
				break;
			case MC_REV_MANIFEST:
				if (!x.head_written) {
					if (mc_pkg_write_head(x.fd, m) < 0) {
						mc_err("%s.part: %s", x.o.out, strerror(errno));
						goto out;
					}
					x.head_written = 1;
				}
				x.dirty = 1;
				mc_debug("manifest complete: %u chunks of %u bytes", m->nchunks, m->chunk_size);
				break;
			case MC_REV_CHUNK:
				x.dirty = 1;
				break;
			case MC_REV_BADCHUNK:
				mc_warn("chunk %u failed verification; asking for it again", ev.arg);
				break;
			case MC_REV_WELCOME:
				mc_debug("counted by the sender");
				break;
			case MC_REV_OTHER: {
				const struct mc_announce *o = mc_recv_other(x.r);
				char oid[40], pid[40];
				mc_id_hex(o->id, oid);
				if (ev.arg == MC_OTHER_UNTRUSTED)
					mc_warn("not taking the session of %s (id %.16s) on %s: refused: %s; waiting for another",
						o->name, oid, g.text, mc_recv_untrusted(x.r));
				else if (ev.arg == MC_OTHER_PART)
					mc_warn("not taking the session of %s (id %.16s) on %s: %s.part holds package %.16s; "
						"remove it (or use another -o) to receive this one",
						o->name, oid, g.text, x.o.out, mc_id_hex(mc_recv_pinned(x.r), pid));
				else
					mc_info("not taking the session of %s (id %.16s) on %s: not %s %s", o->name, oid, g.text,
						ev.arg == MC_OTHER_EXPECT ? "--expect" : "--package",
						ev.arg == MC_OTHER_EXPECT ? x.o.expect : x.o.package);
				break;
			}
			case MC_REV_COMPLETE:
				if (saver_stop(&x.saver, err, sizeof err) < 0 || mc_state_finish(x.o.out, x.fd, m, err, sizeof err) < 0) {
					mc_err("%s", err);
					goto out;
				}
				x.complete = 1;
				mc_progress_end();
				char dn[96];
				mc_info("%s: complete and verified: %s (%u chunks)", x.o.out,
					mc_fmt_done(m->payload_size, (double)(mc_now_ms() - start) / 1000.0, dn, sizeof dn),
					m->nchunks);
				mc_json_begin(&j, "done");
				mc_json_str(&j, "path", x.o.out);
				mc_json_str(&j, "id", mc_id_hex(m->id, idhex));
				mc_json_u64(&j, "chunks", m->nchunks);
				mc_json_end(&j);
				finish_at = now + FINISH_MS;
				break;
			case MC_REV_END:
			case MC_REV_LEAVE:
				save_state(&x);
				{
					uint32_t nh = 0, nc = 0;
					mc_recv_have(x.r, &nh, &nc);
					const char *why = ev.kind == MC_REV_LEAVE ? "told to leave by the sender (too slow or too lossy)"
							  : ev.arg == MC_END_DAMAGED ? "the session ended (the sender's package is damaged)"
							  : ev.arg == MC_END_MAX_TIME ? "the session ended (the sender's --max-time)"
							  : "the session ended";
					if (x.head_written && x.partial)
						mc_err("%s: %s with %u of %u chunks and parts of %u more; %s.part and its state are kept "
						       "(run mcast-repair or again)", x.o.out, why, nh, nc, x.partial, x.o.out);
					else if (x.head_written)
						mc_err("%s: %s with %u of %u chunks; %s.part and its state are kept (run mcast-repair or again)",
						       x.o.out, why, nh, nc, x.o.out);
					else
						mc_err("%s: %s before the manifest arrived; nothing kept (run mcast-repair or again)", x.o.out, why);
				}
				summary(&x, ev.kind == MC_REV_END ? "ended" : "left", start);
				rcode = MC_EXIT_INCOMPLETE;
				stop = 1;
				break;
			case MC_REV_IOERR:
				mc_err("%s", x.err[0] ? x.err : "I/O error");
				save_state(&x);
				goto out;
			}
		}
		if (stop)
			break;
		if (x.complete) {
			if (mc_recv_phase(x.r) == MC_RPH_FINISHED || now >= finish_at) {
				summary(&x, "complete", start);
				rcode = MC_EXIT_OK;
				break;
			}
			continue;
		}
		if (x.dirty && now - x.last_save >= SAVE_MS && x.head_written) {
			uint32_t sh = 0, sc = 0;
			const uint8_t *bm = mc_recv_have(x.r, &sh, &sc);
			const struct mc_manifest *sm = mc_recv_manifest(x.r);
			if (bm && sm) {
				if (saver_post(&x.saver, sm, bm, sh, sc) < 0) {
					mc_err("%s", x.saver.err[0] ? x.saver.err : "cannot save the state");
					goto out;
				}
				x.dirty = 0;
				x.last_save = now;
			}
		}
		uint32_t nh = 0, nc = 0;
		if (mc_recv_have(x.r, &nh, &nc)) {
			static struct mc_meter meter;
			const struct mc_manifest *pm = mc_recv_manifest(x.r);
			uint64_t tot = pm ? pm->payload_size : 0;
			char rs[64];
			snprintf(rs, sizeof rs, "receiving (%u of %u chunks)", nh, nc);
			/* Bytes that came (symbols received; verified chunks when more), never past the total. */
			uint64_t vb = !nc ? 0 : nh == nc ? tot : tot / nc * nh, rb = mc_recv_stats(x.r)->payload_bytes;
			rb = rb < tot ? rb : tot;
			mc_meter_show(&meter, 0, x.o.out, vb > rb ? vb : rb, tot, now, rs);
			/* A progress event when the count moved (at most four a second), else once a second. */
			if (now - last_prog_json >= 1000 || (nh != last_prog_have && now - last_prog_json >= 250)) {
				last_prog_have = nh;
				struct mc_json j;
				mc_json_begin(&j, "progress");
				mc_json_u64(&j, "verified", nh);
				mc_json_u64(&j, "chunks", nc);
				mc_json_u64(&j, "packets", mc_recv_stats(x.r)->data);
				mc_json_end(&j);
				last_prog_json = now;
			}
		} else {
			mc_progress(0, "%s: waiting for a session on %s (%llu s)", x.o.out, g.text,
				    (unsigned long long)((now - start) / 1000));
		}
		uint64_t heard = mc_recv_last_heard(x.r);
		if (heard == 0) {
			if (x.o.timeout && now - start >= x.o.timeout) {
				mc_err("no session%s%s on %s within the timeout; %s", x.o.package ? " of " : "",
				       x.o.package ? x.o.package : "", g.text,
				       have_pre ? "state kept" : "nothing received");
				summary(&x, "timeout", start);
				rcode = MC_EXIT_INCOMPLETE;
				break;
			}
		} else if (now - heard >= (x.o.timeout ? x.o.timeout : MC_DEFAULT_RECV_SILENCE_MS)) {
			save_state(&x);
			mc_err("%s: the sender went silent; %s.part and its state are kept (run mcast-repair or again)",
			       x.o.out, x.o.out);
			summary(&x, "timeout", start);
			rcode = MC_EXIT_INCOMPLETE;
			break;
		}
	}
out:
	mc_progress_end();
	if (rcode == MC_EXIT_RUNTIME && x.r && !x.complete)
		save_state(&x);
	if (rcode == MC_EXIT_RUNTIME)
		summary(&x, "error", start);
	{
		char serr[512];
		/* Never close PKG.part under the saver's feet. */
		if (saver_stop(&x.saver, serr, sizeof serr) < 0 && rcode != MC_EXIT_RUNTIME) {
			mc_err("%s", serr);
			rcode = MC_EXIT_RUNTIME;
		}
	}
	if (data >= 0)
		close(data);
	if (fbl >= 0)
		close(fbl);
	if (tx >= 0)
		close(tx);
	if (x.fd >= 0) {
		struct stat sb;
		/* Nothing was ever received: leave no empty PKG.part behind. */
		if (!x.head_written && fstat(x.fd, &sb) == 0 && sb.st_size == 0) {
			char *part = mc_state_part_path(x.o.out);
			if (part)
				unlink(part);
			free(part);
		}
		close(x.fd);
	}
	mc_net_rx_free(&rx);
	mc_net_rx_free(&rxfb);
	mc_recv_free(x.r);
	mc_fe_auth_report(auth);
	mc_trust_free(&trust);
	free(x.o.trust);
	if (have_pre)
		mc_manifest_free(&pre);
	mc_state_free(&st);
	if (mc_log_close_stdout() < 0 && rcode == MC_EXIT_OK)
		rcode = MC_EXIT_RUNTIME;
	return rcode;
}
