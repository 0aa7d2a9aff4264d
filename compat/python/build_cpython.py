#!/usr/bin/env python3
"""Builds a whole CPython whose configure finds libffi through statictramp's
pkg-config overlay, so its `_ctypes` makes callbacks on static trampolines,
and runs its test_ctypes under `statictramp run --strict --no-preload`.

    compat/python/build_cpython.py --overlay DIR --cli STATICTRAMP
                                   [--source TARBALL|DIR] [--work DIR] [--jobs N]

  --overlay DIR   PREFIX/lib/statictramp/pkgconfig of scripts/install
  --cli PATH      the statictramp command that runs the tests
  --source        a CPython 3.12+ source tree or tarball; default: Debian
                  trixie's python3.13 .orig tarball (found in the trixie
                  Sources index on deb.debian.org, checked against its MD5)
  --work DIR      build directory (default target/cpython-overlay)

CPython 3.12 and later build _ctypes from Modules/Setup.stdlib with
configure's LIBFFI_CFLAGS/LIBFFI_LIBS, which come from pkg-config: the
overlay's flags reach the module's link line unchanged (3.11 and earlier
build it with setup.py, which finds -lffi by itself). Checked after the
build: the Makefile's MODULE__CTYPES_LDFLAGS (configure's LIBFFI_LIBS)
carry -lstatictramp, and the built _ctypes
takes no closure function from libffi.so. Prints the build and test times.
"""

import argparse
import hashlib
import lzma
import os
import re
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MIRROR = "http://deb.debian.org/debian"


class Refusal(Exception):
    pass


def debian_tarball(dest):
    """Debian trixie's python3.13 .orig tarball, verified by the Sources index."""
    with urllib.request.urlopen(MIRROR + "/dists/trixie/main/source/Sources.xz", timeout=120) as r:
        sources = lzma.decompress(r.read()).decode("utf-8", "replace")
    stanza = re.search(r"^Package: python3\.13\n(.*?)\n\n", sources, re.S | re.M)
    if not stanza:
        raise Refusal("no python3.13 in trixie's Sources index")
    directory = re.search(r"^Directory: (\S+)", stanza.group(1), re.M).group(1)
    files = re.search(r"^Files:\n((?: .*\n?)+)", stanza.group(1), re.M).group(1)
    md5, _, name = next(l.split() for l in files.splitlines() if ".orig.tar" in l)
    path = dest / name
    if not path.exists() or hashlib.md5(path.read_bytes()).hexdigest() != md5:
        with urllib.request.urlopen("%s/%s/%s" % (MIRROR, directory, name), timeout=600) as r:
            path.write_bytes(r.read())
    if hashlib.md5(path.read_bytes()).hexdigest() != md5:
        raise Refusal("%s does not match trixie's Sources index" % name)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--overlay", required=True)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--source")
    ap.add_argument("--work", default=str(ROOT / "target" / "cpython-overlay"))
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    a = ap.parse_args()
    try:
        overlay = Path(a.overlay).resolve()
        if not (overlay / "libffi.pc").exists():
            raise Refusal("%s has no libffi.pc (scripts/install makes it)" % overlay)
        work = Path(a.work).resolve()
        work.mkdir(parents=True, exist_ok=True)
        src = Path(a.source) if a.source else debian_tarball(work)
        if src.is_file():
            tree = work / "src"
            if tree.exists():
                subprocess.run(["rm", "-rf", str(tree)], check=True)
            tree.mkdir()
            with tarfile.open(src) as t:
                t.extractall(tree)
            tops = [p for p in tree.iterdir() if p.is_dir()]
            if len(tops) != 1:
                raise Refusal("%s is not a CPython source tarball" % src)
            src = tops[0]
        patch = Path(src, "Include", "patchlevel.h")
        if not patch.exists():
            raise Refusal("%s is not a CPython source tree" % src)
        version = re.search(r'#define\s+PY_VERSION\s+"([^"]+)"', patch.read_text()).group(1)
        if tuple(int(x) for x in re.findall(r"\d+", version)[:2]) < (3, 12):
            raise Refusal("CPython %s builds _ctypes with setup.py, which ignores pkg-config's "
                          "libffi flags: use 3.12 or later" % version)
        env = dict(os.environ, PKG_CONFIG_PATH=str(overlay))
        log = work / "build.log"
        t0 = time.time()
        with open(log, "w") as out:
            for cmd in (["./configure", "--without-ensurepip"], ["make", "-j%d" % a.jobs]):
                r = subprocess.run(cmd, cwd=src, env=env, stdout=out, stderr=subprocess.STDOUT)
                if r.returncode != 0:
                    raise Refusal("%s failed (see %s)" % (" ".join(cmd), log))
        built = time.time() - t0
        makefile = Path(src, "Makefile").read_text()
        libs = re.search(r"^MODULE__CTYPES_LDFLAGS\s*=\s*(.*)$", makefile, re.M)
        if not libs or "-lstatictramp" not in libs.group(1):
            raise Refusal("the Makefile's MODULE__CTYPES_LDFLAGS (configure's LIBFFI_LIBS) lack "
                          "-lstatictramp: %s" % (libs.group(1) if libs else "unset"))
        mods = sorted(Path(src).glob("build/lib.*/_ctypes.*.so"))
        if not mods:
            raise Refusal("no _ctypes module was built (see %s)" % log)
        undef = subprocess.run(["nm", "-D", "--undefined-only", str(mods[0])],
                               capture_output=True, text=True).stdout
        if re.search(r"\bffi_(closure_alloc|closure_free|prep_closure_loc)\b", undef):
            raise Refusal("%s takes closure functions from libffi.so" % mods[0])
        t0 = time.time()
        env = dict(os.environ, STATICTRAMP_STATS="1")
        env.pop("LD_PRELOAD", None)
        r = subprocess.run([a.cli, "run", "--strict", "--no-preload", "--", str(Path(src, "python")),
                            "-m", "test", "test_ctypes"], cwd=src, env=env,
                           capture_output=True, text=True)
        tested = time.time() - t0
        text = r.stdout + r.stderr
        stats = [l for l in text.splitlines() if l.startswith("statictramp: stats: ")]
        m = re.search(r"(\d+) closures? allocated", stats[-1] if stats else "")
        print("CPython %s configured with PKG_CONFIG_PATH=%s: MODULE__CTYPES_LDFLAGS = %s"
              % (version, overlay, libs.group(1).strip()))
        print("built in %.0f s (make -j%d); %s imports no closure function from libffi.so"
              % (built, a.jobs, mods[0].name))
        print("test_ctypes under run --strict --no-preload: %s in %.1f s"
              % ("passed" if r.returncode == 0 else "FAILED (exit %d)" % r.returncode, tested))
        print("\n".join(l for l in text.splitlines()[-8:] if l.strip()))
        if r.returncode != 0 or not m or int(m.group(1)) == 0:
            return 1
    except Refusal as e:
        print("build_cpython.py: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
