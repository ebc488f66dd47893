# SPDX-License-Identifier: MIT
# Tandem links Nettle's static archive (its Makefile: -l:libnettle.a, for
# the resident memory the shared library would cost), which OE builds
# only when asked. The archive goes to nettle-staticdev, not into images.
DISABLE_STATIC = ""
