#!/usr/bin/env bash
# The deterministic differential run (scripts/test.sh): CASES random
# signatures and values per seed through libffi 3.6's ffi_call into
# statictramp closures, each also through libffi 3.6's own closures (the
# verdicts must agree); then the control that shows the checker can fail:
# Debian's libffi 3.4.4 ffi_call, whose INTEGER+SSE struct-in-r9 defect
# must be reported.
#
# Usage: fuzz/run.sh [CASES] [SEEDS]     (default 200000 "1")
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cases=${1:-200000}
seeds=${2:-1}
prefix=$(scripts/build-libffi36)
cargo build --release -p statictramp-fuzz >&2
bin=target/release/statictramp-difffuzz
for seed in $seeds; do
    "$bin" --libffi "$prefix/lib/libffi.so.8" --seed "$seed" --cases "$cases" --compare-libffi
done
system=$(ldconfig -p | awk '/libffi\.so\.8 .*x86-64/ && !found {print $NF; found = 1}')
[[ -n $system ]] || { echo "fuzz/run.sh: no system libffi.so.8 for the control" >&2; exit 1; }
out=$("$bin" --libffi "$system" --seed 1 --cases 20000 --compare-libffi) && {
    echo "fuzz/run.sh: the control with $system found nothing: the checker cannot fail?" >&2
    exit 1
}
echo "control ($system, libffi 3.4.4's ffi_call): $(tail -1 <<<"$out")"
grep -q "failed, .* 0 where libffi's own closures disagree" <<<"$(tail -1 <<<"$out")" || {
    echo "fuzz/run.sh: statictramp and libffi's own closures disagree under the control:" >&2
    echo "$out" | tail -20 >&2
    exit 1
}
