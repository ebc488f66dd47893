# SPDX-License-Identifier: MIT
#
# Delta codec: its measuring tool and the host-only libraries of the encoder.
# Included from the top Makefile after the unit-test rules.

# libdivsufsort is needed by the encoder (image-tools/) only. The device
# binary must not link it, so it is added to the host targets' links
# rather than to the shared LIB_LDLIBS.
HOST_LDLIBS :=

$(O)/tandem-image $(UNIT_BINS) $(O)/tdelta: LIB_LDLIBS += $(HOST_LDLIBS)

# tdelta diff|patch: a small standalone tool to test and measure the codec
# (not the product CLI).
$(O)/tdelta: $(call obj,tests/delta/tdelta.c) $(LIBIMAGE) $(LIBTANDEM)
	@echo "  LD      $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LIB_LDLIBS)
