/*
 * Writing a seekable image (format 2) onto a target: a block device or a
 * regular file, in place, no staging copy. The one piece of code behind
 * `mcast-pack extract --to`, `mcast-recv --to` and `mcast-repair --to`.
 *
 * Errors follow lib's one convention (lib/exitcode.h): functions return 0
 * (or a count) or a negative errno code, with "TARGET: reason" in err
 * where they take one; errno means nothing after a call. From
 * mc_target_open, -EINVAL means the target or package is unsuitable (a
 * directory, a character device, too small, not an image package: a usage
 * error, exit 2), -EACCES an encrypted package without its key; anything
 * else is a runtime error (-EBUSY: a mounted or busy block device; exit 1).
 * From mc_target_put_chunk and the like, -EBADMSG means the bytes given are
 * not those of the chunk (nothing was written). -ENOMEM is said as "out of
 * memory".
 */
#ifndef MC_TARGET_H
#define MC_TARGET_H

#include <stddef.h>
#include <stdint.h>

#include "pkg.h"

/* mc_target_open flags */
#define MC_TARGET_ZEROED 1u   /* the target already reads as zeros: holes are not written */
#define MC_TARGET_READONLY 2u /* open to check only (mc_target_check): no O_EXCL, nothing written, never created */

struct mc_target;

/*
 * Opens path as the target of the image m describes, refusing before a
 * byte is written: a package that is not a seekable image (format 1: tar or
 * raw stream), a directory, a character device or anything but a block
 * device or regular file, a target smaller than the image, a block device
 * that is mounted, has a mounted partition or is otherwise held (opened
 * with O_EXCL). A path that does not exist becomes a new regular file of
 * the image's size (it reads as zeros, so holes are skipped). A larger
 * target keeps its bytes past the image. m must outlive the target.
 * Returns 0 with the target in *out, or a negative code (*out NULL).
 */
int mc_target_open(const char *path, const struct mc_manifest *m, unsigned flags, struct mc_target **out,
		   char *err, size_t errlen);

/*
 * Chunk i, given as its len stored bytes (a zstd frame or the raw span, as
 * in the package's payload): checked against the stored digest, decoded,
 * checked against the span digest, written at mc_manifest_span_off(m, i).
 * A hole is mc_target_put_hole. Not durable before mc_target_sync.
 * One thread at a time (it decodes into the target's own buffer).
 */
int mc_target_put_chunk(struct mc_target *t, uint32_t i, const uint8_t *stored, uint32_t len,
			char *err, size_t errlen);

/*
 * The same for stored bytes the caller has checked against chunk i's
 * stored digest in the target's own manifest (the receive and repair
 * drivers verify every chunk as it completes; extract reads each with
 * mc_pkg_check_chunk): that digest is not computed again. The length, an
 * encrypted chunk's tag and the decoded span's digest still are (EBADMSG,
 * nothing written), except for a span stored as it is whose span digest is
 * its stored digest (XXH3, unsigned): the caller's check was that one. So
 * only for bytes checked against this very manifest; anything else goes
 * through mc_target_put_chunk.
 */
int mc_target_put_verified(struct mc_target *t, uint32_t i, const uint8_t *stored, uint32_t len,
			   char *err, size_t errlen);

/*
 * Span i already decoded (mc_image_decode with a decoder and buffer of the
 * caller's, page-aligned for O_DIRECT, else it goes through the page
 * cache): checked against the span digest (EBADMSG, nothing written) and
 * written. Thread-safe, as are mc_target_put_hole, mc_target_pwrite and
 * mc_target_sync: several threads may decode and write different spans.
 */
int mc_target_put_decoded(struct mc_target *t, uint32_t i, const uint8_t *span, char *err, size_t errlen);

/*
 * Span i as zeros: nothing with MC_TARGET_ZEROED (or a new file), nor for a
 * don't-care hole (its bytes are left as they are); a hole punched in a
 * regular file; BLKZEROOUT on a block device (zeros written where the
 * device cannot).
 */
int mc_target_put_hole(struct mc_target *t, uint32_t i, char *err, size_t errlen);

/*
 * Writer threads for mc_target_queue: threads of them (0: one per online
 * CPU, at least 4), each decoding and writing one chunk at a time, so that
 * several writes are in flight and decoding goes on while the device
 * writes (a writer waits for its O_DIRECT write: on 2 CPUs, 4 writers
 * extract bench/image's 1 GiB image onto its direct target in 0.81 s, 2 in
 * 0.91 s, medians of four alternated). A queue of 2 * threads chunks (at least 4). Memory: a chunk
 * buffer per queue entry, and per thread one being decoded, its span and a
 * decoder. Returns 0 (also when already started) or a negative code.
 */
#define MC_TARGET_MAX_WRITERS 8
int mc_target_start(struct mc_target *t, unsigned threads, char *err, size_t errlen);

/*
 * The same with at most decoders (0: as many as writers) decoding at once:
 * the others write meanwhile. A receiver's writers (mcast-recv --to) keep
 * several writes in flight on a disk while no more CPU goes to decoding
 * than with one writer: the receive loop, the other receivers and the
 * sender share the machine's cores.
 */
int mc_target_start_writers(struct mc_target *t, unsigned threads, unsigned decoders, char *err, size_t errlen);

/*
 * mc_target_put_chunk (len > 0: the stored bytes, copied) or
 * mc_target_put_hole (len 0), done by a writer thread once mc_target_start
 * ran (else at once). Waits while the queue is full. A hole
 * queued right after another is zeroed with it in one call. Returns 0, or
 * the code of the first failure of any queued chunk (the writers' reason in
 * err; sticky: nothing more is queued). The chunk's own failure may come from a
 * later call or mc_target_drain. Queue and drain from one thread.
 */
int mc_target_queue(struct mc_target *t, uint32_t i, const uint8_t *stored, uint32_t len, char *err, size_t errlen);
/* The same with mc_target_put_verified for a chunk (the caller checked its stored digest). */
int mc_target_queue_verified(struct mc_target *t, uint32_t i, const uint8_t *stored, uint32_t len, char *err,
			     size_t errlen);

/* Waits until every chunk queued is written (not yet durable); 0 or a code as mc_target_queue. */
int mc_target_drain(struct mc_target *t, char *err, size_t errlen);

/* Flushes everything written (queued chunks first) to stable storage (fsync: the device's cache too). */
int mc_target_sync(struct mc_target *t, char *err, size_t errlen);

/*
 * Reads every span back and compares it with its span digest (a don't-care
 * hole is not read). bad(arg, i) is called for each that differs, in order;
 * progress(arg, bytes of the image done) now and then (either may be NULL).
 * Returns the number of differing spans, or a negative code (a read error).
 */
long mc_target_check(struct mc_target *t, void (*bad)(void *arg, uint32_t i),
		     void (*progress)(void *arg, uint64_t done), void *arg, char *err, size_t errlen);

/*
 * 1 when span i on the target matches its span digest (always for a
 * don't-care hole, not read), 0 when not, a negative code on a read error.
 * One thread at a time.
 */
int mc_target_span_ok(struct mc_target *t, uint32_t i, char *err, size_t errlen);

/*
 * Raw access to the target's bytes at any offset and length, for a sink
 * that keeps a chunk's stored bytes in the chunk's own span while the chunk
 * is incomplete (stored_len(i) <= span_len(i), so they fit). Handles the
 * alignment O_DIRECT wants on a block device (unaligned pieces go through
 * the page cache, which the kernel keeps coherent with direct I/O). Return
 * 0 or -errno (no err: the caller names what it wrote); a write past the
 * end of the target is -ENOSPC, a read -EIO; -EBADF opened read-only.
 */
int mc_target_pwrite(struct mc_target *t, const void *p, size_t n, uint64_t off);
int mc_target_pread(struct mc_target *t, void *p, size_t n, uint64_t off);

void mc_target_close(struct mc_target *t);

/*
 * The open file descriptor (read-write unless MC_TARGET_READONLY). On a
 * block device it may have O_DIRECT: write through mc_target_pwrite.
 */
int mc_target_fd(const struct mc_target *t);
/* The target's size in bytes (at least the image size). */
uint64_t mc_target_size(const struct mc_target *t);
/* 1 for a block device, 0 for a regular file. */
int mc_target_is_blockdev(const struct mc_target *t);
/*
 * The target's identity, for a state file to be kept against: a digest of
 * its kind, device number (block device) or device, inode and birth time
 * (file: a file made again in the same place is another target), and size.
 */
void mc_target_identity(const struct mc_target *t, uint8_t id[MC_DIGEST_LEN]);

#endif
