# SPDX-License-Identifier: MIT
# --- Tandem: choose the slot (RAUC-compatible BOOT_ORDER / BOOT_x_LEFT) ---
if test "x${BOOT_ORDER}" = "x"; then
	setenv BOOT_ORDER "${tandem_default_order}"
fi
if test "x${BOOT_A_LEFT}" = "x"; then
	setenv BOOT_A_LEFT ${tandem_tries_default}
fi
if test "x${BOOT_B_LEFT}" = "x"; then
	setenv BOOT_B_LEFT ${tandem_tries_default}
fi

# First slot of BOOT_ORDER with tries left. Unknown names are ignored.
setenv tandem_slot
for s in ${BOOT_ORDER}; do
	if test "x${tandem_slot}" = "x"; then
		if test "x${s}" = "xA" && test "${BOOT_A_LEFT}" -gt 0; then
			setenv tandem_slot A
		elif test "x${s}" = "xB" && test "${BOOT_B_LEFT}" -gt 0; then
			setenv tandem_slot B
		fi
	fi
done

# No tries left anywhere: both slots failed their tries. Bricking the
# device helps nobody; a slot that failed may have failed for a transient
# reason (power, a missing peripheral), so reset every counter and boot
# the first slot of the order, which consumes one of the new tries.
if test "x${tandem_slot}" = "x"; then
	echo "Tandem: no slot has tries left; resetting counters to ${tandem_tries_default}"
	setenv BOOT_A_LEFT ${tandem_tries_default}
	setenv BOOT_B_LEFT ${tandem_tries_default}
	for s in ${BOOT_ORDER}; do
		if test "x${tandem_slot}" = "x"; then
			if test "x${s}" = "xA" || test "x${s}" = "xB"; then
				setenv tandem_slot ${s}
			fi
		fi
	done
fi
# BOOT_ORDER names no known slot at all: repair it.
if test "x${tandem_slot}" = "x"; then
	echo "Tandem: BOOT_ORDER '${BOOT_ORDER}' names no slot; using '${tandem_default_order}'"
	setenv BOOT_ORDER "${tandem_default_order}"
	setenv tandem_slot A
fi

# Decrement the chosen counter without setexpr. Values above 10 are
# clamped to 9 (a counter that large is a configuration error anyway).
if test ${tandem_slot} = A; then
	setenv tandem_left ${BOOT_A_LEFT}
else
	setenv tandem_left ${BOOT_B_LEFT}
fi
if test "${tandem_left}" -gt 10; then
	setenv tandem_left 9
elif test "${tandem_left}" -eq 10; then
	setenv tandem_left 9
elif test "${tandem_left}" -eq 9; then
	setenv tandem_left 8
elif test "${tandem_left}" -eq 8; then
	setenv tandem_left 7
elif test "${tandem_left}" -eq 7; then
	setenv tandem_left 6
elif test "${tandem_left}" -eq 6; then
	setenv tandem_left 5
elif test "${tandem_left}" -eq 5; then
	setenv tandem_left 4
elif test "${tandem_left}" -eq 4; then
	setenv tandem_left 3
elif test "${tandem_left}" -eq 3; then
	setenv tandem_left 2
elif test "${tandem_left}" -eq 2; then
	setenv tandem_left 1
else
	setenv tandem_left 0
fi
if test ${tandem_slot} = A; then
	setenv BOOT_A_LEFT ${tandem_left}
	setenv tandem_part ${tandem_slot_a_part}
	setenv tandem_root ${tandem_root_a}
else
	setenv BOOT_B_LEFT ${tandem_left}
	setenv tandem_part ${tandem_slot_b_part}
	setenv tandem_root ${tandem_root_b}
fi
echo "Tandem: slot=${tandem_slot} BOOT_ORDER=${BOOT_ORDER} BOOT_A_LEFT=${BOOT_A_LEFT} BOOT_B_LEFT=${BOOT_B_LEFT}"
