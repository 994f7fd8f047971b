/* Unit tests of lib/net.c's answers: negative errno codes (lib/exitcode.h), the reason naming the group or interface. */
#include <errno.h>
#include <string.h>

#include "net.h"
#include "tap.h"

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
	ok(mc_net_group("10.0.0.1", 7077, NULL, &g, err, sizeof err) == -EINVAL && strstr(err, "10.0.0.1") && errno == 0,
	   "a unicast address: -EINVAL, errno untouched: %s", err);
	ok(mc_net_group("224.0.0.5", 7077, NULL, &g, err, sizeof err) == -EINVAL && strstr(err, "224.0.0.0/24"),
	   "the link-local control block: -EINVAL: %s", err);
	ok(mc_net_group("239.1.2.3:9000", 7077, NULL, &g, err, sizeof err) == -EINVAL && strstr(err, "-p 9000"),
	   "a port in the group: -EINVAL, with the way to say it: %s", err);
	ok(mc_net_group("nonsense", 7077, NULL, &g, err, sizeof err) == -EINVAL, "not an address: -EINVAL: %s", err);
	ok(mc_net_group("239.1.2.3", 7077, "mcast-no-such0", &g, err, sizeof err) == -ENODEV &&
		   strstr(err, "interface mcast-no-such0"),
	   "an interface that is not there: if_nametoindex's -ENODEV: %s", err);

	/* A socket call that fails says its own code: a send on a closed descriptor. */
	ok(mc_net_group("239.1.2.3", 7077, NULL, &g, err, sizeof err) == 0, "group again");
	ok(mc_net_send(-1, &g, "x", 1) == -EBADF, "mc_net_send on a bad descriptor: -EBADF");
	struct iovec iov[2] = {{(void *)"h", 1}, {(void *)"s", 1}};
	ok(mc_net_send_batch(-1, &g, iov, 2, 2, 0) == -EBADF, "mc_net_send_batch (sendmmsg) on a bad descriptor: -EBADF");
	ok(mc_net_send_batch(-1, &g, iov, 2, 2, 1) == -EBADF, "mc_net_send_batch (GSO) on a bad descriptor: -EBADF");
	ok(mc_net_rx_init(&rx, 4, 2048) == 0, "receive buffers");
	ok(mc_net_rx(-1, &rx) == -EBADF, "mc_net_rx on a bad descriptor: -EBADF");
	mc_net_rx_free(&rx);
	return tap_done();
}
