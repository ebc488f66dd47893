# SPDX-License-Identifier: MIT
#
# The benchmark's own helper, linked exactly like the programs it is
# measured beside (included from the top Makefile).

# inflate2: limit B of the full-install table (tests/bench/inflate2.c).
$(O)/inflate2: $(call obj,tests/bench/inflate2.c) $(LIBTANDEM)
	@echo "  LD      $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LIB_LDLIBS)
