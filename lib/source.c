/* Repair sources: ranged reads of a package over HTTP(S) with libcurl, or from a file; see source.h. */
#include "source.h"
#include "exitcode.h"
#include "clock.h"
#include "opt.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

/*
 * Bounds of one HTTP request: nginx refuses header lines longer than its
 * large_client_header_buffers (8 KiB by default), so the Range value stays
 * well below that; 64 ranges keep a multipart answer's part headers small.
 */
#define RANGES_PER_REQ 64
#define RANGE_HDR_MAX 4000
#define REQ_BYTES_MIN (1ull << 20)
#define REQ_BYTES_MAX (64ull << 20)
#define FILE_READ_MAX (1u << 20)

enum body_kind { K_UNKNOWN, K_SINGLE, K_MULTI, K_WHOLE, K_ERROR, K_REQUEUE };

struct req {
	size_t first, count; /* ranges r[first .. first+count) */
};

struct slot {
	CURL *h;
	struct mc_source *s;
	unsigned idx;
	int busy;
	struct req rq;
	enum body_kind kind;
	uint64_t pos, end;       /* K_SINGLE / K_WHOLE: next offset; K_WHOLE: stop after end */
	int stopped_ok;          /* we cut a whole-file body on purpose */
	int sink_abort;
	int bad_body;            /* malformed 206 body */
	struct mc_multipart mp;
	char range[RANGE_HDR_MAX + 64];
	char errbuf[CURL_ERROR_SIZE];
};

struct mc_source {
	char *name;
	int is_http;
	int fd;
	unsigned parallel;
	CURLM *multi;
	struct slot *slots;
	struct curl_slist *headers;
	char *cacert;
	int insecure;
	int no_ranges;   /* server answered 200 to a range request */
	int no_multi;    /* server answered 200 to a multi-range request */
	uint64_t stall_ms, min_rate;
	struct mc_source_stats stats;
	/* the fetch in progress */
	const struct mc_range *r;
	mc_source_sink sink;
	void *ctx;
};

int mc_source_global_init(void)
{
	CURLcode c = curl_global_init(CURL_GLOBAL_DEFAULT);

	/* libcurl fails here for want of memory, or of its TLS library: neither is an errno of ours. */
	return c == CURLE_OK ? 0 : c == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EIO;
}

void mc_source_global_cleanup(void)
{
	curl_global_cleanup();
}

static char *joined(const char *a, const char *sep, const char *b)
{
	size_t na = strlen(a), ns = strlen(sep), nb = strlen(b);
	char *p = malloc(na + ns + nb + 1);

	if (p) {
		memcpy(p, a, na);
		memcpy(p + na, sep, ns);
		memcpy(p + na + ns, b, nb + 1);
	}
	return p;
}

int mc_source_new(const char *spec, const char *name, const struct mc_source_opts *o,
		  struct mc_source **out, char *err, size_t errlen)
{
	struct mc_source *s = calloc(1, sizeof *s);
	struct stat sb;

	*out = NULL;
	if (s == NULL) {
		snprintf(err, errlen, "%s", mc_strerror(-ENOMEM));
		return -ENOMEM;
	}
	s->fd = -1;
	s->parallel = o && o->parallel ? o->parallel : 1;
	s->stall_ms = o && o->stall_ms ? o->stall_ms : MC_SOURCE_STALL_MS;
	if (strncasecmp(spec, "http://", 7) == 0 || strncasecmp(spec, "https://", 8) == 0) {
		s->is_http = 1;
		size_t n = strlen(spec);
		if (n > 0 && spec[n - 1] == '/') {
			char *esc = curl_easy_escape(NULL, name, 0);
			s->name = esc ? joined(spec, "", esc) : NULL;
			curl_free(esc);
		} else {
			s->name = strdup(spec);
		}
	} else if (strncmp(spec, "file://", 7) == 0) {
		const char *p = spec + 7;
		if (strncmp(p, "localhost/", 10) == 0)
			p += 9;
		if (*p != '/') {
			snprintf(err, errlen, "only local file:// URLs are supported");
			free(s);
			return -EINVAL;
		}
		s->name = strdup(p);
	} else if (strstr(spec, "://") != NULL) {
		snprintf(err, errlen, "unsupported source (http://, https://, file:// or a path)");
		free(s);
		return -EINVAL;
	} else {
		s->name = strdup(spec);
	}
	if (s->name == NULL)
		goto nomem;
	if (!s->is_http && stat(s->name, &sb) == 0 && S_ISDIR(sb.st_mode)) {
		char *p = joined(s->name, "/", name);
		if (p == NULL)
			goto nomem;
		free(s->name);
		s->name = p;
	}
	if (s->is_http) {
		s->multi = curl_multi_init();
		s->slots = calloc(s->parallel, sizeof *s->slots);
		if (s->multi == NULL || s->slots == NULL)
			goto nomem;
		/* Keep one connection per transfer slot in the cache so every request reuses one. */
		curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, (long)s->parallel + 1);
		curl_multi_setopt(s->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
		for (unsigned i = 0; o && i < o->nheaders; i++) {
			struct curl_slist *l = curl_slist_append(s->headers, o->headers[i]);
			if (l == NULL)
				goto nomem;
			s->headers = l;
		}
		if (o && o->cacert && (s->cacert = strdup(o->cacert)) == NULL)
			goto nomem;
		s->insecure = o ? o->insecure : 0;
	}
	*out = s;
	return 0;
nomem:
	snprintf(err, errlen, "%s", mc_strerror(-ENOMEM));
	mc_source_free(s);
	return -ENOMEM;
}

int mc_source_check_spec(const char *spec, char *err, size_t errlen)
{
	struct mc_source *s = NULL;
	int rc = mc_source_new(spec, "x", NULL, &s, err, errlen);

	mc_source_free(s);
	return rc;
}

void mc_source_free(struct mc_source *s)
{
	if (s == NULL)
		return;
	for (unsigned i = 0; s->slots && i < s->parallel; i++) {
		if (s->slots[i].h) {
			if (s->slots[i].busy)
				curl_multi_remove_handle(s->multi, s->slots[i].h);
			curl_easy_cleanup(s->slots[i].h);
		}
	}
	if (s->multi)
		curl_multi_cleanup(s->multi);
	free(s->slots);
	curl_slist_free_all(s->headers);
	if (s->fd >= 0)
		close(s->fd);
	free(s->cacert);
	free(s->name);
	free(s);
}

const char *mc_source_name(const struct mc_source *s)
{
	return s->name;
}

void mc_source_get_stats(const struct mc_source *s, struct mc_source_stats *st)
{
	*st = s->stats;
	st->no_ranges = s->no_ranges;
}

int mc_source_is_local(const struct mc_source *s)
{
	return !s->is_http;
}

void mc_source_set_min_rate(struct mc_source *s, uint64_t bytes_per_s)
{
	s->min_rate = bytes_per_s;
}

/* ---- multipart/byteranges ---- */

/* A decimal number of digits only (no sign, no space: sscanf's %llu takes "-1" as 2^64-1). */
static int get_u64(const char **v, unsigned long long *out)
{
	char *e;

	if (!isdigit((unsigned char)**v))
		return -1;
	errno = 0;
	*out = strtoull(*v, &e, 10);
	if (errno == ERANGE)
		return -1;
	*v = e;
	return 0;
}

int mc_content_range_parse(const char *v, uint64_t *off, uint64_t *len, uint64_t *total)
{
	unsigned long long a, b, t = 0;

	while (*v == ' ' || *v == '\t')
		v++;
	if (strncasecmp(v, "bytes", 5) != 0)
		return -1;
	v += 5;
	while (*v == ' ' || *v == '\t')
		v++;
	/* b < UINT64_MAX: b - a + 1 bytes must be a length, and a total past b a number. */
	if (get_u64(&v, &a) < 0 || *v++ != '-' || get_u64(&v, &b) < 0 || *v++ != '/' || b < a || b == ULLONG_MAX)
		return -1;
	if (*v == '*') {
		t = UINT64_MAX;
		v++;
	} else if (get_u64(&v, &t) < 0 || t <= b) {
		return -1;
	}
	while (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')
		v++;
	if (*v)
		return -1;
	*off = a;
	*len = b - a + 1;
	if (total)
		*total = t;
	return 0;
}

int mc_multipart_init(struct mc_multipart *mp, const char *ct)
{
	const char *b;
	size_t n = 0;

	memset(mp, 0, sizeof *mp);
	if (ct == NULL || strncasecmp(ct, "multipart/byteranges", 20) != 0)
		return -1;
	b = strcasestr(ct, "boundary=");
	if (b == NULL)
		return -1;
	b += 9;
	memcpy(mp->boundary, "--", 2);
	n = 2;
	if (*b == '"') {
		for (b++; *b && *b != '"' && n < sizeof mp->boundary - 1; b++)
			mp->boundary[n++] = *b;
	} else {
		for (; *b && *b != ';' && *b != ' ' && *b != '\t' && n < sizeof mp->boundary - 1; b++)
			mp->boundary[n++] = *b;
	}
	if (n == 2 || n >= sizeof mp->boundary - 1)
		return -1;
	mp->boundary[n] = '\0';
	mp->blen = n;
	return 0;
}

/* One complete line (without CR LF) in mp->line. Returns 0 or -1 when malformed. */
static int mp_line(struct mc_multipart *mp)
{
	char *l = mp->line;
	size_t n = mp->llen;

	if (n > 0 && l[n - 1] == '\r')
		n--;
	l[n] = '\0';
	if (mp->state == 0) {
		if (mp->line_long || n < mp->blen || memcmp(l, mp->boundary, mp->blen) != 0)
			return 0; /* preamble or the CR LF before a delimiter */
		const char *rest = l + mp->blen;
		if (strncmp(rest, "--", 2) == 0)
			mp->state = 3;
		else if (strspn(rest, " \t") == strlen(rest)) {
			mp->state = 1;
			mp->have_range = 0;
		}
		return 0;
	}
	/* part headers */
	if (n == 0) {
		if (!mp->have_range)
			return -1;
		mp->state = mp->left ? 2 : 0;
		return 0;
	}
	if (mp->line_long)
		return 0;
	if (strncasecmp(l, "content-range:", 14) == 0) {
		if (mc_content_range_parse(l + 14, &mp->off, &mp->left, NULL) < 0)
			return -1;
		mp->have_range = 1;
	}
	return 0;
}

int mc_multipart_feed(struct mc_multipart *mp, const uint8_t *p, size_t n,
		      mc_source_sink sink, void *ctx, unsigned slot)
{
	while (n > 0) {
		if (mp->state < 0)
			return -1;
		if (mp->state == 3)
			return 0; /* epilogue */
		if (mp->state == 2) {
			size_t k = n < mp->left ? n : (size_t)mp->left;
			if (sink && sink(ctx, slot, mp->off, p, k) < 0)
				return -2;
			mp->off += k;
			mp->left -= k;
			p += k;
			n -= k;
			if (mp->left == 0) {
				mp->state = 0;
				mp->llen = 0;
				mp->line_long = 0;
			}
			continue;
		}
		const uint8_t *nl = memchr(p, '\n', n);
		size_t k = nl ? (size_t)(nl - p) : n;
		size_t room = sizeof mp->line - 1 - mp->llen;
		if (k > room) {
			mp->line_long = 1;
			memcpy(mp->line + mp->llen, p, room);
			mp->llen += room;
		} else {
			memcpy(mp->line + mp->llen, p, k);
			mp->llen += k;
		}
		if (nl == NULL)
			return 0;
		p += k + 1;
		n -= k + 1;
		if (mp_line(mp) < 0) {
			mp->state = -1;
			return -1;
		}
		mp->llen = 0;
		mp->line_long = 0;
	}
	return 0;
}

/* ---- HTTP ---- */

static int deliver(struct slot *sl, uint64_t off, const uint8_t *p, size_t n)
{
	struct mc_source *s = sl->s;

	if (s->sink(s->ctx, sl->idx, off, p, n) < 0) {
		sl->sink_abort = 1;
		return -1;
	}
	return 0;
}

static void classify(struct slot *sl)
{
	struct mc_source *s = sl->s;
	long code = 0;
	char *ct = NULL;
	struct curl_header *hd = NULL;
	uint64_t off, len;

	curl_easy_getinfo(sl->h, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_getinfo(sl->h, CURLINFO_CONTENT_TYPE, &ct);
	if (code == 206) {
		if (mc_multipart_init(&sl->mp, ct) == 0) {
			sl->kind = K_MULTI;
		} else if (curl_easy_header(sl->h, "Content-Range", 0, CURLH_HEADER, -1, &hd) == CURLHE_OK &&
			   mc_content_range_parse(hd->value, &off, &len, NULL) == 0) {
			sl->kind = K_SINGLE;
			sl->pos = off;
			sl->end = off + len;
		} else {
			sl->kind = K_ERROR;
			sl->bad_body = 1;
		}
	} else if (code == 200) {
		if (sl->rq.count > 1 && !s->no_multi && !s->no_ranges) {
			/* Multi-range refused: ask again one range at a time rather than take the whole file. */
			s->no_multi = 1;
			sl->kind = K_REQUEUE;
		} else {
			s->no_ranges = 1;
			sl->kind = K_WHOLE;
			sl->pos = 0;
			sl->end = s->r[sl->rq.first + sl->rq.count - 1].off + s->r[sl->rq.first + sl->rq.count - 1].len;
		}
	} else {
		sl->kind = K_ERROR;
	}
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *user)
{
	struct slot *sl = user;
	const uint8_t *p = (const uint8_t *)ptr;
	size_t n = size * nmemb;
	int rc;

	sl->s->stats.bytes += n;
	if (sl->kind == K_UNKNOWN)
		classify(sl);
	switch (sl->kind) {
	case K_ERROR:
		return sl->bad_body ? 0 : n;
	case K_REQUEUE:
		return 0;
	case K_SINGLE:
		if (n > sl->end - sl->pos) {
			sl->bad_body = 1; /* more than Content-Range said */
			return 0;
		}
		if (deliver(sl, sl->pos, p, n) < 0)
			return 0;
		sl->pos += n;
		return n;
	case K_MULTI:
		rc = mc_multipart_feed(&sl->mp, p, n, sl->s->sink, sl->s->ctx, sl->idx);
		if (rc == -2)
			sl->sink_abort = 1;
		else if (rc < 0)
			sl->bad_body = 1;
		return rc < 0 ? 0 : n;
	case K_WHOLE: {
		size_t k = sl->end - sl->pos < n ? (size_t)(sl->end - sl->pos) : n;
		if (k && deliver(sl, sl->pos, p, k) < 0)
			return 0;
		sl->pos += k;
		if (sl->pos >= sl->end) {
			sl->stopped_ok = 1; /* the rest is not wanted */
			return 0;
		}
		return n;
	}
	default:
		return 0;
	}
}

static int slot_setup(struct mc_source *s, struct slot *sl)
{
	if (sl->h == NULL) {
		sl->h = curl_easy_init();
		if (sl->h == NULL)
			return -1;
		sl->s = s;
		curl_easy_setopt(sl->h, CURLOPT_URL, s->name);
		curl_easy_setopt(sl->h, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(sl->h, CURLOPT_WRITEDATA, sl);
		curl_easy_setopt(sl->h, CURLOPT_ERRORBUFFER, sl->errbuf);
		curl_easy_setopt(sl->h, CURLOPT_PRIVATE, sl);
		curl_easy_setopt(sl->h, CURLOPT_FOLLOWLOCATION, 1L);
		curl_easy_setopt(sl->h, CURLOPT_MAXREDIRS, 10L);
		curl_easy_setopt(sl->h, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(sl->h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(sl->h, CURLOPT_NOSIGNAL, 1L);
		/* Stalls and trickles are judged by http_fetch over the whole source, not per transfer. */
		curl_easy_setopt(sl->h, CURLOPT_CONNECTTIMEOUT_MS, (long)(s->stall_ms < 15000 ? s->stall_ms : 15000));
		curl_easy_setopt(sl->h, CURLOPT_TCP_KEEPALIVE, 1L);
		curl_easy_setopt(sl->h, CURLOPT_USERAGENT, "mcast-repair/" MC_VERSION);
		if (s->headers)
			curl_easy_setopt(sl->h, CURLOPT_HTTPHEADER, s->headers);
		if (s->cacert)
			curl_easy_setopt(sl->h, CURLOPT_CAINFO, s->cacert);
		if (s->insecure) {
			curl_easy_setopt(sl->h, CURLOPT_SSL_VERIFYPEER, 0L);
			curl_easy_setopt(sl->h, CURLOPT_SSL_VERIFYHOST, 0L);
		}
	}
	sl->kind = K_UNKNOWN;
	sl->stopped_ok = sl->sink_abort = sl->bad_body = 0;
	sl->errbuf[0] = '\0';
	return 0;
}

static void start_req(struct mc_source *s, struct slot *sl, struct req rq)
{
	size_t n = 0;

	sl->rq = rq;
	if (s->no_ranges) {
		curl_easy_setopt(sl->h, CURLOPT_RANGE, NULL);
	} else {
		for (size_t i = 0; i < rq.count; i++) {
			const struct mc_range *r = &s->r[rq.first + i];
			n += (size_t)snprintf(sl->range + n, sizeof sl->range - n, "%s%" PRIu64 "-%" PRIu64,
					      i ? "," : "", r->off, r->off + r->len - 1);
		}
		curl_easy_setopt(sl->h, CURLOPT_RANGE, sl->range);
	}
	sl->busy = 1;
	s->stats.requests++;
	curl_multi_add_handle(s->multi, sl->h);
}

/* Groups ranges [*next, n) into the next request. */
static struct req next_req(struct mc_source *s, size_t n, size_t *next, uint64_t budget)
{
	struct req rq = {*next, 1};
	uint64_t bytes = s->r[*next].len;
	size_t hdr = 42;

	if (s->no_ranges) {
		rq.count = n - *next; /* one plain GET covers everything */
	} else if (!s->no_multi) {
		while (rq.first + rq.count < n && rq.count < RANGES_PER_REQ) {
			const struct mc_range *r = &s->r[rq.first + rq.count];
			if (bytes + r->len > budget || hdr + 42 > RANGE_HDR_MAX)
				break;
			bytes += r->len;
			hdr += 42;
			rq.count++;
		}
	}
	*next += rq.count;
	return rq;
}

static int is_permanent_curl(CURLcode c)
{
	switch (c) {
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_TOO_MANY_REDIRECTS:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_LOGIN_DENIED:
	case CURLE_REMOTE_FILE_NOT_FOUND:
		return 1;
	default:
		return 0;
	}
}

/* Judges a finished transfer. Returns 0, 1 (requeue its ranges one by one) or a negative class. */
static int finished(struct mc_source *s, struct slot *sl, CURLcode res, char *err, size_t errlen)
{
	long code = 0;
	curl_off_t ra = 0;

	curl_easy_getinfo(sl->h, CURLINFO_RESPONSE_CODE, &code);
	if (sl->sink_abort)
		return MC_SOURCE_ABORTED;
	if (sl->kind == K_REQUEUE)
		return 1;
	if (sl->bad_body) {
		snprintf(err, errlen, "malformed partial-content answer (HTTP %ld)", code);
		return MC_SOURCE_TRANSIENT;
	}
	if (res != CURLE_OK && !sl->stopped_ok) {
		snprintf(err, errlen, "%s", sl->errbuf[0] ? sl->errbuf : curl_easy_strerror(res));
		return is_permanent_curl(res) ? MC_SOURCE_PERMANENT : MC_SOURCE_TRANSIENT;
	}
	if (code == 200 || code == 206) {
		if (sl->kind == K_MULTI && sl->mp.state != 3 && sl->mp.state != 0) {
			snprintf(err, errlen, "multipart answer ended early");
			return MC_SOURCE_TRANSIENT;
		}
		return 0;
	}
	if (code == 408 || code == 425 || code == 429 || code >= 500) {
		if (curl_easy_getinfo(sl->h, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
			s->stats.retry_after_ms = (uint64_t)ra * 1000;
		snprintf(err, errlen, "HTTP %ld%s", code, ra > 0 ? " (Retry-After)" : "");
		return MC_SOURCE_TRANSIENT;
	}
	if (code == 416)
		snprintf(err, errlen, "HTTP 416: range not satisfiable (the source is shorter)");
	else
		snprintf(err, errlen, "HTTP %ld", code);
	return MC_SOURCE_PERMANENT;
}

static int http_fetch(struct mc_source *s, size_t n, volatile sig_atomic_t *stop, char *err, size_t errlen)
{
	struct req *queue = malloc((2 * n + 1) * sizeof *queue);
	size_t qhead = 0, qtail = 0, next = 0, active = 0;
	uint64_t total = 0, budget;
	int worst = 0, still = 0;

	if (queue == NULL) {
		snprintf(err, errlen, "%s", mc_strerror(-ENOMEM));
		return MC_SOURCE_PERMANENT;
	}
	for (size_t i = 0; i < n; i++)
		total += s->r[i].len;
	budget = total / s->parallel;
	budget = budget < REQ_BYTES_MIN ? REQ_BYTES_MIN : budget > REQ_BYTES_MAX ? REQ_BYTES_MAX : budget;
	while (next < n)
		queue[qtail++] = next_req(s, n, &next, budget);
	s->stats.retry_after_ms = 0;
	uint64_t win_t = mc_now_ms(), win_b = s->stats.bytes;
	for (;;) {
		for (unsigned i = 0; i < s->parallel && qhead < qtail && worst != MC_SOURCE_PERMANENT &&
				     !(stop && *stop); i++) {
			struct slot *sl = &s->slots[i];
			if (sl->busy)
				continue;
			sl->idx = i;
			if (slot_setup(s, sl) < 0) {
				snprintf(err, errlen, "%s", mc_strerror(-ENOMEM));
				worst = MC_SOURCE_PERMANENT;
				break;
			}
			start_req(s, sl, queue[qhead++]);
			active++;
			if (s->no_ranges)
				break; /* one whole-file stream at a time */
		}
		if (active == 0)
			break;
		if (curl_multi_perform(s->multi, &still) != CURLM_OK) {
			snprintf(err, errlen, "libcurl multi interface failed");
			worst = MC_SOURCE_PERMANENT;
		}
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(s->multi, &left)) != NULL) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			struct slot *sl = NULL;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &sl);
			for (unsigned i = 0; sl == NULL && i < s->parallel; i++)
				if (s->slots[i].h == msg->easy_handle)
					sl = &s->slots[i];
			CURLcode res = msg->data.result;
			curl_multi_remove_handle(s->multi, sl->h);
			sl->busy = 0;
			active--;
			char e[CURL_ERROR_SIZE + 64];
			int rc = finished(s, sl, res, e, sizeof e);
			if (rc == 1) {
				for (size_t k = 0; k < sl->rq.count; k++)
					queue[qtail++] = (struct req){sl->rq.first + k, 1};
			} else if (rc < 0) {
				/* Keep the most serious: aborted, then permanent, then transient. */
				if (worst == 0 || rc < worst) {
					worst = rc;
					snprintf(err, errlen, "%s", e);
				}
			}
		}
		uint64_t t = mc_now_ms();
		if (active > 0 && (worst == 0 || worst == MC_SOURCE_TRANSIENT) && t - win_t >= s->stall_ms) {
			/* The window's bytes against the floor: none at all, or a trickle. */
			uint64_t got = s->stats.bytes - win_b, floor = s->min_rate * (t - win_t) / 1000;
			if (got == 0 || got < floor) {
				char a[32], b[32];
				if (got == 0)
					snprintf(err, errlen, "stalled: no data for %.1f s", (double)(t - win_t) / 1000);
				else
					snprintf(err, errlen, "too slow: %s in %.1f s, under %s/s", mc_fmt_size(got, a, sizeof a),
						 (double)(t - win_t) / 1000, mc_fmt_size(s->min_rate, b, sizeof b));
				worst = MC_SOURCE_STALLED;
			}
			win_t = t;
			win_b = s->stats.bytes;
		}
		if (worst == MC_SOURCE_ABORTED || worst == MC_SOURCE_PERMANENT || worst == MC_SOURCE_STALLED ||
		    (stop && *stop)) {
			for (unsigned i = 0; i < s->parallel; i++) {
				if (s->slots[i].busy) {
					curl_multi_remove_handle(s->multi, s->slots[i].h);
					s->slots[i].busy = 0;
				}
			}
			break;
		}
		if (active > 0)
			curl_multi_poll(s->multi, NULL, 0, 200, NULL);
	}
	free(queue);
	if (worst == 0 && stop && *stop) {
		snprintf(err, errlen, "interrupted");
		worst = MC_SOURCE_ABORTED;
	}
	return worst;
}

/* ---- files ---- */

static int file_fetch(struct mc_source *s, size_t n, volatile sig_atomic_t *stop, char *err, size_t errlen)
{
	uint8_t *buf = malloc(FILE_READ_MAX);

	if (buf == NULL) {
		snprintf(err, errlen, "%s", mc_strerror(-ENOMEM));
		return MC_SOURCE_PERMANENT;
	}
	for (size_t i = 0; i < n; i++) {
		for (uint64_t off = s->r[i].off, end = off + s->r[i].len; off < end;) {
			size_t want = end - off < FILE_READ_MAX ? (size_t)(end - off) : FILE_READ_MAX;
			ssize_t got;
			if (stop && *stop) {
				free(buf);
				snprintf(err, errlen, "interrupted");
				return MC_SOURCE_ABORTED;
			}
			do
				got = pread(s->fd, buf, want, (off_t)off);
			while (got < 0 && errno == EINTR);
			s->stats.requests++;
			if (got <= 0) {
				if (got < 0)
					snprintf(err, errlen, "%s", mc_strerror(errno));
				else
					snprintf(err, errlen, "file ends at byte %" PRIu64, off);
				free(buf);
				return MC_SOURCE_PERMANENT;
			}
			s->stats.bytes += (uint64_t)got;
			if (s->sink(s->ctx, 0, off, buf, (size_t)got) < 0) {
				free(buf);
				return MC_SOURCE_ABORTED;
			}
			off += (uint64_t)got;
		}
	}
	free(buf);
	return 0;
}

int mc_source_fetch(struct mc_source *s, const struct mc_range *r, size_t n,
		    mc_source_sink sink, void *ctx, volatile sig_atomic_t *stop, char *err, size_t errlen)
{
	int rc;

	if (n == 0)
		return 0;
	uint64_t t0 = mc_now_ms();
	s->r = r;
	s->sink = sink;
	s->ctx = ctx;
	rc = s->is_http ? http_fetch(s, n, stop, err, errlen) : file_fetch(s, n, stop, err, errlen);
	s->r = NULL;
	s->stats.busy_ms += mc_now_ms() - t0;
	return rc;
}

/* ---- header and manifest ---- */

struct membuf {
	uint8_t *p;
	uint64_t off, len, got;
};

static int mem_sink(void *ctx, unsigned slot, uint64_t off, const uint8_t *p, size_t n)
{
	struct membuf *m = ctx;
	uint64_t a = off > m->off ? off : m->off;
	uint64_t b = off + n < m->off + m->len ? off + n : m->off + m->len;

	if (a < b) {
		memcpy(m->p + (a - m->off), p + (a - off), (size_t)(b - a));
		m->got += b - a;
	}
	return 0;
}

static int read_span(struct mc_source *s, uint8_t *buf, uint64_t off, uint64_t len, char *err, size_t errlen)
{
	struct membuf mb = {buf, off, len, 0};
	struct mc_range r = {off, len};
	int rc = mc_source_fetch(s, &r, 1, mem_sink, &mb, NULL, err, errlen);

	if (rc == 0 && mb.got < len) {
		snprintf(err, errlen, "short answer (%" PRIu64 " of %" PRIu64 " bytes at %" PRIu64 ")", mb.got, len, off);
		rc = MC_SOURCE_TRANSIENT;
	}
	return rc;
}

int mc_source_open(struct mc_source *s, uint8_t id[MC_ID_LEN], struct mc_manifest *m, char *err, size_t errlen)
{
	uint8_t hdr[MC_PKG_HDR_SIZE], *buf = NULL;
	struct mc_pkg_layout l;
	uint64_t size = UINT64_MAX;
	char why[256];
	int rc, k;

	if (!s->is_http && s->fd < 0) {
		struct stat sb;
		s->fd = open(s->name, O_RDONLY | O_CLOEXEC);
		if (s->fd < 0) {
			snprintf(err, errlen, "%s", mc_strerror(errno));
			return MC_SOURCE_PERMANENT;
		}
		if (fstat(s->fd, &sb) == 0 && S_ISREG(sb.st_mode))
			size = (uint64_t)sb.st_size;
		if (size < MC_PKG_HDR_SIZE) {
			snprintf(err, errlen, "not an mcast package: %" PRIu64 " bytes, shorter than a package header", size);
			return MC_SOURCE_PERMANENT;
		}
	}
	rc = read_span(s, hdr, 0, sizeof hdr, err, errlen);
	if (rc < 0)
		return rc;
	if (mc_pkg_header_decode(hdr, size, &l, id, why, sizeof why) < 0) {
		snprintf(err, errlen, "not an mcast package: %s", why);
		return MC_SOURCE_PERMANENT;
	}
	if (m == NULL)
		return 0;
	if (l.manifest_len > MC_MANIFEST_MAX) {
		snprintf(err, errlen, "manifest too large");
		return MC_SOURCE_PERMANENT;
	}
	if ((buf = malloc(l.manifest_len)) == NULL) {
		snprintf(err, errlen, "%s", mc_strerror(-ENOMEM));
		return MC_SOURCE_PERMANENT;
	}
	rc = read_span(s, buf, l.manifest_off, l.manifest_len, err, errlen);
	if (rc == 0 && (k = mc_manifest_parse(buf, l.manifest_len, m, why, sizeof why)) < 0) {
		snprintf(err, errlen, "%s%s", k == -ENOMEM ? "" : "bad manifest: ", why);
		rc = MC_SOURCE_PERMANENT;
	} else if (rc == 0 && memcmp(m->id, id, MC_ID_LEN) != 0) {
		mc_manifest_free(m);
		snprintf(err, errlen, "manifest does not match the package id in its header");
		rc = MC_SOURCE_PERMANENT;
	}
	free(buf);
	return rc;
}
