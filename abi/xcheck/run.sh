#!/bin/sh
# Cross-checks statictramp-abi's x86_64 Plans against libffi's ffi_call
# (see harness.c). x86_64 Linux, gcc required.
#
#   abi/xcheck/run.sh [CASES] [SEEDS] [LIBFFI_PREFIX]
#
# LIBFFI_PREFIX: an installed libffi (include/, lib/libffi.a). By default
# scripts/build-libffi36 builds the libffi 3.6 bundled with the libffi-sys
# crate once (target/libffi-3.6) and the harness links its static libffi.a.
# Do not use libffi 3.4.x: its ffi_call copies a whole struct into the last
# GPR slot and spills into xmm0's slot (fixed in 3.5 by `size <= 8 ? size : 8`
# in ffi64.c), which shows up here as xmm0 mismatches.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cases=${1:-3000}
seeds=${2:-"1 2 3"}
tmp=${TMPDIR:-/tmp}/statictramp-xcheck
mkdir -p "$tmp"
prefix=${3:-}
if [ -z "$prefix" ]; then
  prefix=$("$here/../../scripts/build-libffi36")
fi
for seed in $seeds; do
  cargo run -q --manifest-path "$here/../Cargo.toml" --example xcheck_cases -- "$cases" "$seed" >"$tmp/cases.h"
  gcc -O1 -I"$tmp" -I"$prefix/include" -o "$tmp/harness" "$here/harness.c" "$here/entry.S" "$prefix/lib/libffi.a"
  printf 'seed %s: ' "$seed"
  "$tmp/harness"
done
