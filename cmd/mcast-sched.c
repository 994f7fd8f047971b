/*
 * mcast-sched: waits until enough receivers asked for a package, or long
 * enough, then chain-loads COMMAND (usually mcast-send) as s6 and execline do.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "defaults.h"
#include "exitcode.h"
#include "fe.h"
#include "log.h"
#include "net.h"
#include "opt.h"
#include "schedule.h"
#include "wire.h"

#define MAX_WAIT_MS (366ULL * 86400 * 1000) /* a year: anything longer is a typo */
#define TICK_MS 1000                         /* status file and progress line refresh */

static const char usage_text[] =
	"usage: mcast-sched [-g GROUP] [-p PORT] [-i IFACE] [--min-clients N] [--max-wait DUR]\n"
	"                   [--package NAME] [--status FILE] [--skip-empty] [--session-key FILE]\n"
	"                   [--json] [-q] [-v]\n"
	"                   -- COMMAND [ARG ...]\n"
	"       mcast-sched -h | --help | --version\n";

static const struct mc_fe_prog prog = {
	.usage = usage_text,
	.help = "\nWaits until N receivers asked for the package on GROUP:PORT+1, or DUR passed,\n"
		      "then runs COMMAND with MCAST_CLIENTS and MCAST_CLIENT_LIST set, and exits\n"
		      "with its status. At DUR it runs COMMAND even when nobody asked (MCAST_CLIENTS=0).\n"
		      "  -g, --group GROUP  multicast group (default " MC_DEFAULT_GROUP4 ")\n"
		      "  -p, --port PORT  data port; receivers ask on PORT+1 (default 7077)\n"
		      "  -i, --interface IFACE  interface to listen on\n"
		      "  --min-clients N   start once N distinct receivers asked\n"
		      "  --max-wait DUR    start after DUR (90s, 5m, 2h) with whoever asked, even none\n"
		      "  --package NAME    count only receivers asking for NAME (or for any)\n"
		      "  --status FILE     keep a JSON status in FILE (not a device), rewritten atomically\n"
		      "  --skip-empty      at --max-wait, if nobody asked, exit 3 without running COMMAND\n"
		      "  --session-key FILE  count only receivers whose hellos carry this 32-byte key's MAC\n"
		      "  --json            one JSON event per line on stdout\n"
		      "  --syslog          talk to syslog (the journal), not standard error; MCAST_LOG_TIME=1:\n"
		      "                    each line on standard error starts with the time (ISO 8601)\n"
		      "  -q, --quiet       errors and warnings only\n"
		      "  -v, --verbose     more detail\n"
		      "SIGUSR1 starts COMMAND at once.\n",
};

static volatile sig_atomic_t got_usr1, got_term;

/* 0 when path could be executed, else the status a shell gives: 127 absent, 126 not runnable. */
static int probe(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return errno == ENOENT || errno == ENOTDIR ? MC_EXIT_NOT_FOUND : MC_EXIT_CANNOT_RUN;
	if (S_ISDIR(st.st_mode) || access(path, X_OK) < 0)
		return MC_EXIT_CANNOT_RUN;
	return 0;
}

/*
 * Looks COMMAND up as execvp will, before the wait: a typo in a crontab
 * should fail at once, not after thirty minutes of counting.
 */
static int find_command(const char *cmd)
{
	char path[PATH_MAX], defpath[256];
	const char *p, *end;
	int res = MC_EXIT_NOT_FOUND;

	if (!*cmd)
		return MC_EXIT_NOT_FOUND;
	if (strchr(cmd, '/'))
		return probe(cmd);
	p = getenv("PATH");
	if (!p) {
		if (confstr(_CS_PATH, defpath, sizeof defpath) == 0)
			snprintf(defpath, sizeof defpath, "/bin:/usr/bin");
		p = defpath;
	}
	for (;; p = end + 1) {
		size_t n;
		end = strchrnul(p, ':');
		n = (size_t)(end - p);
		if (n == 0)
			snprintf(path, sizeof path, "%s", cmd);
		else
			snprintf(path, sizeof path, "%.*s/%s", (int)n, p, cmd);
		int r = probe(path);
		if (r == 0)
			return 0;
		if (r == MC_EXIT_CANNOT_RUN)
			res = r; /* execvp reports EACCES when it found only unrunnable ones */
		if (!*end)
			break;
	}
	return res;
}

static char *host_str(const struct sockaddr_storage *sa, char *buf, size_t len)
{
	socklen_t sl = sa->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);

	if (getnameinfo((const struct sockaddr *)sa, sl, buf, (socklen_t)len, NULL, 0, NI_NUMERICHOST) != 0)
		snprintf(buf, len, "?");
	return buf;
}

static char *rid_str(uint64_t rid, char buf[17])
{
	snprintf(buf, 17, "%016llx", (unsigned long long)rid);
	return buf;
}

struct run {
	struct mc_sched s;
	struct mc_group fb;
	const char *status;
	char **cmd;
	char cond[128];
	int status_warned;
};

static void esc(FILE *f, const char *s)
{
	char buf[2048];
	size_t n = 0;

	mc_json_escape(buf, sizeof buf, &n, s ? s : "");
	fputs(buf, f);
}

/*
 * Why path cannot be the --status file, or NULL: the status is renamed into
 * place, which would put a regular file where a device node, FIFO or socket
 * was (or a symlink to one pointed).
 */
static const char *status_refusal(const char *path)
{
	int k = mc_fe_special_path(path);

	if (k == MC_FE_DEVICE)
		return "a device node, never replaced by a status file";
	if (k == MC_FE_FIFO_SOCK)
		return "a FIFO or socket, not a file: the status is rewritten through a temporary file and rename(2)";
	return NULL;
}

/* Rewrites the status file through a temporary beside it and rename(2), so readers never see half of it. */
static int write_status(struct run *r, uint64_t now, const char *state)
{
	const struct mc_sched *s = &r->s;
	char tmp[PATH_MAX], id[17];
	uint64_t rem = mc_sched_remaining(s, now);
	const char *why;
	FILE *f = NULL;
	int fd, rc = -1;

	if (!r->status)
		return 0;
	/* Checked at the command line; one made since is left as it is, said once. */
	if ((why = status_refusal(r->status)) != NULL) {
		if (!r->status_warned)
			mc_warn("--status %s: %s; not written", r->status, why);
		r->status_warned = 1;
		return -1;
	}
	if (snprintf(tmp, sizeof tmp, "%s.XXXXXX", r->status) >= (int)sizeof tmp) {
		errno = ENAMETOOLONG;
		goto out;
	}
	fd = mkstemp(tmp);
	if (fd < 0)
		goto out;
	fchmod(fd, 0644);
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		unlink(tmp);
		goto out;
	}
	fprintf(f, "{\"state\":");
	esc(f, state);
	fprintf(f, ",\"pid\":%ld,\"group\":", (long)getpid());
	esc(f, r->fb.text);
	fprintf(f, ",\"package\":");
	esc(f, s->package);
	fprintf(f, ",\"condition\":");
	esc(f, r->cond);
	fprintf(f, ",\"min_clients\":%llu", (unsigned long long)s->cfg.min_clients);
	if (s->cfg.has_max_wait)
		fprintf(f, ",\"max_wait\":%.3f,\"remaining\":%.3f", s->cfg.max_wait_ms / 1000.0,
			(s->decision == MC_SCHED_WAIT ? rem : 0) / 1000.0);
	else
		fprintf(f, ",\"max_wait\":null,\"remaining\":null");
	fprintf(f, ",\"start_empty\":%s,\"waited\":%.3f,\"reason\":", s->cfg.start_empty ? "true" : "false",
		mc_sched_waited(s, now) / 1000.0);
	if (s->decision == MC_SCHED_WAIT)
		fputs("null", f);
	else
		esc(f, mc_sched_reason_name(s->reason));
	fprintf(f, ",\"command\":");
	esc(f, r->cmd[0]);
	fprintf(f, ",\"clients\":%zu,\"ids\":[", s->n);
	for (size_t i = 0; i < s->n; i++)
		fprintf(f, "%s\"%s\"", i ? "," : "", rid_str(s->clients[i].rid, id));
	fprintf(f, "],\"receivers\":[");
	for (size_t i = 0; i < s->n; i++) {
		const struct mc_sched_client *c = &s->clients[i];
		fprintf(f, "%s{\"id\":\"%s\",\"address\":", i ? "," : "", rid_str(c->rid, id));
		esc(f, c->addr);
		if (c->host[0]) {
			fprintf(f, ",\"host\":");
			esc(f, c->host);
		}
		fprintf(f, ",\"package\":");
		esc(f, c->name);
		fprintf(f, ",\"since\":%.3f,\"last\":%.3f,\"hellos\":%llu}",
			(c->first_ms - s->start_ms) / 1000.0, (c->last_ms - s->start_ms) / 1000.0,
			(unsigned long long)c->hellos);
	}
	fprintf(f, "],\"ignored_hellos\":%llu}\n", (unsigned long long)s->ignored);
	if (ferror(f)) {
		fclose(f);
		unlink(tmp);
		errno = EIO;
		goto out;
	}
	if (fclose(f) != 0) {
		unlink(tmp);
		goto out;
	}
	if (rename(tmp, r->status) < 0) {
		int e = errno;
		unlink(tmp);
		errno = e;
		goto out;
	}
	rc = 0;
out:
	if (rc < 0 && !r->status_warned) {
		mc_warn_sys("%s", r->status);
		r->status_warned = 1;
	}
	return rc;
}

/*
 * One line per receiver, "ID ADDRESS", for COMMAND to read. This process
 * becomes COMMAND and could not remove a file after it, so the file is
 * removed at once and handed over open: path becomes /dev/fd/N, which
 * COMMAND (and what it starts) opens like any file, and it vanishes with
 * the last process that holds it.
 */
static int write_client_list(const struct mc_sched *s, char *path, size_t len)
{
	const char *dir = getenv("TMPDIR");
	char id[17];
	FILE *f;
	int fd;

	snprintf(path, len, "%s/mcast-sched-clients.XXXXXX", dir && *dir ? dir : "/tmp");
	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		unlink(path);
		return -1;
	}
	for (size_t i = 0; i < s->n; i++)
		fprintf(f, "%s %s\n", rid_str(s->clients[i].rid, id), s->clients[i].addr);
	if (ferror(f) | (fclose(f) != 0)) {
		unlink(path);
		return -1;
	}
	int rfd = open(path, O_RDONLY); /* not close-on-exec: COMMAND inherits it */
	int e = errno;
	unlink(path);
	if (rfd < 0) {
		errno = e;
		return -1;
	}
	snprintf(path, len, "/dev/fd/%d", rfd);
	return 0;
}

static void progress(struct run *r, uint64_t now, int force)
{
	char w[32], left[32];
	uint64_t rem = mc_sched_remaining(&r->s, now);

	mc_sched_fmt_ms(mc_sched_waited(&r->s, now) / 1000 * 1000, w, sizeof w);
	if (rem != UINT64_MAX)
		mc_sched_fmt_ms((rem + 999) / 1000 * 1000, left, sizeof left);
	if (r->s.cfg.min_clients)
		mc_progress(force, "waiting: %zu/%llu clients, %s waited%s%s%s", r->s.n,
			    (unsigned long long)r->s.cfg.min_clients, w,
			    rem != UINT64_MAX ? ", " : "", rem != UINT64_MAX ? left : "",
			    rem != UINT64_MAX ? " left" : "");
	else
		mc_progress(force, "waiting: %zu client%s, %s waited%s%s%s", r->s.n, r->s.n == 1 ? "" : "s", w,
			    rem != UINT64_MAX ? ", " : "", rem != UINT64_MAX ? left : "",
			    rem != UINT64_MAX ? " left" : "");
}

static void new_client(struct run *r, const struct mc_sched_client *c, uint64_t now)
{
	struct mc_json j;
	char id[17];

	rid_str(c->rid, id);
	mc_info("client %zu: %s at %s%s%s%s%s%s", r->s.n, id, c->addr, c->host[0] ? " (host " : "", c->host,
		c->host[0] ? ")" : "", c->name[0] ? " asking for " : "", c->name);
	mc_json_begin(&j, "client");
	mc_json_str(&j, "receiver", id); /* "id" is a package id in every program's JSON (mcast-json(7)) */
	mc_json_str(&j, "address", c->addr);
	if (c->host[0])
		mc_json_str(&j, "host", c->host);
	mc_json_str(&j, "name", c->name);
	mc_json_u64(&j, "clients", r->s.n);
	mc_json_dbl(&j, "waited", mc_sched_waited(&r->s, now) / 1000.0);
	mc_json_end(&j);
}

/* Reads every queued datagram and feeds the hellos in. Returns -1 on a socket error. */
static int drain(struct run *r, int fd, struct mc_rx *rx)
{
	int n;

	while ((n = mc_net_rx(fd, rx)) > 0) {
		uint64_t now = mc_now_ms();
		for (unsigned i = 0; i < (unsigned)n; i++) {
			const uint8_t *d;
			size_t len;
			char host[MC_SCHED_ADDR_MAX];
			for (unsigned k = 0; (len = mc_net_rx_seg(rx, i, k, &d)) > 0; k++) {
				struct mc_pkt p;
				int rc;
				if (mc_wire_decode(d, len, &p) < 0 || p.type != MC_PKT_HELLO)
					continue;
				host_str(&rx->from[i], host, sizeof host);
				mc_debug("hello from %s id %016llx for %s", host,
					 (unsigned long long)p.u.hello.rid,
					 p.u.hello.name[0] ? p.u.hello.name : "any package");
				rc = mc_sched_hello(&r->s, p.u.hello.rid, p.u.hello.name, host, now);
				if (rc < 0) {
					mc_err("out of memory counting receivers");
					return -1;
				}
				_Static_assert(MC_SCHED_HOST_MAX == MC_HOST_MAX, "a client keeps a hello's host name whole");
				long ci = p.u.hello.host[0] ? mc_sched_find(&r->s, p.u.hello.rid) : -1;
				if (ci >= 0) /* made printable by the decoder */
					memcpy(r->s.clients[ci].host, p.u.hello.host, sizeof r->s.clients[ci].host);
				if (rc == 1) {
					new_client(r, &r->s.clients[r->s.n - 1], now);
					write_status(r, now, "waiting");
				}
			}
		}
	}
	if (n < 0) {
		mc_err("%s: receive: %s", r->fb.text, mc_strerror(n)); /* mc_net_rx's code */
		return -1;
	}
	return 0;
}

/*
 * --json ends with one "summary" (result started, empty, interrupted or
 * error: mcast-json(7)), as every program's does; with started, COMMAND's own
 * lines follow it. "path" is null: mcast-sched works on no file (lib/fe
 * writes the error one, mc_fe_summary_about).
 */
static void summary_begin(struct mc_json *j, const char *result)
{
	mc_fe_summary(j, result);
	mc_json_raw(j, "path", "null");
	mc_fe_auth_json(j);
}

struct opts {
	struct mc_fe_net net;
	struct mc_fe_common fe;
	struct mc_sched_cfg cfg;
	const char *session_key;
};

/* The command line into o, and r's --status and COMMAND. */
static void parse(int argc, char **argv, struct opts *o, struct run *r)
{
	enum { O_MAX_WAIT = MC_FE_OPT_OWN, O_MIN_CLIENTS, O_PACKAGE, O_SESSION_KEY, O_SKIP_EMPTY, O_START_EMPTY, O_STATUS };
	static const struct option longopts[] = {
		{ "group", required_argument, NULL, 'g' }, /* long forms as mcast-send and mcast-recv take them */
		{ "help", no_argument, NULL, 'h' },
		{ "interface", required_argument, NULL, 'i' },
		{ "json", no_argument, NULL, MC_FE_OPT_JSON },
		{ "max-wait", required_argument, NULL, O_MAX_WAIT },
		{ "min-clients", required_argument, NULL, O_MIN_CLIENTS },
		{ "package", required_argument, NULL, O_PACKAGE },
		{ "port", required_argument, NULL, 'p' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "session-key", required_argument, NULL, O_SESSION_KEY },
		{ "skip-empty", no_argument, NULL, O_SKIP_EMPTY },
		/* The default since --skip-empty came; still accepted so that old crontabs keep working. */
		{ "start-empty", no_argument, NULL, O_START_EMPTY },
		{ "status", required_argument, NULL, O_STATUS },
		MC_FE_SYSLOG_OPTION,
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, MC_FE_OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	/* "+": options end at COMMAND even without "--", so its own options stay its own. */
	static const char shortopts[] = "+g:hi:p:qv";
	uint64_t v;
	int c;

	mc_fe_prescan(&prog, argc, argv, shortopts, longopts);
	memset(o, 0, sizeof *o);
	o->fe.verbosity = 1;
	o->cfg.start_empty = 1; /* at --max-wait, run COMMAND whatever the count */
	mc_fe_net_defaults(&o->net);
	opterr = 0; /* our own message, as every program words it */
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		/* -g, -i, -p as mcast-send and mcast-recv take them */
		if (mc_fe_net_option(usage_text, c, optarg, &o->net) || mc_fe_common_option(&prog, c, &o->fe))
			continue;
		switch (c) {
		case O_MAX_WAIT:
			if (mc_opt_duration(optarg, 0, MAX_WAIT_MS, &v) < 0)
				mc_fe_bad_value(usage_text, "--max-wait", optarg, "not a duration (90s, 5m, 2h; at most 366d)");
			o->cfg.has_max_wait = 1;
			o->cfg.max_wait_ms = v;
			break;
		case O_MIN_CLIENTS:
			if (mc_opt_uint(optarg, 1, MC_SCHED_CLIENTS_MAX, &v) < 0)
				mc_fe_bad_value(usage_text, "--min-clients", optarg, "not a number of clients (1-%u)",
						MC_SCHED_CLIENTS_MAX);
			o->cfg.min_clients = v;
			break;
		case O_PACKAGE:
			if (strlen(optarg) > MC_SCHED_NAME_MAX || !*optarg)
				mc_fe_bad_value(usage_text, "--package", optarg, "must be a name of 1 to %d bytes", MC_SCHED_NAME_MAX);
			o->cfg.package = optarg;
			break;
		case O_SESSION_KEY:
			o->session_key = optarg;
			break;
		case O_SKIP_EMPTY:
			o->cfg.start_empty = 0;
			break;
		case O_START_EMPTY:
			break;
		case O_STATUS:
			if (!*optarg)
				mc_fe_bad_value(usage_text, "--status", optarg, "must not be empty");
			if (status_refusal(optarg))
				mc_fe_bad_value(usage_text, "--status", optarg, "%s", status_refusal(optarg));
			r->status = optarg;
			break;
		default:
			mc_fe_bad_option(usage_text, argv);
		}
	}
	if (optind >= argc)
		mc_fe_usage_error(usage_text, "missing COMMAND after --");
	r->cmd = argv + optind;
}

/*
 * Counts hellos until the schedule decides, SIGUSR1 says start or a signal
 * cancels (got_term). Returns the decision, or -1 after an error (said).
 */
static int wait_for_clients(struct run *r, int fd, struct mc_rx *rx, const sigset_t *waitmask, uint64_t start)
{
	enum mc_sched_decision d = MC_SCHED_WAIT;
	uint64_t next_tick = start + TICK_MS;

	for (;;) {
		uint64_t now = mc_now_ms(), rem, timeout;
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		struct timespec ts;

		if (got_term)
			break;
		d = mc_sched_poll(&r->s, now, got_usr1);
		if (d != MC_SCHED_WAIT)
			break;
		if (now >= next_tick) {
			write_status(r, now, "waiting");
			next_tick = now + TICK_MS;
		}
		progress(r, now, 0);
		rem = mc_sched_remaining(&r->s, now);
		timeout = next_tick - now;
		if (rem < timeout)
			timeout = rem;
		ts.tv_sec = (time_t)(timeout / 1000);
		ts.tv_nsec = (long)(timeout % 1000) * 1000000;
		if (ppoll(&pfd, 1, &ts, waitmask) < 0) {
			if (errno == EINTR)
				continue;
			mc_err_sys("poll");
			return -1;
		}
		if ((pfd.revents & POLLIN) && drain(r, fd, rx) < 0)
			return -1;
	}
	mc_progress_end();
	return (int)d;
}

/* Cancelled (cron job killed, Ctrl-C): say so in the status, then die of the same signal. Returns 128+sig if still alive. */
static int cancelled(struct run *r, int fd)
{
	int sig = got_term;
	struct mc_json j;

	mc_info("%s: cancelled with %zu client%s", strsignal(sig), r->s.n, r->s.n == 1 ? "" : "s");
	write_status(r, mc_now_ms(), "cancelled");
	summary_begin(&j, "interrupted");
	mc_json_str(&j, "signal", sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
	mc_json_u64(&j, "clients", r->s.n);
	mc_json_end(&j);
	close(fd);
	fflush(stdout);
	mc_fe_signals_restore();
	signal(sig, SIG_DFL);
	raise(sig);
	return 128 + sig;
}

/* At --max-wait nobody asked and --skip-empty: COMMAND is not run, exit 3. */
static int empty(struct run *r, uint64_t end, const char *waited)
{
	struct mc_json j;

	mc_info("no client asked%s%s within %s: not running %s (--skip-empty)",
		r->s.package[0] ? " for " : "", r->s.package, waited, r->cmd[0]);
	write_status(r, end, "empty");
	summary_begin(&j, "empty");
	mc_json_str(&j, "reason", mc_sched_reason_name(r->s.reason));
	mc_json_u64(&j, "clients", 0);
	mc_json_dbl(&j, "waited", mc_sched_waited(&r->s, end) / 1000.0);
	mc_json_end(&j);
	return MC_EXIT_INCOMPLETE;
}

/* MCAST_CLIENTS and MCAST_CLIENT_LIST for COMMAND, said. Returns 0, or -1 after an error (said). */
static int hand_over(struct run *r, uint64_t end, const char *waited)
{
	char list[PATH_MAX] = "", num[32];
	struct mc_json j;

	if (write_client_list(&r->s, list, sizeof list) < 0) {
		mc_err_sys("%s", list);
		return -1;
	}
	snprintf(num, sizeof num, "%zu", r->s.n);
	if (setenv("MCAST_CLIENTS", num, 1) < 0 || setenv("MCAST_CLIENT_LIST", list, 1) < 0) {
		mc_err_sys("environment");
		return -1;
	}
	mc_info("starting %s: %s, %zu client%s after %s", r->cmd[0], mc_sched_reason_name(r->s.reason),
		r->s.n, r->s.n == 1 ? "" : "s", waited);
	write_status(r, end, "started");
	summary_begin(&j, "started");
	mc_json_str(&j, "reason", mc_sched_reason_name(r->s.reason));
	mc_json_u64(&j, "clients", r->s.n);
	mc_json_dbl(&j, "waited", mc_sched_waited(&r->s, end) / 1000.0);
	mc_json_str(&j, "client_list", list);
	mc_json_str(&j, "command", r->cmd[0]);
	mc_json_end(&j);
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	struct run r;
	struct mc_group g;
	struct mc_rx rx = { 0 };
	sigset_t waitmask;
	uint64_t start, end;
	int fd = -1, status = MC_EXIT_RUNTIME, d;
	char err[256], w[32];
	struct mc_auth *auth = NULL;

	memset(&r, 0, sizeof r);
	parse(argc, argv, &o, &r);
	mc_fe_start(&prog, argv[0], &o.fe);
	mc_fe_summary_about(NULL, NULL);
	mc_fe_net_group(&o.net, (unsigned)o.net.port + 1, &r.fb);
	status = find_command(r.cmd[0]);
	if (status == MC_EXIT_NOT_FOUND) {
		mc_err("%s: command not found", r.cmd[0]);
		return mc_fe_finish(status);
	}
	if (status == MC_EXIT_CANNOT_RUN) {
		mc_err("%s: cannot run: %s", r.cmd[0], mc_strerror(EACCES));
		return mc_fe_finish(status);
	}
	status = MC_EXIT_RUNTIME;
	if (o.session_key)
		auth = mc_fe_session_key(o.session_key);
	/* Signals stay blocked except inside ppoll, so none slips between a check and the wait. */
	mc_fe_signals_ppoll(&got_term, &got_usr1, &waitmask);

	start = mc_now_ms();
	if (mc_sched_init(&r.s, &o.cfg, start) < 0) {
		mc_err("--package: name too long");
		status = MC_EXIT_USAGE;
		goto out;
	}
	mc_sched_condition(&r.s, r.cond, sizeof r.cond);
	g = r.fb;
	fd = mc_net_listen(&g, 0, err, sizeof err);
	if (fd < 0) {
		mc_err("%s", err);
		goto out;
	}
	if (mc_net_rx_init(&rx, 64, 2048) < 0) {
		mc_err("%s", mc_strerror(-ENOMEM));
		goto out;
	}
	if (r.status && write_status(&r, start, "waiting") < 0) {
		mc_err("--status: %s: cannot write", r.status);
		goto out;
	}
	mc_info("waiting on %s for %s%s%s, then %s", r.fb.text, r.cond,
		r.s.package[0] ? " asking for " : "", r.s.package, r.cmd[0]);
	{
		struct mc_json j;
		mc_json_begin(&j, "wait");
		mc_json_str(&j, "group", r.fb.text);
		mc_json_str(&j, "name", r.s.package);
		mc_json_str(&j, "condition", r.cond);
		mc_json_u64(&j, "min_clients", o.cfg.min_clients);
		if (o.cfg.has_max_wait)
			mc_json_dbl(&j, "max_wait", o.cfg.max_wait_ms / 1000.0);
		mc_json_str(&j, "command", r.cmd[0]);
		mc_json_end(&j);
	}

	if ((d = wait_for_clients(&r, fd, &rx, &waitmask, start)) < 0)
		goto out;
	if (got_term) {
		status = cancelled(&r, fd);
		fd = -1;
		goto out;
	}
	end = mc_now_ms();
	mc_sched_fmt_ms(mc_sched_waited(&r.s, end) / 1000 * 1000, w, sizeof w);
	if (d == MC_SCHED_EMPTY) {
		status = empty(&r, end, w);
		goto out;
	}
	if (hand_over(&r, end, w) < 0)
		goto out;

	/* The feedback socket is close-on-exec: COMMAND (mcast-send) binds PORT+1 itself. */
	mc_net_rx_free(&rx);
	mc_sched_free(&r.s);
	close(fd);
	fd = -1;
	fflush(stdout);
	fflush(stderr);
	mc_fe_signals_restore();
	mc_fe_auth_report(auth);
	auth = NULL;
	execvp(r.cmd[0], r.cmd);
	status = errno == ENOENT || errno == ENOTDIR ? MC_EXIT_NOT_FOUND : MC_EXIT_CANNOT_RUN;
	mc_err_sys("%s", r.cmd[0]);
out:
	mc_progress_end();
	mc_fe_auth_report(auth);
	mc_net_rx_free(&rx);
	mc_sched_free(&r.s);
	if (fd >= 0)
		close(fd);
	return mc_fe_finish(status);
}
