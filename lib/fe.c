/* Front-end helpers shared by the programs; see fe.h. */
#include "fe.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "auth.h"
#include "crypto.h"
#include "defaults.h"
#include "exitcode.h"
#include "log.h"
#include "net.h"
#include "opt.h"
#include "sink_target.h"

static volatile sig_atomic_t *signal_flag, *usr1_flag;

void mc_fe_usage_error(const char *usage, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s\n%s", program_invocation_short_name, line, usage);
	exit(MC_EXIT_USAGE);
}

void mc_fe_bad_value(const char *usage, const char *opt, const char *value, const char *fmt, ...)
{
	char why[1024], shown[1024];
	size_t n = strlen(value);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	/* A value may hold anything (a tab in -n, an escape sequence): never write it raw to a terminal. */
	if (n >= sizeof shown)
		n = sizeof shown - 1;
	memcpy(shown, value, n);
	shown[n] = '\0';
	mc_scrub(shown, n);
	mc_fe_usage_error(usage, "%s '%s': %s", opt, shown, why);
}

void mc_fe_bad_option(const char *usage, char *const *argv)
{
	extern int optind, optopt;

	if (optopt > 0 && optopt < 128 && argv[optind - 1][0] == '-' && argv[optind - 1][1] != '-')
		mc_fe_usage_error(usage, "-%c: unknown option, or its value is missing", optopt);
	mc_fe_usage_error(usage, "%s: unknown option, or its value is missing", argv[optind - 1]);
}

uint64_t mc_fe_duration(const char *usage, const char *opt, const char *arg, uint64_t min_ms, uint64_t max_ms)
{
	uint64_t v;

	if (mc_opt_duration(arg, 0, (uint64_t)1 << 53, &v) < 0)
		mc_fe_bad_value(usage, opt, arg, "not a duration (90s, 5m, 2h, 250ms)");
	if (v == 0 && min_ms > 0)
		mc_fe_bad_value(usage, opt, arg, "must be more than 0");
	if (v < min_ms)
		mc_fe_bad_value(usage, opt, arg, "must be at least %.3g s", (double)min_ms / 1000);
	if (v > max_ms)
		mc_fe_bad_value(usage, opt, arg, "must be at most %.6g s", (double)max_ms / 1000);
	return v;
}

int mc_fe_special_path(const char *path)
{
	struct stat sb;

	if (stat(path, &sb) < 0)
		return 0;
	if (S_ISBLK(sb.st_mode) || S_ISCHR(sb.st_mode))
		return MC_FE_DEVICE;
	if (S_ISFIFO(sb.st_mode) || S_ISSOCK(sb.st_mode))
		return MC_FE_FIFO_SOCK;
	return 0;
}

const char *mc_fe_output_refusal(const char *path)
{
	int k;

	if (strcmp(path, "-") == 0)
		return "not standard output: a package is a file (PKG.part and its state are kept beside it "
		       "while it is incomplete); receive into a file, then stream its payload with "
		       "'mcast-pack extract -O PKG', or write an image onto a disk with --to TARGET";
	k = mc_fe_special_path(path);
	if (k == MC_FE_DEVICE)
		return "a device node, never replaced by a package file: to put an image onto a disk use "
		       "--to TARGET, or 'mcast-pack extract -O PKG | dd of=DEVICE'";
	if (k == MC_FE_FIFO_SOCK)
		return "a FIFO or socket, not a file: a package is written in place and renamed, so it "
		       "must be a regular file; stream a payload with 'mcast-pack extract -O PKG'";
	return NULL;
}

/* Levenshtein distance of a and b, both shorter than 32 bytes (else a large number). */
static unsigned edits(const char *a, const char *b)
{
	unsigned d[32][32];
	size_t la = strlen(a), lb = strlen(b);

	if (la >= 32 || lb >= 32)
		return 99;
	for (size_t i = 0; i <= la; i++)
		d[i][0] = (unsigned)i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = (unsigned)j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			unsigned m = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			if (d[i - 1][j] + 1 < m)
				m = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < m)
				m = d[i][j - 1] + 1;
			d[i][j] = m;
		}
	return d[la][lb];
}

const char *mc_fe_target_state(const char *usage, const char *target, const char *given, char *buf, size_t cap)
{
	struct stat sb, tb;

	if (given) {
		if ((size_t)snprintf(buf, cap, "%s", given) >= cap)
			mc_fe_bad_value(usage, "--state", given, "name too long");
	} else if (mc_sink_target_state_path(target, buf, cap) < 0)
		mc_fe_bad_value(usage, "--to", target, "name too long for its state file; give --state FILE");
	else if (strncmp(buf, MC_TARGET_STATE_DIR "/", sizeof MC_TARGET_STATE_DIR) == 0 &&
		 mkdir(MC_TARGET_STATE_DIR, 0755) < 0 && errno != EEXIST) {
		int e = errno;
		mc_warn("%s: %s (give --state FILE)", MC_TARGET_STATE_DIR, mc_strerror(e));
	}
	/* The state is replaced and at last removed: never a directory, device node, FIFO or socket. */
	if (stat(buf, &sb) == 0 && !S_ISREG(sb.st_mode))
		mc_fe_bad_value(usage, "--state", buf, "%s; the state is a regular file (give --state FILE)",
				S_ISDIR(sb.st_mode) ? "is a directory" : "is not a regular file");
	/* Nor the target itself: the state would be written over the image. */
	if (strcmp(buf, target) == 0 ||
	    (stat(buf, &sb) == 0 && stat(target, &tb) == 0 && sb.st_dev == tb.st_dev && sb.st_ino == tb.st_ino))
		mc_fe_bad_value(usage, "--state", buf, "is the target itself; give another --state FILE");
	return buf;
}

const char *mc_fe_nearest(const char *word, const char *const *choices, size_t n)
{
	const char *best = NULL;
	unsigned bd = 3; /* more than two edits away is not a typo */

	for (size_t i = 0; i < n; i++) {
		unsigned d = edits(word, choices[i]);
		if (strlen(word) >= 2 && strncmp(choices[i], word, strlen(word)) == 0)
			d = 1; /* a prefix: "ver" for verify */
		if (d < bd) {
			bd = d;
			best = choices[i];
		}
	}
	return best;
}

void mc_fe_net_defaults(struct mc_fe_net *n)
{
	const char *e;

	n->group = MC_DEFAULT_GROUP4;
	n->iface = NULL;
	n->group_from = n->iface_from = NULL;
	n->port = MC_DEFAULT_PORT;
	n->ttl = MC_DEFAULT_TTL;
	/* An admin's defaults, set once for cron lines and client scripts; the options still win. */
	if ((e = getenv("MCAST_GROUP")) && *e) {
		n->group = e;
		n->group_from = "MCAST_GROUP";
	}
	if ((e = getenv("MCAST_IFACE")) && *e) {
		n->iface = e;
		n->iface_from = "MCAST_IFACE";
	}
	if ((e = getenv("MCAST_PORT")) && *e && mc_opt_uint(e, 1, 65534, &n->port) < 0) {
		fprintf(stderr, "%s: MCAST_PORT '%s': port must be a number from 1 to 65534 (PORT+1 carries the "
			"feedback): fix or unset it\n", program_invocation_short_name, e);
		exit(MC_EXIT_USAGE);
	}
}

int mc_fe_net_option(const char *usage, int c, const char *arg, struct mc_fe_net *n)
{
	switch (c) {
	case 'g':
		n->group = arg;
		n->group_from = "-g";
		return 1;
	case 'i':
		n->iface = arg;
		n->iface_from = "-i";
		return 1;
	case 'p':
		/* PORT+1 carries the feedback, so PORT stops one short of the top. */
		if (mc_opt_uint(arg, 1, 65535, &n->port) == 0 && n->port == 65535)
			mc_fe_bad_value(usage, "-p", arg, "PORT+1 carries the feedback, so PORT is at most 65534");
		if (mc_opt_uint(arg, 1, 65534, &n->port) < 0)
			mc_fe_bad_value(usage, "-p", arg, "port must be a number from 1 to 65534");
		return 1;
	case 't':
		if (mc_opt_uint(arg, 1, 255, &n->ttl) < 0)
			mc_fe_bad_value(usage, "-t", arg, "TTL must be a number from 1 to 255");
		return 1;
	default:
		return 0;
	}
}

/* The signals mc_fe_signals* take over, and what they were before (mc_fe_signals_restore). */
static const int fe_sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGPIPE};
static struct sigaction fe_sig_old[sizeof fe_sigs / sizeof fe_sigs[0]];
static sigset_t fe_mask_old;
static int fe_sigs_set, fe_mask_set;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		*usr1_flag = 1;
	else
		*signal_flag = sig;
}

static void take_signals(int usr1)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	for (size_t i = 0; i < sizeof fe_sigs / sizeof fe_sigs[0]; i++) {
		if (fe_sigs[i] == SIGUSR1 && !usr1)
			continue;
		sa.sa_handler = fe_sigs[i] == SIGPIPE ? SIG_IGN : on_signal;
		sigaction(fe_sigs[i], &sa, fe_sigs_set ? NULL : &fe_sig_old[i]);
	}
	fe_sigs_set = 1;
}

void mc_fe_signals(volatile sig_atomic_t *flag)
{
	signal_flag = flag;
	take_signals(0);
}

void mc_fe_signals_ppoll(volatile sig_atomic_t *flag, volatile sig_atomic_t *usr1, sigset_t *waitmask)
{
	sigset_t block;

	sigemptyset(&block);
	for (size_t i = 0; i < sizeof fe_sigs / sizeof fe_sigs[0]; i++)
		if (fe_sigs[i] != SIGPIPE && (fe_sigs[i] != SIGUSR1 || usr1))
			sigaddset(&block, fe_sigs[i]);
	sigprocmask(SIG_BLOCK, &block, &fe_mask_old);
	fe_mask_set = 1;
	signal_flag = flag;
	usr1_flag = usr1;
	take_signals(usr1 != NULL);
	*waitmask = fe_mask_old;
	for (size_t i = 0; i < sizeof fe_sigs / sizeof fe_sigs[0]; i++)
		sigdelset(waitmask, fe_sigs[i]);
}

void mc_fe_signals_restore(void)
{
	if (fe_sigs_set)
		for (size_t i = 0; i < sizeof fe_sigs / sizeof fe_sigs[0]; i++)
			if (fe_sigs[i] != SIGUSR1 || usr1_flag)
				sigaction(fe_sigs[i], &fe_sig_old[i], NULL);
	if (fe_mask_set)
		sigprocmask(SIG_SETMASK, &fe_mask_old, NULL);
	fe_sigs_set = fe_mask_set = 0;
}

/* The summary a --json run owes (mc_fe_start): what it names, whether it was written. */
static const struct mc_fe_prog *fe_prog;
static const char *sum_command, *sum_path;
static int summarized, finished, owed_hooked;

/* -h and --version: their output is all of stdout. */
static void no_summary(void)
{
	finished = 1;
}

int mc_fe_common_option(const struct mc_fe_prog *p, int c, struct mc_fe_common *o)
{
	switch (c) {
	case 'h':
		no_summary(); /* stdout is the help alone, even with --json before it */
		fputs(p->usage, stdout);
		fputs(p->help, stdout);
		exit(mc_log_close_stdout() < 0 ? MC_EXIT_RUNTIME : MC_EXIT_OK);
	case 'q':
		o->verbosity = 0;
		return 1;
	case 'v':
		o->verbosity = 2;
		return 1;
	case MC_FE_OPT_JSON:
		o->json = 1;
		return 1;
	case MC_FE_O_SYSLOG:
		mc_log_syslog();
		return 1;
	case MC_FE_OPT_VERSION:
		no_summary();
		printf("%s %s%s\n", program_invocation_short_name, MC_VERSION, p->version ? p->version : "");
		exit(mc_log_close_stdout() < 0 ? MC_EXIT_RUNTIME : MC_EXIT_OK);
	default:
		return 0;
	}
}


static void owed_summary(int status)
{
	const char *three = fe_prog && fe_prog->exit3 ? fe_prog->exit3 : "incomplete";
	struct mc_json j;

	if (!mc_log_json() || summarized || finished)
		return;
	mc_fe_summary(&j, status == MC_EXIT_OK ? "complete" : status == MC_EXIT_INCOMPLETE ? three : "error");
	if (sum_command)
		mc_json_str(&j, "command", sum_command);
	if (sum_path)
		mc_json_str(&j, "path", sum_path);
	else
		mc_json_raw(&j, "path", "null");
	mc_json_u64(&j, "exit", (uint64_t)status);
	mc_json_end(&j);
}

/* exit(3) after --json was chosen (a usage error, a group refused): scripts still get their last line. */
static void on_exit_summary(int status, void *arg)
{
	(void)arg;
	owed_summary(status);
}

/* From now on every exit of a --json run writes the summary it still owes. */
static void owe_summary(const struct mc_fe_prog *p)
{
	if (!owed_hooked && on_exit(on_exit_summary, NULL) == 0)
		owed_hooked = 1;
	fe_prog = p;
}

/* One getopt_long pass over a copy of argv (glibc permutes what it reads): whether --json is in it; *end as optind. */
static int json_asked(int argc, char **argv, const char *shortopts, const struct option *longopts, int *end)
{
	char **v = malloc(((size_t)argc + 1) * sizeof *v);
	int c, json = 0, err = opterr;

	*end = argc;
	if (v == NULL)
		return 0; /* no early summary; the options are still read as ever */
	memcpy(v, argv, ((size_t)argc + 1) * sizeof *v);
	opterr = 0;
	optind = 0;
	while ((c = getopt_long(argc, v, shortopts, longopts, NULL)) != -1)
		if (c == MC_FE_OPT_JSON)
			json = 1;
	*end = optind;
	opterr = err;
	optind = 0;
	free(v);
	return json;
}

int mc_fe_prescan(const struct mc_fe_prog *p, int argc, char **argv, const char *shortopts,
		  const struct option *longopts)
{
	int end;

	if (json_asked(argc, argv, shortopts, longopts, &end)) {
		/* The log in JSON mode at once: mc_fe_start sets it again as the options say. */
		mc_log_init(program_invocation_short_name, 1, 1);
		owe_summary(p);
	}
	return end;
}

void mc_fe_start(const struct mc_fe_prog *p, const char *argv0, const struct mc_fe_common *o)
{
	mc_log_init(argv0, o->verbosity, o->json);
	if (o->json)
		owe_summary(p);
	fe_prog = p;
}

void mc_fe_summary_about(const char *command, const char *path)
{
	sum_command = command;
	sum_path = path;
}

void mc_fe_summary(struct mc_json *j, const char *result)
{
	mc_json_summary(j, result);
	summarized = 1;
}

int mc_fe_finish(int status)
{
	owed_summary(status);
	finished = 1;
	if (mc_log_close_stdout() < 0 && status == MC_EXIT_OK)
		status = MC_EXIT_RUNTIME;
	return status;
}

void mc_fe_net_group(const struct mc_fe_net *n, unsigned port, struct mc_group *g)
{
	char why[512];
	int rc = mc_net_group(n->group, (uint16_t)port, n->iface, g, why, sizeof why);

	if (rc < 0) {
		/*
		 * lib says which part failed by the code (-EINVAL: the group) and
		 * the reason alone; a value the user gave is named as every bad
		 * value is, "-g 'X': why" or by the variable that set it, and the
		 * default as "group X: why".
		 */
		int grp = rc == -EINVAL;
		const char *val = grp ? n->group : n->iface, *from = grp ? n->group_from : n->iface_from;

		if (from)
			mc_err("%s '%s': %s", from, val, why);
		else
			mc_err("%s %s: %s", grp ? "group" : "interface", val, why);
		exit(MC_EXIT_USAGE); /* a group that is not multicast, an interface that does not exist */
	}
}

/* The session key's context while it is in use (mc_fe_session_key to mc_fe_auth_report). */
static struct mc_auth *fe_auth;

struct mc_auth *mc_fe_session_key(const char *path)
{
	uint8_t key[MC_SESSION_KEY_LEN];
	char err[512];
	struct mc_auth *a;
	int loose;

	if (mc_session_key_load(path, key, &loose, err, sizeof err) < 0) {
		mc_err("--session-key %s", err);
		exit(MC_EXIT_RUNTIME);
	}
	if (loose)
		mc_warn("%s: session key readable or writable by group or others (chmod 600 it)", path);
	a = mc_auth_new(key);
	explicit_bzero(key, sizeof key);
	if (a == NULL) {
		mc_err("--session-key %s: cannot set up AES-256-GCM", path);
		exit(MC_EXIT_RUNTIME);
	}
	mc_net_set_auth(a);
	fe_auth = a;
	return a;
}

void mc_fe_auth_json(struct mc_json *j)
{
	struct mc_auth_stats st;

	if (fe_auth == NULL)
		return;
	st = mc_auth_get_stats(fe_auth);
	mc_json_u64(j, "auth_failed", st.forged);
	mc_json_u64(j, "auth_replayed", st.replayed);
}

int mc_fe_decrypt_key(const char *path, struct mc_content_key *k)
{
	char err[1024];
	int loose;

	if (mc_content_key_load(path, k, &loose, err, sizeof err) < 0) {
		mc_err("--decrypt %s", err);
		return -1;
	}
	if (loose)
		mc_warn("%s: key readable or writable by group or others (chmod 600 it)", path);
	return 0;
}

void mc_fe_auth_report(struct mc_auth *a)
{
	struct mc_auth_stats st;

	if (a == NULL)
		return;
	st = mc_auth_get_stats(a);
	if (st.forged || st.replayed)
		mc_warn("%llu datagrams dropped by the session key: %llu failed authentication, %llu replayed",
			(unsigned long long)(st.forged + st.replayed), (unsigned long long)st.forged,
			(unsigned long long)st.replayed);
	else
		mc_debug("session key: %llu datagrams authenticated, %llu sent", (unsigned long long)st.ok,
			 (unsigned long long)st.sealed);
	mc_net_set_auth(NULL);
	if (fe_auth == a)
		fe_auth = NULL;
	mc_auth_free(a);
}
