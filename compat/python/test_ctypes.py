#!/usr/bin/env python3
"""CPython's own ctypes tests under `statictramp run --strict`, for every
CPython on this machine that has its test package.

    compat/python/test_ctypes.py [--cli PATH] [--python PY]... [--report FILE]

For each interpreter (Debian's /usr/bin/python3.11, every python3.X on PATH,
every CPython 3 under $PYENV_ROOT/versions, or only those given with
--python):

  1. `statictramp run --strict -- PY -m test test_ctypes -v` with
     STATICTRAMP_STATS=1: must pass, and statictramp's summary line must
     show closures allocated (statictramp served the callbacks; strict mode
     refuses the W+X memory libffi's own closures need);
  2. the control, `statictramp run --strict --no-preload -- ...`: the same
     tests with the interpreter's own libffi under strict mode; reported
     (it fails where libffi's closures need W+X memory, which is the point
     of the first run).

Every skipped test is listed with its reason. Exit status 0 when every
interpreter that has the test package passed (1) and Debian's python3.11
was among them with its test package (`apt install libpython3.11-testsuite`,
which scripts/test.sh installs); 1 otherwise. An interpreter without the
test package or without ctypes is listed with the reason and not run; one
whose callbacks statictramp did not serve (no closures in its summary
line: a libffi LD_PRELOAD cannot interpose) fails, pointing at the
`_ctypes` build route.
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEBIAN_PYTHON = "/usr/bin/python3.11"

PROBE = r"""
import importlib.util, platform, sys
impl = platform.python_implementation()
try:
    import ctypes, _ctypes
    ctypes_at = getattr(_ctypes, "__file__", "built-in")
except ImportError as e:
    ctypes_at = "missing: %s" % e
test = importlib.util.find_spec("test") is not None and \
    importlib.util.find_spec("test.test_ctypes") is not None
print(impl)
print("%d.%d.%d" % sys.version_info[:3])
print(sys.executable)
print(ctypes_at)
print("yes" if test else "no")
"""


@dataclass
class Interp:
    path: str
    impl: str = ""
    version: str = ""
    executable: str = ""
    ctypes: str = ""
    has_tests: bool = False
    why_not: str = ""
    passed: bool = False
    result: str = ""
    stats: str = ""
    control: str = ""
    libffi: str = ""
    skipped: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    seconds: float = 0.0


def candidates(given):
    if given:
        return given
    found = [DEBIAN_PYTHON]
    pyenv_shims = str(Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "shims")
    for d in os.environ.get("PATH", "").split(os.pathsep):
        if not d or os.path.abspath(d) == pyenv_shims:
            continue
        found += sorted(glob.glob(os.path.join(d, "python3.[0-9]*")))
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    found += sorted(glob.glob(str(root / "versions" / "*" / "bin" / "python3")))
    out, seen = [], set()
    for p in found:
        if not re.search(r"python3(\.\d+)?$", p) or not os.access(p, os.X_OK):
            continue
        real = os.path.realpath(p)
        if real not in seen:
            seen.add(real)
            out.append(p)
    return out


def probe(path):
    it = Interp(path)
    try:
        r = subprocess.run([path, "-c", PROBE], capture_output=True, text=True, timeout=60)
    except OSError as e:
        it.why_not = "cannot run: %s" % e
        return it
    lines = r.stdout.splitlines()
    if r.returncode != 0 or len(lines) < 5:
        it.why_not = "probe failed: %s" % (r.stderr.strip().splitlines() or ["?"])[-1]
        return it
    it.impl, it.version, it.executable, it.ctypes = lines[:4]
    it.has_tests = lines[4] == "yes"
    if it.impl != "CPython":
        it.why_not = "%s, not CPython" % it.impl
    elif it.ctypes.startswith("missing"):
        it.why_not = "no ctypes (%s)" % it.ctypes
    elif not it.has_tests:
        hint = ""
        if it.executable.startswith("/usr/bin/"):
            hint = " (Debian: apt install libpython%s-testsuite)" % ".".join(it.version.split(".")[:2])
        it.why_not = "no test package" + hint
    return it


def libffi_binding(it):
    """Where this interpreter's _ctypes gets libffi from, for the report.
    Whether the preload library serves it is decided by the stats line:
    a libffi linked into _ctypes whose ffi_* symbols are exported is
    interposed too (pyenv's 3.7 is built so)."""
    if it.ctypes == "built-in" or not os.path.exists(it.ctypes):
        return "_ctypes is built into the interpreter"
    try:
        out = subprocess.run(["ldd", it.ctypes], capture_output=True, text=True).stdout
    except OSError:
        return "unknown (no ldd)"
    m = re.search(r"(libffi\.so\.\d+)", out)
    return m.group(1) if m else "linked into %s" % os.path.basename(it.ctypes)


SKIP_RE = re.compile(r"^(test\w+) \((.+?)\)(?: \.\.\.|\n.*?\.\.\.)? skipped '(.*)'$")
FAIL_RE = re.compile(r"^(FAIL|ERROR): (test\w+) \((.+?)\)")


def stats_line(text):
    """statictramp's STATICTRAMP_STATS line in a run's output ("" if none)."""
    stats = [l for l in text.splitlines() if l.startswith("statictramp: stats: ")]
    return stats[-1] if stats else ""


def closures_made(stats):
    """Closures allocated according to a stats line (0 without one)."""
    m = re.search(r"(\d+) closures? allocated", stats)
    return int(m.group(1)) if m else 0


def skipped_tests(text):
    """(test, where, reason) of every skipped test in `-v` output."""
    return sorted(set((m.group(1), m.group(2), m.group(3))
                      for m in map(SKIP_RE.match, text.splitlines()) if m))


def run_tests(cli, it, preload):
    cmd = [cli, "run", "--strict"] + ([] if preload else ["--no-preload"])
    cmd += ["--", it.path, "-m", "test", "test_ctypes", "-v"]
    env = dict(os.environ, STATICTRAMP_STATS="1")
    env.pop("LD_PRELOAD", None)
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    return r, time.time() - t0


def module_route(cli, py, lines):
    """Route 2: _ctypes built with libstatictramp.a (build_ctypes.py), run
    with PYTHONPATH and without the preload library. Returns success."""
    build = [sys.executable, str(ROOT / "compat" / "python" / "build_ctypes.py"), "--python", py]
    t0 = time.time()
    b = subprocess.run(build, capture_output=True, text=True)
    built = time.time() - t0
    if b.returncode != 0:
        lines.append("%s: FAILED: build_ctypes.py: %s" % (py, b.stderr.strip()))
        return False
    module = Path(b.stdout.strip().splitlines()[-1])
    env = dict(os.environ, STATICTRAMP_STATS="1", PYTHONPATH=str(module.parent))
    env.pop("LD_PRELOAD", None)
    where = subprocess.run([cli, "run", "--strict", "--no-preload", "--", py, "-c",
                            "import _ctypes; print(_ctypes.__file__)"],
                           capture_output=True, text=True, env=env)
    t0 = time.time()
    r = subprocess.run([cli, "run", "--strict", "--no-preload", "--", py, "-m", "test",
                        "test_ctypes", "-v"], capture_output=True, text=True, env=env, timeout=1800)
    ran = time.time() - t0
    text = r.stdout + r.stderr
    stats = stats_line(text)
    ours = where.stdout.strip() == str(module)
    ok = r.returncode == 0 and closures_made(stats) > 0 and ours
    lines.append("%s with %s (no preload, strict): %s; built in %.1f s, tests %.1f s"
                 % (py, module, "passed" if ok else "FAILED (exit %d, module %s)"
                    % (r.returncode, "ours" if ours else "NOT ours: " + where.stdout.strip()),
                    built, ran))
    if stats:
        lines.append("    " + stats)
    for name, where_, why in skipped_tests(text):
        lines.append("    skipped %s (%s): %s" % (name, where_, why))
    if r.returncode != 0:
        lines.append("\n".join(text.splitlines()[-15:]))
    # Installed into a venv: its python finds the module first (.pth).
    venv = Path(tempfile.mkdtemp(prefix="statictramp-venv-"))
    try:
        subprocess.run([py, "-m", "venv", "--without-pip", str(venv)], check=True,
                       capture_output=True)
        v = subprocess.run(build + ["--venv", str(venv)], capture_output=True, text=True)
        probe = ("import _ctypes, ctypes; f = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)"
                 "(lambda x: 2 * x); print(_ctypes.__file__, f(21))")
        env = dict(os.environ, STATICTRAMP_STATS="1")
        env.pop("LD_PRELOAD", None)
        env.pop("PYTHONPATH", None)
        c = subprocess.run([cli, "run", "--strict", "--no-preload", "--",
                            str(venv / "bin" / "python"), "-c", probe],
                           capture_output=True, text=True, env=env)
        want = "%s 42" % (venv / "lib" / "statictramp-ctypes" / module.name)
        vok = v.returncode == 0 and c.returncode == 0 and c.stdout.strip() == want
        lines.append("    installed into a venv (--venv), a callback under strict mode: %s"
                     % ("ok" if vok else "FAILED: %s%s%s" % (v.stderr, c.stdout, c.stderr)))
        ok = ok and vok
    finally:
        shutil.rmtree(venv, ignore_errors=True)
    return ok


def refusals(py, lines):
    """build_ctypes.py stops with one line (status 2) on bad input, leaving
    nothing behind."""
    tool = [sys.executable, str(ROOT / "compat" / "python" / "build_ctypes.py")]
    work = Path(tempfile.mkdtemp(prefix="statictramp-refusals-"))
    try:
        other = work / "other-version"
        (other / "Include").mkdir(parents=True)
        (other / "Include" / "patchlevel.h").write_text('#define PY_VERSION "3.0.0"\n')
        noctypes = work / "noctypes"
        noctypes.mkdir()
        (noctypes / "_ctypes.py").write_text('raise ImportError("no _ctypes in this build")\n')
        wrapper = work / "python-without-ctypes"
        wrapper.write_text('#!/bin/sh\nPYTHONPATH=%s exec %s "$@"\n' % (noctypes, py))
        wrapper.chmod(0o755)
        empty = work / "empty"
        empty.mkdir()
        cases = [
            ("a source of another version", ["--python", py, "--source", str(other)],
             "the source is CPython 3.0.0"),
            ("a missing source", ["--python", py, "--source", str(work / "missing")],
             "is not a CPython source tree"),
            ("an interpreter without ctypes", ["--python", str(wrapper)], "has no ctypes"),
            ("a system directory", ["--python", py, "--install", "/usr/lib"],
             "is a system directory"),
            ("a directory that cannot be written", ["--python", py, "--install", "/proc/self"],
             "cannot write into"),
            ("a venv that is not one", ["--python", py, "--venv", str(empty)],
             "is not a virtual environment"),
        ]
        ok = True
        for what, args, want in cases:
            r = subprocess.run(tool + args, capture_output=True, text=True)
            err = r.stderr.strip().splitlines()
            good = (r.returncode == 2 and len(err) == 1 and want in err[0]
                    and not list(empty.iterdir()))
            ok = ok and good
            lines.append("    refuses %s: %s%s" % (what, "ok" if good else "FAILED", "" if good
                                                    else " (exit %d: %s)" % (r.returncode, err)))
        return ok
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cli", default=str(ROOT / "target" / "release" / "statictramp"))
    ap.add_argument("--python", action="append", default=[], help="only these interpreters")
    ap.add_argument("--route", choices=["preload", "module", "all"], default="all",
                    help="preload: LD_PRELOAD for every interpreter; module: _ctypes built "
                         "with the static library, for Debian's interpreter (default: both)")
    ap.add_argument("--report", help="also write the summary to this file")
    a = ap.parse_args()
    if not os.access(a.cli, os.X_OK):
        print("test_ctypes.py: %s not found: cargo build --release --bin statictramp" % a.cli)
        return 1

    interps = [probe(p) for p in candidates(a.python)] if a.route != "module" else []
    ok = True
    for it in interps:
        if it.why_not:
            continue
        it.libffi = libffi_binding(it)
        r, it.seconds = run_tests(a.cli, it, preload=True)
        text = r.stdout + r.stderr
        it.stats = stats_line(text)
        it.skipped = skipped_tests(text)
        it.failed = sorted(set((m.group(2), m.group(3))
                               for m in map(FAIL_RE.match, text.splitlines()) if m))
        allocated = closures_made(it.stats)
        it.passed = r.returncode == 0 and allocated > 0
        if r.returncode != 0:
            it.result = "FAILED (exit %d)" % r.returncode
            tail = "\n".join(text.splitlines()[-15:])
            it.result += "\n" + tail
        elif allocated == 0:
            it.result = ("FAILED: passed, but statictramp made no closure (libffi %s: its "
                         "closures cannot be served by LD_PRELOAD; the _ctypes build route can)"
                         % it.libffi)
        else:
            it.result = "passed"
        ok = ok and it.passed
        c, _ = run_tests(a.cli, it, preload=False)
        it.control = "passed" if c.returncode == 0 else "failed (exit %d): libffi's own closures under strict mode" % c.returncode

    debian = [it for it in interps if os.path.realpath(it.path) == os.path.realpath(DEBIAN_PYTHON)]
    lines = ["CPython's test_ctypes under `statictramp run --strict` (compat/python/test_ctypes.py)", ""]
    if a.route != "preload":
        lines.append("Route 2: _ctypes linked with libstatictramp.a (compat/python/build_ctypes.py)")
        for py in a.python or [DEBIAN_PYTHON]:
            ok = module_route(a.cli, py, lines) and ok
            ok = refusals(py, lines) and ok
        lines.append("")
        if a.route == "module":
            sys.stdout.write("\n".join(lines) + "\n")
            if a.report:
                Path(a.report).write_text("\n".join(lines) + "\n")
            return 0 if ok else 1
        lines.append("Route 1: the preload library")
    for it in interps:
        head = "%s (%s %s)" % (it.path, it.impl or "?", it.version or "?")
        if it.why_not:
            lines.append("%s: not run: %s" % (head, it.why_not))
            continue
        lines.append("%s: %s, %.1f s (libffi: %s)" % (head, it.result, it.seconds, it.libffi))
        if it.stats:
            lines.append("    " + it.stats)
        if it.control:
            lines.append("    control without the preload library: " + it.control)
        for name, where, why in it.skipped:
            lines.append("    skipped %s (%s): %s" % (name, where, why))
        for name, where in it.failed:
            lines.append("    failing %s (%s)" % (name, where))
    if not debian or debian[0].why_not or not debian[0].passed:
        why = debian[0].why_not or debian[0].result if debian else "not found"
        lines.append("")
        lines.append("FAILED: Debian's %s must pass (%s)" % (DEBIAN_PYTHON, why))
        ok = False
    ran = [it for it in interps if not it.why_not]
    lines.append("")
    lines.append("%d interpreters run, %d passed; %d not run (reasons above)"
                 % (len(ran), sum(it.passed for it in ran), len(interps) - len(ran)))
    out = "\n".join(lines) + "\n"
    sys.stdout.write(out)
    if a.report:
        Path(a.report).write_text(out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
