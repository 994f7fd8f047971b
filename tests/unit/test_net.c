/* Unit tests of lib/net.c's answers: negative errno codes (lib/exitcode.h), the reason naming the group or interface (mc_net_group: the code says which). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "net.h"
#include "tap.h"

/*
 * strerror that leaves errno set to clobber when asked: the code a call
 * returns must be the failed call's errno, saved before the reason is
 * written. Plain builds only: ASan has its own strerror in front of glibc's.
 */
#ifndef __SANITIZE_ADDRESS__
#define CLOBBER 1
static int clobber;
char *strerror(int e)
{
	static char buf[128];

	snprintf(buf, sizeof buf, "%s", strerrordesc_np(e) ? strerrordesc_np(e) : "Unknown error");
	if (clobber)
		errno = clobber;
	return buf;
}
#endif

int main(void)
{
	struct mc_group g;
	char err[256] = "";
	struct mc_rx rx;

	ok(mc_net_group("239.1.2.3", 7077, NULL, &g, err, sizeof err) == 0 && strcmp(g.text, "239.1.2.3:7077") == 0,
	   "an IPv4 group: %s", g.text);
	ok(mc_net_group("ff15::1", 7077, NULL, &g, err, sizeof err) == 0 && strcmp(g.text, "[ff15::1]:7077") == 0,
	   "an IPv6 group: %s", g.text);
	errno = 0;
	ok(mc_net_group("10.0.0.1", 7077, NULL, &g, err, sizeof err) == -EINVAL &&
		   strcmp(err, "not an IPv4 multicast address (224.0.0.0/4)") == 0 && errno == 0,
	   "a unicast address: -EINVAL, the reason alone (the caller names the group), errno untouched: %s", err);
	ok(mc_net_group("224.0.0.5", 7077, NULL, &g, err, sizeof err) == -EINVAL && strncmp(err, "in 224.0.0.0/24", 15) == 0,
	   "the link-local control block: -EINVAL: %s", err);
	ok(mc_net_group("239.1.2.3:9000", 7077, NULL, &g, err, sizeof err) == -EINVAL &&
		   strcmp(err, "give the port with -p: -g 239.1.2.3 -p 9000") == 0,
	   "a port in the group: -EINVAL, with the way to say it: %s", err);
	ok(mc_net_group("nonsense", 7077, NULL, &g, err, sizeof err) == -EINVAL && strcmp(err, "not an IP address") == 0, "not an address: -EINVAL: %s", err);
	ok(mc_net_group("239.1.2.3", 7077, "mcast-no-such0", &g, err, sizeof err) == -ENODEV &&
		   strcmp(err, "No such device") == 0,
	   "an interface that is not there: if_nametoindex's -ENODEV, not -EINVAL (the group's code): %s", err);
	ok(mc_net_group("nonsense", 7077, "mcast-no-such0", &g, err, sizeof err) == -ENODEV,
	   "the interface is looked at first: -ENODEV, %s", err);
	ok(mc_net_group("239.1.2.3", 7077, "an-interface-name-too-long", &g, err, sizeof err) == -ENODEV,
	   "a name too long for an interface: -ENODEV, %s", err);

	/* A socket call that fails says its own code: a send on a closed descriptor. */
	ok(mc_net_group("239.1.2.3", 7077, NULL, &g, err, sizeof err) == 0, "group again");
	ok(mc_net_send(-1, &g, "x", 1) == -EBADF, "mc_net_send on a bad descriptor: -EBADF");
	struct iovec iov[2] = {{(void *)"h", 1}, {(void *)"s", 1}};
	ok(mc_net_send_batch(-1, &g, iov, 2, 2, 0) == -EBADF, "mc_net_send_batch (sendmmsg) on a bad descriptor: -EBADF");
	ok(mc_net_send_batch(-1, &g, iov, 2, 2, 1) == -EBADF, "mc_net_send_batch (GSO) on a bad descriptor: -EBADF");
	ok(mc_net_rx_init(&rx, 4, 2048) == 0, "receive buffers");
	ok(mc_net_rx(-1, &rx) == -EBADF, "mc_net_rx on a bad descriptor: -EBADF");
	mc_net_rx_free(&rx);

	/* A join and multicast options through an interface index no interface has: the kernel's code, whatever runs after. */
	int rc1, rc2, fd;
	ok(mc_net_group("239.1.2.3", 7077, NULL, &g, err, sizeof err) == 0, "group again");
	g.ifindex = 0x7ffffff0;
	rc1 = mc_net_listen(&g, 0, err, sizeof err);
	ok(rc1 < 0 && strstr(err, "239.1.2.3:7077: join: ") && strstr(err, strerrordesc_np(-rc1)),
	   "a join on no interface fails with its code, said in err: %d, %s", rc1, err);
	if (rc1 >= 0)
		close(rc1);
	fd = mc_net_sender(&g, 1, err, sizeof err);
	rc2 = fd;
	ok(fd < 0 && strstr(err, "multicast options: "), "multicast options on no interface fail: %d, %s", rc2, err);
	if (fd >= 0)
		close(fd);
#ifdef CLOBBER
	clobber = EUCLEAN;
	ok(mc_net_listen(&g, 0, err, sizeof err) == rc1, "mc_net_listen: the join's code, not errno after the reason (%s)", err);
	ok(mc_net_sender(&g, 1, err, sizeof err) == rc2, "mc_net_sender: the option's code, not errno after the reason (%s)", err);
	clobber = 0;
#endif
	return tap_done();
}
