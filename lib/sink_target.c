/* The target sink: verified chunks decoded onto their spans, partial ones spilled into their own spans; see sink_target.h. */
#include "sink_target.h"
#include "exitcode.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "target.h"
#include "tstate.h"

/* Writer threads of a receiver's target, and how many of them decode at a time (tgt_chunk). */
#define MC_SINK_TARGET_WRITERS 4
#define MC_SINK_TARGET_DECODERS 2

struct sink_target {
	struct mc_sink s;
	char *path, *state;
	unsigned flags;
	struct mc_target *t;  /* open once the manifest is known */
	struct mc_manifest m; /* the target's own copy (mc_target_open keeps a pointer to it) */
	int have_m;
	int refused;          /* an op refused the target or the package (EINVAL) */
	const struct mc_content_key *dkey; /* --decrypt: the key of an encrypted package, or NULL */
	uint8_t id[MC_DIGEST_LEN];
};

static int fail(int e, char *err, size_t errlen, const char *path, const char *why)
{
	snprintf(err, errlen, "%s: %s", path, why ? why : mc_strerror(-e));
	return -e;
}

/* What can be refused before the package is known: anything but a block device or regular file, a busy device. */
static int precheck(const char *path, char *err, size_t errlen)
{
	struct stat st;
	int fd;

	if (stat(path, &st) < 0)
		return errno == ENOENT ? 0 : fail(errno, err, errlen, path, NULL);
	if (S_ISDIR(st.st_mode))
		return fail(EINVAL, err, errlen, path, "is a directory; a target is a block device or a regular file");
	if (S_ISCHR(st.st_mode))
		return fail(EINVAL, err, errlen, path, "is a character device; a target is a block device or a regular file");
	if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode))
		return fail(EINVAL, err, errlen, path, "is not a block device or regular file");
	if (S_ISBLK(st.st_mode)) {
		/* O_EXCL: the kernel refuses it while the device or a partition of it is mounted. */
		if ((fd = open(path, O_RDONLY | O_EXCL | O_CLOEXEC)) < 0)
			return errno == EBUSY ? fail(EBUSY, err, errlen, path,
						     "in use: mounted, a partition of it mounted, or held by another program")
					      : fail(errno, err, errlen, path, NULL);
		close(fd);
	}
	return 0;
}

/* Opens the target for manifest raw (copied and parsed into k->m); refusals as mc_target_open. */
static int open_target(struct sink_target *k, const struct mc_manifest *m, char *err, size_t errlen)
{
	if (k->t)
		return 0;
	if (!k->have_m) {
		if (mc_manifest_parse(m->raw, m->raw_len, &k->m, err, errlen) < 0)
			return -EINVAL;
		k->have_m = 1;
	}
	/* An encrypted package opened with --decrypt before the target is: a wrong key touches nothing. */
	if (k->m.is_encrypted && !k->m.unlocked && k->dkey) {
		char why[256];
		if (mc_manifest_unlock(&k->m, k->dkey, why, sizeof why) < 0)
			return fail(EACCES, err, errlen, k->path, why);
	}
	int rc = mc_target_open(k->path, &k->m, k->flags, &k->t, err, errlen);
	if (rc < 0) {
		k->refused = rc == -EINVAL;
		return rc;
	}
	mc_target_identity(k->t, k->id);
	return 0;
}

static int tgt_resume(struct mc_sink *s, struct mc_resume *rs, char *err, size_t errlen)
{
	struct sink_target *k = (struct sink_target *)s;
	uint8_t tid[MC_DIGEST_LEN];
	struct mc_state st;
	char why[512];
	long found;
	int rc;

	memset(&st, 0, sizeof st);
	/* The state's manifest first: it says the image before any session does. */
	if ((rc = mc_tstate_load(k->state, &k->m, tid, &st, why, sizeof why)) <= 0) {
		/* None, or damaged: what the target holds is not known, every chunk is written again. */
		if (rc < 0)
			snprintf(rs->why, sizeof rs->why, "%s", why);
		return 0;
	}
	mc_state_free(&st);
	k->have_m = 1;
	/* The caller's say on the state's package (--trust, --expect) comes before anything is opened. */
	if (rs->accept && (rc = rs->accept(rs->accept_ctx, &k->m, err, errlen)) < 0)
		return rc;
	if ((rc = open_target(k, &k->m, err, errlen)) < 0)
		return rc;
	/*
	 * The one resume sequence of a target (lib/tstate.h): a state of another
	 * target refused; every chunk it does not mark checked on the target
	 * (chunks decoded after the last save are there), parts of those found
	 * dropped.
	 */
	if ((found = mc_tstate_resume(k->state, k->t, &k->m, &st, rs->why, sizeof rs->why, err, errlen)) < 0) {
		k->refused = found == -EINVAL;
		return (int)found;
	}
	if (mc_manifest_parse(k->m.raw, k->m.raw_len, &rs->m, err, errlen) < 0) {
		mc_state_free(&st);
		return -ENOMEM;
	}
	rs->have_m = 1;
	rs->st = st;
	rs->loaded = 1;
	rs->found = found;
	return 0;
}

static int tgt_announce(struct mc_sink *s, const struct mc_announce *a, char *err, size_t errlen)
{
	struct sink_target *k = (struct sink_target *)s;

	if (!a->image && (k->refused = 1))
		return fail(EINVAL, err, errlen, k->path,
			    "the session's package is not a seekable image (a tar or raw stream): "
			    "only a package made with mcast-pack create --image can be written onto a target");
	return 0;
}

static int tgt_manifest(struct mc_sink *s, const struct mc_manifest *m, char *err, size_t errlen)
{
	return open_target((struct sink_target *)s, m, err, errlen);
}

/* Calls io for each piece of [off, off + len) of the payload, at the span of the chunk holding it. */
static int spill_io(struct sink_target *k, uint64_t off, uint8_t *buf, size_t len, int wr, char *err, size_t errlen)
{
	if (k->t == NULL)
		return fail(EINVAL, err, errlen, k->path, "nothing is placed before the manifest is known");
	while (len) {
		uint32_t c = mc_manifest_chunk_of(&k->m, off);
		if (c >= k->m.nchunks)
			return fail(EINVAL, err, errlen, k->path, "a write past the package's payload");
		uint64_t in = off - mc_manifest_chunk_off(&k->m, c);
		size_t n = mc_manifest_chunk_len(&k->m, c) - in < len ? mc_manifest_chunk_len(&k->m, c) - in : len;
		uint64_t at = mc_tstate_spill_off(&k->m, off); /* a piece never crosses its chunk's end */
		int rc = wr ? mc_target_pwrite(k->t, buf, n, at) : mc_target_pread(k->t, buf, n, at);
		if (rc < 0)
			return fail(-rc, err, errlen, k->path, NULL);
		buf += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int tgt_write(struct mc_sink *s, uint64_t off, const void *buf, size_t len, char *err, size_t errlen)
{
	return spill_io((struct sink_target *)s, off, (uint8_t *)(uintptr_t)buf, len, 1, err, errlen);
}

static int tgt_read(struct mc_sink *s, uint64_t off, void *buf, size_t len, char *err, size_t errlen)
{
	return spill_io((struct sink_target *)s, off, buf, len, 0, err, errlen);
}

/*
 * 1 when stored bytes that matched chunk i's stored digest in m (the
 * receiver's manifest) match it in the target's own copy too: the same
 * digest, algorithm, salt and length. They are the same package's, parsed
 * twice; anything else is checked again as if it had not been verified.
 */
static int same_check(const struct sink_target *k, const struct mc_manifest *m, uint32_t i, size_t len)
{
	const struct mc_manifest *o = &k->m;

	if (m == o)
		return 1;
	return i < m->nchunks && i < o->nchunks && m->digest_alg == o->digest_alg &&
	       memcmp(m->salt, o->salt, sizeof o->salt) == 0 && len == mc_manifest_chunk_len(o, i) &&
	       memcmp(m->digests + (size_t)i * MC_DIGEST_LEN, o->digests + (size_t)i * MC_DIGEST_LEN, MC_DIGEST_LEN) == 0;
}

/*
 * A verified chunk (or a hole, len 0) to the target's writer threads
 * (lib/target.h): decoding and writing leave the receive loop, which goes
 * on taking datagrams meanwhile; memory stays a few spans per thread.
 */
static int tgt_chunk(struct mc_sink *s, const struct mc_manifest *m, uint32_t i, const uint8_t *buf, size_t len,
		     char *err, size_t errlen)
{
	struct sink_target *k = (struct sink_target *)s;
	int rc;

	if (k->t == NULL && (rc = open_target(k, m, err, errlen)) < 0)
		return rc;
	/*
	 * Four writers, two decoding at a time: on a disk one synchronous
	 * write at a time left the decoder waiting for the device and the
	 * device for the decoder (a 1 MiB O_DIRECT write took 4.9 ms on
	 * bench/image's direct target). With two writers and one decoder a
	 * receiver alone wrote its direct target in 1.55 times dd's time (the
	 * median of six sessions, the machine otherwise quiet), with four and
	 * two in 1.28 (six writers: 1.25); two receivers writing onto one
	 * disk, the disk's limit, were as fast either way. More decoders than
	 * two would take CPU the receive loop, the other receivers and the
	 * sender need on a small machine. (A decoder per CPU left a receiver
	 * behind 5% loss incomplete in 4 of 16 runs of bench/image when the
	 * manifest still came only every 100 ms; at load 14 one writer did
	 * too, in 3 of 4 onto the direct target.)
	 */
	if ((rc = mc_target_start_writers(k->t, MC_SINK_TARGET_WRITERS, MC_SINK_TARGET_DECODERS, err, errlen)) < 0)
		return rc;
	/* The receiver checked the stored digest (sink.h: only verified chunks come here): not digested again. */
	return (len && same_check(k, m, i, len) ? mc_target_queue_verified : mc_target_queue)(k->t, i, buf, (uint32_t)len,
											       err, errlen);
}

static int tgt_sync(struct mc_sink *s, char *err, size_t errlen)
{
	struct sink_target *k = (struct sink_target *)s;

	/* What was handed over before this sync is written first, then flushed: a save after it may count it. */
	return k->t ? mc_target_sync(k->t, err, errlen) : 0;
}

static int tgt_save(struct mc_sink *s, const struct mc_state *st, char *err, size_t errlen)
{
	struct sink_target *k = (struct sink_target *)s;

	if (k->t == NULL)
		return 0;
	return mc_tstate_save(k->state, &k->m, k->id, st, err, errlen);
}

static int tgt_finish(struct mc_sink *s, const struct mc_manifest *m, char *err, size_t errlen)
{
	struct sink_target *k = (struct sink_target *)s;
	int rc;

	/* Everything on the target and flushed first: only then is the state, the record of what is missing, let go. */
	if (k->t == NULL)
		return fail(EINVAL, err, errlen, k->path, "no image was written");
	if ((rc = tgt_sync(s, err, errlen)) < 0)
		return rc;
	return mc_tstate_remove(k->state, err, errlen);
}

static void tgt_close(struct mc_sink *s)
{
	struct sink_target *k = (struct sink_target *)s;

	mc_target_close(k->t);
	if (k->have_m)
		mc_manifest_free(&k->m);
	free(k->path);
	free(k->state);
	free(k);
}

static const struct mc_sink_ops target_ops = {
	.resume = tgt_resume,
	.announce = tgt_announce,
	.manifest = tgt_manifest,
	.write = tgt_write,
	.read = tgt_read,
	.chunk = tgt_chunk,
	.sync = tgt_sync,
	.save = tgt_save,
	.finish = tgt_finish,
	.close = tgt_close,
};

int mc_sink_target_open(const char *target, const char *state_path, unsigned flags, struct mc_sink **out,
			char *err, size_t errlen)
{
	struct sink_target *k;
	int rc;

	*out = NULL;
	if ((rc = precheck(target, err, errlen)) < 0)
		return rc;
	if ((k = calloc(1, sizeof *k)) == NULL || (k->path = strdup(target)) == NULL ||
	    (k->state = strdup(state_path)) == NULL) {
		if (k)
			free(k->path);
		free(k);
		return fail(ENOMEM, err, errlen, target, mc_strerror(-ENOMEM));
	}
	k->s.ops = &target_ops;
	k->flags = flags & MC_TARGET_ZEROED;
	*out = &k->s;
	return 0;
}

int mc_sink_target_refused(const struct mc_sink *s)
{
	return s && ((const struct sink_target *)s)->refused;
}

int mc_sink_target_state_path(const char *target, char *buf, size_t cap)
{
	struct stat st;
	int n;

	if (stat(target, &st) == 0 && S_ISBLK(st.st_mode)) {
		const char *name = strncmp(target, "/dev/", 5) == 0 ? target + 5 : target;
		n = snprintf(buf, cap, "%s/", MC_TARGET_STATE_DIR);
		if (n < 0 || (size_t)n >= cap)
			return -1;
		for (; *name && (size_t)n + 1 < cap; name++)
			buf[n++] = *name == '/' ? '_' : *name;
		if (*name || (size_t)n + sizeof ".state" > cap)
			return -1;
		memcpy(buf + n, ".state", sizeof ".state");
		return 0;
	}
	n = snprintf(buf, cap, "%s.state", target);
	return n < 0 || (size_t)n >= cap ? -1 : 0;
}

void mc_sink_target_decrypt(struct mc_sink *s, const struct mc_content_key *k)
{
	((struct sink_target *)s)->dkey = k;
}
