# SPDX-License-Identifier: MIT
# --- Tandem: save the boot variables with U-Boot's own env storage -------
# For boards whose U-Boot keeps its environment on eMMC/flash with
# CONFIG_SYS_REDUNDAND_ENVIRONMENT: saveenv writes the spare copy and
# flips, so nothing more is needed here. U-Boot loaded the variables
# itself before running this script.
if saveenv; then
	echo "Tandem: environment saved"
else
	echo "Tandem: WARNING: saveenv failed; tries are not counted"
fi
