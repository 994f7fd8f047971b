/* Unit tests of lib/crypto.c: published vectors, key files, trust sets, chunk digests. */
#include "crypto.h"
#include "pkg.h"
#include "tap.h"

#include <fcntl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/mcast-test-crypto.XXXXXX";

static void unhex(const char *s, uint8_t *out)
{
	for (size_t i = 0; s[2 * i]; i++) {
		unsigned v;

		sscanf(s + 2 * i, "%2x", &v);
		out[i] = (uint8_t)v;
	}
}

static char *path(const char *name)
{
	static char p[4][512];
	static int n;
	char *r = p[n++ % 4];

	snprintf(r, 512, "%s/%s", dir, name);
	return r;
}

static int put_file(const char *name, const char *text, size_t len, mode_t mode)
{
	int fd = open(path(name), O_WRONLY | O_CREAT | O_TRUNC, mode);
	int rc = fd >= 0 && write(fd, text, len) == (ssize_t)len ? 0 : -1;

	if (fd >= 0)
		close(fd);
	chmod(path(name), mode);
	return rc;
}

/* RFC 8032 section 7.1, tests 1 and 2; FIPS 180-2 SHA-256 of "abc" and of "". */
static void test_vectors(void)
{
	struct mc_key k;
	uint8_t sig[MC_SIG_LEN], want[MC_SIG_LEN], pub[MC_KEY_PUB_LEN], h[32], w[32], msg2 = 0x72;
	char err[256] = "";

	memset(&k, 0, sizeof k);
	unhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", k.seed);
	unhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", pub);
	memcpy(k.pub, pub, sizeof pub);
	k.has_secret = 1;
	unhex("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
	      want);
	ok(mc_sign(&k, "", 0, sig, err, sizeof err) == 0 && memcmp(sig, want, MC_SIG_LEN) == 0,
	   "RFC 8032 test 1: the signature of the empty message");
	ok(mc_sign_verify(pub, "", 0, want) == 1, "RFC 8032 test 1 verifies");
	want[10] ^= 1;
	ok(mc_sign_verify(pub, "", 0, want) == 0, "a changed signature does not");

	unhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb", k.seed);
	unhex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", pub);
	memcpy(k.pub, pub, sizeof pub);
	unhex("92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
	      want);
	ok(mc_sign(&k, &msg2, 1, sig, err, sizeof err) == 0 && memcmp(sig, want, MC_SIG_LEN) == 0,
	   "RFC 8032 test 2: the signature of 0x72");
	ok(mc_sign_verify(pub, &msg2, 1, want) == 1, "RFC 8032 test 2 verifies");
	msg2 = 0x73;
	ok(mc_sign_verify(pub, &msg2, 1, want) == 0, "another message does not");
	pub[0] ^= 0x80;
	ok(mc_sign_verify(pub, "r", 1, want) == 0, "nor another key");

	mc_sha256("abc", 3, h);
	unhex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", w);
	ok(memcmp(h, w, 32) == 0, "SHA-256(\"abc\")");
	mc_sha256("", 0, h);
	unhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", w);
	ok(memcmp(h, w, 32) == 0, "SHA-256(\"\")");
}

static void test_digests(void)
{
	static uint8_t buf[300000];
	uint8_t salt[MC_HASH_SALT_LEN], a[16], b[16], c[16], full[32];
	uint8_t *salted = malloc(sizeof buf + sizeof salt);
	struct mc_hash h;

	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (uint8_t)(i * 7 + (i >> 9));
	memset(salt, 0xa5, sizeof salt);
	ok(mc_hash_once(MC_HASH_SHA256, salt, buf, sizeof buf, a) == 0, "sha256 one-shot");
	memcpy(salted, salt, sizeof salt);
	memcpy(salted + sizeof salt, buf, sizeof buf);
	mc_sha256(salted, sizeof buf + sizeof salt, full);
	ok(memcmp(a, full, 16) == 0, "is the first 16 bytes of SHA-256(salt || data)");
	free(salted);
	ok(mc_hash_init(&h, MC_HASH_SHA256, salt) == 0, "streaming sha256");
	mc_hash_update(&h, buf, 1000);
	mc_hash_update(&h, buf + 1000, sizeof buf - 1000);
	mc_hash_final(&h, b);
	ok(memcmp(a, b, 16) == 0, "streaming in pieces gives the one-shot digest");
	mc_hash_reset(&h);
	mc_hash_update(&h, buf, sizeof buf);
	mc_hash_final(&h, b);
	ok(memcmp(a, b, 16) == 0, "and again after a reset");
	mc_hash_free(&h);
	salt[0] ^= 1;
	mc_hash_once(MC_HASH_SHA256, salt, buf, sizeof buf, c);
	ok(memcmp(a, c, 16) != 0, "another salt, another digest");

	mc_digest(buf, sizeof buf, a);
	ok(mc_hash_once(MC_HASH_XXH3, NULL, buf, sizeof buf, b) == 0 && memcmp(a, b, 16) == 0,
	   "xxh3-128 is mc_digest");
	ok(mc_hash_init(&h, MC_HASH_XXH3, NULL) == 0, "streaming xxh3");
	mc_hash_update(&h, buf, 12345);
	mc_hash_update(&h, buf + 12345, sizeof buf - 12345);
	mc_hash_final(&h, c);
	mc_hash_free(&h);
	ok(memcmp(a, c, 16) == 0, "streaming xxh3 agrees");
	ok(mc_hash_once(7, NULL, buf, 10, a) == -EINVAL && mc_hash_init(&h, 7, NULL) == -EINVAL, "an unknown algorithm is refused");
}

static void test_key_text(void)
{
	struct mc_key k, back;
	char sec[512], pub[512], bad[600], err[256] = "";
	int sl, pl;

	ok(mc_key_generate(&k, err, sizeof err) == 0 && k.has_secret, "a key pair is made");
	strcpy(k.comment, "lab signing key");
	sl = mc_key_format_secret(&k, sec, sizeof sec);
	pl = mc_key_format_public(&k, pub, sizeof pub);
	ok(sl > 0 && strncmp(sec, "mcast-secret-key-v1 ed25519 ", 28) == 0 && sec[sl - 1] == '\n' &&
	       strchr(sec, '\n') == sec + sl - 1, "secret key: one line: %.28s...", sec);
	ok(pl > 0 && strncmp(pub, "mcast-public-key-v1 ed25519 ", 28) == 0 && strstr(pub, " lab signing key\n"),
	   "public key: one line with its comment: %.*s", pl - 1, pub);
	ok(mc_key_parse_secret(sec, (size_t)sl, &back, err, sizeof err) == 0 && memcmp(back.seed, k.seed, 32) == 0 &&
	       memcmp(back.pub, k.pub, 32) == 0 && memcmp(back.id, k.id, MC_KEYID_LEN) == 0, "the secret key parses back: %s", err);
	ok(mc_key_parse_public(pub, (size_t)pl, &back, err, sizeof err) == 0 && memcmp(back.pub, k.pub, 32) == 0 &&
	       !back.has_secret && strcmp(back.comment, "lab signing key") == 0, "the public key parses back: %s", err);
	ok(mc_key_parse_public(pub, (size_t)pl - 1, &back, err, sizeof err) == 0, "without its newline too");

	ok(mc_key_parse_public(sec, (size_t)sl, &back, err, sizeof err) == -EINVAL && strstr(err, "a secret key where a public key"),
	   "a secret key given as public: %s", err);
	ok(mc_key_parse_secret(pub, (size_t)pl, &back, err, sizeof err) == -EINVAL && strstr(err, "a public key where a secret key"),
	   "a public key given as secret: %s", err);
	ok(mc_key_parse_public("ssh-ed25519 AAAAC3Nza me\n", 25, &back, err, sizeof err) == -EINVAL && strstr(err, "not an mcast key"),
	   "an ssh key: %s", err);
	snprintf(bad, sizeof bad, "%.*s\n%s", pl - 1, pub, pub);
	ok(mc_key_parse_public(bad, strlen(bad), &back, err, sizeof err) == -EINVAL && strstr(err, "more than one line"),
	   "two lines: %s", err);
	snprintf(bad, sizeof bad, "mcast-public-key-v1 ed448 %s", pub + 28);
	ok(mc_key_parse_public(bad, strlen(bad), &back, err, sizeof err) == -EINVAL && strstr(err, "unknown key type"),
	   "another key type: %s", err);
	snprintf(bad, sizeof bad, "%s", pub);
	bad[40] = '*';
	ok(mc_key_parse_public(bad, strlen(bad), &back, err, sizeof err) == -EINVAL && strstr(err, "base64"), "a bad base64 character: %s", err);
	snprintf(bad, sizeof bad, "mcast-public-key-v1 ed25519 %.40s\n", pub + 28);
	ok(mc_key_parse_public(bad, strlen(bad), &back, err, sizeof err) == -EINVAL && strstr(err, "base64"), "a short key: %s", err);
	/* The last base64 digit of 32 bytes carries 2 spare bits: a non-zero one is another spelling. */
	snprintf(bad, sizeof bad, "%s", pub);
	bad[28 + 42] = bad[28 + 42] == 'A' ? 'B' : bad[28 + 42] == 'E' ? 'F' : (char)(bad[28 + 42] ^ 1);
	ok(mc_key_parse_public(bad, strlen(bad), &back, err, sizeof err) == -EINVAL, "a non-canonical base64 spelling: %s", err);
	snprintf(bad, sizeof bad, "%.*s\r\n", pl - 1, pub);
	ok(mc_key_parse_public(bad, strlen(bad), &back, err, sizeof err) == -EINVAL && strstr(err, "carriage return"),
	   "a CRLF line: %s", err);
	snprintf(bad, sizeof bad, "%.*s caf\xc3\xa9\n", pl - 17, pub);
	ok(mc_key_parse_public(bad, strlen(bad), &back, err, sizeof err) == -EINVAL && strstr(err, "printable"),
	   "a comment that is not ASCII: %s", err);
	ok(mc_key_parse_public("", 0, &back, err, sizeof err) == -EINVAL, "an empty file: %s", err);

	/* A secret key whose public half is another key's. */
	{
		struct mc_key other;
		char mixed[512];

		mc_key_generate(&other, err, sizeof err);
		memcpy(other.pub, k.pub, 32);
		mc_key_format_secret(&other, mixed, sizeof mixed);
		ok(mc_key_parse_secret(mixed, strlen(mixed), &back, err, sizeof err) == -EINVAL && strstr(err, "does not belong"),
		   "a secret key with a foreign public half: %s", err);
	}
}

static void test_files(void)
{
	struct mc_key k, back;
	struct mc_trust t = {0};
	struct stat st;
	uint8_t sk[MC_SESSION_KEY_LEN];
	char err[512] = "", name[512], line[512];
	int loose = -1;

	mc_key_generate(&k, err, sizeof err);
	snprintf(name, sizeof name, "%s/admin", dir);
	ok(mc_key_write_pair(name, &k, err, sizeof err) == 0, "keygen writes a pair: %s", err);
	ok(stat(path("admin.key"), &st) == 0 && (st.st_mode & 0777) == 0600, "NAME.key is mode 0600 (%o)", st.st_mode & 0777);
	ok(stat(path("admin.pub"), &st) == 0 && (st.st_mode & 0777) == 0644, "NAME.pub is mode 0644");
	ok(mc_key_write_pair(name, &k, err, sizeof err) == -EEXIST && strstr(err, "exists"), "a second keygen refuses: %s", err);
	ok(mc_key_load_secret(path("admin.key"), &back, &loose, err, sizeof err) == 0 && loose == 0 &&
	       memcmp(back.seed, k.seed, 32) == 0, "the secret key loads, not loose");
	chmod(path("admin.key"), 0640);
	ok(mc_key_load_secret(path("admin.key"), &back, &loose, err, sizeof err) == 0 && loose == 1,
	   "a group-readable secret key is loose");
	ok(mc_key_load_public(path("admin.key"), &back, err, sizeof err) == -EINVAL && strstr(err, "admin.key: a secret key"),
	   "errors name the file: %s", err);

	/* Only NAME.pub left over: keygen must not write NAME.key beside it. */
	put_file("half.pub", "x", 1, 0644);
	snprintf(name, sizeof name, "%s/half", dir);
	ok(mc_key_write_pair(name, &k, err, sizeof err) == -EEXIST && access(path("half.key"), F_OK) != 0,
	   "nothing written when NAME.pub exists: %s", err);

	ok(mc_session_key_write(path("s.key"), err, sizeof err) == 0 && stat(path("s.key"), &st) == 0 &&
	       st.st_size == 32 && (st.st_mode & 0777) == 0600, "session key: 32 bytes, mode 0600");
	ok(mc_session_key_write(path("s.key"), err, sizeof err) == -EEXIST, "not overwritten");
	ok(mc_session_key_load(path("s.key"), sk, &loose, err, sizeof err) == 0 && loose == 0, "session key loads");
	put_file("short.key", "0123456789", 10, 0600);
	ok(mc_session_key_load(path("short.key"), sk, &loose, err, sizeof err) == -EINVAL && strstr(err, "short.key: a session key is exactly 32"),
	   "a 10-byte session key: %s", err);

	/* Trust: a file, a directory, a directory with a bad file, an empty one. */
	ok(mc_trust_add(&t, path("admin.pub"), err, sizeof err) == 0 && t.n == 1, "trust a file");
	ok(mc_trust_find(&t, k.pub) != NULL, "the key is found");
	mkdir(path("keys"), 0755);
	{
		struct mc_key a, b;

		mc_key_generate(&a, err, sizeof err);
		mc_key_generate(&b, err, sizeof err);
		snprintf(name, sizeof name, "%s/keys/a", dir);
		mc_key_write_pair(name, &a, err, sizeof err);
		snprintf(name, sizeof name, "%s/keys/b", dir);
		mc_key_write_pair(name, &b, err, sizeof err);
		ok(mc_trust_add(&t, path("keys"), err, sizeof err) == 0 && t.n == 3 && mc_trust_find(&t, b.pub),
		   "trust a directory: its *.pub keys, not its *.key files (%zu keys)", t.n);
		ok(mc_trust_add(&t, path("keys/a.pub"), err, sizeof err) == 0 && t.n == 3, "a key given twice counts once");
	}
	mc_key_format_public(&k, line, sizeof line);
	line[30] = '!';
	put_file("keys/z.pub", line, strlen(line), 0644);
	ok(mc_trust_add(&t, path("keys"), err, sizeof err) == -EINVAL && strstr(err, "keys/z.pub: "), "a bad key in the directory: %s", err);
	mkdir(path("empty"), 0755);
	ok(mc_trust_add(&t, path("empty"), err, sizeof err) == -EINVAL && strstr(err, "without any"), "an empty directory: %s", err);
	ok(mc_trust_add(&t, path("nothing.pub"), err, sizeof err) == -ENOENT && strstr(err, "nothing.pub: No such file"),
	   "a missing file: %s", err);
	mc_trust_free(&t);
}

/* A stand-in manifest body with a trailer, signed as mc_manifest_encode + mc_sig_sign do. */
static void test_signatures(void)
{
	struct mc_key k, other;
	struct mc_trust t = {0}, t2 = {0};
	struct mc_sig_trailer tr = {.alg = MC_HASH_SHA256};
	uint8_t raw[300 + MC_SIG_TRAILER_LEN];
	char err[256] = "", kid[2 * MC_KEYID_LEN + 1];
	size_t len = sizeof raw;

	mc_key_generate(&k, err, sizeof err);
	mc_key_generate(&other, err, sizeof err);
	mc_keyid_hex(k.id, kid);
	for (size_t i = 0; i < 300; i++)
		raw[i] = (uint8_t)(i * 13);
	memset(tr.salt, 7, sizeof tr.salt);
	memcpy(tr.pub, k.pub, sizeof tr.pub);
	mc_sig_trailer_encode(&tr, raw + 300);
	ok(mc_sig_sign(raw, len, &other, err, sizeof err) == -EINVAL, "a key the trailer does not name cannot sign: %s", err);
	ok(mc_sig_sign(raw, len, &k, err, sizeof err) == 0, "signed: %s", err);
	t.keys = &k;
	t.n = 1;
	t2.keys = &other;
	t2.n = 1;
	ok(mc_sig_check(raw, len, 1, &t, err, sizeof err) == MC_SIG_TRUSTED, "trusted by its key");
	ok(mc_sig_check(raw, len, 1, &t2, err, sizeof err) == MC_SIG_UNTRUSTED && strstr(err, kid),
	   "another key's trust refuses it, naming the signer: %s", err);
	ok(mc_sig_check(raw, len, 0, &t, err, sizeof err) == MC_SIG_UNSIGNED && strstr(err, "not signed"),
	   "an unsigned manifest is refused: %s", err);
	for (size_t i = 0; i < len; i += 37) {
		int r;

		raw[i] ^= 0x10;
		r = mc_sig_check(raw, len, 1, &t, err, sizeof err);
		raw[i] ^= 0x10;
		if (r == MC_SIG_TRUSTED) {
			ok(0, "byte %zu changed and still trusted", i);
			break;
		}
		if (i + 37 >= len)
			ok(1, "every changed byte tried (every 37th, trailer included) is refused");
	}
	raw[10] ^= 1;
	ok(mc_sig_check(raw, len, 1, &t, err, sizeof err) == MC_SIG_BAD && strstr(err, "does not match its signature by key") &&
	       strstr(err, kid), "a changed body byte: %s", err);
	raw[10] ^= 1;
	raw[304] = MC_HASH_XXH3;
	ok(mc_sig_check(raw, len, 1, &t, err, sizeof err) == MC_SIG_BAD && strstr(err, "not a cryptographic"),
	   "a trailer naming XXH3 is refused: %s", err);
	raw[304] = MC_HASH_SHA256;
	ok(mc_sig_check(raw, len, 1, &t, err, sizeof err) == MC_SIG_TRUSTED, "restored, trusted again");
}

/*
 * Encryption primitives against published vectors: X25519 (RFC 7748 section
 * 6.1), HKDF-SHA256 (RFC 5869 test case 1), AES-256-GCM (the GCM
 * specification's test case 16, NIST SP 800-38D's vectors), ChaCha20-Poly1305
 * (RFC 8439 section 2.8.2).
 */
static void test_enc_vectors(void)
{
	uint8_t a[32], b[32], apub[32], bpub[32], want[128], got[128], s1[32], s2[32];
	uint8_t ikm[22], salt[13], info[10], okm[42];
	struct mc_aead *x;

	unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", a);
	unhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb", b);
	unhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a", want);
	ok(mc_x25519_public(a, apub) == 0 && memcmp(apub, want, 32) == 0, "RFC 7748: Alice's public key");
	unhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f", want);
	ok(mc_x25519_public(b, bpub) == 0 && memcmp(bpub, want, 32) == 0, "RFC 7748: Bob's public key");
	unhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742", want);
	ok(mc_x25519(a, bpub, s1) == 0 && mc_x25519(b, apub, s2) == 0 && memcmp(s1, want, 32) == 0 &&
	       memcmp(s2, want, 32) == 0, "RFC 7748: both sides get the shared secret");
	memset(want, 0, 32);
	ok(mc_x25519(a, want, s1) == -EINVAL, "a peer key of small order (all zeros) is refused");

	memset(ikm, 0x0b, sizeof ikm);
	unhex("000102030405060708090a0b0c", salt);
	unhex("f0f1f2f3f4f5f6f7f8f9", info);
	unhex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865", want);
	ok(mc_hkdf_sha256(ikm, sizeof ikm, salt, sizeof salt, info, sizeof info, okm, sizeof okm) == 0 &&
	       memcmp(okm, want, 42) == 0, "RFC 5869 test case 1: HKDF-SHA256");

	uint8_t key[32], iv[12], aad[20], pt[60], tag[16], wtag[16];
	unhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", key);
	unhex("cafebabefacedbaddecaf888", iv);
	unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2", aad);
	unhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525"
	      "b16aedf5aa0de657ba637b39", pt);
	unhex("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838"
	      "c5f61e6393ba7a0abcc9f662", want);
	unhex("76fc6ece0f4e1768cddf8853bb2d551b", wtag);
	x = mc_aead_new(MC_AEAD_AES256GCM, key);
	ok(x && mc_aead_seal(x, iv, aad, sizeof aad, pt, got, sizeof pt, tag) == 0 && memcmp(got, want, 60) == 0 &&
	       memcmp(tag, wtag, 16) == 0, "GCM test case 16: AES-256-GCM ciphertext and tag");
	ok(x && mc_aead_open(x, iv, aad, sizeof aad, got, got, sizeof pt, tag) == 0 && memcmp(got, pt, 60) == 0,
	   "and it opens again, in place");
	memcpy(got, want, 60);
	got[7] ^= 1;
	ok(x && mc_aead_open(x, iv, aad, sizeof aad, got, got, sizeof pt, wtag) == -EBADMSG, "one bit changed: refused");
	memcpy(got, want, 60);
	aad[0] ^= 1;
	ok(x && mc_aead_open(x, iv, aad, sizeof aad, got, got, sizeof pt, wtag) == -EBADMSG, "other associated data: refused");
	mc_aead_free(x);

	static const char lad[] = "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for "
				  "the future, sunscreen would be it.";
	uint8_t ck[32], cn[12], ca[12], cct[114], ctag[16];
	for (int i = 0; i < 32; i++)
		ck[i] = (uint8_t)(0x80 + i);
	unhex("070000004041424344454647", cn);
	unhex("50515253c0c1c2c3c4c5c6c7", ca);
	unhex("d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b"
	      "1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
	      "3ff4def08e4b7a9de576d26586cec64b6116", want);
	unhex("1ae10b594f09e26a7e902ecbd0600691", wtag);
	x = mc_aead_new(MC_AEAD_CHACHA20POLY1305, ck);
	ok(x && mc_aead_seal(x, cn, ca, sizeof ca, (const uint8_t *)lad, cct, 114, ctag) == 0 &&
	       memcmp(cct, want, 114) == 0 && memcmp(ctag, wtag, 16) == 0, "RFC 8439 2.8.2: ChaCha20-Poly1305");
	mc_aead_free(x);
	ok(mc_aead_new(9, ck) == NULL, "an unknown AEAD is refused");
}

/* Sealed boxes and x25519 key files. */
static void test_boxes(void)
{
	struct mc_key r, other, back;
	uint8_t msg[32], box[MC_BOX_LEN], out[32];
	char err[256], sec[512], pub[512];
	int sl, pl;

	ok(mc_key_generate_as(MC_KEY_X25519, &r, err, sizeof err) == 0 && r.type == MC_KEY_X25519,
	   "an x25519 key pair is made");
	mc_key_generate_as(MC_KEY_X25519, &other, err, sizeof err);
	mc_random(msg, sizeof msg);
	ok(mc_box_seal(r.pub, "ad", 2, msg, box) == 0, "a box is sealed");
	ok(mc_box_open(&r, "ad", 2, box, out) == 0 && memcmp(out, msg, 32) == 0, "its recipient opens it");
	ok(mc_box_open(&other, "ad", 2, box, out) == -EBADMSG, "another key does not");
	ok(mc_box_open(&r, "ae", 2, box, out) == -EBADMSG, "nor other associated data");
	box[40] ^= 1;
	ok(mc_box_open(&r, "ad", 2, box, out) == -EBADMSG, "nor a changed box");

	strcpy(r.comment, "pc17");
	sl = mc_key_format_secret(&r, sec, sizeof sec);
	pl = mc_key_format_public(&r, pub, sizeof pub);
	ok(sl > 0 && strncmp(sec, "mcast-secret-key-v1 x25519 ", 27) == 0, "secret box key: %.27s...", sec);
	ok(pl > 0 && strncmp(pub, "mcast-public-key-v1 x25519 ", 27) == 0 && strstr(pub, " pc17\n"), "public box key");
	ok(mc_key_parse_secret_as(MC_KEY_X25519, sec, (size_t)sl, &back, err, sizeof err) == 0 &&
	       memcmp(back.seed, r.seed, 32) == 0 && back.type == MC_KEY_X25519, "parses back: %s", err);
	ok(mc_key_parse_public(pub, (size_t)pl, &back, err, sizeof err) == -EINVAL &&
	       strstr(err, "an x25519 key where an ed25519 key is wanted"), "not as a signing key: %s", err);
	ok(mc_key_parse_public_as(MC_KEY_X25519, pub, (size_t)pl, &back, err, sizeof err) == 0 &&
	       memcmp(back.pub, r.pub, 32) == 0, "as a box key");
	sec[40] = sec[40] == 'A' ? 'B' : 'A';
	ok(mc_key_parse_secret_as(MC_KEY_X25519, sec, (size_t)sl, &back, err, sizeof err) == -EINVAL, "a damaged secret: %s", err);
}

/* An encrypted manifest: sealed chunks open only with the key, at their index. */
static void test_manifest_enc(void)
{
	struct mc_manifest m, p;
	struct mc_content_key ck = {0}, wrong = {0}, boxk = {0};
	struct mc_key r;
	uint8_t key[32], chunk[4][100], tags[4 * 16], digests[4 * 16], buf[100];
	char err[256];
	struct mc_aead *a;

	mc_random(key, sizeof key);
	memset(&m, 0, sizeof m);
	strcpy(m.name, "enc");
	m.chunk_size = MC_CHUNK_MIN;
	m.payload_size = 3ull * MC_CHUNK_MIN + 100;
	m.nchunks = 4;
	mc_key_generate_as(MC_KEY_X25519, &r, err, sizeof err);
	boxk.is_box = 1;
	boxk.box = r;
	memcpy(boxk.id, r.id, 8);
	ok(mc_manifest_want_encrypt(&m, key, &r, 1, err, sizeof err) == 0 && m.is_encrypted && m.unlocked,
	   "want_encrypt: %s", err);
	a = mc_manifest_aead(&m);
	for (uint32_t i = 0; i < 4; i++) {
		memset(chunk[i], 'a' + (int)i, 100);
		mc_chunk_seal(&m, a, i, chunk[i], 100, tags + 16 * i);
		mc_digest(chunk[i], 100, digests + 16 * i);
	}
	mc_aead_free(a);
	m.tags = tags;
	ok(mc_manifest_encode(&m, digests, err, sizeof err) == 0, "an encrypted manifest encodes: %s", err);
	ok(mc_manifest_parse(m.raw, m.raw_len, &p, err, sizeof err) == 0 && p.is_encrypted && !p.unlocked &&
	       p.nrecips == 1 && memcmp(p.recips, r.id, 8) == 0, "and parses: %s", err);
	memcpy(ck.key, key, 32);
	mc_content_key_id(key, ck.id);
	mc_random(wrong.key, 32);
	mc_content_key_id(wrong.key, wrong.id);
	ok(mc_manifest_unlock(&p, &wrong, err, sizeof err) == -EACCES && strstr(err, "another key") && !p.unlocked,
	   "a wrong key is refused: %s", err);
	ok(mc_manifest_unlock(&p, &ck, err, sizeof err) == 0 && p.unlocked, "the key opens it");
	a = mc_manifest_aead(&p);
	ok(mc_chunk_open(&p, a, 2, chunk[2], buf, 100) == 0 && buf[0] == 'c' && buf[99] == 'c', "chunk 2 opens");
	ok(mc_chunk_open(&p, a, 1, chunk[2], buf, 100) == -EBADMSG, "chunk 2's bytes at index 1 do not");
	mc_aead_free(a);
	mc_manifest_free(&p);
	ok(mc_manifest_parse(m.raw, m.raw_len, &p, err, sizeof err) == 0 &&
	       mc_manifest_unlock(&p, &boxk, err, sizeof err) == 0 && p.unlocked, "the recipient's box key opens it: %s",
	   err);
	mc_manifest_free(&p);
	m.raw[m.raw_len - 1] ^= 1; /* the last byte of the box */
	ok(mc_manifest_parse(m.raw, m.raw_len, &p, err, sizeof err) == 0 &&
	       mc_manifest_unlock(&p, &boxk, err, sizeof err) == -EACCES && strstr(err, "not to key"), "a changed box: %s", err);
	mc_manifest_free(&p);
	ok(mc_manifest_parse(m.raw, m.raw_len - 1, &p, err, sizeof err) == -EBADMSG, "a manifest cut short is refused: %s", err);
	mc_manifest_free(&m);
}

int main(void)
{
	char cmd[600];

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	umask(022);
	test_vectors();
	test_digests();
	test_key_text();
	test_files();
	test_signatures();
	test_enc_vectors();
	test_boxes();
	test_manifest_enc();
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	return tap_done();
}
