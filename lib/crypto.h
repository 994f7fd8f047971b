/*
 * Keys, signatures and digests for trust (mcast-package(5), issue 17): Ed25519
 * key pairs and their text files, trust sets of public keys, session keys,
 * and the chunk digest algorithms. Every primitive comes from OpenSSL 3's
 * libcrypto; nothing here is hand-written cryptography.
 *
 * Errors follow lib/exitcode.h: 0 (or a length) on success, else a negative
 * errno code: -EINVAL for a key, key file or argument that is not what is
 * wanted; -EBADMSG for bytes that do not authenticate (an AEAD tag, a box,
 * a signature trailer); -ENOMEM when OpenSSL cannot allocate (its only way
 * to fail on valid input); -EIO when the system gives no random bytes; the
 * -errno of a system call that failed (-ENOENT, -EEXIST, -EACCES ...).
 * Those that take (err, errlen) say why there.
 */
#ifndef MC_CRYPTO_H
#define MC_CRYPTO_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#define MC_KEY_PUB_LEN 32       /* Ed25519 public key */
#define MC_KEY_SEED_LEN 32      /* Ed25519 secret key (the RFC 8032 seed) */
#define MC_SIG_LEN 64           /* Ed25519 signature */
#define MC_KEYID_LEN 8          /* key id: first 8 bytes of SHA-256(public key), shown as 16 hex digits */
#define MC_KEY_COMMENT_MAX 255
#define MC_SESSION_KEY_LEN 32
#define MC_HASH_OUT 16          /* chunk digest slot (MC_DIGEST_LEN) */
#define MC_HASH_SALT_LEN 16

/* First word of each key file line (the format and its version). */
#define MC_KEY_SECRET_TAG "mcast-secret-key-v1"
#define MC_KEY_PUBLIC_TAG "mcast-public-key-v1"

/*
 * Key types: Ed25519 signs manifests (keygen), X25519 receives content keys
 * of encrypted packages (keygen --box, --encrypt-to). Both use the same text
 * formats, the type named in the line; seed is then the X25519 private key.
 */
enum mc_key_type { MC_KEY_ED25519 = 0, MC_KEY_X25519 = 1 };
const char *mc_key_type_name(unsigned type);

/* A public key, or a key pair when has_secret. */
struct mc_key {
	uint8_t type;           /* enum mc_key_type (0, Ed25519, when zeroed) */
	uint8_t pub[MC_KEY_PUB_LEN];
	uint8_t seed[MC_KEY_SEED_LEN];
	int has_secret;
	uint8_t id[MC_KEYID_LEN];
	char comment[MC_KEY_COMMENT_MAX + 1];
};

/* Key id of a public key (SHA-256 of it, first 8 bytes). */
void mc_key_id(const uint8_t pub[MC_KEY_PUB_LEN], uint8_t id[MC_KEYID_LEN]);
/* Key id as 16 lowercase hex digits; returns out. */
char *mc_keyid_hex(const uint8_t id[MC_KEYID_LEN], char out[2 * MC_KEYID_LEN + 1]);

/* Makes a new Ed25519 key pair (comment left empty). Returns 0, or -EIO or -ENOMEM with a reason in err. */
int mc_key_generate(struct mc_key *k, char *err, size_t errlen);
/* The same for a key pair of type (enum mc_key_type). */
int mc_key_generate_as(unsigned type, struct mc_key *k, char *err, size_t errlen);

/*
 * One text line each, '\n' included (mcast-package(5)):
 *   mcast-secret-key-v1 TYPE BASE64(seed || public) [COMMENT]
 *   mcast-public-key-v1 TYPE BASE64(public) [COMMENT]
 * TYPE is ed25519 or x25519, as k->type says.
 * Return the length written, or -ENOBUFS when out is too small (-EINVAL
 * for the secret form of a k that holds no secret).
 */
int mc_key_format_secret(const struct mc_key *k, char *out, size_t outlen);
int mc_key_format_public(const struct mc_key *k, char *out, size_t outlen);

/*
 * Strict parsers of those lines (buf need not be NUL-terminated): exactly one
 * line, a trailing newline optional, single spaces between the fields,
 * canonical base64 of exactly the right length, a printable ASCII comment;
 * the secret form's public half must be the one its seed derives. Returns 0,
 * or -EINVAL with a reason in err (no file name: the caller adds it).
 */
int mc_key_parse_secret(const char *buf, size_t len, struct mc_key *k, char *err, size_t errlen);
int mc_key_parse_public(const char *buf, size_t len, struct mc_key *k, char *err, size_t errlen);
/* The same for keys of type (the plain ones take Ed25519 only: a key of the other type is refused, named). */
int mc_key_parse_secret_as(unsigned type, const char *buf, size_t len, struct mc_key *k, char *err, size_t errlen);
int mc_key_parse_public_as(unsigned type, const char *buf, size_t len, struct mc_key *k, char *err, size_t errlen);

/*
 * Reads and parses a key file (a regular file of at most 4 KiB). Returns 0,
 * or with "path: reason" in err -EINVAL (not a key file of that kind) or
 * the -errno of the read (-ENOENT ...). For a secret key, *loose is set when
 * the file is readable or writable by group or others (the caller warns).
 */
int mc_key_load_secret(const char *path, struct mc_key *k, int *loose, char *err, size_t errlen);
int mc_key_load_public(const char *path, struct mc_key *k, char *err, size_t errlen);
int mc_key_load_secret_as(unsigned type, const char *path, struct mc_key *k, int *loose, char *err, size_t errlen);
int mc_key_load_public_as(unsigned type, const char *path, struct mc_key *k, char *err, size_t errlen);

/*
 * keygen: writes name.key (mode 0600) and name.pub (0644) for k, both
 * created with O_EXCL so an existing file is never overwritten (nothing is
 * written when either exists), flushed to disk. Returns 0 or -EEXIST, or
 * the -errno of the write, with
 * "path: reason" in err.
 */
int mc_key_write_pair(const char *name, const struct mc_key *k, char *err, size_t errlen);

/* Writes MC_SESSION_KEY_LEN random bytes to path (O_EXCL, mode 0600). Returns 0 or -errno with "path: reason". */
int mc_session_key_write(const char *path, char *err, size_t errlen);
/* Reads a session key file: a regular file of exactly MC_SESSION_KEY_LEN bytes; *loose as above. */
int mc_session_key_load(const char *path, uint8_t key[MC_SESSION_KEY_LEN], int *loose, char *err, size_t errlen);

/* Ed25519 signature of msg with k's secret. Returns 0, or -EINVAL (no Ed25519 secret) or -ENOMEM with a reason in err. */
int mc_sign(const struct mc_key *k, const void *msg, size_t n, uint8_t sig[MC_SIG_LEN], char *err, size_t errlen);
/* 1 when sig is pub's signature of msg, else 0. */
int mc_sign_verify(const uint8_t pub[MC_KEY_PUB_LEN], const void *msg, size_t n, const uint8_t sig[MC_SIG_LEN]);

/* The public keys a program trusts (--trust FILE.pub or a directory of them). */
struct mc_trust {
	struct mc_key *keys;
	size_t n;
};
/*
 * Adds path: a public key file, or a directory whose *.pub files are all
 * added (one that is not a public key is an error; so is a directory
 * without any: -EINVAL). Returns 0 or a code as mc_key_load_public's with
 * "path: reason" in err.
 */
int mc_trust_add(struct mc_trust *t, const char *path, char *err, size_t errlen);
/* The trusted key with this public half, or NULL. */
const struct mc_key *mc_trust_find(const struct mc_trust *t, const uint8_t pub[MC_KEY_PUB_LEN]);
void mc_trust_free(struct mc_trust *t);

/*
 * Chunk digest algorithms (the manifest names one). XXH3 catches accidents;
 * SHA256 (truncated to MC_HASH_OUT bytes, over salt || data with a random
 * salt the packager picks, so content someone else chose cannot be a
 * prepared collision) holds against forgers once the manifest is signed.
 */
enum mc_hash_alg { MC_HASH_XXH3 = 0, MC_HASH_SHA256 = 1 };
#define MC_HASH_ALG_MAX MC_HASH_SHA256
const char *mc_hash_name(unsigned alg);

/* A streaming chunk digest. */
struct mc_hash {
	unsigned alg;
	void *state;                     /* XXH3_state_t or EVP_MD_CTX */
	uint8_t salt[MC_HASH_SALT_LEN];
};
/* Returns 0, or -EINVAL (unknown algorithm) or -ENOMEM. salt: MC_HASH_SALT_LEN bytes, used by SHA256 only. */
int mc_hash_init(struct mc_hash *h, unsigned alg, const uint8_t *salt);
/* Starts a new digest with the same algorithm and salt. */
void mc_hash_reset(struct mc_hash *h);
void mc_hash_update(struct mc_hash *h, const void *p, size_t n);
/* The digest of what was fed since init/reset (then reset again before reuse). */
void mc_hash_final(struct mc_hash *h, uint8_t out[MC_HASH_OUT]);
void mc_hash_free(struct mc_hash *h);
/* One-shot digest. Returns 0, or -EINVAL for an unknown algorithm (out zeroed) or -ENOMEM. */
int mc_hash_once(unsigned alg, const uint8_t *salt, const void *p, size_t n, uint8_t out[MC_HASH_OUT]);

/*
 * The trailer that ends a signed manifest (mcast-package(5)), 117 bytes:
 *    0 magic "MCSG" (4)   4 chunk digest algorithm (1, MC_HASH_SHA256)
 *    5 salt (16)         21 signer's Ed25519 public key (32)   53 signature (64)
 * The signature is Ed25519 over MC_SIG_DOMAIN (its NUL included) followed
 * by every manifest byte before the signature: the whole manifest, trailer
 * fields and signer included, so nothing in it can change or move.
 */
#define MC_SIG_TRAILER_LEN 117
#define MC_SIG_MAGIC "MCSG"
#define MC_SIG_DOMAIN "mcast manifest signature v1"
struct mc_sig_trailer {
	uint8_t alg;
	uint8_t salt[MC_HASH_SALT_LEN];
	uint8_t pub[MC_KEY_PUB_LEN];
	uint8_t sig[MC_SIG_LEN];
};
/* 1 when p (MC_SIG_TRAILER_LEN bytes) starts with the trailer's magic. */
int mc_sig_trailer_is(const uint8_t *p);
/* Decodes a trailer; the algorithm must be a cryptographic one. Returns 0 or -EBADMSG with a reason. */
int mc_sig_trailer_decode(const uint8_t p[MC_SIG_TRAILER_LEN], struct mc_sig_trailer *t, char *err, size_t errlen);
void mc_sig_trailer_encode(const struct mc_sig_trailer *t, uint8_t out[MC_SIG_TRAILER_LEN]);

/*
 * Signs an encoded manifest of len bytes that ends in a trailer naming k's
 * public key: writes the signature into its last MC_SIG_LEN bytes. Returns 0
 * or with a reason in err -EINVAL (the trailer does not name k), -ENOMEM.
 */
int mc_sig_sign(uint8_t *raw, size_t len, const struct mc_key *k, char *err, size_t errlen);

/* What mc_sig_check found: 0 or a negative errno code, as everywhere in lib (lib/exitcode.h). */
enum mc_sig_result {
	MC_SIG_TRUSTED = 0,
	MC_SIG_UNSIGNED = -ENOKEY,       /* no trailer: no signature to check */
	MC_SIG_UNTRUSTED = -EKEYREJECTED, /* signed, by a key not in the trust set */
	MC_SIG_BAD = -EBADMSG,           /* the signature does not match the manifest: tampered or damaged */
};
/*
 * Checks an encoded manifest (len bytes; signed says whether it ends in a
 * trailer) against the trust set t: the signer must be in t and the
 * signature must match. Returns an enum mc_sig_result, or -ENOMEM, with a
 * reason naming the signer's key id in err for anything but MC_SIG_TRUSTED.
 */
int mc_sig_check(const uint8_t *raw, size_t len, int is_signed, const struct mc_trust *t, char *err, size_t errlen);

/* Full SHA-256 (test vectors, key ids). */
void mc_sha256(const void *p, size_t n, uint8_t out[32]);

/* n bytes from the system's CSPRNG. Returns 0 or -EIO. */
int mc_random(void *p, size_t n);

/*
 * Encryption of packages (mcast-package(5), Encrypted packages). An AEAD
 * with a 12-byte nonce and a 16-byte tag kept apart from the ciphertext.
 * AES-256-GCM is what packages use: on this project's machine (vector AES
 * and carry-less multiply) bench/crypto measured it well ahead of
 * ChaCha20-Poly1305 on 1 MiB chunks (mcast-package(5) gives the figures).
 */
#define MC_AEAD_KEY_LEN 32
#define MC_AEAD_NONCE_LEN 12
#define MC_AEAD_TAG_LEN 16
enum mc_aead_alg { MC_AEAD_AES256GCM = 1, MC_AEAD_CHACHA20POLY1305 = 2 };
const char *mc_aead_name(unsigned alg);

/* A keyed AEAD context: one per thread. NULL for an unknown algorithm or no memory. */
struct mc_aead;
struct mc_aead *mc_aead_new(unsigned alg, const uint8_t key[MC_AEAD_KEY_LEN]);
void mc_aead_free(struct mc_aead *a);
/* Encrypts n bytes of in to out (they may be the same), tag apart. Returns 0 or -EIO. */
int mc_aead_seal(struct mc_aead *a, const uint8_t nonce[MC_AEAD_NONCE_LEN], const void *aad, size_t aadlen,
		 const uint8_t *in, uint8_t *out, size_t n, uint8_t tag[MC_AEAD_TAG_LEN]);
/* Decrypts n bytes of in to out (they may be the same). Returns 0, or -EBADMSG when the tag does not match (out is garbage). */
int mc_aead_open(struct mc_aead *a, const uint8_t nonce[MC_AEAD_NONCE_LEN], const void *aad, size_t aadlen,
		 const uint8_t *in, uint8_t *out, size_t n, const uint8_t tag[MC_AEAD_TAG_LEN]);

/* HKDF with SHA-256 (RFC 5869), extract and expand, OpenSSL's EVP_KDF. Returns 0 or -ENOMEM. */
int mc_hkdf_sha256(const void *ikm, size_t ikmlen, const void *salt, size_t saltlen, const void *info, size_t infolen,
		   uint8_t *out, size_t outlen);

/* X25519 (RFC 7748): a private key's public key, and the shared secret (-EINVAL when it is all zeros). */
int mc_x25519_public(const uint8_t priv[32], uint8_t pub[32]);
int mc_x25519(const uint8_t priv[32], const uint8_t peer[32], uint8_t shared[32]);

/*
 * Sealed boxes: a 32-byte message (a content key) for the holder of an
 * X25519 key pair, MC_BOX_LEN bytes: an ephemeral public key E (32), the
 * message encrypted (32) and its tag (16), under AES-256-GCM with a zero
 * nonce and the key HKDF-SHA256(X25519(e, R), salt E || R, info "mcast
 * sealed box v1" with its NUL). aad binds the box to its place.
 */
#define MC_BOX_MSG_LEN 32
#define MC_BOX_LEN (32 + MC_BOX_MSG_LEN + MC_AEAD_TAG_LEN)
int mc_box_seal(const uint8_t rpub[32], const void *aad, size_t aadlen, const uint8_t msg[MC_BOX_MSG_LEN],
		uint8_t box[MC_BOX_LEN]);
/* Opens a box with k (an X25519 key pair). Returns 0, or -EBADMSG when it is not for k or was changed (-EINVAL: k is no X25519 pair). */
int mc_box_open(const struct mc_key *k, const void *aad, size_t aadlen, const uint8_t box[MC_BOX_LEN],
		uint8_t msg[MC_BOX_MSG_LEN]);

/*
 * The key of --encrypt and --decrypt: a 32-byte key file (keygen --session
 * makes one) or, for --decrypt, an X25519 secret key file (keygen --box)
 * that opens the package's box for it. Its id: for a 32-byte key the first
 * 8 bytes of SHA-256("mcast content key id v1" NUL || key) (it never appears
 * in a package); for a box key the key id of its public key.
 */
struct mc_content_key {
	int is_box;
	uint8_t key[MC_AEAD_KEY_LEN]; /* a 32-byte key file's bytes */
	struct mc_key box;            /* an X25519 key pair */
	uint8_t id[MC_KEYID_LEN];
};
void mc_content_key_id(const uint8_t key[MC_AEAD_KEY_LEN], uint8_t id[MC_KEYID_LEN]);
/* Reads either kind; *loose as for secret keys. Returns 0 or a code as mc_key_load_secret's, "path: reason" in err. */
int mc_content_key_load(const char *path, struct mc_content_key *k, int *loose, char *err, size_t errlen);

#endif
