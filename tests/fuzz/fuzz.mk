# SPDX-License-Identifier: MIT
#
# Fuzzing (docs: tests/fuzz/README.md). Included from the top Makefile.
#
#   make fuzz [FUZZ_SECONDS=120] [FUZZ_TARGETS="bundle delta"]
#       builds each libFuzzer target with clang into $(O)/fuzz/ and runs it
#       for FUZZ_SECONDS on the committed seeds (tests/fuzz/corpus/<t>/);
#       new inputs go to $(O)/fuzz/corpus/<t>/, crashes to $(O)/fuzz/crash/.
#   make O=build/asan SANITIZE=1 fuzz-replay
#       builds the replay drivers (same targets, gcc, no libFuzzer) into
#       $(O)/fuzz-replay/; tests/fuzz/replay.sh runs them over the corpus
#       (make check does, through tests/run-tests.sh).

FUZZ_TARGETS ?= manifest bundle delta config state channel
FUZZ_SECONDS ?= 120
FUZZ_CC      ?= clang
FUZZ_DIR     := $(O)/fuzz

# The library is compiled again with clang and coverage instrumentation:
# gcc objects carry no libFuzzer feedback. Only the sources the targets
# reach; the rest of the updater needs a device.
FUZZ_LIB_SRCS := $(lib-y) updater/core/config.c updater/core/state.c tests/fuzz/fuzz_common.c
FUZZ_SAN      := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# clang warns about things gcc does not in code this target does not own:
# warnings stay on, but do not fail the fuzz build.
FUZZ_CPPFLAGS  = $(filter-out -D_FORTIFY_SOURCE=%,$(CPPFLAGS)) -Itests/fuzz
FUZZ_CFLAGS    = -std=c11 -g -O1 $(filter-out -Werror,$(WARN)) -pthread $(LIB_CFLAGS) $(FUZZ_SAN)
FUZZ_LIBA     := $(FUZZ_DIR)/libtandem-fuzz.a
FUZZ_BINS     := $(patsubst %,$(FUZZ_DIR)/fuzz_%,$(FUZZ_TARGETS))

# Largest input each target gets: a bundle or delta needs room for a few
# records or frames; the JSON parsers' inputs are capped at 64 KiB anyway.
# Dictionaries: the magics and JSON keys (cJSON and mbedtls are system
# libraries without coverage feedback, so the fuzzer cannot learn them).
FUZZ_MAX_LEN_BIG := 262144

$(FUZZ_DIR)/obj/%.o: %.c $(AUTOCONF)
	@mkdir -p $(dir $@)
	@echo "  CLANG   $<"
	@$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_LIBA): $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(FUZZ_LIB_SRCS))
	@echo "  AR      $@"
	@rm -f $@ && $(AR) rcs $@ $^

$(FUZZ_DIR)/fuzz_%: $(FUZZ_DIR)/obj/tests/fuzz/fuzz_%.o $(FUZZ_LIBA)
	@echo "  LD      $@"
	@$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -pthread -o $@ $^ $(LIB_LDLIBS)

.PHONY: fuzz fuzz-build fuzz-replay
fuzz-build: $(FUZZ_BINS)

# Each target in turn, on one core; a crash fails make fuzz after all
# targets have had their time. A smaller ASan quarantine: mbedtls makes
# thousands of tiny allocations per signature check, and with the default
# 256 MiB every one of them touches a fresh page (3x slower).
fuzz: fuzz-build
	@export ASAN_OPTIONS="$${ASAN_OPTIONS:-quarantine_size_mb=16}"; \
	failed=""; for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_DIR)/corpus/$$t $(FUZZ_DIR)/crash; \
		echo "  FUZZ    $$t for $(FUZZ_SECONDS)s"; \
		case $$t in bundle|delta) len=$(FUZZ_MAX_LEN_BIG) dict=$$t;; \
			*) len=65536 dict=json;; esac; \
		$(FUZZ_DIR)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
			-rss_limit_mb=2048 -max_len=$$len -dict=tests/fuzz/$$dict.dict \
			-artifact_prefix=$(FUZZ_DIR)/crash/$$t- -print_final_stats=1 \
			$(FUZZ_DIR)/corpus/$$t tests/fuzz/corpus/$$t \
			>$(FUZZ_DIR)/$$t.log 2>&1 || failed="$$failed $$t"; \
		grep -E '^(stat::number_of_executed_units|stat::new_units_added)|ERROR|SUMMARY' \
			$(FUZZ_DIR)/$$t.log | sed 's/^/          /'; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: crashes in:$$failed (see $(FUZZ_DIR)/*.log, $(FUZZ_DIR)/crash/)"; exit 1; fi

# Replay drivers: the targets' sources with tests/fuzz/replay_main.c, built
# with the build's own compiler and flags (SANITIZE=1: gcc ASan+UBSan)
# against its libraries.
FUZZ_REPLAY := $(patsubst %,$(O)/fuzz-replay/fuzz_%,$(FUZZ_TARGETS))
$(O)/fuzz-replay/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/replay_main.c tests/fuzz/fuzz_common.c \
			 tests/fuzz/fuzz_common.h $(AUTOCONF) $(LIBUPDATER) $(LIBTANDEM)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	@$(CC) $(CPPFLAGS) -Itests/fuzz $(CFLAGS) -o $@ $(filter %.c,$^) \
		$(LIBUPDATER) $(LIBTANDEM) $(LDFLAGS) $(LIB_LDLIBS)
fuzz-replay: $(FUZZ_REPLAY)

-include $(shell find $(FUZZ_DIR)/obj -name '*.d' 2>/dev/null)

# Keep the targets' objects: make would delete them as intermediates.
.SECONDARY: $(patsubst %,$(FUZZ_DIR)/obj/tests/fuzz/fuzz_%.o,$(FUZZ_TARGETS))
