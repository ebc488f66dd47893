# SPDX-License-Identifier: MIT
# --- Tandem: load kernel and initramfs from the chosen slot, boot -------
setenv bootargs "${tandem_bootargs} root=${tandem_root} tandem.slot=${tandem_slot}"
if load ${tandem_dev}:${tandem_part} ${kernel_addr_r} ${tandem_kernel}; then
	if load ${tandem_dev}:${tandem_part} ${ramdisk_addr_r} ${tandem_initrd}; then
		echo "Tandem: booting slot ${tandem_slot}: ${bootargs}"
		run tandem_boot
	fi
fi
# Reaching this line means the slot is unreadable or its kernel did not
# start. The try is already spent: reset, and after the slot's tries are
# gone the next slot of BOOT_ORDER is booted.
echo "Tandem: slot ${tandem_slot} failed to boot; resetting"
reset
