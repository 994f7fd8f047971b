/*
 * bench/blast: the UDP GSO/GRO ceiling for bench/peers. "send" blasts a
 * multicast group with UDP_SEGMENT (SEGS segments of SEG bytes per sendmsg,
 * no pacing); "recv" joins the group and reads with UDP_GRO and recvmmsg. Each
 * prints one line: bytes, seconds, MB/s (10^6 bytes per second of UDP payload).
 *
 *   blast send GROUP PORT IFADDR SECONDS [SEG [SEGS]]
 *   blast recv GROUP PORT IFADDR [IDLE_SECONDS]
 *
 * The receiver times from its first datagram to its last, and stops after
 * IDLE_SECONDS (default 1) of silence. Built by bench/peers with cc.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "blast: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void bufsize(int fd, int opt, int force, int bytes)
{
	if (setsockopt(fd, SOL_SOCKET, force, &bytes, sizeof bytes) < 0)
		setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof bytes);
}

static int do_send(const char *group, int port, const char *ifaddr, double secs, int seg, int segs)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port)};
	struct in_addr ifa;
	unsigned char ttl = 1, loop = 0;
	size_t len = (size_t)seg * segs;
	char *buf = calloc(1, len);
	uint64_t bytes = 0, calls = 0, errs = 0;

	if (fd < 0 || buf == NULL)
		die("socket");
	inet_pton(AF_INET, group, &to.sin_addr);
	inet_pton(AF_INET, ifaddr, &ifa);
	if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &ifa, sizeof ifa) < 0)
		die("IP_MULTICAST_IF");
	setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl);
	setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof loop);
	bufsize(fd, SO_SNDBUF, SO_SNDBUFFORCE, 8 << 20);
	if (setsockopt(fd, IPPROTO_UDP, UDP_SEGMENT, &seg, sizeof seg) < 0)
		die("UDP_SEGMENT");
	if (connect(fd, (struct sockaddr *)&to, sizeof to) < 0)
		die("connect");
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)(i * 131 + 7);
	double t0 = now_s(), t1 = t0;
	while (t1 - t0 < secs) {
		ssize_t n = send(fd, buf, len, 0);
		if (n < 0) {
			if (errno != ENOBUFS && errno != EAGAIN)
				die("send");
			errs++;
		} else {
			bytes += (uint64_t)n;
		}
		if ((++calls & 63) == 0)
			t1 = now_s();
	}
	t1 = now_s();
	printf("send bytes %llu secs %.3f MBps %.1f calls %llu enobufs %llu\n", (unsigned long long)bytes, t1 - t0,
	       bytes / (t1 - t0) / 1e6, (unsigned long long)calls, (unsigned long long)errs);
	return 0;
}

#define VLEN 64
#define RBUF 65536

static int do_recv(const char *group, int port, const char *ifaddr, double idle)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0), one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	struct ip_mreq mr;
	static char bufs[VLEN][RBUF];
	static char ctl[VLEN][CMSG_SPACE(sizeof(int))];
	struct mmsghdr msgs[VLEN];
	struct iovec iov[VLEN];
	uint64_t bytes = 0, dgrams = 0, calls = 0;
	double first = 0, last = 0;

	if (fd < 0)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	inet_pton(AF_INET, group, &a.sin_addr);
	if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0)
		die("bind");
	inet_pton(AF_INET, group, &mr.imr_multiaddr);
	inet_pton(AF_INET, ifaddr, &mr.imr_interface);
	if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof mr) < 0)
		die("IP_ADD_MEMBERSHIP");
	bufsize(fd, SO_RCVBUF, SO_RCVBUFFORCE, 64 << 20);
	if (setsockopt(fd, IPPROTO_UDP, UDP_GRO, &one, sizeof one) < 0)
		die("UDP_GRO");
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int wait_ms = first ? (int)(idle * 1000) : 60000;
		if (poll(&p, 1, wait_ms) <= 0)
			break;
		for (int i = 0; i < VLEN; i++) {
			iov[i] = (struct iovec){bufs[i], RBUF};
			memset(&msgs[i], 0, sizeof msgs[i]);
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
			msgs[i].msg_hdr.msg_control = ctl[i];
			msgs[i].msg_hdr.msg_controllen = sizeof ctl[i];
		}
		int n = recvmmsg(fd, msgs, VLEN, MSG_DONTWAIT, NULL);
		if (n <= 0)
			continue;
		calls++;
		last = now_s();
		if (!first)
			first = last;
		for (int i = 0; i < n; i++) {
			unsigned len = msgs[i].msg_len, segsz = len;
			struct cmsghdr *c;
			for (c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c; c = CMSG_NXTHDR(&msgs[i].msg_hdr, c))
				if (c->cmsg_level == IPPROTO_UDP && c->cmsg_type == UDP_GRO)
					memcpy(&segsz, CMSG_DATA(c), sizeof(int));
			bytes += len;
			dgrams += segsz ? (len + segsz - 1) / segsz : 1;
		}
	}
	double dt = last - first;
	printf("recv bytes %llu secs %.3f MBps %.1f datagrams %llu recvmmsg %llu\n", (unsigned long long)bytes, dt,
	       dt > 0 ? bytes / dt / 1e6 : 0.0, (unsigned long long)dgrams, (unsigned long long)calls);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 6 && strcmp(argv[1], "send") == 0)
		return do_send(argv[2], atoi(argv[3]), argv[4], atof(argv[5]), argc > 6 ? atoi(argv[6]) : 1440,
			       argc > 7 ? atoi(argv[7]) : 44);
	if (argc >= 5 && strcmp(argv[1], "recv") == 0)
		return do_recv(argv[2], atoi(argv[3]), argv[4], argc > 5 ? atof(argv[5]) : 1.0);
	fprintf(stderr, "usage: blast send GROUP PORT IFADDR SECONDS [SEG [SEGS]]\n"
			"       blast recv GROUP PORT IFADDR [IDLE_SECONDS]\n");
	return 2;
}
