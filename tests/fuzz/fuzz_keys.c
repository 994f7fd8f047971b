/*
 * libFuzzer target: the key file parsers (mc_key_parse_public_as,
 * mc_key_parse_secret_as, for ed25519 and x25519 keys: bit 2 of the first
 * byte picks the type) and the manifest signature check (mc_sig_check, with
 * its trailer decoder) on arbitrary bytes. The first byte picks which.
 * A key that parses must format back to exactly the bytes it came from (one
 * spelling per key: the formats are canonical), and parse again to the same
 * key. A signed manifest checks against a trust set of one fixed key (the
 * RFC 8032 test 1 key, so a seed signed with it reaches the verifier).
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mc_key k, again;
	char err[256], out[1024], *in;
	int secret, n;

	if (size < 1)
		return 0;
	if (data[0] & 2) {
		static struct mc_key fixed;
		static const uint8_t seed[32] = {
			0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
			0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
		};
		static const uint8_t pub[32] = {
			0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a,
			0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a,
		};
		struct mc_trust t = {&fixed, 1};
		struct mc_sig_trailer tr;
		uint8_t *raw;
		int r;

		memcpy(fixed.seed, seed, 32);
		memcpy(fixed.pub, pub, 32);
		fixed.has_secret = 1;
		size--;
		if ((raw = malloc(size ? size : 1)) == NULL)
			return 0;
		memcpy(raw, data + 1, size);
		r = mc_sig_check(raw, size, data[0] & 1, &t, err, sizeof err);
		assert(r == MC_SIG_TRUSTED || r == MC_SIG_UNSIGNED || r == MC_SIG_UNTRUSTED || r == MC_SIG_BAD ||
		       r == -ENOMEM);
		if (r == MC_SIG_TRUSTED) {
			/* Trusted: the trailer decodes, names the fixed key, and signing again gives the same bytes. */
			assert(mc_sig_trailer_decode(raw + size - MC_SIG_TRAILER_LEN, &tr, err, sizeof err) == 0);
			assert(memcmp(tr.pub, pub, 32) == 0);
			assert(mc_sig_sign(raw, size, &fixed, err, sizeof err) == 0);
			assert(memcmp(raw, data + 1, size) == 0);
		} else {
			assert(strlen(err) > 0);
		}
		free(raw);
		return 0;
	}
	secret = data[0] & 1;
	/* Bit 2: the key type wanted (x25519 box keys, else ed25519 signing keys). */
	unsigned type = data[0] & 4 ? MC_KEY_X25519 : MC_KEY_ED25519;
	size--;
	/* A copy of exactly size bytes, so ASan sees any read past the end. */
	if ((in = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(in, data + 1, size);
	if ((secret ? mc_key_parse_secret_as(type, in, size, &k, err, sizeof err)
		    : mc_key_parse_public_as(type, in, size, &k, err, sizeof err)) == 0) {
		assert(k.has_secret == secret && k.type == type);
		assert(strlen(k.comment) <= MC_KEY_COMMENT_MAX);
		n = secret ? mc_key_format_secret(&k, out, sizeof out) : mc_key_format_public(&k, out, sizeof out);
		assert(n > 0);
		/* The input may lack the final newline; otherwise it is byte for byte what format writes. */
		assert((size_t)n == size + (size == 0 || in[size - 1] != '\n'));
		assert(memcmp(out, in, size) == 0);
		assert((secret ? mc_key_parse_secret_as(type, out, (size_t)n, &again, err, sizeof err)
			       : mc_key_parse_public_as(type, out, (size_t)n, &again, err, sizeof err)) == 0);
		assert(memcmp(&k, &again, sizeof k) == 0);
	} else {
		assert(strlen(err) > 0);
	}
	free(in);
	return 0;
}
