// SPDX-License-Identifier: MIT
#include "health.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static int is_check(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

/* Waits for pid up to timeout_s; kills its whole process group after. */
static int wait_bounded(pid_t pid, unsigned timeout_s, int *status, int out, char *last,
			size_t size)
{
	double deadline = tnd_now_mono() + timeout_s;
	struct timespec nap = {0, 20 * 1000 * 1000};

	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);

		tnd_drain_last_line(out, last, size);
		if (r == pid)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (tnd_now_mono() >= deadline) {
			kill(-pid, SIGKILL);
			waitpid(pid, status, 0);
			return -ETIMEDOUT;
		}
		nanosleep(&nap, NULL);
	}
}

static int run_one(const char *path, unsigned timeout_s, const char *slot_name)
{
	char last[200] = "", why[216] = "";
	int status = 0, r, pfd[2];
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC | O_NONBLOCK) < 0)
		return tnd_err_errno(TND_E_HEALTH, errno, "cannot start health check %s", path);
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return tnd_err_errno(TND_E_HEALTH, errno, "cannot start health check %s", path);
	}
	if (pid == 0) {
		/* Own process group, so a check that forks is killed whole. */
		setpgid(0, 0);
		setenv("TANDEM_SLOT", slot_name, 1);
		dup2(pfd[1], STDOUT_FILENO);
		dup2(pfd[1], STDERR_FILENO);
		tnd_child_fds();
		execl(path, path, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	setpgid(pid, pid);
	r = wait_bounded(pid, timeout_s, &status, pfd[0], last, sizeof(last));
	close(pfd[0]);
	if (last[0])
		snprintf(why, sizeof(why), ": %s", last);
	if (r == -ETIMEDOUT)
		return tnd_err_set(TND_E_HEALTH, "health check %s did not finish within %u s", path,
				   timeout_s);
	if (r < 0)
		return tnd_err_errno(TND_E_HEALTH, -r, "health check %s", path);
	if (WIFSIGNALED(status))
		return tnd_err_set(TND_E_HEALTH, "health check %s was killed by signal %d%s", path,
				   WTERMSIG(status), why);
	if (WEXITSTATUS(status) == 127)
		return tnd_err_set(TND_E_HEALTH, "health check %s could not be run", path);
	if (WEXITSTATUS(status))
		return tnd_err_set(TND_E_HEALTH, "health check %s failed (exit status %d)%s", path,
				   WEXITSTATUS(status), why);
	return 0;
}

int tnd_health_run(const char *dir, unsigned timeout_s, const char *slot_name, unsigned *count)
{
	struct dirent **list = NULL;
	int n, ret = 0;

	*count = 0;
	n = scandir(dir, &list, is_check, alphasort);
	if (n < 0) {
		if (errno == ENOENT) {
			tnd_info("no health checks (%s does not exist)", dir);
			return 0;
		}
		return tnd_err_errno(TND_E_HEALTH, errno, "cannot read health checks in %s", dir);
	}
	for (int i = 0; i < n; i++) {
		char path[PATH_MAX];
		struct stat st;

		snprintf(path, sizeof(path), "%s/%s", dir, list[i]->d_name);
		/* Only executable regular files are checks: a README may sit beside them. */
		if (!ret && stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111)) {
			tnd_debug("running health check %s", path);
			ret = run_one(path, timeout_s, slot_name);
			(*count)++;
		}
		free(list[i]);
	}
	free(list);
	return ret;
}
