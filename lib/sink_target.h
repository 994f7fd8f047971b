/* The target sink: a seekable image received straight onto a block device or regular file (mcast-recv --to). */
#ifndef MC_SINK_TARGET_H
#define MC_SINK_TARGET_H

#include <stddef.h>
#include <stdint.h>

#include "pkg.h"
#include "sink.h"

/*
 * Verified chunks are decoded and written at their image offsets
 * (lib/target.h); holes are zeroed (or punched, or skipped with
 * MC_TARGET_ZEROED). The target is also the scratch space for chunks not yet
 * complete: the stored bytes of chunk i (never more than its span) are
 * spilled into [span_off(i), + stored_len(i)) until chunk i is done and
 * decoded over them. So the package is never stored anywhere.
 *
 * The state file (lib/tstate.h, the format mcast-repair --to reads too)
 * records which chunks are durably on the target (saved only after the
 * target was synced) and the parts of incomplete chunks spilled there,
 * with the package's manifest (so a rerun knows the image before any
 * session) and the target's identity (mc_target_identity). Resuming, every
 * chunk the state does not mark is checked on the target: a state is a
 * lower bound (lib/resume.h).
 *
 * Memory: the target's four writer threads (mc_target_start_writers, two
 * decoding at a time: eight chunks queued or being decoded, and per thread
 * the span it decodes into and a decoder), the manifest (37 bytes a span)
 * and two bitmaps; the receiver's chunk slots (--mem) are the caller's.
 */

/*
 * Opens the sink for TARGET with its state in state_path (flags:
 * MC_TARGET_ZEROED). Refuses at once, before anything is written, what can
 * be told without the package: a directory, a character device or anything
 * but a block device or regular file, a block device that is mounted or
 * held (O_EXCL). The rest (too small, not an image, a state of another
 * target) is refused by resume (a state file there), announce or manifest.
 * Returns 0 and *out, or a negative errno-like code with "TARGET: reason"
 * in err (-EINVAL: unsuitable, a usage error; else a runtime error).
 */
int mc_sink_target_open(const char *target, const char *state_path, unsigned flags, struct mc_sink **out,
			char *err, size_t errlen);

/*
 * --decrypt: the key (crypto.h) that opens an encrypted package before the
 * target is opened (a key that does not is refused, -EACCES, with nothing
 * written); without it an encrypted package is refused the same way.
 */
struct mc_content_key;
void mc_sink_target_decrypt(struct mc_sink *s, const struct mc_content_key *k);

/*
 * 1 when the sink refused the target or the session's package (not an
 * image, too small, ...) rather than failed: the program's usage error.
 */
int mc_sink_target_refused(const struct mc_sink *s);

/*
 * The default state file of TARGET into buf (cap bytes): TARGET.state beside
 * a regular file (or a path that does not exist yet), and for a block
 * device MC_TARGET_STATE_DIR/NAME.state, NAME the device's path without
 * /dev/ and with '/' as '_' (/dev/sda: /var/lib/mcast/sda.state). Returns 0,
 * or -1 when it does not fit.
 */
#define MC_TARGET_STATE_DIR "/var/lib/mcast"
int mc_sink_target_state_path(const char *target, char *buf, size_t cap);

#endif
