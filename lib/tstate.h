/*
 * The state of a target written in place (`mcast-recv --to TARGET --state
 * FILE`, `mcast-repair --to TARGET --state FILE`): which chunks are durably
 * decoded on TARGET, and the spans of chunks whose stored bytes a receiver
 * spilled into their own span region while incomplete (lib/target.h,
 * mc_target_pwrite). One format and one resume check for both programs.
 *
 * State file, big-endian: magic "MCTSTAT1" (8), package id (16), target
 * identity (16, mc_target_identity), manifest length (4), the encoded
 * manifest (so a repair or a check needs no package at hand), nchunks (4),
 * verified count (4), bitmap (nchunks/8 + 1 bytes, chunk i is bit i%8 of
 * byte i/8), number of spans (4), the spans (chunk, offset in the chunk's
 * stored bytes, length: 4 each), XXH64 of everything before it (8).
 *
 * It is replaced atomically (FILE.tmp, fsync, rename, directory fsync) and
 * only after the target was synced (mc_target_sync), so it never claims a
 * chunk that is not durable on the target.
 *
 * Errors follow lib's one convention (lib/exitcode.h), as lib/target.h:
 * a negative errno code with "FILE: reason" in err, never errno; -EINVAL
 * when a state is refused for the target or package at hand (a usage
 * error, exit 2) or is not a state at all, -ENOMEM said as "out of memory".
 */
#ifndef MC_TSTATE_H
#define MC_TSTATE_H

#include <stddef.h>
#include <stdint.h>

#include "pkg.h"
#include "state.h"
#include "target.h"

#define MC_TSTATE_MAX (MC_MANIFEST_MAX + (64u << 20))

/*
 * Where the stored bytes at payload offset off are kept on the target while
 * their chunk is incomplete: in the chunk's own span, at the same distance
 * from its start as from the chunk's start in the payload (stored_len <=
 * span_len, so they fit). A receiver spills there (mc_target_pwrite), the
 * state's spans say what is there, mcast-repair --to reads it back.
 */
static inline uint64_t mc_tstate_spill_off(const struct mc_manifest *m, uint64_t off)
{
	uint32_t i = mc_manifest_chunk_of(m, off);

	return mc_manifest_span_off(m, i) + (off - mc_manifest_chunk_off(m, i));
}

/*
 * Loads FILE. Returns 1 with m (the manifest it keeps, parsed and checked:
 * free with mc_manifest_free), tid (the target it was written against) and
 * st (bitmap and spans, spans fit to m), 0 when FILE does not exist, a
 * negative code when it cannot be read (-errno, -ENOMEM) or is damaged or
 * not a state file (-EINVAL); err says which. A caller starts from an
 * empty state then, every span checked, unless out of memory.
 */
int mc_tstate_load(const char *path, struct mc_manifest *m, uint8_t tid[MC_DIGEST_LEN], struct mc_state *st,
		   char *err, size_t errlen);

/*
 * Refuses FILE when it holds something that is not a target state (not
 * empty, not starting with the state's magic): the first save would replace
 * it and the end remove it. A damaged state (the magic, a bad seal) is not
 * refused: the callers start from an empty one. States are replaced whole by
 * a rename, so none is half written. Returns 0, or -EINVAL with
 * "FILE: not a target state file ...: refused" in err.
 */
int mc_tstate_refuse_foreign(const char *path, char *err, size_t errlen);

/*
 * Refuses a loaded state that is not for this package (want: the package
 * the session or the source offers; NULL: none known yet) and this target
 * (t's identity against tid). Returns 0, or -EINVAL with
 * "FILE: the state of ..., not ...: refused" in err.
 */
int mc_tstate_match(const char *path, const struct mc_manifest *sm, const uint8_t tid[MC_DIGEST_LEN],
		    const struct mc_manifest *want, struct mc_target *t, char *err, size_t errlen);

/*
 * The resume check (the rule of lib/resume.h: a state is a lower bound):
 * every chunk st does not mark is read from t and marked when its span
 * matches its span digest (a hole on a target that reads as zeros
 * included; a don't-care hole is marked unread); spans of chunks found are
 * dropped. Nothing is written.
 * Returns the number found, or a negative code (a read error).
 */
long mc_tstate_check(struct mc_target *t, const struct mc_manifest *m, struct mc_state *st, char *err, size_t errlen);

/*
 * The resume sequence of a target, one for mcast-recv --to and mcast-repair
 * --to: loads FILE; a state of another package than m, or of another target
 * than t, is refused (-EINVAL, nothing changed); a missing one
 * counts as empty, and so does a damaged one (why says why it was not used,
 * else why is ""); then every chunk it does not mark is checked on t
 * (mc_tstate_check). st is set for m (spans fit; free with mc_state_free).
 * Returns the number of chunks the check found, or a negative code (err: a
 * refusal -EINVAL, a read error, -ENOMEM).
 */
long mc_tstate_resume(const char *path, struct mc_target *t, const struct mc_manifest *m, struct mc_state *st,
		      char *why, size_t whylen, char *err, size_t errlen);

/*
 * Atomically replaces FILE with st for package m on the target of identity
 * tid. Sync the target first. Returns 0 or a negative code with "FILE:
 * reason" in err.
 */
int mc_tstate_save(const char *path, const struct mc_manifest *m, const uint8_t tid[MC_DIGEST_LEN],
		   const struct mc_state *st, char *err, size_t errlen);

/*
 * Removes FILE, and FILE.tmp that a save killed between its write and its
 * rename leaves, once the target is complete and flushed. Only regular
 * files and symbolic links (not followed): a device node, FIFO or socket
 * under the name is left as it is.
 * Returns 0 (also when there was none) or -errno with "FILE: reason" in err.
 */
int mc_tstate_remove(const char *path, char *err, size_t errlen);

#endif
