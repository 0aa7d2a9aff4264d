#!/usr/bin/env bash
# The libFuzzer step of scripts/test.sh: clippy on the target (the
# workspace's clippy skips it: it needs the libfuzzer feature), then
# fuzz/campaign.sh (installs
# cargo-fuzz when missing, builds the target, runs the checked-in seeds
# once) for DURATION seconds with libffi 3.6 as the caller, in a fresh work
# directory; then the control: the same target with Debian's libffi 3.4.4
# as the caller (its ffi_call corrupts xmm0 for some INTEGER+SSE structs in
# r9) must report a finding within CONTROL seconds, which shows that a
# wrong byte reaches libFuzzer as a crash.
#
# Usage: fuzz/ci.sh [DURATION] [CONTROL]   (default 60 30)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
duration=${1:-60}
control=${2:-30}
cargo clippy -p statictramp-fuzz --features libfuzzer --bins -- -D warnings
work=$(mktemp -d "${TMPDIR:-/tmp}/statictramp-libfuzzer.XXXXXX")
trap 'rm -rf "$work"' EXIT
STATICTRAMP_FUZZ_WORK=$work/libffi36 fuzz/campaign.sh "$duration"
system=$(ldconfig -p | awk '/libffi\.so\.8 .*x86-64/ && !found {print $NF; found = 1}')
[[ -n $system ]] || { echo "fuzz/ci.sh: no system libffi.so.8 for the control" >&2; exit 1; }
out=$(STATICTRAMP_FUZZ_WORK=$work/control STATICTRAMP_FUZZ_CALLER=$system \
    fuzz/campaign.sh "$control" 2>&1) && {
    echo "$out" | tail -5 >&2
    echo "fuzz/ci.sh: the control with $system found nothing in ${control}s: can the target fail?" >&2
    exit 1
}
grep -q "FINDING" <<<"$out" && grep -q "statictramp: Wrong" <<<"$out" || {
    echo "$out" | tail -20 >&2
    echo "fuzz/ci.sh: the control failed, but not with a finding" >&2
    exit 1
}
echo "control ($system, libffi 3.4.4's ffi_call): $(grep -m1 'statictramp: Wrong' <<<"$out" | sed 's/^ *//')"
