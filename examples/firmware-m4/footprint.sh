#!/bin/sh
# Builds the firmware and prints its footprint against the budgets of the issue; exits 1 if over.
#
#   ./footprint.sh           flash and static RAM of the release build
#   ./footprint.sh --stack   also the worst-case stack, measured under QEMU (needs qemu-system-arm)
#
# flash      = .vector_table + .text + .rodata + .data (the load image)
# static RAM = .data + .bss + .uninit
# Section sizes come from `readelf -S` (GNU binutils reads any ELF), so no LLVM tools are needed.
set -eu
cd "$(dirname "$0")"
# Its own target directory, whatever the caller's CARGO_TARGET_DIR: the ELF is read from it.
export CARGO_TARGET_DIR="$PWD/target"

FLASH_BUDGET=49152 # 48 KiB
RAM_BUDGET=4096    # 4 KiB
ELF=target/thumbv7em-none-eabihf/release/airlock-firmware-m4

cargo build --release --quiet

section() { # size of section $1 in bytes, 0 if absent
    hex=$(readelf -SW "$ELF" | sed 's/\[ *\([0-9]*\)\]/[\1]/' | awk -v name="$1" '$2 == name { print $6 }')
    echo $((0x${hex:-0}))
}
vector=$(section .vector_table); text=$(section .text); rodata=$(section .rodata)
data=$(section .data); bss=$(section .bss); uninit=$(section .uninit)
flash=$((vector + text + rodata + data))
ram=$((data + bss + uninit))

status=0
report() { # report WHAT SIZE BUDGET
    if [ "$2" -le "$3" ]; then
        echo "$1: $2 bytes (budget $3)"
    else
        echo "$1: $2 bytes (budget $3) OVER by $(($2 - $3))"
        status=1
    fi
}
report flash "$flash" "$FLASH_BUDGET"
echo "  .vector_table $vector, .text $text, .rodata $rodata, .data $data"
report "static RAM" "$ram" "$RAM_BUDGET"
# The statics of 64 bytes or more, largest first.
readelf -sW "$ELF" | awk '$4 == "OBJECT" && $3 >= 64 && $2 ~ /^2000/ { print $3, $8 }' | sort -rn |
    sed -E 's/ _ZN[0-9]+airlock_firmware_m4[0-9]+([A-Za-z_]+)17h[0-9a-f]{16}E$/ \1/' |
    awk '{ printf "  %-8s %6d\n", $2, $1 }'

if [ "${1:-}" = "--stack" ]; then
    # Separate target dir: the QEMU build must never overwrite the measured ELF.
    cargo build --release --quiet --features qemu --target-dir target/qemu
    out=$(qemu-system-arm -M netduinoplus2 -nographic -monitor none -serial none \
        -semihosting-config enable=on,target=native \
        -kernel target/qemu/thumbv7em-none-eabihf/release/airlock-firmware-m4) || {
        echo "$out"
        echo "stack: QEMU run failed"
        exit 1
    }
    echo "$out" | sed -n '/^stack high-water/,/^stack peak/p' | sed '$d' | sed 's/^stack high-water/  high-water/'
    peak=$(echo "$out" | sed -n 's/^stack peak: \([0-9]*\) bytes$/\1/p')
    echo "stack: $peak bytes worst case measured under QEMU (no budget set)"
fi
exit $status
