# SPDX-License-Identifier: MIT
# --- Tandem: save the boot variables to the non-current env file --------
# Written BEFORE the kernel starts, so a slot that hangs or panics has
# already paid for this try. The current copy is never touched: a power
# cut during fatwrite leaves it intact, and its lower sequence number
# wins again on the next boot.
# Export at +1 gives CRC at +1..+4 and data at +5; then move the CRC down
# to +0 and put the new sequence number at +4 (libubootenv's layout).
mw.b ${tandem_wr_addr} 0 ${tandem_env_size}
env export -c -s ${tandem_env_size_m1} ${tandem_wr_p1} ${tandem_env_vars}
cp.b ${tandem_wr_p1} ${tandem_tmp} 4
cp.b ${tandem_tmp} ${tandem_wr_addr} 4
mw.b ${tandem_wr_flag} 0x${tandem_nhi}${tandem_nlo} 1
# The size is passed explicitly: ${filesize} after `env export -s` is not it.
if fatwrite ${tandem_dev}:${tandem_boot_part} ${tandem_wr_addr} ${tandem_wr_file} ${tandem_env_size}; then
	echo "Tandem: saved ${tandem_wr_file} seq=0x${tandem_nhi}${tandem_nlo}"
else
	# Booting anyway keeps a good slot usable on a read-only or full
	# boot partition; the price is that tries are not counted.
	echo "Tandem: WARNING: cannot write ${tandem_wr_file}; tries are not counted"
fi
