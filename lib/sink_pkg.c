/* The package file sink: PKG.part in the final layout, PKG.state beside it, renamed to PKG when complete. */
#include "sink.h"
#include "exitcode.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct sink_pkg {
	struct mc_sink s;
	char *pkg;             /* the final name */
	int fd;                /* PKG.part */
	uint64_t payload_off;  /* 0 until the session (or PKG.part's head) says */
	int head;              /* PKG.part holds its header and manifest */
};

/* Where the payload starts for a manifest of len bytes: the package module's layout, never derived here. */
static uint64_t payload_off(uint64_t manifest_len, uint64_t payload_size)
{
	struct mc_manifest m;
	struct mc_pkg_layout l;

	memset(&m, 0, sizeof m);
	m.raw_len = (uint32_t)manifest_len;
	m.payload_size = payload_size;
	mc_manifest_layout(&m, &l);
	return l.payload_off;
}

static int fail(const struct sink_pkg *k, int e, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s.part: %s", k->pkg, mc_strerror(-e));
	return -e;
}

static int pkg_resume(struct mc_sink *s, struct mc_resume *rs, char *err, size_t errlen)
{
	struct sink_pkg *k = (struct sink_pkg *)s;
	int rc = mc_resume_part(k->pkg, k->fd, MC_RESUME_SAVE, rs, err, errlen);

	if (rc > 0) {
		k->payload_off = payload_off(rs->m.raw_len, rs->m.payload_size);
		k->head = 1;
	}
	return rc < 0 ? rc : 0;
}

static int pkg_announce(struct mc_sink *s, const struct mc_announce *a, char *err, size_t errlen)
{
	struct sink_pkg *k = (struct sink_pkg *)s;

	if (k->payload_off == 0)
		k->payload_off = payload_off(a->manifest_len, a->payload_size);
	/* Said at once, when the size is known: not half way through a session, nothing received in vain. */
	return mc_state_space_check(k->pkg, ".part", k->fd, k->payload_off + a->payload_size, err, errlen);
}

static int pkg_manifest(struct mc_sink *s, const struct mc_manifest *m, char *err, size_t errlen)
{
	struct sink_pkg *k = (struct sink_pkg *)s;

	if (k->head)
		return 0;
	int e = mc_pkg_write_head(k->fd, m);
	if (e < 0)
		return fail(k, -e, err, errlen);
	k->payload_off = payload_off(m->raw_len, m->payload_size);
	k->head = 1;
	return 0;
}

static int pkg_write(struct mc_sink *s, uint64_t off, const void *buf, size_t len, char *err, size_t errlen)
{
	struct sink_pkg *k = (struct sink_pkg *)s;
	const uint8_t *p = buf;

	if (k->payload_off == 0) /* nothing is placed before the session says where */
		return fail(k, EINVAL, err, errlen);
	while (len) {
		ssize_t n = pwrite(k->fd, p, len, (off_t)(k->payload_off + off));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return fail(k, errno, err, errlen);
		}
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

static int pkg_read(struct mc_sink *s, uint64_t off, void *buf, size_t len, char *err, size_t errlen)
{
	struct sink_pkg *k = (struct sink_pkg *)s;
	ssize_t n;

	if (k->payload_off == 0)
		return fail(k, EINVAL, err, errlen);
	n = pread(k->fd, buf, len, (off_t)(k->payload_off + off));
	if (n != (ssize_t)len) {
		if (n < 0)
			return fail(k, errno, err, errlen);
		snprintf(err, errlen, "%s.part: short read", k->pkg);
		return -EIO;
	}
	return 0;
}

static int pkg_sync(struct mc_sink *s, char *err, size_t errlen)
{
	struct sink_pkg *k = (struct sink_pkg *)s;

	return fdatasync(k->fd) < 0 ? fail(k, errno, err, errlen) : 0;
}

static int pkg_save(struct mc_sink *s, const struct mc_state *st, char *err, size_t errlen)
{
	struct sink_pkg *k = (struct sink_pkg *)s;
	int rc = mc_state_save(k->pkg, k->fd, st, err, errlen);

	return rc < 0 ? rc : 0;
}

static int pkg_finish(struct mc_sink *s, const struct mc_manifest *m, char *err, size_t errlen)
{
	struct sink_pkg *k = (struct sink_pkg *)s;
	int rc = mc_state_finish(k->pkg, k->fd, m, err, errlen);

	return rc < 0 ? rc : 0;
}

static void pkg_close(struct mc_sink *s)
{
	struct sink_pkg *k = (struct sink_pkg *)s;

	if (k->fd >= 0) {
		/* Nothing was ever received: leave no empty PKG.part behind. */
		if (!k->head)
			mc_state_drop_empty_part(k->pkg, k->fd);
		close(k->fd);
	}
	free(k->pkg);
	free(k);
}

static const struct mc_sink_ops pkg_ops = {
	.resume = pkg_resume,
	.announce = pkg_announce,
	.manifest = pkg_manifest,
	.write = pkg_write,
	.read = pkg_read,
	.chunk = NULL,
	.sync = pkg_sync,
	.save = pkg_save,
	.finish = pkg_finish,
	.close = pkg_close,
};

int mc_sink_pkg_open(const char *pkg, struct mc_sink **out, char *err, size_t errlen)
{
	struct sink_pkg *k = calloc(1, sizeof *k);

	*out = NULL;
	if (k == NULL || (k->pkg = strdup(pkg)) == NULL) {
		free(k);
		snprintf(err, errlen, "%s", mc_strerror(-ENOMEM));
		return -ENOMEM;
	}
	k->s.ops = &pkg_ops;
	if ((k->fd = mc_state_open_part(pkg, err, errlen)) < 0) {
		int rc = k->fd;
		free(k->pkg);
		free(k);
		return rc;
	}
	*out = &k->s;
	return 0;
}
