# SPDX-License-Identifier: MIT
#
# Tandem top-level Makefile.
#
#   make [<board>_defconfig|defconfig|menuconfig]   configure (Kconfig)
#   make                    build build/tandem and build/tandem-image
#   make deps               install (as root) the Debian packages needed
#   make check              ASan+UBSan build, unit and integration tests
#   make demo               the main job on a simulated device made of files
#   make check-fresh        make demo and make check on a fresh Debian (root)
#   make check-deb          the Debian packages: build, install, demo, purge (root)
#   make check-integrations the Yocto layer and the Buildroot external (root)
#   make bench              benchmarks against the baselines (see docs/performance.md)
#   make install DESTDIR=... PREFIX=...
#   make CROSS_COMPILE=aarch64-linux-gnu- SYSROOT=...    cross build
#
# Output goes to $(O) (default build/). Kconfig's .config lives at the top.

O          ?= build
PREFIX     ?= /usr
DESTDIR    ?=
PYTHON     ?= /usr/bin/python3
KCONFIG_CONFIG ?= .config
export KCONFIG_CONFIG

CROSS_COMPILE ?=
CC         := $(CROSS_COMPILE)gcc
AR         := $(CROSS_COMPILE)ar
STRIP      := $(CROSS_COMPILE)strip
PKG_CONFIG ?= pkg-config
ifneq ($(SYSROOT),)
PKG_CONFIG_LIBDIR ?= $(SYSROOT)/usr/lib/pkgconfig:$(SYSROOT)/usr/share/pkgconfig
SYSROOT_FLAGS := --sysroot=$(SYSROOT)
else ifneq ($(CROSS_COMPILE),)
# Debian multiarch (dpkg --add-architecture): the target's -dev packages
# put their .pc files under /usr/lib/<triplet>/pkgconfig.
PKG_CONFIG_LIBDIR ?= /usr/lib/$(patsubst %-,%,$(notdir $(CROSS_COMPILE)))/pkgconfig:/usr/share/pkgconfig
endif
# make 4.3 does not pass exported variables to $(shell): set them inline.
PKG_CONFIG_RUN = $(if $(PKG_CONFIG_LIBDIR),PKG_CONFIG_LIBDIR=$(PKG_CONFIG_LIBDIR)) \
                 $(if $(SYSROOT),PKG_CONFIG_SYSROOT_DIR=$(SYSROOT)) $(PKG_CONFIG)

# ---------------------------------------------------------------- Kconfig
AUTOCONF := $(O)/include/generated/tandem_config.h
AUTOMK   := $(O)/include/config/auto.conf
# Without Python or kconfiglib, one line says so (not a traceback).
KCONFIG_PY = command -v $(PYTHON) >/dev/null || { echo "Kconfig: no $(PYTHON) (Debian: python3, python3-kconfiglib; make deps as root)" >&2; exit 1; }; \
	$(PYTHON) -c 'import sys,runpy,importlib.util; sys.argv[0]="$(1)"; sys.path.insert(0,"/usr/lib/python3/dist-packages"); importlib.util.find_spec("kconfiglib") or sys.exit("Kconfig: $(PYTHON) has no kconfiglib (Debian: python3-kconfiglib; make deps as root)"); runpy.run_module("$(1)", run_name="__main__")'

BOARDS := $(notdir $(patsubst %/defconfig,%,$(wildcard board-configs/*/defconfig)))
CONFIG_TARGETS := defconfig menuconfig oldconfig olddefconfig savedefconfig $(addsuffix _defconfig,$(BOARDS))

# Not .PHONY: make skips pattern rules for phony targets.
.PHONY: defconfig menuconfig oldconfig olddefconfig savedefconfig
defconfig: sim_defconfig
%_defconfig: board-configs/%/defconfig
	@$(call KCONFIG_PY,defconfig) --kconfig Kconfig $<
menuconfig oldconfig olddefconfig:
	@$(call KCONFIG_PY,$@) Kconfig
savedefconfig:
	@$(call KCONFIG_PY,savedefconfig) --kconfig Kconfig --out defconfig
	@echo "wrote ./defconfig; copy it to board-configs/<board>/defconfig"

# A build without a .config uses the simulated board's defaults.
$(KCONFIG_CONFIG):
	@echo "  CONFIG  no $(KCONFIG_CONFIG): using board-configs/sim/defconfig"
	@$(call KCONFIG_PY,defconfig) --kconfig Kconfig board-configs/sim/defconfig

$(AUTOCONF) $(AUTOMK): $(KCONFIG_CONFIG) Kconfig
	@mkdir -p $(dir $(AUTOCONF)) $(dir $(AUTOMK))
	@$(call KCONFIG_PY,genconfig) --header-path $(AUTOCONF) --config-out $(AUTOMK) Kconfig >/dev/null

# GNU make remakes an included makefile (auto.conf, and .config before
# it) before it runs any goal, so what a goal needs first is decided here,
# from the command line, not with prerequisites:
#  - SETUP_GOALS read no configuration. demo, check, check-e2e and bench
#    install their packages (scripts/deps.sh) and then build in a sub-make:
#    read here, the configuration would be made before Python and
#    kconfiglib are installed.
#  - the configuration goals need Python and kconfiglib;
#  - every other goal (make, make install, a program, a test binary) reads
#    the configuration, made from board-configs/sim/defconfig when there is
#    no .config; a failure to make it stops make.
# Before Kconfig runs, a Debian machine without the packages of the
# configuration and the build stops with their names; a cross build
# (CROSS_COMPILE, SYSROOT or CC given) needs only those of the
# configuration on the host. DEPS_CHECK=n skips this (libraries
# installed another way); without dpkg there is nothing to check.
COMMA := ,
DEPS_CHECK ?= y
SETUP_GOALS := deps clean distclean help format format-check demo check check-e2e bench check-fresh \
               check-deb check-integrations
BUILD_GOALS := $(filter-out $(CONFIG_TARGETS) $(SETUP_GOALS),$(or $(MAKECMDGOALS),all))
ifneq ($(BUILD_GOALS),)
ifneq ($(filter $(CONFIG_TARGETS) distclean,$(MAKECMDGOALS)),)
$(error run 'make $(filter $(CONFIG_TARGETS) distclean,$(MAKECMDGOALS))' and 'make $(BUILD_GOALS)' one after the other: a build reads the configuration before any goal runs)
endif
DEPS_FOR := kconfig$(if $(CROSS_COMPILE)$(SYSROOT)$(filter command line,$(origin CC)),,$(COMMA)build)
else ifneq ($(filter $(CONFIG_TARGETS),$(MAKECMDGOALS)),)
DEPS_FOR := kconfig
endif
ifneq ($(DEPS_FOR),)
ifeq ($(DEPS_CHECK),y)
DEPS_MISSING := $(shell scripts/deps.sh --missing --for $(DEPS_FOR))
ifneq ($(DEPS_MISSING),)
$(error missing Debian packages to configure$(if $(findstring build,$(DEPS_FOR)), and build): $(DEPS_MISSING). As root, 'make deps' installs them (so do 'make demo' and 'make check'))
endif
endif
endif
ifneq ($(BUILD_GOALS),)
include $(AUTOMK)
endif

# ---------------------------------------------------------------- flags
WARN := -Wall -Wextra -Wformat=2 -Wshadow -Wundef -Wmissing-prototypes \
        -Wstrict-prototypes -Wwrite-strings -Wvla -Werror
OPT ?= -O2 -g
TANDEM_VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.1.0)
CPPFLAGS += -DTANDEM_VERSION=\"$(TANDEM_VERSION)\"
# The clock floor of docs/security.md ("Unset clock"): when the sources
# were committed (reproducible: the same for every build of a commit), or
# SOURCE_DATE_EPOCH. Only updater/core/state.c needs it.
TANDEM_BUILD_TIME ?= $(or $(SOURCE_DATE_EPOCH),$(shell git log -1 --format=%ct 2>/dev/null),0)
UPD_DIRS := updater/core updater/install updater/boot updater/sources updater/fleet updater/cli
CPPFLAGS += -I$(O)/include/generated -Ilib $(addprefix -I,$(UPD_DIRS)) -Iimage-tools \
            -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -include $(AUTOCONF)
# Sections per function and --gc-sections: the programs carry only the
# library code they call (the device binary lost 21 KiB to it).
CFLAGS   += -std=c11 $(OPT) $(WARN) -fstack-protector-strong -pthread \
            -ffunction-sections -fdata-sections $(SYSROOT_FLAGS)
LDFLAGS  += -pthread $(SYSROOT_FLAGS) -Wl,--gc-sections
ifeq ($(SANITIZE),1)
# float-cast-overflow is not part of gcc's "undefined" set; it found a real bug (fuzz_state)
CFLAGS  += -fsanitize=address,undefined,float-cast-overflow -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined,float-cast-overflow
else
CPPFLAGS += -D_FORTIFY_SOURCE=2
endif

PC_LIBS := zlib libcjson
LIB_CFLAGS := $(shell $(PKG_CONFIG_RUN) --cflags $(PC_LIBS) 2>/dev/null)
LIB_LDLIBS := $(shell $(PKG_CONFIG_RUN) --libs $(PC_LIBS) 2>/dev/null) -lmbedx509 -lmbedcrypto
ifeq ($(CONFIG_BOOTLOADER_UBOOT),y)
# Debian ships libubootenv as a static archive only; link it statically.
LIB_CFLAGS += $(shell $(PKG_CONFIG_RUN) --cflags libubootenv 2>/dev/null)
LIB_LDLIBS := -l:libubootenv.a $(LIB_LDLIBS)
endif
ifeq ($(CONFIG_INFLATE_LIBDEFLATE),y)
LIB_LDLIBS += -ldeflate
endif
ifeq ($(CONFIG_DELTA_XZ),y)
LIB_LDLIBS += -llzma
endif
ifeq ($(CONFIG_SHA256_NETTLE),y)
LIB_CFLAGS += $(shell $(PKG_CONFIG_RUN) --cflags nettle 2>/dev/null)
# Only its SHA-256 is used. Linked statically it adds 37 KiB to the
# stripped binary (its run-time CPU dispatch brings its other optimised
# routines along); the shared library would add none there but cost
# 360 KiB more resident memory, measured (its relocations and set-up).
LIB_LDLIBS += -l:libnettle.a
endif
ifeq ($(CONFIG_SHA256_OPENSSL),y)
LIB_CFLAGS += $(shell $(PKG_CONFIG_RUN) --cflags libcrypto 2>/dev/null)
LIB_LDLIBS += $(shell $(PKG_CONFIG_RUN) --libs libcrypto 2>/dev/null)
endif
# Device-only libraries: tandem-image does not link them.
UPD_LDLIBS :=
ifeq ($(CONFIG_HTTP),y)
CFLAGS     += $(shell $(PKG_CONFIG_RUN) --cflags libcurl 2>/dev/null)
# loaded at run time by updater/http.c (dlopen): not linked
UPD_LDLIBS += -ldl
endif
CFLAGS += $(LIB_CFLAGS)

# ---------------------------------------------------------------- sources
# lib/: everything the device and the host share (format, manifest,
# signatures, chunk codec, logging, errors, atomic files).
lib-y := lib/error.c lib/log.c lib/util.c lib/crypto.c lib/sign.c lib/json.c lib/digest.c \
         lib/manifest.c lib/bundle.c lib/chunk.c lib/atomicfile.c lib/timeutil.c \
         lib/source.c
lib-y += lib/delta.c lib/record.c
lib-y += lib/channel.c
lib-$(CONFIG_DELTA_XZ) += lib/delta_xz.c
lib-y += lib/link.c

# updater/: device side, a folder per concern (docs/architecture.md):
# core/ (configuration, state, lock), install/ (the transaction and its
# pipeline), boot/ (bootloader backends and boot control), sources/
# (HTTP, serial), fleet/ (polling a channel), cli/ (the command line, the
# only part that prints). cli/main.c is kept out of the library so tests
# link it.
upd-y := updater/core/config.c updater/core/state.c \
         updater/install/slot.c updater/install/pipeline.c updater/install/transaction.c \
         updater/install/resume.c \
         updater/boot/bootloader.c updater/boot/none.c updater/boot/bootctl.c \
         updater/boot/health.c updater/core/lock.c updater/install/policy.c \
         updater/cli/progress.c updater/cli/status.c updater/cli/doctor.c \
         updater/cli/cmd_install.c updater/cli/cmd_boot.c
upd-$(CONFIG_BOOTLOADER_UBOOT) += updater/boot/uboot.c
upd-$(CONFIG_BOOTLOADER_GRUB) += updater/boot/grub.c
upd-$(CONFIG_BOOTLOADER_CUSTOM) += updater/boot/custom.c
upd-$(CONFIG_SERIAL) += updater/sources/serial.c updater/cli/cmd_receive.c
upd-$(CONFIG_PROVISION) += updater/install/provision.c updater/cli/cmd_provision.c
upd-$(CONFIG_HTTP) += updater/sources/http.c updater/fleet/fleet.c updater/fleet/pollstate.c \
                      updater/cli/cmd_fleet.c

img-y := image-tools/keygen.c image-tools/build.c image-tools/inspect.c image-tools/decode.c \
         image-tools/channel_show.c
img-y += image-tools/delta_encode.c image-tools/delta_xzmap.c
img-y += image-tools/publish.c
img-y += image-tools/send.c

obj = $(patsubst %.c,$(O)/obj/%.o,$(1))

LIBTANDEM  := $(O)/libtandem.a
LIBUPDATER := $(O)/libtandem-updater.a
LIBIMAGE   := $(O)/libtandem-image.a

PROGS-$(CONFIG_UPDATER)     += $(O)/tandem
PROGS-$(CONFIG_IMAGE_TOOLS) += $(O)/tandem-image

.PHONY: all
all: $(PROGS-y)
.DEFAULT_GOAL := all

$(O)/obj/%.o: %.c $(AUTOCONF)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(O)/obj/updater/core/state.o: CPPFLAGS += -DTANDEM_BUILD_TIME=$(TANDEM_BUILD_TIME)LL

$(LIBTANDEM): $(call obj,$(lib-y))
	@echo "  AR      $@"
	@rm -f $@ && $(AR) rcs $@ $^
$(LIBUPDATER): $(call obj,$(upd-y))
	@echo "  AR      $@"
	@rm -f $@ && $(AR) rcs $@ $^
$(LIBIMAGE): $(call obj,$(img-y))
	@echo "  AR      $@"
	@rm -f $@ && $(AR) rcs $@ $^

$(O)/tandem: $(call obj,updater/cli/main.c) $(LIBUPDATER) $(LIBTANDEM)
	@echo "  LD      $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LIB_LDLIBS) $(UPD_LDLIBS)
$(O)/tandem-image: $(call obj,image-tools/main.c) $(LIBIMAGE) $(LIBTANDEM)
	@echo "  LD      $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LIB_LDLIBS)

-include $(shell find $(O)/obj -name '*.d' 2>/dev/null)

# ---------------------------------------------------------------- tests
UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(patsubst tests/unit/%.c,$(O)/tests/%,$(UNIT_SRCS))

$(O)/tests/%: tests/unit/%.c tests/unit/testutil.h tests/unit/tu_device.h $(LIBUPDATER) $(LIBIMAGE) $(LIBTANDEM)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CPPFLAGS) -Itests/unit $(CFLAGS) -o $@ $< $(LIBUPDATER) $(LIBIMAGE) $(LIBTANDEM) \
		$(LDFLAGS) $(LIB_LDLIBS) $(UPD_LDLIBS) -lcmocka

.PHONY: unit-tests
unit-tests: $(UNIT_BINS)

include tests/delta/delta.mk
include tests/torture/torture.mk
include tests/fuzz/fuzz.mk
include tests/bench/bench.mk

.PHONY: deps
deps:
	@scripts/deps.sh

ASAN_O := $(O)/asan
.PHONY: check check-unit check-integration
# make check: sanitised build, unit tests, integration tests. The longer
# suites have their own targets and run here in a short form.
check: deps
	@$(MAKE) --no-print-directory format-check
	@$(MAKE) --no-print-directory O=$(O) all
	@$(MAKE) --no-print-directory O=$(ASAN_O) SANITIZE=1 all unit-tests
	@tests/run-tests.sh $(ASAN_O)

.PHONY: check-e2e
# The QEMU end-to-end suite on real U-Boot, arm64 and x86 (on arm64 also a
# read-only Debian root under systemd with the shipped units), then on
# real GRUB for BIOS, x86 (make check runs their --short forms through
# tests/run-tests.sh). Fails, never skips, when QEMU, U-Boot, GRUB or an
# architecture's packages are missing.
check-e2e: deps
	@$(MAKE) --no-print-directory O=$(O) all
	@tests/e2e/run.sh
	@tests/e2e/run.sh --backend grub

.PHONY: demo
# Only the packages of the build and the demo; make check adds the rest.
demo:
	@scripts/deps.sh --for kconfig,build,demo
	@$(MAKE) --no-print-directory O=$(O) all
	@tests/demo.sh $(O)

.PHONY: check-fresh
# make demo && make check, then make check alone, each the first command
# on a fresh Debian bookworm, on the committed HEAD (scripts/check-fresh.sh;
# root, minutes per run). Not part of make check.
check-fresh:
	@scripts/check-fresh.sh $(O)/check-fresh

.PHONY: check-deb
# The Debian packages (debian/) on a fresh Debian bookworm, from the
# committed HEAD: dpkg-buildpackage for amd64 and arm64, lintian, install,
# make demo's job with /usr/bin/tandem and /usr/bin/tandem-image, purge
# (tests/packaging/deb.sh; root, minutes; DEB_ARM64=0 skips the cross
# build). Not part of make check.
check-deb:
	@tests/packaging/deb.sh $(O)/check-deb

.PHONY: check-integrations
# integrations/ (meta-tandem, the Buildroot external) checked with
# Buildroot's check-package and make, and bitbake's parser, on the
# committed HEAD; needs TANDEM_BUILDROOT, TANDEM_POKY and TANDEM_META_OE
# (tests/packaging/integrations.sh; root, minutes). Not part of make check.
check-integrations:
	@tests/packaging/integrations.sh $(O)/check-integrations

.PHONY: bench
bench: deps
	@$(MAKE) --no-print-directory O=$(O) OPT="-O2 -g" all $(O)/inflate2
	@tests/bench/run.sh $(O)

.PHONY: format format-check
FMT_SRCS = $(wildcard lib/*.[ch] updater/*/*.[ch] image-tools/*.[ch] tests/unit/*.[ch])
format:
	@clang-format -i $(FMT_SRCS)
format-check:
	@if command -v clang-format >/dev/null; then \
		clang-format --dry-run --Werror $(FMT_SRCS) && echo "  FORMAT  ok"; \
	else echo "  FORMAT  clang-format not installed: skipped"; fi

# ---------------------------------------------------------------- install
# Where the systemd units go: merged-/usr systems (Buildroot, Yocto) take
# the default; Debian bookworm's debhelper looks in /lib/systemd/system
# (debian/rules passes that).
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
.PHONY: install
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)/etc/tandem
ifeq ($(CONFIG_UPDATER),y)
	install -m 0755 $(O)/tandem $(DESTDIR)$(PREFIX)/bin/tandem
endif
ifeq ($(CONFIG_IMAGE_TOOLS),y)
	install -m 0755 $(O)/tandem-image $(DESTDIR)$(PREFIX)/bin/tandem-image
endif
	install -d $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0644 docs/man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
ifeq ($(CONFIG_UPDATER),y)
	# tandem confirm at boot: the systemd unit; BusyBox/SysV systems take
	# bootloader-hooks/init.d/S99tandem-confirm instead (INIT=sysv).
ifeq ($(INIT),sysv)
	install -D -m 0755 bootloader-hooks/init.d/S99tandem-confirm $(DESTDIR)/etc/init.d/S99tandem-confirm
else
	install -D -m 0644 bootloader-hooks/systemd/tandem-confirm.service \
		$(DESTDIR)$(SYSTEMDUNITDIR)/tandem-confirm.service
ifeq ($(CONFIG_HTTP),y)
	install -D -m 0644 bootloader-hooks/systemd/tandem-daemon.service \
		$(DESTDIR)$(SYSTEMDUNITDIR)/tandem-daemon.service
endif
endif
endif

.PHONY: clean distclean help
clean:
	rm -rf $(O)
distclean: clean
	rm -f $(KCONFIG_CONFIG) $(KCONFIG_CONFIG).old defconfig
help:
	@sed -n '3,15p' Makefile | sed 's/^# \{0,1\}//'
	@echo "boards: $(BOARDS)"

.PHONY: disk
# make disk BOARD=qemu-x86_64 ROOTFS=slot.ext4: the factory disk image
# (genimage; docs/factory.md) in $(O)/disk-$(BOARD).img.
disk:
	@test -n "$(BOARD)" -a -n "$(ROOTFS)" || { echo "usage: make disk BOARD=<board> ROOTFS=<slot image>" >&2; exit 1; }
	@scripts/mkdisk.sh $(BOARD) $(ROOTFS) $(O)/disk-$(BOARD).img
