# SPDX-License-Identifier: MIT
# Sourced by tests that reboot a simulated device (tests/lib/simdev.sh).
#
# sim_boot DIR: one power-on of the device in DIR, doing what the U-Boot
# script in bootloader-hooks/uboot does: the first slot of BOOT_ORDER with
# tries left is chosen and its counter decremented before it boots; when
# every counter is spent, both are reset and the first slot of the order
# boots. Writes the kernel command line (tandem.slot=) and a new boot ID,
# and prints the slot. The real script runs under QEMU in tests/e2e.
sim_boot() {
	local dir=$1 s left chosen=""
	local env=$dir/fw_env.config
	for s in $(fw_printenv -c "$env" -n BOOT_ORDER); do
		left=$(fw_printenv -c "$env" -n "BOOT_${s}_LEFT")
		if [ "$left" -gt 0 ]; then
			chosen=$s
			fw_setenv -c "$env" "BOOT_${s}_LEFT" $((left - 1))
			break
		fi
	done
	if [ -z "$chosen" ]; then
		chosen=$(fw_printenv -c "$env" -n BOOT_ORDER | cut -d' ' -f1)
		fw_setenv -c "$env" BOOT_A_LEFT 3
		fw_setenv -c "$env" BOOT_B_LEFT 3
		fw_setenv -c "$env" "BOOT_${chosen}_LEFT" 2
	fi
	echo "console=ttyS0 tandem.slot=$chosen" >"$dir/cmdline"
	cat /proc/sys/kernel/random/uuid >"$dir/boot_id"
	echo "$chosen"
}
