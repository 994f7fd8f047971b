/*
 * libFuzzer target: mc_manifest_parse and mc_pkg_header_decode on arbitrary
 * bytes. A manifest that parses must re-encode (mc_manifest_encode) to the
 * same bytes and id; a header that decodes must describe a consistent layout.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "pkg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mc_manifest m, e;
	struct mc_pkg_layout l;
	uint8_t id[MC_ID_LEN], hdr[MC_PKG_HDR_SIZE], *in;
	char err[256];

	if ((in = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(in, data, size);
	if (mc_manifest_parse(in, size, &m, err, sizeof err) == 0) {
		assert(m.raw_len == size && memcmp(m.raw, in, size) == 0);
		assert(strlen(m.name) <= MC_NAME_MAX && strlen(m.version) <= MC_NAME_MAX);
		(void)mc_comp_name(m.compression);
		(void)mc_kind_name(m.kind);
		(void)mc_pkg_raw_name(&m);
		uint64_t sum = 0, spans = 0, holes = 0, hb = 0;
		for (uint32_t i = 0; i < m.nchunks; i++) {
			uint32_t cl = mc_manifest_chunk_len(&m, i), sl = mc_manifest_span_len(&m, i);
			unsigned f = mc_manifest_chunk_flags(&m, i);
			assert(mc_manifest_chunk_off(&m, i) == sum);
			assert(cl <= m.chunk_size && sl > 0 && sl <= m.chunk_size && cl <= sl);
			assert(mc_manifest_span_off(&m, i) == spans);
			if (m.format == MC_PKG_VERSION_IMAGE) {
				assert(m.is_encrypted || mc_manifest_span_digest(&m, i) != NULL);
				assert((cl == 0) == ((f & MC_CHUNK_HOLE) != 0));
				assert(!(f & MC_CHUNK_RAW) || cl == sl);
				holes += (f & MC_CHUNK_HOLE) != 0;
				hb += (f & MC_CHUNK_HOLE) ? sl : 0;
			} else {
				assert(cl == sl && f == 0 && mc_manifest_span_digest(&m, i) == NULL);
			}
			if (cl)
				assert(mc_manifest_chunk_of(&m, sum) == i && mc_manifest_chunk_of(&m, sum + cl - 1) == i);
			sum += cl;
			spans += sl;
		}
		assert(sum == m.payload_size && mc_manifest_chunk_of(&m, sum) == m.nchunks);
		uint64_t hb2;
		assert(mc_manifest_holes(&m, &hb2) == holes && hb2 == hb);
		/* A signed manifest ends in its signature trailer, after the tables. */
		const uint8_t *end = m.raw + m.raw_len - (m.is_signed ? MC_SIG_TRAILER_LEN : 0);
		assert(!m.is_signed || (m.digest_alg == MC_HASH_SHA256 && mc_sig_trailer_is(end)));
		/* Before it, an encrypted manifest's section, and before that an image's volume records. */
		if (m.is_encrypted) {
			end -= MC_ENC_HDR + (size_t)m.nchunks * MC_AEAD_TAG_LEN + (size_t)m.nrecips * MC_ENC_REC;
			assert(memcmp(end, MC_ENC_MAGIC, 4) == 0 && m.tags == end + MC_ENC_HDR);
			assert(m.format != MC_PKG_VERSION_IMAGE || mc_manifest_span_digest(&m, 0) == NULL);
		}
		if (m.nvols)
			end -= MC_VOL_HDR + (size_t)m.nvols * MC_VOL_REC;
		if (m.format == MC_PKG_VERSION_IMAGE) {
			assert(spans == m.image_size && m.kind == MC_KIND_IMAGE);
			assert(m.nchunks == 0 || m.span_digests + (size_t)m.nchunks * MC_DIGEST_LEN == end);
		} else {
			assert(spans == m.payload_size);
			assert(m.nchunks == 0 || m.digests + (size_t)m.nchunks * MC_DIGEST_LEN == end);
		}
		/* Canonical: encoding what was parsed gives back the same bytes and id. */
		memset(&e, 0, sizeof e);
		mc_manifest_copy_head(&e, &m);
		int enc = -1;
		if (m.is_encrypted) {
			e.is_encrypted = 1;
			e.aead_alg = m.aead_alg;
			e.nrecips = m.nrecips;
			memcpy(e.enc_salt, m.enc_salt, sizeof e.enc_salt);
			memcpy(e.enc_check, m.enc_check, sizeof e.enc_check);
			memcpy(e.span_tag, m.span_tag, sizeof e.span_tag);
			e.tags = m.tags;
			e.enc_boxes = malloc(m.nrecips ? (size_t)m.nrecips * MC_ENC_REC : 1);
			assert(e.enc_boxes != NULL);
			memcpy(e.enc_boxes, m.recips, (size_t)m.nrecips * MC_ENC_REC);
		}
		if (m.nvols || (m.is_encrypted && m.format == MC_PKG_VERSION_IMAGE)) {
			/* Volume records, or span digests sealed under a key we do not have: not encoded again here. */
			mc_manifest_free(&e);
		} else if (m.format == MC_PKG_VERSION_IMAGE) {
			uint32_t *lens = malloc(((size_t)m.nchunks + 1) * sizeof *lens);
			assert(lens != NULL);
			for (uint32_t i = 0; i < m.nchunks; i++)
				lens[i] = mc_manifest_chunk_len(&m, i);
			enc = mc_manifest_encode_image(&e, lens, m.chunk_flags, m.digests, m.span_digests, err, sizeof err);
			assert(enc == 0);
			free(lens);
		} else {
			enc = mc_manifest_encode(&e, m.digests, err, sizeof err);
		}
		if (enc == 0 && m.is_signed) {
			/* Encoding leaves the signature for mc_manifest_sign: take the parsed one, as a signer would put it. */
			assert(e.raw_len == m.raw_len);
			memcpy(e.raw + e.raw_len - MC_SIG_LEN, m.raw + m.raw_len - MC_SIG_LEN, MC_SIG_LEN);
			mc_digest(e.raw, e.raw_len, e.id);
		}
		if (enc == 0) {
			assert(e.raw_len == m.raw_len && memcmp(e.raw, m.raw, m.raw_len) == 0);
			assert(memcmp(e.id, m.id, MC_ID_LEN) == 0);
			mc_manifest_layout(&m, &l);
			mc_pkg_header_encode(&m, hdr);
			struct mc_pkg_layout l2;
			assert(mc_pkg_header_decode(hdr, l.file_size, &l2, id, err, sizeof err) == 0);
			assert(l.format == l2.format && l.manifest_off == l2.manifest_off && l.manifest_len == l2.manifest_len &&
			       l.payload_off == l2.payload_off && l.payload_len == l2.payload_len &&
			       l.file_size == l2.file_size && memcmp(id, m.id, MC_ID_LEN) == 0);
			assert(l.format == m.format);
			mc_manifest_free(&e);
		}
		if (m.is_encrypted) {
			/* A key that is not the package's: refused with a reason, never a crash. */
			struct mc_content_key ck;
			memset(&ck, 0, sizeof ck);
			memset(ck.key, 0x11, sizeof ck.key);
			if (mc_manifest_unlock(&m, &ck, err, sizeof err) == 0)
				assert(m.unlocked && (m.format != MC_PKG_VERSION_IMAGE || m.nchunks == 0 ||
						      mc_manifest_span_digest(&m, 0) != NULL));
			else
				assert(err[0] != '\0' && !m.unlocked);
		}
		mc_manifest_free(&m);
	}
	if (size >= MC_PKG_HDR_SIZE) {
		/* The file size: the 8 bytes after the header when present, else as large as can be. */
		uint64_t fsize = UINT64_MAX;
		if (size >= MC_PKG_HDR_SIZE + 8) {
			fsize = 0;
			for (int i = 0; i < 8; i++)
				fsize = fsize << 8 | in[MC_PKG_HDR_SIZE + i];
		}
		memcpy(hdr, in, MC_PKG_HDR_SIZE);
		if (mc_pkg_header_decode(hdr, fsize, &l, id, err, sizeof err) == 0) {
			assert(l.manifest_off == MC_PKG_HDR_SIZE);
			assert(l.format == MC_PKG_VERSION || l.format == MC_PKG_VERSION_IMAGE);
			assert(l.payload_off >= l.manifest_off + l.manifest_len);
			assert(l.payload_off % MC_PKG_ALIGN == 0);
			assert(l.file_size == l.payload_off + l.payload_len && l.file_size >= l.payload_off);
			assert(l.file_size <= fsize);
			assert(memcmp(id, in + 48, MC_ID_LEN) == 0);
		} else {
			assert(err[0] != '\0');
		}
	}
	free(in);
	return 0;
}
