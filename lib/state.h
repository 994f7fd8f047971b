/* Durable receive state beside a partial package: PKG.part and PKG.state. */
#ifndef MC_STATE_H
#define MC_STATE_H

#include <stdint.h>

#include "pkg.h"

/*
 * PKG.part has the final package layout (header, manifest, payload at their
 * offsets). PKG.state records which chunks of PKG.part were verified against
 * the manifest. It is written to PKG.state.tmp, fsync'd, renamed over
 * PKG.state and the directory fsync'd, only after PKG.part was fdatasync'd,
 * so after a crash or power loss it never claims a chunk that is not on disk.
 *
 * State file, big-endian: magic "MCSTATE2" (8), package id (16), nchunks (4),
 * verified count (4), bitmap (nchunks/8 + 1 bytes, chunk i is bit i%8 of
 * byte i/8), PKG.part's size (8) and change time (seconds 8, nanoseconds 4)
 * when the state was written, the number of spans (4), the spans (chunk,
 * offset, length: 4 each), XXH64 of everything before it (8).
 *
 * Spans are bytes of chunks not yet verified that PKG.part already holds (a
 * receiver that stopped with chunks half received keeps them; mcast-repair
 * fetches only the rest). They are not verified: a chunk is verified whole,
 * once complete, and its spans are forgotten if it does not match.
 *
 * A state whose recorded size and change time are not PKG.part's is stale:
 * something else wrote, truncated or replaced PKG.part since (or the writer
 * was killed after writing more), and the loader says so, so that the caller
 * checks PKG.part chunk by chunk instead of trusting the map.
 */
struct mc_state {
	uint8_t id[MC_ID_LEN];
	uint32_t nchunks;
	uint32_t nhave;
	uint8_t *have; /* bitmap */
	struct mc_span *spans; /* sorted by chunk then offset, not overlapping; malloc'd or NULL */
	uint32_t nspans;
};

/* Allocates an empty state for nchunks. Returns 0 or -ENOMEM. */
int mc_state_init(struct mc_state *st, const uint8_t id[MC_ID_LEN], uint32_t nchunks);
void mc_state_free(struct mc_state *st);
static inline int mc_state_has(const struct mc_state *st, uint32_t i)
{
	return (st->have[i >> 3] >> (i & 7)) & 1;
}
void mc_state_set(struct mc_state *st, uint32_t i);
void mc_state_clear(struct mc_state *st, uint32_t i);

/* Malloc'd "PKG.part", "PKG.state" for the final name PKG. */
char *mc_state_part_path(const char *pkg);
char *mc_state_file_path(const char *pkg);

/*
 * Loads PKG.state and checks it against PKG.part, open as part_fd. Returns 1
 * loaded, 0 when there is none, or a negative code with the reason in err
 * (the caller rescans PKG.part): -EBADMSG when it is damaged or stale
 * (PKG.part changed since), -EINVAL when it is not a regular file (a
 * device is never opened, a FIFO never waited on), -ENOMEM, else the
 * failed call's -errno.
 */
int mc_state_load(const char *pkg, int part_fd, struct mc_state *st, char *err, size_t errlen);

/*
 * Atomically replaces PKG.state (see above), recording PKG.part's size and
 * change time from part_fd. Returns 0 or a negative errno code with the
 * reason in err (-ENOMEM, the failed call's -errno).
 */
int mc_state_save(const char *pkg, int part_fd, const struct mc_state *st, char *err, size_t errlen);

/*
 * Keeps of spans only those that fit m (chunk in range, inside the chunk)
 * and whose chunk is not marked verified in st. Returns how many are left.
 */
uint32_t mc_state_spans_fit(struct mc_state *st, const struct mc_manifest *m);

/*
 * Spans as a state file stores them (lib/tstate.h too): n of 12 bytes each
 * (chunk, offset, length; big-endian). mc_state_spans_get reads n of them
 * into st->spans (room for n, st->nchunks set): all, or none when one is
 * empty, out of order or overlapping (the map is still good without them).
 */
void mc_state_spans_put(const struct mc_state *st, uint32_t n, uint8_t *q);
void mc_state_spans_get(struct mc_state *st, const uint8_t *q, uint32_t n);

/*
 * The map as both state files store it (lib/tstate.h too): nchunks (4),
 * verified count (4), bitmap (nchunks/8 + 1 bytes). mc_state_map_put
 * writes st's at q and returns the byte after it. mc_state_map_get takes
 * the bitmap at have into st (made by mc_state_init for its nchunks),
 * clears the bits past nchunks and counts nhave anew rather than trust the
 * stored count.
 */
uint8_t *mc_state_map_put(const struct mc_state *st, uint8_t *q);
void mc_state_map_get(struct mc_state *st, const uint8_t *have);

/* Whether the last 8 bytes of buf (len > 8) are the XXH64 of the rest, as every state file ends. */
int mc_state_sealed(const uint8_t *buf, size_t len);

/*
 * Seals buf (its last 8 bytes: the XXH64 of the rest) and atomically
 * replaces path with its len bytes: written to tmp (a new file, never a
 * planted link), fsync'd, renamed over path, the directory fsync'd.
 * Returns 0, or the failed call's -errno with "FILE: reason" in err (tmp
 * removed); -EINVAL, nothing written or removed, when path or tmp is a
 * device node, FIFO or socket.
 */
int mc_state_replace(const char *path, const char *tmp, uint8_t *buf, size_t len, char *err, size_t errlen);

/* How many distinct chunks n sorted spans touch. */
uint32_t mc_span_chunks(const struct mc_span *sp, uint32_t n);

/* Removes PKG.state and any PKG.state.tmp (missing is fine; a device node, FIFO or socket stays). */
void mc_state_remove(const char *pkg);

/*
 * Opens (or creates, 0644) PKG.part for read/write and takes an exclusive
 * lock so two programs never fill the same file. A PKG.part that is a
 * symbolic link is refused (-ELOOP); one that is a device node, FIFO or
 * socket, or a PKG.state or PKG.state.tmp that is, is refused with -EINVAL
 * ("PKG.part: a device node, not a partial package: refused": a usage
 * error) before anything is written, and a device is not even opened.
 * Returns the fd, or a negative errno code with the reason in err
 * (-EWOULDBLOCK: "in use by another process", -ENOMEM, else open's).
 */
int mc_state_open_part(const char *pkg, char *err, size_t errlen);

/*
 * Removes PKG.part when it is still the file open as fd, a regular file and
 * empty (a run that received nothing leaves no empty partial package); never
 * a device node or another file put under the name since.
 */
void mc_state_drop_empty_part(const char *pkg, int fd);

/*
 * unlink(2) of a file of ours (a state, a partial package) that is never a
 * device node, FIFO or socket: one of those under the name is left as it
 * is; a symbolic link is removed, not followed. Returns 1 removed, 0
 * nothing there or left as it is, or -errno.
 */
int mc_state_unlink_ours(const char *path);

/*
 * The exclusive lock of a file being filled (PKG.part, or a package
 * mcast-repair heals in place), never waited for: another program holding
 * it is filling the same file. Returns 0, or -EWOULDBLOCK (in use; else
 * flock's -errno).
 */
int mc_state_lock(int fd);

/* Says in err why mc_state_lock(path's fd) failed with rc: another process, or the lock's own reason. */
void mc_state_lock_fail(char *err, size_t errlen, const char *path, int rc);

/*
 * Whether a package file of file_size bytes can be written at fd (the
 * PKG.part or PKG of the final name pkg, as the user gave it): the free
 * space of its filesystem (what the caller may use: root may use the
 * reserve) against file_size less the bytes fd already holds on disk.
 * Returns 0 when it fits (or when the filesystem cannot tell), -ENOSPC with
 * "PKG.part: not enough space: ... needs N more, DIR has M free" in err.
 * The message names where to free space, so a receiver says so at once
 * instead of failing half way.
 */
int mc_state_space_check(const char *pkg, const char *suffix, int fd, uint64_t file_size, char *err, size_t errlen);

/*
 * Reads the manifest from an existing PKG.part's head, if it holds a valid
 * one. Returns 1 (m filled), 0 none or invalid.
 */
int mc_state_read_part_manifest(int fd, struct mc_manifest *m);

/*
 * Verifies every chunk of PKG.part not yet marked in st against m and marks
 * those that are intact (used when the state file is lost or stale).
 * buf must hold chunk_size bytes. Returns the number found, or -errno on an I/O error.
 */
long mc_state_rescan(int fd, const struct mc_manifest *m, struct mc_state *st, uint8_t *buf);

/*
 * Finishes: truncates PKG.part to the package size, fsyncs it, renames it to
 * PKG, fsyncs the directory and removes PKG.state (and a PKG.state.tmp left
 * by a save that was cut short). Returns 0 or a negative errno code with
 * the reason in err (-EINVAL when PKG is a device node, FIFO or socket:
 * never renamed over).
 * The rename is the commit: a crash after it, before PKG.state is gone,
 * leaves a complete PKG beside a stale PKG.state, which
 * mc_state_drop_stale() removes.
 */
int mc_state_finish(const char *pkg, int fd, const struct mc_manifest *m, char *err, size_t errlen);

/*
 * For a PKG found complete and verified: when there is no PKG.part, a
 * PKG.state (or PKG.state.tmp) beside it describes nothing and is removed
 * (unless it is a device node, FIFO or socket, never ours). Returns 1 when something was removed, else 0.
 */
int mc_state_drop_stale(const char *pkg);

#endif
