/* Seekable image packages (format 2, mcast-package(5)): building one, and decoding one chunk alone. */
#ifndef MC_IMAGE_H
#define MC_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "pkg.h"

/*
 * The payload of a format-2 package from o->paths[0] (a block device, a
 * regular file, or "-" for standard input): the image is cut into spans of
 * o->chunk_size; a span of zeros (or in a hole of a sparse file, found with
 * SEEK_DATA/SEEK_HOLE and never read) becomes a hole; any other is one zstd
 * frame at o->level, or its own bytes when the frame would not be smaller
 * (always with MC_COMP_NONE). o->threads > 1 compresses that many spans at
 * once (0 or 1: one, on a worker of its own while this thread reads and
 * another writes); an encrypted package's spans are sealed and every span
 * digested on the worker that compressed it. Memory stays at 2 * threads
 * spans in and out (3 with one worker), whatever the image size. The stored bytes go to fd from *base on,
 * in chunk order: the payload offset of the finished package when the
 * image size is known in advance, else 0. Fills and encodes m (name, version, ctime already set). Returns 0,
 * or a negative errno code (lib/exitcode.h) with "culprit: reason" in err:
 * -EINVAL (not one SOURCE, a compression spans cannot have, a stream with
 * --used-only, a source in use or not clean), -EISDIR, -ENOMEM, -EIO (a
 * source that ended early, a span that would not compress or seal), or the
 * -errno of the read or write that failed.
 */
int mc_image_create(const struct mc_pkg_create_opts *o, struct mc_manifest *m, int fd, uint64_t *base,
		    char *err, size_t errlen);

/*
 * A decoder for one chunk at a time: a zstd decompression context and, for
 * an encrypted package, an AEAD context, each made once and reused. One per thread.
 */
struct mc_image_dec;
struct mc_image_dec *mc_image_dec_new(void);
void mc_image_dec_free(struct mc_image_dec *d);

/*
 * Decodes chunk i of m from its len stored bytes into out (at least
 * mc_manifest_span_len(m, i) bytes, which are written): the stored digest is
 * checked before decoding, the span digest after; a hole gives zeros.
 * Returns 0, or with the reason in err -EBADMSG when the bytes are not
 * those of chunk i (nothing trustworthy in out), -EACCES (encrypted, not
 * unlocked), -ENOMEM, or -EINVAL (i out of range, or not a format-2 manifest).
 */
int mc_image_decode(struct mc_image_dec *d, const struct mc_manifest *m, uint32_t i, const uint8_t *stored,
		    uint32_t len, uint8_t *out, char *err, size_t errlen);

/*
 * The same for stored bytes the caller has already checked against chunk
 * i's stored digest in this same m (a receiver or repair verifies every
 * chunk as it completes, extract reads it with mc_pkg_check_chunk): the
 * stored digest is not computed again. The length, an encrypted chunk's tag
 * and the span digest of what it decodes to are still checked.
 */
int mc_image_decode_verified(struct mc_image_dec *d, const struct mc_manifest *m, uint32_t i, const uint8_t *stored,
			     uint32_t len, uint8_t *out, char *err, size_t errlen);

/* 1 when the n bytes at p are all zero. */
int mc_image_is_zero(const uint8_t *p, size_t n);

#endif
