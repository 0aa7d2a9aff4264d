#!/usr/bin/env bash
# Installs what the tests need and runs all of them (Debian 12, x86_64).
#
#   1. system packages (scripts/lib/install-packages: apt-get, skipped when
#      everything is present)
#   2. the Rust toolchain check (cargo, rustfmt, clippy)
#   3. cargo fmt --all --check
#   4. cargo clippy --workspace --all-targets -- -D warnings
#   5. scripts/build-preload (the LD_PRELOAD library, symbol versions
#      checked), also --target i686-unknown-linux-gnu (the 32-bit one; sets
#      up the i686 toolchain when missing)
#   6. cargo test --release --workspace, with STATICTRAMP_PRELOAD and
#      STATICTRAMP_PRELOAD_I686 set
#      (incl. cli/tests/strict.rs: strict W^X mode and the statictramp CLI,
#      for 64-bit and 32-bit programs,
#      and bench/tests/bench.rs: statictramp-bench --quick)
#   7. examples/rust_user.rs: a Rust program on the crate alone keeps libffi's
#      closure API (the C names are exported only by the capi/ crate)
#      and scripts/demo (Python ctypes qsort callbacks, `statictramp run --strict`),
#      and compat/python/test_ctypes.py: CPython's test_ctypes under
#      `statictramp run --strict` for every CPython with its test package
#      (Debian's python3.11 at least: libpython3.11-testsuite), and with
#      Debian's python3.11 and a _ctypes built from its source package with
#      libstatictramp.a (compat/python/build_ctypes.py) under
#      `run --strict --no-preload`; scripts/test-install: the install
#      command, its pkg-config overlay proven on a C program and on cffi
#      built from its sdist (compat/python/build_cffi.py), relocation,
#      DESTDIR and uninstall
#   8. fuzz/run.sh: the differential fuzzer, 200 000 random signatures and
#      values, libffi 3.6's ffi_call into statictramp closures and into
#      libffi's own (verdicts must agree), and a control that must fail
#      (Debian's libffi 3.4.4 ffi_call and its xmm0 defect);
#      fuzz/ci.sh: the libFuzzer target on the same generator (cargo-fuzz
#      installed when missing), its checked-in seeds once, a 60 s campaign,
#      and the 3.4.4 control that must produce a finding;
#      abi/xcheck (libffi 3.6's ffi_call against our classification) and
#      abi/xcheck/i386 (GCC-compiled i686 callers against our i386 Plans)
#   9. compat/testsuite/run.py: libffi's own closure tests, 5 configurations
#  10. scripts/sanitize address thread: the runtime's tests (package
#      statictramp, and statictramp-abi's) built with -Zsanitizer=address
#      (LeakSanitizer on) and -Zsanitizer=thread, each test that cannot run
#      there excluded by name with its reason in the output; then Miri for
#      statictramp-abi where a toolchain has it, else the summary says
#      "not run" and why, and statictramp-abi's tests run in the debug
#      profile (overflow checks) in its place (scripts/sanitize abi-debug)
#  11. scripts/test-i686: the i686 toolchain (Debian's rustc-web 1.85 and
#      i386 std, i686-linux-gnu-gcc, libffi-dev:i386; installed by
#      scripts/lib/cross-target when missing), statictramp-abi's tests for
#      i686, the i686 preload library and the runtime's tests built for
#      i686 and run natively with it, libffi 3.6 built for i686, and a
#      libffi smoke test run natively
#  12. compat/testsuite/run.py --target i686-unknown-linux-gnu: libffi's
#      closure tests built for i686 (with the stdcall/thiscall/fastcall
#      variants) in the same 5 configurations, against libffi:i386 and
#      libffi 3.6 for i686, with the i686 preload library
#
# Every step runs even if an earlier one failed (except when the toolchain
# or a step's prerequisite is missing), so one run shows all failures; the
# summary lists each step's result and time, and what could not run here
# ("not run", with the reason: Miri without a toolchain that has it).
# Exit status 0 only if every step that ran passed.
#
# Usage: scripts/test.sh [--fail-fast]
# Env:   STATICTRAMP_SKIP_APT=1   do not touch system packages
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fail_fast=0
for arg in "$@"; do
    case $arg in
        --fail-fast) fail_fast=1 ;;
        -h | --help)
            # The header comment, whatever its length.
            sed -n '2,/^[^#]/{/^#/p}' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *) echo "test.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done

bold=$'\e[1m' red=$'\e[31m' green=$'\e[32m' reset=$'\e[0m'
if [[ ! -t 1 ]]; then bold='' red='' green='' reset=''; fi

start_all=$SECONDS
results=()
failed=0

header() {
    printf '\n%s==== %s ====%s\n' "$bold" "$1" "$reset"
}

# step NAME CMD...: runs CMD under a header, records its result and time.
step() {
    local name=$1
    shift
    header "$name"
    echo "\$ $*"
    local t0=$SECONDS rc=0
    "$@" || rc=$?
    local dt=$((SECONDS - t0))
    if ((rc == 0)); then
        printf '%s---- %s: ok (%ds)%s\n' "$green" "$name" "$dt" "$reset"
        results+=("ok    $(printf '%4ds' "$dt")  $name")
    else
        printf '%s---- %s: FAILED with status %d (%ds)%s\n' "$red" "$name" "$rc" "$dt" "$reset"
        results+=("FAIL  $(printf '%4ds' "$dt")  $name")
        failed=1
        if ((fail_fast)); then summary; fi
    fi
    return "$rc"
}

# not_run NAME REASON: records a check this machine cannot run, neither
# passed nor failed.
not_run() {
    header "$1"
    echo "not run: $2"
    results+=("n/a   $(printf "%5s" -)  $1: not run — $2")
    not_run_count=$((not_run_count + 1))
}
not_run_count=0

summary() {
    header "summary"
    local r
    for r in "${results[@]}"; do
        echo "  $r"
    done
    echo "  total $((SECONDS - start_all))s"
    if ((failed)); then
        echo "${red}${bold}test.sh: FAILED${reset}"
        exit 1
    fi
    if ((not_run_count)); then
        echo "${green}${bold}test.sh: all that ran passed${reset}; not run: $not_run_count (n/a above, with the reason)"
        exit 0
    fi
    echo "${green}${bold}test.sh: all passed${reset}"
    exit 0
}

# ---- 1. system packages ---------------------------------------------------

# Debian package -> why it is needed.
declare -A packages=(
    [gcc]="C compiler: asm via the cc crate, the preload link, compat/c"
    [libc6-dev]="C headers and crt files"
    [libffi-dev]="system libffi: libffi-sys (system), compat/c/bind_check.c"
    [curl]="fetches rustup when no Rust toolchain is installed"
    [ca-certificates]="TLS for rustup and crates.io"
    [make]="builds libffi 3.6 from the libffi-sys source for abi/xcheck"
    [gcc-i686-linux-gnu]="i686 callers of every i386 convention for abi/xcheck/i386"
    [libc6-dev-i386-cross]="i686 C library (static) for abi/xcheck/i386"
    [pkg-config]="libffi-sys finds libffi with pkg-config"
    [python3]="compat/python/qsort_demo.py, ctypes_layouts.py (ctypes)"
    [binutils]="nm, readelf: symbol version checks"
    [file]="file: ELF checks in tests/preload.rs"
    [libseccomp-dev]="strict mode (cli/src/strict.rs) and tests/scale.rs: libseccomp builds seccomp filters"
    [g++]="C++ tests of libffi's testsuite (unwindtest.cc: exceptions through closures)"
    [valgrind]="callgrind instruction counts in statictramp-bench (bench/tests/bench.rs)"
    [libpython3.11-testsuite]="CPython's test_ctypes for compat/python/test_ctypes.py"
    [python3.11-dev]="Python.h for compat/python/build_ctypes.py (_ctypes with libstatictramp.a)"
    [python3-gi]="GLib from Python (compat/programs/glib_callbacks.py): ordinary programs under strict mode"
    [gir1.2-glib-2.0]="GLib's introspection data for python3-gi"
    [ruby]="Ruby with Fiddle closures (compat/programs/fiddle_qsort.rb) under strict mode"
    [perl]="Perl (compat/programs/perl_basics.pl) under strict mode"
    [llvm]="llvm-symbolizer: symbolizes sanitizer reports, which scripts/lib/*.supp match by function name (scripts/sanitize)"
)

install_packages() {
    scripts/lib/install-packages "${!packages[@]}"
}

step "system packages" install_packages || summary

# ---- 2. Rust toolchain ----------------------------------------------------

check_rust() {
    if ! command -v cargo >/dev/null && [[ -x $HOME/.cargo/bin/cargo ]]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    if ! command -v cargo >/dev/null && command -v curl >/dev/null; then
        echo "cargo not found: installing Rust with rustup (minimal profile + rustfmt, clippy)"
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
            sh -s -- -y --profile minimal --component rustfmt,clippy &&
            export PATH="$HOME/.cargo/bin:$PATH"
    fi
    if ! command -v cargo >/dev/null; then
        cat >&2 <<'EOF'
cargo not found and rustup could not be installed. Install Rust with rustup
(https://rustup.rs), then re-run:
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --component rustfmt,clippy
    . "$HOME/.cargo/env"
(statictramp needs Rust 1.85 or newer.)
EOF
        return 1
    fi
    cargo --version
    rustc --version
    local comp
    for comp in fmt clippy; do
        if ! cargo "$comp" --version >/dev/null 2>&1; then
            local name=$comp
            [[ $comp == fmt ]] && name=rustfmt
            if command -v rustup >/dev/null; then
                echo "cargo $comp missing: rustup component add $name"
                rustup component add "$name" || return 1
            else
                echo "cargo $comp missing; install the $name component of your toolchain" >&2
                return 1
            fi
        fi
        cargo "$comp" --version
    done
}

# Without cargo nothing else can run.
step "rust toolchain" check_rust || summary

# ---- 3-7. the tests -------------------------------------------------------

step "cargo fmt --all --check" cargo fmt --all --check

step "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings

# The runner needs the CLI for its strict configurations.
libffi_testsuite() {
    cargo build --release --bin statictramp &&
        python3 compat/testsuite/run.py --preload "$preload_lib" --cli target/release/statictramp
}

# Needs the CLI (it finds the preload library beside it), and for the
# _ctypes build route CPython's source package (apt-get source: a deb-src
# entry, which scripts/lib/deb-src adds when missing).
python_test_ctypes() {
    cargo build --release --bin statictramp &&
        scripts/lib/deb-src python3.11 &&
        python3 compat/python/test_ctypes.py --cli target/release/statictramp
}

preload_lib=
preload_lib_i686=
# Both word sizes: cli/tests/strict.rs runs 32-bit programs under
# `statictramp run`. The i686 one sets up the i686 toolchain when it is
# missing (scripts/lib/cross-target), in its own process.
build_preload() {
    preload_lib=$(scripts/build-preload) || return 1
    echo "$preload_lib"
    preload_lib_i686=$(scripts/build-preload --target i686-unknown-linux-gnu) || return 1
    echo "$preload_lib_i686"
}

if step "build preload libraries (x86_64 and i686)" build_preload; then
    export STATICTRAMP_PRELOAD=$preload_lib
    export STATICTRAMP_PRELOAD_I686=$preload_lib_i686
    step "cargo test --release --workspace" cargo test --release --workspace
    step "Rust users keep libffi's closure API (examples/rust_user.rs, crate alone)" \
        cargo run --release -p statictramp --example rust_user
    step "demo: Python ctypes qsort under statictramp run --strict" scripts/demo
    step "CPython's test_ctypes under run --strict: preload (every CPython here) and _ctypes built with libstatictramp.a (compat/python)" \
        python_test_ctypes
    step "scripts/install: prefix, relocation, pkg-config overlay (C program, cffi sdist, whole CPython 3.13), DESTDIR, uninstall (scripts/test-install)" \
        scripts/test-install
    step "differential fuzzer: 200 000 random signatures, libffi 3.6 ffi_call into statictramp and libffi's own closures (fuzz/run.sh)" \
        fuzz/run.sh 200000 1
    step "libFuzzer target: cargo-fuzz, seeds once, 60 s campaign, 3.4.4 control (fuzz/ci.sh)" \
        fuzz/ci.sh 60 30
    step "classifier cross-check: libffi 3.6 ffi_call against our Plans (abi/xcheck)" \
        abi/xcheck/run.sh 3000 "1 2 3"
    step "i386 classifier cross-check: GCC i686 callers against our Plans (abi/xcheck/i386)" \
        abi/xcheck/i386/run.sh 2100 "1 2 3"
    step "libffi testsuite: closure tests, system libffi and 3.6, preload and strict (compat/testsuite)" \
        libffi_testsuite
else
    # tests/preload.rs would fail for want of the library: say so once.
    step "cargo test --release --workspace (without the preload library)" \
        cargo test --release --workspace
fi

# The runtime's tests under ASan (+LSan) and TSan; needs no preload library
# (the tests that run one are excluded there: they run no instrumented code).
step "sanitizers: the runtime's tests under AddressSanitizer+LeakSanitizer and ThreadSanitizer (scripts/sanitize)" \
    scripts/sanitize address thread
# Miri where a toolchain has it; else "not run" with the reason (never
# "ok"), and statictramp-abi's tests with overflow checks in its place.
if miri_why=$(scripts/sanitize miri-available); then
    step "Miri: statictramp-abi (scripts/sanitize miri)" scripts/sanitize miri
else
    not_run "Miri: statictramp-abi" "$miri_why"
    step "statictramp-abi in the debug profile, overflow checks on, in place of Miri (scripts/sanitize abi-debug)" \
        scripts/sanitize abi-debug
fi

# Last, and in a process of its own: it points cargo at Debian's rustc
# (RUSTC=/usr/bin/rustc), which must not reach the host steps.
step "i686: toolchain, statictramp-abi and runtime tests (scripts/test-i686)" scripts/test-i686

# The 64-bit CLI serves the 32-bit tests too (it preloads the library of the
# program's word size). Without the library from step 5, run.py builds it.
libffi_testsuite_i686() {
    cargo build --release --bin statictramp &&
        python3 compat/testsuite/run.py --target i686-unknown-linux-gnu \
            ${preload_lib_i686:+--preload "$preload_lib_i686"} --cli target/release/statictramp
}
step "i686: libffi testsuite, libffi:i386 and 3.6, preload and strict (compat/testsuite --target)" \
    libffi_testsuite_i686

summary
