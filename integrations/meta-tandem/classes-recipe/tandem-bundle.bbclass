# SPDX-License-Identifier: MIT
# tandem-bundle: signed Tandem bundles from an image recipe's output.
#
# In the image recipe (or IMAGE_CLASSES += "tandem-bundle" for every image):
#
#   inherit tandem-bundle
#   TANDEM_SIGNING_KEY = "/secure/path/release.key"    # required
#   TANDEM_BUNDLE_BASE = "/releases/1.1/myimage.ext4"  # optional: a delta too
#
# After the image of type TANDEM_BUNDLE_FSTYPE is made, tandem-image (from
# tandem-native) signs a full bundle of it, and, with TANDEM_BUNDLE_BASE,
# a delta bundle that turns that earlier image (the one in the devices'
# active slot) into this one. Both are deployed beside the image:
#   ${IMAGE_NAME}.tnd, ${IMAGE_NAME}.delta.tnd, and ${IMAGE_LINK_NAME}.tnd
#   and .delta.tnd linking to them.

# The slot image the bundles carry: one of IMAGE_FSTYPES.
TANDEM_BUNDLE_FSTYPE ??= "ext4"
# The private key (PEM, from "tandem-image keygen"). Several keys, separated
# by spaces, sign the bundle several times (signature_threshold).
TANDEM_SIGNING_KEY ??= ""
# Must equal "compatible" in the devices' /etc/tandem/tandem.conf.
TANDEM_COMPATIBLE ??= "${MACHINE}"
TANDEM_BUNDLE_VERSION ??= "${DISTRO_VERSION}"
# The earlier release's image file, of the same type, for a delta bundle.
TANDEM_BUNDLE_BASE ??= ""
# More options for "tandem-image build" (--security-version N, --expires,
# --no-delta-xz for devices built without PACKAGECONFIG delta-xz, ...).
TANDEM_BUNDLE_ARGS ??= ""

do_tandem_bundle() {
    if [ -z "${TANDEM_SIGNING_KEY}" ]; then
        bbfatal "tandem-bundle: set TANDEM_SIGNING_KEY to the release signing key (tandem-image keygen)"
    fi
    image="${IMGDEPLOYDIR}/${IMAGE_NAME}.${TANDEM_BUNDLE_FSTYPE}"
    [ -f "$image" ] || bbfatal "tandem-bundle: no $image: is ${TANDEM_BUNDLE_FSTYPE} in IMAGE_FSTYPES?"
    keys=""
    for key in ${TANDEM_SIGNING_KEY}; do
        [ -r "$key" ] || bbfatal "tandem-bundle: cannot read the signing key $key"
        keys="$keys --key $key"
    done

    tandem-image build $keys --image "$image" --version "${TANDEM_BUNDLE_VERSION}" \
        --compatible "${TANDEM_COMPATIBLE}" ${TANDEM_BUNDLE_ARGS} \
        --out "${IMGDEPLOYDIR}/${IMAGE_NAME}.tnd"
    ln -sf "${IMAGE_NAME}.tnd" "${IMGDEPLOYDIR}/${IMAGE_LINK_NAME}.tnd"

    if [ -n "${TANDEM_BUNDLE_BASE}" ]; then
        [ -f "${TANDEM_BUNDLE_BASE}" ] || bbfatal "tandem-bundle: TANDEM_BUNDLE_BASE ${TANDEM_BUNDLE_BASE} is not a file"
        tandem-image build $keys --base "${TANDEM_BUNDLE_BASE}" --image "$image" \
            --version "${TANDEM_BUNDLE_VERSION}" --compatible "${TANDEM_COMPATIBLE}" \
            ${TANDEM_BUNDLE_ARGS} --out "${IMGDEPLOYDIR}/${IMAGE_NAME}.delta.tnd"
        ln -sf "${IMAGE_NAME}.delta.tnd" "${IMGDEPLOYDIR}/${IMAGE_LINK_NAME}.delta.tnd"
    fi
}
# A new key or base image is a new bundle.
# (A file that is not there yet counts as absent; the task then stops.)
do_tandem_bundle[file-checksums] += "${@' '.join('%s:%s' % (f, os.path.exists(f)) for f in (d.getVar('TANDEM_SIGNING_KEY') + ' ' + d.getVar('TANDEM_BUNDLE_BASE')).split())}"
do_tandem_bundle[vardeps] += "TANDEM_SIGNING_KEY TANDEM_BUNDLE_BASE TANDEM_BUNDLE_VERSION TANDEM_COMPATIBLE TANDEM_BUNDLE_ARGS"

# Between the image of that type and do_image_complete, which deploys
# ${IMGDEPLOYDIR} (bundles included) to ${DEPLOY_DIR_IMAGE}. An image
# without that type gets no bundle: said as a warning to a recipe that
# inherits the class, quietly where IMAGE_CLASSES gives it to every image
# (an initramfs, say).
python () {
    fstype = d.getVar('TANDEM_BUNDLE_FSTYPE')
    if fstype not in (d.getVar('IMAGE_FSTYPES') or '').split():
        msg = 'tandem-bundle: %s: TANDEM_BUNDLE_FSTYPE "%s" is not in IMAGE_FSTYPES: no bundle' % (d.getVar('PN'), fstype)
        if 'tandem-bundle' in (d.getVar('IMAGE_CLASSES') or '').split():
            bb.debug(1, msg)
        else:
            bb.warn(msg)
        return
    d.appendVar('DEPENDS', ' tandem-native')
    bb.build.addtask('do_tandem_bundle', 'do_image_complete', 'do_image_' + fstype.replace('.', '_').replace('-', '_'), d)
}
