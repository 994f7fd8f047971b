/*
 * libFuzzer target: the key file parsers (mc_key_parse_public,
 * mc_key_parse_secret) on arbitrary bytes. The first byte picks the parser.
 * A key that parses must format back to exactly the bytes it came from (one
 * spelling per key: the formats are canonical), and parse again to the same key.
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
	secret = data[0] & 1;
	size--;
	/* A copy of exactly size bytes, so ASan sees any read past the end. */
	if ((in = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(in, data + 1, size);
	if ((secret ? mc_key_parse_secret(in, size, &k, err, sizeof err)
		    : mc_key_parse_public(in, size, &k, err, sizeof err)) == 0) {
		assert(k.has_secret == secret);
		assert(strlen(k.comment) <= MC_KEY_COMMENT_MAX);
		n = secret ? mc_key_format_secret(&k, out, sizeof out) : mc_key_format_public(&k, out, sizeof out);
		assert(n > 0);
		/* The input may lack the final newline; otherwise it is byte for byte what format writes. */
		assert((size_t)n == size + (size == 0 || in[size - 1] != '\n'));
		assert(memcmp(out, in, size) == 0);
		assert((secret ? mc_key_parse_secret(out, (size_t)n, &again, err, sizeof err)
			       : mc_key_parse_public(out, (size_t)n, &again, err, sizeof err)) == 0);
		assert(memcmp(&k, &again, sizeof k) == 0);
	} else {
		assert(strlen(err) > 0);
	}
	free(in);
	return 0;
}
