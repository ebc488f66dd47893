// SPDX-License-Identifier: MIT
/*
 * cut-env.so: a power cut in the middle of a boot environment store, at a
 * point the host can see (tests/e2e/sysd.sh). Preloaded into one tandem
 * command (LD_PRELOAD), it watches the writes that reach the environment
 * files (/boot/uboot*.env, through libubootenv). Each is announced on the
 * console as "TANDEM-E2E env-write n=N". With E2E_CUT_ENV=TEXT, the first
 * write whose data holds TEXT (BOOT_ORDER=B: the store that activates B)
 * is where the power goes: E2E_CUT_ENV_HOW=half (the default) writes its
 * first half only and syncs it, =before writes nothing; then it prints
 * "TANDEM-E2E cut-point env-store n=N" and stops. The host kills QEMU on
 * that line: the copy being written is torn, or the store never began.
 * The host's 0.1 s polling of the console is too slow for the gap
 * between the activate phase's event and its store (about 40 ms).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int writes;

static int is_env(int fd)
{
	char link[64], path[256];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n <= 0)
		return 0;
	path[n] = '\0';
	return strncmp(path, "/boot/uboot", 11) == 0;
}

static void say(const char *msg)
{
	int c = open("/dev/console", O_WRONLY | O_NOCTTY);

	if (c >= 0) {
		if (write(c, msg, strlen(msg)) < 0) {
			/* nothing to do: the marker is best effort */
		}
		close(c);
	}
}

/* Returns the count to write now; does not return on the cut. */
static size_t check(int fd, size_t count, ssize_t (*half)(int, const void *, size_t, off_t),
		    const void *buf, off_t off)
{
	char msg[96];
	const char *want, *how;

	if (!is_env(fd))
		return count;
	writes++;
	snprintf(msg, sizeof(msg), "TANDEM-E2E env-write n=%d len=%zu\n", writes, count);
	say(msg);
	want = getenv("E2E_CUT_ENV");
	if (!want || !*want || !memmem(buf, count, want, strlen(want)))
		return count;
	how = getenv("E2E_CUT_ENV_HOW");
	if (!how || strcmp(how, "before") != 0) {
		if (half(fd, buf, count / 2, off) < 0)
			say("TANDEM-E2E cut-env: the half write failed\n");
		fsync(fd);
	}
	sync();
	snprintf(msg, sizeof(msg), "TANDEM-E2E cut-point env-store n=%d\n", writes);
	say(msg);
	for (;;)
		pause();
}

static ssize_t half_write(int fd, const void *buf, size_t n, off_t off)
{
	ssize_t (*real)(int, const void *, size_t) = dlsym(RTLD_NEXT, "write");

	(void)off;
	return real(fd, buf, n);
}

static ssize_t half_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	ssize_t (*real)(int, const void *, size_t, off_t) = dlsym(RTLD_NEXT, "pwrite");

	return real(fd, buf, n, off);
}

ssize_t write(int fd, const void *buf, size_t count)
{
	ssize_t (*real)(int, const void *, size_t) = dlsym(RTLD_NEXT, "write");

	return real(fd, buf, check(fd, count, half_write, buf, 0));
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t off)
{
	ssize_t (*real)(int, const void *, size_t, off_t) = dlsym(RTLD_NEXT, "pwrite");

	return real(fd, buf, check(fd, count, half_pwrite, buf, off), off);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t off)
{
	return pwrite(fd, buf, count, off);
}
