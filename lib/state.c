/* Durable receive state; see state.h for the file layout and the crash rules. */
#include "state.h"
#include "exitcode.h"

#include "be.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <xxhash.h>

#include "opt.h"

#define STATE_MAGIC "MCSTATE2"
#define STATE_FIXED 64 /* bytes besides the bitmap and the spans */
#define STATE_MAX (64u << 20)

int mc_state_init(struct mc_state *st, const uint8_t id[MC_ID_LEN], uint32_t nchunks)
{
	memcpy(st->id, id, MC_ID_LEN);
	st->nchunks = nchunks;
	st->nhave = 0;
	st->have = calloc((size_t)nchunks / 8 + 1, 1);
	st->spans = NULL;
	st->nspans = 0;
	return st->have ? 0 : -ENOMEM;
}

void mc_state_free(struct mc_state *st)
{
	free(st->have);
	st->have = NULL;
	free(st->spans);
	st->spans = NULL;
	st->nspans = 0;
}

uint32_t mc_span_chunks(const struct mc_span *sp, uint32_t n)
{
	uint32_t k = 0;

	for (uint32_t i = 0; i < n; i++)
		k += i == 0 || sp[i].chunk != sp[i - 1].chunk;
	return k;
}

uint32_t mc_state_spans_fit(struct mc_state *st, const struct mc_manifest *m)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < st->nspans; i++) {
		const struct mc_span *s = &st->spans[i];
		if (s->chunk >= m->nchunks || s->chunk >= st->nchunks || mc_state_has(st, s->chunk) ||
		    (uint64_t)s->off + s->len > mc_manifest_chunk_len(m, s->chunk))
			continue;
		st->spans[n++] = *s;
	}
	st->nspans = n;
	return n;
}

void mc_state_set(struct mc_state *st, uint32_t i)
{
	if (!mc_state_has(st, i)) {
		st->have[i >> 3] |= (uint8_t)(1u << (i & 7));
		st->nhave++;
	}
}

void mc_state_clear(struct mc_state *st, uint32_t i)
{
	if (mc_state_has(st, i)) {
		st->have[i >> 3] &= (uint8_t)~(1u << (i & 7));
		st->nhave--;
	}
}

static char *suffixed(const char *pkg, const char *suffix)
{
	size_t n = strlen(pkg), s = strlen(suffix);
	char *p = malloc(n + s + 1);

	if (p) {
		memcpy(p, pkg, n);
		memcpy(p + n, suffix, s + 1);
	}
	return p;
}

/*
 * PKG.part, PKG.state and the temporary state are regular files: a device
 * node, FIFO or socket under one of those names is not ours to write,
 * rename over or remove (writing onto a device would put the package on
 * that disk; opening a FIFO blocks). What m is, for a refusal, or NULL for
 * anything else (a regular file; a symlink, refused or harmlessly replaced
 * where it matters; a directory, which no call here can take).
 */
static const char *special_kind(mode_t m)
{
	if (S_ISBLK(m) || S_ISCHR(m))
		return "a device node";
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISSOCK(m))
		return "a socket";
	return NULL;
}

/* -EINVAL with "PATH: a device node, not WHAT: refused" in err when m is special_kind, else 0. */
static int refuse_mode(const char *path, mode_t m, const char *what, char *err, size_t errlen)
{
	const char *k = special_kind(m);

	if (k == NULL)
		return 0;
	snprintf(err, errlen, "%s: %s, not %s: refused", path, k, what);
	return -EINVAL;
}

/* refuse_mode for path itself (a symlink is not followed); 0 when nothing is there. */
static int refuse_special(const char *path, const char *what, char *err, size_t errlen)
{
	struct stat sb;

	return lstat(path, &sb) == 0 ? refuse_mode(path, sb.st_mode, what, err, errlen) : 0;
}

int mc_state_unlink_ours(const char *path)
{
	struct stat sb;

	if (lstat(path, &sb) < 0 || special_kind(sb.st_mode))
		return 0;
	if (unlink(path) < 0)
		return errno == ENOENT ? 0 : -errno;
	return 1;
}

char *mc_state_part_path(const char *pkg) { return suffixed(pkg, ".part"); }
char *mc_state_file_path(const char *pkg) { return suffixed(pkg, ".state"); }

int mc_state_load(const char *pkg, int part_fd, struct mc_state *st, char *err, size_t errlen)
{
	char *path = mc_state_file_path(pkg);
	uint8_t *buf = NULL;
	int fd = -1, rc = -1;
	struct stat sb, psb;

	st->have = NULL;
	st->spans = NULL;
	st->nspans = 0;
	if (path == NULL) {
		snprintf(err, errlen, "%s.state: %s", pkg, mc_strerror(-ENOMEM));
		return -ENOMEM;
	}
	/* A device is never opened (that alone may act on it), a FIFO never waited on. */
	if (stat(path, &sb) == 0 && (rc = refuse_mode(path, sb.st_mode, "a state file", err, errlen)) < 0)
		goto out;
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT) {
			rc = 0;
		} else {
			rc = -errno;
			snprintf(err, errlen, "%s: %s", path, mc_strerror(rc));
		}
		goto out;
	}
	if (fstat(fd, &sb) == 0 && !S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file, not a state file: refused", path);
		rc = -EINVAL;
		goto out;
	}
	if (fstat(fd, &sb) < 0 || sb.st_size < STATE_FIXED + 1 || sb.st_size > STATE_MAX) {
		snprintf(err, errlen, "%s: not a state file (size)", path);
		rc = -EBADMSG;
		goto out;
	}
	buf = malloc((size_t)sb.st_size);
	if (buf == NULL) {
		snprintf(err, errlen, "%s: %s", path, mc_strerror(-ENOMEM));
		rc = -ENOMEM;
		goto out;
	}
	ssize_t got = pread(fd, buf, (size_t)sb.st_size, 0);
	if (got != sb.st_size) {
		/* A failed read says its errno; a short one is a file cut while it was read. */
		rc = got < 0 ? -errno : -EBADMSG;
		snprintf(err, errlen, "%s: %s", path, got < 0 ? mc_strerror(rc) : "damaged state file (shorter than it was)");
		goto out;
	}
	size_t len = (size_t)sb.st_size;
	uint32_t n = mc_get32(buf + 24);
	size_t bm = (size_t)n / 8 + 1;
	if (memcmp(buf, STATE_MAGIC, 8) != 0 || len < STATE_FIXED + bm || !mc_state_sealed(buf, len)) {
		snprintf(err, errlen, "%s: damaged state file", path);
		rc = -EBADMSG;
		goto out;
	}
	const uint8_t *q = buf + 32 + bm;
	uint64_t psize = mc_get64(q), csec = mc_get64(q + 8);
	uint32_t cnsec = mc_get32(q + 16), nspans = mc_get32(q + 20);
	if (nspans > (len - STATE_FIXED - bm) / 12 || len != STATE_FIXED + bm + (size_t)nspans * 12) {
		snprintf(err, errlen, "%s: damaged state file", path);
		rc = -EBADMSG;
		goto out;
	}
	if (part_fd >= 0 && (fstat(part_fd, &psb) < 0 || (uint64_t)psb.st_size != psize ||
			     (uint64_t)psb.st_ctim.tv_sec != csec || (uint32_t)psb.st_ctim.tv_nsec != cnsec)) {
		snprintf(err, errlen, "%s.part changed since %s was written", pkg, path);
		rc = -EBADMSG;
		goto out;
	}
	if (mc_state_init(st, buf + 8, n) < 0 || (nspans && (st->spans = malloc((size_t)nspans * sizeof *st->spans)) == NULL)) {
		mc_state_free(st);
		snprintf(err, errlen, "%s: %s", path, mc_strerror(-ENOMEM));
		rc = -ENOMEM;
		goto out;
	}
	mc_state_spans_get(st, q + 24, nspans);
	mc_state_map_get(st, buf + 32);
	rc = 1;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	free(path);
	return rc;
}

static int fsync_dir_of(const char *path)
{
	char *copy = strdup(path);
	int fd, rc = -1;

	if (copy == NULL)
		return -1;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		rc = fsync(fd);
		close(fd);
	}
	free(copy);
	return rc;
}

void mc_state_spans_put(const struct mc_state *st, uint32_t n, uint8_t *q)
{
	for (uint32_t i = 0; i < n; i++, q += 12) {
		mc_put32(q, st->spans[i].chunk);
		mc_put32(q + 4, st->spans[i].off);
		mc_put32(q + 8, st->spans[i].len);
	}
}

void mc_state_spans_get(struct mc_state *st, const uint8_t *q, uint32_t n)
{
	st->nspans = 0;
	for (uint32_t i = 0; i < n; i++, q += 12) {
		struct mc_span sp = {mc_get32(q), mc_get32(q + 4), mc_get32(q + 8)};
		const struct mc_span *pv = st->nspans ? &st->spans[st->nspans - 1] : NULL;
		/* Sorted, not overlapping, not empty: else the spans are dropped, the map is still good. */
		if (sp.len == 0 || sp.chunk >= st->nchunks || (uint64_t)sp.off + sp.len > UINT32_MAX ||
		    (pv && (sp.chunk < pv->chunk || (sp.chunk == pv->chunk && sp.off < pv->off + pv->len)))) {
			st->nspans = 0;
			return;
		}
		st->spans[st->nspans++] = sp;
	}
}

uint8_t *mc_state_map_put(const struct mc_state *st, uint8_t *q)
{
	size_t bm = (size_t)st->nchunks / 8 + 1;

	mc_put32(q, st->nchunks);
	mc_put32(q + 4, st->nhave);
	memcpy(q + 8, st->have, bm);
	return q + 8 + bm;
}

void mc_state_map_get(struct mc_state *st, const uint8_t *have)
{
	uint32_t n = st->nchunks;

	memcpy(st->have, have, (size_t)n / 8 + 1);
	st->have[n / 8] &= (uint8_t)((1u << (n % 8)) - 1); /* none past nchunks (all of the last byte when n % 8 == 0) */
	st->nhave = 0;
	for (uint32_t i = 0; i < n; i++)
		st->nhave += mc_state_has(st, i);
}

int mc_state_sealed(const uint8_t *buf, size_t len)
{
	return XXH64(buf, len - 8, 0) == mc_get64(buf + len - 8);
}

int mc_state_replace(const char *path, const char *tmp, uint8_t *buf, size_t len, char *err, size_t errlen)
{
	int fd, rc = -1, made = 0;

	mc_put64(buf + len - 8, XXH64(buf, len - 8, 0));

	/* Neither name a device node, FIFO or socket: such a file is never removed, nor renamed over. */
	if ((rc = refuse_special(tmp, "a state file", err, errlen)) < 0 ||
	    (rc = refuse_special(path, "a state file", err, errlen)) < 0)
		return rc;
	rc = -1;
	/* A new file, never one that was there: a planted symlink must not redirect the write. */
	unlink(tmp);
	errno = 0;
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	made = fd >= 0;
	if (fd < 0 || write(fd, buf, len) != (ssize_t)len || fsync(fd) < 0) {
		rc = -(errno ? errno : EIO); /* a short write without errno: EIO */
		snprintf(err, errlen, "%s: %s", tmp, mc_strerror(rc));
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		rc = -errno;
		snprintf(err, errlen, "%s: %s", tmp, mc_strerror(rc));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, mc_strerror(rc));
		goto out;
	}
	fsync_dir_of(path);
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (rc < 0 && made)
		unlink(tmp); /* ours alone: a file that beat O_EXCL to the name stays */
	return rc;
}

int mc_state_save(const char *pkg, int part_fd, const struct mc_state *st, char *err, size_t errlen)
{
	size_t bm = (size_t)st->nchunks / 8 + 1;
	uint32_t nspans = st->nspans;
	char *path = mc_state_file_path(pkg), *tmp = suffixed(pkg, ".state.tmp");
	uint8_t *buf = NULL;
	int rc = -1;
	struct stat psb;

	if (STATE_FIXED + bm + (size_t)nspans * 12 > STATE_MAX)
		nspans = (uint32_t)((STATE_MAX - STATE_FIXED - bm) / 12); /* keep what fits: the rest is fetched again */
	size_t len = STATE_FIXED + bm + (size_t)nspans * 12;
	if (path == NULL || tmp == NULL || (buf = malloc(len)) == NULL) {
		snprintf(err, errlen, "%s.state: %s", pkg, mc_strerror(-ENOMEM));
		rc = -ENOMEM;
		goto out;
	}
	if (fstat(part_fd, &psb) < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s.part: %s", pkg, mc_strerror(rc));
		goto out;
	}
	memcpy(buf, STATE_MAGIC, 8);
	memcpy(buf + 8, st->id, MC_ID_LEN);
	uint8_t *q = mc_state_map_put(st, buf + 24);
	mc_put64(q, (uint64_t)psb.st_size);
	mc_put64(q + 8, (uint64_t)psb.st_ctim.tv_sec);
	mc_put32(q + 16, (uint32_t)psb.st_ctim.tv_nsec);
	mc_put32(q + 20, nspans);
	mc_state_spans_put(st, nspans, q + 24);
	rc = mc_state_replace(path, tmp, buf, len, err, errlen);
out:
	free(buf);
	free(path);
	free(tmp);
	return rc;
}

void mc_state_remove(const char *pkg)
{
	char *path = mc_state_file_path(pkg), *tmp = suffixed(pkg, ".state.tmp");

	if (path) {
		mc_state_unlink_ours(path);
		free(path);
	}
	if (tmp) {
		mc_state_unlink_ours(tmp); /* a save killed between its write and its rename */
		free(tmp);
	}
}

int mc_state_drop_stale(const char *pkg)
{
	char *part = mc_state_part_path(pkg), *path = mc_state_file_path(pkg), *tmp = suffixed(pkg, ".state.tmp");
	struct stat sb;
	int n = 0;

	/* With a PKG.part the state is that file's: not ours to touch. */
	if (part && path && tmp && lstat(part, &sb) < 0 && errno == ENOENT) {
		n += mc_state_unlink_ours(path) == 1;
		n += mc_state_unlink_ours(tmp) == 1;
		if (n)
			fsync_dir_of(path);
	}
	free(part);
	free(path);
	free(tmp);
	return n > 0;
}

int mc_state_lock(int fd)
{
	return flock(fd, LOCK_EX | LOCK_NB) < 0 ? -errno : 0;
}

void mc_state_lock_fail(char *err, size_t errlen, const char *path, int rc)
{
	if (rc == -EWOULDBLOCK)
		snprintf(err, errlen, "%s: in use by another process", path);
	else /* a file system without locks (ENOLCK on some NFS) is not another process */
		snprintf(err, errlen, "%s: cannot lock: %s", path, mc_strerror(rc));
}

int mc_state_open_part(const char *pkg, char *err, size_t errlen)
{
	char *path = mc_state_part_path(pkg), *spath = mc_state_file_path(pkg), *tmp = suffixed(pkg, ".state.tmp");
	struct stat sb;
	int fd, rc;

	if (path == NULL || spath == NULL || tmp == NULL) {
		snprintf(err, errlen, "%s.part: %s", pkg, mc_strerror(-ENOMEM));
		fd = -ENOMEM;
		goto out;
	}
	/* Refused before a byte is written anywhere, and a device is not even opened (that alone may act on it). */
	if ((fd = refuse_special(path, "a partial package", err, errlen)) < 0 ||
	    (fd = refuse_special(spath, "a state file", err, errlen)) < 0 ||
	    (fd = refuse_special(tmp, "a state file", err, errlen)) < 0)
		goto out;
	/* Not through a symlink: what is written lands at PKG.part itself, nowhere else. */
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
	if (fd < 0) {
		fd = -errno;
		if (fd == -ELOOP)
			snprintf(err, errlen, "%s: is a symbolic link; not writing through it", path);
		else
			snprintf(err, errlen, "%s: %s", path, mc_strerror(fd));
	} else if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		/* Made between the check and the open (O_NONBLOCK: a FIFO did not hold the open up). */
		snprintf(err, errlen, "%s: not a regular file, not a partial package: refused", path);
		close(fd);
		fd = -EINVAL;
	} else if ((rc = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, rc & ~O_NONBLOCK) < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, mc_strerror(rc));
		close(fd);
		fd = rc;
	} else if ((rc = mc_state_lock(fd)) < 0) {
		mc_state_lock_fail(err, errlen, path, rc);
		close(fd);
		fd = rc;
	}
out:
	free(path);
	free(spath);
	free(tmp);
	return fd;
}

void mc_state_drop_empty_part(const char *pkg, int fd)
{
	char *part = mc_state_part_path(pkg);
	struct stat sb, at;

	/* Only the file open as fd, still under that name: a regular file, empty. */
	if (part && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size == 0 && lstat(part, &at) == 0 &&
	    at.st_dev == sb.st_dev && at.st_ino == sb.st_ino)
		unlink(part);
	free(part);
}

int mc_state_read_part_manifest(int fd, struct mc_manifest *m)
{
	uint8_t hdr[MC_PKG_HDR_SIZE], id[MC_ID_LEN];
	struct mc_pkg_layout l;
	struct stat sb;
	char err[256];
	uint8_t *buf;
	int ok = 0;

	if (fstat(fd, &sb) < 0 || pread(fd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr)
		return 0;
	/* The payload may not be all there yet: check offsets against the full size the header claims. */
	if (mc_pkg_header_decode(hdr, UINT64_MAX, &l, id, err, sizeof err) < 0)
		return 0;
	if (l.manifest_len > MC_MANIFEST_MAX || l.manifest_off + l.manifest_len > (uint64_t)sb.st_size)
		return 0;
	buf = malloc(l.manifest_len);
	if (buf == NULL)
		return 0;
	if (pread(fd, buf, l.manifest_len, (off_t)l.manifest_off) == (ssize_t)l.manifest_len &&
	    mc_manifest_parse(buf, l.manifest_len, m, err, sizeof err) == 0) {
		/* The header's payload length is not covered by the id: it must agree, as mc_pkg_open wants. */
		ok = memcmp(m->id, id, MC_ID_LEN) == 0 && l.payload_len == m->payload_size;
		if (!ok)
			mc_manifest_free(m);
	}
	free(buf);
	return ok;
}

long mc_state_rescan(int fd, const struct mc_manifest *m, struct mc_state *st, uint8_t *buf)
{
	struct mc_pkg_layout l;
	uint8_t d[MC_DIGEST_LEN];
	long found = 0;

	mc_manifest_layout(m, &l);
	for (uint32_t i = 0; i < m->nchunks; i++) {
		if (mc_state_has(st, i))
			continue;
		uint32_t len = mc_manifest_chunk_len(m, i);
		ssize_t r = pread(fd, buf, len, (off_t)(l.payload_off + mc_manifest_chunk_off(m, i)));
		if (r < 0)
			return -errno;
		if ((uint32_t)r != len)
			continue;
		mc_chunk_digest(m, buf, len, d);
		if (memcmp(d, m->digests + (size_t)i * MC_DIGEST_LEN, MC_DIGEST_LEN) == 0) {
			mc_state_set(st, i);
			found++;
		}
	}
	return found;
}

int mc_state_finish(const char *pkg, int fd, const struct mc_manifest *m, char *err, size_t errlen)
{
	char *part = mc_state_part_path(pkg);
	struct mc_pkg_layout l;
	int rc = -1;

	mc_manifest_layout(m, &l);
	if (part == NULL) {
		snprintf(err, errlen, "%s: %s", pkg, mc_strerror(-ENOMEM));
		return -ENOMEM;
	}
	if (ftruncate(fd, (off_t)l.file_size) < 0 || fsync(fd) < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", part, mc_strerror(rc));
		goto out;
	}
	/* PKG is checked at the command line too; one made since is not replaced either. */
	if ((rc = refuse_special(pkg, "a package", err, errlen)) < 0)
		goto out;
	if (rename(part, pkg) < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", pkg, mc_strerror(rc));
		goto out;
	}
	fsync_dir_of(pkg);
	mc_state_remove(pkg);
	rc = 0;
out:
	free(part);
	return rc;
}

int mc_state_space_check(const char *pkg, const char *suffix, int fd, uint64_t file_size, char *err, size_t errlen)
{
	struct statvfs vf;
	struct stat sb;
	char dir[4096], need_s[32], free_s[32];

	if (fstatvfs(fd, &vf) < 0 || fstat(fd, &sb) < 0 || vf.f_frsize == 0)
		return 0; /* cannot tell: writing will say */
	/* What PKG.part already holds (spilled parts, a head) needs no new space. */
	uint64_t held = (uint64_t)sb.st_blocks * 512;
	uint64_t need = file_size > held ? file_size - held : 0;
	uint64_t avail = (uint64_t)(geteuid() == 0 ? vf.f_bfree : vf.f_bavail) * vf.f_frsize;
	if (need <= avail)
		return 0;
	snprintf(dir, sizeof dir, "%s", pkg);
	char *slash = strrchr(dir, '/');
	if (slash == NULL)
		snprintf(dir, sizeof dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	snprintf(err, errlen,
		 "%s%s: not enough space: the package needs %s more (%llu bytes), the filesystem of %s has %s free (%llu bytes)",
		 pkg, suffix, mc_fmt_size(need, need_s, sizeof need_s), (unsigned long long)need, dir,
		 mc_fmt_size(avail, free_s, sizeof free_s), (unsigned long long)avail);
	return -ENOSPC;
}
