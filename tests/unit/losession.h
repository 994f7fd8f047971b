/* Test fixture: multicast sessions on loopback inside a network namespace of the test's own (root only). */
#ifndef MC_TEST_LOSESSION_H
#define MC_TEST_LOSESSION_H

#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net.h"
#include "pkg.h"
#include "rxloop.h"
#include "txloop.h"

/* Moves the process into a new network namespace with multicast on lo. 0: not root, or it failed. */
static inline int losession_namespace(void)
{
	if (geteuid() != 0 || unshare(CLONE_NEWNET) < 0)
		return 0;
	return system("ip link set lo up multicast on && ip route add 224.0.0.0/4 dev lo") == 0;
}

/*
 * A sender of the package at pkg in a child process: group:port (feedback
 * on port + 1), rate bit/s, for at most max_ms. Returns its pid (the child
 * exits 0 when its session ended by itself).
 */
static inline pid_t losession_sender(const char *pkg, const char *group, unsigned port, uint64_t max_ms, uint64_t rate)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	struct mc_txloop_cfg c;
	struct mc_pkg p;
	struct mc_txloop *l;
	char err[512];
	memset(&c, 0, sizeof c);
	if (mc_pkg_open(pkg, &p, err, sizeof err) < 0 || mc_net_group(group, port, NULL, &c.g, err, sizeof err) < 0)
		_exit(10);
	mc_net_group_port(&c.g, port + 1, &c.gfb);
	c.ttl = 1;
	c.pkg = &p;
	c.rate = rate;
	c.mtu = 1500;
	c.core.linger_ms = 200;
	c.core.max_time_ms = max_ms;
	c.core.peer_timeout_ms = 2000;
	c.core.max_passes = 12;
	if ((l = mc_txloop_new(&c, err, sizeof err)) == NULL || mc_txloop_open(l, err, sizeof err) < 0)
		_exit(11);
	int reason = mc_txloop_run(l, err, sizeof err);
	mc_txloop_end(l, reason < 0 ? MC_END_SIGNAL : reason);
	mc_txloop_free(l);
	mc_pkg_close(&p);
	_exit(reason < 0 ? 12 : 0);
}

/*
 * Runs a receive driver with c to its end, then its final save when
 * incomplete (errors said as TAP comments). *lp: the loop, for the caller
 * to look at and free (NULL when it could not be made). Returns its result,
 * or -1 when it could not be made or opened.
 */
static inline int losession_receive(const struct mc_rxloop_cfg *c, struct mc_rxloop **lp)
{
	char err[512];
	int res;

	if ((*lp = mc_rxloop_new(c, err, sizeof err)) == NULL || mc_rxloop_open(*lp, err, sizeof err) < 0) {
		printf("# %s\n", err);
		return -1;
	}
	res = mc_rxloop_run(*lp, err, sizeof err);
	if (res == MC_RXL_ERROR)
		printf("# %s\n", err);
	if (res != MC_RXL_COMPLETE && mc_rxloop_save(*lp, err, sizeof err) < 0)
		printf("# final save: %s\n", err);
	return res;
}

/*
 * Ends receiver child r once its state caught up: the receiver stopped the
 * sender (*frozen), and the verified chunks on disk (on_disk(), -1 none)
 * equal the receiver's count (*nhave), at least floor, three looks in a row
 * (10 ms apart, at most 30 s: a broken saver fails rather than hangs).
 * Then r is killed (SIGKILL: no final save), or with stop set (not NULL) it
 * stops and makes its final save; either way it is waited for. *seen: the
 * last count on disk. Returns 1 when r was ended so, 0 when it ended by
 * itself or never caught up (then killed).
 */
static inline int losession_end_saved(pid_t r, volatile int *frozen, volatile uint32_t *nhave, long (*on_disk)(void),
				      long floor, volatile sig_atomic_t *stop, long *seen)
{
	int status, stable = 0;

	*seen = -1;
	for (int i = 0; i < 3000; i++) {
		usleep(10000);
		if (waitpid(r, &status, WNOHANG) == r)
			return 0;
		if (!*frozen)
			continue;
		uint32_t n = *nhave;
		*seen = on_disk();
		stable = *seen == (long)n && *seen >= floor ? stable + 1 : 0;
		if (stable == 3 && *nhave == n) {
			if (stop)
				*stop = 1;
			else
				kill(r, SIGKILL);
			waitpid(r, &status, 0);
			return 1;
		}
	}
	kill(r, SIGKILL);
	waitpid(r, &status, 0);
	return 0;
}

#endif
