/* Session authentication: GMAC trailers, sequence numbers and replay windows (see auth.h). */
#include "auth.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "be.h"

/* The replay window of one origin: the newest sequence taken and which of the MC_AUTH_WINDOW before it were. */
struct origin {
	uint64_t id;
	uint32_t top;
	uint64_t seen;     /* bit i: top - i was taken */
	uint64_t last_use; /* for eviction */
	int used;
};

/*
 * Sealing (tx) and checking (rx) each have their context and lock: a
 * receiver's NACKs never wait for its data to be checked. Both contexts
 * encrypt (a GMAC is computed, then compared in constant time), keyed once:
 * a datagram only sets its IV, and the tag comes out through a prepared
 * parameter (the EVP_CTRL_AEAD_GET_TAG path builds one per call).
 */
struct mc_auth {
	pthread_mutex_t mu, rmu;
	EVP_CIPHER *aes;
	EVP_CIPHER_CTX *tx, *rx;
	uint8_t key[MC_SESSION_KEY_LEN];
	uint64_t my_origin;
	uint32_t my_seq;
	struct origin *o;
	unsigned no, hint;
	uint64_t clock;
	struct mc_auth_stats st;
};

static int new_origin(struct mc_auth *a)
{
	return mc_random(&a->my_origin, sizeof a->my_origin);
}

struct mc_auth *mc_auth_new(const uint8_t key[MC_SESSION_KEY_LEN])
{
	struct mc_auth *a = calloc(1, sizeof *a);

	if (a == NULL)
		return NULL;
	pthread_mutex_init(&a->mu, NULL);
	pthread_mutex_init(&a->rmu, NULL);
	memcpy(a->key, key, MC_SESSION_KEY_LEN);
	a->aes = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
	a->tx = EVP_CIPHER_CTX_new();
	a->rx = EVP_CIPHER_CTX_new();
	a->o = calloc(MC_AUTH_ORIGINS, sizeof *a->o);
	/* The key schedule once per context; each datagram only sets its IV. */
	if (a->aes == NULL || a->tx == NULL || a->rx == NULL || a->o == NULL || new_origin(a) < 0 ||
	    EVP_EncryptInit_ex(a->tx, a->aes, NULL, a->key, NULL) != 1 ||
	    EVP_EncryptInit_ex(a->rx, a->aes, NULL, a->key, NULL) != 1) {
		mc_auth_free(a);
		return NULL;
	}
	return a;
}

void mc_auth_free(struct mc_auth *a)
{
	if (a == NULL)
		return;
	EVP_CIPHER_CTX_free(a->tx);
	EVP_CIPHER_CTX_free(a->rx);
	EVP_CIPHER_free(a->aes);
	OPENSSL_cleanse(a->key, sizeof a->key);
	free(a->o);
	pthread_mutex_destroy(&a->mu);
	pthread_mutex_destroy(&a->rmu);
	free(a);
}

/* GMAC of the datagram's pieces under iv into tag, with ctx (tx or rx, keyed for encryption). */
static int gmac(EVP_CIPHER_CTX *ctx, const uint8_t iv[12], const struct iovec *iov, unsigned n, uint8_t tag[16])
{
	OSSL_PARAM tp[2] = {OSSL_PARAM_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, 16), OSSL_PARAM_END};
	int len;

	if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, iv) != 1)
		return -1;
	for (unsigned i = 0; i < n; i++)
		if (iov[i].iov_len && EVP_EncryptUpdate(ctx, NULL, &len, iov[i].iov_base, (int)iov[i].iov_len) != 1)
			return -1;
	if (EVP_EncryptFinal_ex(ctx, tag, &len) != 1 || EVP_CIPHER_CTX_get_params(ctx, tp) != 1)
		return -1;
	return 0;
}

int mc_auth_seal(struct mc_auth *a, const struct iovec *iov, unsigned n, uint8_t trailer[MC_AUTH_LEN])
{
	int rc;

	pthread_mutex_lock(&a->mu);
	/* A sequence number never wraps under one origin: the IV would repeat. */
	if (a->my_seq == UINT32_MAX) {
		if (new_origin(a) < 0) {
			pthread_mutex_unlock(&a->mu);
			return -1;
		}
		a->my_seq = 0;
	}
	mc_put64(trailer, a->my_origin);
	mc_put32(trailer + 8, a->my_seq++);
	rc = gmac(a->tx, trailer, iov, n, trailer + 12);
	if (rc == 0)
		a->st.sealed++;
	pthread_mutex_unlock(&a->mu);
	return rc;
}

/* The replay window of origin id, made when new (evicting the least recently heard). */
static struct origin *origin_of(struct mc_auth *a, uint64_t id)
{
	struct origin *o, *old = NULL;

	if (a->hint < a->no && a->o[a->hint].id == id)
		return &a->o[a->hint];
	for (unsigned i = 0; i < a->no; i++)
		if (a->o[i].id == id) {
			a->hint = i;
			return &a->o[i];
		}
	if (a->no < MC_AUTH_ORIGINS) {
		o = &a->o[a->no++];
	} else {
		for (unsigned i = 0; i < a->no; i++)
			if (old == NULL || a->o[i].last_use < old->last_use)
				old = &a->o[i];
		o = old;
	}
	memset(o, 0, sizeof *o);
	o->id = id;
	a->hint = (unsigned)(o - a->o);
	return o;
}

/* 1 when seq is new for o (and is now taken), 0 when it was taken or is behind the window. */
static int window_take(struct origin *o, uint32_t seq)
{
	if (!o->used) {
		o->used = 1;
		o->top = seq;
		o->seen = 1;
		return 1;
	}
	if (seq > o->top) {
		uint32_t d = seq - o->top;
		o->seen = d >= 64 ? 0 : o->seen << d;
		o->seen |= 1;
		o->top = seq;
		return 1;
	}
	uint32_t back = o->top - seq;
	if (back >= MC_AUTH_WINDOW || (o->seen >> back & 1))
		return 0;
	o->seen |= (uint64_t)1 << back;
	return 1;
}

long mc_auth_open(struct mc_auth *a, const uint8_t *p, size_t len)
{
	const uint8_t *t = p + len - MC_AUTH_LEN;
	uint8_t tag[16];
	long rc = -1;

	pthread_mutex_lock(&a->rmu);
	if (len < MC_AUTH_LEN || len - MC_AUTH_LEN > INT32_MAX) {
		a->st.forged++;
		goto out;
	}
	/* Checked before the window is touched: a forger cannot move anyone's window. */
	struct iovec v = {(void *)p, len - MC_AUTH_LEN};
	if (gmac(a->rx, t, &v, 1, tag) < 0 || CRYPTO_memcmp(tag, t + 12, 16) != 0) {
		a->st.forged++;
		goto out;
	}
	struct origin *o = origin_of(a, mc_get64(t));
	o->last_use = ++a->clock;
	if (!window_take(o, mc_get32(t + 8))) {
		a->st.replayed++;
		goto out;
	}
	a->st.ok++;
	rc = (long)(len - MC_AUTH_LEN);
out:
	pthread_mutex_unlock(&a->rmu);
	return rc;
}

struct mc_auth_stats mc_auth_get_stats(struct mc_auth *a)
{
	struct mc_auth_stats s;

	pthread_mutex_lock(&a->mu);
	pthread_mutex_lock(&a->rmu);
	s = a->st;
	pthread_mutex_unlock(&a->rmu);
	pthread_mutex_unlock(&a->mu);
	return s;
}
