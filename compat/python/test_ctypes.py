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


def run_tests(cli, it, preload):
    cmd = [cli, "run", "--strict"] + ([] if preload else ["--no-preload"])
    cmd += ["--", it.path, "-m", "test", "test_ctypes", "-v"]
    env = dict(os.environ, STATICTRAMP_STATS="1")
    env.pop("LD_PRELOAD", None)
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    return r, time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cli", default=str(ROOT / "target" / "release" / "statictramp"))
    ap.add_argument("--python", action="append", default=[], help="only these interpreters")
    ap.add_argument("--report", help="also write the summary to this file")
    a = ap.parse_args()
    if not os.access(a.cli, os.X_OK):
        print("test_ctypes.py: %s not found: cargo build --release --bin statictramp" % a.cli)
        return 1

    interps = [probe(p) for p in candidates(a.python)]
    ok = True
    for it in interps:
        if it.why_not:
            continue
        it.libffi = libffi_binding(it)
        r, it.seconds = run_tests(a.cli, it, preload=True)
        text = r.stdout + r.stderr
        stats = [l for l in text.splitlines() if l.startswith("statictramp: stats: ")]
        it.stats = stats[-1] if stats else ""
        it.skipped = sorted(set((m.group(1), m.group(2), m.group(3))
                                for m in map(SKIP_RE.match, text.splitlines()) if m))
        it.failed = sorted(set((m.group(2), m.group(3))
                               for m in map(FAIL_RE.match, text.splitlines()) if m))
        m = re.search(r"(\d+) closures? allocated", it.stats)
        allocated = int(m.group(1)) if m else 0
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
