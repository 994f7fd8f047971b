/* Package format: header and manifest codecs, validation, opening and chunk checks (mcast-package(5)). */
#include "pkg.h"
#include "exitcode.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#if defined(__x86_64__) || defined(__i386__)
/* The library's runtime dispatch to its AVX2/AVX-512 code, where the CPU has it. */
#include <xxh_x86dispatch.h>
#endif

#include "be.h"
#include "crypto.h"

#include <openssl/crypto.h>

#define MANIFEST_MAGIC "MCMF"
#define MANIFEST_VERSION 1
/* Fixed part of the manifest: everything but name, version string and chunk digests. */
#define MANIFEST_FIXED (4 + 2 + 2 + 2 + 8 + 1 + 1 + 4 + 8 + 4 + MC_DIGEST_LEN)
/* Format 2 adds image_size after the payload digest. */
#define MANIFEST_FIXED2 (MANIFEST_FIXED + 8)
/* Format 2's optional volume records (pkg.h), after the span digests. */
#define VOL_MAGIC "MCVL"


static uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

void mc_digest(const void *p, size_t n, uint8_t out[MC_DIGEST_LEN])
{
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, XXH3_128bits(p, n));
	memcpy(out, c.digest, MC_DIGEST_LEN);
}

void mc_digest_final(void *xxh3_state, uint8_t out[MC_DIGEST_LEN])
{
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(xxh3_state));
	memcpy(out, c.digest, MC_DIGEST_LEN);
}

void mc_chunk_digest(const struct mc_manifest *m, const void *p, size_t n, uint8_t out[MC_DIGEST_LEN])
{
	if (m->digest_alg == MC_HASH_XXH3)
		mc_digest(p, n, out);
	else
		mc_hash_once(m->digest_alg, m->salt, p, n, out);
}

int mc_manifest_want_sign(struct mc_manifest *m, const struct mc_key *k, const void *salt_seed, size_t seedlen,
			  char *err, size_t errlen)
{
	int rc;

	if (!k->has_secret) {
		snprintf(err, errlen, "not a secret key");
		return -EINVAL;
	}
	if (salt_seed) {
		/*
		 * Reproducible: the same key and seed give the same salt, which
		 * no one without the secret key can know in advance, so content
		 * chosen by someone else still cannot be a prepared collision.
		 */
		static const char dom[] = "mcast chunk digest salt v1";
		size_t n = sizeof dom + MC_KEY_SEED_LEN + seedlen;
		uint8_t *b = malloc(n), h[32];

		if (b == NULL) {
			snprintf(err, errlen, "%s", mc_strerror(-ENOMEM));
			return -ENOMEM;
		}
		memcpy(b, dom, sizeof dom);
		memcpy(b + sizeof dom, k->seed, MC_KEY_SEED_LEN);
		memcpy(b + sizeof dom + MC_KEY_SEED_LEN, salt_seed, seedlen);
		mc_sha256(b, n, h);
		memset(b, 0, n);
		free(b);
		memcpy(m->salt, h, MC_HASH_SALT_LEN);
	} else if ((rc = mc_random(m->salt, MC_HASH_SALT_LEN)) < 0) {
		snprintf(err, errlen, "no random bytes for the digest salt");
		return rc;
	}
	m->is_signed = 1;
	m->digest_alg = MC_HASH_SHA256;
	memcpy(m->signer, k->pub, MC_KEY_PUB_LEN);
	return 0;
}

int mc_manifest_sign(struct mc_manifest *m, const struct mc_key *k, char *err, size_t errlen)
{
	int rc;

	if (!m->is_signed || m->raw == NULL) {
		snprintf(err, errlen, "manifest not encoded for signing");
		return -EINVAL;
	}
	if ((rc = mc_sig_sign(m->raw, m->raw_len, k, err, errlen)) < 0)
		return rc;
	mc_digest(m->raw, m->raw_len, m->id);
	return 0;
}

int mc_manifest_trust(const struct mc_manifest *m, const struct mc_trust *t, char *err, size_t errlen)
{
	return mc_sig_check(m->raw, m->raw_len, m->is_signed, t, err, errlen);
}

const char *mc_comp_name(unsigned c)
{
	static const char *const n[] = {"none", "gzip", "zstd", "xz"};
	return c < 4 ? n[c] : "unknown";
}

const char *mc_kind_name(unsigned k)
{
	return k == MC_KIND_RAW ? "raw" : k == MC_KIND_TAR ? "tar" : k == MC_KIND_IMAGE ? "image" : "unknown";
}

int mc_comp_parse(const char *s)
{
	for (unsigned c = 0; c < 4; c++)
		if (strcmp(s, mc_comp_name(c)) == 0)
			return (int)c;
	return -1;
}

char *mc_id_hex(const uint8_t id[MC_ID_LEN], char out[2 * MC_ID_LEN + 1])
{
	return mc_hex(id, MC_ID_LEN, out);
}

char *mc_manifest_describe(const struct mc_manifest *m, char *buf, size_t len)
{
	char hex[2 * MC_ID_LEN + 1];

	snprintf(buf, len, "%s%s%s (id %s)", m->name, m->version[0] ? " " : "", m->version, mc_id_hex(m->id, hex));
	return buf;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int mc_id_parse(const char *s, uint8_t id[MC_ID_LEN])
{
	size_t n = s ? strlen(s) : 0;

	if (n < 8 || n > 2 * MC_ID_LEN)
		return -1;
	memset(id, 0, MC_ID_LEN);
	for (size_t i = 0; i < n; i++) {
		int v = hexval((unsigned char)s[i]);
		if (v < 0)
			return -1;
		id[i / 2] |= (uint8_t)(i % 2 ? v : v << 4);
	}
	return (int)n;
}

int mc_id_match(const uint8_t id[MC_ID_LEN], const uint8_t want[MC_ID_LEN], int nhex)
{
	if (nhex < 0 || nhex > 2 * MC_ID_LEN)
		return 0;
	for (int i = 0; i < nhex; i++) {
		int a = i % 2 ? id[i / 2] & 15 : id[i / 2] >> 4;
		int b = i % 2 ? want[i / 2] & 15 : want[i / 2] >> 4;
		if (a != b)
			return 0;
	}
	return 1;
}

uint64_t mc_manifest_span_off(const struct mc_manifest *m, uint32_t i)
{
	return (uint64_t)i * m->chunk_size;
}

/* Span i's length in an image (format 2) or payload (format 1) of size bytes. */
static uint32_t span_len(uint64_t size, uint32_t chunk_size, uint32_t i)
{
	uint64_t off = (uint64_t)i * chunk_size;

	if (off >= size)
		return 0;
	return size - off < chunk_size ? (uint32_t)(size - off) : chunk_size;
}

uint32_t mc_manifest_span_len(const struct mc_manifest *m, uint32_t i)
{
	return span_len(m->format == MC_PKG_VERSION_IMAGE ? m->image_size : m->payload_size, m->chunk_size, i);
}

uint64_t mc_manifest_chunk_off(const struct mc_manifest *m, uint32_t i)
{
	if (m->format == MC_PKG_VERSION_IMAGE)
		return m->chunk_offs ? m->chunk_offs[i < m->nchunks ? i : m->nchunks] : 0;
	return (uint64_t)i * m->chunk_size;
}

uint32_t mc_manifest_chunk_len(const struct mc_manifest *m, uint32_t i)
{
	if (m->format == MC_PKG_VERSION_IMAGE)
		return i < m->nchunks && m->stored_lens ? mc_get32(m->stored_lens + (size_t)4 * i) : 0;
	return span_len(m->payload_size, m->chunk_size, i);
}

uint32_t mc_manifest_chunk_of(const struct mc_manifest *m, uint64_t off)
{
	uint32_t lo = 0, hi = m->nchunks;

	if (off >= m->payload_size)
		return m->nchunks;
	if (m->format != MC_PKG_VERSION_IMAGE)
		return (uint32_t)(off / m->chunk_size);
	/* The last chunk starting at or before off: holes before it start at the same offset. */
	while (hi - lo > 1) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (m->chunk_offs[mid] <= off)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

unsigned mc_manifest_chunk_flags(const struct mc_manifest *m, uint32_t i)
{
	return m->chunk_flags && i < m->nchunks ? m->chunk_flags[i] : 0;
}

const uint8_t *mc_manifest_span_digest(const struct mc_manifest *m, uint32_t i)
{
	/* Encrypted: the decrypted table once unlocked, nothing before (the stored one is ciphertext). */
	const uint8_t *t = m->is_encrypted ? m->span_plain : m->span_digests;

	return t && i < m->nchunks ? t + (size_t)i * MC_DIGEST_LEN : NULL;
}

uint32_t mc_manifest_holes(const struct mc_manifest *m, uint64_t *bytes)
{
	uint32_t n = 0;
	uint64_t b = 0;

	for (uint32_t i = 0; m->chunk_flags && i < m->nchunks; i++)
		if (m->chunk_flags[i] & MC_CHUNK_HOLE) {
			n++;
			b += mc_manifest_span_len(m, i);
		}
	if (bytes)
		*bytes = b;
	return n;
}

void mc_manifest_layout(const struct mc_manifest *m, struct mc_pkg_layout *l)
{
	l->format = m->format == MC_PKG_VERSION_IMAGE ? MC_PKG_VERSION_IMAGE : MC_PKG_VERSION;
	l->manifest_off = MC_PKG_HDR_SIZE;
	l->manifest_len = m->raw_len;
	l->payload_off = round_up(MC_PKG_HDR_SIZE + (uint64_t)m->raw_len, MC_PKG_ALIGN);
	l->payload_len = m->payload_size;
	l->file_size = l->payload_off + l->payload_len;
}

static int seal_spans(struct mc_manifest *m, uint8_t *p, uint64_t n);
static int unlock_with(struct mc_manifest *m, const uint8_t subkey[32], char *err, size_t errlen);

/* Length of the encryption section of m with n chunks. */
static uint64_t enc_len(const struct mc_manifest *m, uint64_t n)
{
	return MC_ENC_HDR + n * MC_AEAD_TAG_LEN + (uint64_t)m->nrecips * MC_ENC_REC;
}

/* Writes m's encryption section for n chunks at p (tags from m->tags); returns the byte after it. */
static uint8_t *put_enc(const struct mc_manifest *m, uint8_t *p, uint64_t n)
{
	memcpy(p, MC_ENC_MAGIC, 4);
	p[4] = m->aead_alg;
	p[5] = 0;
	mc_put16(p + 6, m->nrecips);
	memcpy(p + 8, m->enc_salt, MC_ENC_SALT_LEN);
	memcpy(p + 8 + MC_ENC_SALT_LEN, m->enc_check, MC_ENC_CHECK_LEN);
	memcpy(p + 8 + MC_ENC_SALT_LEN + MC_ENC_CHECK_LEN, m->span_tag, MC_AEAD_TAG_LEN);
	p += MC_ENC_HDR;
	if (n)
		memcpy(p, m->tags, n * MC_AEAD_TAG_LEN);
	p += n * MC_AEAD_TAG_LEN;
	if (m->nrecips)
		memcpy(p, m->enc_boxes, (size_t)m->nrecips * MC_ENC_REC);
	return p + (size_t)m->nrecips * MC_ENC_REC;
}

/*
 * Length of an encryption section for n chunks at buf + off (0 when there is
 * none there: no magic, or it does not fit in len).
 */
static uint64_t enc_ext_len(const uint8_t *buf, size_t len, size_t off, uint64_t n)
{
	uint64_t e;

	if (off > len || len - off < MC_ENC_HDR || memcmp(buf + off, MC_ENC_MAGIC, 4) != 0)
		return 0;
	e = MC_ENC_HDR + n * MC_AEAD_TAG_LEN + (uint64_t)mc_get16(buf + off + 6) * MC_ENC_REC;
	return e <= len - off ? e : 0;
}

/* Reads the encryption section at p (its length checked) into m, or returns the reason. */
static const char *parse_enc(const uint8_t *p, struct mc_manifest *m)
{
	if (p[4] != MC_AEAD_AES256GCM && p[4] != MC_AEAD_CHACHA20POLY1305)
		return "unknown encryption algorithm";
	if (p[5] != 0)
		return "encryption section: reserved byte not 0";
	if (mc_get16(p + 6) > MC_ENC_RECIPS_MAX)
		return "encryption section: too many recipients";
	m->is_encrypted = 1;
	m->aead_alg = p[4];
	m->nrecips = mc_get16(p + 6);
	memcpy(m->enc_salt, p + 8, MC_ENC_SALT_LEN);
	memcpy(m->enc_check, p + 8 + MC_ENC_SALT_LEN, MC_ENC_CHECK_LEN);
	memcpy(m->span_tag, p + 8 + MC_ENC_SALT_LEN + MC_ENC_CHECK_LEN, MC_AEAD_TAG_LEN);
	m->tags = p + MC_ENC_HDR;
	m->recips = m->tags + (size_t)m->nchunks * MC_AEAD_TAG_LEN;
	return NULL;
}

uint64_t mc_manifest_payload_off(const struct mc_manifest *m)
{
	uint64_t len = MANIFEST_FIXED + strlen(m->name) + strlen(m->version) +
		       mc_chunk_count(m->payload_size, m->chunk_size) * MC_DIGEST_LEN;

	if (m->format == MC_PKG_VERSION_IMAGE)
		len = MANIFEST_FIXED2 + strlen(m->name) + strlen(m->version) +
		      mc_chunk_count(m->image_size, m->chunk_size) * MC_IMAGE_PER_CHUNK +
		      (m->nvols ? MC_VOL_HDR + (uint64_t)m->nvols * MC_VOL_REC : 0);

	if (m->is_signed)
		len += MC_SIG_TRAILER_LEN;
	if (m->is_encrypted)
		len += enc_len(m, m->format == MC_PKG_VERSION_IMAGE ? mc_chunk_count(m->image_size, m->chunk_size)
								    : mc_chunk_count(m->payload_size, m->chunk_size));
	if (m->chunk_size < MC_CHUNK_MIN || m->chunk_size > MC_CHUNK_MAX || len > MC_MANIFEST_MAX)
		return 0;
	return round_up(MC_PKG_HDR_SIZE + len, MC_PKG_ALIGN);
}

/* The signature trailer of a signed manifest, its signature left zero for mc_manifest_sign. */
static void put_trailer(const struct mc_manifest *m, uint8_t *p)
{
	struct mc_sig_trailer t = {.alg = m->digest_alg};

	memcpy(t.salt, m->salt, MC_HASH_SALT_LEN);
	memcpy(t.pub, m->signer, MC_KEY_PUB_LEN);
	mc_sig_trailer_encode(&t, p);
}

/*
 * The fields every manifest starts with (mcast-package(5)): magic, format,
 * name, version, ctime, compression, kind, chunk size, payload size, chunk
 * count and payload digest. Returns the byte after them.
 */
static uint8_t *put_head(uint8_t *p, const struct mc_manifest *m, uint16_t format, uint8_t kind, uint64_t payload,
			 uint32_t nchunks)
{
	size_t nl = strlen(m->name), vl = strlen(m->version);

	memcpy(p, MANIFEST_MAGIC, 4); p += 4;
	mc_put16(p, format); p += 2;
	mc_put16(p, (uint16_t)nl); p += 2;
	memcpy(p, m->name, nl); p += nl;
	mc_put16(p, (uint16_t)vl); p += 2;
	memcpy(p, m->version, vl); p += vl;
	mc_put64(p, m->ctime); p += 8;
	*p++ = m->compression;
	*p++ = kind;
	mc_put32(p, m->chunk_size); p += 4;
	mc_put64(p, payload); p += 8;
	mc_put32(p, nchunks); p += 4;
	memcpy(p, m->payload_digest, MC_DIGEST_LEN);
	return p + MC_DIGEST_LEN;
}

/* What both encoders refuse before the length is known: a name or version too long, a chunk size out of range. */
static int check_head(const struct mc_manifest *m, size_t nl, size_t vl, char *err, size_t errlen)
{
	if (nl > MC_NAME_MAX || vl > MC_NAME_MAX) {
		snprintf(err, errlen, "%s: longer than %d bytes", nl > MC_NAME_MAX ? "name" : "version", MC_NAME_MAX);
		return -EINVAL;
	}
	if (m->chunk_size < MC_CHUNK_MIN || m->chunk_size > MC_CHUNK_MAX) {
		snprintf(err, errlen, "chunk size %u: out of range", m->chunk_size);
		return -EINVAL;
	}
	return 0;
}

/* A manifest past MC_MANIFEST_MAX: WHAT (payload, image) has more chunks than fixed + per bytes a chunk allow. */
static int too_large(const char *what, uint32_t chunk_size, size_t fixed, size_t per, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s too large for chunk size %u (at most %u chunks)", what, chunk_size,
		 (unsigned)((MC_MANIFEST_MAX - fixed - 2 * MC_NAME_MAX) / per));
	return -EINVAL;
}

int mc_manifest_encode(struct mc_manifest *m, const uint8_t *digests, char *err, size_t errlen)
{
	size_t nl = strlen(m->name), vl = strlen(m->version);
	uint64_t want = mc_chunk_count(m->payload_size, m->chunk_size);
	uint64_t len;
	uint8_t *p;
	int rc;

	if ((rc = check_head(m, nl, vl, err, errlen)) < 0)
		return rc;
	len = MANIFEST_FIXED + nl + vl + want * MC_DIGEST_LEN + (m->is_signed ? MC_SIG_TRAILER_LEN : 0) +
	      (m->is_encrypted ? enc_len(m, want) : 0);
	if (want != m->nchunks || len > MC_MANIFEST_MAX)
		return too_large("payload", m->chunk_size, MANIFEST_FIXED, MC_DIGEST_LEN, err, errlen);
	p = malloc(len);
	if (p == NULL) {
		snprintf(err, errlen, "manifest: %s", mc_strerror(-ENOMEM));
		return -ENOMEM;
	}
	free(m->raw);
	m->raw = p;
	m->raw_len = (uint32_t)len;
	p = put_head(p, m, MANIFEST_VERSION, m->kind, m->payload_size, m->nchunks);
	if (m->nchunks)
		memcpy(p, digests, (size_t)m->nchunks * MC_DIGEST_LEN);
	m->digests = p;
	p += (size_t)m->nchunks * MC_DIGEST_LEN;
	if (m->is_encrypted) {
		uint8_t *e = p;
		p = put_enc(m, p, m->nchunks);
		m->tags = e + MC_ENC_HDR;
		m->recips = m->tags + (size_t)m->nchunks * MC_AEAD_TAG_LEN;
	}
	if (m->is_signed)
		put_trailer(m, p);
	m->format = MC_PKG_VERSION;
	m->image_size = 0;
	m->stored_lens = m->chunk_flags = m->span_digests = NULL;
	free(m->chunk_offs);
	m->chunk_offs = NULL;
	mc_digest(m->raw, m->raw_len, m->id);
	return 0;
}

int mc_manifest_encode_image(struct mc_manifest *m, const uint32_t *stored_len, const uint8_t *flags,
			     const uint8_t *digests, const uint8_t *span_digests, char *err, size_t errlen)
{
	return mc_manifest_encode_image_vols(m, stored_len, flags, digests, span_digests, "", NULL, 0, err, errlen);
}

int mc_manifest_encode_image_vols(struct mc_manifest *m, const uint32_t *stored_len, const uint8_t *flags,
				  const uint8_t *digests, const uint8_t *span_digests, const char *table,
				  const struct mc_vol *vols, unsigned nvols, char *err, size_t errlen)
{
	size_t nl = strlen(m->name), vl = strlen(m->version);
	uint64_t n = mc_chunk_count(m->image_size, m->chunk_size), len, payload = 0;
	size_t vlen = nvols ? MC_VOL_HDR + (size_t)nvols * MC_VOL_REC : 0;
	struct mc_manifest t;
	uint8_t *buf, *p;
	int rc;

	if (nvols > MC_VOL_MAX || strlen(table) > 4) {
		snprintf(err, errlen, "manifest: %u volumes, at most %d", nvols, MC_VOL_MAX);
		return -EINVAL;
	}
	if ((rc = check_head(m, nl, vl, err, errlen)) < 0)
		return rc;
	len = MANIFEST_FIXED2 + nl + vl + n * MC_IMAGE_PER_CHUNK + vlen + (m->is_signed ? MC_SIG_TRAILER_LEN : 0) +
	      (m->is_encrypted ? enc_len(m, n) : 0);
	if (len > MC_MANIFEST_MAX)
		return too_large("image", m->chunk_size, MANIFEST_FIXED2, MC_IMAGE_PER_CHUNK, err, errlen);
	for (uint64_t i = 0; i < n; i++)
		payload += stored_len[i];
	if ((buf = malloc(len)) == NULL) {
		snprintf(err, errlen, "manifest: %s", mc_strerror(-ENOMEM));
		return -ENOMEM;
	}
	p = buf;
	p = put_head(p, m, MC_PKG_VERSION_IMAGE, MC_KIND_IMAGE, payload, (uint32_t)n);
	mc_put64(p, m->image_size); p += 8;
	for (uint64_t i = 0; i < n; i++, p += 4)
		mc_put32(p, stored_len[i]);
	if (n) {
		memcpy(p, flags, n); p += n;
		memcpy(p, digests, n * MC_DIGEST_LEN); p += n * MC_DIGEST_LEN;
		memcpy(p, span_digests, n * MC_DIGEST_LEN);
		/* Encrypted: the span digests of plaintext would let anyone confirm a guess of a span. */
		if (m->is_encrypted && seal_spans(m, p, n) < 0) {
			free(buf);
			snprintf(err, errlen, "manifest: cannot encrypt the span digests");
			return -ENOMEM; /* the AEAD context is all that can fail */
		}
		p += n * MC_DIGEST_LEN;
	}
	if (nvols) {
		memcpy(p, VOL_MAGIC, 4); p += 4;
		memset(p, 0, 4);
		memcpy(p, table, strlen(table)); p += 4;
		mc_put16(p, (uint16_t)nvols); p += 2;
		for (unsigned i = 0; i < nvols; i++, p += MC_VOL_REC) {
			mc_put64(p, vols[i].start);
			mc_put64(p + 8, vols[i].size);
			mc_put64(p + 16, vols[i].used);
			mc_put64(p + 24, vols[i].stored);
			memset(p + 32, 0, MC_VOL_FSTYPE - 1);
			memcpy(p + 32, vols[i].fstype, strnlen(vols[i].fstype, MC_VOL_FSTYPE - 1));
			p[32 + MC_VOL_FSTYPE - 1] = vols[i].flags;
		}
	}
	if (m->is_encrypted)
		p = put_enc(m, p, n);
	/* The signature trailer comes last: it signs the volume records and the encryption section too. */
	if (m->is_signed)
		put_trailer(m, p);
	/* Parsing what was built makes encode exactly as strict as parse. */
	rc = mc_manifest_parse(buf, len, &t, err, errlen);
	free(buf);
	if (rc < 0)
		return rc;
	if (m->is_encrypted && (rc = unlock_with(&t, m->subkey, err, errlen)) < 0) {
		mc_manifest_free(&t);
		return rc;
	}
	mc_manifest_free(m);
	*m = t;
	return 0;
}

/* Reads a length-prefixed string at *off; fails when it runs past len or holds a NUL. */
static int get_str(const uint8_t *buf, size_t len, size_t *off, char out[MC_NAME_MAX + 1])
{
	uint16_t n;

	if (len - *off < 2)
		return -1;
	n = mc_get16(buf + *off);
	*off += 2;
	if (n > MC_NAME_MAX || len - *off < n || memchr(buf + *off, 0, n) != NULL)
		return -1;
	memcpy(out, buf + *off, n);
	out[n] = '\0';
	*off += n;
	return 0;
}

/* XXH3-128 of n zero bytes (a hole's span digest), streamed from a small zero block. */
static int zero_digest(uint64_t n, uint8_t out[MC_DIGEST_LEN])
{
	static const uint8_t zero[65536];
	XXH3_state_t *st = XXH3_createState();

	if (st == NULL)
		return -1;
	XXH3_128bits_reset(st);
	for (; n > 0; n -= n < sizeof zero ? n : sizeof zero)
		XXH3_128bits_update(st, zero, n < sizeof zero ? n : sizeof zero);
	mc_digest_final(st, out);
	XXH3_freeState(st);
	return 0;
}

/*
 * The per-chunk tables of a format-2 manifest at buf + off (n chunks, the
 * length already checked): every stored length fits its span, flags agree
 * with it, holes carry the digests of nothing stored and of zeros, and the
 * stored lengths add up to payload_size. Fills the pointers and the offset
 * table, or returns the reason.
 */
static const char *parse_image(const uint8_t *buf, size_t off, struct mc_manifest *m)
{
	uint32_t n = m->nchunks, last = span_len(m->image_size, m->chunk_size, n ? n - 1 : 0);
	uint8_t empty[MC_DIGEST_LEN], zfull[MC_DIGEST_LEN], zlast[MC_DIGEST_LEN];
	int zdone = 0;
	uint64_t sum = 0;

	m->stored_lens = buf + off;
	m->chunk_flags = m->stored_lens + (size_t)4 * n;
	m->digests = m->chunk_flags + n;
	m->span_digests = m->digests + (size_t)MC_DIGEST_LEN * n;
	if ((m->chunk_offs = malloc(((size_t)n + 1) * sizeof *m->chunk_offs)) == NULL)
		return mc_strerror(-ENOMEM); /* one pointer: mc_manifest_parse says -ENOMEM, not damage */
	mc_chunk_digest(m, "", 0, empty);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t sl = mc_get32(m->stored_lens + (size_t)4 * i), spl = i + 1 == n ? last : m->chunk_size;
		unsigned f = m->chunk_flags[i];
		m->chunk_offs[i] = sum;
		sum += sl;
		if (f & ~MC_CHUNK_FLAGS)
			return "unknown chunk flags";
		if (sl > spl)
			return "a chunk's stored length is more than its span";
		if (f & MC_CHUNK_HOLE) {
			if (sl != 0 || (f & MC_CHUNK_RAW))
				return "a hole with stored bytes";
			if (!zdone) {
				if (zero_digest(m->chunk_size, zfull) < 0 || zero_digest(last, zlast) < 0)
					return mc_strerror(-ENOMEM);
				zdone = 1;
			}
			/* Encrypted span digests are checked once decrypted (unlock_with). */
			if (memcmp(m->digests + (size_t)MC_DIGEST_LEN * i, empty, MC_DIGEST_LEN) != 0 ||
			    (!m->is_encrypted &&
			     memcmp(m->span_digests + (size_t)MC_DIGEST_LEN * i, spl == m->chunk_size ? zfull : zlast,
				    MC_DIGEST_LEN) != 0))
				return "a hole's digests are not those of zeros";
			continue;
		}
		if (f & MC_CHUNK_DONTCARE)
			return "a don't-care chunk that is not a hole";
		if (sl == 0)
			return "a chunk with no stored bytes that is not a hole";
		if ((f & MC_CHUNK_RAW) && sl != spl)
			return "a raw chunk whose stored length is not its span's";
		if (!(f & MC_CHUNK_RAW) && m->compression == MC_COMP_NONE)
			return "a compressed chunk in an uncompressed image";
	}
	m->chunk_offs[n] = sum;
	if (sum != m->payload_size)
		return "stored lengths do not add up to the payload size";
	return NULL;
}

/*
 * Length of the volume records after n chunks' tables at buf + off (0 when
 * there are none: the next bytes are a signature trailer or nothing). Only
 * the magic and count are read here: parse_vols checks the records.
 */
static uint64_t vol_ext_len(const uint8_t *buf, size_t len, size_t off, uint64_t n)
{
	uint64_t body = n * MC_IMAGE_PER_CHUNK;

	if (n > MC_MANIFEST_MAX || len - off < body + MC_VOL_HDR || memcmp(buf + off + body, VOL_MAGIC, 4) != 0)
		return 0;
	return MC_VOL_HDR + (uint64_t)mc_get16(buf + off + body + 8) * MC_VOL_REC;
}

static int vol_name_ok(const uint8_t *p, size_t n)
{
	size_t i = 0;

	for (; i < n && p[i]; i++)
		if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9') || p[i] == '_' || p[i] == '-'))
			return 0;
	for (; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/* Checks the volume records at p (their length already checked) and points m at them, or returns the reason. */
static const char *parse_vols(const uint8_t *p, struct mc_manifest *m)
{
	unsigned n = mc_get16(p + 8);

	if (n == 0 || n > MC_VOL_MAX)
		return "volume count out of range";
	if (!vol_name_ok(p + 4, 4))
		return "bad partition table name";
	memcpy(m->vol_table, p + 4, 4);
	m->vol_table[4] = 0;
	m->nvols = (uint16_t)n;
	m->vols = p + MC_VOL_HDR;
	for (unsigned i = 0; i < n; i++) {
		struct mc_vol v;
		const uint8_t *r = m->vols + (size_t)i * MC_VOL_REC;
		mc_manifest_vol(m, i, &v);
		if (v.start > m->image_size || v.size > m->image_size - v.start)
			return "a volume past the end of the image";
		if (v.used > v.size || v.stored > m->payload_size)
			return "a volume's used or stored bytes are more than it can hold";
		if (!vol_name_ok(r + 32, MC_VOL_FSTYPE - 1))
			return "bad file system name in a volume";
		if (v.flags & ~MC_VOL_USED_ONLY)
			return "unknown volume flags";
	}
	return NULL;
}

int mc_manifest_vol(const struct mc_manifest *m, unsigned i, struct mc_vol *v)
{
	const uint8_t *r;

	if (i >= m->nvols || m->vols == NULL)
		return -1;
	r = m->vols + (size_t)i * MC_VOL_REC;
	v->start = mc_get64(r);
	v->size = mc_get64(r + 8);
	v->used = mc_get64(r + 16);
	v->stored = mc_get64(r + 24);
	memcpy(v->fstype, r + 32, MC_VOL_FSTYPE - 1);
	v->fstype[MC_VOL_FSTYPE - 1] = 0;
	v->flags = r[32 + MC_VOL_FSTYPE - 1];
	return 0;
}

int mc_manifest_parse(const uint8_t *buf, size_t len, struct mc_manifest *m, char *err, size_t errlen)
{
	size_t off = 6;
	uint64_t want, vext = 0, eext = 0, per;
	unsigned fmt;
	const char *why = NULL;

	memset(m, 0, sizeof *m);
	if (len < MANIFEST_FIXED || memcmp(buf, MANIFEST_MAGIC, 4) != 0) {
		snprintf(err, errlen, "manifest: bad magic or too short (%zu bytes)", len);
		return -EBADMSG;
	}
	fmt = mc_get16(buf + 4);
	if (fmt != MANIFEST_VERSION && fmt != MC_PKG_VERSION_IMAGE) {
		snprintf(err, errlen, "manifest: unsupported version %u", fmt);
		return -EBADMSG;
	}
	if (len > MC_MANIFEST_MAX) {
		snprintf(err, errlen, "manifest: %zu bytes, more than %u", len, MC_MANIFEST_MAX);
		return -EBADMSG;
	}
	if (get_str(buf, len, &off, m->name) < 0 || get_str(buf, len, &off, m->version) < 0) {
		snprintf(err, errlen, "manifest: bad name or version string");
		return -EBADMSG;
	}
	if (len - off < (fmt == MANIFEST_VERSION ? MANIFEST_FIXED : MANIFEST_FIXED2) - 10) {
		snprintf(err, errlen, "manifest: truncated");
		return -EBADMSG;
	}
	m->format = (uint8_t)fmt;
	m->ctime = mc_get64(buf + off); off += 8;
	m->compression = buf[off++];
	m->kind = buf[off++];
	m->chunk_size = mc_get32(buf + off); off += 4;
	m->payload_size = mc_get64(buf + off); off += 8;
	m->nchunks = mc_get32(buf + off); off += 4;
	memcpy(m->payload_digest, buf + off, MC_DIGEST_LEN); off += MC_DIGEST_LEN;
	if (fmt == MC_PKG_VERSION_IMAGE) {
		m->image_size = mc_get64(buf + off);
		off += 8;
	}
	want = mc_chunk_count(fmt == MANIFEST_VERSION ? m->payload_size : m->image_size, m->chunk_size);
	if (fmt == MC_PKG_VERSION_IMAGE)
		vext = vol_ext_len(buf, len, off, want);
	per = fmt == MANIFEST_VERSION ? MC_DIGEST_LEN : MC_IMAGE_PER_CHUNK;
	if (want <= MC_MANIFEST_MAX && want * per + vext <= len - off)
		eext = enc_ext_len(buf, len, off + want * per + vext, want);
	if (m->compression > MC_COMP_XZ)
		why = "unknown compression";
	else if (fmt == MANIFEST_VERSION && m->kind > MC_KIND_TAR)
		why = "unknown payload kind";
	else if (fmt == MC_PKG_VERSION_IMAGE && m->kind != MC_KIND_IMAGE)
		why = "format 2 holds only images";
	else if (fmt == MC_PKG_VERSION_IMAGE && m->compression != MC_COMP_ZSTD && m->compression != MC_COMP_NONE)
		why = "an image's chunks are zstd frames or raw";
	else if (m->chunk_size < MC_CHUNK_MIN || m->chunk_size > MC_CHUNK_MAX)
		why = "chunk size out of range";
	else if (want != m->nchunks)
		why = fmt == MANIFEST_VERSION ? "chunk count does not match payload and chunk sizes"
					      : "chunk count does not match image and chunk sizes";
	else if ((uint64_t)(len - off) != want * per + vext + eext) {
		/* A signed manifest: the same, then the signature trailer. */
		struct mc_sig_trailer t;
		char tw[128];

		if ((uint64_t)(len - off) != want * per + vext + eext + MC_SIG_TRAILER_LEN ||
		    !mc_sig_trailer_is(buf + len - MC_SIG_TRAILER_LEN)) {
			why = "length does not match chunk count";
		} else if (mc_sig_trailer_decode(buf + len - MC_SIG_TRAILER_LEN, &t, tw, sizeof tw) < 0) {
			snprintf(err, errlen, "manifest: %s", tw);
			return -EBADMSG;
		} else {
			m->is_signed = 1;
			m->digest_alg = t.alg;
			memcpy(m->salt, t.salt, sizeof m->salt);
			memcpy(m->signer, t.pub, sizeof m->signer);
		}
	}
	if (why) {
		snprintf(err, errlen, "manifest: %s", why);
		return -EBADMSG;
	}
	m->raw = malloc(len);
	if (m->raw == NULL) {
		snprintf(err, errlen, "manifest: %s", mc_strerror(-ENOMEM));
		return -ENOMEM;
	}
	memcpy(m->raw, buf, len);
	m->raw_len = (uint32_t)len;
	m->digests = m->raw + off;
	if (eext && (why = parse_enc(m->raw + off + want * per + vext, m)) != NULL) {
		snprintf(err, errlen, "manifest: %s", why);
		mc_manifest_free(m);
		return -EBADMSG;
	}
	if (fmt == MC_PKG_VERSION_IMAGE &&
	    ((why = parse_image(m->raw, off, m)) != NULL ||
	     (vext && (why = parse_vols(m->raw + off + want * MC_IMAGE_PER_CHUNK, m)) != NULL))) {
		snprintf(err, errlen, "manifest: %s", why);
		mc_manifest_free(m);
		return why == mc_strerror(-ENOMEM) ? -ENOMEM : -EBADMSG;
	}
	mc_digest(m->raw, len, m->id);
	return 0;
}

void mc_manifest_copy_head(struct mc_manifest *dst, const struct mc_manifest *src)
{
	memcpy(dst->name, src->name, sizeof dst->name);
	memcpy(dst->version, src->version, sizeof dst->version);
	dst->ctime = src->ctime;
	dst->compression = src->compression;
	dst->kind = src->kind;
	dst->chunk_size = src->chunk_size;
	dst->payload_size = src->payload_size;
	dst->nchunks = src->nchunks;
	dst->image_size = src->image_size;
	dst->format = src->format;
	memcpy(dst->payload_digest, src->payload_digest, MC_DIGEST_LEN);
	dst->is_signed = src->is_signed;
	dst->digest_alg = src->digest_alg;
	memcpy(dst->salt, src->salt, sizeof dst->salt);
	memcpy(dst->signer, src->signer, sizeof dst->signer);
}

void mc_manifest_free(struct mc_manifest *m)
{
	free(m->raw);
	free(m->chunk_offs);
	free(m->span_plain);
	free(m->enc_boxes);
	m->span_plain = m->enc_boxes = NULL;
	m->tags = m->recips = NULL;
	OPENSSL_cleanse(m->subkey, sizeof m->subkey);
	m->unlocked = 0;
	m->raw = NULL;
	m->chunk_offs = NULL;
	m->digests = m->stored_lens = m->chunk_flags = m->span_digests = NULL;
	m->vols = NULL;
	m->nvols = 0;
	m->raw_len = 0;
}

/*
 * Header, 64 bytes, big-endian:
 *   0 magic (8)  8 format version (u16)  10 flags (u16, 0)  12 reserved (u32, 0)
 *  16 manifest offset (u64, 64)  24 manifest length (u64)
 *  32 payload offset (u64)  40 payload length (u64)  48 package id (16)
 */
void mc_pkg_header_encode(const struct mc_manifest *m, uint8_t out[MC_PKG_HDR_SIZE])
{
	struct mc_pkg_layout l;

	mc_manifest_layout(m, &l);
	memset(out, 0, MC_PKG_HDR_SIZE);
	memcpy(out, MC_PKG_MAGIC, MC_PKG_MAGIC_LEN);
	mc_put16(out + 8, (uint16_t)l.format);
	mc_put64(out + 16, l.manifest_off);
	mc_put64(out + 24, l.manifest_len);
	mc_put64(out + 32, l.payload_off);
	mc_put64(out + 40, l.payload_len);
	memcpy(out + 48, m->id, MC_ID_LEN);
}

int mc_pkg_header_decode(const uint8_t in[MC_PKG_HDR_SIZE], uint64_t file_size,
			 struct mc_pkg_layout *l, uint8_t id[MC_ID_LEN], char *err, size_t errlen)
{
	const char *why = NULL;

	if (memcmp(in, MC_PKG_MAGIC, MC_PKG_MAGIC_LEN) != 0) {
		snprintf(err, errlen, "not an mcast package (bad magic)");
		return -EINVAL;
	}
	if (mc_get16(in + 8) != MC_PKG_VERSION && mc_get16(in + 8) != MC_PKG_VERSION_IMAGE) {
		snprintf(err, errlen, "unsupported package format version %u", mc_get16(in + 8));
		return -EINVAL;
	}
	l->format = mc_get16(in + 8);
	l->manifest_off = mc_get64(in + 16);
	l->manifest_len = mc_get64(in + 24);
	l->payload_off = mc_get64(in + 32);
	l->payload_len = mc_get64(in + 40);
	if (mc_get16(in + 10) != 0 || mc_get32(in + 12) != 0)
		why = "header: reserved fields not zero";
	else if (l->manifest_off != MC_PKG_HDR_SIZE)
		why = "header: manifest offset is not 64";
	else if (l->manifest_len < MANIFEST_FIXED || l->manifest_len > MC_MANIFEST_MAX)
		why = "header: manifest length out of range";
	else if (l->payload_off != round_up(l->manifest_off + l->manifest_len, MC_PKG_ALIGN))
		why = "header: payload offset does not follow the manifest";
	else if (l->payload_len > UINT64_MAX - l->payload_off)
		why = "header: payload length out of range";
	if (why == NULL) {
		l->file_size = l->payload_off + l->payload_len;
		if (l->file_size > file_size)
			why = "truncated: header points past the end of the file";
	}
	if (why) {
		snprintf(err, errlen, "%s", why);
		return -EBADMSG;
	}
	memcpy(id, in + 48, MC_ID_LEN);
	return 0;
}

int mc_pwrite_all(int fd, const void *buf, size_t n, uint64_t off)
{
	const uint8_t *p = buf;

	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

int mc_pkg_write_head(int fd, const struct mc_manifest *m)
{
	struct mc_pkg_layout l;
	uint8_t *buf;
	int rc;

	mc_manifest_layout(m, &l);
	buf = calloc(1, l.payload_off);
	if (buf == NULL)
		return -ENOMEM;
	mc_pkg_header_encode(m, buf);
	memcpy(buf + l.manifest_off, m->raw, m->raw_len);
	rc = mc_pwrite_all(fd, buf, l.payload_off, 0);
	free(buf);
	return rc;
}

/* pread of n bytes at off, again after a short read or EINTR: the bytes read (fewer at the end of the file), or -errno. */
static ssize_t pread_all(int fd, void *buf, size_t n, uint64_t off)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = pread(fd, (uint8_t *)buf + got, n - got, (off_t)(off + got));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

int mc_pkg_open_flags(const char *path, unsigned flags, struct mc_pkg *p, char *err, size_t errlen)
{
	uint8_t hdr[MC_PKG_HDR_SIZE], id[MC_ID_LEN];
	char why[200];
	struct stat sb;
	uint8_t *buf = NULL;
	ssize_t r;
	int e;

	memset(p, 0, sizeof *p);
	p->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (p->fd < 0 || fstat(p->fd, &sb) < 0) {
		e = errno;
		snprintf(err, errlen, "%s: %s", path, mc_strerror(e));
		goto fail;
	}
	if (S_ISDIR(sb.st_mode)) {
		e = EISDIR;
		snprintf(err, errlen, "%s: %s", path, mc_strerror(e));
		goto fail;
	}
	r = pread_all(p->fd, hdr, sizeof hdr, 0);
	if (r < 0) {
		e = (int)-r;
		snprintf(err, errlen, "%s: %s", path, mc_strerror(e));
		goto fail;
	}
	if (r < (ssize_t)sizeof hdr) {
		/* A short file that starts like a package is a truncated one, anything else is not ours. */
		int ours = r > 0 && memcmp(hdr, MC_PKG_MAGIC, (size_t)r < MC_PKG_MAGIC_LEN ? (size_t)r : MC_PKG_MAGIC_LEN) == 0;
		e = ours ? EBADMSG : EINVAL;
		snprintf(err, errlen, "%s: %s", path, ours ? "truncated: shorter than the package header"
							   : "not an mcast package (too short)");
		goto fail;
	}
	if ((e = -mc_pkg_header_decode(hdr, (flags & MC_PKG_OPEN_PARTIAL) ? UINT64_MAX : (uint64_t)sb.st_size,
				       &p->l, id, why, sizeof why)) > 0) {
		snprintf(err, errlen, "%s: %s", path, why);
		goto fail;
	}
	if (!(flags & MC_PKG_OPEN_PARTIAL) && p->l.file_size != (uint64_t)sb.st_size) {
		e = EBADMSG;
		snprintf(err, errlen, "%s: %llu bytes, the header says %llu", path,
			 (unsigned long long)sb.st_size, (unsigned long long)p->l.file_size);
		goto fail;
	}
	/* Only now is the manifest length known to fit in the file: allocate it. */
	if (p->l.manifest_off + p->l.manifest_len > (uint64_t)sb.st_size) {
		e = EBADMSG;
		snprintf(err, errlen, "%s: truncated inside the manifest", path);
		goto fail;
	}
	buf = malloc(p->l.manifest_len);
	if (buf == NULL) {
		e = ENOMEM;
		snprintf(err, errlen, "%s: %s", path, mc_strerror(e));
		goto fail;
	}
	r = pread_all(p->fd, buf, p->l.manifest_len, p->l.manifest_off);
	if (r != (ssize_t)p->l.manifest_len) {
		e = r < 0 ? (int)-r : EBADMSG;
		snprintf(err, errlen, "%s: %s", path, r < 0 ? mc_strerror(e) : "truncated inside the manifest");
		goto fail;
	}
	if ((e = -mc_manifest_parse(buf, p->l.manifest_len, &p->m, why, sizeof why)) > 0) {
		snprintf(err, errlen, "%s: %s", path, why);
		goto fail;
	}
	if (memcmp(p->m.id, id, MC_ID_LEN) != 0) {
		e = EBADMSG;
		snprintf(err, errlen, "%s: manifest: digest does not match the package id in the header", path);
		goto fail;
	}
	if (p->m.format != p->l.format) {
		e = EBADMSG;
		snprintf(err, errlen, "%s: header says format %u, the manifest %u", path, p->l.format, p->m.format);
		goto fail;
	}
	if (p->m.payload_size != p->l.payload_len) {
		e = EBADMSG;
		snprintf(err, errlen, "%s: manifest and header disagree on the payload size", path);
		goto fail;
	}
	p->path = strdup(path);
	if (p->path == NULL) {
		e = ENOMEM;
		snprintf(err, errlen, "%s: %s", path, mc_strerror(e));
		goto fail;
	}
	p->file_size = (uint64_t)sb.st_size;
	free(buf);
	return 0;
fail:
	free(buf);
	mc_pkg_close(p);
	return -e;
}

int mc_pkg_open(const char *path, struct mc_pkg *p, char *err, size_t errlen)
{
	return mc_pkg_open_flags(path, 0, p, err, errlen);
}

void mc_pkg_close(struct mc_pkg *p)
{
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	free(p->path);
	p->path = NULL;
	mc_manifest_free(&p->m);
}

void *mc_pkg_buf(size_t n)
{
	return aligned_alloc(MC_PKG_ALIGN, (n + MC_PKG_ALIGN - 1) / MC_PKG_ALIGN * MC_PKG_ALIGN);
}

int mc_pkg_check_chunk(const struct mc_pkg *p, uint32_t i, uint8_t *buf)
{
	uint32_t len = mc_manifest_chunk_len(&p->m, i);
	uint8_t d[MC_DIGEST_LEN];
	ssize_t r;

	if (i >= p->m.nchunks)
		return 0;
	r = pread_all(p->fd, buf, len, p->l.payload_off + mc_manifest_chunk_off(&p->m, i));
	if (r < 0)
		return (int)r;
	if ((uint32_t)r != len)
		return 0;
	mc_chunk_digest(&p->m, buf, len, d);
	return memcmp(d, p->m.digests + (size_t)i * MC_DIGEST_LEN, MC_DIGEST_LEN) == 0;
}

/* ---- encrypted packages (mcast-package(5), Encrypted packages) ---- */

/* Domain strings (each with its NUL) of the associated data and the derived keys. */
static const char AAD_CHUNK[] = "mcast chunk v1";
static const char AAD_SPANS[] = "mcast span digests v1";
static const char AAD_BOX[] = "mcast content key v1";
static const char INFO_KEY[] = "mcast package key v1";
static const char INFO_CHECK[] = "mcast key check v1";

/* Nonce: a domain (0 chunks, 1 the span digest table) and the chunk index, both big-endian. */
static void nonce_of(uint32_t domain, uint64_t i, uint8_t n[MC_AEAD_NONCE_LEN])
{
	mc_put32(n, domain);
	mc_put64(n + 4, i);
}

/* Associated data: a domain string, the package's salt and (chunks) the chunk index. Returns its length. */
static size_t aad_of(const char *dom, size_t dl, const struct mc_manifest *m, uint64_t i, uint8_t *out)
{
	memcpy(out, dom, dl);
	memcpy(out + dl, m->enc_salt, MC_ENC_SALT_LEN);
	mc_put64(out + dl + MC_ENC_SALT_LEN, i);
	return dl + MC_ENC_SALT_LEN + 8;
}

/* The package key and the key check value of content key key for m's salt and algorithm. */
static int derive_keys(const uint8_t key[MC_AEAD_KEY_LEN], const struct mc_manifest *m, uint8_t subkey[32],
		       uint8_t check[MC_ENC_CHECK_LEN])
{
	uint8_t info[sizeof INFO_KEY + 1];

	memcpy(info, INFO_KEY, sizeof INFO_KEY);
	info[sizeof INFO_KEY] = m->aead_alg;
	if (mc_hkdf_sha256(key, MC_AEAD_KEY_LEN, m->enc_salt, MC_ENC_SALT_LEN, info, sizeof info, subkey, 32) < 0 ||
	    mc_hkdf_sha256(key, MC_AEAD_KEY_LEN, m->enc_salt, MC_ENC_SALT_LEN, INFO_CHECK, sizeof INFO_CHECK, check,
			   MC_ENC_CHECK_LEN) < 0)
		return -ENOMEM; /* HKDF fails only when OpenSSL cannot allocate */
	return 0;
}

struct mc_aead *mc_manifest_aead(const struct mc_manifest *m)
{
	return m->is_encrypted && m->unlocked ? mc_aead_new(m->aead_alg, m->subkey) : NULL;
}

int mc_chunk_seal(const struct mc_manifest *m, struct mc_aead *a, uint32_t i, uint8_t *p, size_t n, uint8_t tag[16])
{
	uint8_t nonce[MC_AEAD_NONCE_LEN], aad[sizeof AAD_CHUNK + MC_ENC_SALT_LEN + 8];
	size_t al = aad_of(AAD_CHUNK, sizeof AAD_CHUNK, m, i, aad);

	nonce_of(0, i, nonce);
	return mc_aead_seal(a, nonce, aad, al, p, p, n, tag);
}

int mc_chunk_open(const struct mc_manifest *m, struct mc_aead *a, uint32_t i, const uint8_t *in, uint8_t *out,
		  size_t n)
{
	uint8_t nonce[MC_AEAD_NONCE_LEN], aad[sizeof AAD_CHUNK + MC_ENC_SALT_LEN + 8];
	size_t al = aad_of(AAD_CHUNK, sizeof AAD_CHUNK, m, i, aad);

	if (a == NULL || m->tags == NULL || i >= m->nchunks)
		return -EBADMSG; /* no key, no tags, no such chunk: nothing opens */
	nonce_of(0, i, nonce);
	return mc_aead_open(a, nonce, aad, al, in, out, n, m->tags + (size_t)i * MC_AEAD_TAG_LEN);
}

/* Encrypts the n span digests at p in place (format 2), their tag into m->span_tag. */
static int seal_spans(struct mc_manifest *m, uint8_t *p, uint64_t n)
{
	uint8_t nonce[MC_AEAD_NONCE_LEN], aad[sizeof AAD_SPANS + MC_ENC_SALT_LEN + 8];
	size_t al = aad_of(AAD_SPANS, sizeof AAD_SPANS, m, 0, aad);
	struct mc_aead *a = mc_manifest_aead(m);
	int rc;

	nonce_of(1, 0, nonce);
	rc = a ? mc_aead_seal(a, nonce, aad, al, p, p, n * MC_DIGEST_LEN, m->span_tag) : -ENOMEM;
	mc_aead_free(a);
	return rc;
}

/* Takes subkey as m's package key and, for format 2, decrypts and checks the span digests. */
static int unlock_with(struct mc_manifest *m, const uint8_t subkey[32], char *err, size_t errlen)
{
	uint8_t nonce[MC_AEAD_NONCE_LEN], aad[sizeof AAD_SPANS + MC_ENC_SALT_LEN + 8];
	uint8_t zfull[MC_DIGEST_LEN], zlast[MC_DIGEST_LEN];
	size_t al = aad_of(AAD_SPANS, sizeof AAD_SPANS, m, 0, aad), n = m->nchunks;
	struct mc_aead *a;
	int rc;

	memcpy(m->subkey, subkey, 32);
	m->unlocked = 1;
	if (m->format != MC_PKG_VERSION_IMAGE || m->span_digests == NULL || m->span_plain)
		return 0;
	if ((m->span_plain = malloc(n ? n * MC_DIGEST_LEN : 1)) == NULL || (a = mc_manifest_aead(m)) == NULL) {
		snprintf(err, errlen, "manifest: %s", mc_strerror(-ENOMEM));
		return -ENOMEM;
	}
	nonce_of(1, 0, nonce);
	rc = mc_aead_open(a, nonce, aad, al, m->span_digests, m->span_plain, n * MC_DIGEST_LEN, m->span_tag);
	mc_aead_free(a);
	if (rc < 0) {
		snprintf(err, errlen, "manifest: its span digests do not decrypt: tampered or damaged");
		rc = -EBADMSG;
		goto fail;
	}
	/* The check parse_image leaves to here: a hole's span digest is that of zeros. */
	if (zero_digest(m->chunk_size, zfull) < 0 || zero_digest(mc_manifest_span_len(m, (uint32_t)(n ? n - 1 : 0)), zlast) < 0) {
		snprintf(err, errlen, "manifest: %s", mc_strerror(-ENOMEM));
		rc = -ENOMEM;
		goto fail;
	}
	for (uint32_t i = 0; i < n; i++)
		if ((m->chunk_flags[i] & MC_CHUNK_HOLE) &&
		    memcmp(m->span_plain + (size_t)i * MC_DIGEST_LEN,
			   mc_manifest_span_len(m, i) == m->chunk_size ? zfull : zlast, MC_DIGEST_LEN) != 0) {
			snprintf(err, errlen, "manifest: a hole's span digest is not that of zeros");
			rc = -EBADMSG;
			goto fail;
		}
	return 0;
fail:
	free(m->span_plain);
	m->span_plain = NULL;
	OPENSSL_cleanse(m->subkey, sizeof m->subkey);
	m->unlocked = 0;
	return rc;
}

int mc_manifest_seal_to(struct mc_manifest *m, const uint8_t *key, const struct mc_key *to,
			unsigned nto, char *err, size_t errlen)
{
	uint8_t aad[sizeof AAD_BOX + MC_ENC_SALT_LEN + 8];
	size_t al = aad_of(AAD_BOX, sizeof AAD_BOX, m, 0, aad);
	int rc;

	if (nto > MC_ENC_RECIPS_MAX) {
		snprintf(err, errlen, "--encrypt-to: %u recipients, at most %d", nto, MC_ENC_RECIPS_MAX);
		return -EINVAL;
	}
	free(m->enc_boxes);
	m->recips = NULL;
	m->nrecips = 0;
	if ((m->enc_boxes = malloc(nto ? (size_t)nto * MC_ENC_REC : 1)) == NULL) {
		snprintf(err, errlen, "%s", mc_strerror(-ENOMEM));
		return -ENOMEM;
	}
	for (unsigned i = 0; i < nto; i++) {
		uint8_t *r = m->enc_boxes + (size_t)i * MC_ENC_REC;
		char kid[2 * MC_KEYID_LEN + 1];
		if (to[i].type != MC_KEY_X25519) {
			snprintf(err, errlen, "key %s: not an x25519 key", mc_keyid_hex(to[i].id, kid));
			return -EINVAL;
		}
		memcpy(r, to[i].id, MC_KEYID_LEN);
		if ((rc = mc_box_seal(to[i].pub, aad, al, key, r + MC_KEYID_LEN)) < 0) {
			snprintf(err, errlen, "key %s: cannot seal the content key for it", mc_keyid_hex(to[i].id, kid));
			return rc;
		}
	}
	m->nrecips = (uint16_t)nto;
	m->recips = m->enc_boxes;
	return 0;
}

int mc_manifest_want_encrypt(struct mc_manifest *m, const uint8_t *key, const struct mc_key *to, unsigned nto,
			     char *err, size_t errlen)
{
	uint8_t k[MC_AEAD_KEY_LEN];
	int rc;

	if (nto > MC_ENC_RECIPS_MAX) {
		snprintf(err, errlen, "--encrypt-to: %u recipients, at most %d", nto, MC_ENC_RECIPS_MAX);
		return -EINVAL;
	}
	m->is_encrypted = 1;
	m->aead_alg = MC_AEAD_AES256GCM;
	m->nrecips = (uint16_t)nto;
	/* Random even for a reproducible package: the same key and another content must never share nonces. */
	if ((rc = mc_random(m->enc_salt, MC_ENC_SALT_LEN)) < 0 || (key == NULL && (rc = mc_random(k, sizeof k)) < 0)) {
		snprintf(err, errlen, "no random bytes for the encryption");
		goto out;
	}
	if (key)
		memcpy(k, key, sizeof k);
	if ((rc = derive_keys(k, m, m->subkey, m->enc_check)) < 0) {
		snprintf(err, errlen, "cannot derive the package key");
		goto out;
	}
	m->unlocked = 1;
	rc = mc_manifest_seal_to(m, k, to, nto, err, errlen);
out:
	OPENSSL_cleanse(k, sizeof k);
	return rc;
}

int mc_manifest_unlock(struct mc_manifest *m, const struct mc_content_key *ck, char *err, size_t errlen)
{
	return mc_manifest_unlock_key(m, ck, NULL, err, errlen);
}

int mc_manifest_unlock_key(struct mc_manifest *m, const struct mc_content_key *ck, uint8_t *content_key, char *err,
			   size_t errlen)
{
	uint8_t k[MC_AEAD_KEY_LEN], sub[32], check[MC_ENC_CHECK_LEN], aad[sizeof AAD_BOX + MC_ENC_SALT_LEN + 8];
	char kid[2 * MC_KEYID_LEN + 1];
	int rc = -EACCES, found = 0;

	if (!m->is_encrypted)
		return 0;
	mc_keyid_hex(ck->id, kid);
	if (ck->is_box) {
		size_t al = aad_of(AAD_BOX, sizeof AAD_BOX, m, 0, aad);
		for (unsigned i = 0; i < m->nrecips && !found; i++) {
			const uint8_t *r = m->recips + (size_t)i * MC_ENC_REC;
			found = memcmp(r, ck->id, MC_KEYID_LEN) == 0 && mc_box_open(&ck->box, aad, al, r + MC_KEYID_LEN, k) == 0;
		}
		if (!found) {
			snprintf(err, errlen, "encrypted, and not to key %s (%u recipient%s)", kid, m->nrecips,
				 m->nrecips == 1 ? "" : "s");
			goto out;
		}
	} else {
		memcpy(k, ck->key, sizeof k);
	}
	if (derive_keys(k, m, sub, check) < 0) {
		snprintf(err, errlen, "cannot derive the package key");
		rc = -ENOMEM; /* HKDF fails only when OpenSSL cannot allocate */
		goto out;
	}
	if (CRYPTO_memcmp(check, m->enc_check, sizeof check) != 0) {
		snprintf(err, errlen, "encrypted with another key than %s", kid);
		goto out;
	}
	rc = unlock_with(m, sub, err, errlen);
	if (rc == 0 && content_key)
		memcpy(content_key, k, sizeof k);
out:
	OPENSSL_cleanse(k, sizeof k);
	OPENSSL_cleanse(sub, sizeof sub);
	return rc;
}
