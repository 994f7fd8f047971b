/* The one resume sequence: what a partial package file already holds, for mcast-recv and mcast-repair alike. */
#ifndef MC_RESUME_H
#define MC_RESUME_H

#include <stddef.h>
#include <stdint.h>

#include "pkg.h"
#include "state.h"

/*
 * The sequence: read the head of the partial file (header and manifest: the
 * package it holds); load its state; check every chunk the state does not
 * mark; save what the check found; fit the spans to the manifest.
 *
 * The one rule for when chunks are checked: a state is a lower bound, never
 * the whole truth. A state that is missing, damaged, stale (PKG.part changed
 * after it was written) or of another package counts as empty; either way
 * every chunk it does not mark is read and checked against its digest, since
 * chunks written after the last save (a receiver killed between two saves)
 * are on disk too. Marked chunks are trusted: the state was written only
 * after PKG.part was made durable, and a stale one is not loaded.
 */
struct mc_resume {
	int have_m;            /* the file's head holds a valid manifest: m and st are set */
	struct mc_manifest m;  /* owned */
	struct mc_state st;    /* verified chunks, spans fit to m (owned) */
	int loaded;            /* 1: a state of this package was loaded */
	long found;            /* chunks the check found that the state did not mark */
	char why[512];         /* a state file was there but not used: why ("" otherwise) */
	char save_err[512];    /* MC_RESUME_SAVE failed: why ("" otherwise; the state is then saved later) */
	/*
	 * Set by the caller before the sequence (rs zeroed first; the sequence
	 * and mc_resume_free keep these two): when the head
	 * holds a manifest, accept() is asked before anything else is read or
	 * written (--trust, --expect); a negative return ends the sequence
	 * with that code and accept's reason in err. NULL: any package.
	 */
	int (*accept)(void *ctx, const struct mc_manifest *m, char *err, size_t errlen);
	void *accept_ctx;
};

#define MC_RESUME_IN_PLACE 1u /* the file is the package itself (mcast-repair healing PKG): no state file */
#define MC_RESUME_SAVE 2u     /* save the state at once when it was not loaded or the check found chunks */

/* Step one alone: reads fd's head. Returns 1 (rs->m set), 0 (no valid head). rs is cleared first, but for accept. */
int mc_resume_head(int fd, struct mc_resume *rs);

/*
 * The rest of the sequence once the head was read (rs->have_m; nothing to
 * do otherwise). pkg is the final name (state PKG.state, file PKG.part, or
 * PKG itself with MC_RESUME_IN_PLACE). Returns 0, or a negative errno-like
 * code with the reason in err ("PKG.part: Input/output error", "out of memory").
 */
int mc_resume_state(const char *pkg, int fd, unsigned flags, struct mc_resume *rs, char *err, size_t errlen);

/*
 * Both steps, rs->accept asked in between. Returns 1 resumed (rs->have_m),
 * 0 nothing to resume, or a negative code (accept's, or as mc_resume_state).
 */
int mc_resume_part(const char *pkg, int fd, unsigned flags, struct mc_resume *rs, char *err, size_t errlen);

/* Frees what rs owns (a zeroed rs is fine). */
void mc_resume_free(struct mc_resume *rs);

#endif
