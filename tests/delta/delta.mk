# SPDX-License-Identifier: MIT
#
# Delta codec: its measuring tool. Included from the top Makefile after
# the unit-test rules.

# tdelta diff|patch: a small standalone tool to test and measure the codec
# (not the product CLI).
$(O)/tdelta: $(call obj,tests/delta/tdelta.c) $(LIBIMAGE) $(LIBTANDEM)
	@echo "  LD      $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LIB_LDLIBS)
