/* Unit tests of lib/auth.c: the trailer's format (checked with OpenSSL directly), forgeries, replays, the window. */
#include "auth.h"
#include "be.h"
#include "tap.h"

#include <openssl/evp.h>
#include <string.h>

static uint8_t key[32], other[32];

/* Seals data (in two pieces, as header and symbol) into out; returns the datagram's length. */
static size_t seal(struct mc_auth *a, const uint8_t *data, size_t n, uint8_t *out)
{
	struct iovec iov[2] = {{(void *)data, n / 3}, {(void *)(data + n / 3), n - n / 3}};

	memcpy(out, data, n);
	return mc_auth_seal(a, iov, 2, out + n) == 0 ? n + MC_AUTH_LEN : 0;
}

int main(void)
{
	uint8_t data[1500], dg[1600], dg2[1600], tag[16];
	struct mc_auth *tx, *rx, *rx2, *wrong;
	struct mc_auth_stats st;
	size_t n;
	int len;

	for (unsigned i = 0; i < sizeof key; i++) {
		key[i] = (uint8_t)(i * 7 + 1);
		other[i] = (uint8_t)(i * 7 + 2);
	}
	for (unsigned i = 0; i < sizeof data; i++)
		data[i] = (uint8_t)(i * 31);
	tx = mc_auth_new(key);
	rx = mc_auth_new(key);
	rx2 = mc_auth_new(key);
	wrong = mc_auth_new(other);
	ok(tx && rx && rx2 && wrong, "contexts made");

	n = seal(tx, data, 1456, dg);
	ok(n == 1456 + MC_AUTH_LEN, "a datagram grows by %d bytes", MC_AUTH_LEN);
	ok(mc_get32(dg + 1456 + 8) == 0, "the first sequence number is 0");
	/* The format of auth.h, recomputed with OpenSSL alone: AES-256-GCM, IV = origin || sequence, AAD = the datagram. */
	{
		EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
		int good = c && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, dg + 1456) == 1 &&
			   EVP_EncryptUpdate(c, NULL, &len, data, 1456) == 1 && EVP_EncryptFinal_ex(c, tag, &len) == 1 &&
			   EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, tag) == 1;
		EVP_CIPHER_CTX_free(c);
		ok(good && memcmp(tag, dg + 1456 + 12, 16) == 0, "the tag is AES-256-GCM's over the datagram with IV origin||sequence");
	}
	ok(mc_auth_open(rx, dg, n) == 1456, "an authentic datagram opens to its length");
	ok(mc_auth_open(rx, dg, n) == -1, "the same datagram again is a replay");
	ok(mc_auth_open(rx2, dg, n) == 1456, "another receiver takes it once too");
	ok(mc_auth_open(wrong, dg, n) == -1, "another key refuses it");

	n = seal(tx, data, 1456, dg);
	for (size_t i = 0; i < n; i += 97) {
		memcpy(dg2, dg, n);
		dg2[i] ^= 0x20;
		if (mc_auth_open(rx, dg2, n) != -1) {
			ok(0, "byte %zu changed and taken", i);
			break;
		}
		if (i + 97 >= n)
			ok(1, "every 97th byte changed (trailer included) is refused");
	}
	ok(mc_auth_open(rx, dg, n - 1) == -1, "one byte short is refused");
	ok(mc_auth_open(rx, dg, 10) == -1, "a runt is refused");
	ok(mc_auth_open(rx, dg, n) == 1456, "and the original, untouched by those, is taken");

	/* Out of order within the window: taken once each; far behind: refused. */
	uint8_t many[80][1500];
	size_t ml[80];
	for (int i = 0; i < 80; i++)
		ml[i] = seal(tx, data, 100, many[i]);
	ok(mc_auth_open(rx, many[70], ml[70]) == 100, "a later one first");
	ok(mc_auth_open(rx, many[40], ml[40]) == 100 && mc_auth_open(rx, many[69], ml[69]) == 100,
	   "earlier ones within the window are taken");
	ok(mc_auth_open(rx, many[40], ml[40]) == -1, "once");
	ok(mc_auth_open(rx, many[3], ml[3]) == -1, "one more than %d behind is refused", MC_AUTH_WINDOW);
	ok(mc_auth_open(rx, many[79], ml[79]) == 100, "the window moves on");

	/* An empty datagram and a zero-length piece seal too. */
	{
		struct iovec iov[2] = {{data, 0}, {data, 5}};
		memcpy(dg, data, 5);
		ok(mc_auth_seal(tx, iov, 2, dg + 5) == 0 && mc_auth_open(rx, dg, 5 + MC_AUTH_LEN) == 5, "a zero-length piece");
	}
	st = mc_auth_get_stats(rx);
	ok(st.forged >= 17 && st.replayed == 3, "counted: %llu forged, %llu replayed, %llu ok",
	   (unsigned long long)st.forged, (unsigned long long)st.replayed, (unsigned long long)st.ok);
	/* Forgeries never open a window: a forged datagram claiming a far sequence moves nothing. */
	n = seal(tx, data, 200, dg);
	memcpy(dg2, dg, n);
	mc_put32(dg2 + 200 + 8, 1000000);
	ok(mc_auth_open(rx, dg2, n) == -1 && mc_auth_open(rx, dg, n) == 200, "a forged sequence number moves no window");
	mc_auth_free(tx);
	mc_auth_free(rx);
	mc_auth_free(rx2);
	mc_auth_free(wrong);
	return tap_done();
}
