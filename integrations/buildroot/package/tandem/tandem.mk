################################################################################
#
# tandem
#
################################################################################

TANDEM_VERSION = 0.1.0
# The Tandem tree this br2-external is part of (integrations/buildroot);
# a product can build a release instead (README.md).
TANDEM_SITE = $(realpath $(BR2_EXTERNAL_TANDEM_PATH)/../..)
TANDEM_SITE_METHOD = local
TANDEM_LICENSE = MIT
TANDEM_LICENSE_FILES = LICENSE
TANDEM_DEPENDENCIES = \
	host-pkgconf \
	host-python3 \
	host-python-kconfiglib \
	cjson \
	mbedtls \
	zlib

# Tandem's Makefile takes CC and AR from CROSS_COMPILE: give it Buildroot's.
# The build goes to build/ with its own Kconfig file; scripts/deps.sh's
# package check is for Debian hosts (DEPS_CHECK=n); OPT is left to
# TARGET_CFLAGS, which the Makefile appends to from the environment.
TANDEM_MAKE_OPTS = \
	O=$(@D)/build \
	KCONFIG_CONFIG=$(@D)/build/.config \
	DEPS_CHECK=n \
	PYTHON=$(HOST_DIR)/bin/python3 \
	CC="$(TARGET_CC)" \
	AR="$(TARGET_AR)" \
	PKG_CONFIG="$(PKG_CONFIG_HOST_BINARY)" \
	OPT= \
	TANDEM_VERSION=$(TANDEM_VERSION)
TANDEM_MAKE_ENV = \
	$(TARGET_MAKE_ENV) \
	CFLAGS="$(TARGET_CFLAGS)" \
	LDFLAGS="$(TARGET_LDFLAGS)"

# Tandem's Kconfig options, from the BR2_PACKAGE_TANDEM_* ones, and the
# libraries they need.
TANDEM_KCONFIG = \
	CONFIG_UPDATER=y \
	CONFIG_IMAGE_TOOLS=n \
	CONFIG_INSTALL_THREADS=$(BR2_PACKAGE_TANDEM_INSTALL_THREADS) \
	CONFIG_READBACK_WINDOW_MIB=$(BR2_PACKAGE_TANDEM_READBACK_WINDOW_MIB) \
	CONFIG_DELTA=$(if $(BR2_PACKAGE_TANDEM_DELTA),y,n) \
	CONFIG_DELTA_XZ=$(if $(BR2_PACKAGE_TANDEM_DELTA_XZ),y,n) \
	CONFIG_PROGRESS_TTY=$(if $(BR2_PACKAGE_TANDEM_PROGRESS_TTY),y,n) \
	CONFIG_SERIAL=$(if $(BR2_PACKAGE_TANDEM_SERIAL),y,n) \
	CONFIG_PROVISION=$(if $(BR2_PACKAGE_TANDEM_PROVISION),y,n) \
	CONFIG_BOOTLOADER_UBOOT=$(if $(BR2_PACKAGE_TANDEM_UBOOT),y,n) \
	CONFIG_INFLATE_LIBDEFLATE=$(if $(BR2_PACKAGE_TANDEM_LIBDEFLATE),y,n) \
	CONFIG_HTTP=$(if $(BR2_PACKAGE_TANDEM_HTTP),y,n)
TANDEM_DEPENDENCIES += \
	$(if $(BR2_PACKAGE_TANDEM_UBOOT),libubootenv) \
	$(if $(BR2_PACKAGE_TANDEM_LIBDEFLATE),libdeflate) \
	$(if $(BR2_PACKAGE_TANDEM_DELTA_XZ),xz) \
	$(if $(BR2_PACKAGE_TANDEM_HTTP),libcurl)

# The device program's own libraries: -ldl for libcurl, loaded at run
# time; libubootenv is linked statically (Tandem's Makefile:
# -l:libubootenv.a), and that archive needs libyaml, which the Makefile
# does not name.
TANDEM_UPD_LDLIBS = -ldl $(if $(BR2_PACKAGE_TANDEM_UBOOT),-lyaml -lz)

ifeq ($(BR2_PACKAGE_TANDEM_SHA256_NETTLE),y)
TANDEM_KCONFIG += CONFIG_SHA256_NETTLE=y
TANDEM_DEPENDENCIES += nettle
else ifeq ($(BR2_PACKAGE_TANDEM_SHA256_OPENSSL),y)
TANDEM_KCONFIG += CONFIG_SHA256_OPENSSL=y
TANDEM_DEPENDENCIES += openssl
else
TANDEM_KCONFIG += CONFIG_SHA256_MBEDTLS=y
endif

# Kconfig drops what other options rule out: stop instead of building
# something else than asked.
define TANDEM_CONFIGURE_CMDS
	mkdir -p $(@D)/build
	printf '%s\n' $(TANDEM_KCONFIG) >$(@D)/build/requested.config
	cp $(@D)/build/requested.config $(@D)/build/.config
	$(TANDEM_MAKE_ENV) $(MAKE) -C $(@D) $(TANDEM_MAKE_OPTS) olddefconfig
	for opt in $$(grep '=y$$' $(@D)/build/requested.config); do \
		grep -qx "$$opt" $(@D)/build/.config || \
			{ echo "tandem: Kconfig did not keep $$opt" >&2; exit 1; }; \
	done
endef

define TANDEM_BUILD_CMDS
	$(TANDEM_MAKE_ENV) $(MAKE) -C $(@D) $(TANDEM_MAKE_OPTS) \
		UPD_LDLIBS="$(TANDEM_UPD_LDLIBS)" all
endef

TANDEM_CONFIG_FILE = $(call qstrip,$(BR2_PACKAGE_TANDEM_CONFIG_FILE))
TANDEM_KEYRING_DIR = $(call qstrip,$(BR2_PACKAGE_TANDEM_KEYRING_DIR))

define TANDEM_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 $(@D)/build/tandem $(TARGET_DIR)/usr/bin/tandem
	$(INSTALL) -d -m 0755 $(TARGET_DIR)/etc/tandem/keys
	$(if $(TANDEM_CONFIG_FILE), \
		$(INSTALL) -D -m 0644 $(TANDEM_CONFIG_FILE) $(TARGET_DIR)/etc/tandem/tandem.conf)
	$(if $(TANDEM_KEYRING_DIR), \
		$(INSTALL) -m 0644 $(TANDEM_KEYRING_DIR)/*.pem $(TARGET_DIR)/etc/tandem/keys/)
endef

# "tandem confirm" at every boot, last: marks the booted slot good, or
# bad and rolls back.
define TANDEM_INSTALL_INIT_SYSV
	$(INSTALL) -D -m 0755 $(@D)/bootloader-hooks/init.d/S99tandem-confirm \
		$(TARGET_DIR)/etc/init.d/S99tandem-confirm
endef

define TANDEM_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(@D)/bootloader-hooks/systemd/tandem-confirm.service \
		$(TARGET_DIR)/usr/lib/systemd/system/tandem-confirm.service
	$(if $(BR2_PACKAGE_TANDEM_DAEMON), \
		$(INSTALL) -D -m 0644 $(@D)/bootloader-hooks/systemd/tandem-daemon.service \
			$(TARGET_DIR)/usr/lib/systemd/system/tandem-daemon.service)
endef

$(eval $(generic-package))
