/*
 * Authenticated sessions (--session-key, issue 17): every datagram of a
 * session (announce, manifest, data, end, hello, NACK, done, whatever the
 * protocol has) carries a trailer with its sender's origin, a sequence
 * number and a GMAC tag (AES-256-GCM over the datagram, no ciphertext) under
 * the 32-byte session key. A datagram whose tag does not match, or that
 * repeats one already taken (a replay window per origin), is dropped and
 * counted before the protocol sees it. OpenSSL 3's libcrypto does the AES.
 */
#ifndef MC_AUTH_H
#define MC_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "crypto.h"

/*
 * The trailer after a datagram's bytes, 28 bytes:
 *   0 origin (8: random per process, new after 2^32 datagrams)
 *   8 sequence (u32, big-endian, from 0 per origin)
 *  12 tag (16): AES-256-GCM with IV = origin || sequence (12 bytes) and the
 *     datagram's bytes as additional data; nothing encrypted.
 * The IV never repeats under one key as long as origins do not collide (64
 * random bits per process and per 2^32 datagrams).
 */
#define MC_AUTH_LEN 28
#define MC_AUTH_ORIGINS 4096 /* origins whose replay windows are kept (the least recently heard go first) */
#define MC_AUTH_WINDOW 64    /* sequence numbers behind the newest that are still taken once */

struct mc_auth_stats {
	uint64_t sealed;   /* datagrams sent with a trailer */
	uint64_t ok;       /* received and authentic */
	uint64_t forged;   /* tag did not match (or too short to carry one) */
	uint64_t replayed; /* authentic but already taken, or behind the window */
};

struct mc_auth;

/* A context for one session key. NULL when out of memory or when the cipher is missing. */
struct mc_auth *mc_auth_new(const uint8_t key[MC_SESSION_KEY_LEN]);
void mc_auth_free(struct mc_auth *a);

/*
 * Seals one datagram made of the n iovecs: writes its trailer, to be sent
 * right after them. Thread-safe. Returns 0, or -1 (the cipher failed).
 */
int mc_auth_seal(struct mc_auth *a, const struct iovec *iov, unsigned n, uint8_t trailer[MC_AUTH_LEN]);

/*
 * Checks a received datagram of len bytes, trailer included: returns the
 * length of what it carries (len - MC_AUTH_LEN), or -1 when it is forged,
 * replayed or too short (counted in the stats). Thread-safe.
 */
long mc_auth_open(struct mc_auth *a, const uint8_t *p, size_t len);

/* Counters so far (a copy). */
struct mc_auth_stats mc_auth_get_stats(struct mc_auth *a);

#endif
