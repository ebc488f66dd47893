// SPDX-License-Identifier: MIT
/* Scratch directory shared by the targets that need files (keys, state). */
#include "fuzz_common.h"

#include <dirent.h>
#include <unistd.h>

static char scratch[512];

static void remove_scratch(void)
{
	DIR *d = opendir(scratch);
	struct dirent *e;
	char path[1024];

	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", scratch, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(scratch);
}

char *fuzz_scratch_dir(void)
{
	const char *tmp = getenv("TMPDIR");

	if (scratch[0])
		return scratch;
	/* fuzz_state saves with fsync for every input: on tmpfs that costs
	 * nothing, on a disk it would be most of the run time. */
	if (!tmp || !*tmp)
		tmp = access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(scratch, sizeof(scratch), "%s/tandem-fuzz-XXXXXX", tmp);
	if (!mkdtemp(scratch)) {
		perror("mkdtemp");
		abort();
	}
	atexit(remove_scratch);
	return scratch;
}
