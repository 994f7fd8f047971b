/*
 * The package file format (mcast-package(5)): header, manifest, payload.
 *
 * Errors follow lib's one convention (lib/exitcode.h): every mc_pkg_*
 * function, mc_pwrite_all, mc_manifest_parse, mc_manifest_encode*,
 * mc_manifest_unlock* and mc_chunk_check_init return
 * a negative errno code and never leave meaning in errno: -EBADMSG the
 * package is damaged or truncated (exit 3: resumable, mcast-repair heals
 * it), -EINVAL not an mcast package, -EACCES encrypted and not unlocked,
 * -ENOMEM out of memory, -EPROTO a payload libarchive cannot decode, else
 * the -errno of the failed system call. Those that take err write the
 * reason there, naming the file.
 */
#ifndef MC_PKG_H
#define MC_PKG_H

#include <stddef.h>
#include <stdint.h>

/*
 * Layout, all integers big-endian:
 *   header   64 bytes at offset 0 (magic, version, offsets, lengths, id)
 *   manifest at offset 64, manifest_len bytes
 *   zero padding up to payload_off = round_up(64 + manifest_len, 4096)
 *   payload  payload_len bytes, split into chunks of chunk_size (last shorter)
 * The package id is XXH3-128 of the manifest bytes (canonical, big-endian).
 */
#define MC_PKG_MAGIC "\211MCPKG\r\n" /* 8 bytes, PNG-style: catches text-mode and 7-bit damage */
#define MC_PKG_MAGIC_LEN 8
#define MC_PKG_VERSION 1
#define MC_PKG_VERSION_IMAGE 2 /* a seekable image: one independent frame per span (manifest format 2) */
#define MC_PKG_HDR_SIZE 64
#define MC_PKG_ALIGN 4096
#define MC_ID_LEN 16
#define MC_DIGEST_LEN 16
#define MC_NAME_MAX 255
#define MC_CHUNK_MIN (64u * 1024)
#define MC_CHUNK_MAX (64u * 1024 * 1024)
/* Bound on manifest size a reader accepts (2^24 chunks of 16 bytes + fields). */
#define MC_MANIFEST_MAX (16u * 1024 * 1024 * 16 + 4096)

/*
 * The encryption section of an encrypted manifest (mcast-package(5)):
 * magic, AEAD algorithm (1), 0 (1), recipient count (u16), salt (32), key
 * check value (16), span digest table tag (16), nchunks tags (16 each),
 * then MC_ENC_REC bytes per recipient: key id (8) and sealed box.
 */
#define MC_ENC_MAGIC "MCEN"
#define MC_ENC_SALT_LEN 32
#define MC_ENC_CHECK_LEN 16
#define MC_ENC_HDR (4 + 1 + 1 + 2 + MC_ENC_SALT_LEN + MC_ENC_CHECK_LEN + 16)
#define MC_ENC_REC (8 + 80)  /* MC_KEYID_LEN + MC_BOX_LEN */
#define MC_ENC_RECIPS_MAX 1024

enum mc_comp { MC_COMP_NONE = 0, MC_COMP_GZIP = 1, MC_COMP_ZSTD = 2, MC_COMP_XZ = 3 };
enum mc_kind { MC_KIND_RAW = 0, MC_KIND_TAR = 1, MC_KIND_IMAGE = 2 };

/* Per-chunk flags of a format-2 manifest. */
#define MC_CHUNK_RAW 1u      /* stored as the span's bytes, not a zstd frame */
#define MC_CHUNK_HOLE 2u     /* all zeros: nothing stored */
#define MC_CHUNK_DONTCARE 4u /* (with HOLE) unused by the filesystem: any bytes will do */
#define MC_CHUNK_FLAGS (MC_CHUNK_RAW | MC_CHUNK_HOLE | MC_CHUNK_DONTCARE)
/* Bytes per chunk in a format-2 manifest: stored length, flags, two digests. */
#define MC_IMAGE_PER_CHUNK (4 + 1 + 2 * MC_DIGEST_LEN)

/*
 * Format 2, optional: the volumes of the image (a partition table's
 * partitions, or the one file system of a bare one), recorded by
 * `mcast-pack create --image` when it recognises them, shown by info. In the
 * manifest after the span digests and before any signature trailer (so a
 * signature covers them): magic "MCVL", table (4 bytes: "gpt", "dos" or
 * empty, NUL-padded), count (u16, 1 to MC_VOL_MAX), then MC_VOL_REC bytes
 * per volume: start, size, used, stored (u64 each), file system type (15
 * bytes, NUL-padded), flags (1 byte).
 */
#define MC_VOL_MAX 128
#define MC_VOL_FSTYPE 16
#define MC_VOL_REC (4 * 8 + (MC_VOL_FSTYPE - 1) + 1)
#define MC_VOL_HDR (4 + 4 + 2)
#define MC_VOL_USED_ONLY 1u /* its unused blocks were made don't-care holes or zeros */
struct mc_vol {
	uint64_t start, size;       /* in the image, bytes */
	uint64_t used;              /* bytes its file system uses (size when not read) */
	uint64_t stored;            /* stored bytes of the chunks whose span starts in it */
	char fstype[MC_VOL_FSTYPE]; /* "ext4", "ntfs", "vfat", ... or "" when not known */
	uint8_t flags;              /* MC_VOL_* */
};

/*
 * A parsed manifest. Format 1: the payload is one stream cut into chunks of
 * chunk_size. Format 2 (a seekable image, kind MC_KIND_IMAGE): the image of
 * image_size bytes is cut into spans of chunk_size (the last shorter); chunk
 * i is span i, stored as stored_len(i) bytes (one zstd frame, the raw span,
 * or nothing for a hole) and the payload is those stored bytes in order.
 * Ask for offsets and lengths through the accessors below, never
 * i * chunk_size. The struct owns raw and chunk_offs: move it, never copy it
 * (mc_manifest_free frees both).
 */
struct mc_manifest {
	char name[MC_NAME_MAX + 1];
	char version[MC_NAME_MAX + 1];
	uint64_t ctime;          /* seconds since the epoch */
	uint8_t compression;     /* enum mc_comp */
	uint8_t kind;            /* enum mc_kind */
	uint32_t chunk_size;
	uint64_t payload_size;
	uint32_t nchunks;        /* ceil(payload_size / chunk_size) */
	uint8_t payload_digest[MC_DIGEST_LEN];
	const uint8_t *digests;  /* nchunks * 16 bytes, points into raw */
	uint8_t *raw;            /* the encoded manifest, owned */
	uint32_t raw_len;
	uint8_t id[MC_ID_LEN];   /* XXH3-128 of raw */
	uint8_t format;          /* 1 or 2 (MC_PKG_VERSION, MC_PKG_VERSION_IMAGE) */
	uint64_t image_size;     /* format 2: bytes of the image; 0 for format 1 */
	/* Format 2 only (NULL for format 1): */
	const uint8_t *stored_lens;  /* nchunks big-endian u32, into raw */
	const uint8_t *chunk_flags;  /* nchunks bytes of MC_CHUNK_*, into raw */
	const uint8_t *span_digests; /* nchunks * 16: XXH3-128 of each decoded span, into raw */
	uint64_t *chunk_offs;        /* nchunks + 1 payload offsets (prefix sums of stored_lens), owned */
	/* Format 2, optional volume records (0 and NULL when absent); set nvols before mc_manifest_payload_off. */
	uint16_t nvols;
	const uint8_t *vols;         /* nvols * MC_VOL_REC bytes, into raw: read with mc_manifest_vol */
	char vol_table[5];           /* "gpt", "dos" or "" */
	/*
	 * Signed packages (either format): the manifest ends in a signature
	 * trailer (crypto.h) and its chunk digests are digest_alg (SHA-256
	 * over salt || chunk, truncated) instead of XXH3. Check chunks with
	 * mc_chunk_digest, which follows digest_alg; span digests stay XXH3.
	 */
	uint8_t digest_alg;          /* enum mc_hash_alg: MC_HASH_XXH3 (0) unless signed */
	uint8_t is_signed;
	uint8_t salt[16];            /* MC_HASH_SALT_LEN */
	uint8_t signer[32];          /* Ed25519 public key (MC_KEY_PUB_LEN) */
	/*
	 * Encrypted packages (either format): the manifest holds an encryption
	 * section (MC_ENC_MAGIC) before any signature trailer; every chunk's
	 * stored bytes are AES-256-GCM ciphertext of what they would be
	 * (digests stay over the stored bytes, so the package moves and
	 * verifies without the key), and a format-2 manifest's span digests
	 * are encrypted too. mc_manifest_unlock with the key makes the chunks
	 * readable (mc_chunk_open) and the span digests available.
	 */
	uint8_t is_encrypted;
	uint8_t aead_alg;            /* enum mc_aead_alg */
	uint16_t nrecips;            /* sealed boxes of the content key (--encrypt-to) */
	uint8_t enc_salt[MC_ENC_SALT_LEN];
	uint8_t enc_check[MC_ENC_CHECK_LEN];
	uint8_t span_tag[16];        /* format 2: tag of the encrypted span digest table */
	const uint8_t *tags;         /* nchunks * 16 AEAD tags, into raw (creating: the creator's table, read by encode) */
	const uint8_t *recips;       /* nrecips * MC_ENC_REC, into raw (creating: enc_boxes) */
	uint8_t *enc_boxes;          /* creating: the recipient records, owned */
	uint8_t unlocked;            /* subkey is known: chunks can be sealed or opened */
	uint8_t subkey[32];          /* the package's AEAD key, derived from the content key and enc_salt */
	uint8_t *span_plain;         /* format 2, unlocked: the decrypted span digests, owned */
};

struct mc_key;
struct mc_content_key;
struct mc_aead;
/*
 * Makes the next encode of m an encrypted one (before the chunks are
 * made): a random salt, the package key derived from the content key (key,
 * or a random one when NULL) and the salt, and one sealed box of the content
 * key per recipient in to[0..nto) (X25519 public keys). The creator then
 * seals every chunk's stored bytes with mc_chunk_seal and points m->tags
 * at the nchunks tags before encoding. Returns 0, or with a reason in err
 * -EINVAL (too many recipients, one not an X25519 key), -EIO (no random
 * bytes) or -ENOMEM.
 */
int mc_manifest_want_encrypt(struct mc_manifest *m, const uint8_t *key, const struct mc_key *to, unsigned nto,
			     char *err, size_t errlen);
/*
 * Finds the package key of an encrypted manifest with k (a 32-byte content
 * key, checked against the manifest's key check value; or an X25519 key
 * pair that opens one of its boxes) and decrypts format 2's span digests.
 * Returns 0, or with a reason in err -EACCES naming the key id when k does
 * not open it, -EBADMSG (span digests tampered) or -ENOMEM.
 */
int mc_manifest_unlock(struct mc_manifest *m, const struct mc_content_key *k, char *err, size_t errlen);
/* The same, and the content key into content_key (32 bytes) when it is not NULL: what rewrap seals again. */
int mc_manifest_unlock_key(struct mc_manifest *m, const struct mc_content_key *k, uint8_t *content_key, char *err,
			   size_t errlen);
/*
 * Seals the content key key (32 bytes) for each of to[0..nto) (X25519
 * public keys) as m's recipients, replacing any: the next encode writes
 * them. Returns 0, or -EINVAL, -EIO or -ENOMEM as mc_manifest_want_encrypt
 * with a reason.
 */
int mc_manifest_seal_to(struct mc_manifest *m, const uint8_t *key, const struct mc_key *to, unsigned nto,
			char *err, size_t errlen);
/* An AEAD context for m's package key (m being created, or unlocked): one per thread; NULL on failure. */
struct mc_aead *mc_manifest_aead(const struct mc_manifest *m);
/* Encrypts chunk i's n stored bytes in place; its tag to tag. Returns 0 or mc_aead_seal's -EIO (-EINVAL: too long). */
int mc_chunk_seal(const struct mc_manifest *m, struct mc_aead *a, uint32_t i, uint8_t *p, size_t n,
		  uint8_t tag[16]);
/* Decrypts chunk i's n stored bytes from in to out (may be the same). Returns 0, or -EBADMSG when they do not open. */
int mc_chunk_open(const struct mc_manifest *m, struct mc_aead *a, uint32_t i, const uint8_t *in, uint8_t *out,
		  size_t n);

/* Bytes [off, off+len) of chunk `chunk`, offsets from the chunk's start. */
struct mc_span {
	uint32_t chunk, off, len;
};

struct mc_pkg_layout {
	unsigned format;         /* the header's format version: 1 or 2 */
	uint64_t manifest_off, manifest_len;
	uint64_t payload_off, payload_len;
	uint64_t file_size;
};

/*
 * The digest of chunk bytes as m's manifest makes them (XXH3-128, or for a
 * signed package SHA-256 of its salt and the bytes, cut to 16 bytes): the one
 * function every per-chunk check calls.
 */
void mc_chunk_digest(const struct mc_manifest *m, const void *p, size_t n, uint8_t out[MC_DIGEST_LEN]);

struct mc_key;
struct mc_trust;
/*
 * Makes the next mc_manifest_encode or mc_manifest_encode_image of m a signed
 * one by k: SHA-256 chunk digests with a fresh salt (or, when salt_seed is
 * not NULL, a salt derived from k's secret and those bytes, for a
 * reproducible package), and room for the signature. Call before the chunk
 * digests are computed (mc_chunk_digest needs the salt) and before
 * mc_manifest_payload_off. Returns 0, or with a reason in err -EINVAL (k
 * holds no secret), -EIO (no random bytes for the salt) or -ENOMEM.
 */
int mc_manifest_want_sign(struct mc_manifest *m, const struct mc_key *k, const void *salt_seed, size_t seedlen,
			  char *err, size_t errlen);
/*
 * Signs an encoded manifest with k (after encode), updating m->id. Returns
 * 0, or with a reason -EINVAL (not encoded for signing by k) or -ENOMEM.
 */
int mc_manifest_sign(struct mc_manifest *m, const struct mc_key *k, char *err, size_t errlen);
/*
 * Checks m's signature against the trust set: 0 (MC_SIG_TRUSTED) or the
 * enum mc_sig_result of the refusal (a negative errno code; -ENOMEM too)
 * with a reason naming the signer's key id.
 */
int mc_manifest_trust(const struct mc_manifest *m, const struct mc_trust *t, char *err, size_t errlen);

/* XXH3-128 of n bytes in canonical (big-endian) form. */
void mc_digest(const void *p, size_t n, uint8_t out[MC_DIGEST_LEN]);
/* Canonical digest of a streaming XXH3_state_t (from xxhash.h) fed with XXH3_128bits_update. */
void mc_digest_final(void *xxh3_state, uint8_t out[MC_DIGEST_LEN]);

/*
 * Copies the fields an encode takes from src to dst (a zeroed manifest): name,
 * version, ctime, compression, kind, sizes, chunk count, format, payload
 * digest, and the signing ones (digest algorithm, salt, signer). Nothing
 * owned, no tables: what re-encoding a parsed manifest starts from.
 */
void mc_manifest_copy_head(struct mc_manifest *dst, const struct mc_manifest *src);

/*
 * Parses and validates an encoded manifest (from a file or the wire): every
 * count and length must add up exactly to len, nchunks must match
 * payload_size and chunk_size. Copies buf. Returns 0, or with a reason in
 * err (no file name: the caller adds it) -EBADMSG, or -ENOMEM.
 */
int mc_manifest_parse(const uint8_t *buf, size_t len, struct mc_manifest *m, char *err, size_t errlen);
void mc_manifest_free(struct mc_manifest *m);

/*
 * Encodes m (name, version, ctime, compression, kind, chunk_size,
 * payload_size, nchunks, payload_digest) with the nchunks*16 bytes of
 * digests into m->raw, pointing m->digests into it and setting m->id and
 * format 1. Returns 0, or with a reason in err -EINVAL (too long a name, too
 * many chunks) or -ENOMEM.
 */
int mc_manifest_encode(struct mc_manifest *m, const uint8_t *digests, char *err, size_t errlen);

/*
 * Encodes a format-2 manifest: m gives name, version, ctime, compression
 * (MC_COMP_ZSTD, or MC_COMP_NONE when every chunk is raw or a hole),
 * chunk_size, image_size and payload_digest; kind, format, nchunks and
 * payload_size are set here. Per chunk (nchunks = ceil(image_size /
 * chunk_size)): stored_len[i], flags[i], digests (16 each, of the stored
 * bytes) and span_digests (16 each, of the decoded span). The result is
 * parsed back with every check mc_manifest_parse makes, so what encodes
 * parses. Returns 0, or with a reason in err -EINVAL (what cannot be
 * encoded), -ENOMEM, or mc_manifest_parse's code.
 */
int mc_manifest_encode_image(struct mc_manifest *m, const uint32_t *stored_len, const uint8_t *flags,
			     const uint8_t *digests, const uint8_t *span_digests, char *err, size_t errlen);

/*
 * The same, with volume records (nvols of them, 0 for none; table "gpt",
 * "dos" or ""): encode_image is this with none.
 */
int mc_manifest_encode_image_vols(struct mc_manifest *m, const uint32_t *stored_len, const uint8_t *flags,
				  const uint8_t *digests, const uint8_t *span_digests, const char *table,
				  const struct mc_vol *vols, unsigned nvols, char *err, size_t errlen);
/* Volume record i of m into v: 0, or -1 when i >= m->nvols. */
int mc_manifest_vol(const struct mc_manifest *m, unsigned i, struct mc_vol *v);

/* ceil(payload / chunk) without overflow (0 when chunk is 0): the one chunk count everyone uses. */
static inline uint64_t mc_chunk_count(uint64_t payload, uint64_t chunk)
{
	return chunk ? payload / chunk + (payload % chunk != 0) : 0;
}

/*
 * Offset and length of chunk i's bytes inside the payload (format 2: its
 * stored bytes; length 0 for a hole and for i >= nchunks). The only way to
 * find a chunk in the payload: nothing else computes i * chunk_size.
 */
uint64_t mc_manifest_chunk_off(const struct mc_manifest *m, uint32_t i);
uint32_t mc_manifest_chunk_len(const struct mc_manifest *m, uint32_t i);
/* The chunk holding payload byte off (never a hole), or nchunks when off >= payload_size. */
uint32_t mc_manifest_chunk_of(const struct mc_manifest *m, uint64_t off);
/*
 * Where chunk i lands in the image: offset i * chunk_size and the span's
 * decoded length (format 1: the same as the chunk's, the payload being the
 * image of a raw package).
 */
uint64_t mc_manifest_span_off(const struct mc_manifest *m, uint32_t i);
uint32_t mc_manifest_span_len(const struct mc_manifest *m, uint32_t i);
/* MC_CHUNK_* of chunk i (0 for format 1 and for i >= nchunks). */
unsigned mc_manifest_chunk_flags(const struct mc_manifest *m, uint32_t i);
/* XXH3-128 of chunk i's decoded span (format 2), NULL for format 1 or i >= nchunks. */
const uint8_t *mc_manifest_span_digest(const struct mc_manifest *m, uint32_t i);
/* Number of hole chunks and the image bytes they cover (0 for format 1). */
uint32_t mc_manifest_holes(const struct mc_manifest *m, uint64_t *bytes);

/*
 * payload_off of the manifest m's name, version, payload_size and chunk_size
 * (format 2: image_size and chunk_size) would encode to (before its digests
 * are known), or 0 when they could not be encoded.
 */
uint64_t mc_manifest_payload_off(const struct mc_manifest *m);

/* Where everything lives in the file for this manifest. */
void mc_manifest_layout(const struct mc_manifest *m, struct mc_pkg_layout *l);

/* Encodes the 64-byte header for m. */
void mc_pkg_header_encode(const struct mc_manifest *m, uint8_t out[MC_PKG_HDR_SIZE]);

/*
 * Decodes a header and checks it against the file size (sizes must add up,
 * nothing may point past the file). Returns 0, or with a reason in err
 * -EINVAL (not a package, or an unknown format version) or -EBADMSG.
 */
int mc_pkg_header_decode(const uint8_t in[MC_PKG_HDR_SIZE], uint64_t file_size,
			 struct mc_pkg_layout *l, uint8_t id[MC_ID_LEN], char *err, size_t errlen);

/* pwrite of all n bytes at off, again after a short write or EINTR. Returns 0 or -errno. */
int mc_pwrite_all(int fd, const void *buf, size_t n, uint64_t off);

/* Writes header, manifest and padding at the start of fd (pwrite). Returns 0, -ENOMEM or -errno. */
int mc_pkg_write_head(int fd, const struct mc_manifest *m);

/* Names of compressions and kinds ("zstd", "tar", ...). */
const char *mc_comp_name(unsigned c);
const char *mc_kind_name(unsigned k);
/* enum mc_comp for "none", "gzip", "zstd", "xz"; -1 for anything else. */
int mc_comp_parse(const char *s);
/* Package id as 32 hex digits. */
char *mc_id_hex(const uint8_t id[MC_ID_LEN], char out[2 * MC_ID_LEN + 1]);
/* "NAME VERSION (id HEX)" of m into buf (len bytes), as messages name a package; returns buf. */
char *mc_manifest_describe(const struct mc_manifest *m, char *buf, size_t len);
/* Parses a full id (32 hex) or a prefix of at least 8 hex digits; returns its length in hex digits or -1. */
int mc_id_parse(const char *s, uint8_t id[MC_ID_LEN]);
/* 1 when id starts with the first nhex hex digits of want. */
int mc_id_match(const uint8_t id[MC_ID_LEN], const uint8_t want[MC_ID_LEN], int nhex);

/* An open package (read-only). */
struct mc_pkg {
	int fd;
	char *path;
	struct mc_manifest m;
	struct mc_pkg_layout l;
	uint64_t file_size;      /* actual size on disk (less than l.file_size only with MC_PKG_OPEN_PARTIAL) */
	/*
	 * Set by the caller after opening, or NULL: progress(progress_arg, bytes)
	 * with the stored payload bytes read and checked so far, once per chunk,
	 * from the calling thread, by mc_pkg_list, mc_pkg_extract and
	 * mc_pkg_extract_fd (out of m.payload_size; for a live line).
	 */
	void (*progress)(void *arg, uint64_t done);
	void *progress_arg;
};

/*
 * Opens and validates header and manifest (not the chunks). Returns 0, or
 * with "path: reason" in err: -EINVAL when the file is not an mcast package
 * (or of an unknown format version), -EBADMSG when it is one but damaged or
 * truncated (header or manifest do not add up: resumable, exit 3), -ENOMEM,
 * else the -errno of the failed system call.
 */
int mc_pkg_open(const char *path, struct mc_pkg *p, char *err, size_t errlen);
/* MC_PKG_OPEN_PARTIAL: accept a file shorter than the header says (verify names the missing chunks). */
#define MC_PKG_OPEN_PARTIAL 1u
int mc_pkg_open_flags(const char *path, unsigned flags, struct mc_pkg *p, char *err, size_t errlen);
void mc_pkg_close(struct mc_pkg *p);

/* The default package name: PKG's base name without .mcpkg; *len bytes from the return value. */
const char *mc_pkg_default_name(const char *output, size_t *len);

/*
 * Checks chunks against the manifest while the payload is read in order (a
 * sender's first pass, block by block): bytes fed at the offset where the
 * last ones ended continue the check; any other offset is ignored.
 * An unsigned package's chunks are checked one by one (XXH3, cheap). A signed
 * package's chunk digests are SHA-256, which costs the sender as much CPU as
 * sending: its payload is checked whole instead, against the XXH3 payload
 * digest the signature covers too, and only when that fails is each chunk
 * hashed to name the bad one (the caller's part: *bad is MC_CHUNK_CHECK_WHOLE).
 * No safety rests on the sender's check: every receiver checks each chunk
 * against its signed digest before it counts; this one names a damaged
 * package early.
 */
#define MC_CHUNK_CHECK_WHOLE UINT32_MAX
struct mc_chunk_check {
	const struct mc_manifest *m;
	void *xxh;          /* struct mc_hash (crypto.h) of the chunk under way (unsigned packages) */
	void *whole;        /* XXH3_state_t of the whole payload (signed packages) */
	uint64_t end;       /* payload bytes in all */
	uint32_t chunk;     /* the chunk under way */
	uint64_t next;      /* payload offset expected next */
	uint64_t fed;       /* bytes of the chunk fed so far */
};
/* Returns 0 or -ENOMEM. */
int mc_chunk_check_init(struct mc_chunk_check *c, const struct mc_manifest *m);
/*
 * Returns 0, or -1 when a chunk ended that does not match its digest (*bad =
 * its index), or when the whole payload of a signed package was fed and does
 * not match (*bad = MC_CHUNK_CHECK_WHOLE).
 */
int mc_chunk_check_feed(struct mc_chunk_check *c, uint64_t off, const uint8_t *p, size_t n, uint32_t *bad);
void mc_chunk_check_free(struct mc_chunk_check *c);

/*
 * Reads chunk i into buf (at least chunk_size bytes) and checks its digest.
 * Returns 1 intact, 0 damaged (or short), or the read's -errno.
 */
int mc_pkg_check_chunk(const struct mc_pkg *p, uint32_t i, uint8_t *buf);

/*
 * A page-aligned buffer of at least n bytes (free with free()), or NULL.
 * Reads into a buffer malloc() placed 16 bytes into a page run several
 * times slower: the kernel's copy from the page cache wants aligned targets.
 */
void *mc_pkg_buf(size_t n);

/* Options of mc_pkg_create (mcast-pack create). */
struct mc_pkg_create_opts {
	const char *output;
	const char *name;      /* NULL: basename of output without .mcpkg */
	const char *version;   /* NULL: "" */
	unsigned compression;  /* enum mc_comp */
	int level;             /* -1: library default */
	unsigned threads;      /* compressor threads, 0 or 1: one */
	uint32_t chunk_size;
	int64_t mtime;         /* -1: none; else clamp entry mtimes and set ctime (SOURCE_DATE_EPOCH / --mtime) */
	const char *const *paths; /* "-" alone: raw image from stdin */
	unsigned npaths;
	int image;             /* a seekable image (format 2) of paths[0]: a block device, a regular file or "-" */
	/*
	 * With image: leave out what the file systems do not use (lib/fsmap.h,
	 * lib/disk.h): spans with no used block become don't-care holes, free
	 * blocks inside stored spans are stored as zeros, and the volumes are
	 * recorded in the manifest. force takes a file system that is mounted
	 * read-write or not clean all the same.
	 */
	int used_only, force;
	/*
	 * Called now and then from the calling thread with the input bytes read
	 * (an image's; a tree's files' data, a hard-linked file's once; standard
	 * input's) out of total (0: not known, as for a pipe). May be NULL.
	 */
	void (*progress)(void *arg, uint64_t done, uint64_t total);
	void *progress_arg;
	const struct mc_key *sign; /* NULL, or sign the manifest with this secret key (crypto.h) */
	/*
	 * Encrypt the stored bytes (mcast-package(5)): with encrypt_key (32
	 * bytes) as content key, or a random one, sealed for each of the
	 * nencrypt_to X25519 public keys of encrypt_to.
	 */
	int encrypt;
	const uint8_t *encrypt_key;
	const struct mc_key *encrypt_to;
	unsigned nencrypt_to;
};

/*
 * Builds a package (with image set, a format-2 one: lib/image.h): writes a
 * temporary file beside output and renames it into place only when complete. Never leaves a partial file under the final
 * name. Returns 0 and fills id, or a negative errno code (lib/exitcode.h)
 * with "culprit: reason" in err: -EINVAL (no PATH, a bad name, version,
 * chunk size, compression option or SOURCE, the same name twice), -ENOMEM,
 * -EIO, mc_image_create's codes, or the -errno of the call that failed on
 * an input or the output (-ENOENT, -EACCES, -ENOSPC ...).
 */
int mc_pkg_create(const struct mc_pkg_create_opts *o, uint8_t id[MC_ID_LEN], char *err, size_t errlen);

/*
 * rewrap: writes output, a copy of the encrypted package p (unlocked with k)
 * whose content key is sealed for to[0..nto) instead of its recipients
 * (none: only the 32-byte key opens it; when k is one, it still does). The
 * payload is copied as it is, never re-encrypted. A signed p must be signed
 * again (sign, or it is refused); an unsigned one cannot be (its chunk
 * digests are XXH3). Written beside output and renamed into place. Returns
 * 0 and the new id, or with a reason in err -EINVAL (not encrypted, a
 * signing key missing or not wanted), -EACCES (k does not open it),
 * -EBADMSG (its manifest is damaged), -ENOMEM, or the -errno of the copy.
 */
int mc_pkg_rewrap(const struct mc_pkg *p, const struct mc_content_key *k, const struct mc_key *to, unsigned nto,
		  const struct mc_key *sign, const char *output, uint8_t id[MC_ID_LEN], char *err, size_t errlen);

/* Reading side: verify, list and extract (pkgread.c). They need libarchive's archive_entry. */
struct archive_entry;

/*
 * Reads every chunk, checks its digest and the whole-payload digest.
 * bad(arg, i) is called for each damaged or missing chunk, in order,
 * progress(arg, bytes done) now and then (either may be NULL); both from
 * the calling thread. buf is not used and may be NULL: verify reads through
 * 16 MiB of its own, whatever the chunk size, with a reader thread when a
 * second CPU is idle (mc_pkg_verify_threads). Returns the number of bad chunks (0: intact),
 * or with "path: reason" in err -ENOMEM or a read's -errno. *payload_ok is 0 when
 * the whole-payload digest does not match (then the package is damaged even
 * with no bad chunk).
 */
struct mc_pkg_verify_cb {
	void (*bad)(void *arg, uint32_t chunk);
	void (*progress)(void *arg, uint64_t done);
	void *arg;
};
long mc_pkg_verify(const struct mc_pkg *p, const struct mc_pkg_verify_cb *cb, uint8_t *buf,
		   int *payload_ok, char *err, size_t errlen);
/* Reader thread in mc_pkg_verify: -1 (default) when a second CPU is idle at the start, 0 never, 1 always (tests). */
extern int mc_pkg_verify_threads;

/*
 * The content check of verify --decrypt: every chunk read, checked, opened
 * (an encrypted package must be unlocked) and, for an image, decoded and
 * its span checked. bad(arg, i) for each chunk that fails. Returns the
 * number of bad chunks, or with a reason in err -EACCES (no key), -ENOMEM or
 * a read's -errno.
 */
long mc_pkg_verify_content(const struct mc_pkg *p, void (*bad)(void *arg, uint32_t chunk), void *arg, char *err,
			   size_t errlen);

/* File byte range [*first, *last] of chunk i (what verify reports). */
void mc_pkg_chunk_range(const struct mc_pkg *p, uint32_t i, uint64_t *first, uint64_t *last);

/*
 * Name under which a raw image is listed and extracted by extract -C: the
 * package name when it is one safe path component, else "image".
 */
const char *mc_pkg_raw_name(const struct mc_manifest *m);

/*
 * The read functions stream the payload chunk by chunk, checking every
 * chunk's digest before libarchive sees it, and the whole-payload digest at
 * the end. They return 0, or with "culprit: reason" in err -EBADMSG when the
 * package is damaged (a chunk or the payload digest does not match: exit
 * 3), -EACCES when it is encrypted and not unlocked, -ENOMEM, -EPROTO when
 * libarchive cannot decode the payload, else the -errno of the failed call
 * (reading the package, or writing the output).
 */

/* Calls fn for each entry of the payload (one synthetic entry for a raw image). */
int mc_pkg_list(const struct mc_pkg *p, void (*fn)(void *arg, struct archive_entry *e), void *arg,
		char *err, size_t errlen);

/* Writes the decompressed payload (the raw image, or the tar stream) to fd. */
int mc_pkg_extract_fd(const struct mc_pkg *p, int fd, char *err, size_t errlen);

/*
 * What mc_pkg_extract keeps of a tar package. Without MC_EXTRACT_PRIVILEGED
 * (a package nobody vouched for: no trusted signature, no user's say-so),
 * what would give its author power over the machine is left out, where tar
 * would make it as root: character and block device nodes are skipped (a
 * mode-666 twin of /dev/mem inside DIR is the whole machine's memory), and
 * setuid/setgid bits and file capabilities (security.capability) are taken
 * off. FIFOs, sticky bits, owners, ACLs and other attributes are kept.
 */
#define MC_EXTRACT_PRIVILEGED 1u

/* What mc_pkg_extract did besides extracting: entries by kind (its note callback's what). */
enum { MC_EXTRACT_REFUSED, MC_EXTRACT_SKIPPED, MC_EXTRACT_STRIPPED };

struct mc_extract_stats {
	unsigned refused;  /* refused (absolute, "..", through a symlink) or not creatable: skipped */
	unsigned skipped;  /* device nodes skipped (without MC_EXTRACT_PRIVILEGED) */
	unsigned stripped; /* entries made without their setuid/setgid bits or capabilities (likewise) */
};

/*
 * Extracts into dir (created when missing) with libarchive's secure flags:
 * no absolute paths, no "..", no writing through symlinks; owners only when
 * run as root; device nodes and setuid only with MC_EXTRACT_PRIVILEGED (see
 * above). Each entry refused, skipped or stripped is reported through
 * note(arg, what, path, reason) (any may be NULL) and counted in *st;
 * extraction goes on with the next one. A disk that fails as a whole
 * (read-only, full, over quota, I/O error) ends it at the first entry it
 * fails: its -errno, err naming that entry's path and the reason.
 * Changes the working directory while it runs and restores it.
 */
int mc_pkg_extract(const struct mc_pkg *p, const char *dir, unsigned flags,
		   void (*note)(void *arg, int what, const char *path, const char *why), void *arg,
		   struct mc_extract_stats *st, char *err, size_t errlen);

#endif
