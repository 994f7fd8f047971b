/* mcast-pack: build, describe, list, verify and extract mcast image packages. */
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "crypto.h"
#include "defaults.h"
#include "exitcode.h"
#include "fe.h"
#include "log.h"
#include "meter.h"
#include "opt.h"
#include "pkg.h"
#include "state.h"
#include "target.h"
#include "tstate.h"

enum { OPT_CHUNK_SIZE = MC_FE_OPT_OWN, OPT_MTIME, OPT_SESSION, OPT_SIGN, OPT_TRUST,
       OPT_IMAGE, OPT_TO, OPT_STATE, OPT_ZEROED, OPT_USED_ONLY, OPT_FORCE, OPT_PRIVILEGED, OPT_ENCRYPT, OPT_ENCRYPT_TO,
       OPT_DECRYPT, OPT_BOX };

static const char usage_text[] =
	"usage: mcast-pack create [-qv] [--json] -o PKG [-n NAME] [-V VERSION] [-z zstd|gzip|xz|none]\n"
	"                         [-l LEVEL] [-j THREADS] [--chunk-size SIZE] [--mtime SECONDS]\n"
	"                         [--sign NAME.key] [--encrypt KEY] [--encrypt-to NAME.pub]... PATH ...\n"
	"       mcast-pack create [-qv] [--json] --image -o PKG [-n NAME] [-V VERSION] [-z zstd|none] [-l LEVEL]\n"
	"                         [-j THREADS] [--chunk-size SIZE] [--mtime SECONDS] [--sign NAME.key]\n"
	"                         [--encrypt KEY] [--encrypt-to NAME.pub]... [--used-only [--force]] SOURCE\n"
	"       mcast-pack info [-qv] [--json] PKG\n"
	"       mcast-pack list [-qv] [--json] [--decrypt KEY] PKG\n"
	"       mcast-pack verify [-qv] [--json] [--trust KEY.pub|DIR]... [--decrypt KEY] [--to TARGET] PKG\n"
	"       mcast-pack extract [-qv] [--json] [--trust KEY.pub|DIR]... [--decrypt KEY] [--privileged] [-C DIR] PKG\n"
	"       mcast-pack extract [-qv] [--trust KEY.pub|DIR]... [--decrypt KEY] -O PKG\n"
	"       mcast-pack extract [-qv] [--json] [--trust KEY.pub|DIR]... [--decrypt KEY] --to TARGET [--state FILE] [--zeroed] PKG\n"
	"       mcast-pack rewrap [-qv] [--json] --decrypt KEY [--encrypt-to NAME.pub]... [--sign NAME.key] -o OUT PKG\n"
	"       mcast-pack keygen [-qv] [--json] [--session | --box] -o NAME\n"
	"       mcast-pack -h | --help | --version\n";

#define STR_(x) #x
#define STR(x) STR_(x)

static const struct mc_fe_prog prog = {
	.usage = usage_text,
	.help = "\n"
	      "  create   build PKG from files, directory trees (stored as their contents) or - (raw image on stdin);\n"
	      "           with --image, a seekable image (format 2) of SOURCE: a block device, a regular file or -\n"
	      "  info     describe PKG            list     list its entries\n"
	      "  verify   check every chunk (exit 3 when damaged, naming the bad chunks);\n"
	      "           with --to, read TARGET back and check every span of the image against PKG\n"
	      "  extract  extract into DIR (default .) refusing unsafe paths, or -O the payload to stdout;\n"
	      "           with --to, write an image package onto TARGET (a block device or regular file) in place\n"
	      "  rewrap   write OUT: PKG with its content key sealed for the --encrypt-to keys instead\n"
	      "           (a machine added or revoked), the payload copied, not re-encrypted\n"
	      "  keygen   write a signing key pair NAME.key (secret, mode 0600) and NAME.pub;\n"
	      "           with --session, a 32-byte session (or --encrypt) key file NAME;\n"
	      "           with --box, an encryption key pair (x25519) for --encrypt-to\n"
	      "\n"
	      "  -o, --output PKG  output package        -n NAME      package name (default: PKG without .mcpkg)\n"
	      "  -V VERSION      package version         -z COMP      compression (default zstd)\n"
	      "  -l LEVEL        compression level       -j THREADS   compressor threads (zstd, xz)\n"
	      "  --chunk-size S  verification chunk, an image's span (default 1M, 64K..64M, multiple of 4K)\n"
	      "  --image         pack SOURCE as a seekable image: zstd per span, zero spans as holes\n"
	      "  --used-only     (--image) leave out the blocks the file systems do not use (ext2/3/4, NTFS,\n"
	      "                  FAT, exFAT), on a bare file system or each partition of a GPT or MBR disk\n"
	      "  --force         (--used-only) take a file system mounted read-write or not clean all the same\n"
	      "  --to TARGET     the block device or file an image is written onto (extract) or checked on (verify)\n"
	      "  --state FILE    (extract --to) keep what is on TARGET in FILE: a run stopped (signal,\n"
	      "                  damaged chunk) resumes with the same command; FILE goes once complete\n"
	      "  --zeroed        TARGET already reads as zeros: holes are not written (extract --to)\n"
	      "  --mtime SECONDS clamp times for a reproducible package (default: $SOURCE_DATE_EPOCH)\n"
	      "  --sign KEY      sign the package with secret key KEY (SHA-256 chunk digests)\n"
	      "  --trust KEY|DIR accept only packages signed by public key KEY (or any DIR/*.pub); repeatable\n"
	      "  --privileged    (extract -C) make device nodes and keep setuid/setgid bits and capabilities\n"
	      "                  of a package no --trust key signed, as tar does (a trusted one keeps them)\n"
	      "  --encrypt KEY   encrypt every chunk (AES-256-GCM) with the 32-byte key file KEY\n"
	      "  --encrypt-to P  encrypt, and seal the content key for box public key P; repeatable\n"
	      "  --decrypt KEY   the key of an encrypted package: a 32-byte key file or a box secret key\n"
	      "  -C DIR          extract into DIR        -O           payload to standard output\n"
	      "  -q, --quiet     errors, warnings        --json       JSON lines on stdout\n"
	      "  -v, --verbose   more detail             --syslog     talk to syslog, not stderr\n"
	      "  -h, --help      this help               --version    program version\n"
	      "  MCAST_LOG_TIME=1: each line on standard error starts with the time (ISO 8601)\n"
	      "\nSee mcast-pack(1) and mcast-package(5).\n",
	.version = " (package formats " STR(MC_PKG_VERSION) " and " STR(MC_PKG_VERSION_IMAGE) ")",
	.exit3 = "damaged", /* a package that is not whole: verify says so, repair heals it */
};

/* "mcast-pack: message" and the usage on stderr, exit 2; bad_value: "mcast-pack: OPT 'VALUE': reason". */
/* The short options of every command, in the order of the option table and the switch. */
#define SHORTOPTS "C:OV:hj:l:n:o:qvz:"
#define usage_error(...) mc_fe_usage_error(usage_text, __VA_ARGS__)
#define bad_value(opt, value, ...) mc_fe_bad_value(usage_text, opt, value, __VA_ARGS__)

/* The exit status for lib's negative code e (lib/exitcode.h): damaged is 3, anything else 1. */
static int exit_for(int e)
{
	return e == -EBADMSG ? MC_EXIT_INCOMPLETE : MC_EXIT_RUNTIME;
}

struct args {
	const char *cmd;
	const char *output, *name, *version, *dir;
	unsigned compression;
	int level, to_stdout;
	unsigned threads;
	uint32_t chunk_size;
	int64_t mtime;
	struct mc_fe_common fe; /* -q, -v, --json */
	const char *level_arg, *mtime_arg; /* -l, --mtime: checked once -z and the command are known */
	int session;            /* keygen --session */
	int image;              /* create --image */
	int used_only, force;   /* create --image --used-only [--force] */
	const char *to;         /* extract/verify --to TARGET */
	int zeroed;             /* extract --to --zeroed */
	const char *state;      /* extract --to --state FILE */
	int privileged;         /* extract --privileged */
	const char *sign;       /* create --sign NAME.key */
	const char **trust;     /* --trust KEY.pub|DIR, as given */
	unsigned ntrust;
	const char *encrypt;    /* create --encrypt KEY */
	const char **encrypt_to; /* create --encrypt-to NAME.pub, repeatable */
	unsigned nencrypt_to;
	const char *decrypt;    /* --decrypt KEY */
	int box;                /* keygen --box */
};

/* The key of --decrypt, loaded once the command line is checked. */
static struct mc_content_key dkey;
static const char *dkey_path;

/* The public keys of --trust, loaded once the command line is checked (empty: no trust check). */
static struct mc_trust trust;

/* A name or version as shown to a person: control characters a hostile package may carry become '?'. */
static const char *printable(const char *s)
{
	static char buf[MC_NAME_MAX + 1];

	snprintf(buf, sizeof buf, "%s", s);
	mc_scrub(buf, strlen(buf));
	return buf;
}

/* -n NAME and -V VERSION: at most MC_NAME_MAX bytes, no control characters; a name is never empty. */
static void check_text(const char *opt, const char *s, int may_be_empty)
{
	if (!may_be_empty && *s == '\0')
		bad_value(opt, s, "must not be empty");
	if (strlen(s) > MC_NAME_MAX)
		bad_value(opt, s, "longer than %d bytes", MC_NAME_MAX);
	for (const char *c = s; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			bad_value(opt, s, "control characters are not allowed");
}

/* create's arguments, checked before anything is read or written. */
static void check_create(const struct args *a, char **paths, int npaths)
{
	if (a->output == NULL)
		usage_error("create: -o PKG is required");
	if (a->output[0] == '\0')
		bad_value("-o", a->output, "must not be empty");
	if (mc_fe_output_refusal(a->output))
		bad_value("-o", a->output, "%s", mc_fe_output_refusal(a->output));
	if (npaths < 1)
		usage_error("create: no PATH to pack");
	for (int i = 0; i < npaths && npaths > 1; i++)
		if (strcmp(paths[i], "-") == 0)
			usage_error("PATH -: standard input can only be packed alone");
	if (a->name) {
		check_text("-n", a->name, 0);
	} else {
		size_t n;
		const char *b = mc_pkg_default_name(a->output, &n);
		if (n == 0)
			bad_value("-o", a->output, "no file name to take the package name from; give -n NAME");
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)b[i] < 0x20 || b[i] == 0x7f)
				bad_value("-o", a->output, "its base name (the default package name) has control characters; give -n NAME");
	}
	if (a->version)
		check_text("-V", a->version, 1);
	if (a->used_only && strcmp(paths[0], "-") == 0)
		usage_error("--used-only: reads the file systems of a block device or a regular file, not standard input");
}

static int open_pkg(const char *path, unsigned flags, struct mc_pkg *p)
{
	char err[512];

	int e = mc_pkg_open_flags(path, flags, p, err, sizeof err);

	if (e < 0) {
		mc_err("%s", err);
		return exit_for(e);
	}
	return 0;
}

/*
 * --trust: refuses a package that is not signed by a trusted key, or whose
 * manifest does not match its signature, before any payload byte is read
 * or written. Exit 1: running again or repairing cannot make it trusted.
 */
static int check_trust(const struct mc_pkg *p)
{
	char why[256], kid[2 * MC_KEYID_LEN + 1];
	uint8_t id[MC_KEYID_LEN];

	if (trust.n == 0)
		return 0;
	if (mc_manifest_trust(&p->m, &trust, why, sizeof why) != MC_SIG_TRUSTED) {
		mc_err("%s: refused: %s", p->path, why);
		return MC_EXIT_RUNTIME;
	}
	mc_key_id(p->m.signer, id);
	mc_debug("%s: signed by trusted key %s", p->path, mc_keyid_hex(id, kid));
	return 0;
}

/*
 * --decrypt: finds the package key of an encrypted package (a key that does
 * not open it is refused, exit 1, before anything is read or written).
 * Without --decrypt an encrypted package stays locked: verify checks its
 * stored bytes; what needs the content (list, extract, --to) refuses it
 * with need_key.
 */
static int check_key(struct mc_pkg *p)
{
	char why[256], kid[2 * MC_KEYID_LEN + 1];

	if (!p->m.is_encrypted || dkey_path == NULL)
		return 0;
	if (mc_manifest_unlock(&p->m, &dkey, why, sizeof why) < 0) {
		mc_err("%s: refused: %s (--decrypt %s)", p->path, why, dkey_path);
		return MC_EXIT_RUNTIME;
	}
	mc_debug("%s: opened with key %s", p->path, mc_keyid_hex(dkey.id, kid));
	return 0;
}

/* An encrypted package without --decrypt, where its content is needed: refused (exit 1) before anything is written. */
static int need_key(const struct mc_pkg *p)
{
	if (!p->m.is_encrypted || p->m.unlocked)
		return 0;
	mc_err("%s: encrypted package: its content needs --decrypt KEY (a 32-byte key file or a box secret key)",
	       p->path);
	return MC_EXIT_RUNTIME;
}

/* open_pkg, then check_trust and check_key: the package is open only when 0 is returned. */
static int open_trusted(const char *path, unsigned flags, struct mc_pkg *p)
{
	int rc = open_pkg(path, flags, p);

	if (rc == 0 && ((rc = check_trust(p)) != 0 || (rc = check_key(p)) != 0))
		mc_pkg_close(p);
	return rc;
}

/*
 * --json output ends with one "summary" object, as every program's does,
 * naming the command; lib/fe writes a short one for a command that failed
 * before it wrote its own (mc_fe_summary_about).
 */
static void summary_begin(struct mc_json *j, const char *cmd, const char *result)
{
	mc_fe_summary(j, result);
	mc_json_str(j, "command", cmd);
}

/* The result word of mcast-json(7) for an exit status; what 3 means depends on the command. */
static const char *result_of(int rc, const char *three)
{
	return rc == MC_EXIT_OK ? "complete" : rc == MC_EXIT_INCOMPLETE ? three : "error";
}

/* ---- info of an image package (issue 15) ---- */

/* format, and for an image: image size, holes and the bytes they cover; volumes of --used-only. */
static void image_json(struct mc_json *j, const struct mc_manifest *m)
{
	uint64_t hb;

	mc_json_u64(j, "format", m->format);
	if (m->format != MC_PKG_VERSION_IMAGE)
		return;
	mc_json_u64(j, "image_size", m->image_size);
	mc_json_u64(j, "stored_size", m->payload_size);
	mc_json_u64(j, "holes", mc_manifest_holes(m, &hb));
	mc_json_u64(j, "hole_bytes", hb);
	if (m->nvols == 0)
		return;
	/* --used-only: the partition table and, per volume, its file system, size, used and stored bytes. */
	size_t cap = 64 + (size_t)m->nvols * 200, len = 0;
	char *a = malloc(cap);
	if (a == NULL)
		return;
	if (m->vol_table[0])
		mc_json_str(j, "partition_table", m->vol_table);
	else
		mc_json_raw(j, "partition_table", "null");
	len += (size_t)snprintf(a + len, cap - len, "[");
	for (unsigned i = 0; i < m->nvols; i++) {
		struct mc_vol v;
		mc_manifest_vol(m, i, &v);
		len += (size_t)snprintf(a + len, cap - len,
					"%s{\"start\":%llu,\"size\":%llu,\"filesystem\":%s%s%s,\"used\":%llu,"
					"\"stored\":%llu,\"used_only\":%s}",
					i ? "," : "", (unsigned long long)v.start, (unsigned long long)v.size,
					v.fstype[0] ? "\"" : "", v.fstype[0] ? v.fstype : "null", v.fstype[0] ? "\"" : "",
					(unsigned long long)v.used, (unsigned long long)v.stored,
					v.flags & MC_VOL_USED_ONLY ? "true" : "false");
	}
	snprintf(a + len, cap - len, "]");
	mc_json_raw(j, "volumes", a);
	free(a);
}

static void image_text(const struct mc_manifest *m)
{
	uint64_t hb;
	uint32_t holes = mc_manifest_holes(m, &hb);
	char sz[32];

	printf("format:         %u%s\n", m->format, m->format == MC_PKG_VERSION_IMAGE ? " (seekable image)" : "");
	if (m->format != MC_PKG_VERSION_IMAGE)
		return;
	printf("image size:     %llu (%s)\n", (unsigned long long)m->image_size, mc_fmt_size(m->image_size, sz, sizeof sz));
	printf("stored:         %llu (%s, %.1f%% of the image)\n", (unsigned long long)m->payload_size,
	       mc_fmt_size(m->payload_size, sz, sizeof sz),
	       m->image_size ? 100.0 * (double)m->payload_size / (double)m->image_size : 0.0);
	printf("holes:          %u of %u spans (%s)\n", holes, m->nchunks, mc_fmt_size(hb, sz, sizeof sz));
	if (m->nvols == 0)
		return;
	printf("partitions:     %s\n", m->vol_table[0] ? m->vol_table : "none (one volume)");
	printf("  %-3s %14s %10s %-6s %10s %10s  %s\n", "#", "start", "size", "fs", "used", "stored", "blocks");
	for (unsigned i = 0; i < m->nvols; i++) {
		struct mc_vol v;
		char s1[32], s2[32], s3[32];
		mc_manifest_vol(m, i, &v);
		printf("  %-3u %14llu %10s %-6s %10s %10s  %s\n", i + 1, (unsigned long long)v.start,
		       mc_fmt_size(v.size, s1, sizeof s1), v.fstype[0] ? v.fstype : "-", mc_fmt_size(v.used, s2, sizeof s2),
		       mc_fmt_size(v.stored, s3, sizeof s3), v.flags & MC_VOL_USED_ONLY ? "used only" : "all (no block map)");
	}
}

/* ---- the live line of long work: create, verify, extract (lib/meter.h, as send, recv and repair draw it) ---- */

static struct mc_meter live_meter; /* one command a run */

/*
 * "LABEL: 53.2 MiB of 147.7 MiB (36%), 29.1 MiB/s, 0:03 left, STATE" on a
 * terminal (mc_progress: not with -q): redrawn at most five times a second,
 * and at once when done first reaches total, so that work shorter than that still
 * ends on a line with its rate. total 0: not known (bytes and rate only).
 */
static void live(const char *label, uint64_t done, uint64_t total, const char *state)
{
	/* Forced once: input that grew while read goes on past its total. */
	int full = total && done >= total && live_meter.last_done < total;

	mc_meter_show(&live_meter, full, label, done, total, mc_now_ms(), state);
}

/* create: the input bytes read (a tree's files, standard input, an image). */
static void create_progress(void *arg, uint64_t done, uint64_t total)
{
	live(arg, done, total, "packing");
}

static int cmd_create(const struct args *a, char **paths, int npaths)
{
	struct mc_pkg_create_opts o = {
		.output = a->output, .name = a->name, .version = a->version,
		.compression = a->compression, .level = a->level, .threads = a->threads,
		.chunk_size = a->chunk_size, .mtime = a->mtime,
		.paths = (const char *const *)paths, .npaths = (unsigned)npaths,
		.image = a->image, .progress = create_progress, .progress_arg = (void *)a->output,
		.used_only = a->used_only, .force = a->force,
	};
	uint8_t id[MC_ID_LEN];
	char err[1024], hex[2 * MC_ID_LEN + 1];
	struct mc_pkg p;
	struct mc_key key;
	int loose, rc;

	if (a->sign) {
		if (mc_key_load_secret(a->sign, &key, &loose, err, sizeof err) < 0) {
			mc_err("--sign %s", err);
			return MC_EXIT_RUNTIME;
		}
		if (loose)
			mc_warn("%s: secret key readable or writable by group or others (chmod 600 it)", a->sign);
		o.sign = &key;
	}
	struct mc_content_key ek;
	struct mc_key *to = NULL;
	if (a->encrypt || a->nencrypt_to) {
		o.encrypt = 1;
		if (a->encrypt) {
			if (mc_content_key_load(a->encrypt, &ek, &loose, err, sizeof err) < 0 || ek.is_box) {
				if (ek.is_box)
					snprintf(err, sizeof err, "%s: a box secret key; --encrypt takes a 32-byte key file "
						 "(keygen --session), --encrypt-to a box public key", a->encrypt);
				mc_err("--encrypt %s", err);
				explicit_bzero(&ek, sizeof ek);
				explicit_bzero(&key, sizeof key);
				return MC_EXIT_RUNTIME;
			}
			if (loose)
				mc_warn("%s: key readable or writable by group or others (chmod 600 it)", a->encrypt);
			o.encrypt_key = ek.key;
		}
		if (a->nencrypt_to && (to = calloc(a->nencrypt_to, sizeof *to)) == NULL) {
			mc_err("--encrypt-to: %s", mc_strerror(-ENOMEM));
			return MC_EXIT_RUNTIME;
		}
		for (unsigned i = 0; i < a->nencrypt_to; i++)
			if (mc_key_load_public_as(MC_KEY_X25519, a->encrypt_to[i], &to[i], err, sizeof err) < 0) {
				mc_err("--encrypt-to %s", err);
				free(to);
				explicit_bzero(&ek, sizeof ek);
				explicit_bzero(&key, sizeof key);
				return MC_EXIT_RUNTIME;
			}
		o.encrypt_to = to;
		o.nencrypt_to = a->nencrypt_to;
	}
	rc = mc_pkg_create(&o, id, err, sizeof err);
	mc_progress_end();
	explicit_bzero(&key, sizeof key);
	explicit_bzero(&ek, sizeof ek);
	free(to);
	if (rc < 0) {
		mc_err("%s", err);
		/* A directory where a file goes (--image SOURCE, -o) is the command line's fault, as -o DIR is to mcast-recv. */
		return rc == -EISDIR ? MC_EXIT_USAGE : MC_EXIT_RUNTIME;
	}
	mc_id_hex(id, hex);
	if (open_pkg(a->output, 0, &p) != 0)
		return MC_EXIT_RUNTIME;
	if (mc_log_json()) {
		struct mc_json j;
		summary_begin(&j, "create", "complete");
		mc_json_str(&j, "path", a->output);
		mc_json_str(&j, "id", hex);
		mc_json_str(&j, "name", p.m.name);
		mc_json_str(&j, "version", p.m.version);
		mc_json_str(&j, "compression", mc_comp_name(p.m.compression));
		mc_json_str(&j, "kind", mc_kind_name(p.m.kind));
		mc_json_u64(&j, "payload_size", p.m.payload_size);
		mc_json_u64(&j, "file_size", p.l.file_size);
		mc_json_u64(&j, "chunks", p.m.nchunks);
		image_json(&j, &p.m);
		mc_json_bool(&j, "encrypted", p.m.is_encrypted);
		mc_json_bool(&j, "signed", p.m.is_signed);
		if (p.m.is_signed) {
			uint8_t kid[MC_KEYID_LEN];
			char kx[2 * MC_KEYID_LEN + 1];
			mc_key_id(p.m.signer, kid);
			mc_json_str(&j, "signer", mc_keyid_hex(kid, kx));
		}
		mc_json_end(&j);
	} else {
		char sz[32], kx[2 * MC_KEYID_LEN + 1], cn[32];
		uint8_t kid[MC_KEYID_LEN];
		mc_key_id(p.m.signer, kid);
		mc_info("%s: created, id %s, %s in %s%s%s%s", a->output, hex,
			mc_fmt_size(p.l.file_size, sz, sizeof sz), mc_fmt_count(p.m.nchunks, "chunk", "chunks", cn, sizeof cn),
			p.m.is_signed ? ", signed by key " : "", p.m.is_signed ? mc_keyid_hex(kid, kx) : "",
			p.m.is_encrypted ? ", encrypted" : "");
	}
	mc_pkg_close(&p);
	return MC_EXIT_OK;
}

static int cmd_info(const char *path)
{
	struct mc_pkg p;
	char hex[2 * MC_ID_LEN + 1], dig[2 * MC_DIGEST_LEN + 1], when[64], sz[32], kid[2 * MC_KEYID_LEN + 1];
	uint8_t keyid[MC_KEYID_LEN];
	time_t t;
	struct tm tm;
	int rc = open_pkg(path, 0, &p);

	if (rc)
		return rc;
	mc_id_hex(p.m.id, hex);
	mc_hex(p.m.payload_digest, MC_DIGEST_LEN, dig);
	mc_key_id(p.m.signer, keyid);
	mc_keyid_hex(keyid, kid);
	t = (time_t)p.m.ctime;
	if (gmtime_r(&t, &tm) == NULL || strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(when, sizeof when, "%llu", (unsigned long long)p.m.ctime);
	if (mc_log_json()) {
		struct mc_json j;
		summary_begin(&j, "info", "complete");
		mc_json_str(&j, "path", path);
		mc_json_str(&j, "id", hex);
		mc_json_str(&j, "name", p.m.name);
		mc_json_str(&j, "version", p.m.version);
		mc_json_u64(&j, "ctime", p.m.ctime);
		mc_json_str(&j, "kind", mc_kind_name(p.m.kind));
		mc_json_str(&j, "compression", mc_comp_name(p.m.compression));
		mc_json_u64(&j, "chunk_size", p.m.chunk_size);
		mc_json_u64(&j, "chunks", p.m.nchunks);
		mc_json_u64(&j, "payload_offset", p.l.payload_off);
		mc_json_u64(&j, "payload_size", p.m.payload_size);
		mc_json_u64(&j, "manifest_size", p.l.manifest_len);
		mc_json_u64(&j, "file_size", p.l.file_size);
		mc_json_str(&j, "payload_digest", dig);
		image_json(&j, &p.m);
		mc_json_str(&j, "chunk_digest", mc_hash_name(p.m.digest_alg));
		mc_json_bool(&j, "signed", p.m.is_signed);
		if (p.m.is_signed)
			mc_json_str(&j, "signer", kid);
		mc_json_bool(&j, "encrypted", p.m.is_encrypted);
		if (p.m.is_encrypted) {
			char rec[MC_ENC_RECIPS_MAX * 20 + 4];
			size_t n = 0;
			mc_json_str(&j, "cipher", mc_aead_name(p.m.aead_alg));
			n += (size_t)snprintf(rec + n, sizeof rec - n, "[");
			for (unsigned i = 0; i < p.m.nrecips; i++) {
				char rk[2 * MC_KEYID_LEN + 1];
				n += (size_t)snprintf(rec + n, sizeof rec - n, "%s\"%s\"", i ? "," : "",
						      mc_keyid_hex(p.m.recips + (size_t)i * MC_ENC_REC, rk));
			}
			snprintf(rec + n, sizeof rec - n, "]");
			mc_json_raw(&j, "recipients", rec);
		}
		mc_json_end(&j);
	} else {
		printf("id:             %s\n", hex);
		printf("name:           %s\n", printable(p.m.name));
		printf("version:        %s\n", printable(p.m.version));
		printf("created:        %s\n", when);
		printf("kind:           %s\n", mc_kind_name(p.m.kind));
		printf("compression:    %s\n", mc_comp_name(p.m.compression));
		printf("chunk size:     %u (%s)\n", p.m.chunk_size, mc_fmt_size(p.m.chunk_size, sz, sizeof sz));
		printf("chunks:         %u\n", p.m.nchunks);
		printf("payload size:   %llu (%s)\n", (unsigned long long)p.m.payload_size,
		       mc_fmt_size(p.m.payload_size, sz, sizeof sz));
		printf("file size:      %llu (%s)\n", (unsigned long long)p.l.file_size,
		       mc_fmt_size(p.l.file_size, sz, sizeof sz));
		printf("payload digest: %s\n", dig);
		image_text(&p.m);
		printf("chunk digests:  %s\n", mc_hash_name(p.m.digest_alg));
		if (p.m.is_signed)
			printf("signed by:      key %s (checked by verify and extract with --trust)\n", kid);
		else
			printf("signed by:      nobody (not signed)\n");
		if (p.m.is_encrypted) {
			printf("encrypted:      %s, content needs --decrypt KEY\n", mc_aead_name(p.m.aead_alg));
			for (unsigned i = 0; i < p.m.nrecips; i++) {
				char rk[2 * MC_KEYID_LEN + 1];
				printf("recipient:      key %s\n", mc_keyid_hex(p.m.recips + (size_t)i * MC_ENC_REC, rk));
			}
		} else {
			printf("encrypted:      no\n");
		}
	}
	mc_pkg_close(&p);
	return MC_EXIT_OK;
}

static const char *entry_type(struct archive_entry *e)
{
	if (archive_entry_hardlink(e))
		return "hardlink";
	switch (archive_entry_filetype(e)) {
	case AE_IFREG: return "file";
	case AE_IFDIR: return "dir";
	case AE_IFLNK: return "symlink";
	case AE_IFCHR: return "char";
	case AE_IFBLK: return "block";
	case AE_IFIFO: return "fifo";
	case AE_IFSOCK: return "socket";
	default: return "other";
	}
}

static void list_one(void *arg, struct archive_entry *e)
{
	const char *link = archive_entry_hardlink(e) ? archive_entry_hardlink(e) : archive_entry_symlink(e);

	(*(uint64_t *)arg)++;
	if (mc_log_json()) {
		struct mc_json j;
		mc_json_begin(&j, "entry");
		mc_json_str(&j, "path", archive_entry_pathname(e));
		mc_json_str(&j, "type", entry_type(e));
		mc_json_u64(&j, "size", archive_entry_size_is_set(e) ? (uint64_t)archive_entry_size(e) : 0);
		mc_json_u64(&j, "mode", archive_entry_perm(e));
		mc_json_i64(&j, "mtime", archive_entry_mtime(e));
		mc_json_i64(&j, "uid", archive_entry_uid(e));
		mc_json_i64(&j, "gid", archive_entry_gid(e));
		if (link)
			mc_json_str(&j, "target", link);
		mc_json_end(&j);
	} else if (mc_log_verbosity() >= 2) {
		const char *u = archive_entry_uname(e), *g = archive_entry_gname(e);
		char ubuf[24], gbuf[24];
		if (u == NULL)
			snprintf(ubuf, sizeof ubuf, "%lld", (long long)archive_entry_uid(e)), u = ubuf;
		if (g == NULL)
			snprintf(gbuf, sizeof gbuf, "%lld", (long long)archive_entry_gid(e)), g = gbuf;
		printf("%s %s/%s %12lld %s%s%s\n", archive_entry_strmode(e), u, g,
		       archive_entry_size_is_set(e) ? (long long)archive_entry_size(e) : 0LL, archive_entry_pathname(e),
		       link ? (archive_entry_hardlink(e) ? " link to " : " -> ") : "", link ? link : "");
	} else {
		printf("%s\n", archive_entry_pathname(e));
	}
}

static int cmd_list(const char *path)
{
	struct mc_pkg p;
	char err[512];
	uint64_t n = 0;
	int rc = open_trusted(path, 0, &p);

	if (rc == 0 && (rc = need_key(&p)) != 0)
		mc_pkg_close(&p);
	if (rc)
		return rc;
	if ((rc = mc_pkg_list(&p, list_one, &n, err, sizeof err)) < 0) {
		rc = exit_for(rc);
		mc_err("%s", err);
	}
	if (mc_log_json()) {
		struct mc_json j;
		summary_begin(&j, "list", result_of(rc, "damaged"));
		mc_json_str(&j, "path", path);
		mc_json_u64(&j, "entries", n);
		mc_json_end(&j);
	}
	mc_pkg_close(&p);
	return rc;
}

struct vstate {
	const struct mc_pkg *p;
	char list[4096];
	size_t len;
	unsigned listed;
	/* Runs of bad chunks, said after the verdict: 148 bad chunks in a row are one line, not 148. */
	struct vrun {
		uint32_t first, last;
	} *runs;
	size_t nruns, cap;
	int nomem;
};

static void verify_bad(void *arg, uint32_t i)
{
	struct vstate *v = arg;
	char num[16];

	if (v->nruns && v->runs[v->nruns - 1].last + 1 == i) {
		v->runs[v->nruns - 1].last = i;
	} else {
		if (v->nruns == v->cap) {
			size_t cap = v->cap ? 2 * v->cap : 64;
			struct vrun *r = realloc(v->runs, cap * sizeof *r);
			if (r == NULL) {
				v->nomem = 1;
				return;
			}
			v->runs = r;
			v->cap = cap;
		}
		v->runs[v->nruns++] = (struct vrun){i, i};
	}
	/* The summary lists the first bad chunks only: one line must stay bounded. */
	int n = snprintf(num, sizeof num, "%s%u", v->listed ? "," : "", i);
	if (v->len + (size_t)n + 2 < sizeof v->list) {
		memcpy(v->list + v->len, num, (size_t)n);
		v->len += (size_t)n;
		v->listed++;
	}
}

static void verify_progress(void *arg, uint64_t done)
{
	struct vstate *v = arg;
	live(v->p->path, done, v->p->m.payload_size, "verifying");
}

static int cmd_verify(const char *path)
{
	struct mc_pkg p;
	struct vstate v = {.p = &p};
	struct mc_pkg_verify_cb cb = {verify_bad, verify_progress, &v};
	char err[512], hex[2 * MC_ID_LEN + 1], arr[4200];
	int ok = 0, rc = open_trusted(path, MC_PKG_OPEN_PARTIAL, &p);
	long bad;

	if (rc)
		return rc;
	live(path, 0, p.m.payload_size, "verifying"); /* the rate from the start, the first chunk's time in it */
	bad = mc_pkg_verify(&p, &cb, NULL, &ok, err, sizeof err);
	mc_progress_end();
	if (bad >= 0 && v.nomem) {
		snprintf(err, sizeof err, "%s", mc_strerror(-ENOMEM));
		bad = -1;
	}
	if (bad < 0) {
		mc_err("%s", err);
		free(v.runs);
		mc_pkg_close(&p);
		return MC_EXIT_RUNTIME;
	}
	/* --decrypt: once the stored bytes are intact, the content too: every chunk opened (an image's decoded). */
	if (bad == 0 && ok && p.m.is_encrypted && p.m.unlocked) {
		if ((bad = mc_pkg_verify_content(&p, verify_bad, &v, err, sizeof err)) < 0) {
			mc_err("%s", err);
			free(v.runs);
			mc_pkg_close(&p);
			return MC_EXIT_RUNTIME;
		}
		if (bad)
			mc_err("%s: %ld chunks match their digests but do not open with key %s: the manifest was forged",
			       path, bad, dkey_path);
	}
	int trailing = p.file_size > p.l.file_size;
	int intact = bad == 0 && ok && !trailing;
	uint64_t badbytes = 0;
	for (size_t k = 0; k < v.nruns; k++) {
		uint64_t a, b, c, d;
		mc_pkg_chunk_range(&p, v.runs[k].first, &a, &b);
		mc_pkg_chunk_range(&p, v.runs[k].last, &c, &d);
		badbytes += d - a + 1;
	}
	/* The verdict first, then one line (and one --json object) per run of bad chunks. */
	if (!intact) {
		char sz[32], nr[32];
		mc_err("%s: damaged: %ld of %u chunks bad (%s in %s)%s", path, bad, p.m.nchunks,
		       mc_fmt_size(badbytes, sz, sizeof sz), mc_fmt_count(v.nruns, "run", "runs", nr, sizeof nr),
		       bad ? "; run mcast-repair" : "");
	}
	if (p.file_size < p.l.file_size)
		mc_err("%s: truncated: %llu of %llu bytes", path, (unsigned long long)p.file_size,
		       (unsigned long long)p.l.file_size);
	if (trailing)
		mc_err("%s: %llu bytes after the end of the payload", path,
		       (unsigned long long)(p.file_size - p.l.file_size));
	if (bad == 0 && !ok)
		mc_err("%s: payload digest does not match the manifest", path);
	for (size_t k = 0; k < v.nruns; k++) {
		uint64_t a, b, c, d;
		char sz[32];
		uint32_t f = v.runs[k].first, l = v.runs[k].last;
		mc_pkg_chunk_range(&p, f, &a, &b);
		mc_pkg_chunk_range(&p, l, &c, &d);
		const char *what = a >= p.file_size ? "missing" : "damaged or missing";
		if (f == l)
			mc_err("%s: chunk %u (bytes %llu-%llu): %s", path, f, (unsigned long long)a, (unsigned long long)d, what);
		else
			mc_err("%s: chunks %u-%u (bytes %llu-%llu, %s): %s", path, f, l, (unsigned long long)a,
			       (unsigned long long)d, mc_fmt_size(d - a + 1, sz, sizeof sz), what);
		if (mc_log_json()) {
			struct mc_json j;
			mc_json_begin(&j, "bad_chunk");
			mc_json_u64(&j, "index", f);
			mc_json_u64(&j, "last", l);
			mc_json_u64(&j, "count", (uint64_t)(l - f) + 1);
			mc_json_u64(&j, "offset", a);
			mc_json_u64(&j, "length", d - a + 1);
			mc_json_end(&j);
		}
	}
	free(v.runs);
	mc_id_hex(p.m.id, hex);
	if (mc_log_json()) {
		struct mc_json j;
		snprintf(arr, sizeof arr, "[%.*s]", (int)v.len, v.list);
		summary_begin(&j, "verify", intact ? "complete" : "damaged");
		mc_json_str(&j, "path", path);
		mc_json_str(&j, "id", hex);
		mc_json_u64(&j, "chunks", p.m.nchunks);
		mc_json_u64(&j, "bad", (uint64_t)bad);
		mc_json_raw(&j, "bad_chunks", arr);
		mc_json_bool(&j, "payload_digest_ok", ok);
		mc_json_end(&j);
	}
	if (intact) {
		char cn[32];

		mc_info("%s: ok, %s verified, id %s", path, mc_fmt_count(p.m.nchunks, "chunk", "chunks", cn, sizeof cn), hex);
	}
	mc_pkg_close(&p);
	return intact ? MC_EXIT_OK : MC_EXIT_INCOMPLETE;
}

/* ---- images onto a target: extract --to, verify --to (issue 15) ---- */

/* The exit code for a target mc_target_open refused: unsuitable (2) or a runtime failure (1). */
static int target_refused(int rc, const char *err)
{
	mc_err("%s", err);
	return rc == -EINVAL ? MC_EXIT_USAGE : MC_EXIT_RUNTIME;
}

struct tstate {
	const struct mc_pkg *p;
	const char *target;
	uint64_t bad;
};

/* extract --to, verify --to: the image's bytes done, holes included. */
static void target_progress(void *arg, uint64_t done)
{
	const struct tstate *ts = arg;

	live(ts->target, done, ts->p->m.image_size, NULL);
}

static volatile sig_atomic_t got_stop; /* extract --to --state: SIGINT, SIGTERM, SIGHUP */

/* extract --to --state: what extract keeps of its work, as mcast-recv --to and mcast-repair --to do. */
struct xstate {
	const char *path;        /* --state FILE, NULL: none kept */
	struct mc_state st;      /* chunks durably on the target */
	uint8_t tid[MC_DIGEST_LEN];
	uint8_t *bad;            /* chunks damaged in the package (bitmap): never marked */
	uint32_t from;           /* chunks from here on were queued since the last save */
	uint64_t saved_ms;
};

#define XSTATE_EVERY_MS 1000

/*
 * Makes every chunk queued before chunk upto durable, then marks those the
 * package did not fail and saves the state: never a chunk marked that is
 * not on the target. Returns 0 or -1 with the reason in err.
 */
static int xstate_save(struct xstate *x, struct mc_target *t, const struct mc_manifest *m, uint32_t upto, char *err,
		       size_t errlen)
{
	uint32_t n = 0;

	if (mc_target_sync(t, err, errlen) < 0)
		return -1;
	for (uint32_t i = x->from; i < upto; i++)
		if (!(x->bad[i >> 3] >> (i & 7) & 1))
			mc_state_set(&x->st, i);
	x->from = upto;
	/* Parts of chunks a receiver left are kept for those still missing, dropped for the rest. */
	for (uint32_t i = 0; i < x->st.nspans; i++)
		if (!mc_state_has(&x->st, x->st.spans[i].chunk))
			x->st.spans[n++] = x->st.spans[i];
	x->st.nspans = n;
	x->saved_ms = mc_now_ms();
	return mc_tstate_save(x->path, m, x->tid, &x->st, err, errlen) < 0 ? -1 : 0;
}

static int cmd_extract_to(const struct args *a, const char *path)
{
	struct mc_pkg p;
	struct mc_target *t;
	struct tstate ts = {.p = &p, .target = a->to};
	struct xstate x = {.path = a->state};
	char err[1024];
	uint8_t *buf = NULL;
	uint64_t holes = 0, written = 0, had = 0;
	uint32_t i = 0;
	int stopped = 0;
	int rc = open_trusted(path, 0, &p);

	/* Trusted before the target is even opened: an untrusted package never touches it. */
	if (rc == 0 && (rc = need_key(&p)) != 0)
		mc_pkg_close(&p);
	if (rc)
		return rc;
	if ((rc = mc_target_open(a->to, &p.m, a->zeroed ? MC_TARGET_ZEROED : 0, &t, err, sizeof err)) < 0) {
		mc_pkg_close(&p);
		return target_refused(rc, err);
	}
	if (x.path) {
		/*
		 * The resume sequence of every --to (lib/tstate.h): a state of
		 * another package or target refused before a byte is written; else
		 * every chunk it does not mark is checked on the target, and what
		 * is there already is not written again.
		 */
		char why[512];
		mc_target_identity(t, x.tid);
		long n = mc_tstate_resume(x.path, t, &p.m, &x.st, why, sizeof why, err, sizeof err);
		if (n < 0) {
			mc_err("%s", err);
			rc = n == -EINVAL ? MC_EXIT_USAGE : MC_EXIT_RUNTIME;
			goto out;
		}
		if (why[0])
			mc_warn("%s (not used: every span checked on %s)", why, a->to);
		if ((x.bad = calloc((size_t)p.m.nchunks / 8 + 1, 1)) == NULL) {
			mc_err("%s: %s", x.path, mc_strerror(-ENOMEM));
			rc = MC_EXIT_RUNTIME;
			goto out;
		}
		had = x.st.nhave;
		if (had)
			mc_info("%s: %llu of %u spans already on %s", path, (unsigned long long)had, p.m.nchunks, a->to);
		x.saved_ms = mc_now_ms();
		mc_fe_signals(&got_stop);
	}
	if ((buf = mc_pkg_buf(p.m.chunk_size)) == NULL) {
		mc_err("%s: %s", path, mc_strerror(-ENOMEM));
		rc = MC_EXIT_RUNTIME;
		goto out;
	}
	/* Writer threads decode and write while the next chunks are read (mc_target_start). */
	if (mc_target_start(t, 0, err, sizeof err) < 0) {
		mc_err("%s", err);
		rc = MC_EXIT_RUNTIME;
		goto out;
	}
	posix_fadvise(p.fd, (off_t)p.l.payload_off, 0, POSIX_FADV_SEQUENTIAL);
	for (; i < p.m.nchunks && !got_stop; i++) {
		int c = 1;
		if (x.path && mc_state_has(&x.st, i)) {
			/* Already on the target: done, though not this run's work (the live rate counts what is written). */
			mc_meter_skip(&live_meter, mc_manifest_span_len(&p.m, i));
			continue;
		} else if (mc_manifest_chunk_flags(&p.m, i) & MC_CHUNK_HOLE) {
			holes++;
			c = mc_target_queue(t, i, NULL, 0, err, sizeof err) < 0 ? -1 : 1;
		} else if ((c = mc_pkg_check_chunk(&p, i, buf)) == 0) {
			/* Damaged in the package: the rest is still written, the exit says incomplete. */
			uint64_t lo, hi;
			mc_pkg_chunk_range(&p, i, &lo, &hi);
			mc_err("%s: chunk %u (bytes %llu-%llu): damaged or missing; span %u of %s not written", path, i,
			       (unsigned long long)lo, (unsigned long long)hi, i, a->to);
			ts.bad++;
			if (x.bad)
				x.bad[i >> 3] |= (uint8_t)(1u << (i & 7));
			continue;
		} else if (c < 0) {
			snprintf(err, sizeof err, "%s: %s", path, mc_strerror(c));
		} else if (mc_target_queue_verified(t, i, buf, mc_manifest_chunk_len(&p.m, i), err, sizeof err) < 0) {
			/* mc_pkg_check_chunk checked its stored digest against p.m, the target's manifest. */
			c = -1;
		} else {
			written++;
		}
		if (c > 0 && x.path && mc_now_ms() - x.saved_ms >= XSTATE_EVERY_MS)
			c = xstate_save(&x, t, &p.m, i + 1, err, sizeof err) < 0 ? -1 : 1;
		if (c < 0) {
			mc_progress_end();
			mc_err("%s", err);
			rc = MC_EXIT_RUNTIME;
			goto out;
		}
		target_progress(&ts, mc_manifest_span_off(&p.m, i) + mc_manifest_span_len(&p.m, i));
	}
	mc_progress_end();
	/* Read once, and only while spans were left: a signal during the final flush does not stop a complete extract. */
	stopped = got_stop && i < p.m.nchunks;
	if (x.path && (stopped || ts.bad) ? xstate_save(&x, t, &p.m, i, err, sizeof err) < 0
					  : mc_target_sync(t, err, sizeof err) < 0) {
		mc_err("%s", err);
		rc = MC_EXIT_RUNTIME;
	} else if (stopped) {
		mc_err("%s: interrupted; state saved in %s, run the same command again to resume", a->to, x.path);
		rc = MC_EXIT_INCOMPLETE;
	} else if (ts.bad) {
		mc_err("%s: %llu of %u spans not written (the package is damaged; run mcast-repair, then again)", a->to,
		       (unsigned long long)ts.bad, p.m.nchunks);
		rc = MC_EXIT_INCOMPLETE;
	} else if (x.path && mc_tstate_remove(x.path, err, sizeof err) < 0) {
		/* Complete and flushed: the state has done its work. */
		mc_warn("%s", err);
	}
out:
	if (mc_log_json()) {
		struct mc_json j;
		summary_begin(&j, "extract", stopped && rc == MC_EXIT_INCOMPLETE ? "interrupted" : result_of(rc, "damaged"));
		mc_json_str(&j, "path", path);
		mc_json_str(&j, "target", a->to);
		mc_json_u64(&j, "image_size", p.m.image_size);
		mc_json_u64(&j, "chunks", p.m.nchunks);
		mc_json_u64(&j, "written", written);
		mc_json_u64(&j, "holes", holes);
		mc_json_u64(&j, "bad", ts.bad);
		if (x.path) {
			mc_json_str(&j, "state", x.path);
			mc_json_u64(&j, "had", had);
		}
		mc_json_end(&j);
	} else if (rc == 0) {
		mc_info("%s: written onto %s and flushed (%llu spans, %llu holes)", path, a->to,
			(unsigned long long)written, (unsigned long long)holes);
	}
	free(buf);
	free(x.bad);
	if (x.path)
		mc_state_free(&x.st);
	mc_target_close(t);
	mc_pkg_close(&p);
	return rc;
}

static void verify_to_bad(void *arg, uint32_t i)
{
	struct tstate *ts = arg;
	uint64_t off = mc_manifest_span_off(&ts->p->m, i), len = mc_manifest_span_len(&ts->p->m, i);

	mc_progress_end();
	if (mc_log_json()) {
		struct mc_json j;
		mc_json_begin(&j, "bad_span");
		mc_json_u64(&j, "index", i);
		mc_json_u64(&j, "offset", off);
		mc_json_u64(&j, "length", len);
		mc_json_end(&j);
	}
	mc_err("%s: span %u (bytes %llu-%llu): differs from the image", ts->target, i, (unsigned long long)off,
	       (unsigned long long)(off + len - 1));
}

static int cmd_verify_to(const struct args *a, const char *path)
{
	struct mc_pkg p;
	struct mc_target *t;
	struct tstate ts = {.p = &p, .target = a->to};
	char err[1024], hex[2 * MC_ID_LEN + 1];
	long bad;
	/* The manifest is all that is needed: a partial package (PKG.part) will do. */
	int rc = open_trusted(path, MC_PKG_OPEN_PARTIAL, &p);

	/* Trusted before the target is even opened: an untrusted package never touches it. */
	if (rc == 0 && (rc = need_key(&p)) != 0)
		mc_pkg_close(&p);
	if (rc)
		return rc;
	if ((rc = mc_target_open(a->to, &p.m, MC_TARGET_READONLY, &t, err, sizeof err)) < 0) {
		mc_pkg_close(&p);
		return target_refused(rc, err);
	}
	target_progress(&ts, 0);
	bad = mc_target_check(t, verify_to_bad, target_progress, &ts, err, sizeof err);
	mc_progress_end();
	if (bad < 0) {
		mc_err("%s", err);
		rc = MC_EXIT_RUNTIME;
	} else {
		rc = bad ? MC_EXIT_INCOMPLETE : MC_EXIT_OK;
	}
	mc_id_hex(p.m.id, hex);
	if (mc_log_json()) {
		struct mc_json j;
		summary_begin(&j, "verify", result_of(rc, "incomplete"));
		mc_json_str(&j, "path", path);
		mc_json_str(&j, "target", a->to);
		mc_json_str(&j, "id", hex);
		mc_json_u64(&j, "chunks", p.m.nchunks);
		mc_json_u64(&j, "bad", bad < 0 ? 0 : (uint64_t)bad);
		mc_json_end(&j);
	}
	if (rc == 0)
		mc_info("%s: ok, every span of %s (id %s) as in the image", a->to, path, hex);
	else if (bad > 0)
		mc_err("%s: %ld of %u spans differ from %s", a->to, bad, p.m.nchunks, path);
	mc_target_close(t);
	mc_pkg_close(&p);
	return rc;
}

/* An entry refused is an error; one skipped or stripped (untrusted package) is said with -v, and counted at the end. */
static void extract_note(void *arg, int what, const char *path, const char *why)
{
	if (what == MC_EXTRACT_REFUSED)
		mc_err("%s: %s: refused: %s", (const char *)arg, path, why);
	else if (what == MC_EXTRACT_SKIPPED)
		mc_debug("%s: %s: %s skipped", (const char *)arg, path, why);
	else
		mc_debug("%s: %s: extracted without its %s", (const char *)arg, path, why);
}

/* extract -C, -O: the stored bytes read and checked. */
static void extract_progress(void *arg, uint64_t done)
{
	const struct mc_pkg *p = arg;

	live(p->path, done, p->m.payload_size, "extracting");
}

static int cmd_extract(const struct args *a, const char *path)
{
	struct mc_pkg p;
	char err[1024];
	struct mc_extract_stats st = {0};
	int rc = open_trusted(path, 0, &p);

	if (rc == 0 && (rc = need_key(&p)) != 0)
		mc_pkg_close(&p);
	if (rc)
		return rc;
	p.progress = extract_progress;
	p.progress_arg = &p;
	extract_progress(&p, 0);
	if (a->to_stdout) {
		if ((rc = mc_pkg_extract_fd(&p, STDOUT_FILENO, err, sizeof err)) < 0) {
			rc = exit_for(rc);
			mc_err("%s", err);
		}
	} else {
		const char *dir = a->dir ? a->dir : ".";
		/* A package signed by a --trust key is the administrator's own: kept whole, as tar would. */
		unsigned fl = trust.n > 0 || a->privileged ? MC_EXTRACT_PRIVILEGED : 0;
		if ((rc = mc_pkg_extract(&p, dir, fl, extract_note, (void *)path, &st, err, sizeof err)) < 0) {
			rc = exit_for(rc);
			mc_err("%s", err);
		} else if (st.refused) {
			mc_err("%s: %u entries refused", path, st.refused);
			rc = MC_EXIT_RUNTIME;
		}
		if (st.skipped || st.stripped)
			mc_warn("%s: not signed by a --trust key: %u device %s skipped, %u %s without setuid, setgid "
				"or capabilities (--privileged keeps them)", path, st.skipped,
				st.skipped == 1 ? "node" : "nodes", st.stripped, st.stripped == 1 ? "entry" : "entries");
		if (mc_log_json()) {
			struct mc_json j;
			summary_begin(&j, "extract", result_of(rc, "damaged"));
			mc_json_str(&j, "path", path);
			mc_json_str(&j, "dir", dir);
			mc_json_u64(&j, "refused", st.refused);
			mc_json_u64(&j, "devices_skipped", st.skipped);
			mc_json_u64(&j, "privileges_stripped", st.stripped);
			mc_json_end(&j);
		} else if (rc == 0) {
			mc_info("%s: extracted into %s", path, dir);
		}
	}
	mc_progress_end();
	mc_pkg_close(&p);
	return rc;
}

/* ---- rewrap (issue 17): the content key sealed for other recipients, the payload untouched ---- */

static int cmd_rewrap(const struct args *a, const char *path)
{
	struct mc_pkg p;
	struct mc_key sk, *to = NULL;
	uint8_t id[MC_ID_LEN];
	char err[1024], hex[2 * MC_ID_LEN + 1];
	int loose, rc = open_pkg(path, 0, &p);

	if (rc)
		return rc;
	if (a->sign) {
		if (mc_key_load_secret(a->sign, &sk, &loose, err, sizeof err) < 0) {
			mc_err("--sign %s", err);
			rc = MC_EXIT_RUNTIME;
			goto out;
		}
		if (loose)
			mc_warn("%s: secret key readable or writable by group or others (chmod 600 it)", a->sign);
	}
	if (a->nencrypt_to && (to = calloc(a->nencrypt_to, sizeof *to)) == NULL) {
		mc_err("--encrypt-to: %s", mc_strerror(-ENOMEM));
		rc = MC_EXIT_RUNTIME;
		goto out;
	}
	for (unsigned i = 0; i < a->nencrypt_to; i++)
		if (mc_key_load_public_as(MC_KEY_X25519, a->encrypt_to[i], &to[i], err, sizeof err) < 0) {
			mc_err("--encrypt-to %s", err);
			rc = MC_EXIT_RUNTIME;
			goto out;
		}
	if (mc_pkg_rewrap(&p, &dkey, to, a->nencrypt_to, a->sign ? &sk : NULL, a->output, id, err, sizeof err) < 0) {
		mc_err("%s", err);
		rc = MC_EXIT_RUNTIME;
		goto out;
	}
	mc_id_hex(id, hex);
	if (mc_log_json()) {
		struct mc_json j;
		summary_begin(&j, "rewrap", "complete");
		mc_json_str(&j, "path", a->output);
		mc_json_str(&j, "id", hex);
		mc_json_u64(&j, "recipients", a->nencrypt_to);
		mc_json_end(&j);
	} else {
		mc_info("%s: rewrapped into %s, id %s, %u recipient%s, payload copied as it is", path, a->output, hex,
			a->nencrypt_to, a->nencrypt_to == 1 ? "" : "s");
	}
out:
	explicit_bzero(&sk, sizeof sk);
	free(to);
	mc_pkg_close(&p);
	return rc;
}

/* ---- keygen (issue 17): signing key pairs and session keys ---- */

static int cmd_keygen(const struct args *a)
{
	struct mc_key k;
	char err[1024], kid[2 * MC_KEYID_LEN + 1];
	const char *base;

	if (a->session) {
		if (mc_session_key_write(a->output, err, sizeof err) < 0) {
			mc_err("%s", err);
			return MC_EXIT_RUNTIME;
		}
		if (mc_log_json()) {
			struct mc_json j;
			summary_begin(&j, "keygen", "complete");
			mc_json_str(&j, "path", a->output);
			mc_json_str(&j, "session_key", a->output);
			mc_json_end(&j);
		} else {
			mc_info("%s: session key written (keep it secret: it is the key to the session)", a->output);
		}
		return MC_EXIT_OK;
	}
	if (mc_key_generate_as(a->box ? MC_KEY_X25519 : MC_KEY_ED25519, &k, err, sizeof err) < 0) {
		mc_err("%s", err);
		return MC_EXIT_RUNTIME;
	}
	/* The comment names the key for people: NAME's last component, printable ASCII only. */
	base = strrchr(a->output, '/') ? strrchr(a->output, '/') + 1 : a->output;
	snprintf(k.comment, sizeof k.comment, "%s", base);
	for (char *c = k.comment; *c; c++)
		if ((unsigned char)*c < 0x21 || (unsigned char)*c > 0x7e)
			*c = '_';
	if (mc_key_write_pair(a->output, &k, err, sizeof err) < 0) {
		explicit_bzero(&k, sizeof k);
		mc_err("%s", err);
		return MC_EXIT_RUNTIME;
	}
	explicit_bzero(k.seed, sizeof k.seed);
	mc_keyid_hex(k.id, kid);
	if (mc_log_json()) {
		struct mc_json j;
		char kp[4096], pp[4096];
		snprintf(kp, sizeof kp, "%s.key", a->output);
		snprintf(pp, sizeof pp, "%s.pub", a->output);
		summary_begin(&j, "keygen", "complete");
		mc_json_str(&j, "path", a->output);
		mc_json_str(&j, "key_id", kid);
		mc_json_str(&j, "secret_key", kp);
		mc_json_str(&j, "public_key", pp);
		mc_json_end(&j);
	} else {
		mc_info("%s.key and %s.pub written, %s key id %s", a->output, a->output,
			a->box ? "encryption (x25519)" : "signing (ed25519)", kid);
	}
	return MC_EXIT_OK;
}

/* Appends arg to the list of a repeatable option (--trust, --encrypt-to). */
static void push_arg(const char ***v, unsigned *n, const char *opt, const char *arg)
{
	const char **t = realloc(*v, (*n + 1) * sizeof *t);

	if (t == NULL) {
		mc_err("%s: %s", opt, mc_strerror(-ENOMEM));
		exit(MC_EXIT_RUNTIME);
	}
	*v = t;
	t[(*n)++] = arg;
}

/* Applies one option to a. Usage errors exit, as -h and --version do. */
static void parse_opt(int c, struct args *a, char **argv)
{
	uint64_t v;

	if (mc_fe_common_option(&prog, c, &a->fe))
		return;
	switch (c) {
	case 'C':
		a->dir = optarg;
		break;
	case 'O':
		a->to_stdout = 1;
		break;
	case 'V':
		a->version = optarg;
		break;
	case 'j':
		if (mc_opt_uint(optarg, 0, 256, &v) < 0)
			bad_value("-j", optarg, "threads must be a number from 0 to 256");
		a->threads = (unsigned)v;
		break;
	case 'l':
		a->level_arg = optarg;
		break;
	case 'n':
		a->name = optarg;
		break;
	case 'o':
		a->output = optarg;
		break;
	case 'z': {
		int z = mc_comp_parse(optarg);
		if (z < 0)
			bad_value("-z", optarg, "compression must be zstd, gzip, xz or none");
		a->compression = (unsigned)z;
		break;
	}
	case OPT_CHUNK_SIZE:
		if (mc_opt_size(optarg, MC_CHUNK_MIN, MC_CHUNK_MAX, &v) < 0 || v % 4096)
			bad_value("--chunk-size", optarg, "must be a size from 64K to 64M, a multiple of 4K");
		a->chunk_size = (uint32_t)v;
		break;
	case OPT_MTIME:
		a->mtime_arg = optarg;
		break;
	case OPT_SESSION:
		a->session = 1;
		break;
	case OPT_IMAGE:
		a->image = 1;
		break;
	case OPT_USED_ONLY:
		a->used_only = 1;
		break;
	case OPT_FORCE:
		a->force = 1;
		break;
	case OPT_TO:
		if (*optarg == '\0')
			bad_value("--to", optarg, "must not be empty");
		a->to = optarg;
		break;
	case OPT_STATE:
		if (*optarg == '\0')
			bad_value("--state", optarg, "must not be empty");
		a->state = optarg;
		break;
	case OPT_ZEROED:
		a->zeroed = 1;
		break;
	case OPT_PRIVILEGED:
		a->privileged = 1;
		break;
	case OPT_SIGN:
		a->sign = optarg;
		break;
	case OPT_ENCRYPT:
		if (*optarg == '\0')
			bad_value("--encrypt", optarg, "must name a key file");
		a->encrypt = optarg;
		break;
	case OPT_ENCRYPT_TO:
		push_arg(&a->encrypt_to, &a->nencrypt_to, "--encrypt-to", optarg);
		break;
	case OPT_DECRYPT:
		if (*optarg == '\0')
			bad_value("--decrypt", optarg, "must name a key file");
		a->decrypt = optarg;
		break;
	case OPT_BOX:
		a->box = 1;
		break;
	case OPT_TRUST:
		push_arg(&a->trust, &a->ntrust, "--trust", optarg);
		break;
	default:
		mc_fe_bad_option(usage_text, argv);
	}
}

/*
 * The command line into a: options before the command (-q verify PKG) and
 * after it (verify -q PKG), the command, then -l and --mtime. Returns the
 * index in argv of the first operand.
 */
static int parse(int argc, char **argv, struct args *a)
{
	static const struct option longopts[] = {
		{"chunk-size", required_argument, NULL, OPT_CHUNK_SIZE},
		{"help", no_argument, NULL, 'h'},
		{"json", no_argument, NULL, MC_FE_OPT_JSON},
		{"mtime", required_argument, NULL, OPT_MTIME},
		{"session", no_argument, NULL, OPT_SESSION},
		{"image", no_argument, NULL, OPT_IMAGE},
		{"used-only", no_argument, NULL, OPT_USED_ONLY},
		{"force", no_argument, NULL, OPT_FORCE},
		{"to", required_argument, NULL, OPT_TO},
		{"state", required_argument, NULL, OPT_STATE},
		{"zeroed", no_argument, NULL, OPT_ZEROED},
		{"privileged", no_argument, NULL, OPT_PRIVILEGED},
		{"sign", required_argument, NULL, OPT_SIGN},
		MC_FE_SYSLOG_OPTION,
		{"trust", required_argument, NULL, OPT_TRUST},
		{"encrypt", required_argument, NULL, OPT_ENCRYPT},
		{"encrypt-to", required_argument, NULL, OPT_ENCRYPT_TO},
		{"decrypt", required_argument, NULL, OPT_DECRYPT},
		{"box", no_argument, NULL, OPT_BOX},
		/* long forms of the short options every program shares */
		{"output", required_argument, NULL, 'o'},
		{"quiet", no_argument, NULL, 'q'},
		{"verbose", no_argument, NULL, 'v'},
		{"version", no_argument, NULL, MC_FE_OPT_VERSION},
		{NULL, 0, NULL, 0},
	};
	static const char *const cmds[] = {"create", "extract", "info", "keygen", "list", "rewrap", "verify"};
	const char *sde;
	uint64_t v;
	int c, first;

	/* --json anywhere, before the command or after it: a usage error still ends with the summary. */
	first = mc_fe_prescan(&prog, argc, argv, "+" SHORTOPTS, longopts);
	if (first < argc)
		mc_fe_prescan(&prog, argc - first, argv + first, SHORTOPTS, longopts);
	opterr = 0; /* our own message, with the program name alone */
	while ((c = getopt_long(argc, argv, "+" SHORTOPTS, longopts, NULL)) != -1)
		parse_opt(c, a, argv);
	if (optind < argc) {
		for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
			if (strcmp(argv[optind], cmds[i]) == 0)
				a->cmd = cmds[i];
		if (a->cmd == NULL) {
			const char *near = mc_fe_nearest(argv[optind], cmds, sizeof cmds / sizeof cmds[0]);
			if (near)
				usage_error("%s: unknown command; did you mean '%s'?", argv[optind], near);
			usage_error("%s: unknown command", argv[optind]);
		}
		mc_fe_summary_about(a->cmd, NULL); /* a usage error after the command names it */
		/* 0, not 1: glibc starts afresh, and permutes, so options may follow the paths too (verify PKG --json). */
		first = optind;
		optind = 0;
		while ((c = getopt_long(argc - first, argv + first, SHORTOPTS, longopts, NULL)) != -1)
			parse_opt(c, a, argv + first);
		optind += first;
	}
	mc_fe_start(&prog, "mcast-pack", &a->fe);
	/* path as every summary has it: the package (or key) named, null when there was none. */
	mc_fe_summary_about(a->cmd, a->cmd && (strcmp(a->cmd, "create") == 0 || strcmp(a->cmd, "keygen") == 0)
					    ? a->output : optind < argc ? argv[optind] : NULL);
	if (a->cmd == NULL)
		usage_error("missing command (create, info, list, verify, extract, rewrap or keygen)");
	if (a->level_arg) {
		uint64_t lo = a->compression == MC_COMP_ZSTD ? 1 : 0, hi = a->compression == MC_COMP_ZSTD ? 22 : 9;
		if (a->compression == MC_COMP_NONE)
			bad_value("-l", a->level_arg, "-z none has no level");
		if (mc_opt_uint(a->level_arg, lo, hi, &v) < 0)
			bad_value("-l", a->level_arg, "%s level must be a number from %llu to %llu",
				  mc_comp_name(a->compression), (unsigned long long)lo, (unsigned long long)hi);
		a->level = (int)v;
	}
	if (a->mtime_arg) {
		const char *s = a->mtime_arg[0] == '@' ? a->mtime_arg + 1 : a->mtime_arg;
		if (mc_opt_uint(s, 0, INT64_MAX, &v) < 0)
			bad_value("--mtime", a->mtime_arg, "must be seconds since the epoch");
		a->mtime = (int64_t)v;
	} else if ((sde = getenv("SOURCE_DATE_EPOCH")) != NULL && *sde) {
		if (mc_opt_uint(sde, 0, INT64_MAX, &v) < 0)
			bad_value("SOURCE_DATE_EPOCH", sde, "must be seconds since the epoch");
		a->mtime = (int64_t)v;
	}
	return optind;
}

/* Each option with the commands it goes with; argc operands are left. */
static void check_args(const struct args *a, int argc, char **argv)
{
	if (strcmp(a->cmd, "keygen") == 0) {
		if (a->output == NULL || a->output[0] == '\0')
			usage_error("keygen: -o NAME is required");
		if (argc != 0)
			usage_error("keygen: takes no arguments besides -o NAME (%s)", argv[0]);
		if (a->session && a->box)
			usage_error("keygen: --session or --box, not both");
	} else if (a->session || a->box) {
		usage_error("%s: --%s is for keygen", a->cmd, a->session ? "session" : "box");
	}
	if (strcmp(a->cmd, "create") != 0 &&
	    ((a->output && strcmp(a->cmd, "keygen") != 0 && strcmp(a->cmd, "rewrap") != 0) || a->name || a->version || a->level_arg || a->threads ||
	     a->mtime_arg || a->chunk_size != MC_DEFAULT_CHUNK || a->compression != MC_COMP_ZSTD))
		usage_error("%s: -o, -n, -V, -z, -l, -j, --chunk-size and --mtime are for create", a->cmd);
	if (strcmp(a->cmd, "extract") != 0 && (a->dir || a->to_stdout))
		usage_error("%s: -C and -O are for extract", a->cmd);
	/* Images (issue 15): --image for create, --to for extract and verify, --zeroed with extract --to. */
	if (a->image && strcmp(a->cmd, "create") != 0)
		usage_error("%s: --image is for create", a->cmd);
	if (a->image && a->compression != MC_COMP_ZSTD && a->compression != MC_COMP_NONE)
		bad_value("-z", mc_comp_name(a->compression),
			  "an image's spans are zstd frames or stored as they are (-z zstd or -z none)");
	if (a->image && argc != 1)
		usage_error("create --image: expects one SOURCE (a block device, a regular file or -), got %d", argc);
	if (a->to && strcmp(a->cmd, "extract") != 0 && strcmp(a->cmd, "verify") != 0)
		usage_error("%s: --to is for extract and verify", a->cmd);
	if (a->to && (a->dir || a->to_stdout))
		usage_error("extract: --to writes onto TARGET; no -C or -O with it");
	if (a->used_only && !a->image)
		usage_error("--used-only: only with create --image");
	if (a->force && !a->used_only)
		usage_error("--force: only with create --image --used-only");
	if (a->zeroed && !(a->to && strcmp(a->cmd, "extract") == 0))
		usage_error("%s: --zeroed goes with extract --to TARGET", a->cmd);
	if (a->state && !(a->to && strcmp(a->cmd, "extract") == 0))
		usage_error("%s: --state goes with extract --to TARGET", a->cmd);
	if (a->state) {
		/* The rule of every --state (a regular file, or none yet); the name is used as given. */
		static char state[PATH_MAX];
		mc_fe_target_state(usage_text, a->to, a->state, state, sizeof state);
	}
	if (a->privileged && (strcmp(a->cmd, "extract") != 0 || a->to || a->to_stdout))
		usage_error("%s: --privileged goes with extract into a directory (-C DIR)", a->cmd);
	if (a->sign && strcmp(a->cmd, "create") != 0 && strcmp(a->cmd, "rewrap") != 0)
		usage_error("%s: --sign is for create and rewrap", a->cmd);
	if (a->ntrust && strcmp(a->cmd, "verify") != 0 && strcmp(a->cmd, "extract") != 0)
		usage_error("%s: --trust is for verify and extract", a->cmd);
	if (a->sign && a->sign[0] == '\0')
		bad_value("--sign", a->sign, "must name a secret key file");
	if (a->encrypt && strcmp(a->cmd, "create") != 0)
		usage_error("%s: --encrypt is for create", a->cmd);
	if (a->nencrypt_to && strcmp(a->cmd, "create") != 0 && strcmp(a->cmd, "rewrap") != 0)
		usage_error("%s: --encrypt-to is for create and rewrap", a->cmd);
	if (a->decrypt && strcmp(a->cmd, "verify") != 0 && strcmp(a->cmd, "extract") != 0 && strcmp(a->cmd, "list") != 0 &&
	    strcmp(a->cmd, "rewrap") != 0)
		usage_error("%s: --decrypt is for list, verify, extract and rewrap", a->cmd);
	if (strcmp(a->cmd, "rewrap") == 0 && (a->decrypt == NULL || a->output == NULL || a->output[0] == '\0'))
		usage_error("rewrap: --decrypt KEY and -o OUT are required");
	if (strcmp(a->cmd, "rewrap") == 0 && mc_fe_output_refusal(a->output))
		bad_value("-o", a->output, "%s", mc_fe_output_refusal(a->output));
	if (strcmp(a->cmd, "create") == 0) {
		check_create(a, argv, argc);
	} else if (strcmp(a->cmd, "keygen") != 0) {
		if (argc != 1)
			usage_error("%s: expects one PKG, got %d arguments", a->cmd, argc);
		if (a->to_stdout && (a->dir || a->fe.json))
			usage_error("extract: -O writes the payload to stdout; no -C or --json with it");
	}
}

int main(int argc, char **argv)
{
	struct args a = {.compression = MC_COMP_ZSTD, .level = -1, .chunk_size = MC_DEFAULT_CHUNK,
			 .mtime = -1, .fe.verbosity = 1};
	int rc = MC_EXIT_RUNTIME, first;

	mc_log_init("mcast-pack", 1, 0);
	first = parse(argc, argv, &a);
	argc -= first;
	argv += first;
	check_args(&a, argc, argv);
	if (a.decrypt) {
		if (mc_fe_decrypt_key(a.decrypt, &dkey) < 0)
			goto done;
		dkey_path = a.decrypt;
	}
	/* Every --trust key is read before the package: a bad one is an error, never a smaller trust set. */
	for (unsigned i = 0; i < a.ntrust; i++) {
		char err[1024];
		if (mc_trust_add(&trust, a.trust[i], err, sizeof err) < 0) {
			mc_err("--trust %s", err);
			goto done;
		}
	}
	if (strcmp(a.cmd, "create") == 0)
		rc = cmd_create(&a, argv, argc);
	else if (strcmp(a.cmd, "keygen") == 0)
		rc = cmd_keygen(&a);
	else if (strcmp(a.cmd, "info") == 0)
		rc = cmd_info(argv[0]);
	else if (strcmp(a.cmd, "list") == 0)
		rc = cmd_list(argv[0]);
	else if (strcmp(a.cmd, "rewrap") == 0)
		rc = cmd_rewrap(&a, argv[0]);
	else if (strcmp(a.cmd, "verify") == 0)
		rc = a.to ? cmd_verify_to(&a, argv[0]) : cmd_verify(argv[0]);
	else if (a.to)
		rc = cmd_extract_to(&a, argv[0]);
	else
		rc = cmd_extract(&a, argv[0]);
done:
	rc = mc_fe_finish(rc);
	mc_trust_free(&trust);
	free(a.trust);
	free(a.encrypt_to);
	explicit_bzero(&dkey, sizeof dkey);
	return rc;
}
