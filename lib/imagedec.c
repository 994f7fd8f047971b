/*
 * One chunk of a seekable image package decoded alone. Apart from image.c
 * (packing), so that a program that only receives and writes images links
 * none of the file system and disk libraries packing needs.
 */
#include "image.h"
#include "exitcode.h"
#include "crypto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

struct mc_image_dec {
	ZSTD_DCtx *dc;      /* made once, reused for every chunk */
	uint8_t *plain;     /* an encrypted chunk's stored bytes, decrypted */
	size_t cap;
	/* An encrypted package's AEAD context, made at its first chunk and kept while the key stays the same. */
	struct mc_aead *ae;
	uint8_t ae_alg, ae_key[sizeof ((struct mc_manifest *)0)->subkey];
};

struct mc_image_dec *mc_image_dec_new(void)
{
	struct mc_image_dec *d = calloc(1, sizeof *d);

	if (d && (d->dc = ZSTD_createDCtx()) == NULL) {
		free(d);
		d = NULL;
	}
	return d;
}

void mc_image_dec_free(struct mc_image_dec *d)
{
	if (d) {
		ZSTD_freeDCtx(d->dc);
		mc_aead_free(d->ae);
		free(d->plain);
		free(d);
	}
}

/* d's AEAD context for m's package key: the one kept when the key is the same, else a new one. */
static struct mc_aead *dec_aead(struct mc_image_dec *d, const struct mc_manifest *m)
{
	if (d->ae && d->ae_alg == m->aead_alg && memcmp(d->ae_key, m->subkey, sizeof d->ae_key) == 0)
		return d->ae;
	mc_aead_free(d->ae);
	if ((d->ae = mc_manifest_aead(m)) != NULL) {
		d->ae_alg = m->aead_alg;
		memcpy(d->ae_key, m->subkey, sizeof d->ae_key);
	}
	return d->ae;
}

static int decode(struct mc_image_dec *d, const struct mc_manifest *m, uint32_t i, const uint8_t *stored,
		  uint32_t len, uint8_t *out, int verified, char *err, size_t errlen)
{
	uint32_t span = mc_manifest_span_len(m, i);
	unsigned f = mc_manifest_chunk_flags(m, i);
	uint8_t dg[MC_DIGEST_LEN];

	if (m->format != MC_PKG_VERSION_IMAGE || i >= m->nchunks) {
		snprintf(err, errlen, "chunk %u: not a chunk of a seekable image", i);
		return -EINVAL;
	}
	if (len != mc_manifest_chunk_len(m, i)) {
		snprintf(err, errlen, "chunk %u: %u stored bytes, the manifest says %u", i, len, mc_manifest_chunk_len(m, i));
		return -EBADMSG;
	}
	if (!verified) {
		mc_chunk_digest(m, stored, len, dg);
		if (memcmp(dg, m->digests + (size_t)i * MC_DIGEST_LEN, MC_DIGEST_LEN) != 0) {
			snprintf(err, errlen, "chunk %u: stored bytes do not match their digest", i);
			return -EBADMSG;
		}
	}
	if (f & MC_CHUNK_HOLE) {
		memset(out, 0, span); /* the manifest's digest of zeros was checked when it was parsed */
		return 0;
	}
	if (m->is_encrypted) {
		/* Opened before anything is decoded: a wrong key or a forged tag gives no bytes at all. */
		struct mc_aead *a = dec_aead(d, m);
		uint8_t *to = f & MC_CHUNK_RAW ? out : NULL;
		if (a == NULL) {
			snprintf(err, errlen, "chunk %u: encrypted, and no key was given", i);
			return m->unlocked ? -ENOMEM : -EACCES;
		}
		if (to == NULL && d->cap < len) {
			free(d->plain);
			d->cap = 0;
			if ((d->plain = malloc(len)) == NULL) {
				snprintf(err, errlen, "chunk %u: %s", i, mc_strerror(-ENOMEM));
				return -ENOMEM;
			}
			d->cap = len;
		}
		if (to == NULL)
			to = d->plain;
		if (mc_chunk_open(m, a, i, stored, to, len) < 0) {
			snprintf(err, errlen, "chunk %u: does not decrypt (its tag does not match): tampered", i);
			return -EBADMSG;
		}
		if (f & MC_CHUNK_RAW)
			stored = out; /* already in place */
		else
			stored = d->plain;
	}
	if (f & MC_CHUNK_RAW) {
		if (stored != out)
			memcpy(out, stored, span);
	} else {
		size_t n = ZSTD_decompressDCtx(d->dc, out, span, stored, len);
		if (ZSTD_isError(n) || n != span) {
			snprintf(err, errlen, "chunk %u: does not decode to its %u bytes: %s", i, span,
				 ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short");
			return -EBADMSG;
		}
	}
	mc_digest(out, span, dg);
	if (memcmp(dg, mc_manifest_span_digest(m, i), MC_DIGEST_LEN) != 0) {
		snprintf(err, errlen, "chunk %u: decoded span does not match its digest", i);
		return -EBADMSG;
	}
	return 0;
}

int mc_image_decode(struct mc_image_dec *d, const struct mc_manifest *m, uint32_t i, const uint8_t *stored,
		    uint32_t len, uint8_t *out, char *err, size_t errlen)
{
	return decode(d, m, i, stored, len, out, 0, err, errlen);
}

int mc_image_decode_verified(struct mc_image_dec *d, const struct mc_manifest *m, uint32_t i, const uint8_t *stored,
			     uint32_t len, uint8_t *out, char *err, size_t errlen)
{
	return decode(d, m, i, stored, len, out, 1, err, errlen);
}
