/* Diagnostics, progress line and --json events: the one output layer of every program. */
#ifndef MC_LOG_H
#define MC_LOG_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

/*
 * Talk goes to stderr as "prog: object: reason"; data and --json lines go to
 * stdout. mc_log_init() must run first. Verbosity: 0 quiet (errors and warnings),
 * 1 normal, 2 verbose.
 */
void mc_log_init(const char *prog, int verbosity, int json);

/*
 * --syslog: from the next mc_log_init on, talk goes to syslog(3) (the
 * journal) instead of stderr, ident the program, facility LOG_USER, with
 * the priority of its level (LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG);
 * no progress line. Usage errors stay on stderr. Call it from option parsing.
 */
void mc_log_syslog(void);

/*
 * MCAST_LOG_TIME=1 in the environment (read by mc_log_init): each line on
 * stderr starts with the local time in ISO 8601 with its offset
 * ("2026-12-04T09:30:05+01:00 mcast-recv: ..."), for cron logs. Off by
 * default, so lines stay as scripts match them.
 */
#define MC_LOG_TIME_ENV "MCAST_LOG_TIME"
/* Writes that prefix (without the space) for time t into out (at least 32 bytes); returns out. */
char *mc_log_time(time_t t, char *out, size_t len);
const char *mc_log_prog(void);
int mc_log_verbosity(void);
int mc_log_json(void);

/*
 * Errors and warnings always print (-q silences talk, never a warning: a
 * receiver that cannot send feedback or a source that served bad data is
 * worth a line in any log); info needs verbosity >= 1, debug >= 2.
 */
void mc_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void mc_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* mc_err and mc_warn with ": " and errno's reason appended (mc_strerror; errno as it was when called). */
void mc_err_sys(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void mc_warn_sys(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void mc_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void mc_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Turns control characters in s[0..n) into '?': names from packets and packages may hold anything. */
void mc_scrub(char *s, size_t n);

/*
 * Progress line: redrawn in place on stderr only when stderr is a terminal and
 * verbosity >= 1; rate limited to ~5 updates a second unless force is set.
 * mc_progress_end() clears it before other output.
 */
void mc_progress(int force, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mc_progress_end(void);

/*
 * One JSON object per line on stdout. Build with begin/field calls, then
 * mc_json_end() writes and flushes it. Strings are escaped. Calls are no-ops
 * unless --json was given. Example:
 *   struct mc_json j; mc_json_begin(&j, "done");
 *   mc_json_u64(&j, "bytes", n); mc_json_end(&j);
 * gives {"event":"done","bytes":123}
 */
struct mc_json {
	char buf[8192];
	size_t len;
	int overflow;
};
void mc_json_begin(struct mc_json *j, const char *event);
void mc_json_str(struct mc_json *j, const char *key, const char *val);
void mc_json_u64(struct mc_json *j, const char *key, uint64_t val);
void mc_json_i64(struct mc_json *j, const char *key, int64_t val);
void mc_json_dbl(struct mc_json *j, const char *key, double val);
void mc_json_bool(struct mc_json *j, const char *key, int val);
/*
 * The last line of every program's --json output: {"event":"summary","v":1,
 * "result":RESULT, ...}. RESULT is a word of mcast-json(7): complete,
 * incomplete, ended, left, damaged, timeout, interrupted, error, started,
 * empty. MC_JSON_V counts changes to the keys scripts rely on.
 */
#define MC_JSON_V 1
void mc_json_summary(struct mc_json *j, const char *result);

/* Raw JSON value (an array or object the caller built with mc_json_escape). */
void mc_json_raw(struct mc_json *j, const char *key, const char *raw);
void mc_json_end(struct mc_json *j);

/* Appends s as a JSON string literal (with quotes) to buf of size cap at *len. */
void mc_json_escape(char *buf, size_t cap, size_t *len, const char *s);

/* Checks that stdout could be flushed and closed: returns 0, or -1 after an error message. */
int mc_log_close_stdout(void);

/* Hex of n bytes into out (2n+1 bytes). */
char *mc_hex(const uint8_t *p, size_t n, char *out);

#endif
