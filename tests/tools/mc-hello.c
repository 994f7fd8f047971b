/*
 * mc-hello: test tool that plays receivers waiting for a session: sends
 * well-formed HELLO datagrams (mc_wire_encode) to GROUP:PORT+1.
 *
 *   mc-hello [-g GROUP] [-p PORT] [-i IFACE] [-r RID] [-n NAME] [-c COUNT]
 *            [-w INTERVAL_MS] [-k RECEIVERS] [-H HOST]
 *
 * -k K plays K receivers, RID .. RID+K-1, each sending COUNT hellos.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "defaults.h"
#include "net.h"
#include "opt.h"
#include "wire.h"

static void die(const char *what)
{
	fprintf(stderr, "mc-hello: %s\n", what);
	exit(2);
}

int main(int argc, char **argv)
{
	const char *group = MC_DEFAULT_GROUP4, *iface = NULL, *name = "", *host = "";
	uint64_t port = MC_DEFAULT_PORT, rid = 1, count = 1, interval = 100, k = 1;
	struct mc_group g, fb;
	struct mc_pkt p;
	uint8_t buf[MC_WIRE_FEEDBACK_MAX];
	char err[256];
	int c, fd;

	while ((c = getopt(argc, argv, "H:c:g:i:k:n:p:r:w:")) != -1) {
		switch (c) {
		case 'H': host = optarg; break;
		case 'c': if (mc_opt_uint(optarg, 1, 1000000, &count) < 0) die("-c: bad count"); break;
		case 'g': group = optarg; break;
		case 'i': iface = optarg; break;
		case 'k': if (mc_opt_uint(optarg, 1, 100000, &k) < 0) die("-k: bad number"); break;
		case 'n': name = optarg; break;
		case 'p': if (mc_opt_uint(optarg, 1, 65534, &port) < 0) die("-p: bad port"); break;
		case 'r': if (mc_opt_uint(optarg, 0, UINT64_MAX, &rid) < 0) die("-r: bad rid"); break;
		case 'w': if (mc_opt_uint(optarg, 0, 60000, &interval) < 0) die("-w: bad interval"); break;
		default: die("usage: mc-hello [-g GROUP] [-p PORT] [-i IFACE] [-r RID] [-n NAME] [-c COUNT] [-w MS] [-k N] [-H HOST]");
		}
	}
	int rc = mc_net_group(group, (uint16_t)port, iface, &g, err, sizeof err);
	if (rc < 0) { /* the reason alone: -EINVAL says the group is at fault, else the interface */
		fprintf(stderr, "mc-hello: %s %s: %s\n", rc == -EINVAL ? "-g" : "-i", rc == -EINVAL ? group : iface, err);
		exit(2);
	}
	mc_net_group_port(&g, (uint16_t)(port + 1), &fb);
	fd = mc_net_sender(&fb, 1, err, sizeof err);
	if (fd < 0)
		die(err);
	for (uint64_t i = 0; i < count; i++) {
		for (uint64_t r = 0; r < k; r++) {
			size_t len;
			memset(&p, 0, sizeof p);
			p.type = MC_PKT_HELLO;
			p.u.hello.rid = rid + r;
			snprintf(p.u.hello.name, sizeof p.u.hello.name, "%s", name);
			snprintf(p.u.hello.host, sizeof p.u.hello.host, "%s", host);
			len = mc_wire_encode(&p, buf, sizeof buf);
			if (len == 0)
				die("encode failed");
			if (mc_net_send(fd, &fb, buf, len) < 0)
				perror("mc-hello: send");
		}
		if (i + 1 < count && interval) {
			struct timespec ts = { (time_t)(interval / 1000), (long)(interval % 1000) * 1000000 };
			nanosleep(&ts, NULL);
		}
	}
	close(fd);
	return 0;
}
