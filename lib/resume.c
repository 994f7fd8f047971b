/* The one resume sequence; see resume.h for the rule. */
#include "resume.h"
#include "exitcode.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mc_resume_head(int fd, struct mc_resume *rs)
{
	int (*accept)(void *, const struct mc_manifest *, char *, size_t) = rs->accept;
	void *ctx = rs->accept_ctx;

	memset(rs, 0, sizeof *rs);
	rs->accept = accept;
	rs->accept_ctx = ctx;
	rs->have_m = mc_state_read_part_manifest(fd, &rs->m);
	return rs->have_m;
}

int mc_resume_state(const char *pkg, int fd, unsigned flags, struct mc_resume *rs, char *err, size_t errlen)
{
	const char *suffix = flags & MC_RESUME_IN_PLACE ? "" : ".part";
	const struct mc_manifest *m = &rs->m;
	uint8_t *buf;
	int lr = 0;

	if (!rs->have_m)
		return 0;
	if (!(flags & MC_RESUME_IN_PLACE)) {
		lr = mc_state_load(pkg, fd, &rs->st, rs->why, sizeof rs->why);
		if (lr < 0)
			lr = 0; /* rs->why says why */
		else
			rs->why[0] = '\0';
		if (lr > 0 && (memcmp(rs->st.id, m->id, MC_ID_LEN) != 0 || rs->st.nchunks != m->nchunks)) {
			mc_state_free(&rs->st);
			lr = 0;
		}
	}
	rs->loaded = lr;
	if (!lr && mc_state_init(&rs->st, m->id, m->nchunks) < 0) {
		snprintf(err, errlen, "%s", mc_strerror(-ENOMEM));
		return -ENOMEM;
	}
	if ((buf = malloc(m->chunk_size)) == NULL) {
		snprintf(err, errlen, "%s", mc_strerror(-ENOMEM));
		return -ENOMEM;
	}
	rs->found = mc_state_rescan(fd, m, &rs->st, buf);
	free(buf);
	if (rs->found < 0) {
		snprintf(err, errlen, "%s%s: %s", pkg, suffix, mc_strerror((int)-rs->found));
		return (int)rs->found;
	}
	mc_state_spans_fit(&rs->st, m);
	/* What the check found is kept at once: whatever happens next, PKG.state says it. */
	if ((flags & MC_RESUME_SAVE) && !(flags & MC_RESUME_IN_PLACE) && (!rs->loaded || rs->found > 0) &&
	    mc_state_save(pkg, fd, &rs->st, rs->save_err, sizeof rs->save_err) == 0)
		rs->save_err[0] = '\0';
	return 0;
}

int mc_resume_part(const char *pkg, int fd, unsigned flags, struct mc_resume *rs, char *err, size_t errlen)
{
	int rc;

	if (!mc_resume_head(fd, rs))
		return 0;
	if (rs->accept && (rc = rs->accept(rs->accept_ctx, &rs->m, err, errlen)) < 0)
		return rc;
	rc = mc_resume_state(pkg, fd, flags, rs, err, errlen);
	return rc < 0 ? rc : 1;
}

void mc_resume_free(struct mc_resume *rs)
{
	if (rs->have_m)
		mc_manifest_free(&rs->m);
	mc_state_free(&rs->st);
	rs->have_m = 0;
}
