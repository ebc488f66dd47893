// SPDX-License-Identifier: MIT
/*
 * tnd_state_load on arbitrary state.json contents. The state file is only
 * replaced by rename, so damage means storage corruption or a tampering
 * process: loading must refuse or fall back, never crash, and the
 * anti-rollback floor must survive a save/load round trip unchanged.
 *
 * tnd_state_load reads state_dir/state.json, so each input is written to
 * a scratch directory made once per process (no refactoring of the
 * updater for the fuzzer's sake).
 */
#include <fcntl.h>
#include <unistd.h>


#include "fuzz_common.h"
#include "state.h"

static char dir[600], file[700];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	snprintf(dir, sizeof(dir), "%s", fuzz_scratch_dir());
	snprintf(file, sizeof(file), "%s/state.json", dir);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tnd_state st, st2;
	int fd;

	if (!dir[0])
		LLVMFuzzerInitialize(NULL, NULL);
	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size || close(fd))
		abort();
	if (tnd_state_load(&st, dir))
		return 0;
	FUZZ_ASSERT(st.pending_slot >= -1 && st.pending_slot < TND_NSLOTS);
	for (int i = 0; i < TND_NSLOTS; i++)
		FUZZ_ASSERT(st.slot[i].state <= TND_SLOT_BAD);
	/* Round trip: the save replaces the input file atomically, as on
	 * the device, and loading it back must give the same verdicts. */
	if (tnd_state_save(&st, dir))
		abort();
	FUZZ_ASSERT(tnd_state_load(&st2, dir) == 0);
	FUZZ_ASSERT(st2.security_floor == st.security_floor);
	FUZZ_ASSERT(st2.pending_slot == st.pending_slot);
	for (int i = 0; i < TND_NSLOTS; i++) {
		FUZZ_ASSERT(st2.slot[i].state == st.slot[i].state);
		FUZZ_ASSERT(st2.slot[i].security_version == st.slot[i].security_version);
		FUZZ_ASSERT(st2.slot[i].has_sha256 == st.slot[i].has_sha256);
		FUZZ_ASSERT(!strcmp(st2.slot[i].version, st.slot[i].version));
	}
	return 0;
}
