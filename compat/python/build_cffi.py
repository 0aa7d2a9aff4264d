#!/usr/bin/env python3
"""Builds cffi from its source distribution against statictramp's libffi
overlay, so that `ffi.callback` makes its callbacks with libffi's closure
API on static trampolines instead of cffi's own write+execute pages.

    compat/python/build_cffi.py --overlay DIR --venv VENV [--python PY]
                                [--sdist FILE | --version V]

  --overlay DIR   the pkg-config overlay scripts/install made
                  (PREFIX/lib/statictramp/pkgconfig)
  --venv VENV     a virtual environment to install it into (made with PY
                  when it does not exist)
  --python PY     the interpreter (default /usr/bin/python3.11)
  --sdist FILE    cffi's .tar.gz; else `pip download cffi==V` (V default
                  1.17.1)

cffi on Linux never calls ffi_closure_alloc: its _cffi_backend.c picks
libffi's closure API only on NetBSD, macOS >= 10.15 and Emscripten and
otherwise allocates closures itself with mmap(PROT_WRITE | PROT_EXEC),
which strict mode (and SELinux deny_execmem, MemoryDenyWriteExecute=,
MDWE) refuses; no build flag changes that (checked in 1.17.1 and 2.1.1).
This script adds one, CFFI_TRUST_LIBFFI, as a branch before that
`#else`, builds with -DCFFI_TRUST_LIBFFI and the overlay's flags (the
closure calls then bind to statictramp at link time), and checks that
_cffi_backend imports no closure function from libffi.so. cffi's wheels
and Debian's python3-cffi keep their own W+X allocation: no libffi
backend can help them; cffi's W^X-safe alternative is API mode with
`@ffi.def_extern()` (callbacks compiled ahead of time).

Refusals are one line on stderr and exit status 2.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PATCH_MARK = "defined(CFFI_TRUST_LIBFFI)"
BRANCH = """#elif defined(CFFI_TRUST_LIBFFI)

/* Added by statictramp's compat/python/build_cffi.py: libffi's closure
 * API serves callbacks (statictramp: static trampolines, no writable and
 * executable memory, safe across fork). */
# define CFFI_CHECK_FFI_CLOSURE_ALLOC 1
# define CFFI_CHECK_FFI_CLOSURE_ALLOC_MAYBE 1
# define CFFI_CHECK_FFI_PREP_CLOSURE_LOC 1
# define CFFI_CHECK_FFI_PREP_CLOSURE_LOC_MAYBE 1
# define CFFI_CHECK_FFI_PREP_CIF_VAR 0
# define CFFI_CHECK_FFI_PREP_CIF_VAR_MAYBE 0

"""


class Refusal(Exception):
    pass


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["failed"]
        raise Refusal("%s: %s" % (" ".join(map(str, cmd[:4])), tail[0]))
    return r


def patch(backend):
    text = backend.read_text()
    if PATCH_MARK in text:
        return
    # The last branch of the CFFI_CHECK_FFI_CLOSURE_ALLOC selection: the
    # `#else` whose block defines it 0.
    m = re.search(r"\n#else\s*\n\s*# define CFFI_CHECK_FFI_CLOSURE_ALLOC 0\n", text)
    if not m:
        raise Refusal("%s: the CFFI_CHECK_FFI_CLOSURE_ALLOC selection is not where this "
                      "script expects it (a cffi it does not know)" % backend)
    text = text[:m.start() + 1] + BRANCH + text[m.start() + 1:]
    backend.write_text(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--overlay", required=True)
    ap.add_argument("--venv", required=True)
    ap.add_argument("--python", default="/usr/bin/python3.11")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--sdist")
    g.add_argument("--version", default="1.17.1")
    a = ap.parse_args()
    try:
        overlay = Path(a.overlay).resolve()
        if not (overlay / "libffi.pc").exists():
            raise Refusal("%s has no libffi.pc: pass PREFIX/lib/statictramp/pkgconfig of "
                          "scripts/install" % overlay)
        venv = Path(a.venv).resolve()
        if not (venv / "pyvenv.cfg").exists():
            if venv.exists() and any(venv.iterdir()):
                raise Refusal("%s exists and is not a virtual environment" % venv)
            run([a.python, "-m", "venv", str(venv)])
        with tempfile.TemporaryDirectory(prefix="statictramp-cffi-") as work:
            work = Path(work)
            if a.sdist:
                sdist = Path(a.sdist)
                if not sdist.exists():
                    raise Refusal("%s does not exist" % sdist)
            else:
                run([str(venv / "bin" / "python"), "-m", "pip", "download", "--no-binary", ":all:",
                     "--no-deps", "cffi==" + a.version, "-d", str(work)])
                found = sorted(work.glob("cffi-*.tar.gz"))
                if not found:
                    raise Refusal("pip download cffi==%s gave no source distribution" % a.version)
                sdist = found[0]
            with tarfile.open(sdist) as t:
                t.extractall(work / "src")
            tops = [p for p in (work / "src").iterdir() if p.is_dir()]
            if len(tops) != 1:
                raise Refusal("%s is not a cffi source distribution" % sdist)
            backend = tops[0] / "src" / "c" / "_cffi_backend.c"
            if not backend.exists():
                raise Refusal("%s has no src/c/_cffi_backend.c" % sdist)
            patch(backend)
            env = dict(os.environ, PKG_CONFIG_PATH=str(overlay),
                       CFLAGS=(os.environ.get("CFLAGS", "") + " -DCFFI_TRUST_LIBFFI").strip())
            run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-cache-dir",
                 "--force-reinstall", "--no-deps", str(tops[0])], env=env)
            run([str(venv / "bin" / "python"), "-m", "pip", "install", "pycparser"])
        so = run([str(venv / "bin" / "python"), "-c",
                  "import _cffi_backend; print(_cffi_backend.__file__)"]).stdout.strip()
        undef = run(["nm", "-D", "--undefined-only", so]).stdout
        left = [n for n in ("ffi_closure_alloc", "ffi_prep_closure_loc", "ffi_closure_free")
                if re.search(r"\b%s\b" % n, undef)]
        if left:
            raise Refusal("%s still takes %s from libffi.so" % (so, left))
        uses = run(["nm", so]).stdout
        if "ffi_closure_alloc" not in uses:
            raise Refusal("%s does not call ffi_closure_alloc: the patch had no effect" % so)
    except Refusal as e:
        print("build_cffi.py: %s" % e, file=sys.stderr)
        return 2
    print(so)
    return 0


if __name__ == "__main__":
    sys.exit(main())
