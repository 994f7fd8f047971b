/* The wire format (mcast-protocol(7)): the only code that knows packet byte layouts. */
#ifndef MC_WIRE_H
#define MC_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "pkg.h"

/*
 * Every packet starts with a 12-byte common header, big-endian:
 *   0  magic "MCS" (3)   3 version (1)   4 type (1)   5 flags (1)
 *   6  pass (2): DATA: the sender's pass, modulo 65536; others zero
 *   8  session id (4)
 * Sender packets go to GROUP:PORT, receiver feedback to GROUP:PORT+1.
 */
#define MC_WIRE_VERSION 2
#define MC_WIRE_HDR 12
/*
 * DATA packets, the bulk of the traffic, carry only the common header with
 * the ESI in the flags byte, and the global block number (16 bytes): the
 * block's place, length and k follow from the announced geometry.
 */
#define MC_WIRE_DATA_HDR 16
#define MC_WIRE_FEEDBACK_MAX 1200 /* feedback datagrams stay below any sane MTU */
#define MC_WIRE_NACK_MAX ((MC_WIRE_FEEDBACK_MAX - 28) / 8)
#define MC_WIRE_CTRL_MAX 64
/*
 * A HELLO's optional host name (after the package name): at most this many
 * bytes are kept (HOST_NAME_MAX on Linux), a longer one is cut.
 */
#define MC_HOST_MAX 64
/* Manifest fragments: 1024 bytes each at multiples of 1024 (the last shorter). */
#define MC_MANIFEST_FRAG 1024
/*
 * A receiver holds the DATA it hears before its first announcement, up to
 * MC_EARLY_MAX datagrams (about 6 MB); the sender announces at least every
 * MC_ANNOUNCE_PKTS datagrams, so a joiner misses none.
 */
#define MC_EARLY_MAX 4096
#define MC_ANNOUNCE_PKTS (MC_EARLY_MAX / 2)
/* What IPv4 or IPv6 and UDP headers add to every datagram: counted against the rate. */
#define MC_WIRE_IP4_UDP 28
#define MC_WIRE_IP6_UDP 48
static inline unsigned mc_wire_ip_udp(int ipv6) { return ipv6 ? MC_WIRE_IP6_UDP : MC_WIRE_IP4_UDP; }
/* Symbol size for an MTU and address family: the largest multiple of 16 that fits a DATA datagram without fragmentation (0: none). */
uint16_t mc_wire_sym_for_mtu(unsigned mtu, int ipv6);
/*
 * The sender interleaves the symbols of up to this many consecutive jobs
 * (blocks), so a burst of lost datagrams (a dropped GSO train, a switch
 * buffer overflow) costs each block a few symbols instead of most of one.
 * Receivers count a block as passed only when the sender is this far beyond it.
 */
#define MC_INTERLEAVE 32

/*
 * Heartbeats: a welcomed receiver says HELLO every MC_HEARTBEAT_MS, or less
 * often in a big session (from the count in ANNOUNCE), so that all of them
 * together send about MC_HEARTBEATS_PER_S: membership feedback per second
 * stays the same however many listen, as RTCP scales its reports. The
 * sender's --peer-timeout stretches in the same proportion.
 */
#define MC_HEARTBEAT_MS 1000
#define MC_HEARTBEATS_PER_S 500
static inline uint64_t mc_heartbeat_ms(unsigned receivers)
{
	uint64_t ms = (uint64_t)receivers * 1000 / MC_HEARTBEATS_PER_S;
	return ms > MC_HEARTBEAT_MS ? ms : MC_HEARTBEAT_MS;
}

enum mc_wire_type {
	MC_PKT_ANNOUNCE = 1, /* sender: session description, >= once a second */
	MC_PKT_MANIFEST = 2, /* sender: manifest fragment */
	MC_PKT_DATA = 3,     /* sender: one source or repair symbol */
	MC_PKT_END = 4,      /* sender: session over */
	MC_PKT_CTRL = 5,     /* sender: per-receiver verdicts (welcome, leave, done) */
	MC_PKT_HELLO = 16,   /* receiver: joined / still here / waiting for a package */
	MC_PKT_NACK = 17,    /* receiver: symbols still needed per block */
	MC_PKT_DONE = 18,    /* receiver: complete and verified */
	MC_PKT_BYE = 19,     /* receiver: leaving incomplete */
};

/* Flags in the common header. */
#define MC_FLAG_IDLE 0x01   /* ANNOUNCE: sender has nothing queued, waiting for NACKs */
#define MC_FLAG_ENDING 0x02 /* ANNOUNCE: session ends soon (linger) */
/*
 * ANNOUNCE: the package is a seekable image (format 2): nchunks spans of
 * chunk_size bytes of image, each chunk stored in at most chunk_size bytes
 * (a hole in none), payload_size the stored bytes in all. Where each chunk
 * lies comes from the manifest, so receivers place DATA only once it is
 * complete. Without the flag, chunks are chunk_size bytes (the last shorter).
 */
#define MC_FLAG_IMAGE 0x04
#define MC_IMAGE_MANIFEST_PER_CHUNK 64 /* bound on an image manifest's bytes per chunk (37, 53 encrypted) */
#define MC_MANIFEST_PER_CHUNK 32 /* the same for a format-1 manifest (16: a digest; 32 encrypted: and its tag) */
/*
 * Bound on a manifest's bytes beside its per-chunk arrays: the head (name,
 * version), volume records, an encryption section of up to
 * MC_ENC_RECIPS_MAX sealed boxes of 88 bytes, a signature trailer.
 */
#define MC_MANIFEST_EXTRA_MAX (128u << 10)
#define MC_FLAG_WELCOMED 0x01 /* HELLO: the sender already welcomed this receiver */

enum mc_ctrl_code { MC_CTRL_WELCOME = 1, MC_CTRL_LEAVE = 2, MC_CTRL_DONE = 3 };
enum mc_end_reason { MC_END_COMPLETE = 0, MC_END_MAX_TIME = 1, MC_END_SIGNAL = 2, MC_END_NOBODY = 3, MC_END_DAMAGED = 4 };

#define MC_NEED_ALL 0xffff
/* A NACK's flags byte: the receiver's loss in 256ths (0 unknown), at most this much counts. */
#define MC_LOSS_MAX 192

struct mc_announce {
	uint8_t id[MC_ID_LEN];
	uint64_t payload_size;
	uint32_t manifest_len;
	uint32_t chunk_size;
	uint32_t nchunks;       /* with MC_FLAG_IMAGE: spans of the image, else ceil(payload_size / chunk_size) */
	uint16_t symbol_size;   /* bytes of payload per DATA packet */
	uint16_t kmax;          /* source symbols per full coding block */
	uint32_t pass;          /* 1 = first pass */
	uint32_t cursor;        /* global block index the sender is at */
	uint64_t rate;          /* bits per second */
	uint16_t joined, complete;
	uint16_t max_passes;    /* slow-receiver policy */
	uint8_t image;          /* MC_FLAG_IMAGE: set by decode from the flags, and encode sets the flag */
	char name[MC_NAME_MAX + 1];
};

struct mc_data {
	uint32_t block;         /* global block index: chunk * blocks_per_chunk + block in chunk */
	uint16_t esi;           /* < k: source symbol; >= k: repair symbol; < 255 */
	const uint8_t *sym;     /* symbol_size bytes */
	uint16_t sym_len;
};

struct mc_manifest_frag {
	uint32_t total, offset;
	uint16_t len;
	const uint8_t *bytes;
};

struct mc_ctrl_entry {
	uint64_t rid;
	uint8_t code;
};

struct mc_nack_entry {
	uint32_t block;  /* global block index: chunk * blocks_per_chunk + block in chunk */
	uint16_t run;    /* this and the next run-1 blocks */
	uint16_t need;   /* symbols still needed in each, MC_NEED_ALL: the whole block */
};

struct mc_hello {
	uint64_t rid;
	uint8_t want_id[MC_ID_LEN]; /* the package asked for: its first want_nhex hex digits */
	uint8_t want_nhex;          /* 0: any package; 32: exactly want_id; 8-31: an --expect prefix */
	uint32_t have, total;       /* verified chunks, chunks (0 if unknown) */
	char name[MC_NAME_MAX + 1]; /* wanted package name, "" for any */
	char host[MC_HOST_MAX + 1]; /* the receiver's host name, "" when it sent none; printable (mc_wire_host) */
};

struct mc_pkt {
	uint8_t type, flags;
	uint16_t pass;  /* DATA only */
	uint32_t session;
	union {
		struct mc_announce ann;
		struct mc_data data;
		struct mc_manifest_frag man;
		struct {
			uint8_t id[MC_ID_LEN];
			uint8_t reason;
		} end;
		struct {
			uint16_t n;
			struct mc_ctrl_entry e[MC_WIRE_CTRL_MAX];
		} ctrl;
		struct mc_hello hello;
		struct {
			uint64_t rid;
			uint32_t pass;
			uint16_t n;
			uint16_t overruns; /* datagrams its kernel dropped for want of buffer, so far, modulo 65536 */
			struct mc_nack_entry e[MC_WIRE_NACK_MAX];
		} nack;
		struct {
			uint64_t rid;
			uint8_t id[MC_ID_LEN];
		} done; /* DONE and BYE */
	} u;
};

/*
 * Decodes a datagram. Anything malformed (bad magic, other version, unknown
 * type, lengths that do not add up) returns a negative mc_wire_err and
 * touches nothing but *p. Pointers in *p point into buf.
 */
enum mc_wire_err { MC_WIRE_EMAGIC = -1, MC_WIRE_EVERSION = -2, MC_WIRE_ETYPE = -3, MC_WIRE_ESHORT = -4, MC_WIRE_EFIELD = -5 };
int mc_wire_decode(const uint8_t *buf, size_t len, struct mc_pkt *p);

/*
 * Encoders write into out (cap bytes) and return the length, or 0 when it
 * does not fit. mc_wire_encode_data_hdr writes only the 16-byte header of a
 * DATA packet so the caller can gather the symbol from elsewhere.
 */
size_t mc_wire_encode(const struct mc_pkt *p, uint8_t *out, size_t cap);
void mc_wire_encode_data_hdr(uint32_t session, uint16_t pass, const struct mc_data *d, uint8_t out[MC_WIRE_DATA_HDR]);

/*
 * Copies a host name for a HELLO or from one (n bytes of src, which may hold
 * anything): at most MC_HOST_MAX bytes, each outside printable ASCII without
 * the space (0x21-0x7e) turned into '?', so a name from the network can
 * neither forge a log line nor break a JSON string. out has MC_HOST_MAX + 1 bytes.
 */
void mc_wire_host(const char *src, size_t n, char *out);

/* Name of a packet type, for logs. */
const char *mc_wire_type_name(unsigned type);

#endif
