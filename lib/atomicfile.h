/* SPDX-License-Identifier: MIT */
/*
 * Crash-safe replacement of a small file: write PATH.tmp, fsync it,
 * rename over PATH, fsync it again (vfat), fsync the directory. After a power cut PATH holds
 * either the old or the new content, never a mix; a leftover PATH.tmp is
 * ignored and replaced by the next write (removed and created anew: a
 * symlink there is never followed). PATH itself is replaced by rename,
 * which does not follow a symlink either.
 */
#ifndef TANDEM_ATOMICFILE_H
#define TANDEM_ATOMICFILE_H

#include <stddef.h>

#include "error.h"

int tnd_atomic_write(const char *path, const void *data, size_t len, unsigned mode) TND_MUST_CHECK;
/* The same for the file name in the directory open as dfd (dir only names
 * it in messages): for a directory opened once without following a
 * symlink, which a path could be swapped for in between. */
int tnd_atomic_write_at(int dfd, const char *dir, const char *name, const void *data, size_t len,
			unsigned mode) TND_MUST_CHECK;
/* fsync of a directory, so a rename or create in it is durable. */
int tnd_fsync_dir(const char *dir) TND_MUST_CHECK;

#endif
