#!/usr/bin/env bash
# Writes the libFuzzer seed corpus fuzz/seeds/difffuzz_case/ from the
# deterministic generator: cases 0..49 of seed 1 (a third of them with
# structs of stated layout), plus cases of seed 1 that exercise what those
# miss: 129 and 348 (zero-sized types by value, which libffi's
# ffi_prep_cif and statictramp must both refuse; 348 is ctypes' zeroed
# ffi_type as the return type), 216 and 263 (a struct with a NO_CLASS
# eightbyte, on which libffi's own closures fail). Each file is named
# seed1-caseI and decodes to exactly that case (checked when written).
#
# Usage: fuzz/write-seeds.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release -p statictramp-fuzz >&2
bin=target/release/statictramp-difffuzz
dir=fuzz/seeds/difffuzz_case
rm -rf "$dir"
"$bin" --write-seeds "$dir" --seed 1 --cases 50
for i in 129 348 216 263; do
    "$bin" --write-seeds "$dir" --seed 1 --case "$i"
done
