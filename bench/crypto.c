/*
 * bench/crypto: what trust costs on this CPU. Chunk digests on 1 MiB buffers
 * (XXH3-128, the SHA-256/128 of signed packages, OpenSSL's BLAKE2b-512 for
 * comparison) and session MACs on 1484-byte datagrams (lib/auth's
 * AES-256-GCM seal and open, and other MACs OpenSSL offers). Run:
 * make bench/crypto && build/bench/crypto [SECONDS per case, default 1].
 * Also the two AEADs OpenSSL offers for encrypted packages, on 1 MiB chunks.
 * libsodium's BLAKE2b is not linked; it measured 636 MB/s against 1742 MB/s
 * for OpenSSL's SHA-256 when the choice was made (mcast-package(5)).
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "clock.h"
#include "crypto.h"
#include "pkg.h"

static void report(const char *what, double bytes, double secs, double n)
{
	printf("%-44s %8.0f MB/s  %8.0f ns each\n", what, bytes / secs / 1e6, secs / n * 1e9);
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 1.0, t0, t;
	size_t big = 1u << 20, dg = 1484;
	uint8_t *buf = malloc(big), out[64], salt[MC_HASH_SALT_LEN] = {1}, key[MC_SESSION_KEY_LEN] = {2};
	uint8_t pkt[1600], trailer[MC_AUTH_LEN];
	struct mc_auth *tx = mc_auth_new(key), *rx = mc_auth_new(key);
	unsigned long n;

	if (buf == NULL || tx == NULL || rx == NULL || secs <= 0)
		return 1;
	mc_random(buf, big);
	mc_random(pkt, sizeof pkt);
	printf("chunk digests, 1 MiB buffers:\n");
	for (n = 0, t0 = mc_now_s(); (t = mc_now_s() - t0) < secs; n++)
		mc_digest(buf, big, out);
	report("  xxh3-128 (unsigned packages)", (double)n * big, t, (double)n);
	for (n = 0, t0 = mc_now_s(); (t = mc_now_s() - t0) < secs; n++)
		mc_hash_once(MC_HASH_SHA256, salt, buf, big, out);
	report("  sha256-128 (signed, OpenSSL)", (double)n * big, t, (double)n);
	for (n = 0, t0 = mc_now_s(); (t = mc_now_s() - t0) < secs; n++) {
		unsigned int l;
		EVP_Digest(buf, big, out, &l, EVP_blake2b512(), NULL);
	}
	report("  blake2b-512 (OpenSSL)", (double)n * big, t, (double)n);

	/* Encrypted packages: each chunk sealed alone (mcast-package(5)); the faster AEAD is the one used. */
	printf("chunk encryption, 1 MiB buffers (in place, tag apart):\n");
	for (unsigned alg = MC_AEAD_AES256GCM; alg <= MC_AEAD_CHACHA20POLY1305; alg++) {
		struct mc_aead *a = mc_aead_new(alg, key);
		uint8_t nonce[MC_AEAD_NONCE_LEN] = {0}, tag[MC_AEAD_TAG_LEN];
		char name[64];
		if (a == NULL)
			return 1;
		for (n = 0, t0 = mc_now_s(); (t = mc_now_s() - t0) < secs; n++) {
			memcpy(nonce + 4, &n, sizeof n);
			mc_aead_seal(a, nonce, salt, sizeof salt, buf, buf, big, tag);
		}
		snprintf(name, sizeof name, "  %s seal", mc_aead_name(alg));
		report(name, (double)n * big, t, (double)n);
		mc_aead_free(a);
	}
	printf("session MACs, %zu-byte datagrams:\n", dg);
	struct iovec iov = {pkt, dg};
	for (n = 0, t0 = mc_now_s(); (t = mc_now_s() - t0) < secs; n++)
		mc_auth_seal(tx, &iov, 1, trailer);
	report("  mc_auth_seal (AES-256-GCM)", (double)n * dg, t, (double)n);
	/* Opening: datagrams sealed in advance, each opened once (the window takes each sequence once). */
	enum { BATCH = 4096 };
	uint8_t(*sealed)[1600] = malloc((size_t)BATCH * sizeof *sealed);
	if (sealed == NULL)
		return 1;
	double total = 0;
	unsigned long opened = 0;
	while (total < secs) {
		for (unsigned i = 0; i < BATCH; i++) {
			memcpy(sealed[i], pkt, dg);
			struct iovec v = {sealed[i], dg};
			mc_auth_seal(tx, &v, 1, sealed[i] + dg);
		}
		t0 = mc_now_s();
		for (unsigned i = 0; i < BATCH; i++)
			opened += mc_auth_open(rx, sealed[i], dg + MC_AUTH_LEN) >= 0;
		total += mc_now_s() - t0;
		n += BATCH;
	}
	report("  mc_auth_open (AES-256-GCM)", (double)opened * dg, total, (double)opened);
	static const char *const ciphers[] = {"AES-128-GCM", "CHACHA20-POLY1305"};
	for (unsigned c = 0; c < 2; c++) {
		EVP_CIPHER *ci = EVP_CIPHER_fetch(NULL, ciphers[c], NULL);
		EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
		uint8_t iv[12] = {0};
		int l;
		if (ci == NULL || x == NULL || EVP_EncryptInit_ex(x, ci, NULL, key, NULL) != 1)
			continue;
		for (n = 0, t0 = mc_now_s(); (t = mc_now_s() - t0) < secs; n++) {
			memcpy(iv, &n, sizeof n < sizeof iv ? sizeof n : sizeof iv);
			EVP_EncryptInit_ex(x, NULL, NULL, NULL, iv);
			EVP_EncryptUpdate(x, NULL, &l, pkt, (int)dg);
			EVP_EncryptFinal_ex(x, out, &l);
			EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, 16, out);
		}
		char name[64];
		snprintf(name, sizeof name, "  %s (additional data only)", ciphers[c]);
		report(name, (double)n * dg, t, (double)n);
		EVP_CIPHER_CTX_free(x);
		EVP_CIPHER_free(ci);
	}
	for (n = 0, t0 = mc_now_s(); (t = mc_now_s() - t0) < secs; n++) {
		unsigned int l;
		uint8_t h[64];
		EVP_Digest(pkt, dg, h, &l, EVP_sha256(), NULL);
	}
	report("  sha256 of the datagram (HMAC floor)", (double)n * dg, t, (double)n);
	mc_auth_free(tx);
	mc_auth_free(rx);
	free(sealed);
	free(buf);
	return 0;
}
