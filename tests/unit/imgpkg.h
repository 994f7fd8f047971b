/* Test fixture: an image package (format 2) of raw chunks from bytes in memory, for the tests that send or resume one. */
#ifndef MC_TEST_IMGPKG_H
#define MC_TEST_IMGPKG_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pkg.h"

/*
 * Writes PATH: package NAME holding image (size bytes) in spans of cs
 * bytes, each stored as it is (no compression), so a chunk's stored bytes
 * are its span's; with holes, a span of zeros is a hole (nothing stored),
 * else none is. Returns 0 or -1 (said on stdout as a TAP comment).
 */
static inline int imgpkg_write_holes(const char *path, const char *name, const uint8_t *image, uint64_t size,
				     uint32_t cs, int holes)
{
	uint32_t n = (uint32_t)((size + cs - 1) / cs);
	uint32_t *len = malloc((size_t)n * sizeof *len);
	uint8_t *fl = malloc(n), *dg = malloc((size_t)n * MC_DIGEST_LEN), *sdg = malloc((size_t)n * MC_DIGEST_LEN);
	uint8_t *zero = calloc(1, cs);
	struct mc_manifest m;
	struct mc_pkg_layout l;
	char err[256];
	int fd = -1, rc = -1;

	if (len == NULL || fl == NULL || dg == NULL || sdg == NULL || zero == NULL)
		goto out;
	memset(&m, 0, sizeof m);
	snprintf(m.name, sizeof m.name, "%s", name);
	m.chunk_size = cs;
	m.image_size = size;
	m.compression = MC_COMP_NONE;
	mc_digest(image, size, m.payload_digest);
	for (uint32_t i = 0; i < n; i++) {
		uint64_t off = (uint64_t)i * cs;
		len[i] = (uint32_t)(size - off < cs ? size - off : cs);
		mc_digest(image + off, len[i], sdg + (size_t)i * MC_DIGEST_LEN);
		fl[i] = MC_CHUNK_RAW;
		memcpy(dg + (size_t)i * MC_DIGEST_LEN, sdg + (size_t)i * MC_DIGEST_LEN, MC_DIGEST_LEN);
		if (holes && memcmp(image + off, zero, len[i]) == 0) {
			fl[i] = MC_CHUNK_HOLE;
			len[i] = 0;
			mc_chunk_digest(&m, "", 0, dg + (size_t)i * MC_DIGEST_LEN);
		}
	}
	if (mc_manifest_encode_image(&m, len, fl, dg, sdg, err, sizeof err) < 0) {
		printf("# %s\n", err);
		goto out;
	}
	mc_manifest_layout(&m, &l);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || mc_pkg_write_head(fd, &m) != 0)
		goto done;
	off_t at = (off_t)l.payload_off;
	for (uint32_t i = 0; i < n; i++) {
		if (fl[i] & MC_CHUNK_HOLE)
			continue;
		if (pwrite(fd, image + (uint64_t)i * cs, len[i], at) != (ssize_t)len[i]) /* stored: its span's length */
			goto done;
		at += len[i];
	}
	rc = 0;
done:
	if (fd >= 0)
		close(fd);
	mc_manifest_free(&m);
out:
	free(len);
	free(fl);
	free(dg);
	free(sdg);
	free(zero);
	return rc;
}

/* imgpkg_write_holes without holes: every span stored, even one of zeros. */
static inline int imgpkg_write(const char *path, const char *name, const uint8_t *image, uint64_t size, uint32_t cs)
{
	return imgpkg_write_holes(path, name, image, size, cs, 0);
}

#endif
