#!/bin/sh
# Cross-checks statictramp-abi's i386 Plans against callers GCC compiles for
# every i386 convention (see harness.c): all seven libffi ABIs, PASCAL and
# REGISTER through GCC declarations of the same layout. Needs the i686 cross
# compiler (Debian: gcc-i686-linux-gnu, libc6-dev-i386-cross) and runs the
# statically linked i686 harness natively. No libffi: its i386 ffi_call disagrees with the
# compilers on FASTCALL/THISCALL, PASCAL and REGISTER (docs/design.md).
#
#   abi/xcheck/i386/run.sh [CASES] [SEEDS] [LIBFFI]
#
# With LIBFFI (an i686 libffi install prefix, e.g. libffi 3.6 built for
# i686, or "system" for Debian's libffi-dev:i386) the callers call that
# libffi's closures instead of our Plans: a measurement of libffi, which
# prints per ABI how many cases pass, fail, crash or are refused.
#
# Env: CC_I686 (default i686-linux-gnu-gcc).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cases=${1:-2100}
seeds=${2:-"1 2 3"}
cc=${CC_I686:-i686-linux-gnu-gcc}
command -v "$cc" >/dev/null || {
  echo "xcheck/i386: $cc not found (Debian: apt-get install gcc-i686-linux-gnu libc6-dev-i386-cross)" >&2
  exit 1
}
tmp=${TMPDIR:-/tmp}/statictramp-xcheck-i386
mkdir -p "$tmp"
libffi=${3:-}
# Static where possible: the harness then runs without an i386 libc
# (libc6:i386); Debian's libffi:i386 is linked dynamically.
case $libffi in
  "") mode="-static $here/entry.S" ;;
  system) mode="-DXCHECK_LIBFFI -I/usr/include/i386-linux-gnu -L/usr/lib/i386-linux-gnu -lffi" ;;
  *) mode="-static -DXCHECK_LIBFFI -I$libffi/include $libffi/lib/libffi.a" ;;
esac
status=0
for seed in $seeds; do
  cargo run -q --manifest-path "$here/../../Cargo.toml" --example xcheck_i386_cases -- "$cases" "$seed" >"$tmp/cases.c"
  # Accumulated outgoing arguments and no deferred pops: the stack pointer
  # around a call moves only by the callee's pop and GCC's compensation.
  # shellcheck disable=SC2086 # $mode is a list of arguments
  "$cc" -O1 -fno-pic -no-pie -fno-omit-frame-pointer -maccumulate-outgoing-args \
    -fno-defer-pop -Wno-attributes -I"$tmp" -o "$tmp/harness" "$here/harness.c" $mode
  printf 'seed %s: ' "$seed"
  [ -z "$libffi" ] || echo
  "$tmp/harness" || status=1
done
exit $status
