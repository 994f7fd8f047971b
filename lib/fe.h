/*
 * The one front end of the five programs (what lafe_ is to bsdtar): usage
 * errors, the common options (-h, -q, -v, --json, --syslog, --version), the shared
 * network options and their environment defaults, signal flags, and the
 * summary every --json run ends with. The one part of libmcast that prints
 * usage and exits, so that each program's main stays about its own work.
 *
 * Every program is built the same way:
 *   static const struct mc_fe_prog prog = {usage_text, help_text, ...};
 *   parse(): mc_fe_prescan, then getopt_long, each c offered to
 *            mc_fe_net_option (session programs) and mc_fe_common_option,
 *            then its own switch, default: mc_fe_bad_option; misuse:
 *            mc_fe_usage_error
 *   main():  parse, mc_fe_start, mc_fe_summary_about, the work (summaries
 *            through mc_fe_summary), return mc_fe_finish(status)
 */
#ifndef MC_FE_H
#define MC_FE_H

#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

/*
 * --syslog, which every program takes: its getopt_long value (above any
 * program's own) and its option table entry; mc_fe_common_option does it
 * (mc_log_syslog(), lib/log.h).
 */
#define MC_FE_O_SYSLOG 0x1000
#define MC_FE_SYSLOG_OPTION {"syslog", no_argument, NULL, MC_FE_O_SYSLOG}

/* Prints "prog: message" and the usage text on stderr, exits 2. */
void mc_fe_usage_error(const char *usage, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));

/*
 * The one wording of a bad option value: "prog: OPT 'VALUE': reason" and the
 * usage on stderr, exit 2. OPT is the option as typed (-r, --fec) or an
 * environment variable; VALUE is shown with control characters as '?'.
 * Every usage error that names an option's value goes through here.
 */
void mc_fe_bad_value(const char *usage, const char *opt, const char *value, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 4, 5)));

/*
 * For getopt_long's '?' with opterr = 0: names the unknown option or the one
 * missing its value (argv[optind - 1]), then as mc_fe_usage_error.
 */
void mc_fe_bad_option(const char *usage, char *const *argv) __attribute__((noreturn));

/*
 * Parses a duration option (mc_opt_duration) or exits 2 naming it: "OPT '0':
 * must be more than 0" when min_ms > 0, "not a duration (90s, 5m, 250ms)",
 * or the bound it passes.
 */
uint64_t mc_fe_duration(const char *usage, const char *opt, const char *arg, uint64_t min_ms, uint64_t max_ms);

/*
 * What kind of special file path is, following symlinks: MC_FE_DEVICE (a
 * block or character device), MC_FE_FIFO_SOCK (a FIFO or socket), or 0 when
 * it is anything else or cannot be stat(2)ed. For refusing outputs that are
 * written through a temporary file and rename(2).
 */
enum { MC_FE_DEVICE = 1, MC_FE_FIFO_SOCK = 2 };
int mc_fe_special_path(const char *path);

/*
 * Why path cannot be a package file to write, or NULL when it can: "-" (a
 * package is a file with PKG.part and a state beside it, not a stream) or
 * an existing device node, FIFO or socket (never replaced by a package).
 * The reason points at what does work (--to TARGET, mcast-pack extract -O).
 */
const char *mc_fe_output_refusal(const char *path);

/*
 * The state file of --to TARGET into buf (cap bytes): given (--state), else
 * TARGET's default (mc_sink_target_state_path), whose directory is made when
 * missing (a warning when it cannot be). A name that does not fit, or one
 * that exists and is not a regular file, is a usage error (exit 2). Returns buf.
 */
const char *mc_fe_target_state(const char *usage, const char *target, const char *given, char *buf, size_t cap);

/* The choice nearest to word (a typo: at most two edits, or a prefix), or NULL. */
const char *mc_fe_nearest(const char *word, const char *const *choices, size_t n);

/* The network options every session program shares: -g GROUP -i IFACE -p PORT -t TTL. */
struct mc_fe_net {
	const char *group, *iface;
	const char *group_from, *iface_from; /* what set them ("-g", "MCAST_GROUP"; NULL: the default), for errors */
	uint64_t port, ttl;
};

/*
 * Fills the defaults of lib/defaults.h, or of the environment where set:
 * MCAST_GROUP, MCAST_PORT, MCAST_IFACE (options given later win). A bad
 * MCAST_PORT exits 2 naming it.
 */
void mc_fe_net_defaults(struct mc_fe_net *n);

/* Takes getopt's c and optarg; returns 1 when c was -g, -i, -p or -t (a bad value exits 2), else 0. */
int mc_fe_net_option(const char *usage, int c, const char *arg, struct mc_fe_net *n);

/*
 * --session-key FILE: reads the 32-byte key (warning when the file is open
 * to group or others), and authenticates every datagram the program sends
 * and receives from now on (mc_net_set_auth). Exits 1 with a message naming
 * the file when it cannot. Returns the context, for its counters.
 */
struct mc_auth;
struct mc_auth *mc_fe_session_key(const char *path);
/*
 * --decrypt KEY: reads the content key (a 32-byte key file or a box secret
 * key) into k, warning when the file is open to group or others. Returns 0,
 * or -1 after a message naming the file.
 */
struct mc_content_key;
int mc_fe_decrypt_key(const char *path, struct mc_content_key *k);

/* Says how many datagrams failed authentication (when any), then turns it off and frees a. NULL: nothing. */
void mc_fe_auth_report(struct mc_auth *a);
/*
 * With --session-key, adds the datagrams dropped so far to a --json summary:
 * auth_failed (tag did not match, or too short for one) and auth_replayed
 * (authentic but taken before); without it, nothing (mcast-json(7)).
 */
struct mc_json;
void mc_fe_auth_json(struct mc_json *j);

/*
 * SIGINT, SIGTERM and SIGHUP set *flag to the signal number (no SA_RESTART);
 * SIGPIPE is ignored (a closed pipe is an error on write, said and counted).
 */
void mc_fe_signals(volatile sig_atomic_t *flag);

/*
 * As mc_fe_signals, for a program that waits in ppoll(2): SIGUSR1 also sets
 * *usr1 (when not NULL), and these signals stay blocked except inside the
 * ppoll given *waitmask, so that none slips between a check and the wait.
 */
void mc_fe_signals_ppoll(volatile sig_atomic_t *flag, volatile sig_atomic_t *usr1, sigset_t *waitmask);

/* Before exec or raise: the dispositions and the mask as they were before mc_fe_signals*. */
void mc_fe_signals_restore(void);

/*
 * What a program says of itself: its usage (the man page's SYNOPSIS), what
 * --help adds after it, what --version adds after "PROG VERSION" (or NULL),
 * and the result word of an exit 3 that wrote no summary of its own (NULL:
 * "incomplete"; mcast-json(7)).
 */
struct mc_fe_prog {
	const char *usage, *help, *version, *exit3;
};

/*
 * The options every program takes, as getopt_long gives them: -h/--help,
 * -q/--quiet, -v/--verbose, and the long-only --json, --version and
 * --syslog (MC_FE_O_SYSLOG). A program numbers its own long-only options
 * from MC_FE_OPT_OWN.
 */
enum { MC_FE_OPT_JSON = 256, MC_FE_OPT_VERSION, MC_FE_OPT_OWN };

struct mc_fe_common {
	int verbosity; /* 0 -q, 1 (the default), 2 -v */
	int json;
};

/*
 * Before the options are read: whether argv asks for --json, read as
 * getopt_long will read it with shortopts and longopts (an option's value
 * is not an option; "--", and with a leading "+" the first operand, ends
 * the options, so mcast-sched's COMMAND is not looked at). When it does, a
 * usage error found while the options are read (mc_fe_usage_error,
 * mc_fe_bad_value, mc_fe_bad_option, a bad MCAST_PORT) still ends with the
 * short summary of mc_fe_start: result "error", "exit":2, on stdout, as
 * every error of a --json run does. -h and --version print no summary.
 * Leaves getopt to start afresh (optind 0). Returns the index of the first
 * argument the options ended at (mcast-pack scans again after its command).
 */
int mc_fe_prescan(const struct mc_fe_prog *p, int argc, char **argv, const char *shortopts,
		  const struct option *longopts);

/*
 * Takes getopt's c: returns 1 when it was a common option, else 0. -h prints
 * the usage and help, --version "PROG VERSION" and p->version, on stdout;
 * both exit 0 (1 when stdout cannot be written).
 */
int mc_fe_common_option(const struct mc_fe_prog *p, int c, struct mc_fe_common *o);

/*
 * Once the command line is read: the log at o's verbosity and JSON mode
 * (mc_log_init), and with --json the promise that the run ends with one
 * summary. A run that exits, or returns through mc_fe_finish, without having
 * written one by mc_fe_summary gets {"event":"summary","v":1,"result":R,
 * ["command":CMD,]"path":PATH,"exit":STATUS}: R is complete for 0, p->exit3
 * for 3, error else; CMD and PATH as mc_fe_summary_about last said.
 */
void mc_fe_start(const struct mc_fe_prog *p, const char *argv0, const struct mc_fe_common *o);

/* What a summary written for the program names: command (NULL: no such key) and path (NULL: null). */
void mc_fe_summary_about(const char *command, const char *path);

/* mc_json_summary, noting that the run has its summary. */
struct mc_json;
void mc_fe_summary(struct mc_json *j, const char *result);

/*
 * The end of main: the summary a --json run still owes (see mc_fe_start),
 * then stdout flushed and closed. Returns status, or 1 when it was 0 and
 * stdout could not be written.
 */
int mc_fe_finish(int status);

/*
 * The group of n on port (PORT, or PORT+1 for the feedback) into g. A group
 * that is not multicast or an interface that does not exist is said and
 * exits 2.
 */
struct mc_group;
void mc_fe_net_group(const struct mc_fe_net *n, unsigned port, struct mc_group *g);

#endif
