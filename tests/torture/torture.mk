# SPDX-License-Identifier: MIT
# Power-cut torture test (tests/torture/README.md). Included by the top
# Makefile. The shim is always built without sanitizers: it is preloaded
# into other programs and must not pull a sanitizer runtime in with it.

TORTURE_O     := $(O)/torture
CUTSHIM       := $(TORTURE_O)/cutshim.so
CUTRESTORE    := $(TORTURE_O)/cutrestore
# The project's warnings; no -include of the Kconfig header, no sanitizer.
# No _FILE_OFFSET_BITS=64: the shim defines both pwrite and pwrite64.
TORTURE_CFLAGS := -std=c11 -O2 -g $(WARN) -D_GNU_SOURCE

$(CUTSHIM): tests/torture/cutshim.c
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	@$(CC) $(TORTURE_CFLAGS) -fPIC -shared -o $@ $< -ldl -pthread

$(CUTRESTORE): tests/torture/cutshim.c
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	@$(CC) $(TORTURE_CFLAGS) -DCUTSHIM_RESTORE_MAIN -o $@ $<

.PHONY: torture-shim check-torture check-torture-blk
torture-shim: $(CUTSHIM) $(CUTRESTORE)

# make check-torture: every cut point of every scenario, in every mode,
# with file slots (the U-Boot environment, then the GRUB block), then with
# the slots on loop devices (check-torture-blk).
# Provisioning has its own cut loop (tests/integration/test_provision.sh,
# a sample of it in make check): every cut point here.
check-torture: all torture-shim
	@tests/torture/run.sh --build $(O)
	@tests/torture/run.sh --backend grub --build $(O)
	@$(MAKE) --no-print-directory check-torture-blk
	@PROVISION_CUT_STRIDE=1 BUILD=$(O) tests/integration/test_provision.sh

# The same plan with the slots on loop devices (root, losetup): the
# updater's block-device paths (BLKZEROOUT, O_DIRECT read-back, the
# page-cache residency test) cut too. Fails, never skips, without them.
check-torture-blk: all torture-shim
	@tests/torture/run.sh --blk --build $(O)
