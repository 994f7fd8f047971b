/* Unit tests of lib/log.c: control characters from hostile names never reach stderr; JSON lines stay valid. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "tap.h"

int main(void)
{
	char s[] = "win\x1b[2J\r\nforged\x7f ok";
	char line[256] = "";
	FILE *f = tmpfile();
	int saved = dup(STDERR_FILENO);

	mc_scrub(s, strlen(s));
	ok(strcmp(s, "win?[2J??forged? ok") == 0, "escape, CR, LF and DEL become '?' (%s)", s);

	/* A message naming such a thing, as mc_err prints it. */
	mc_log_init("test", 1, 0);
	fflush(stderr);
	dup2(fileno(f), STDERR_FILENO);
	mc_err("package %s", "evil\x1b]0;title\x07\nmcast-recv: complete");
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	rewind(f);
	ok(fgets(line, sizeof line, f) != NULL && strcmp(line, "test: package evil?]0;title??mcast-recv: complete\n") == 0,
	   "mc_err writes one line with no control character (%s)", line);
	ok(fgets(line, sizeof line, f) == NULL, "and no forged second line");
	fclose(f);

	/* -q (verbosity 0): warnings and errors still print, info does not; mc_err_sys names errno. */
	mc_log_init("test", 0, 0);
	f = tmpfile();
	fflush(stderr);
	dup2(fileno(f), STDERR_FILENO);
	mc_info("said only without -q");
	mc_warn("a warning");
	errno = ENOENT;
	mc_err_sys("open %s", "x");
	errno = ENOMEM;
	mc_warn_sys("read %s", "y");
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	rewind(f);
	ok(fgets(line, sizeof line, f) != NULL && strcmp(line, "test: a warning\n") == 0, "-q keeps warnings (%s)", line);
	ok(fgets(line, sizeof line, f) != NULL && strcmp(line, "test: open x: No such file or directory\n") == 0,
	   "mc_err_sys appends errno's reason (%s)", line);
	ok(fgets(line, sizeof line, f) != NULL && strcmp(line, "test: read y: out of memory\n") == 0,
	   "mc_warn_sys says ENOMEM as lib's convention does (%s)", line);
	ok(fgets(line, sizeof line, f) == NULL, "and -q drops info");
	fclose(f);

	/* A JSON line whose fields do not all fit: whole fields only, and it says so (valid JSON). */
	static char big[12000], out[16384];
	memset(big, 'a', sizeof big - 1);
	big[100] = '"';
	mc_log_init("test", 1, 1);
	f = tmpfile();
	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	dup2(fileno(f), STDOUT_FILENO);
	struct mc_json j;
	mc_json_begin(&j, "summary");
	mc_json_u64(&j, "chunks", 7);
	mc_json_str(&j, "path", big + 4000); /* about 8000 bytes: fits, with its escape */
	mc_json_str(&j, "missing", big);     /* does not fit: dropped whole */
	mc_json_raw(&j, "list", "[1,2]");    /* a small field after it still fits */
	mc_json_end(&j);
	mc_json_begin(&j, "small");
	mc_json_u64(&j, "n", 1);
	mc_json_end(&j);
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	rewind(f);
	size_t n = fread(out, 1, sizeof out - 1, f);
	out[n] = '\0';
	char *nl = strchr(out, '\n');
	ok(nl != NULL && nl - out > 7000 && strncmp(nl - 18, ",\"truncated\":true}", 18) == 0,
	   "an overflowing line ends with \"truncated\":true (%zu bytes)", nl ? (size_t)(nl - out) : 0);
	ok(strstr(out, "\"missing\"") == NULL && strstr(out, "\"path\":\"aaa") != NULL &&
	   strstr(out, ",\"list\":[1,2]") != NULL, "whole fields only: the one that does not fit is left out");
	ok(nl != NULL && strcmp(nl + 1, "{\"event\":\"small\",\"n\":1}\n") == 0, "the next line is whole (%s)", nl ? nl + 1 : "");
	/* Valid JSON: python3's parser, when there is one. */
	if (system("command -v python3 >/dev/null 2>&1") == 0) {
		FILE *py = popen("python3 -c 'import json,sys; [json.loads(l) for l in sys.stdin]' 2>/dev/null", "w");
		fwrite(out, 1, n, py);
		ok(pclose(py) == 0, "both lines parse as JSON");
	}
	fclose(f);
	/* MCAST_LOG_TIME's prefix: ISO 8601 local time with the offset in its extended form. */
	char ts[40];
	setenv("TZ", "IST-5:30", 1);
	tzset();
	ok(strcmp(mc_log_time(0, ts, sizeof ts), "1970-01-01T05:30:00+05:30") == 0, "mc_log_time east of UTC (%s)", ts);
	setenv("TZ", "EST5", 1);
	tzset();
	ok(strcmp(mc_log_time(86400 + 3661, ts, sizeof ts), "1970-01-01T20:01:01-05:00") == 0, "mc_log_time west of UTC (%s)", ts);
	setenv(MC_LOG_TIME_ENV, "1", 1);
	mc_log_init("test", 1, 0);
	f = tmpfile();
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	dup2(fileno(f), STDERR_FILENO);
	mc_info("timed");
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	rewind(f);
	ok(fgets(line, sizeof line, f) != NULL && strlen(line) == 26 + strlen("test: timed\n") && line[10] == 'T' &&
	   strcmp(line + 19, "-05:00 test: timed\n") == 0, "with MCAST_LOG_TIME=1 a line starts with the time (%s)", line);
	fclose(f);
	unsetenv(MC_LOG_TIME_ENV);
	return tap_done();
}
