/* Multicast sockets: groups (IPv4 and IPv6), interfaces, batching with sendmmsg/recvmmsg and UDP GSO/GRO. */
#ifndef MC_NET_H
#define MC_NET_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct mc_group {
	struct sockaddr_storage sa; /* group address and PORT */
	socklen_t salen;
	int family;                 /* AF_INET or AF_INET6 */
	unsigned ifindex;           /* 0: let the routing table choose */
	char text[64];              /* "239.1.2.3:7077" or "[ff15::1]:7077" */
};

/*
 * Parses GROUP (must be an IPv4 or IPv6 multicast address) and resolves
 * IFACE (NULL: none). port is stored in sa. Returns 0; -EINVAL when GROUP
 * is at fault (not a multicast address we take); any other code when
 * IFACE is (if_nametoindex's -errno: -ENODEV, no such interface). err gets
 * the reason alone ("not an IP address", "No such device"): the caller
 * names GROUP or IFACE as it got them ("-g 'X': ", "MCAST_IFACE 'Y': "),
 * which only it knows.
 */
int mc_net_group(const char *group, uint16_t port, const char *iface, struct mc_group *g, char *err, size_t errlen);

/*
 * The MTU of the route to g (through g's interface when it names one), as
 * the kernel would send: 0 when it cannot tell. No packet is sent.
 */
unsigned mc_net_route_mtu(const struct mc_group *g);

/* Copy of g with another port (feedback goes to PORT+1). */
void mc_net_group_port(const struct mc_group *g, uint16_t port, struct mc_group *out);

/*
 * A socket bound to the group and its port, joined on g's interface, with a
 * large receive buffer, non-blocking. gro: ask for UDP GRO (coalesced
 * datagrams, split again by mc_net_rx). Returns fd, or the failed call's
 * -errno with the reason (naming the group) in err.
 */
int mc_net_listen(const struct mc_group *g, int gro, char *err, size_t errlen);

/*
 * A socket for sending to groups: TTL/hop limit, outgoing interface,
 * multicast loopback on (receivers may share the host), large send buffer,
 * non-blocking. Returns fd, or the failed call's -errno with the reason in
 * err.
 */
int mc_net_sender(const struct mc_group *g, int ttl, char *err, size_t errlen);

/* 1 when the kernel takes UDP_SEGMENT (GSO) on fd. */
int mc_net_gso_ok(int fd);

/*
 * Sends the datagrams gathered in iov (their concatenation, each seg bytes,
 * the last possibly shorter) to g: with UDP GSO as one call when gso is set,
 * else one datagram per sendmmsg entry. Returns 0, or the call's -errno
 * (-EAGAIN when the socket buffer is full, -EIO/-EINVAL when GSO is
 * refused; -EIO also when authentication cannot seal).
 */
#include <sys/uio.h>
int mc_net_send_batch(int fd, const struct mc_group *g, struct iovec *iov, unsigned niov, uint16_t seg, int gso);

/* Sends one datagram to g (non-blocking; -EAGAIN counts as dropped). Returns 0 or the call's -errno. */
int mc_net_send(int fd, const struct mc_group *g, const void *buf, size_t len);

/*
 * Batched receive. mc_net_rx_init allocates n message buffers of size bytes
 * each (64K to hold a GRO super-datagram). mc_net_rx reads what is queued
 * without blocking and returns the number of messages (0: none, else
 * recvmmsg's -errno); mc_net_rx_init returns 0 or -ENOMEM;
 * mc_net_rx_seg then walks each message's datagrams (split by the GRO
 * segment size the kernel reports).
 */
struct mc_rx {
	unsigned n;
	size_t size;
	uint8_t *bufs;
	struct mmsghdr *msgs;
	struct iovec *iov;
	struct sockaddr_storage *from;
	uint8_t (*cmsg)[64];
	uint16_t *segsize;
};
int mc_net_rx_init(struct mc_rx *rx, unsigned n, size_t size);
void mc_net_rx_free(struct mc_rx *rx);
int mc_net_rx(int fd, struct mc_rx *rx);

/* Datagrams the kernel dropped at fd because its receive buffer was full (so far); 0 if unknown. */
uint32_t mc_net_overruns(int fd);

/*
 * The hardware addresses of this network namespace's interfaces but
 * loopback, sorted, as "aa:bb:..|" strings into buf (NUL-terminated, cut to
 * len); returns the length. Machines cloned from one image share a machine
 * id, never their cards' addresses.
 */
size_t mc_net_hwaddrs(char *buf, size_t len);
/* Datagram number j of message i (j from 0): returns its length and sets *p, or 0 after the last. */
size_t mc_net_rx_seg(const struct mc_rx *rx, unsigned i, unsigned j, const uint8_t **p);

struct mc_auth;
/*
 * --session-key (auth.h): from now on every datagram this process sends with
 * mc_net_send or mc_net_send_batch carries an authentication trailer
 * (MC_AUTH_LEN more bytes: senders size their symbols for it), and
 * mc_net_rx_seg hands over only authentic datagrams, without the trailer; a
 * forged or replayed one comes out as a 1-byte runt that the wire decoder
 * drops and counts, so nothing else in a program changes. NULL turns it off.
 * Set once, before any socket is used.
 */
void mc_net_set_auth(struct mc_auth *a);

/* Formats a socket address as "host:port" or "[v6]:port". */
char *mc_net_addr_str(const struct sockaddr_storage *sa, char *buf, size_t len);

#endif
