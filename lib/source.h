/* Repair sources: byte ranges of a package from HTTP(S) (libcurl) or a file path. */
#ifndef MC_SOURCE_H
#define MC_SOURCE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "pkg.h"

/*
 * A source is one copy of a package somewhere else: "http://…", "https://…",
 * "file://PATH" or a plain PATH. A URL ending in '/' or a PATH naming a
 * directory gets the package's file name appended (mc_source_open's name).
 *
 * HTTP sources use libcurl's multi interface: up to `parallel` transfers at
 * once over reused keep-alive connections, several ranges per request while
 * the server answers multipart/byteranges (falling back to one range per
 * request when it does not), and one plain GET filtered to the wanted bytes
 * when the server ignores ranges altogether. Redirects are followed (HTTP and
 * HTTPS only); proxies come from the environment (http_proxy, https_proxy,
 * no_proxy), as libcurl reads them. File sources use pread.
 */

struct mc_source;

struct mc_source_opts {
	const char *cacert;           /* PEM bundle for HTTPS, NULL: system store */
	int insecure;                 /* skip TLS peer and host verification */
	const char *const *headers;   /* extra "Name: value" request headers */
	unsigned nheaders;
	unsigned parallel;            /* transfers at once, >= 1 */
	uint64_t stall_ms;            /* the stall window (mcast-repair --timeout); 0: MC_SOURCE_STALL_MS */
};

/*
 * A fetch is judged over windows of stall_ms: one that brought fewer bytes
 * than the minimum rate (mc_source_set_min_rate, at least one byte) over the
 * window ends with MC_SOURCE_STALLED, the transfers cut. So a server that
 * accepts and then says nothing, or trickles its body, costs one window.
 */
#define MC_SOURCE_STALL_MS 15000

/* Byte range of the package file, [off, off + len). */
struct mc_range {
	uint64_t off, len;
};

/*
 * Receives fetched bytes: len bytes at file offset off, delivered in order
 * within one transfer slot (slot < parallel) but interleaved between slots.
 * Bytes outside the requested ranges may arrive (servers that ignore ranges).
 * Returns 0 to go on, -1 to stop the whole fetch (mc_source_fetch then fails
 * with MC_SOURCE_ABORTED).
 */
typedef int (*mc_source_sink)(void *ctx, unsigned slot, uint64_t off, const uint8_t *p, size_t len);

/*
 * What to do with a source after mc_source_open or mc_source_fetch failed
 * (their negative returns, the reason in err). A class, not an errno code:
 * the answer to "ask it again later, give it up, stop, or leave it for
 * now", which the caller's retry policy needs whatever the cause (an HTTP
 * status, a TLS failure, a short body, an errno); ordered by how serious it
 * is (the lowest wins when transfers fail differently). An allocation
 * failure gives the source up (PERMANENT) and says "out of memory".
 * lib/exitcode.h lists it beside the yes/no parsers.
 */
enum {
	MC_SOURCE_TRANSIENT = -1, /* worth retrying later: connection, timeout, 5xx, 429, short body */
	MC_SOURCE_PERMANENT = -2, /* this source will not do: 4xx, bad TLS, no such file, wrong package */
	MC_SOURCE_ABORTED = -3,   /* the sink asked to stop */
	MC_SOURCE_STALLED = -4,   /* no byte, or fewer than the minimum rate, over a stall window */
};

/* What a source did so far. */
struct mc_source_stats {
	uint64_t bytes;      /* response body bytes received, headers of multipart parts included */
	uint64_t requests;   /* requests made (file sources: reads) */
	uint64_t retry_after_ms; /* last Retry-After the server asked for, 0 none */
	uint64_t busy_ms;    /* time spent in mc_source_fetch (bytes / busy_ms is its rate) */
	int no_ranges;       /* the server answered a range request with the whole file */
};

/*
 * Global set-up and clean-up of libcurl; call once around all sources (not
 * thread safe, as curl_global_init). Returns 0, -ENOMEM, or -EIO (libcurl
 * could not start its TLS library).
 */
int mc_source_global_init(void);
void mc_source_global_cleanup(void);

/*
 * Prepares a source for spec; name is the package's file name, appended to
 * directory specs. Makes no request yet. Returns 0 and *out, or a negative
 * errno code with the reason in err: -EINVAL (a URL scheme we do not read),
 * -ENOMEM.
 */
int mc_source_new(const char *spec, const char *name, const struct mc_source_opts *o,
		  struct mc_source **out, char *err, size_t errlen);
void mc_source_free(struct mc_source *s);

/* Checks that spec names a kind of source this library reads. Returns 0, or mc_source_new's code with the reason in err. */
int mc_source_check_spec(const char *spec, char *err, size_t errlen);

/* The resolved address or path, for messages. */
const char *mc_source_name(const struct mc_source *s);

/* 1 for a file source (a path: what fails there fails again), 0 for HTTP(S). */
int mc_source_is_local(const struct mc_source *s);

/*
 * The rate in bytes per second under which a window of HTTP fetching counts
 * as a stall (0: only a window without any byte does). File sources ignore it.
 */
void mc_source_set_min_rate(struct mc_source *s, uint64_t bytes_per_s);

/*
 * Reads the source's header and, when m is not NULL, its manifest into m
 * (caller frees with mc_manifest_free). Fills id with the package id the
 * source declares and checks that header and manifest agree. Returns 0, or a
 * negative class above with "reason" in err (the caller adds the name).
 */
int mc_source_open(struct mc_source *s, uint8_t id[MC_ID_LEN], struct mc_manifest *m, char *err, size_t errlen);

/*
 * Fetches n ranges (sorted, not overlapping) and hands the bytes to sink.
 * Returns 0 when every request completed (a server may still have sent less
 * than asked: the caller checks what it got), or a negative class with the
 * first failure in err and, for MC_SOURCE_TRANSIENT, the server's
 * Retry-After in the stats. Stops early when *stop becomes non-zero.
 */
int mc_source_fetch(struct mc_source *s, const struct mc_range *r, size_t n,
		    mc_source_sink sink, void *ctx, volatile sig_atomic_t *stop, char *err, size_t errlen);

void mc_source_get_stats(const struct mc_source *s, struct mc_source_stats *st);

/*
 * Streaming parser of a multipart/byteranges body (RFC 9110 14.6), exposed
 * for unit tests. Init with the boundary from Content-Type; feed body bytes
 * in pieces of any size; each part's data goes to sink with its offset.
 */
struct mc_multipart {
	char boundary[80];
	size_t blen;
	int state;          /* 0 seek boundary, 1 part headers, 2 data, 3 done, -1 error */
	char line[256];
	size_t llen;
	int line_long;      /* current line overflowed: not a boundary nor a range */
	int have_range;
	uint64_t off, left;
};

/* Takes the boundary out of a Content-Type value. Returns 0 or -1 (not multipart/byteranges). */
int mc_multipart_init(struct mc_multipart *mp, const char *content_type);

/* Feeds body bytes. Returns 0, -1 on malformed input, or the sink's -1 as -2. */
int mc_multipart_feed(struct mc_multipart *mp, const uint8_t *p, size_t n,
		      mc_source_sink sink, void *ctx, unsigned slot);

/* Parses "bytes A-B/TOTAL" (TOTAL may be '*'). Returns 0 with off, len (and total or UINT64_MAX), or -1. */
int mc_content_range_parse(const char *v, uint64_t *off, uint64_t *len, uint64_t *total);

#endif
