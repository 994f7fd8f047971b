/*
 * System calls a unit test can make fail once, in front of glibc's: how lib
 * says a failure is tested on its real paths. Plain builds only (ASan and
 * UBSan bring their own pread and fstat); FAIL_PREAD is defined where
 * they (and flock) are there.
 */
#ifndef MC_TEST_FAIL_H
#define MC_TEST_FAIL_H

#include <errno.h>
#include <sys/types.h>

#ifndef __SANITIZE_ADDRESS__
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FAIL_PREAD 1
/* The next pread fails with this errno (0: none), then reads again. */
static int pread_fails;
ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	if (pread_fails) {
		errno = pread_fails;
		pread_fails = 0;
		return -1;
	}
	return syscall(SYS_pread64, fd, buf, n, off);
}

/* The next fstat fails with this errno (0: none). */
static int fstat_fails;
int fstat(int fd, struct stat *sb)
{
	if (fstat_fails) {
		errno = fstat_fails;
		fstat_fails = 0;
		return -1;
	}
	return (int)syscall(SYS_fstat, fd, sb);
}

/* The next flock fails with this errno (0: none). */
static int flock_fails;
int flock(int fd, int op)
{
	if (flock_fails) {
		errno = flock_fails;
		flock_fails = 0;
		return -1;
	}
	return (int)syscall(SYS_flock, fd, op);
}
#endif

#endif
