# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# sc_boot_model: the boot model of the other tests (tests/lib/bootmodel.py,
# which the torture, integration and demo tests reboot with) against the
# real selection logic on Debian's U-Boot. Sourced by run.sh, which
# provides ok/bad/boot, $scenario and $cur_log.
#
# One U-Boot script runs every case of the table below: it sets or unsets
# BOOT_ORDER, BOOT_A_LEFT and BOOT_B_LEFT, runs the text of
# bootloader-hooks/uboot/select.cmd (included verbatim, not re-typed),
# whose own echo prints the choice, then the next case; `reset` at the
# end ends QEMU (-no-reboot). The header mkbootscr.sh writes for the board
# (tandem_default_order, tandem_tries_default from its boot.conf) comes
# first, as in the real boot.scr. One boot, a few seconds.
#
# E2E_BOOTMODEL=FILE checks another model (to see the check fail).

# The environments: BOOT_ORDER|BOOT_A_LEFT|BOOT_B_LEFT, "~" for unset.
# An empty field is an empty value, "  " two blanks. Numbers as U-Boot's
# `test` reads them: "010" is octal, "0x10" hex, "+2" and " 2" are 0.
E2E_MODEL_CASES=(
	"A B|3|3" "B A|3|3" "A|3|3" "B|3|3" "|3|3" "~|3|3" "X|3|3" "  |3|3"
	"B X A|3|3" "B X A|3|0" "a b|3|3" "A A|0|1" "A B |3|3" " B A|3|3" "B  A|3|3" "A,B|3|3"
	"A B|0|3" "A B|1|3" "A B|2|3" "A B|~|3" "A B||3" "A B|10|3" "A B|12|3"
	"A B|3x|3" "A B|x|3" "A B|-1|3" "A B|010|3" "A B|08|3" "A B|0x10|3" "A B|0x2|3"
	"A B|+2|3" "A B| 2|3" "A B|2 |3"
	"B A|3|0" "B A|3|1" "B A|3|2" "B A|3|~" "B A|3|" "B A|3|10" "B A|3|12"
	"B A|3|3x" "B A|3|x" "B A|1|-1"
	"A B|0|0" "B A|0|0" "A|0|3" "B|3|0" "B A|x|-1" "X|0|0" "  |0|0"
	"B X A|0|0" "X Y|1|1" "~|~|~" "||" "B A|~|~" "~|0|0"
	# what RAUC leaves: counters in hexadecimal ("a" is 10 to RAUC and
	# setexpr, 0 to `test`), a slot removed from the order
	"A B|a|3" "B A|3|f" "A|a|0" "B A|0|a" "A|3|~" "B|~|0"
)

# _model_args CASE: the case as VAR=VALUE lines (unset ones left out).
_model_args() {
	local o a b
	IFS='|' read -r o a b <<<"$1"
	[ "$o" = "~" ] || printf 'BOOT_ORDER=%s\n' "$o"
	[ "$a" = "~" ] || printf 'BOOT_A_LEFT=%s\n' "$a"
	[ "$b" = "~" ] || printf 'BOOT_B_LEFT=%s\n' "$b"
}

# _model_script OUT: the U-Boot script of every case.
_model_script() {
	local out=$1 i=0 c line var val
	"$E2E_TOP/bootloader-hooks/uboot/mkbootscr.sh" "$E2E_BOARD" "$E2E_WORK/model-board.scr" || return 1
	{
		# The board's header: everything before the first included part
		# (each starts with its SPDX line).
		awk 'NR > 1 && /^# SPDX-License-Identifier/ { exit } { print }' "$E2E_WORK/model-board.cmd"
		for c in "${E2E_MODEL_CASES[@]}"; do
			i=$((i + 1))
			echo "echo \"Tandem-model: case $i\""
			for var in BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT; do
				line=$(_model_args "$c" | grep "^$var=" || true)
				if [ -z "$line" ]; then
					echo "setenv $var"
				else
					val=${line#*=}
					echo "setenv $var \"$val\""
				fi
			done
			cat "$E2E_TOP/bootloader-hooks/uboot/select.cmd"
		done
		echo "echo \"Tandem-model: done $i\""
		echo "reset"
	} >"$out"
}

sc_boot_model() {
	scenario=boot-model
	local model=${E2E_BOOTMODEL:-$E2E_TOP/tests/lib/bootmodel.py} n=${#E2E_MODEL_CASES[@]}
	local got=$E2E_WORK/boot-model-uboot.txt wants=$E2E_WORK/boot-model-model.txt
	local i c want line diffs=0 args pid
	if ! _model_script "$E2E_WORK/boot-model.cmd" ||
		! grep -q '^setenv tandem_default_order ' "$E2E_WORK/boot-model.cmd" ||
		! grep -q '^setenv tandem_tries_default ' "$E2E_WORK/boot-model.cmd"; then
		bad "cannot make the model script (no mkbootscr.sh header with the board's defaults?)"
		return
	fi
	e2e_build_script_disk "$E2E_WORK/boot-model.img" "$E2E_WORK/boot-model.cmd" ||
		{ bad "cannot build the script disk"; return; }
	# The model's answer for each case ("N: slot=..."), one
	# `bootmodel.py select` per case, computed while U-Boot runs.
	(
		i=0
		for c in "${E2E_MODEL_CASES[@]}"; do
			i=$((i + 1))
			mapfile -t args < <(_model_args "$c")
			want=$(python3 "$model" select "${args[@]}" 2>&1) || want="model failed: $want"
			printf '%s: %s\n' "$i" "$want"
		done
	) >"$wants" &
	pid=$!
	boot 1
	wait "$pid" || bad "running the model failed"
	expect "U-Boot ran the script to its reset" "$boot_rc" 0
	# "N: slot=..." for each select.cmd echo, N the case it ran under.
	tr -d '\r' <"$cur_log" | awk '
		/^Tandem-model: case / { c = $3 }
		/^Tandem: slot=/ { sub(/^Tandem: /, ""); print c ": " $0 }
	' >"$got"
	expect "cases U-Boot ran to the end" "$(sed -n 's/^Tandem-model: done \([0-9]*\).*/\1/p' "$cur_log" | tr -d '\r')" "$n"
	i=0
	for c in "${E2E_MODEL_CASES[@]}"; do
		i=$((i + 1))
		mapfile -t args < <(_model_args "$c")
		want=$(sed -n "s/^$i: //p" "$wants")
		line=$(grep "^$i: " "$got" || true)
		if [ "$line" != "$i: $want" ]; then
			diffs=$((diffs + 1))
			bad "case $i (${args[*]:-all unset}): U-Boot '${line#"$i: "}', model '$want'"
		fi
	done
	if [ "$diffs" = 0 ]; then
		ok "the model ($model) chose as U-Boot did in all $n environments"
	fi
}
