# SPDX-License-Identifier: MIT
# --- Tandem: load the boot variables from two env files on the FAT -----
# Each file is a libubootenv "redundant" image of ${tandem_env_size} bytes:
#   offset 0: CRC32 (LE) of bytes 5..size-1
#   offset 4: flags = sequence number, +1 on every write (wraps 255 -> 0)
#   offset 5: "name=value\0" ... "\0", zero padded
# `env import -c` expects the CRC directly before the data, so the CRC is
# copied one byte up (over the flags byte) and the import starts at +1;
# the flags byte is saved first at ${tandem_fsave0}/${tandem_fsave1}.
setenv tandem_v0 0
setenv tandem_v1 0
mw.b ${tandem_env0} 0 ${tandem_env_size}
mw.b ${tandem_env1} 0 ${tandem_env_size}
mw.b ${tandem_fsave0} 0 2
if load ${tandem_dev}:${tandem_boot_part} ${tandem_env0} ${tandem_env_file0}; then
	if test "${filesize}" = "${tandem_env_filesize}"; then
		cp.b ${tandem_env0_flag} ${tandem_fsave0} 1
		cp.b ${tandem_env0} ${tandem_tmp} 4
		cp.b ${tandem_tmp} ${tandem_env0_p1} 4
		# Probe the CRC only: the made-up variable name imports nothing.
		if env import -c ${tandem_env0_p1} ${tandem_env_size_m1} tandem_crc_probe; then
			setenv tandem_v0 1
		fi
	fi
fi
if load ${tandem_dev}:${tandem_boot_part} ${tandem_env1} ${tandem_env_file1}; then
	if test "${filesize}" = "${tandem_env_filesize}"; then
		cp.b ${tandem_env1_flag} ${tandem_fsave1} 1
		cp.b ${tandem_env1} ${tandem_tmp} 4
		cp.b ${tandem_tmp} ${tandem_env1_p1} 4
		if env import -c ${tandem_env1_p1} ${tandem_env_size_m1} tandem_crc_probe; then
			setenv tandem_v1 1
		fi
	fi
fi

# Pick the current copy exactly as libubootenv (and U-Boot's own redundant
# env) do: the valid one; if both are valid the higher sequence, where
# 0 follows 255.
setenv tandem_cur none
if test ${tandem_v0} = 1 && test ${tandem_v1} = 1; then
	setenv tandem_cur 0
	if itest.b *${tandem_fsave1} -gt *${tandem_fsave0}; then
		setenv tandem_cur 1
	fi
	if itest.b *${tandem_fsave0} -eq 0xff && itest.b *${tandem_fsave1} -eq 0; then
		setenv tandem_cur 1
	fi
	if itest.b *${tandem_fsave1} -eq 0xff && itest.b *${tandem_fsave0} -eq 0; then
		setenv tandem_cur 0
	fi
elif test ${tandem_v0} = 1; then
	setenv tandem_cur 0
elif test ${tandem_v1} = 1; then
	setenv tandem_cur 1
fi

# Only the boot variables are imported; anything else in U-Boot's env
# (bootcmd, addresses) stays as built in. They are cleared first, so a
# variable missing from the file gets its default in select.cmd.
setenv BOOT_ORDER
setenv BOOT_A_LEFT
setenv BOOT_B_LEFT
if test ${tandem_cur} = 0; then
	env import -c ${tandem_env0_p1} ${tandem_env_size_m1} ${tandem_env_vars}
	cp.b ${tandem_fsave0} ${tandem_seq} 1
	setenv tandem_wr_addr ${tandem_env1}
	setenv tandem_wr_p1 ${tandem_env1_p1}
	setenv tandem_wr_flag ${tandem_env1_flag}
	setenv tandem_wr_file ${tandem_env_file1}
elif test ${tandem_cur} = 1; then
	env import -c ${tandem_env1_p1} ${tandem_env_size_m1} ${tandem_env_vars}
	cp.b ${tandem_fsave1} ${tandem_seq} 1
	setenv tandem_wr_addr ${tandem_env0}
	setenv tandem_wr_p1 ${tandem_env0_p1}
	setenv tandem_wr_flag ${tandem_env0_flag}
	setenv tandem_wr_file ${tandem_env_file0}
else
	# Neither copy is valid (first boot of a blank device, or both
	# damaged): start from defaults and write copy 1 with sequence 1, so
	# that copy 0, whatever it holds, loses against it.
	echo "Tandem: WARNING: no valid environment file, using defaults"
	mw.b ${tandem_seq} 0 1
	setenv tandem_cur none
	setenv tandem_wr_addr ${tandem_env1}
	setenv tandem_wr_p1 ${tandem_env1_p1}
	setenv tandem_wr_flag ${tandem_env1_flag}
	setenv tandem_wr_file ${tandem_env_file1}
fi

# Next sequence number = current + 1 (mod 256), computed without setexpr
# (Debian's x86 U-Boot has none): find the two hex digits of the byte
# with itest, then take the successor digit by walking the digit list.
setenv tandem_hi 0
for d in 1 2 3 4 5 6 7 8 9 a b c d e f; do
	if itest.b *${tandem_seq} -ge 0x${d}0; then
		setenv tandem_hi ${d}
	fi
done
setenv tandem_lo 0
for d in 1 2 3 4 5 6 7 8 9 a b c d e f; do
	if itest.b *${tandem_seq} -ge 0x${tandem_hi}${d}; then
		setenv tandem_lo ${d}
	fi
done
setenv tandem_nlo x
setenv tandem_prev x
for d in 0 1 2 3 4 5 6 7 8 9 a b c d e f 0; do
	if test "${tandem_nlo}" = x && test "${tandem_prev}" = "${tandem_lo}"; then
		setenv tandem_nlo ${d}
	fi
	setenv tandem_prev ${d}
done
setenv tandem_nhi ${tandem_hi}
if test "${tandem_lo}" = f; then
	setenv tandem_nhi x
	setenv tandem_prev x
	for d in 0 1 2 3 4 5 6 7 8 9 a b c d e f 0; do
		if test "${tandem_nhi}" = x && test "${tandem_prev}" = "${tandem_hi}"; then
			setenv tandem_nhi ${d}
		fi
		setenv tandem_prev ${d}
	done
fi
echo "Tandem: env copy0=${tandem_v0} copy1=${tandem_v1} current=${tandem_cur} seq=0x${tandem_hi}${tandem_lo} next=0x${tandem_nhi}${tandem_nlo} -> ${tandem_wr_file}"
