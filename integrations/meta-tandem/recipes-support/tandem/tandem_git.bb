# SPDX-License-Identifier: MIT
SUMMARY = "Tandem: A/B image updater for embedded Linux"
DESCRIPTION = "tandem streams a signed full or delta bundle into the inactive \
slot, authenticating every chunk before it is written, reads the slot back and \
switches the boot slot in the U-Boot environment atomically. tandem-native \
provides tandem-image, which the tandem-bundle class uses to sign bundles."
SECTION = "admin"
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://LICENSE;md5=2712b2d32260c236a7434adf3a4ddc46"

# By default, the committed TANDEM_GIT_BRANCH of the Tandem tree this layer
# lives in (no network). A product pins its release instead, in local.conf
# or a bbappend: TANDEM_GIT_URI = "git://git.example.com/tandem.git;protocol=https;branch=main"
# and SRCREV = "<commit>".
TANDEM_GIT_BRANCH ??= "main"
TANDEM_GIT_URI ??= "git://${TANDEM_TOPDIR};protocol=file;branch=${TANDEM_GIT_BRANCH}"
SRC_URI = "${TANDEM_GIT_URI}"
SRCREV ??= "${AUTOREV}"
PV = "0.1.0+git"
S = "${WORKDIR}/git"
# Out of the source tree: Tandem's Makefile takes O= and KCONFIG_CONFIG=.
B = "${WORKDIR}/build"

inherit pkgconfig python3native systemd update-rc.d

# Kconfig runs on kconfiglib (meta-python); mbedtls 2.28 signs and verifies,
# zlib inflates, cJSON parses manifests and the configuration.
DEPENDS = "python3-kconfiglib-native mbedtls zlib cjson"

# One PACKAGECONFIG per Kconfig option (Kconfig in the Tandem tree says
# what each does). The device program has everything that is on in
# Tandem's own defaults; the host tool (tandem-native) only what building
# bundles needs.
PACKAGECONFIG ??= "uboot libdeflate sha256-nettle delta delta-xz progress http serial provision"
PACKAGECONFIG:class-native ??= "image-tools sha256-nettle delta-xz"

# libubootenv is linked statically (Tandem's Makefile: -l:libubootenv.a);
# since 0.3.3 that archive needs libyaml, which the Makefile does not name.
PACKAGECONFIG[uboot] = "CONFIG_BOOTLOADER_UBOOT=y,CONFIG_BOOTLOADER_UBOOT=n,libubootenv libyaml"
PACKAGECONFIG[libdeflate] = "CONFIG_INFLATE_LIBDEFLATE=y,CONFIG_INFLATE_LIBDEFLATE=n,libdeflate"
# SHA-256: Nettle (linked statically: see recipes-support/nettle), OpenSSL's
# libcrypto, or, with neither, mbedtls.
PACKAGECONFIG[sha256-nettle] = "CONFIG_SHA256_NETTLE=y,,nettle"
PACKAGECONFIG[sha256-openssl] = "CONFIG_SHA256_OPENSSL=y,,openssl"
PACKAGECONFIG_CONFLICTS[sha256-nettle] = "sha256-openssl"
PACKAGECONFIG[delta] = "CONFIG_DELTA=y,CONFIG_DELTA=n"
PACKAGECONFIG[delta-xz] = "CONFIG_DELTA_XZ=y,CONFIG_DELTA_XZ=n,xz"
PACKAGECONFIG[progress] = "CONFIG_PROGRESS_TTY=y,CONFIG_PROGRESS_TTY=n"
# libcurl is loaded with dlopen() when a command needs HTTP: a run-time
# dependency that the shared-library scan cannot see.
PACKAGECONFIG[http] = "CONFIG_HTTP=y,CONFIG_HTTP=n,curl,libcurl"
PACKAGECONFIG[serial] = "CONFIG_SERIAL=y,CONFIG_SERIAL=n"
PACKAGECONFIG[provision] = "CONFIG_PROVISION=y,CONFIG_PROVISION=n"
PACKAGECONFIG[image-tools] = "CONFIG_IMAGE_TOOLS=y,CONFIG_IMAGE_TOOLS=n"

# The Kconfig integers (ranges in Kconfig).
TANDEM_INSTALL_THREADS ??= "2"
TANDEM_MAX_CHUNK_SIZE_KIB ??= "1024"
TANDEM_READBACK_WINDOW_MIB ??= "16"
TANDEM_DELTA_READAHEAD_MIB ??= "128"
TANDEM_UPDATER = "y"
TANDEM_UPDATER:class-native = "n"

# Tandem's Makefile sets CC and AR from CROSS_COMPILE: give it OE's. The
# build goes to ${B} with its own Kconfig file; the package check of
# scripts/deps.sh is for Debian hosts (DEPS_CHECK=n). OPT is left to
# OE's CFLAGS. UPD_LDLIBS: the device program's libraries, see uboot above.
EXTRA_OEMAKE = "-C ${S} O=${B} KCONFIG_CONFIG=${B}/.config DEPS_CHECK=n \
    PYTHON=${PYTHON} CC='${CC}' AR='${AR}' PKG_CONFIG=pkg-config OPT= \
    TANDEM_VERSION=${PV} PREFIX=${prefix} SYSTEMDUNITDIR=${systemd_system_unitdir} \
    UPD_LDLIBS='-ldl ${@bb.utils.contains('PACKAGECONFIG', 'uboot', '-lyaml -lz', '', d)}'"

do_configure[cleandirs] = "${B}"
do_configure() {
    {
        echo CONFIG_UPDATER=${TANDEM_UPDATER}
        echo CONFIG_INSTALL_THREADS=${TANDEM_INSTALL_THREADS}
        echo CONFIG_MAX_CHUNK_SIZE_KIB=${TANDEM_MAX_CHUNK_SIZE_KIB}
        echo CONFIG_READBACK_WINDOW_MIB=${TANDEM_READBACK_WINDOW_MIB}
        echo CONFIG_DELTA_READAHEAD_MIB=${TANDEM_DELTA_READAHEAD_MIB}
        for opt in ${PACKAGECONFIG_CONFARGS}; do echo $opt; done
        ${@bb.utils.contains_any('PACKAGECONFIG', 'sha256-nettle sha256-openssl', '', 'echo CONFIG_SHA256_MBEDTLS=y', d)}
    } >${B}/.config
    cp ${B}/.config ${B}/requested.config
    oe_runmake olddefconfig
    # Kconfig silently drops what the other options rule out: stop instead.
    for opt in $(grep '=y$' ${B}/requested.config); do
        grep -qx "$opt" ${B}/.config || bbfatal "Kconfig did not keep $opt (see Kconfig's depends on)"
    done
}

do_compile() {
    oe_runmake all
}

do_install() {
    oe_runmake DESTDIR=${D} install
    # /etc/tandem/keys: the keyring tandem.conf points at by default.
    install -d ${D}${sysconfdir}/tandem/keys
    # SysV init (update-rc.d): the BusyBox script, under the name the
    # class registers. Whichever of it and the systemd units the distro
    # does not use is removed by the systemd and update-rc.d classes.
    install -D -m 0755 ${S}/bootloader-hooks/init.d/S99tandem-confirm ${D}${sysconfdir}/init.d/tandem-confirm
    # A bbappend adds the device's configuration and release keys:
    # SRC_URI += "file://tandem.conf file://release.pem" (README.md).
    if [ -f ${WORKDIR}/tandem.conf ]; then
        install -m 0644 ${WORKDIR}/tandem.conf ${D}${sysconfdir}/tandem/tandem.conf
    fi
    for key in ${WORKDIR}/*.pem; do
        [ -f "$key" ] && install -m 0644 "$key" ${D}${sysconfdir}/tandem/keys/
    done
    # tandem-image belongs on the build host unless asked for
    # (PACKAGECONFIG image-tools): its man page with it.
    if [ ! -e ${D}${bindir}/tandem-image ]; then
        rm -f ${D}${mandir}/man1/tandem-image.1
    fi
}

do_install:class-native() {
    install -D -m 0755 ${B}/tandem-image ${D}${bindir}/tandem-image
}

PACKAGES =+ "${PN}-daemon ${PN}-image"
FILES:${PN} += "${sysconfdir}/tandem"
FILES:${PN}-image = "${bindir}/tandem-image ${mandir}/man1/tandem-image.1"
# "tandem daemon" polls the server of tandem.conf: a package of its own,
# for images that poll, enabled where it is installed.
FILES:${PN}-daemon = "${systemd_system_unitdir}/tandem-daemon.service"
RDEPENDS:${PN}-daemon = "${PN}"

# "tandem confirm" at every boot: marks the booted slot good, or bad and
# rolls back. An image with Tandem needs it.
SYSTEMD_PACKAGES = "${PN} ${@bb.utils.contains('PACKAGECONFIG', 'http', '${PN}-daemon', '', d)}"
SYSTEMD_SERVICE:${PN} = "tandem-confirm.service"
SYSTEMD_SERVICE:${PN}-daemon = "tandem-daemon.service"
INITSCRIPT_PACKAGES = "${PN}"
INITSCRIPT_NAME:${PN} = "tandem-confirm"
INITSCRIPT_PARAMS:${PN} = "start 99 2 3 4 5 ."

BBCLASSEXTEND = "native"
