/* The state of a target written in place: format, load, key checks, resume check, save; see tstate.h. */
#include "tstate.h"
#include "exitcode.h"

#include "be.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TSTATE_MAGIC "MCTSTAT1"
#define TSTATE_HEAD (8 + MC_ID_LEN + MC_DIGEST_LEN + 4) /* before the manifest */
#define TSTATE_TAIL (4 + 4 + 4 + 8)                     /* nchunks, count, nspans, XXH64 */

/* Says "PATH: MSG" in err; returns -e (lib/exitcode.h). */
static int fail(char *err, size_t errlen, int e, const char *path, const char *msg)
{
	snprintf(err, errlen, "%s: %s", path, msg);
	return -e;
}

int mc_tstate_load(const char *path, struct mc_manifest *m, uint8_t tid[MC_DIGEST_LEN], struct mc_state *st,
		   char *err, size_t errlen)
{
	uint8_t *buf = NULL;
	int fd, rc;
	struct stat sb;
	char e[256];

	memset(m, 0, sizeof *m);
	memset(st, 0, sizeof *st);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		if (errno == ENOENT)
			return 0;
		int e0 = errno;
		return fail(err, errlen, e0, path, mc_strerror(e0));
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size < TSTATE_HEAD + TSTATE_TAIL + 1 ||
	    (uint64_t)sb.st_size > MC_TSTATE_MAX) {
		rc = fail(err, errlen, EINVAL, path, "not a target state file (size or kind)");
		goto out;
	}
	size_t len = (size_t)sb.st_size;
	if ((buf = malloc(len)) == NULL) {
		rc = fail(err, errlen, ENOMEM, path, mc_strerror(-ENOMEM));
		goto out;
	}
	ssize_t got = pread(fd, buf, len, 0);
	if (got != (ssize_t)len) {
		/* A failed read says its errno; a short one is a file cut while it was read: not a state (EINVAL). */
		int e0 = got < 0 ? errno : EINVAL;
		rc = fail(err, errlen, e0, path, got < 0 ? mc_strerror(e0) : "damaged target state file (shorter than it was)");
		goto out;
	}
	if (memcmp(buf, TSTATE_MAGIC, 8) != 0 || !mc_state_sealed(buf, len)) {
		rc = fail(err, errlen, EINVAL, path, "damaged or not a target state file");
		goto out;
	}
	uint32_t mlen = mc_get32(buf + TSTATE_HEAD - 4);
	if (mlen > len - TSTATE_HEAD - TSTATE_TAIL) {
		rc = fail(err, errlen, EINVAL, path, "damaged target state file (manifest length)");
		goto out;
	}
	if ((rc = mc_manifest_parse(buf + TSTATE_HEAD, mlen, m, e, sizeof e)) < 0) {
		snprintf(err, errlen, "%s: damaged target state file (manifest: %s)", path, e);
		if (rc != -ENOMEM)
			rc = -EINVAL;
		goto out;
	}
	const uint8_t *q = buf + TSTATE_HEAD + mlen;
	uint32_t n = mc_get32(q), nspans;
	size_t bm = (size_t)n / 8 + 1;
	if (n != m->nchunks || memcmp(buf + 8, m->id, MC_ID_LEN) != 0 || len - TSTATE_HEAD - mlen < TSTATE_TAIL + bm ||
	    (nspans = mc_get32(q + 8 + bm)) > (len - TSTATE_HEAD - mlen - TSTATE_TAIL - bm) / 12 ||
	    len != TSTATE_HEAD + mlen + TSTATE_TAIL + bm + (size_t)nspans * 12) {
		mc_manifest_free(m);
		rc = fail(err, errlen, EINVAL, path, "damaged target state file (lengths)");
		goto out;
	}
	if (mc_state_init(st, m->id, n) < 0 || (nspans && (st->spans = malloc((size_t)nspans * sizeof *st->spans)) == NULL)) {
		mc_state_free(st);
		mc_manifest_free(m);
		rc = fail(err, errlen, ENOMEM, path, mc_strerror(-ENOMEM));
		goto out;
	}
	mc_state_map_get(st, q + 8);
	mc_state_spans_get(st, q + 8 + bm + 4, nspans);
	mc_state_spans_fit(st, m);
	memcpy(tid, buf + 8 + MC_ID_LEN, MC_DIGEST_LEN);
	rc = 1;
out:
	close(fd);
	free(buf);
	return rc;
}

int mc_tstate_match(const char *path, const struct mc_manifest *sm, const uint8_t tid[MC_DIGEST_LEN],
		    const struct mc_manifest *want, struct mc_target *t, char *err, size_t errlen)
{
	uint8_t mine[MC_DIGEST_LEN];
	char a[2 * MC_NAME_MAX + 64], b[2 * MC_NAME_MAX + 64];

	if (want && memcmp(sm->id, want->id, MC_ID_LEN) != 0) {
		mc_manifest_describe(sm, a, sizeof a);
		mc_manifest_describe(want, b, sizeof b);
		snprintf(err, errlen, "%s: the state of package %s, not of %s: refused (remove it to start over)", path,
			 a, b);
		return -EINVAL;
	}
	mc_target_identity(t, mine);
	if (memcmp(mine, tid, MC_DIGEST_LEN) != 0) {
		snprintf(err, errlen,
			 "%s: the state of another target (not this device or file, or of another size): refused "
			 "(remove it to start over)",
			 path);
		return -EINVAL;
	}
	return 0;
}

long mc_tstate_check(struct mc_target *t, const struct mc_manifest *m, struct mc_state *st, char *err, size_t errlen)
{
	long found = 0;

	for (uint32_t i = 0; i < m->nchunks; i++) {
		if (mc_state_has(st, i))
			continue;
		/* A span the file system does not use: whatever the target holds will do (as mc_target_check). */
		int ok = mc_manifest_chunk_flags(m, i) & MC_CHUNK_DONTCARE ? 1 : mc_target_span_ok(t, i, err, errlen);
		if (ok < 0)
			return ok;
		if (ok) {
			mc_state_set(st, i);
			found++;
		}
	}
	if (found)
		mc_state_spans_fit(st, m);
	return found;
}

int mc_tstate_refuse_foreign(const char *path, char *err, size_t errlen)
{
	uint8_t head[8];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	ssize_t n;

	if (fd < 0)
		return 0;
	n = pread(fd, head, sizeof head, 0);
	close(fd);
	if (n > 0 && (n < (ssize_t)sizeof head || memcmp(head, TSTATE_MAGIC, sizeof head) != 0))
		return fail(err, errlen, EINVAL, path,
			    "not a target state file (it holds something else): refused; give another --state FILE");
	return 0;
}

long mc_tstate_resume(const char *path, struct mc_target *t, const struct mc_manifest *m, struct mc_state *st,
		      char *why, size_t whylen, char *err, size_t errlen)
{
	struct mc_manifest sm;
	uint8_t tid[MC_DIGEST_LEN];

	memset(st, 0, sizeof *st);
	if (mc_tstate_refuse_foreign(path, err, errlen) < 0)
		return -EINVAL;
	int l = mc_tstate_load(path, &sm, tid, st, why, whylen);

	if (l == -ENOMEM) {
		snprintf(err, errlen, "%s", why);
		return l;
	}
	if (l <= 0) {
		if (l == 0 && whylen)
			why[0] = '\0';
		if (mc_state_init(st, m->id, m->nchunks) < 0)
			return fail(err, errlen, ENOMEM, path, mc_strerror(-ENOMEM));
	} else {
		int rc = mc_tstate_match(path, &sm, tid, m, t, err, errlen);
		mc_manifest_free(&sm);
		if (rc < 0) {
			mc_state_free(st);
			return rc;
		}
		if (whylen)
			why[0] = '\0';
	}
	long n = mc_tstate_check(t, m, st, err, errlen);
	if (n < 0)
		mc_state_free(st);
	return n;
}

int mc_tstate_save(const char *path, const struct mc_manifest *m, const uint8_t tid[MC_DIGEST_LEN],
		   const struct mc_state *st, char *err, size_t errlen)
{
	size_t bm = (size_t)st->nchunks / 8 + 1, plen = strlen(path);
	uint32_t nspans = st->nspans;
	size_t fixed = TSTATE_HEAD + m->raw_len + TSTATE_TAIL + bm;

	if (fixed + (size_t)nspans * 12 > MC_TSTATE_MAX)
		nspans = (uint32_t)((MC_TSTATE_MAX - fixed) / 12); /* keep what fits: the rest is fetched again */
	size_t len = fixed + (size_t)nspans * 12;
	char *tmp = malloc(plen + 5);
	uint8_t *buf = malloc(len);
	int rc;

	if (tmp == NULL || buf == NULL) {
		rc = fail(err, errlen, ENOMEM, path, mc_strerror(-ENOMEM));
		goto out;
	}
	memcpy(tmp, path, plen);
	memcpy(tmp + plen, ".tmp", 5);
	memcpy(buf, TSTATE_MAGIC, 8);
	memcpy(buf + 8, m->id, MC_ID_LEN);
	memcpy(buf + 8 + MC_ID_LEN, tid, MC_DIGEST_LEN);
	mc_put32(buf + TSTATE_HEAD - 4, m->raw_len);
	memcpy(buf + TSTATE_HEAD, m->raw, m->raw_len);
	uint8_t *q = mc_state_map_put(st, buf + TSTATE_HEAD + m->raw_len);
	mc_put32(q, nspans);
	mc_state_spans_put(st, nspans, q + 4);
	rc = mc_state_replace(path, tmp, buf, len, err, errlen);
out:
	free(buf);
	free(tmp);
	return rc;
}

int mc_tstate_remove(const char *path, char *err, size_t errlen)
{
	size_t n = strlen(path);
	char *tmp = malloc(n + 5);
	int rc = mc_state_unlink_ours(path);

	if (rc < 0) {
		free(tmp);
		return fail(err, errlen, -rc, path, mc_strerror(rc));
	}
	if (tmp) {
		memcpy(tmp, path, n);
		memcpy(tmp + n, ".tmp", 5);
		mc_state_unlink_ours(tmp);
		free(tmp);
	}
	return 0;
}
