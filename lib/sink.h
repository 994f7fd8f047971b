/* Sinks: where a receive driver puts what it receives (a package file today, a target disk next). */
#ifndef MC_SINK_H
#define MC_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "pkg.h"
#include "resume.h"
#include "state.h"
#include "wire.h"

/*
 * The receive driver (lib/rxloop.h) runs the pure receiver core and hands
 * every byte it must keep to a sink through this table. Offsets are payload
 * offsets (the stored bytes of chunk i are [mc_manifest_chunk_off(m, i),
 * + mc_manifest_chunk_len(m, i)) ); each sink maps them to its own place:
 * the package file adds payload_off, a target disk puts the stored bytes of
 * chunk i into the span that chunk decodes to (stored_len <= span_len) while
 * the chunk is not yet done.
 *
 * Every op returns 0, or a negative errno-like code with the reason (naming
 * the file or device) in err (lib/exitcode.h, "Errors in lib"). sync and save
 * run on the driver's state-saving thread while write and read go on: a sink
 * keeps what they share safe (the package file shares only its descriptor).
 *
 * Order of calls: resume (once, before anything), announce (when the session
 * is known: sizes, manifest length), manifest (once the manifest is verified),
 * write/read (spills of partial chunks, and verified chunks when there is no
 * chunk op, any time after announce), chunk (a verified chunk, whole),
 * sync then save (now and then, and at the end), finish (once, every chunk
 * verified), close (always, last).
 */
struct mc_sink;

struct mc_sink_ops {
	/*
	 * What the sink already holds from an earlier run (the one resume
	 * sequence, lib/resume.h): rs->have_m and rs->m when the package is
	 * known, rs->st its verified chunks and the spans of partial ones.
	 */
	int (*resume)(struct mc_sink *s, struct mc_resume *rs, char *err, size_t errlen);
	/* The session is known (sizes, manifest length): lay out what can be laid out before the manifest. */
	int (*announce)(struct mc_sink *s, const struct mc_announce *a, char *err, size_t errlen);
	/* The manifest is known and verified (PKG.part: its head is written now). */
	int (*manifest)(struct mc_sink *s, const struct mc_manifest *m, char *err, size_t errlen);
	/* Stored payload bytes at payload offset off: spills of partial chunks and verified chunks. */
	int (*write)(struct mc_sink *s, uint64_t off, const void *buf, size_t len, char *err, size_t errlen);
	/* Reads back what write put there (partial chunks reloaded, chunks checked). */
	int (*read)(struct mc_sink *s, uint64_t off, void *buf, size_t len, char *err, size_t errlen);
	/*
	 * Chunk i was verified: buf holds its stored bytes whole (len =
	 * mc_manifest_chunk_len; a hole of an image package comes with len 0 and
	 * buf NULL once the manifest is known), handed over INSTEAD of a write at
	 * its payload offset, for a sink that decodes chunks onto their final
	 * place (a target disk). The chunk counts as verified only when this
	 * returns 0. NULL: verified chunks go through write like everything else
	 * (the package file).
	 */
	int (*chunk)(struct mc_sink *s, const struct mc_manifest *m, uint32_t i, const uint8_t *buf, size_t len,
		     char *err, size_t errlen);
	/* Makes everything written so far durable (state-saving thread). */
	int (*sync)(struct mc_sink *s, char *err, size_t errlen);
	/* Records st (verified chunks, spans of partial ones) durably; called only after sync (state-saving thread). */
	int (*save)(struct mc_sink *s, const struct mc_state *st, char *err, size_t errlen);
	/* Every chunk verified: the commit (PKG.part becomes PKG, its state goes). */
	int (*finish)(struct mc_sink *s, const struct mc_manifest *m, char *err, size_t errlen);
	/* Releases the sink; what never received a byte is removed (no empty PKG.part is left). */
	void (*close)(struct mc_sink *s);
};

struct mc_sink {
	const struct mc_sink_ops *ops;
};

/* The calls, for the driver and tests. */
static inline int mc_sink_write(struct mc_sink *s, uint64_t off, const void *buf, size_t len, char *err, size_t errlen)
{
	return s->ops->write(s, off, buf, len, err, errlen);
}

static inline int mc_sink_read(struct mc_sink *s, uint64_t off, void *buf, size_t len, char *err, size_t errlen)
{
	return s->ops->read(s, off, buf, len, err, errlen);
}

/*
 * The package file sink: PKG.part (the final layout, mcast-package(5)) and
 * PKG.state beside it (lib/state.h), PKG.part renamed to PKG at finish.
 * Opens (creates) and locks PKG.part. Returns 0 and *out, or a negative
 * errno-like code with "PKG.part: reason" in err (-EINVAL: PKG.part or its
 * state is a device node, FIFO or socket, refused as mc_state_open_part says).
 */
int mc_sink_pkg_open(const char *pkg, struct mc_sink **out, char *err, size_t errlen);

#endif
