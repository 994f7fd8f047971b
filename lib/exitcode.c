/* The reason of an error code, said as lib's one convention says it (lib/exitcode.h). */
#include "exitcode.h"

#include <errno.h>
#include <string.h>

static const char NOMEM[] = "out of memory";

const char *mc_strerror(int code)
{
	int e = code < 0 ? -code : code;

	return e == ENOMEM ? NOMEM : strerror(e);
}
