/* Multicast sockets and batched I/O; see net.h. */
#include "net.h"
#include "exitcode.h"
#include "auth.h"
#include "defaults.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <linux/sock_diag.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

/*
 * Socket buffers asked for (the kernel doubles them for its bookkeeping).
 * A receiver's is large: it rides out a scheduling stall of its reader,
 * which at gigabits a second otherwise costs datagrams by the thousand
 * (1 GiB at 10 Gbit/s with a CPU hog beside: overruns fell from 720-2709
 * to 0-788 with 128 MiB instead of 32). The memory is the kernel's and is
 * taken only while the reader is behind.
 */
#define RCVBUF (128 * 1024 * 1024)
#define SNDBUF (32 * 1024 * 1024)

int mc_net_group(const char *group, uint16_t port, const char *iface, struct mc_group *g, char *err, size_t errlen)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)&g->sa;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&g->sa;

	memset(g, 0, sizeof *g);
	if (iface && *iface) {
		g->ifindex = if_nametoindex(iface);
		if (g->ifindex == 0) {
			/* Never -EINVAL: that code says the group is at fault (net.h). */
			int e = errno && errno != EINVAL ? errno : ENODEV;
			snprintf(err, errlen, "%s", mc_strerror(-e));
			return -e;
		}
	}
	if (inet_pton(AF_INET, group, &s4->sin_addr) == 1) {
		if (!IN_MULTICAST(ntohl(s4->sin_addr.s_addr))) {
			snprintf(err, errlen, "not an IPv4 multicast address (224.0.0.0/4)");
			return -EINVAL;
		}
		/*
		 * 224.0.0.0/24 is the link-local control block (OSPF, VRRP, mDNS):
		 * never subject to IGMP snooping, so every switch floods it to every
		 * port, and an image stream there reaches every machine on the LAN.
		 */
		if ((ntohl(s4->sin_addr.s_addr) & 0xffffff00u) == 0xe0000000u) {
			snprintf(err, errlen, "in 224.0.0.0/24, the link-local control block every switch "
				 "floods to every port: use an administratively scoped group in 239.0.0.0/8, such as %s",
				 MC_DEFAULT_GROUP4);
			return -EINVAL;
		}
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		g->salen = sizeof *s4;
		g->family = AF_INET;
		snprintf(g->text, sizeof g->text, "%s:%u", group, port);
		return 0;
	}
	if (inet_pton(AF_INET6, group, &s6->sin6_addr) == 1) {
		if (!IN6_IS_ADDR_MULTICAST(&s6->sin6_addr)) {
			snprintf(err, errlen, "not an IPv6 multicast address (ff00::/8)");
			return -EINVAL;
		}
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		s6->sin6_scope_id = g->ifindex;
		g->salen = sizeof *s6;
		g->family = AF_INET6;
		snprintf(g->text, sizeof g->text, "[%s]:%u", group, port);
		return 0;
	}
	/* "239.1.2.3:9000" or "[ff15::1]:9000": the port has its own option. */
	const char *colon = strrchr(group, ':');
	char host[INET6_ADDRSTRLEN + 2];
	size_t hl = colon ? (size_t)(colon - group) : 0;
	if (colon && hl < sizeof host && colon[1] && strspn(colon + 1, "0123456789") == strlen(colon + 1)) {
		memcpy(host, group, hl);
		host[hl] = '\0';
		if (hl > 2 && host[0] == '[' && host[hl - 1] == ']') {
			memmove(host, host + 1, hl - 2);
			host[hl - 2] = '\0';
		}
		struct in6_addr a6;
		if (inet_pton(AF_INET, host, &a6) == 1 || inet_pton(AF_INET6, host, &a6) == 1) {
			snprintf(err, errlen, "give the port with -p: -g %s -p %s", host, colon + 1);
			return -EINVAL;
		}
	}
	snprintf(err, errlen, "not an IP address");
	return -EINVAL;
}

unsigned mc_net_route_mtu(const struct mc_group *g)
{
	int fd = socket(g->family, SOCK_DGRAM | SOCK_CLOEXEC, 0), mtu = 0;
	socklen_t len = sizeof mtu;

	if (fd < 0)
		return 0;
	/* A connected UDP socket holds its route: IP_MTU is that route's MTU (multicast follows the interface set). */
	if (g->ifindex && g->family == AF_INET) {
		struct ip_mreqn mr = {.imr_ifindex = (int)g->ifindex};
		setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mr, sizeof mr);
	} else if (g->ifindex) {
		int ifi = (int)g->ifindex;
		setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifi, sizeof ifi);
	}
	if (connect(fd, (const struct sockaddr *)&g->sa, g->salen) < 0 ||
	    getsockopt(fd, g->family == AF_INET ? IPPROTO_IP : IPPROTO_IPV6, g->family == AF_INET ? IP_MTU : IPV6_MTU,
		       &mtu, &len) < 0)
		mtu = 0;
	close(fd);
	return mtu > 0 ? (unsigned)mtu : 0;
}

void mc_net_group_port(const struct mc_group *g, uint16_t port, struct mc_group *out)
{
	char host[INET6_ADDRSTRLEN];

	*out = *g;
	if (g->family == AF_INET) {
		((struct sockaddr_in *)&out->sa)->sin_port = htons(port);
		inet_ntop(AF_INET, &((struct sockaddr_in *)&g->sa)->sin_addr, host, sizeof host);
		snprintf(out->text, sizeof out->text, "%s:%u", host, port);
	} else {
		((struct sockaddr_in6 *)&out->sa)->sin6_port = htons(port);
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&g->sa)->sin6_addr, host, sizeof host);
		snprintf(out->text, sizeof out->text, "[%s]:%u", host, port);
	}
}

/* Root may exceed net.core.[rw]mem_max with the FORCE variants; others get what the sysctl allows. */
static void bigbuf(int fd, int opt, int force, int v)
{

	if (setsockopt(fd, SOL_SOCKET, force, &v, sizeof v) < 0)
		setsockopt(fd, SOL_SOCKET, opt, &v, sizeof v);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

size_t mc_net_hwaddrs(char *buf, size_t len)
{
	struct ifaddrs *ifa, *i;
	char (*mac)[3 * 32] = NULL;
	size_t n = 0, cap = 0, out = 0;

	if (len)
		buf[0] = '\0';
	if (getifaddrs(&ifa) < 0)
		return 0;
	for (i = ifa; i; i = i->ifa_next) {
		const struct sockaddr_ll *ll = (const struct sockaddr_ll *)i->ifa_addr;
		if (ll == NULL || ll->sll_family != AF_PACKET || (i->ifa_flags & IFF_LOOPBACK) || ll->sll_halen == 0 ||
		    ll->sll_halen > 8)
			continue;
		if (n == cap) {
			void *m = realloc(mac, (cap = cap ? 2 * cap : 8) * sizeof *mac);
			if (m == NULL)
				break;
			mac = m;
		}
		size_t k = 0;
		for (unsigned b = 0; b < ll->sll_halen; b++)
			k += (size_t)snprintf(mac[n] + k, sizeof mac[n] - k, "%02x%s", ll->sll_addr[b],
					      b + 1 < ll->sll_halen ? ":" : "|");
		n++;
	}
	freeifaddrs(ifa);
	if (n)
		qsort(mac, n, sizeof *mac, cmp_str);
	for (size_t j = 0; j < n && out + 1 < len; j++)
		out += (size_t)snprintf(buf + out, len - out, "%s", mac[j]);
	free(mac);
	return out < len ? out : (len ? len - 1 : 0);
}

/* What to try when the kernel will not bind or join without an interface. */
static const char *iface_hint(const struct mc_group *g, int e)
{
	if (g->ifindex == 0 && (e == ENODEV || e == EINVAL || e == EADDRNOTAVAIL || e == ENETUNREACH))
		return " (no route to the group: name the interface with -i)";
	return "";
}

/*
 * A failed setup call: "GROUP: WHAT: reason" (and the -i hint where one
 * helps) in err, fd closed when open; returns -e. e is the errno the call
 * left, passed in before anything here can change it.
 */
static int setup_fail(int fd, const struct mc_group *g, const char *what, int e, int hint, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s: %s: %s%s", g->text, what, mc_strerror(e), hint ? iface_hint(g, e) : "");
	if (fd >= 0)
		close(fd);
	return -e;
}

int mc_net_listen(const struct mc_group *g, int gro, char *err, size_t errlen)
{
	int fd, one = 1;

	fd = socket(g->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return setup_fail(fd, g, "socket", errno, 0, err, errlen);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
	bigbuf(fd, SO_RCVBUF, SO_RCVBUFFORCE, RCVBUF);
	if (gro)
		setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one);
	/* Binding to the group itself keeps other groups sharing the port out of this socket. */
	if (bind(fd, (const struct sockaddr *)&g->sa, g->salen) < 0)
		return setup_fail(fd, g, "bind", errno, 1, err, errlen);
	if (g->family == AF_INET) {
		struct ip_mreqn mr;
		memset(&mr, 0, sizeof mr);
		mr.imr_multiaddr = ((const struct sockaddr_in *)&g->sa)->sin_addr;
		mr.imr_ifindex = (int)g->ifindex;
		if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof mr) < 0)
			return setup_fail(fd, g, "join", errno, 1, err, errlen);
		int zero = 0;
		setsockopt(fd, IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof zero);
		setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
	} else {
		struct ipv6_mreq mr;
		memset(&mr, 0, sizeof mr);
		mr.ipv6mr_multiaddr = ((const struct sockaddr_in6 *)&g->sa)->sin6_addr;
		mr.ipv6mr_interface = g->ifindex;
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, &mr, sizeof mr) < 0)
			return setup_fail(fd, g, "join", errno, 1, err, errlen);
	}
	return fd;
}

int mc_net_sender(const struct mc_group *g, int ttl, char *err, size_t errlen)
{
	int fd, one = 1;

	fd = socket(g->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return setup_fail(fd, g, "socket", errno, 0, err, errlen);
	bigbuf(fd, SO_SNDBUF, SO_SNDBUFFORCE, SNDBUF);
	if (g->family == AF_INET) {
		unsigned char t = (unsigned char)ttl, loop = 1;
		struct ip_mreqn mr;
		memset(&mr, 0, sizeof mr);
		mr.imr_ifindex = (int)g->ifindex;
		if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &t, sizeof t) < 0 ||
		    setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof loop) < 0 ||
		    (g->ifindex && setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mr, sizeof mr) < 0))
			return setup_fail(fd, g, "multicast options", errno, 0, err, errlen);
	} else {
		int hops = ttl;
		unsigned idx = g->ifindex;
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof hops) < 0 ||
		    setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &one, sizeof one) < 0 ||
		    (idx && setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &idx, sizeof idx) < 0))
			return setup_fail(fd, g, "multicast options", errno, 0, err, errlen);
	}
	/* Never fragment: datagrams are sized to the MTU, a bigger one is a bug to see, not to hide. */
	if (g->family == AF_INET) {
		int pmtu = IP_PMTUDISC_PROBE;
		setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu);
	}
	return fd;
}

int mc_net_gso_ok(int fd)
{
	int v = 0;
	socklen_t l = sizeof v;

	return getsockopt(fd, SOL_UDP, UDP_SEGMENT, &v, &l) == 0;
}

/* One sendmsg of datagrams of seg bytes each (the last possibly shorter) with UDP GSO. Returns 0 or -errno. */
static int send_gso(int fd, const struct mc_group *g, struct iovec *iov, size_t niov, uint16_t seg)
{
	union {
		char buf[CMSG_SPACE(sizeof(uint16_t))];
		struct cmsghdr align;
	} u;
	struct msghdr mh;

	/* CMSG_SPACE pads past CMSG_LEN: the kernel copies the padding too (valgrind: uninitialised bytes). */
	memset(&u, 0, sizeof u);
	memset(&mh, 0, sizeof mh);
	mh.msg_name = (void *)&g->sa;
	mh.msg_namelen = g->salen;
	mh.msg_iov = iov;
	mh.msg_iovlen = niov;
	mh.msg_control = u.buf;
	mh.msg_controllen = sizeof u.buf;
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_UDP;
	c->cmsg_type = UDP_SEGMENT;
	c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
	memcpy(CMSG_DATA(c), &seg, sizeof seg);
	return sendmsg(fd, &mh, 0) < 0 ? -errno : 0;
}

/* The session key's context (mc_net_set_auth), NULL when sessions are not authenticated. */
static struct mc_auth *net_auth;

void mc_net_set_auth(struct mc_auth *a)
{
	net_auth = a;
}

/* sendmmsg of n datagrams (at most SEND_EACH_MAX) of per pieces each, iov[per * i] on: 0 or -errno. */
#define SEND_EACH_MAX 128
static int send_each(int fd, const struct mc_group *g, struct iovec *iov, unsigned n, unsigned per)
{
	struct mmsghdr msgs[SEND_EACH_MAX];

	for (unsigned d = 0; d < n; d++) {
		memset(&msgs[d], 0, sizeof msgs[d]);
		msgs[d].msg_hdr.msg_name = (void *)&g->sa;
		msgs[d].msg_hdr.msg_namelen = g->salen;
		msgs[d].msg_hdr.msg_iov = &iov[per * d];
		msgs[d].msg_hdr.msg_iovlen = per;
	}
	for (unsigned done = 0; done < n;) {
		int r = sendmmsg(fd, msgs + done, n - done, 0);
		if (r < 0)
			return -errno;
		done += (unsigned)r;
	}
	return 0;
}

/*
 * mc_net_send_batch with authentication: each header/symbol pair gets its
 * trailer as a third piece; GSO segments grow by MC_AUTH_LEN, and a batch is
 * cut so that it stays within one UDP datagram's 65507 bytes.
 */
static int send_batch_auth(int fd, const struct mc_group *g, struct iovec *iov, unsigned niov, uint16_t seg, int gso)
{
	enum { MAXD = SEND_EACH_MAX };
	uint8_t tr[MAXD][MC_AUTH_LEN];
	struct iovec v[3 * MAXD];
	unsigned nd = niov / 2, per = gso ? 65000u / ((unsigned)seg + MC_AUTH_LEN) : MAXD;

	if (per == 0)
		per = 1;
	if (per > MAXD)
		per = MAXD;
	for (unsigned d0 = 0; d0 < nd; d0 += per) {
		unsigned k = nd - d0 < per ? nd - d0 : per;
		for (unsigned d = 0; d < k; d++) {
			v[3 * d] = iov[2 * (d0 + d)];
			v[3 * d + 1] = iov[2 * (d0 + d) + 1];
			if (mc_auth_seal(net_auth, &v[3 * d], 2, tr[d]) < 0)
				return -EIO;
			v[3 * d + 2].iov_base = tr[d];
			v[3 * d + 2].iov_len = MC_AUTH_LEN;
		}
		if (gso) {
			int rc = send_gso(fd, g, v, 3 * k, (uint16_t)(seg + MC_AUTH_LEN));
			if (rc < 0)
				return rc;
		} else {
			int rc = send_each(fd, g, v, k, 3);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

int mc_net_send_batch(int fd, const struct mc_group *g, struct iovec *iov, unsigned niov, uint16_t seg, int gso)
{
	if (net_auth)
		return send_batch_auth(fd, g, iov, niov, seg, gso);
	if (gso)
		return send_gso(fd, g, iov, niov, seg);
	/* Without GSO: iov holds header/symbol pairs, one datagram per pair. */
	return send_each(fd, g, iov, niov / 2 < SEND_EACH_MAX ? niov / 2 : SEND_EACH_MAX, 2);
}

int mc_net_send(int fd, const struct mc_group *g, const void *buf, size_t len)
{
	if (net_auth) {
		uint8_t tr[MC_AUTH_LEN];
		struct iovec v[2] = {{(void *)buf, len}, {tr, MC_AUTH_LEN}};
		struct msghdr mh;
		if (mc_auth_seal(net_auth, v, 1, tr) < 0)
			return -EIO;
		memset(&mh, 0, sizeof mh);
		mh.msg_name = (void *)&g->sa;
		mh.msg_namelen = g->salen;
		mh.msg_iov = v;
		mh.msg_iovlen = 2;
		return sendmsg(fd, &mh, 0) < 0 ? -errno : 0;
	}
	if (sendto(fd, buf, len, 0, (const struct sockaddr *)&g->sa, g->salen) < 0)
		return -errno;
	return 0;
}

int mc_net_rx_init(struct mc_rx *rx, unsigned n, size_t size)
{
	memset(rx, 0, sizeof *rx);
	rx->n = n;
	rx->size = size;
	rx->bufs = malloc((size_t)n * size);
	rx->msgs = calloc(n, sizeof *rx->msgs);
	rx->iov = calloc(n, sizeof *rx->iov);
	rx->from = calloc(n, sizeof *rx->from);
	rx->cmsg = calloc(n, sizeof *rx->cmsg);
	rx->segsize = calloc(n, sizeof *rx->segsize);
	if (!rx->bufs || !rx->msgs || !rx->iov || !rx->from || !rx->cmsg || !rx->segsize) {
		mc_net_rx_free(rx);
		return -ENOMEM;
	}
	return 0;
}

void mc_net_rx_free(struct mc_rx *rx)
{
	free(rx->bufs);
	free(rx->msgs);
	free(rx->iov);
	free(rx->from);
	free(rx->cmsg);
	free(rx->segsize);
	memset(rx, 0, sizeof *rx);
}

int mc_net_rx(int fd, struct mc_rx *rx)
{
	int r;

	for (unsigned i = 0; i < rx->n; i++) {
		rx->iov[i].iov_base = rx->bufs + (size_t)i * rx->size;
		rx->iov[i].iov_len = rx->size;
		memset(&rx->msgs[i].msg_hdr, 0, sizeof rx->msgs[i].msg_hdr);
		rx->msgs[i].msg_hdr.msg_iov = &rx->iov[i];
		rx->msgs[i].msg_hdr.msg_iovlen = 1;
		rx->msgs[i].msg_hdr.msg_name = &rx->from[i];
		rx->msgs[i].msg_hdr.msg_namelen = sizeof rx->from[i];
		rx->msgs[i].msg_hdr.msg_control = rx->cmsg[i];
		rx->msgs[i].msg_hdr.msg_controllen = sizeof rx->cmsg[i];
	}
	r = recvmmsg(fd, rx->msgs, rx->n, MSG_DONTWAIT, NULL);
	if (r < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -errno;
	for (int i = 0; i < r; i++) {
		struct msghdr *mh = &rx->msgs[i].msg_hdr;
		rx->segsize[i] = 0;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c))
			if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
				int v;
				memcpy(&v, CMSG_DATA(c), sizeof v);
				if (v > 0 && v < 65536)
					rx->segsize[i] = (uint16_t)v;
			}
	}
	return r;
}

uint32_t mc_net_overruns(int fd)
{
	uint32_t mi[SK_MEMINFO_VARS];
	socklen_t len = sizeof mi;

	if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mi, &len) < 0 || len <= SK_MEMINFO_DROPS * sizeof mi[0])
		return 0;
	return mi[SK_MEMINFO_DROPS];
}

size_t mc_net_rx_seg(const struct mc_rx *rx, unsigned i, unsigned j, const uint8_t **p)
{
	size_t total = rx->msgs[i].msg_len;
	size_t seg = rx->segsize[i] ? rx->segsize[i] : total;
	size_t off = (size_t)j * seg;

	if (seg == 0 || off >= total)
		return 0;
	*p = rx->bufs + (size_t)i * rx->size + off;
	size_t n = total - off < seg ? total - off : seg;
	if (net_auth) {
		/* Not authentic: a runt in its place, which the wire decoder drops and counts as bad. */
		static const uint8_t runt[1];
		long m = mc_auth_open(net_auth, *p, n);
		if (m < 0) {
			*p = runt;
			return 1;
		}
		n = (size_t)m;
	}
	return n;
}

char *mc_net_addr_str(const struct sockaddr_storage *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (sa->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &s->sin_addr, host, sizeof host);
		snprintf(buf, len, "%s:%u", host, ntohs(s->sin_port));
	} else if (sa->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof host);
		snprintf(buf, len, "[%s]:%u", host, ntohs(s->sin6_port));
	} else {
		snprintf(buf, len, "?");
	}
	return buf;
}
