#!/usr/bin/env bash
# A libFuzzer campaign on fuzz_targets/difffuzz_case.rs (the differential
# fuzzer's generator decoding libFuzzer's bytes; see docs/design.md,
# "Differential fuzzing"). Installs cargo-fuzz when missing, builds the
# target (AddressSanitizer), runs the checked-in seeds once
# (fuzz/seeds/difffuzz_case, every input must pass), then fuzzes for
# DURATION seconds over a work copy of the corpus. On a finding it prints
# the artifact, the commands that replay it and the decoded case, and
# fails.
#
# libFuzzer runs in rounds of at most STATICTRAMP_FUZZ_ROUND seconds
# (default 120) over the same corpus: statictramp interns one plan per
# signature for the life of the process (by design), and nearly every
# input is a new signature, so one long process would grow without bound
# (about 6 KB per execution under AddressSanitizer).
#
# Usage: fuzz/campaign.sh DURATION [JOBS]
#   DURATION  seconds of fuzzing after the seed run (0: the seeds only)
#   JOBS      parallel libFuzzer processes on the shared corpus (default 1)
# Env: STATICTRAMP_FUZZ_WORK     work directory (default target/fuzz-campaign:
#                                corpus/, artifacts/, logs/)
#      STATICTRAMP_FUZZ_ROUND    seconds per libFuzzer process (default 120)
#      STATICTRAMP_FUZZ_SANITIZER  cargo fuzz --sanitizer (default address)
#      STATICTRAMP_FUZZ_CALLER   the caller's libffi.so (default libffi 3.6
#                                from scripts/build-libffi36; Debian's 3.4.4
#                                is the control that must produce a finding)
# Prints a summary line: executions, exec/s, coverage (cov, ft), corpus
# size, findings.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
duration=${1:?usage: fuzz/campaign.sh DURATION [JOBS]}
jobs=${2:-1}
round=${STATICTRAMP_FUZZ_ROUND:-120}
sanitizer=${STATICTRAMP_FUZZ_SANITIZER:-address}
work=${STATICTRAMP_FUZZ_WORK:-target/fuzz-campaign}
target=difffuzz_case
seeds=fuzz/seeds/$target

log() { echo "campaign: $*" >&2; }

if ! command -v cargo-fuzz >/dev/null && [[ -x $HOME/.cargo/bin/cargo-fuzz ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo-fuzz >/dev/null; then
    log "cargo-fuzz missing: cargo install cargo-fuzz --version 0.13.2 --locked"
    cargo install cargo-fuzz --version 0.13.2 --locked || {
        log "cannot install cargo-fuzz"
        exit 1
    }
fi

if [[ -n ${STATICTRAMP_FUZZ_CALLER:-} ]]; then
    export STATICTRAMP_FUZZ_LIBFFI=$STATICTRAMP_FUZZ_CALLER
else
    prefix=$(scripts/build-libffi36)
    export STATICTRAMP_FUZZ_LIBFFI=$prefix/lib/libffi.so.8
fi
# cargo fuzz passes -Z flags (sanitizers, coverage instrumentation) to a
# stable rustc.
export RUSTC_BOOTSTRAP=1
cargo fuzz build --features libfuzzer --sanitizer "$sanitizer" "$target" >&2
# The decoder for reports.
cargo build --release -p statictramp-fuzz >&2
host=$(rustc -vV | sed -n 's/^host: //p')
bin=${CARGO_TARGET_DIR:-target}/$host/release/$target
decoder=${CARGO_TARGET_DIR:-target}/release/statictramp-difffuzz
[[ -x $bin ]] || { log "no fuzz target at $bin"; exit 1; }

mkdir -p "$work/corpus" "$work/artifacts" "$work/logs"
cp -n "$seeds"/* "$work/corpus/"

# Prints how to replay the newest artifact and what case it is; fails.
report() {
    local what=$1 logfile=$2 art
    art=$(ls -t "$work"/artifacts/* 2>/dev/null | head -1 || true)
    log "FINDING ($what); libFuzzer's log: $logfile"
    grep -E "panicked|ERROR|SUMMARY" "$logfile" | head -5 >&2 || true
    if [[ -n $art ]]; then
        log "artifact: $art"
        log "replay:   STATICTRAMP_FUZZ_LIBFFI=$STATICTRAMP_FUZZ_LIBFFI $bin $art"
        log "  or:     STATICTRAMP_FUZZ_LIBFFI=$STATICTRAMP_FUZZ_LIBFFI RUSTC_BOOTSTRAP=1 cargo fuzz run --features libfuzzer $target $art"
        log "decoded:  $decoder --libffi $STATICTRAMP_FUZZ_LIBFFI --input $art --compare-libffi"
        "$decoder" --libffi "$STATICTRAMP_FUZZ_LIBFFI" --input "$art" --compare-libffi | head -40 >&2 || true
    fi
    exit 1
}

# The seeds once: each must pass.
seedlog=$work/logs/seeds.log
if ! "$bin" -runs=0 -artifact_prefix="$work/artifacts/" "$seeds" >"$seedlog" 2>&1; then
    report "a checked-in seed" "$seedlog"
fi
log "seeds: $(ls "$seeds" | wc -l) inputs passed ($(grep -o 'cov: [0-9]* ft: [0-9]*' "$seedlog" | tail -1))"
((duration > 0)) || exit 0

# One job: rounds until DURATION is used up; each appends to its log.
run_job() {
    local j=$1 end=$((SECONDS + duration)) t rc
    local logfile=$work/logs/job$j.log
    : >"$logfile"
    while ((SECONDS < end)); do
        t=$((end - SECONDS))
        ((t > round)) && t=$round
        rc=0
        "$bin" -max_total_time="$t" -rss_limit_mb=4096 -print_final_stats=1 \
            -artifact_prefix="$work/artifacts/" "$work/corpus" >>"$logfile" 2>&1 || rc=$?
        ((rc == 0)) || return "$rc"
    done
}

start=$SECONDS
pids=()
for ((j = 1; j <= jobs; j++)); do
    run_job "$j" &
    pids+=($!)
done
failed=0
for ((j = 1; j <= jobs; j++)); do
    wait "${pids[j - 1]}" || failed=$j
done
elapsed=$((SECONDS - start))
runs=$(cat "$work"/logs/job*.log | sed -n 's/^Done \([0-9]*\) runs.*/\1/p' | awk '{s += $1} END {print s + 0}')
cov=$(grep -ho 'cov: [0-9]* ft: [0-9]* corp: [0-9]*' "$work"/logs/job*.log | tail -1)
echo "campaign: $runs executions in ${elapsed}s ($((runs / (elapsed > 0 ? elapsed : 1))) exec/s, $jobs job(s), sanitizer $sanitizer), $cov, corpus $(ls "$work/corpus" | wc -l) files, findings: $((failed > 0))"
((failed == 0)) || report "job $failed" "$work/logs/job$failed.log"
