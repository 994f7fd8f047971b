/* Unit tests of lib/log.c: control characters from hostile names never reach stderr. */
#include <stdio.h>
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
	return tap_done();
}
