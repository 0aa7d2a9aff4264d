#!/usr/bin/env python3
"""Runs libffi's own closure tests against statictramp.

The tests come from the libffi 3.6 source vendored in the libffi-sys crate
(libffi.closures, the closure test of libffi.bhaible, the cls_* tests of
libffi.complex and libffi.threads). Each test is compiled the way libffi's
DejaGnu files compile it (testsuite/lib/libffi.exp, the suite's .exp) against
two libffis -- the system one and libffi 3.6 built by scripts/build-libffi36 --
and every binary runs in the configurations of CONFIGS below. The DejaGnu
directives in the test sources (dg-do, dg-options, dg-output, ...) are
honoured for the target: the host (x86_64-linux), or with --target
i686-unknown-linux-gnu i686-linux, whose programs run natively here.

    compat/testsuite/run.py [--target TRIPLE] [--jobs N] [--filter SUBSTR] [--keep]
                            [--json FILE] [--preload PATH] [--cli PATH] [--timeout SECONDS]

Exit status: 0 when every test whose control passed (and every required
test) passes in every statictramp configuration, 1 otherwise, 2 when the
runner cannot run (missing compiler, preload library, CLI, libffi...).
See compat/testsuite/README.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CLI = ROOT / "target" / "release" / "statictramp"
DEFAULT_TIMEOUT = 60.0

# ---------------------------------------------------------------------------
# Configurations
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Config:
    name: str
    libffi: str  # "system" or "3.6": which build of the test binary runs
    launch: str  # "plain", "preload" (LD_PRELOAD) or "strict" (CLI run --strict)
    control: str | None  # the control configuration, None for a control itself


CONFIGS = [
    Config("control-system", "system", "plain", None),
    Config("system+preload", "system", "preload", "control-system"),
    Config("system+preload+strict", "system", "strict", "control-system"),
    Config("control-3.6", "3.6", "plain", None),
    Config("3.6+preload+strict", "3.6", "strict", "control-3.6"),
]
OURS = [c for c in CONFIGS if c.control]
LIBFFIS = ["system", "3.6"]

# ---------------------------------------------------------------------------
# Test selection
# ---------------------------------------------------------------------------

# (suite, directory under testsuite/, source globs, extra flags, per-test
# variants). The extra flags are the "extra_flags" of run-many-tests in the
# suite's .exp. threads.exp passes none; -pthread is ours (glibc >= 2.34
# needs none, other libcs may).
BHAIBLE_WARNINGS = [
    "-Wno-unused-variable",
    "-Wno-unused-parameter",
    "-Wno-unused-but-set-variable",
    "-Wno-uninitialized",
]
SUITES = [
    ("closures", "libffi.closures", ["*.c", "*.cc"], []),
    ("bhaible", "libffi.bhaible", ["test-callback.c"], BHAIBLE_WARNINGS),
    ("complex", "libffi.complex", ["cls_*.c"], []),
    ("threads", "libffi.threads", ["*.c"], ["-pthread"]),
]
# bhaible.exp runs test-callback.c once per -DDGTEST=1..80.
BHAIBLE_DGTESTS = range(1, 81)

# run-many-tests (lib/libffi.exp) for GCC: common flags and the optimization
# levels. The ABIs the tests that mention ABI_NUM run with depend on the
# target (Target.abis).
COMMON_FLAGS = ["-W", "-Wall", "-Wno-psabi", "-fno-diagnostics-color"]
OPTIMIZATIONS = ["-O0", "-O2"]


@dataclasses.dataclass(frozen=True)
class Target:
    """What differs between the targets the runner builds for."""

    rust_triple: str | None  # cargo's --target for our scripts; None: the host
    dejagnu_triplet: str | None  # the selectors' triplet; None: config.guess's
    # run-many-tests' targetabis for GCC, as (name, flags): "" is the default ABI.
    abis: list[tuple[str, list[str]]]
    cc: tuple[str, str]  # (environment variable, default) for the C compiler
    cxx: tuple[str, str]
    build_dir: Path
    ptr_bits: int  # sizeof(void *) * 8 of the test programs, checked by the probe

    def script_args(self) -> list[str]:
        return ["--target", self.rust_triple] if self.rust_triple else []


TARGETS = {
    # The host: libffi.exp's targetabis for x86_64 (not ILP32).
    "host": Target(
        rust_triple=None,
        dejagnu_triplet=None,
        abis=[("", []), ("GNUW64", ["-DABI_NUM=FFI_GNUW64", "-DABI_ATTR=__MSABI__"])],
        cc=("CC", "gcc"),
        cxx=("CXX", "g++"),
        build_dir=ROOT / "target" / "testsuite",
        ptr_bits=64,
    ),
    # i686, run natively. libffi.exp's targetabis for __i386__: no MS_CDECL,
    # PASCAL or REGISTER variant (GCC has no attribute for the last two).
    # config.guess would print the host's triplet; DejaGnu's target_triplet on
    # an i686 machine is i686-pc-linux-gnu. The compilers are the ones
    # scripts/lib/cross-target exports (never gcc -m32: no gcc-multilib).
    "i686-unknown-linux-gnu": Target(
        rust_triple="i686-unknown-linux-gnu",
        dejagnu_triplet="i686-pc-linux-gnu",
        abis=[
            ("", []),
            ("STDCALL", ["-DABI_NUM=FFI_STDCALL", "-DABI_ATTR=__STDCALL__"]),
            ("THISCALL", ["-DABI_NUM=FFI_THISCALL", "-DABI_ATTR=__THISCALL__"]),
            ("FASTCALL", ["-DABI_NUM=FFI_FASTCALL", "-DABI_ATTR=__FASTCALL__"]),
        ],
        cc=("CC_i686_unknown_linux_gnu", "i686-linux-gnu-gcc"),
        cxx=("CXX_i686_unknown_linux_gnu", "i686-linux-gnu-g++"),
        build_dir=ROOT / "target" / "testsuite-i686",
        ptr_bits=32,
    ),
}

# Tests left out, as (glob over the test id, reason). Printed in every run.
EXCLUDED: list[tuple[str, str]] = []

# Tests that count in the statictramp configurations even when their control
# fails, as (glob over the test id, reason).
REQUIRED = [
    (
        "closures/unwindtest.cc *",
        "a C++ exception thrown in a closure handler must unwind through our "
        "trampoline, entry and dispatcher frames",
    ),
    (
        "closures/unwindtest_ffi_call.cc *",
        "a C++ exception thrown through ffi_call must unwind with our library "
        "loaded and strict mode armed",
    ),
]

# Sources without a dg-do directive, which DejaGnu therefore only compiles
# (dg.exp's default action), that we run anyway, as (suite/file, reason).
RUN_ANYWAY = [
    (
        "closures/closure_loc_fn0.c",
        "has no dg-do directive (libffi only compiles it), but it is a closure test with "
        "dg-output: ffi_prep_closure_loc with a codeloc and 16 mixed arguments",
    ),
]


@dataclasses.dataclass
class Variant:
    """One compilation of one test source: flags and evaluated directives."""

    id: str
    suite: str
    source: Path
    cxx: bool
    flags: list[str]  # run-many-tests options, then dg-options
    do_what: str  # "run", "link", "compile" or "" (unsupported here)
    skip_reason: str  # why the directives leave the test out, or ""
    run_xfail: bool  # dg-do/dg-xfail-if expect the run to fail here
    output_pattern: str | None  # the dg-output regexp, Tcl text
    output_regex: re.Pattern | None
    output_xfail: bool
    dgtest: int | None
    abi: str
    opt: str

    def binary_name(self) -> str:
        name = self.source.stem
        if self.dgtest is not None:
            name += f".dg{self.dgtest}"
        name += self.opt
        if self.abi:
            name += "." + self.abi.lower()
        return name + (".s" if self.do_what == "compile" else "")


# ---------------------------------------------------------------------------
# Tcl: just enough to read DejaGnu directives
# ---------------------------------------------------------------------------


class DirectiveError(Exception):
    pass


@dataclasses.dataclass
class Word:
    text: str
    braced: bool


_TCL_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def tcl_backslash(text: str, i: int) -> tuple[str, int]:
    """Tcl backslash substitution of the sequence at text[i] == '\\'.
    Returns the replacement and the index after the sequence."""
    if i + 1 >= len(text):
        return "\\", i + 1
    c = text[i + 1]
    if c in _TCL_SIMPLE_ESCAPES:
        return _TCL_SIMPLE_ESCAPES[c], i + 2
    if c == "\n":  # backslash-newline and the following blanks: one space
        j = i + 2
        while j < len(text) and text[j] in " \t":
            j += 1
        return " ", j
    if c in "01234567":
        m = re.match(r"[0-7]{1,3}", text[i + 1 :])
        return chr(int(m.group(0), 8) & 0xFF), i + 1 + len(m.group(0))
    for letter, maxlen in (("x", 2), ("u", 4), ("U", 8)):
        if c == letter:
            m = re.match(r"[0-9a-fA-F]{1,%d}" % maxlen, text[i + 2 :])
            if m:
                return chr(int(m.group(0), 16)), i + 2 + len(m.group(0))
            return c, i + 2
    return c, i + 2  # any other character stands for itself


def tcl_substitute(text: str) -> str:
    """Backslash substitution of a quoted or bare Tcl word. Variable and
    command substitution are refused: no libffi directive uses them."""
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            s, i = tcl_backslash(text, i)
            out.append(s)
            continue
        if c in "$[":
            raise DirectiveError(f"Tcl substitution ({c}) is not supported: {text!r}")
        out.append(c)
        i += 1
    return "".join(out)


def tcl_words(text: str) -> list[Word]:
    """Splits a Tcl command or list into words: {braced} words verbatim,
    "quoted" and bare words with backslash substitution."""
    words = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t\n\r;":
            i += 1
        if i >= n:
            return words
        if text[i] == "{":
            depth, j = 1, i + 1
            while j < n and depth:
                if text[j] == "\\":
                    j += 2
                    continue
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                j += 1
            if depth:
                raise DirectiveError(f"unbalanced braces: {text!r}")
            words.append(Word(text[i + 1 : j - 1], True))
            i = j
        elif text[i] == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                raise DirectiveError(f"unterminated quote: {text!r}")
            words.append(Word(tcl_substitute(text[i + 1 : j]), False))
            i = j + 1
        else:
            j = i
            while j < n and text[j] not in " \t\n\r;":
                j += 2 if text[j] == "\\" else 1
            words.append(Word(tcl_substitute(text[i:j]), False))
            i = j


def tcl_regex_to_python(pattern: str) -> re.Pattern:
    """Compiles a Tcl regexp (after Tcl substitution) as `regexp` in dg.exp
    uses it: unanchored, '.' matching newlines. libffi-dg-test-1 first turns
    every newline of the pattern into \\r?\\n. The ARE syntax libffi's patterns
    use (literals, '.', '\\-', '\\\\', '\\n') means the same in Python; escapes that
    do not (e.g. \\m, \\y) make re.compile fail, loudly."""
    pattern = pattern.replace("\n", "\\r?\\n")
    for are_only in (r"\m", r"\M", r"\y", r"\Y", "[[:"):
        if are_only in pattern:
            raise DirectiveError(f"Tcl ARE construct {are_only} has no Python equivalent: {pattern!r}")
    return re.compile(pattern, re.DOTALL)


# ---------------------------------------------------------------------------
# DejaGnu directives
# ---------------------------------------------------------------------------

# dg-get-options (dg.exp) greps each line of the test source (not of files it
# includes) for this and evaluates the braces' contents as a Tcl command.
DIRECTIVE_RE = re.compile(r"\{[ \t]+(dg-[-a-z]+[ \t]+.*)[ \t]+\}")


def read_directives(source: Path) -> list[tuple[int, list[Word]]]:
    found = []
    for lineno, line in enumerate(source.read_text(errors="replace").splitlines(), 1):
        m = DIRECTIVE_RE.search(line)
        if m:
            found.append((lineno, tcl_words(m.group(1))))
    return found


@dataclasses.dataclass
class TargetContext:
    """What target selectors are evaluated against."""

    triplet: str
    keywords: dict[str, bool]  # effective-target keywords known here


def selector_operand(op: Word, ctx: TargetContext) -> bool:
    return process_target([Word("target", False), op], ctx) == "S"


def selector_expression(text: str, ctx: TargetContext) -> bool:
    """libffi.exp's selector_expression: `! a`, `a && b`, `a || b`, or a
    list of target triplets."""
    words = tcl_words(text)
    if len(words) == 2 and words[0].text == "!":
        return not selector_operand(words[1], ctx)
    if len(words) == 3 and words[1].text in ("&&", "||"):
        a, b = selector_operand(words[0], ctx), selector_operand(words[2], ctx)
        return (a and b) if words[1].text == "&&" else (a or b)
    return triplets_match([w.text for w in words], ctx)


def triplets_match(patterns: list[str], ctx: TargetContext) -> bool:
    for p in patterns:
        if "-" not in p and p not in ("*",):
            # libffi would treat an unknown keyword as a triplet that never
            # matches; a keyword we do not know is a runner gap: say so.
            raise DirectiveError(f"unknown effective-target keyword {p!r}")
    return any(fnmatch.fnmatchcase(ctx.triplet, p) for p in patterns)


def process_target(words: list[Word], ctx: TargetContext) -> str:
    """dg-process-target as libffi.exp overrides it. `words` is the selector
    list: 'target'|'xfail' then a keyword, a {braced expression} or triplets;
    or 'target ... xfail ...'. Returns S/N for target, F/P for xfail."""
    texts = [w.text for w in words]
    if texts and texts[0] == "target" and "xfail" in texts[1:]:
        k = texts.index("xfail", 1)
        if process_target(words[:k], ctx) == "N":
            return "N"
        return process_target(words[k:], ctx)
    if not words or texts[0] not in ("target", "xfail"):
        raise DirectiveError(f"syntax error in target selector {texts!r}")
    what, rest = texts[0], words[1:]
    if len(rest) == 1 and rest[0].text in ctx.keywords:
        selected = ctx.keywords[rest[0].text]
    elif len(rest) == 1 and rest[0].braced:
        selected = selector_expression(rest[0].text, ctx)
    else:
        patterns = [p for w in rest for p in w.text.split()]
        selected = triplets_match(patterns, ctx)
    if what == "xfail":
        return "F" if selected else "P"
    return "S" if selected else "N"


def selector_words(word: Word) -> list[Word]:
    """The selector argument of a directive ({ xfail a b }) as a list."""
    return tcl_words(word.text) if word.braced else [word]


def flags_match(flags: list[str], include: list[str], exclude: list[str]) -> bool:
    """check-flags of libffi.exp: every include option is among the flags
    (or include is "*") and no exclude option is."""

    def present(opt: str) -> bool:
        return any(fnmatch.fnmatchcase(f, opt) for f in flags)

    inc_ok = include in ([], ["*"]) or all(present(o) for o in include)
    exc_hit = any(present(o) for o in exclude if o)
    return inc_ok and not exc_hit


@dataclasses.dataclass
class DgState:
    do_what: str = "compile"  # dg.exp's default
    skip_reason: str = ""
    run_xfail: bool = False
    options: list[str] | None = None  # dg-options (replaces defaults)
    additional: list[str] = dataclasses.field(default_factory=list)
    output: list[str] = dataclasses.field(default_factory=list)
    output_xfail: bool = False


def apply_directive(st: DgState, lineno: int, words: list[Word], flags: list[str], ctx: TargetContext) -> None:
    """One directive, as dg.exp / libffi.exp define it."""
    name, args = words[0].text, words[1:]

    def selected(sel: Word) -> str:
        return process_target(selector_words(sel), ctx)

    if name == "dg-do":
        st.do_what = args[0].text
        if len(args) > 1:
            r = selected(args[1])
            if r == "N":
                st.skip_reason = f"dg-do {args[0].text} {{{args[1].text}}} does not select {ctx.triplet}"
            st.run_xfail = st.run_xfail or r == "F"
    elif name in ("dg-options", "dg-additional-options"):
        if len(args) > 1 and selected(args[1]) != "S":
            return
        opts = shlex.split(args[0].text)
        if name == "dg-options":
            st.options = opts
        else:
            st.additional += opts
    elif name in ("dg-skip-if", "dg-xfail-if"):
        if not 2 <= len(args) <= 4:
            raise DirectiveError(f"line {lineno}: {name} needs 2 to 4 arguments")
        sel = [Word("target", False)] + selector_words(args[1])
        include = tcl_words(args[2].text) if len(args) > 2 else []
        exclude = tcl_words(args[3].text) if len(args) > 3 else []
        if process_target(sel, ctx) == "S" and flags_match(
            flags, [w.text for w in include], [w.text for w in exclude]
        ):
            if name == "dg-skip-if":
                st.skip_reason = f"dg-skip-if {args[0].text!r}"
            else:
                st.run_xfail = True
    elif name == "dg-require-effective-target":
        if len(args) > 1 and selected(args[1]) != "S":
            return
        kw = args[0].text
        if kw not in ctx.keywords:
            raise DirectiveError(f"line {lineno}: unknown effective-target keyword {kw!r}")
        if not ctx.keywords[kw]:
            st.skip_reason = f"dg-require-effective-target {kw}"
    elif name == "dg-output":
        if len(args) > 1:
            r = selected(args[1])
            if r == "N":
                return
            st.output_xfail = st.output_xfail or r == "F"
        st.output.append(args[0].text)
    else:
        raise DirectiveError(f"line {lineno}: directive {name} is not supported by this runner")


def make_variant(
    suite: str, source: Path, flags: list[str], dgtest: int | None, abi: str, opt: str, ctx: TargetContext
) -> Variant:
    """Evaluates the source's directives for one set of flags."""
    st = DgState()
    for lineno, words in read_directives(source):
        apply_directive(st, lineno, words, flags, ctx)
    all_flags = flags + (st.options or []) + st.additional
    if st.do_what == "compile" and matching_reason(f"{suite}/{source.name}", RUN_ANYWAY):
        st.do_what = "run"
    pattern = "".join(st.output) if st.output else None
    test_id = f"{suite}/{source.name}"
    if dgtest is not None:
        test_id += f"#{dgtest}"
    test_id += f" {opt}" + (f" {abi}" if abi else "")
    return Variant(
        id=test_id,
        suite=suite,
        source=source,
        cxx=source.suffix == ".cc",
        flags=all_flags,
        do_what=st.do_what,
        skip_reason=st.skip_reason,
        run_xfail=st.run_xfail,
        output_pattern=pattern,
        output_regex=tcl_regex_to_python(pattern) if pattern is not None else None,
        output_xfail=st.output_xfail,
        dgtest=dgtest,
        abi=abi,
        opt=opt,
    )


def has_gccbug(gcc_version: tuple[int, ...], abi_flags: list[str], extra: str, testname: str) -> bool:
    """run-many-tests' has_gccbug: ms_abi tests GCC < 9.3 miscompiles."""
    if not any("MSABI" in f for f in abi_flags):
        return False
    common = " ".join(COMMON_FLAGS) + " " + extra + " "
    hit = (
        ("DGTEST=57 " in common and "call.c" in testname)
        or ("DGTEST=54 " in common and "callback" in testname)
        or "DGTEST=55 " in common
        or "DGTEST=56 " in common
    )
    return hit and gcc_version < (9, 3)


def discover(
    testsuite: Path, triplet: str, gcc_version: tuple[int, ...], target_abis: list[tuple[str, list[str]]]
) -> list[Variant]:
    """All variants, in the order libffi's .exp files run them."""
    variants = []
    for suite, subdir, globs, extra in SUITES:
        sources = []
        for g in globs:
            sources += sorted((testsuite / subdir).glob(g))
        if not sources:
            raise SystemExit(f"run.py: no tests found in {testsuite / subdir} ({globs})")
        dgtests = BHAIBLE_DGTESTS if suite == "bhaible" else [None]
        for source in sources:
            uses_abi = "ABI_NUM" in source.read_text(errors="replace")
            abis = target_abis if uses_abi else target_abis[:1]
            for dgtest in dgtests:
                extra_flags = ([f"-DDGTEST={dgtest}"] if dgtest is not None else []) + extra
                for opt in OPTIMIZATIONS:
                    for abi, abi_flags in abis:
                        flags = COMMON_FLAGS + extra_flags + [opt] + abi_flags
                        bug = has_gccbug(gcc_version, abi_flags, " ".join(extra_flags), source.name)
                        ctx = TargetContext(triplet, {"gccbug": bug})
                        variants.append(make_variant(suite, source, flags, dgtest, abi, opt, ctx))
    return variants


def matching_reason(test_id: str, table: list[tuple[str, str]]) -> str | None:
    for pattern, reason in table:
        if fnmatch.fnmatchcase(test_id, pattern):
            return reason
    return None


# ---------------------------------------------------------------------------
# Environment: tools, libraries, libffi source
# ---------------------------------------------------------------------------


class SetupError(Exception):
    """The runner cannot run; reported loudly, exit status 2."""


@dataclasses.dataclass
class Env:
    target: Target
    cc: str
    cxx: str
    gcc_version: tuple[int, ...]
    libffi_src: Path
    triplet: str
    prefix36: Path
    fficonfig_dir: Path
    preload: Path
    cli: Path
    build_dir: Path
    timeout: float
    base_env: dict[str, str]


def find_tool(name: str, env_var: str) -> str:
    tool = os.environ.get(env_var, name)
    path = shutil.which(tool)
    if not path:
        hint = "scripts/lib/cross-target installs it" if "-linux-gnu-" in name else "install gcc and g++"
        raise SetupError(f"{tool} not found (set {env_var}); {hint}")
    return path


def gcc_version(cc: str) -> tuple[int, ...]:
    out = subprocess.run([cc, "-dumpfullversion", "-dumpversion"], capture_output=True, text=True).stdout
    return tuple(int(x) for x in re.findall(r"\d+", out)[:3]) or (0,)


def find_libffi_source() -> Path:
    """<libffi-sys manifest dir>/libffi, as cargo resolves the dev-dependency."""
    cargo = os.environ.get("CARGO", "cargo")
    meta = None
    for extra in (["--offline"], []):
        p = subprocess.run(
            [cargo, "metadata", "--format-version", "1", *extra],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if p.returncode == 0:
            meta = json.loads(p.stdout)
            break
    if meta is None:
        raise SetupError("`cargo metadata` failed; cannot find the libffi-sys crate's libffi source")
    pkgs = [p for p in meta["packages"] if p["name"] == "libffi-sys"]
    if not pkgs:
        raise SetupError("libffi-sys is not in `cargo metadata` (it is a dev-dependency of the root package)")
    pkgs.sort(key=lambda p: [int(x) if x.isdigit() else 0 for x in re.split(r"[.+-]", p["version"])])
    src = Path(pkgs[-1]["manifest_path"]).parent / "libffi"
    if not (src / "testsuite" / "lib" / "libffi.exp").is_file():
        raise SetupError(f"{src} does not hold libffi's testsuite")
    return src


def target_triplet(target: Target, libffi_src: Path, cc: str) -> str:
    """DejaGnu's target_triplet for a native run: config.guess, unless the
    target names it (the host's config.guess does not describe i686)."""
    if target.dejagnu_triplet:
        return target.dejagnu_triplet
    p = subprocess.run([str(libffi_src / "config.guess")], capture_output=True, text=True)
    if p.returncode == 0 and p.stdout.strip():
        return p.stdout.strip()
    return subprocess.run([cc, "-dumpmachine"], capture_output=True, text=True).stdout.strip()


def run_script(script: str, args: list[str], what: str) -> Path:
    """Runs scripts/<script> (progress on our stderr) and returns the path it prints."""
    p = subprocess.run([str(ROOT / "scripts" / script), *args], stdout=subprocess.PIPE, text=True)
    if p.returncode != 0 or not p.stdout.strip():
        raise SetupError(f"scripts/{shlex.join([script, *args])} failed (exit {p.returncode}); cannot build {what}")
    return Path(p.stdout.strip().splitlines()[-1])


def find_preload(target: Target, arg: str | None) -> Path:
    # STATICTRAMP_PRELOAD is the host's library (test.sh exports it); another
    # target's comes from --preload or is built.
    path = arg or (os.environ.get("STATICTRAMP_PRELOAD") if target.rust_triple is None else None)
    args = target.script_args()
    preload = Path(path) if path else run_script("build-preload", args, "the preload library")
    if not preload.is_file():
        raise SetupError(
            f"preload library {preload} does not exist (build it with {shlex.join(['scripts/build-preload', *args])})"
        )
    return preload.resolve()


def find_cli(arg: str | None) -> Path:
    path = arg or os.environ.get("STATICTRAMP_CLI")
    cli = Path(path) if path else DEFAULT_CLI
    if not cli.is_file() or not os.access(cli, os.X_OK):
        raise SetupError(
            f"statictramp CLI {cli} does not exist or is not executable; build it with "
            "`cargo build --release --bin statictramp`, or pass --cli PATH / STATICTRAMP_CLI"
        )
    return cli.resolve()


def base_environment() -> dict[str, str]:
    """The environment every test starts from: ours, without anything that
    would change which libraries a test loads."""
    env = dict(os.environ)
    for var in ("LD_PRELOAD", "LD_LIBRARY_PATH", "STATICTRAMP_LIB"):
        env.pop(var, None)
    env["LC_ALL"] = "C"
    return env


def setup(args: argparse.Namespace) -> Env:
    target = TARGETS[args.target]
    cc, cxx = find_tool(target.cc[1], target.cc[0]), find_tool(target.cxx[1], target.cxx[0])
    libffi_src = find_libffi_source()
    prefix36 = run_script("build-libffi36", target.script_args(), "libffi 3.6")
    fficonfig_dir = prefix36 / "testsuite"
    if not (fficonfig_dir / "fficonfig.h").is_file():
        raise SetupError(f"{fficonfig_dir}/fficonfig.h missing: remove {prefix36} and rerun")
    return Env(
        target=target,
        cc=cc,
        cxx=cxx,
        gcc_version=gcc_version(cc),
        libffi_src=libffi_src,
        triplet=target_triplet(target, libffi_src, cc),
        prefix36=prefix36,
        fficonfig_dir=fficonfig_dir,
        preload=find_preload(target, args.preload),
        cli=find_cli(args.cli),
        build_dir=Path(args.build_dir or target.build_dir).resolve(),
        timeout=args.timeout,
        base_env=base_environment(),
    )


# ---------------------------------------------------------------------------
# Compiling
# ---------------------------------------------------------------------------


def include_flags(env: Env, libffi: str, test_dir: Path) -> list[str]:
    """libffi_target_compile's -I list: the libffi build's include dir and
    its fficonfig.h dir, then the source's include/; plus the test's dir.
    The system libffi's ffi.h comes from the compiler's default path."""
    inc = [f"-I{test_dir}"]
    if libffi == "3.6":
        inc.append(f"-I{env.prefix36 / 'include'}")
    inc += [f"-I{env.fficonfig_dir}", f"-I{env.libffi_src / 'include'}"]
    return inc


def link_flags(env: Env, libffi: str) -> list[str]:
    """-lffi as libffi.exp adds it, -lm as DejaGnu's default_target_compile
    adds it. libffi 3.6 is linked as a shared library with an rpath, so that
    LD_PRELOAD can interpose its closure symbols."""
    flags = []
    if libffi == "3.6":
        lib = env.prefix36 / "lib"
        flags += [f"-L{lib}", f"-Wl,-rpath,{lib}"]
    return flags + ["-lffi", "-lm"]


def binary_path(env: Env, v: Variant, libffi: str) -> Path:
    return env.build_dir / libffi / v.suite / v.binary_name()


def compile_command(env: Env, v: Variant, libffi: str) -> list[str]:
    compiler = env.cxx if v.cxx else env.cc
    out = binary_path(env, v, libffi)
    mode = {"compile": ["-S"], "link": [], "run": []}.get(v.do_what, [])
    link = link_flags(env, libffi) if v.do_what in ("run", "link") else []
    return [
        compiler,
        str(v.source),
        *v.flags,
        *include_flags(env, libffi, v.source.parent),
        *mode,
        "-o",
        str(out),
        *link,
    ]


# ---------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    status: str  # "ok", "FAIL", "XFAIL", "compiled" (dg-do compile/link: not run)
    detail: str  # "exit 134", "SIGSEGV", "output", "compile", "timeout"
    stdout: str = ""
    stderr: str = ""
    command: str = ""  # shell command to reproduce

    def cell(self) -> str:
        if self.status == "FAIL":
            return f"FAIL({self.detail})"
        return self.status


def launch(env: Env, config: Config, binary: Path) -> tuple[list[str], dict[str, str], str]:
    """The argv, environment and a shell line reproducing the run."""
    run_env = dict(env.base_env)
    if config.launch == "plain":
        argv, prefix = [str(binary)], ""
    elif config.launch == "preload":
        run_env["LD_PRELOAD"] = str(env.preload)
        argv, prefix = [str(binary)], f"LD_PRELOAD={shlex.quote(str(env.preload))} "
    elif config.launch == "strict":
        run_env["STATICTRAMP_LIB"] = str(env.preload)
        argv = [str(env.cli), "run", "--strict", "--", str(binary)]
        prefix = f"STATICTRAMP_LIB={shlex.quote(str(env.preload))} "
    else:
        raise ValueError(config.launch)
    shell = f"cd {shlex.quote(str(binary.parent))} && {prefix}{shlex.join(argv)}"
    return argv, run_env, shell


def run_process(argv: list[str], run_env: dict[str, str], cwd: Path, timeout: float) -> tuple[int | None, str, str]:
    """Runs argv in its own process group; returns (returncode or None on
    timeout, stdout, stderr). On timeout the whole group is killed."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=run_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        rc: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        rc = None
    return rc, out.decode(errors="replace"), err.decode(errors="replace")


def describe_exit(rc: int) -> str:
    if rc < 0:
        try:
            return signal.Signals(-rc).name
        except ValueError:
            return f"signal {-rc}"
    return f"exit {rc}"


def judge(v: Variant, rc: int | None, out: str, err: str, command: str) -> Outcome:
    """dg.exp's verdict on one run: exit status 0 and dg-output matching."""
    if rc is None:
        status, detail = "FAIL", "timeout"
    elif rc != 0:
        status, detail = "FAIL", describe_exit(rc)
    elif v.output_regex is not None and not v.output_regex.search(out):
        status = "XFAIL" if v.output_xfail else "FAIL"
        detail = "output"
    else:
        status, detail = "ok", ""
    if status == "FAIL" and v.run_xfail:
        status = "XFAIL"
    return Outcome(status, detail, out, err, command)


def run_test(env: Env, v: Variant, config: Config, binary: Path) -> Outcome:
    argv, run_env, shell = launch(env, config, binary)
    rc, out, err = run_process(argv, run_env, binary.parent, env.timeout)
    return judge(v, rc, out, err, shell)


def build_and_run(env: Env, v: Variant, libffi: str) -> dict[str, Outcome]:
    """Compiles one variant against one libffi and runs it in every
    configuration that uses that build."""
    configs = [c for c in CONFIGS if c.libffi == libffi]
    cmd = compile_command(env, v, libffi)
    out_path = binary_path(env, v, libffi)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env.base_env)
    if p.returncode != 0 or not out_path.exists():
        o = Outcome("FAIL", "compile", p.stdout, p.stderr, shlex.join(cmd))
        return {c.name: o for c in configs}
    if v.do_what != "run":  # DejaGnu compiles (or links) it and stops there
        return {c.name: Outcome("compiled", "", command=shlex.join(cmd)) for c in configs}
    return {c.name: run_test(env, v, c, out_path) for c in configs}


# ---------------------------------------------------------------------------
# Probing the configurations: each must really be what its name says
# ---------------------------------------------------------------------------

PROBE_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <ffi.h>
#include <stdio.h>
#include <sys/mman.h>

static void handler(ffi_cif *cif, void *ret, void **args, void *data)
{
  (void)cif; (void)data;
  *(ffi_arg *)ret = *(int *)args[0] + 1;
}

int main(void)
{
  ffi_cif cif;
  ffi_type *arg = &ffi_type_sint;
  void *code = 0;
  Dl_info info;
  ffi_closure *cl = ffi_closure_alloc(sizeof(ffi_closure), &code);
  int (*owns)(const void *) = (int (*)(const void *))dlsym(RTLD_DEFAULT, "statictramp_owns_code");
  void *wx = mmap(0, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

  if (!cl || ffi_prep_cif(&cif, FFI_DEFAULT_ABI, 1, &ffi_type_sint, &arg) != FFI_OK
      || ffi_prep_closure_loc(cl, &cif, handler, 0, code) != FFI_OK)
    return 3;
  printf("call=%d\n", ((int (*)(int))code)(41));
  printf("statictramp=%s\n", !owns ? "absent" : owns(code) ? "owns" : "loaded-not-owner");
  printf("wx_mmap=%s\n", wx == MAP_FAILED ? "refused" : "allowed");
  printf("libffi=%s\n", dladdr((void *)ffi_call, &info) ? info.dli_fname : "?");
  printf("ptr_bits=%d\n", (int)(sizeof(void *) * 8));
  return 0;
}
"""


def expected_probe(env: Env, config: Config) -> dict[str, str]:
    want = {"call": "42", "ptr_bits": str(env.target.ptr_bits)}
    want["statictramp"] = "absent" if config.launch == "plain" else "owns"
    if config.launch == "strict":
        want["wx_mmap"] = "refused"
    if config.libffi == "3.6":
        want["libffi"] = str(env.prefix36 / "lib" / "libffi.so.8")
    return want


def same_value(key: str, got: str | None, want: str) -> bool:
    if key == "libffi" and got:
        return os.path.realpath(got) == os.path.realpath(want)
    return got == want


def probe_configs(env: Env) -> list[str]:
    """Compiles a small program against each libffi and checks in every
    configuration that the closure runs, that statictramp serves it exactly
    where it should, that strict mode refuses W+X memory and that the
    3.6 binaries load libffi 3.6. Returns a description line per config."""
    probe_dir = env.build_dir / "probe"
    probe_dir.mkdir(parents=True, exist_ok=True)
    src = probe_dir / "probe.c"
    src.write_text(PROBE_C)
    lines = []
    for libffi in LIBFFIS:
        exe = probe_dir / f"probe-{libffi}"
        inc = [f"-I{env.prefix36 / 'include'}"] if libffi == "3.6" else []
        cmd = [env.cc, str(src), *inc, "-o", str(exe), *link_flags(env, libffi)]
        p = subprocess.run(cmd, capture_output=True, text=True, env=env.base_env)
        if p.returncode != 0:
            raise SetupError(
                f"cannot compile against the {libffi} libffi (install libffi-dev?):\n"
                f"  {shlex.join(cmd)}\n{p.stderr.strip()}"
            )
        for config in (c for c in CONFIGS if c.libffi == libffi):
            argv, run_env, shell = launch(env, config, exe)
            rc, out, err = run_process(argv, run_env, probe_dir, env.timeout)
            got = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
            want = expected_probe(env, config)
            bad = [k for k, v in want.items() if not same_value(k, got.get(k), v)]
            if rc != 0 or bad:
                raise SetupError(
                    f"configuration {config.name} is not what it claims: {shell}\n"
                    f"  exit {rc}; expected {want}, got {got}\n  stderr: {err.strip()[:600]}"
                )
            lines.append(f"  {config.name:<22} statictramp={got['statictramp']}, W+X mmap {got['wx_mmap']}, "
                         f"{got['ptr_bits']}-bit, libffi {got['libffi']}")
    return lines


# ---------------------------------------------------------------------------
# Results and report
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Cell:
    outcome: Outcome
    counted: bool  # counts in the pass/fail totals of a statictramp config
    control_failed: bool

    def text(self) -> str:
        if self.control_failed and not self.counted:
            return f"control-failed({self.outcome.cell()})"
        return self.outcome.cell()


def classify(v: Variant, results: dict[str, Outcome]) -> dict[str, Cell]:
    """Decides for each configuration whether its result counts: a
    statictramp result counts when its control passed, or when the test is
    required."""
    required = matching_reason(v.id, REQUIRED) is not None
    cells = {}
    for c in CONFIGS:
        o = results[c.name]
        if c.control is None:
            cells[c.name] = Cell(o, False, False)
            continue
        control_ok = results[c.control].status == "ok"
        cells[c.name] = Cell(o, control_ok or required, not control_ok)
    return cells


def first_lines(text: str, n: int = 6) -> list[str]:
    lines = text.strip("\n").splitlines()
    head = lines[:n]
    if len(lines) > n:
        head.append(f"... ({len(lines) - n} more lines)")
    return head


def print_table(rows: "Rows") -> None:
    name_w = max([len("test")] + [len(v.id) for v, _ in rows])
    widths = {
        c.name: max([len(c.name)] + [len(cells[c.name].text()) for _, cells in rows]) for c in CONFIGS
    }
    print("  ".join(["test".ljust(name_w)] + [c.name.ljust(widths[c.name]) for c in CONFIGS]).rstrip())
    for v, cells in rows:
        print("  ".join([v.id.ljust(name_w)] + [cells[c.name].text().ljust(widths[c.name]) for c in CONFIGS]).rstrip())


def print_failure(v: Variant, config: Config, o: Outcome, compile_cmd: str, note: str = "") -> None:
    print(f"\n--- {v.id} in {config.name}: {o.cell()}{note}")
    if o.detail == "output" and v.output_pattern is not None:
        print(f"    expected (Tcl regexp): {v.output_pattern!r}")
    for label, text in (("stdout", o.stdout), ("stderr", o.stderr)):
        if text.strip():
            print(f"    {label}:")
            for line in first_lines(text):
                print(f"      {line}")
    if o.detail != "compile":
        print(f"    compile: {compile_cmd}")
    print(f"    reproduce: {o.command}")


Rows = list[tuple[Variant, dict[str, Cell]]]


def print_our_failures(rows: Rows, compile_cmds: dict[tuple[str, str], str]) -> None:
    print("\n=== Failures in statictramp configurations (counted) ===")
    n = 0
    for v, cells in rows:
        for c in OURS:
            cell = cells[c.name]
            if cell.counted and cell.outcome.status == "FAIL":
                n += 1
                print_failure(v, c, cell.outcome, compile_cmds[(v.id, c.libffi)])
    if not n:
        print("none")


def print_control_failures(rows: Rows, compile_cmds: dict[tuple[str, str], str]) -> None:
    print("\n=== Control failures (statictramp results there are not counted unless required) ===")
    n = 0
    for v, cells in rows:
        for c in CONFIGS:
            if c.control is None and cells[c.name].outcome.status == "FAIL":
                n += 1
                ours = ", ".join(f"{o.name}: {cells[o.name].outcome.cell()}" for o in OURS if o.control == c.name)
                print_failure(v, c, cells[c.name].outcome, compile_cmds[(v.id, c.libffi)], f"  [ours: {ours}]")
    if not n:
        print("none")


def print_lists(skipped: list[tuple[str, str]]) -> None:
    """Exclusions, deviations and required tests, with their reasons."""
    for title, table in (
        ("Excluded tests", EXCLUDED),
        ("Run although DejaGnu would only compile them (no dg-do)", RUN_ANYWAY),
        ("Required tests (count even when their control fails)", REQUIRED),
        ("Not run on this target by their DejaGnu directives", skipped),
    ):
        print(f"\n=== {title} ===")
        for pattern, reason in table:
            print(f"  {pattern}: {reason}")
        if not table:
            print("  none")


def count_config(rows: Rows, c: Config) -> dict[str, int]:
    counts = {"passed": 0, "failed": 0, "xfail": 0, "compile_only": 0, "control_failed": 0}
    for _, cells in rows:
        cell = cells[c.name]
        if c.control and not cell.counted:
            counts["control_failed"] += 1
        elif cell.outcome.status == "ok":
            counts["passed"] += 1
        elif cell.outcome.status == "XFAIL":
            counts["xfail"] += 1
        elif cell.outcome.status == "compiled":
            counts["compile_only"] += 1
        else:
            counts["failed"] += 1
    return counts


def print_counts(c: Config, counts: dict[str, int]) -> None:
    line = f"{c.name}: {counts['passed']} passed, {counts['failed']} failed"
    if counts["xfail"]:
        line += f", {counts['xfail']} xfail"
    if counts["compile_only"]:
        line += f", {counts['compile_only']} only compiled"
    if c.control:
        line += (
            f" ({counts['control_failed']} not counted: control failed; "
            f"{counts['excluded']} excluded; {counts['skipped_by_directive']} not run by directive)"
        )
    else:
        line += " (control)"
    print(line)


def print_abi_counts(rows: Rows) -> dict[str, dict[str, dict[str, int]]]:
    """Counts per ABI variant (run-many-tests' -DABI_NUM=...) and
    configuration, over the tests that have variants (those mentioning
    ABI_NUM); returns them for --json."""
    variant_sources = {v.source for v, _ in rows if v.abi}
    by_abi: dict[str, Rows] = {}
    for v, cells in rows:
        if v.source in variant_sources:
            by_abi.setdefault(v.abi or "default", []).append((v, cells))
    print("\n=== Per ABI variant (tests that mention ABI_NUM) ===")
    if not by_abi:
        print("  none")
    out: dict[str, dict[str, dict[str, int]]] = {}
    for abi, abi_rows in by_abi.items():
        out[abi] = {c.name: count_config(abi_rows, c) for c in CONFIGS}
        cols = ", ".join(
            f"{c.name} {out[abi][c.name]['passed']}/{out[abi][c.name]['failed']}"
            + (f" (+{out[abi][c.name]['control_failed']} not counted)" if out[abi][c.name]["control_failed"] else "")
            for c in CONFIGS
        )
        print(f"  {abi:<9} {len(abi_rows)} variants; passed/failed: {cols}")
    return out


def report(rows: Rows, skipped: list, excluded: list, compile_cmds: dict[tuple[str, str], str]) -> dict:
    """Prints table, failures, lists and counts; returns the counts for --json."""
    print_table(rows)
    print_our_failures(rows, compile_cmds)
    print_control_failures(rows, compile_cmds)
    print_lists(skipped)
    by_abi = print_abi_counts(rows)
    print()
    summary = {}
    for c in CONFIGS:
        counts = count_config(rows, c)
        counts["excluded"] = len(excluded)
        counts["skipped_by_directive"] = len(skipped)
        summary[c.name] = counts
        print_counts(c, counts)
    total_pass = sum(summary[c.name]["passed"] for c in OURS)
    total_fail = sum(summary[c.name]["failed"] for c in OURS)
    print(f"{total_pass} passed, {total_fail} failed")
    return {"configs": summary, "by_abi": by_abi}


def write_json(path: str, env: Env, rows, counts, excluded, skipped, probe_lines, elapsed) -> None:
    summary = counts["configs"]
    data = {
        "configs": [dataclasses.asdict(c) for c in CONFIGS],
        "environment": {
            "libffi_source": str(env.libffi_src),
            "libffi36_prefix": str(env.prefix36),
            "preload": str(env.preload),
            "cli": str(env.cli),
            "target": env.target.rust_triple or "host",
            "triplet": env.triplet,
            "gcc_version": ".".join(map(str, env.gcc_version)),
            "probes": [line.strip() for line in probe_lines],
        },
        "tests": [
            {
                "id": v.id,
                "source": str(v.source),
                "flags": v.flags,
                "required": matching_reason(v.id, REQUIRED) is not None,
                "results": {
                    name: {
                        "status": cell.outcome.status,
                        "detail": cell.outcome.detail,
                        "counted": cell.counted,
                        "control_failed": cell.control_failed,
                        "command": cell.outcome.command,
                    }
                    for name, cell in cells.items()
                },
            }
            for v, cells in rows
        ],
        "excluded": [{"id": t, "reason": r} for t, r in excluded],
        "skipped_by_directive": [{"id": t, "reason": r} for t, r in skipped],
        "summary": summary,
        "by_abi": counts["by_abi"],
        "total": {
            "passed": sum(summary[c.name]["passed"] for c in OURS),
            "failed": sum(summary[c.name]["failed"] for c in OURS),
        },
        "seconds": round(elapsed, 1),
    }
    Path(path).write_text(json.dumps(data, indent=1) + "\n")


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 2, help="parallel workers (default: nproc)")
    ap.add_argument("--filter", default="", help="only tests whose id contains SUBSTR (e.g. cls_12byte, bhaible, -O0)")
    ap.add_argument("--keep", action="store_true", help="keep the build directory")
    ap.add_argument("--json", help="write machine-readable results to FILE")
    ap.add_argument("--preload", help="preload library (default: $STATICTRAMP_PRELOAD, else scripts/build-preload)")
    ap.add_argument("--cli", help="statictramp CLI (default: $STATICTRAMP_CLI, else target/release/statictramp)")
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per test run (default 60)")
    ap.add_argument(
        "--target",
        default="host",
        choices=list(TARGETS),
        help="build the tests for this target (default: the host); i686-unknown-linux-gnu runs natively",
    )
    ap.add_argument("--build-dir", help="default: target/testsuite, target/testsuite-i686 for i686")
    return ap.parse_args(argv)


def select(variants: list[Variant], substr: str):
    """Splits the variants into (to run, skipped by directives, excluded)."""
    run, skipped, excluded = [], [], []
    for v in variants:
        if substr not in v.id:
            continue
        reason = matching_reason(v.id, EXCLUDED)
        if reason:
            excluded.append((v.id, reason))
        elif v.skip_reason:
            skipped.append((v.id, v.skip_reason))
        else:
            run.append(v)
    return run, skipped, excluded


def execute(env: Env, variants: list[Variant], jobs: int) -> dict[str, dict[str, Outcome]]:
    """Builds and runs everything on `jobs` workers; progress on stderr."""
    tasks = [(v, libffi) for v in variants for libffi in LIBFFIS]
    # Longest compilations (bhaible at -O2) first, for a short tail.
    tasks.sort(key=lambda t: (t[0].suite != "bhaible", t[0].opt != "-O2"))
    results: dict[str, dict[str, Outcome]] = {v.id: {} for v in variants}
    done, step = 0, max(1, len(tasks) // 10)
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(build_and_run, env, v, libffi): v for v, libffi in tasks}
        for fut in concurrent.futures.as_completed(futures):
            results[futures[fut].id].update(fut.result())
            done += 1
            if done % step == 0 or done == len(tasks):
                print(f"run.py: {done}/{len(tasks)} builds done", file=sys.stderr)
    return results


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    start = time.monotonic()
    try:
        env = setup(args)
    except SetupError as e:
        print(f"run.py: FATAL: {e}", file=sys.stderr)
        return 2
    testsuite = env.libffi_src / "testsuite"
    try:
        variants = discover(testsuite, env.triplet, env.gcc_version, env.target.abis)
    except DirectiveError as e:
        print(f"run.py: FATAL: cannot evaluate a DejaGnu directive: {e}", file=sys.stderr)
        return 2
    to_run, skipped, excluded = select(variants, args.filter)
    if not to_run:
        print(f"run.py: FATAL: no test matches --filter {args.filter!r}", file=sys.stderr)
        return 2

    if env.build_dir.exists():
        shutil.rmtree(env.build_dir)
    env.build_dir.mkdir(parents=True)
    try:
        probe_lines = probe_configs(env)
    except SetupError as e:
        print(f"run.py: FATAL: {e}", file=sys.stderr)
        return 2

    print(f"libffi testsuite: {testsuite}")
    print(f"libffi 3.6: {env.prefix36}; preload: {env.preload}; CLI: {env.cli}")
    print(f"target {env.triplet}, gcc {'.'.join(map(str, env.gcc_version))}, {args.jobs} jobs, "
          f"{len(to_run)} test variants x {len(LIBFFIS)} builds")
    print("configurations (probed):")
    print("\n".join(probe_lines))
    print()

    results = execute(env, to_run, args.jobs)
    compile_cmds = {(v.id, lib): shlex.join(compile_command(env, v, lib)) for v in to_run for lib in LIBFFIS}
    rows = [(v, classify(v, results[v.id])) for v in to_run]
    summary = report(rows, skipped, excluded, compile_cmds)
    elapsed = time.monotonic() - start

    failed = any(
        cells[c.name].counted and cells[c.name].outcome.status == "FAIL" for _, cells in rows for c in OURS
    )
    if args.json:
        write_json(args.json, env, rows, summary, excluded, skipped, probe_lines, elapsed)
    if args.keep or failed:
        print(f"build directory kept: {env.build_dir}")
    else:
        shutil.rmtree(env.build_dir)
        print("build directory removed (--keep keeps it for the commands above)")
    print(f"wall time {elapsed:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
