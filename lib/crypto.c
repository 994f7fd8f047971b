/* Keys, signatures, trust sets and chunk digests on OpenSSL 3's libcrypto (see crypto.h). */
#include "crypto.h"
#include "exitcode.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <xxhash.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xxh_x86dispatch.h>
#endif

/* Bound on a key file: one line of under 500 bytes; anything larger is not a key. */
#define KEY_FILE_MAX 4096

void mc_sha256(const void *p, size_t n, uint8_t out[32])
{
	unsigned int len = 32;

	if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1)
		memset(out, 0, 32);
}

void mc_key_id(const uint8_t pub[MC_KEY_PUB_LEN], uint8_t id[MC_KEYID_LEN])
{
	uint8_t h[32];

	mc_sha256(pub, MC_KEY_PUB_LEN, h);
	memcpy(id, h, MC_KEYID_LEN);
}

char *mc_keyid_hex(const uint8_t id[MC_KEYID_LEN], char out[2 * MC_KEYID_LEN + 1])
{
	return mc_hex(id, MC_KEYID_LEN, out);
}

int mc_random(void *p, size_t n)
{
	if (n > INT_MAX)
		return -EINVAL;
	return RAND_priv_bytes(p, (int)n) != 1 ? -EIO : 0;
}

/* OpenSSL's id of a key type (enum mc_key_type). */
static int pkey_id(unsigned type)
{
	return type == MC_KEY_X25519 ? EVP_PKEY_X25519 : EVP_PKEY_ED25519;
}

/* The public half of an Ed25519 seed or an X25519 private key. */
static int derive_pub(unsigned type, const uint8_t seed[MC_KEY_SEED_LEN], uint8_t pub[MC_KEY_PUB_LEN])
{
	EVP_PKEY *pk = EVP_PKEY_new_raw_private_key(pkey_id(type), NULL, seed, MC_KEY_SEED_LEN);
	size_t len = MC_KEY_PUB_LEN;
	int rc = -1;

	if (pk && EVP_PKEY_get_raw_public_key(pk, pub, &len) == 1 && len == MC_KEY_PUB_LEN)
		rc = 0;
	EVP_PKEY_free(pk);
	return rc;
}

int mc_key_generate(struct mc_key *k, char *err, size_t errlen)
{
	return mc_key_generate_as(MC_KEY_ED25519, k, err, errlen);
}

int mc_key_generate_as(unsigned type, struct mc_key *k, char *err, size_t errlen)
{
	memset(k, 0, sizeof *k);
	k->type = (uint8_t)type;
	int rc = mc_random(k->seed, MC_KEY_SEED_LEN);

	if (rc < 0 || derive_pub(type, k->seed, k->pub) < 0) {
		snprintf(err, errlen, "cannot make an %s key", mc_key_type_name(type));
		return rc < 0 ? rc : -ENOMEM; /* OpenSSL fails on a valid seed only when it cannot allocate */
	}
	k->has_secret = 1;
	mc_key_id(k->pub, k->id);
	return 0;
}

int mc_sign(const struct mc_key *k, const void *msg, size_t n, uint8_t sig[MC_SIG_LEN], char *err, size_t errlen)
{
	EVP_PKEY *pk = NULL;
	EVP_MD_CTX *ctx = NULL;
	size_t len = MC_SIG_LEN;
	int rc = -ENOMEM; /* OpenSSL fails with a valid key only when it cannot allocate */

	if (!k->has_secret || k->type != MC_KEY_ED25519) {
		snprintf(err, errlen, "not an Ed25519 secret key");
		return -EINVAL;
	}
	pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, k->seed, MC_KEY_SEED_LEN);
	ctx = EVP_MD_CTX_new();
	/* Ed25519 is one-shot (PureEdDSA): no digest is named, the whole message is signed. */
	if (pk && ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, pk) == 1 &&
	    EVP_DigestSign(ctx, sig, &len, msg, n) == 1 && len == MC_SIG_LEN)
		rc = 0;
	else
		snprintf(err, errlen, "Ed25519 signing failed");
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pk);
	return rc;
}

int mc_sign_verify(const uint8_t pub[MC_KEY_PUB_LEN], const void *msg, size_t n, const uint8_t sig[MC_SIG_LEN])
{
	EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, MC_KEY_PUB_LEN);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int good = 0;

	if (pk && ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk) == 1)
		good = EVP_DigestVerify(ctx, sig, MC_SIG_LEN, msg, n) == 1;
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pk);
	return good;
}

/* ---- key files ---- */

static int b64_encode(const uint8_t *p, size_t n, char *out, size_t outlen)
{
	size_t need = 4 * ((n + 2) / 3) + 1;

	if (outlen < need)
		return -1;
	return EVP_EncodeBlock((unsigned char *)out, p, (int)n);
}

/*
 * Decodes exactly n bytes from the base64 text s[0..len): the text must be
 * the canonical encoding of n bytes (so one key has one spelling and no
 * stray characters slip through EVP_DecodeBlock's leniency).
 */
static int b64_decode_exact(const char *s, size_t len, uint8_t *out, size_t n)
{
	char again[128];
	uint8_t tmp[96];

	if (n > 64 || len != 4 * ((n + 2) / 3))
		return -1;
	if (EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)len) != (int)(3 * (len / 4)))
		return -1;
	if (b64_encode(tmp, n, again, sizeof again) != (int)len || memcmp(again, s, len) != 0)
		return -1;
	memcpy(out, tmp, n);
	return 0;
}

const char *mc_key_type_name(unsigned type)
{
	return type == MC_KEY_X25519 ? "x25519" : "ed25519";
}

static int format_line(const char *tag, unsigned type, const uint8_t *p, size_t n, const char *comment, char *out,
		       size_t outlen)
{
	char b64[128];
	int w;

	if (b64_encode(p, n, b64, sizeof b64) < 0)
		return -ENOBUFS;
	if (comment && comment[0])
		w = snprintf(out, outlen, "%s %s %s %s\n", tag, mc_key_type_name(type), b64, comment);
	else
		w = snprintf(out, outlen, "%s %s %s\n", tag, mc_key_type_name(type), b64);
	return w < 0 || (size_t)w >= outlen ? -ENOBUFS : w;
}

int mc_key_format_secret(const struct mc_key *k, char *out, size_t outlen)
{
	uint8_t both[MC_KEY_SEED_LEN + MC_KEY_PUB_LEN];
	int w;

	if (!k->has_secret)
		return -EINVAL;
	memcpy(both, k->seed, MC_KEY_SEED_LEN);
	memcpy(both + MC_KEY_SEED_LEN, k->pub, MC_KEY_PUB_LEN);
	w = format_line(MC_KEY_SECRET_TAG, k->type, both, sizeof both, k->comment, out, outlen);
	OPENSSL_cleanse(both, sizeof both);
	return w;
}

int mc_key_format_public(const struct mc_key *k, char *out, size_t outlen)
{
	return format_line(MC_KEY_PUBLIC_TAG, k->type, k->pub, MC_KEY_PUB_LEN, k->comment, out, outlen);
}

/* Splits the one line of a key file into tag, type, base64 and comment; checks the common rules. */
static int parse_line(const char *buf, size_t len, const char *want, const char *other, unsigned type, uint8_t *key,
		      size_t keylen, char *comment, char *err, size_t errlen)
{
	const char *p = buf, *end, *sp;
	size_t taglen = strlen(want);

	if (len && buf[len - 1] == '\n')
		len--;
	end = buf + len;
	for (const char *q = buf; q < end; q++)
		if (*q == '\n' || *q == '\0' || *q == '\r') {
			snprintf(err, errlen, *q == '\n' ? "more than one line" : "holds a %s character",
				 *q == '\0' ? "NUL" : "carriage return");
			return -EINVAL;
		}
	if (len >= strlen(other) + 1 && memcmp(buf, other, strlen(other)) == 0 && buf[strlen(other)] == ' ') {
		snprintf(err, errlen, "a %s key where a %s key is wanted",
			 strcmp(other, MC_KEY_SECRET_TAG) == 0 ? "secret" : "public",
			 strcmp(want, MC_KEY_SECRET_TAG) == 0 ? "secret" : "public");
		return -EINVAL;
	}
	if (len < taglen + 1 || memcmp(buf, want, taglen) != 0 || buf[taglen] != ' ') {
		snprintf(err, errlen, "not an mcast key file (the line must start with '%s ')", want);
		return -EINVAL;
	}
	p = buf + taglen + 1;
	sp = memchr(p, ' ', (size_t)(end - p));
	if (sp == NULL || (((size_t)(sp - p) != 7 || memcmp(p, "ed25519", 7) != 0) &&
			   ((size_t)(sp - p) != 6 || memcmp(p, "x25519", 6) != 0))) {
		snprintf(err, errlen, "unknown key type (only 'ed25519' and 'x25519' are known)");
		return -EINVAL;
	}
	if ((size_t)(sp - p) != strlen(mc_key_type_name(type))) {
		/* A signing key where an encryption key is wanted, or the other way round. */
		snprintf(err, errlen, "an %.*s key where an %s key is wanted (%s)", (int)(sp - p), p, mc_key_type_name(type),
			 type == MC_KEY_X25519 ? "mcast-pack keygen --box makes one" : "mcast-pack keygen makes one");
		return -EINVAL;
	}
	p = sp + 1;
	sp = memchr(p, ' ', (size_t)(end - p));
	if (b64_decode_exact(p, (size_t)((sp ? sp : end) - p), key, keylen) < 0) {
		snprintf(err, errlen, "key is not %zu bytes of base64", keylen);
		return -EINVAL;
	}
	comment[0] = '\0';
	if (sp) {
		size_t cl = (size_t)(end - sp - 1);

		if (cl == 0 || cl > MC_KEY_COMMENT_MAX) {
			snprintf(err, errlen, "comment empty or longer than %d bytes", MC_KEY_COMMENT_MAX);
			return -EINVAL;
		}
		for (size_t i = 0; i < cl; i++)
			if ((unsigned char)sp[1 + i] < 0x20 || (unsigned char)sp[1 + i] > 0x7e) {
				snprintf(err, errlen, "comment holds a byte that is not printable ASCII");
				return -EINVAL;
			}
		memcpy(comment, sp + 1, cl);
		comment[cl] = '\0';
	}
	return 0;
}

int mc_key_parse_secret(const char *buf, size_t len, struct mc_key *k, char *err, size_t errlen)
{
	return mc_key_parse_secret_as(MC_KEY_ED25519, buf, len, k, err, errlen);
}

int mc_key_parse_secret_as(unsigned type, const char *buf, size_t len, struct mc_key *k, char *err, size_t errlen)
{
	uint8_t both[MC_KEY_SEED_LEN + MC_KEY_PUB_LEN], pub[MC_KEY_PUB_LEN];
	int rc;

	memset(k, 0, sizeof *k);
	if ((rc = parse_line(buf, len, MC_KEY_SECRET_TAG, MC_KEY_PUBLIC_TAG, type, both, sizeof both, k->comment, err,
			     errlen)) < 0)
		goto out;
	rc = -EINVAL;
	k->type = (uint8_t)type;
	if (derive_pub(type, both, pub) < 0 || memcmp(pub, both + MC_KEY_SEED_LEN, MC_KEY_PUB_LEN) != 0) {
		snprintf(err, errlen, "public half does not belong to the secret key (damaged file)");
		goto out;
	}
	memcpy(k->seed, both, MC_KEY_SEED_LEN);
	memcpy(k->pub, pub, MC_KEY_PUB_LEN);
	k->has_secret = 1;
	mc_key_id(k->pub, k->id);
	rc = 0;
out:
	OPENSSL_cleanse(both, sizeof both);
	if (rc < 0)
		memset(k, 0, sizeof *k);
	return rc;
}

int mc_key_parse_public(const char *buf, size_t len, struct mc_key *k, char *err, size_t errlen)
{
	return mc_key_parse_public_as(MC_KEY_ED25519, buf, len, k, err, errlen);
}

int mc_key_parse_public_as(unsigned type, const char *buf, size_t len, struct mc_key *k, char *err, size_t errlen)
{
	int rc;

	memset(k, 0, sizeof *k);
	if ((rc = parse_line(buf, len, MC_KEY_PUBLIC_TAG, MC_KEY_SECRET_TAG, type, k->pub, MC_KEY_PUB_LEN, k->comment,
			     err, errlen)) < 0)
		return rc;
	k->type = (uint8_t)type;
	mc_key_id(k->pub, k->id);
	return 0;
}

/*
 * Reads a small regular file whole. Returns its length, or with "path:
 * reason" in err the -errno of the call that failed, or -EINVAL (not a
 * regular file, too large for a key).
 */
static ssize_t read_small(const char *path, char *buf, size_t cap, struct stat *st, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	ssize_t n = -EINVAL, got = 0;

	if (fd < 0) {
		int e0 = errno; /* before anything can change it */
		snprintf(err, errlen, "%s: %s", path, mc_strerror(-e0));
		return -e0;
	}
	if (fstat(fd, st) < 0) {
		n = -errno;
		snprintf(err, errlen, "%s: %s", path, mc_strerror((int)n));
		goto out;
	}
	if (!S_ISREG(st->st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if ((uint64_t)st->st_size >= cap) {
		snprintf(err, errlen, "%s: too large for a key file (%jd bytes)", path, (intmax_t)st->st_size);
		goto out;
	}
	while ((size_t)got < cap) {
		ssize_t r = read(fd, buf + got, cap - (size_t)got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			n = -errno;
			snprintf(err, errlen, "%s: %s", path, mc_strerror((int)n));
			goto out;
		}
		if (r == 0)
			break;
		got += r;
	}
	if ((size_t)got >= cap) {
		snprintf(err, errlen, "%s: too large for a key file", path);
		goto out;
	}
	n = got;
out:
	close(fd);
	return n;
}

int mc_key_load_secret(const char *path, struct mc_key *k, int *loose, char *err, size_t errlen)
{
	return mc_key_load_secret_as(MC_KEY_ED25519, path, k, loose, err, errlen);
}

int mc_key_load_secret_as(unsigned type, const char *path, struct mc_key *k, int *loose, char *err, size_t errlen)
{
	char buf[KEY_FILE_MAX], why[160];
	struct stat st;
	ssize_t n = read_small(path, buf, sizeof buf, &st, err, errlen);
	int rc = (int)n;

	*loose = 0;
	if (n < 0)
		goto out;
	if ((rc = mc_key_parse_secret_as(type, buf, (size_t)n, k, why, sizeof why)) < 0) {
		snprintf(err, errlen, "%s: %s", path, why);
		goto out;
	}
	*loose = (st.st_mode & 077) != 0;
	rc = 0;
out:
	OPENSSL_cleanse(buf, sizeof buf);
	return rc;
}

int mc_key_load_public(const char *path, struct mc_key *k, char *err, size_t errlen)
{
	return mc_key_load_public_as(MC_KEY_ED25519, path, k, err, errlen);
}

int mc_key_load_public_as(unsigned type, const char *path, struct mc_key *k, char *err, size_t errlen)
{
	char buf[KEY_FILE_MAX], why[160];
	struct stat st;
	ssize_t n = read_small(path, buf, sizeof buf, &st, err, errlen);
	int rc;

	if (n < 0)
		return (int)n;
	if ((rc = mc_key_parse_public_as(type, buf, (size_t)n, k, why, sizeof why)) < 0) {
		snprintf(err, errlen, "%s: %s", path, why);
		return rc;
	}
	return 0;
}

/* Creates path with O_EXCL and mode, writes n bytes, flushes. Returns 0 or -errno with "path: reason". */
static int write_new(const char *path, const void *p, size_t n, mode_t mode, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	size_t done = 0;
	int e;

	if (fd < 0) {
		int e0 = errno; /* before anything can change it */
		snprintf(err, errlen, "%s: %s", path, e0 == EEXIST ? "exists (not overwritten)" : mc_strerror(-e0));
		return -e0;
	}
	/* open's mode passes through the umask; a secret must be 0600 whatever the umask says. */
	if (fchmod(fd, mode) < 0)
		goto fail;
	while (done < n) {
		ssize_t w = write(fd, (const char *)p + done, n - done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			goto fail;
		done += (size_t)w;
	}
	if (fsync(fd) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	return 0;
fail:
	e = errno;
	snprintf(err, errlen, "%s: %s", path, mc_strerror(-e));
	if (fd >= 0)
		close(fd);
	unlink(path);
	return -e;
}

int mc_key_write_pair(const char *name, const struct mc_key *k, char *err, size_t errlen)
{
	char sec[512], pub[512], *kp = NULL, *pp = NULL;
	size_t nl = strlen(name);
	int sl, pl, rc = -EINVAL;
	struct stat st;

	if ((sl = mc_key_format_secret(k, sec, sizeof sec)) < 0 || (pl = mc_key_format_public(k, pub, sizeof pub)) < 0) {
		snprintf(err, errlen, "%s: cannot format the key", name);
		goto out;
	}
	if ((kp = malloc(nl + 5)) == NULL || (pp = malloc(nl + 5)) == NULL) {
		snprintf(err, errlen, "%s: %s", name, mc_strerror(-ENOMEM));
		rc = -ENOMEM;
		goto out;
	}
	memcpy(kp, name, nl);
	memcpy(kp + nl, ".key", 5);
	memcpy(pp, name, nl);
	memcpy(pp + nl, ".pub", 5);
	/* Check both first: a keygen that fails must leave no half pair behind, nor touch an old one. */
	if (lstat(pp, &st) == 0) {
		snprintf(err, errlen, "%s: exists (not overwritten)", pp);
		rc = -EEXIST;
		goto out;
	}
	if ((rc = write_new(kp, sec, (size_t)sl, 0600, err, errlen)) < 0)
		goto out;
	if ((rc = write_new(pp, pub, (size_t)pl, 0644, err, errlen)) < 0) {
		unlink(kp);
		goto out;
	}
out:
	OPENSSL_cleanse(sec, sizeof sec);
	free(kp);
	free(pp);
	return rc;
}

int mc_session_key_write(const char *path, char *err, size_t errlen)
{
	uint8_t key[MC_SESSION_KEY_LEN];
	int rc;

	if ((rc = mc_random(key, sizeof key)) < 0) {
		snprintf(err, errlen, "%s: no random bytes", path);
		return rc;
	}
	rc = write_new(path, key, sizeof key, 0600, err, errlen);
	OPENSSL_cleanse(key, sizeof key);
	return rc;
}

int mc_session_key_load(const char *path, uint8_t key[MC_SESSION_KEY_LEN], int *loose, char *err, size_t errlen)
{
	char buf[KEY_FILE_MAX];
	struct stat st;
	ssize_t n = read_small(path, buf, sizeof buf, &st, err, errlen);
	int rc = n < 0 ? (int)n : -EINVAL;

	*loose = 0;
	if (n < 0)
		goto out;
	if (n != MC_SESSION_KEY_LEN) {
		snprintf(err, errlen, "%s: a session key is exactly %d bytes, not %zd (make one with 'mcast-pack keygen --session')",
			 path, MC_SESSION_KEY_LEN, n);
		goto out;
	}
	memcpy(key, buf, MC_SESSION_KEY_LEN);
	*loose = (st.st_mode & 077) != 0;
	rc = 0;
out:
	OPENSSL_cleanse(buf, sizeof buf);
	return rc;
}

/* ---- trust sets ---- */

static int trust_push(struct mc_trust *t, const struct mc_key *k, const char *path, char *err, size_t errlen)
{
	struct mc_key *n;

	if (mc_trust_find(t, k->pub))
		return 0;
	n = realloc(t->keys, (t->n + 1) * sizeof *n);
	if (n == NULL) {
		snprintf(err, errlen, "%s: %s", path, mc_strerror(-ENOMEM));
		return -ENOMEM;
	}
	t->keys = n;
	t->keys[t->n++] = *k;
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int mc_trust_add(struct mc_trust *t, const char *path, char *err, size_t errlen)
{
	struct stat st;
	struct mc_key k;
	DIR *d = NULL;
	struct dirent *e;
	char **names = NULL, *full = NULL;
	size_t nn = 0, added = 0;
	int rc = -ENOMEM;

	if (stat(path, &st) < 0) {
		int e0 = errno; /* before anything can change it */
		snprintf(err, errlen, "%s: %s", path, mc_strerror(-e0));
		return -e0;
	}
	if (!S_ISDIR(st.st_mode)) {
		if ((rc = mc_key_load_public(path, &k, err, errlen)) < 0)
			return rc;
		return trust_push(t, &k, path, err, errlen);
	}
	if ((d = opendir(path)) == NULL) {
		int e0 = errno; /* before anything can change it */
		snprintf(err, errlen, "%s: %s", path, mc_strerror(-e0));
		return -e0;
	}
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);
		char **g;

		if (l < 5 || strcmp(e->d_name + l - 4, ".pub") != 0 || e->d_name[0] == '.')
			continue;
		if ((g = realloc(names, (nn + 1) * sizeof *g)) == NULL || (g[nn] = strdup(e->d_name)) == NULL) {
			if (g)
				names = g;
			snprintf(err, errlen, "%s: %s", path, mc_strerror(-ENOMEM));
			goto out;
		}
		names = g;
		nn++;
	}
	/* Sorted, so that which bad file is named first does not depend on the directory's order. */
	if (nn > 1)
		qsort(names, nn, sizeof *names, by_name);
	for (size_t i = 0; i < nn; i++) {
		size_t l = strlen(path) + strlen(names[i]) + 2;

		free(full);
		if ((full = malloc(l)) == NULL) {
			snprintf(err, errlen, "%s: %s", path, mc_strerror(-ENOMEM));
			rc = -ENOMEM;
			goto out;
		}
		snprintf(full, l, "%s/%s", path, names[i]);
		if ((rc = mc_key_load_public(full, &k, err, errlen)) < 0 || (rc = trust_push(t, &k, full, err, errlen)) < 0)
			goto out;
		added++;
	}
	if (added == 0) {
		snprintf(err, errlen, "%s: a directory without any *.pub key", path);
		rc = -EINVAL;
		goto out;
	}
	rc = 0;
out:
	for (size_t i = 0; i < nn; i++)
		free(names[i]);
	free(names);
	free(full);
	closedir(d);
	return rc;
}

const struct mc_key *mc_trust_find(const struct mc_trust *t, const uint8_t pub[MC_KEY_PUB_LEN])
{
	for (size_t i = 0; t && i < t->n; i++)
		if (memcmp(t->keys[i].pub, pub, MC_KEY_PUB_LEN) == 0)
			return &t->keys[i];
	return NULL;
}

void mc_trust_free(struct mc_trust *t)
{
	free(t->keys);
	t->keys = NULL;
	t->n = 0;
}

/* ---- manifest signatures ---- */

int mc_sig_trailer_is(const uint8_t *p)
{
	return memcmp(p, MC_SIG_MAGIC, 4) == 0;
}

int mc_sig_trailer_decode(const uint8_t p[MC_SIG_TRAILER_LEN], struct mc_sig_trailer *t, char *err, size_t errlen)
{
	if (!mc_sig_trailer_is(p)) {
		snprintf(err, errlen, "signature trailer: bad magic");
		return -EBADMSG;
	}
	/* A signature over digests anyone can forge (XXH3) would protect nothing: only SHA-256 is taken. */
	if (p[4] != MC_HASH_SHA256) {
		snprintf(err, errlen, "signature trailer: chunk digest algorithm %u is not a cryptographic one", p[4]);
		return -EBADMSG;
	}
	t->alg = p[4];
	memcpy(t->salt, p + 5, MC_HASH_SALT_LEN);
	memcpy(t->pub, p + 21, MC_KEY_PUB_LEN);
	memcpy(t->sig, p + 53, MC_SIG_LEN);
	return 0;
}

void mc_sig_trailer_encode(const struct mc_sig_trailer *t, uint8_t out[MC_SIG_TRAILER_LEN])
{
	memcpy(out, MC_SIG_MAGIC, 4);
	out[4] = t->alg;
	memcpy(out + 5, t->salt, MC_HASH_SALT_LEN);
	memcpy(out + 21, t->pub, MC_KEY_PUB_LEN);
	memcpy(out + 53, t->sig, MC_SIG_LEN);
}

/* MC_SIG_DOMAIN with its NUL, then the manifest up to its signature: the message signed. */
static uint8_t *signed_message(const uint8_t *raw, size_t len, size_t *n)
{
	size_t dl = sizeof MC_SIG_DOMAIN, body = len - MC_SIG_LEN;
	uint8_t *m = malloc(dl + body);

	if (m) {
		memcpy(m, MC_SIG_DOMAIN, dl);
		memcpy(m + dl, raw, body);
		*n = dl + body;
	}
	return m;
}

int mc_sig_sign(uint8_t *raw, size_t len, const struct mc_key *k, char *err, size_t errlen)
{
	uint8_t *msg;
	size_t n;
	int rc;

	if (len < MC_SIG_TRAILER_LEN || !mc_sig_trailer_is(raw + len - MC_SIG_TRAILER_LEN) ||
	    memcmp(raw + len - MC_SIG_LEN - MC_KEY_PUB_LEN, k->pub, MC_KEY_PUB_LEN) != 0) {
		snprintf(err, errlen, "manifest: no signature trailer for this key");
		return -EINVAL;
	}
	if ((msg = signed_message(raw, len, &n)) == NULL) {
		snprintf(err, errlen, "manifest: %s", mc_strerror(-ENOMEM));
		return -ENOMEM;
	}
	rc = mc_sign(k, msg, n, raw + len - MC_SIG_LEN, err, errlen);
	free(msg);
	return rc;
}

int mc_sig_check(const uint8_t *raw, size_t len, int is_signed, const struct mc_trust *t, char *err, size_t errlen)
{
	struct mc_sig_trailer tr;
	uint8_t id[MC_KEYID_LEN], *msg;
	char kid[2 * MC_KEYID_LEN + 1], why[128];
	size_t n;
	int good;

	if (!is_signed || len < MC_SIG_TRAILER_LEN) {
		snprintf(err, errlen, "not signed, and only signed packages are trusted");
		return MC_SIG_UNSIGNED;
	}
	if (mc_sig_trailer_decode(raw + len - MC_SIG_TRAILER_LEN, &tr, why, sizeof why) < 0) {
		snprintf(err, errlen, "%s", why);
		return MC_SIG_BAD;
	}
	mc_key_id(tr.pub, id);
	mc_keyid_hex(id, kid);
	if (mc_trust_find(t, tr.pub) == NULL) {
		snprintf(err, errlen, "signed by key %s, which is not trusted (%zu trusted key%s)", kid,
			 t ? t->n : 0, t && t->n == 1 ? "" : "s");
		return MC_SIG_UNTRUSTED;
	}
	if ((msg = signed_message(raw, len, &n)) == NULL) {
		snprintf(err, errlen, "%s", mc_strerror(-ENOMEM));
		return -ENOMEM;
	}
	good = mc_sign_verify(tr.pub, msg, n, tr.sig);
	free(msg);
	if (!good) {
		snprintf(err, errlen, "manifest does not match its signature by key %s: tampered or damaged", kid);
		return MC_SIG_BAD;
	}
	return MC_SIG_TRUSTED;
}

/* ---- chunk digests ---- */

const char *mc_hash_name(unsigned alg)
{
	return alg == MC_HASH_XXH3 ? "xxh3-128" : alg == MC_HASH_SHA256 ? "sha256-128" : "unknown";
}

int mc_hash_init(struct mc_hash *h, unsigned alg, const uint8_t *salt)
{
	memset(h, 0, sizeof *h);
	h->alg = alg;
	if (salt)
		memcpy(h->salt, salt, MC_HASH_SALT_LEN);
	if (alg == MC_HASH_XXH3)
		h->state = XXH3_createState();
	else if (alg == MC_HASH_SHA256)
		h->state = EVP_MD_CTX_new();
	else
		return -EINVAL;
	if (h->state == NULL)
		return -ENOMEM;
	mc_hash_reset(h);
	return 0;
}

void mc_hash_reset(struct mc_hash *h)
{
	if (h->alg == MC_HASH_XXH3) {
		XXH3_128bits_reset(h->state);
	} else {
		EVP_DigestInit_ex(h->state, EVP_sha256(), NULL);
		EVP_DigestUpdate(h->state, h->salt, MC_HASH_SALT_LEN);
	}
}

void mc_hash_update(struct mc_hash *h, const void *p, size_t n)
{
	if (h->alg == MC_HASH_XXH3)
		XXH3_128bits_update(h->state, p, n);
	else
		EVP_DigestUpdate(h->state, p, n);
}

void mc_hash_final(struct mc_hash *h, uint8_t out[MC_HASH_OUT])
{
	if (h->alg == MC_HASH_XXH3) {
		XXH128_canonical_t c;

		XXH128_canonicalFromHash(&c, XXH3_128bits_digest(h->state));
		memcpy(out, c.digest, MC_HASH_OUT);
	} else {
		uint8_t full[32];
		unsigned int len = sizeof full;

		if (EVP_DigestFinal_ex(h->state, full, &len) != 1)
			memset(full, 0, sizeof full);
		memcpy(out, full, MC_HASH_OUT);
	}
}

void mc_hash_free(struct mc_hash *h)
{
	if (h->state == NULL)
		return;
	if (h->alg == MC_HASH_XXH3)
		XXH3_freeState(h->state);
	else
		EVP_MD_CTX_free(h->state);
	h->state = NULL;
}

int mc_hash_once(unsigned alg, const uint8_t *salt, const void *p, size_t n, uint8_t out[MC_HASH_OUT])
{
	if (alg == MC_HASH_XXH3) {
		XXH128_canonical_t c;

		XXH128_canonicalFromHash(&c, XXH3_128bits(p, n));
		memcpy(out, c.digest, MC_HASH_OUT);
		return 0;
	}
	if (alg == MC_HASH_SHA256) {
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		uint8_t full[32];
		unsigned int len = sizeof full;
		static const uint8_t zero[MC_HASH_SALT_LEN];
		int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
			 EVP_DigestUpdate(ctx, salt ? salt : zero, MC_HASH_SALT_LEN) == 1 &&
			 EVP_DigestUpdate(ctx, p, n) == 1 && EVP_DigestFinal_ex(ctx, full, &len) == 1;

		EVP_MD_CTX_free(ctx);
		if (ok) {
			memcpy(out, full, MC_HASH_OUT);
			return 0;
		}
		memset(out, 0, MC_HASH_OUT);
		return -ENOMEM; /* OpenSSL's SHA-256 fails only when it cannot allocate */
	}
	memset(out, 0, MC_HASH_OUT);
	return -EINVAL;
}

/* ---- encryption: AEAD, HKDF, X25519 and sealed boxes ---- */

const char *mc_aead_name(unsigned alg)
{
	return alg == MC_AEAD_AES256GCM ? "aes-256-gcm" : alg == MC_AEAD_CHACHA20POLY1305 ? "chacha20-poly1305" : "unknown";
}

struct mc_aead {
	EVP_CIPHER_CTX *enc, *dec;
	EVP_CIPHER *ci;
};

struct mc_aead *mc_aead_new(unsigned alg, const uint8_t key[MC_AEAD_KEY_LEN])
{
	struct mc_aead *a = calloc(1, sizeof *a);
	const char *name = alg == MC_AEAD_AES256GCM ? "AES-256-GCM" : alg == MC_AEAD_CHACHA20POLY1305 ? "ChaCha20-Poly1305" : NULL;

	if (a == NULL || name == NULL)
		goto fail;
	/* Fetched once, keyed once: each message then only sets its nonce (the key schedule is not redone). */
	a->ci = EVP_CIPHER_fetch(NULL, name, NULL);
	a->enc = EVP_CIPHER_CTX_new();
	a->dec = EVP_CIPHER_CTX_new();
	if (a->ci == NULL || a->enc == NULL || a->dec == NULL ||
	    EVP_EncryptInit_ex2(a->enc, a->ci, key, NULL, NULL) != 1 ||
	    EVP_DecryptInit_ex2(a->dec, a->ci, key, NULL, NULL) != 1)
		goto fail;
	return a;
fail:
	mc_aead_free(a);
	return NULL;
}

void mc_aead_free(struct mc_aead *a)
{
	if (a == NULL)
		return;
	EVP_CIPHER_CTX_free(a->enc);
	EVP_CIPHER_CTX_free(a->dec);
	EVP_CIPHER_free(a->ci);
	free(a);
}

int mc_aead_seal(struct mc_aead *a, const uint8_t nonce[MC_AEAD_NONCE_LEN], const void *aad, size_t aadlen,
		 const uint8_t *in, uint8_t *out, size_t n, uint8_t tag[MC_AEAD_TAG_LEN])
{
	int l;

	if (n > INT_MAX || aadlen > INT_MAX)
		return -EINVAL;
	if (EVP_EncryptInit_ex2(a->enc, NULL, NULL, nonce, NULL) != 1 ||
	    (aadlen && EVP_EncryptUpdate(a->enc, NULL, &l, aad, (int)aadlen) != 1) ||
	    (n && EVP_EncryptUpdate(a->enc, out, &l, in, (int)n) != 1) || EVP_EncryptFinal_ex(a->enc, out + n, &l) != 1 ||
	    EVP_CIPHER_CTX_ctrl(a->enc, EVP_CTRL_AEAD_GET_TAG, MC_AEAD_TAG_LEN, tag) != 1)
		return -EIO;
	return 0;
}

int mc_aead_open(struct mc_aead *a, const uint8_t nonce[MC_AEAD_NONCE_LEN], const void *aad, size_t aadlen,
		 const uint8_t *in, uint8_t *out, size_t n, const uint8_t tag[MC_AEAD_TAG_LEN])
{
	uint8_t t[MC_AEAD_TAG_LEN];
	int l;

	memcpy(t, tag, sizeof t);
	if (n > INT_MAX || aadlen > INT_MAX)
		return -EINVAL;
	if (EVP_DecryptInit_ex2(a->dec, NULL, NULL, nonce, NULL) != 1 ||
	    (aadlen && EVP_DecryptUpdate(a->dec, NULL, &l, aad, (int)aadlen) != 1) ||
	    (n && EVP_DecryptUpdate(a->dec, out, &l, in, (int)n) != 1) ||
	    EVP_CIPHER_CTX_ctrl(a->dec, EVP_CTRL_AEAD_SET_TAG, MC_AEAD_TAG_LEN, t) != 1 ||
	    EVP_DecryptFinal_ex(a->dec, out + n, &l) != 1)
		return -EBADMSG;
	return 0;
}

int mc_hkdf_sha256(const void *ikm, size_t ikmlen, const void *salt, size_t saltlen, const void *info, size_t infolen,
		   uint8_t *out, size_t outlen)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM p[5], *q = p;
	int rc = -ENOMEM; /* HKDF fails only when OpenSSL cannot allocate */

	*q++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikmlen);
	*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, saltlen);
	*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, infolen);
	*q = OSSL_PARAM_construct_end();
	if (ctx && EVP_KDF_derive(ctx, out, outlen, p) == 1)
		rc = 0;
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	return rc;
}

int mc_x25519_public(const uint8_t priv[32], uint8_t pub[32])
{
	return derive_pub(MC_KEY_X25519, priv, pub) < 0 ? -ENOMEM : 0;
}

int mc_x25519(const uint8_t priv[32], const uint8_t peer[32], uint8_t shared[32])
{
	EVP_PKEY *me = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, 32);
	EVP_PKEY *them = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer, 32);
	EVP_PKEY_CTX *ctx = me ? EVP_PKEY_CTX_new(me, NULL) : NULL;
	size_t len = 32;
	int rc = -ENOMEM;

	/* OpenSSL refuses an all-zero result (a peer key of small order): RFC 7748 section 6.1's check. */
	if (them && ctx && EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, them) == 1)
		rc = EVP_PKEY_derive(ctx, shared, &len) == 1 && len == 32 ? 0 : -EINVAL;
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(them);
	EVP_PKEY_free(me);
	return rc;
}

/* The key that seals a box: HKDF-SHA256 of the shared secret, salted with both public keys. */
static int box_key(const uint8_t shared[32], const uint8_t eph[32], const uint8_t rpub[32], uint8_t key[32])
{
	static const char info[] = "mcast sealed box v1";
	uint8_t salt[64];

	memcpy(salt, eph, 32);
	memcpy(salt + 32, rpub, 32);
	return mc_hkdf_sha256(shared, 32, salt, sizeof salt, info, sizeof info, key, 32);
}

int mc_box_seal(const uint8_t rpub[32], const void *aad, size_t aadlen, const uint8_t msg[MC_BOX_MSG_LEN],
		uint8_t box[MC_BOX_LEN])
{
	static const uint8_t nonce[MC_AEAD_NONCE_LEN]; /* every box has a key of its own (a fresh ephemeral key) */
	uint8_t eph[32], shared[32], key[32];
	struct mc_aead *a = NULL;
	int rc;

	if ((rc = mc_random(eph, sizeof eph)) < 0 || (rc = mc_x25519_public(eph, box)) < 0 ||
	    (rc = mc_x25519(eph, rpub, shared)) < 0 || (rc = box_key(shared, box, rpub, key)) < 0)
		goto out;
	if ((a = mc_aead_new(MC_AEAD_AES256GCM, key)) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	rc = mc_aead_seal(a, nonce, aad, aadlen, msg, box + 32, MC_BOX_MSG_LEN, box + 32 + MC_BOX_MSG_LEN);
out:
	mc_aead_free(a);
	OPENSSL_cleanse(eph, sizeof eph);
	OPENSSL_cleanse(shared, sizeof shared);
	OPENSSL_cleanse(key, sizeof key);
	return rc;
}

int mc_box_open(const struct mc_key *k, const void *aad, size_t aadlen, const uint8_t box[MC_BOX_LEN],
		uint8_t msg[MC_BOX_MSG_LEN])
{
	static const uint8_t nonce[MC_AEAD_NONCE_LEN];
	uint8_t shared[32], key[32];
	struct mc_aead *a = NULL;
	int rc = -EINVAL;

	if (k->type != MC_KEY_X25519 || !k->has_secret)
		return -EINVAL;
	/* A box whose ephemeral key has small order is not one anyone sealed: changed. */
	if ((rc = mc_x25519(k->seed, box, shared)) < 0) {
		rc = rc == -EINVAL ? -EBADMSG : rc;
		goto out;
	}
	if ((rc = box_key(shared, box, k->pub, key)) < 0)
		goto out;
	if ((a = mc_aead_new(MC_AEAD_AES256GCM, key)) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	rc = mc_aead_open(a, nonce, aad, aadlen, box + 32, msg, MC_BOX_MSG_LEN, box + 32 + MC_BOX_MSG_LEN);
out:
	mc_aead_free(a);
	OPENSSL_cleanse(shared, sizeof shared);
	OPENSSL_cleanse(key, sizeof key);
	return rc;
}

void mc_content_key_id(const uint8_t key[MC_AEAD_KEY_LEN], uint8_t id[MC_KEYID_LEN])
{
	static const char dom[] = "mcast content key id v1";
	uint8_t b[sizeof dom + MC_AEAD_KEY_LEN], h[32];

	memcpy(b, dom, sizeof dom);
	memcpy(b + sizeof dom, key, MC_AEAD_KEY_LEN);
	mc_sha256(b, sizeof b, h);
	memcpy(id, h, MC_KEYID_LEN);
	OPENSSL_cleanse(b, sizeof b);
}

int mc_content_key_load(const char *path, struct mc_content_key *k, int *loose, char *err, size_t errlen)
{
	char buf[KEY_FILE_MAX], why[160];
	struct stat st;
	ssize_t n = read_small(path, buf, sizeof buf, &st, err, errlen);
	int rc = (int)n;

	memset(k, 0, sizeof *k);
	*loose = 0;
	if (n < 0)
		goto out;
	if (n == MC_AEAD_KEY_LEN) {
		/* 32 bytes: a shared key (keygen --session); a text key file is never that short. */
		memcpy(k->key, buf, MC_AEAD_KEY_LEN);
		mc_content_key_id(k->key, k->id);
	} else if ((rc = mc_key_parse_secret_as(MC_KEY_X25519, buf, (size_t)n, &k->box, why, sizeof why)) < 0) {
		snprintf(err, errlen, "%s: neither a 32-byte key (keygen --session) nor an x25519 secret key (keygen --box): %s",
			 path, why);
		goto out;
	} else {
		k->is_box = 1;
		memcpy(k->id, k->box.id, MC_KEYID_LEN);
	}
	*loose = (st.st_mode & 077) != 0;
	rc = 0;
out:
	OPENSSL_cleanse(buf, sizeof buf);
	return rc;
}
