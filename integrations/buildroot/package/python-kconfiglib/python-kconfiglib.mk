################################################################################
#
# python-kconfiglib
#
################################################################################

# Tandem's build configures itself with kconfiglib, which Buildroot does
# not package; only the host variant is needed.
PYTHON_KCONFIGLIB_VERSION = v14.1.0
PYTHON_KCONFIGLIB_SITE = https://github.com/ulfalizer/Kconfiglib.git
PYTHON_KCONFIGLIB_SITE_METHOD = git
PYTHON_KCONFIGLIB_SETUP_TYPE = setuptools
PYTHON_KCONFIGLIB_LICENSE = ISC
PYTHON_KCONFIGLIB_LICENSE_FILES = LICENSE.txt

$(eval $(host-python-package))
