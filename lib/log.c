/* Diagnostics, progress and JSON events; see log.h. */
#include "log.h"
#include "clock.h"
#include "exitcode.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static const char *prog_name = "mcast";
static int verbosity_level = 1;
static int json_mode;
static int progress_shown;
static int stderr_tty = -1;
static uint64_t progress_last; /* ms */
static int syslog_on, syslog_open, time_on;

void mc_log_syslog(void) { syslog_on = 1; }

void mc_log_init(const char *prog, int verbosity, int json)
{
	const char *slash = strrchr(prog, '/');
	const char *t = getenv(MC_LOG_TIME_ENV);

	prog_name = slash ? slash + 1 : prog;
	verbosity_level = verbosity;
	json_mode = json;
	stderr_tty = isatty(STDERR_FILENO);
	time_on = t && *t && strcmp(t, "0") != 0;
	if (syslog_on && !syslog_open) {
		openlog(prog_name, LOG_PID, LOG_USER);
		syslog_open = 1;
	}
}

char *mc_log_time(time_t t, char *out, size_t len)
{
	struct tm tm;
	char off[8];

	if (localtime_r(&t, &tm) == NULL || strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm) == 0 ||
	    strftime(off, sizeof off, "%z", &tm) != 5) {
		snprintf(out, len, "%lld", (long long)t);
		return out;
	}
	/* ISO 8601's extended form: +01:00, as the date before it has dashes. */
	size_t n = strlen(out);
	snprintf(out + n, len - n, "%.3s:%.2s", off, off + 3);
	return out;
}

const char *mc_log_prog(void) { return prog_name; }
int mc_log_verbosity(void) { return verbosity_level; }
int mc_log_json(void) { return json_mode; }

void mc_scrub(char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			s[i] = '?';
}

static void vsay(int prio, const char *fmt, va_list ap)
{
	char line[4096], ts[40];
	int n;

	if (syslog_open) {
		/* syslog adds the program and pid; the line is scrubbed as on stderr. */
		vsnprintf(line, sizeof line, fmt, ap);
		mc_scrub(line, strlen(line));
		syslog(prio, "%s", line);
		return;
	}
	mc_progress_end();
	/* One write per line: programs sharing a terminal or log never interleave mid-line. */
	n = snprintf(line, sizeof line, "%s%s%s: ", time_on ? mc_log_time(time(NULL), ts, sizeof ts) : "", time_on ? " " : "",
		     prog_name);
	if (n < 0 || (size_t)n >= sizeof line)
		n = 0;
	vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	n = (int)strlen(line);
	/* No escape sequence or forged line reaches the terminal or log. */
	mc_scrub(line, (size_t)n);
	line[n++] = '\n';
	fwrite(line, 1, (size_t)n, stderr);
}

static void say(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(int prio, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsay(prio, fmt, ap);
	va_end(ap);
}

void mc_err(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsay(LOG_ERR, fmt, ap);
	va_end(ap);
}

/* vsay at prio with ": mc_strerror(e)" appended. */
static void vsay_sys(int prio, int e, const char *fmt, va_list ap)
{
	char msg[3072];

	vsnprintf(msg, sizeof msg, fmt, ap);
	say(prio, "%s: %s", msg, mc_strerror(e));
}

void mc_err_sys(const char *fmt, ...)
{
	int e = errno;
	va_list ap;

	va_start(ap, fmt);
	vsay_sys(LOG_ERR, e, fmt, ap);
	va_end(ap);
}

void mc_warn_sys(const char *fmt, ...)
{
	int e = errno;
	va_list ap;

	va_start(ap, fmt);
	vsay_sys(LOG_WARNING, e, fmt, ap);
	va_end(ap);
}

void mc_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsay(LOG_WARNING, fmt, ap);
	va_end(ap);
}

void mc_info(const char *fmt, ...)
{
	va_list ap;
	if (verbosity_level < 1)
		return;
	va_start(ap, fmt);
	vsay(LOG_INFO, fmt, ap);
	va_end(ap);
}

void mc_debug(const char *fmt, ...)
{
	va_list ap;
	if (verbosity_level < 2)
		return;
	va_start(ap, fmt);
	vsay(LOG_DEBUG, fmt, ap);
	va_end(ap);
}

void mc_progress(int force, const char *fmt, ...)
{
	uint64_t now;
	va_list ap;

	if (stderr_tty < 0)
		stderr_tty = isatty(STDERR_FILENO);
	if (!stderr_tty || verbosity_level < 1 || syslog_open)
		return;
	now = mc_now_ms();
	if (!force && progress_shown && now - progress_last < 200)
		return;
	progress_last = now;
	fputs("\r\033[K", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fflush(stderr);
	progress_shown = 1;
}

void mc_progress_end(void)
{
	if (progress_shown) {
		fputs("\r\033[K", stderr);
		progress_shown = 0;
	}
}

/*
 * The buffer keeps JSON_RESERVE bytes for the end: a field that does not fit
 * is dropped whole (never cut inside a string), and the line ends with
 * "truncated":true so that it stays valid JSON and says what happened.
 */
#define JSON_RESERVE 24 /* ,"truncated":true} and the NUL */

static void put(struct mc_json *j, const char *s, size_t n)
{
	if (j->len + n + JSON_RESERVE >= sizeof j->buf) {
		j->overflow = 1;
		return;
	}
	memcpy(j->buf + j->len, s, n);
	j->len += n;
	j->buf[j->len] = '\0';
}

/* A string literal into j, or overflow when it would not fit whole. */
static void put_str(struct mc_json *j, const char *s)
{
	size_t cap = sizeof j->buf - JSON_RESERVE, n = j->len;

	if (j->overflow)
		return;
	mc_json_escape(j->buf, cap, &n, s);
	if (n + 2 >= cap) /* mc_json_escape stops there: the string may be cut */
		j->overflow = 1;
	else
		j->len = n;
	j->buf[j->len] = '\0';
}

/* Ends a field begun at len at: a field that overflowed is taken back whole. */
static void field_end(struct mc_json *j, size_t at, int was)
{
	if (j->overflow && !was) {
		j->len = at;
		j->buf[at] = '\0';
	}
	j->overflow |= was;
}

void mc_json_escape(char *buf, size_t cap, size_t *len, const char *s)
{
	char tmp[8];
	size_t n = *len;

#define PUTC(c) do { if (n + 2 < cap) buf[n++] = (c); } while (0)
	PUTC('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\') {
			PUTC('\\');
			PUTC((char)*p);
		} else if (*p < 0x20 || *p == 0x7f) {
			snprintf(tmp, sizeof tmp, "\\u%04x", *p);
			for (char *t = tmp; *t; t++)
				PUTC(*t);
		} else {
			PUTC((char)*p);
		}
	}
	PUTC('"');
#undef PUTC
	if (n < cap)
		buf[n] = '\0';
	*len = n;
}

static void key(struct mc_json *j, const char *k)
{
	put(j, ",", 1);
	put_str(j, k);
	put(j, ":", 1);
}

void mc_json_begin(struct mc_json *j, const char *event)
{
	j->len = 0;
	j->overflow = 0;
	j->buf[0] = '\0';
	put(j, "{\"event\":", 9);
	put_str(j, event);
}

/* Each field: where it starts, whether the line overflowed before it; dropped whole if it does not fit. */
#define FIELD_BEGIN(j) size_t at_ = (j)->len; int was_ = (j)->overflow; (j)->overflow = 0
#define FIELD_END(j) field_end((j), at_, was_)

void mc_json_str(struct mc_json *j, const char *k, const char *val)
{
	FIELD_BEGIN(j);
	key(j, k);
	put_str(j, val ? val : "");
	FIELD_END(j);
}

void mc_json_u64(struct mc_json *j, const char *k, uint64_t val)
{
	char tmp[32];
	FIELD_BEGIN(j);
	key(j, k);
	put(j, tmp, (size_t)snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)val));
	FIELD_END(j);
}

void mc_json_i64(struct mc_json *j, const char *k, int64_t val)
{
	char tmp[32];
	FIELD_BEGIN(j);
	key(j, k);
	put(j, tmp, (size_t)snprintf(tmp, sizeof tmp, "%lld", (long long)val));
	FIELD_END(j);
}

void mc_json_dbl(struct mc_json *j, const char *k, double val)
{
	char tmp[64];
	FIELD_BEGIN(j);
	key(j, k);
	put(j, tmp, (size_t)snprintf(tmp, sizeof tmp, "%.6g", val));
	FIELD_END(j);
}

void mc_json_bool(struct mc_json *j, const char *k, int val)
{
	FIELD_BEGIN(j);
	key(j, k);
	put(j, val ? "true" : "false", val ? 4 : 5);
	FIELD_END(j);
}

void mc_json_raw(struct mc_json *j, const char *k, const char *raw)
{
	FIELD_BEGIN(j);
	key(j, k);
	put(j, raw, strlen(raw));
	FIELD_END(j);
}

void mc_json_summary(struct mc_json *j, const char *result)
{
	mc_json_begin(j, "summary");
	mc_json_u64(j, "v", MC_JSON_V);
	mc_json_str(j, "result", result);
}

void mc_json_end(struct mc_json *j)
{
	if (!json_mode)
		return;
	if (j->overflow) { /* the reserve holds this: the line stays valid JSON */
		memcpy(j->buf + j->len, ",\"truncated\":true", 17);
		j->len += 17;
	}
	j->buf[j->len++] = '}';
	mc_progress_end();
	fwrite(j->buf, 1, j->len, stdout);
	fputc('\n', stdout);
	fflush(stdout);
}

int mc_log_close_stdout(void)
{
	if (fflush(stdout) != 0 || ferror(stdout) || fclose(stdout) != 0) {
		if (errno != EPIPE) {
			mc_err("standard output: %s", mc_strerror(errno ? errno : EIO));
			return -1;
		}
		mc_err("standard output: %s", mc_strerror(errno));
		return -1;
	}
	return 0;
}

char *mc_hex(const uint8_t *p, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[p[i] >> 4];
		out[2 * i + 1] = d[p[i] & 15];
	}
	out[2 * n] = '\0';
	return out;
}
