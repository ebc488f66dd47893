/* SPDX-License-Identifier: MIT */
/*
 * One exclusive lock for every command that changes slots, state or the
 * boot environment (install, receive, provision, poll and each poll of
 * the daemon, confirm, activate, rollback): taken before any of them
 * reads the state, held until it is done. Two of them at once could each
 * save the state it loaded and so drop the other's record (a failing
 * install wiping a concurrent successful one's: no version, no hash, no
 * security version, so the floor would not rise on confirm).
 *
 * The lock is an open file description lock (fcntl F_OFD_SETLK) on
 * state_dir/lock: the kernel releases it when its descriptor closes or
 * the process dies, power cuts leave nothing to clean up, and no other
 * descriptor of the same file (a link planted in state_dir, read by
 * Tandem) can drop it, as it would a POSIX record lock. The holder writes
 * its pid into the file for the second process's message. Children
 * (health checks, hooks) do not inherit it (O_CLOEXEC).
 * Read-only commands (status, doctor) take no lock: every file they read
 * is replaced atomically.
 */
#ifndef TANDEM_LOCK_H
#define TANDEM_LOCK_H

#include "config.h"
#include "error.h"

struct tnd_lock {
	int fd; /* -1: not held */
};

#define TND_LOCK_INIT                                                                              \
	{                                                                                          \
		.fd = -1                                                                           \
	}

/* Takes the lock for `what` (a command name, for the message), creating
 * the state directory when needed. TND_E_BUSY, naming the holder, when
 * another process has it. */
int tnd_lock_take(struct tnd_lock *l, const struct tnd_config *cfg,
		  const char *what) TND_MUST_CHECK;
/* Releases it; accepts a lock not held. */
void tnd_lock_release(struct tnd_lock *l);

#endif
