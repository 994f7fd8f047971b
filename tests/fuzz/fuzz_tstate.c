/*
 * libFuzzer target: a hostile target state file (lib/tstate.c), as
 * mcast-repair --to and mcast-recv --to load it. Whatever the file holds:
 * nothing crashes; what loads is consistent (the manifest parses, the map
 * counts what it marks within nchunks, the spans are sorted, in range and
 * fit the manifest); saved again and loaded back, it is the same.
 *
 * Input: [flags][state bytes]
 *   flags & 1   fix the file's XXH64 (else the bytes are taken as they are)
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "be.h"
#include "tstate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64], path[128], again[128];

static void consistent(const struct mc_manifest *m, const struct mc_state *st)
{
	uint32_t n = 0;

	assert(st->nchunks == m->nchunks && memcmp(st->id, m->id, MC_ID_LEN) == 0);
	for (uint32_t i = 0; i < st->nchunks; i++)
		n += mc_state_has(st, i);
	assert(n == st->nhave);
	for (uint32_t i = 0; i < st->nspans; i++) {
		const struct mc_span *s = &st->spans[i];
		assert(s->chunk < m->nchunks && !mc_state_has(st, s->chunk) && s->len > 0);
		assert((uint64_t)s->off + s->len <= mc_manifest_chunk_len(m, s->chunk));
		if (i > 0)
			assert(s->chunk > st->spans[i - 1].chunk ||
			       (s->chunk == st->spans[i - 1].chunk && s->off >= st->spans[i - 1].off + st->spans[i - 1].len));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mc_manifest m, m2;
	struct mc_state st, st2;
	uint8_t tid[MC_DIGEST_LEN], tid2[MC_DIGEST_LEN];
	char err[1024];
	int fd;

	if (size < 1)
		return 0;
	if (dir[0] == '\0') {
		snprintf(dir, sizeof dir, "/tmp/fuzz-tstate.XXXXXX");
		assert(mkdtemp(dir) != NULL);
		snprintf(path, sizeof path, "%s/state", dir);
		snprintf(again, sizeof again, "%s/again", dir);
	}
	uint8_t *b = malloc(size - 1 ? size - 1 : 1);
	assert(b != NULL);
	memcpy(b, data + 1, size - 1);
	if ((data[0] & 1) && size - 1 >= 8)
		mc_put64(b + size - 1 - 8, XXH64(b, size - 1 - 8, 0));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert(fd >= 0 && write(fd, b, size - 1) == (ssize_t)(size - 1));
	close(fd);
	free(b);

	int rc = mc_tstate_load(path, &m, tid, &st, err, sizeof err);
	assert(rc == 1 || rc == -EINVAL || rc == -ENOMEM);
	if (rc == 1) {
		consistent(&m, &st);
		/* Saved and loaded back: the same package, target, map and spans. */
		assert(mc_tstate_save(again, &m, tid, &st, err, sizeof err) == 0);
		assert(mc_tstate_load(again, &m2, tid2, &st2, err, sizeof err) == 1);
		assert(memcmp(m.id, m2.id, MC_ID_LEN) == 0 && memcmp(tid, tid2, MC_DIGEST_LEN) == 0);
		assert(st.nhave == st2.nhave && memcmp(st.have, st2.have, (size_t)st.nchunks / 8 + 1) == 0);
		assert(st.nspans == st2.nspans &&
		       (st.nspans == 0 || memcmp(st.spans, st2.spans, st.nspans * sizeof *st.spans) == 0));
		mc_manifest_free(&m2);
		mc_state_free(&st2);
		mc_manifest_free(&m);
		mc_state_free(&st);
	} else {
		assert(m.raw == NULL && st.have == NULL && st.spans == NULL);
	}
	return 0;
}
