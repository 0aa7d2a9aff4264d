#!/usr/bin/env python3
"""Builds CPython's `_ctypes` extension for one interpreter with statictramp's
static library linked ahead of libffi, so that its closure calls
(ffi_closure_alloc, ffi_prep_closure_loc, ffi_closure_free) bind to
statictramp at link time: callbacks on static trampolines without
LD_PRELOAD. The module exports nothing of ours (only PyInit__ctypes).

    compat/python/build_ctypes.py [--python PY] [--source DIR] [--out DIR]
                                  [--install DIR | --venv VENV]

  --python PY     the interpreter (default: Debian's /usr/bin/python3.11)
  --source DIR    a CPython source tree of exactly PY's version; without it,
                  Debian's interpreter gets its source package
                  (`apt-get source python3.X`, which needs a deb-src entry)
  --out DIR       where the module is built (default target/python-ctypes/
                  <version>); prints the module's path
  --install DIR   copy it into DIR, a directory you put first on sys.path
                  (PYTHONPATH=DIR); never a system directory
  --venv VENV     install it into a virtual environment of PY: the module in
                  VENV/lib/statictramp-ctypes/, put first on sys.path by
                  VENV/.../site-packages/statictramp_ctypes.pth (site-packages
                  itself comes after the stock lib-dynload)

Every refusal (a source of another version, no source, an interpreter
without ctypes or headers, a destination that is not writable or is a
system directory) is one line on stderr and exit status 2; nothing is left
half-installed (the module is copied under a temporary name and renamed).
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEBIAN_PYTHON = "/usr/bin/python3.11"

INFO = r"""
import sys, sysconfig, platform
try:
    import _ctypes
    ok = "yes"
except ImportError as e:
    ok = "no: %s" % e
v = sysconfig.get_config_var
print(platform.python_implementation())
print("%d.%d.%d" % sys.version_info[:3])
print(ok)
print(v("INCLUDEPY") or "")
print(v("EXT_SUFFIX") or v("SO") or "")
print(v("CC") or "cc")
print(sys.prefix)
print(sys.base_prefix)
"""


class Refusal(Exception):
    pass


def interpreter(py):
    try:
        r = subprocess.run([py, "-c", INFO], capture_output=True, text=True, timeout=60)
    except OSError as e:
        raise Refusal("cannot run %s: %s" % (py, e))
    lines = r.stdout.splitlines()
    if r.returncode != 0 or len(lines) < 8:
        raise Refusal("%s is not a Python 3 interpreter that runs here" % py)
    impl, version, ctypes_ok, inc, suffix, cc, prefix, base = lines[:8]
    if impl != "CPython":
        raise Refusal("%s is %s; only CPython has this _ctypes" % (py, impl))
    if ctypes_ok != "yes":
        raise Refusal("%s has no ctypes (%s): nothing to replace" % (py, ctypes_ok[4:]))
    if not Path(inc, "Python.h").exists():
        mm = ".".join(version.split(".")[:2])
        raise Refusal("%s: no Python.h in %s: install its headers (Debian: apt install "
                      "python%s-dev)" % (py, inc, mm))
    return dict(version=version, include=inc, suffix=suffix, cc=cc.split()[0] if cc else "cc",
                prefix=prefix, base_prefix=base)


def tree_version(src):
    """PY_VERSION of a CPython source tree (Include/patchlevel.h)."""
    p = Path(src, "Include", "patchlevel.h")
    if not p.exists():
        raise Refusal("%s is not a CPython source tree (no Include/patchlevel.h)" % src)
    m = re.search(r'#define\s+PY_VERSION\s+"([^"]+)"', p.read_text())
    if not m:
        raise Refusal("%s: no PY_VERSION in Include/patchlevel.h" % p)
    return m.group(1)


def debian_source(py, version, work):
    """Modules/_ctypes and Include/patchlevel.h of Debian's source package."""
    mm = ".".join(version.split(".")[:2])
    dl = work / "apt"
    dl.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["apt-get", "source", "--download-only", "python" + mm],
                       cwd=dl, capture_output=True, text=True)
    if r.returncode != 0:
        why = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "failed"
        if "deb-src" in r.stderr:
            why = "no deb-src entry in apt's sources (add `Types: deb deb-src` to one)"
        raise Refusal("apt-get source python%s: %s; or pass --source DIR (a CPython %s "
                      "source tree)" % (mm, why, version))
    orig = sorted(dl.glob("python%s_*.orig.tar.*" % mm))
    if not orig:
        raise Refusal("apt-get source python%s gave no .orig tarball" % mm)
    src = work / "src"
    with tarfile.open(orig[-1]) as t:
        members = [m for m in t.getmembers()
                   if re.match(r"[^/]+/(Modules/_ctypes/|Include/patchlevel\.h$)", m.name)]
        if not members:
            raise Refusal("%s holds no Modules/_ctypes" % orig[-1])
        t.extractall(src, members=members)
    tops = [p for p in src.iterdir() if p.is_dir()]
    return tops[0]


def ffi_defines():
    """What setup.py/configure detect in ffi.h (HAVE_FFI_*)."""
    out = subprocess.run(["pkg-config", "--cflags-only-I", "libffi"],
                         capture_output=True, text=True).stdout.split()
    dirs = [d[2:] for d in out if d.startswith("-I")] + ["/usr/include"]
    dirs += glob.glob("/usr/include/*-linux-gnu*")
    text = ""
    for d in dirs:
        for h in glob.glob(os.path.join(d, "ffi*.h")):
            text += Path(h).read_text(errors="replace")
    if "ffi_closure_alloc" not in text:
        raise Refusal("no ffi.h with ffi_closure_alloc found (Debian: apt install libffi-dev)")
    defs = []
    for sym, name in (("ffi_prep_cif_var", "HAVE_FFI_PREP_CIF_VAR"),
                      ("ffi_prep_closure_loc", "HAVE_FFI_PREP_CLOSURE_LOC"),
                      ("ffi_closure_alloc", "HAVE_FFI_CLOSURE_ALLOC")):
        if sym in text:
            defs.append("-D%s=1" % name)
    return defs


def statictramp_archive():
    """libstatictramp.a and the native libraries it needs (scripts/build-preload
    builds both and caches rustc's list)."""
    r = subprocess.run([str(ROOT / "scripts" / "build-preload")], capture_output=True, text=True)
    if r.returncode != 0:
        raise Refusal("scripts/build-preload failed:\n" + r.stderr[-2000:])
    rel = ROOT / "target" / "release"
    lib = rel / "libstatictramp.a"
    cache = rel / ".statictramp-native-static-libs"
    native = "-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"
    if cache.exists():
        lines = cache.read_text().splitlines()
        if len(lines) > 1 and lines[1].strip():
            native = lines[1].strip()
    if not lib.exists():
        raise Refusal("%s was not built" % lib)
    return lib, native.split()


def build(info, src, out):
    mod = Path(src, "Modules")
    sources = sorted(p for p in (mod / "_ctypes").glob("*.c")
                     if p.name not in ("_ctypes_test.c", "malloc_closure.c"))
    if not sources:
        raise Refusal("%s has no _ctypes sources" % (mod / "_ctypes"))
    inc = [info["include"]]
    if Path(info["include"], "internal").is_dir():
        inc.append(os.path.join(info["include"], "internal"))
    cflags = ["-fPIC", "-O2", "-g", "-fwrapv", "-DNDEBUG", "-fvisibility=hidden",
              "-Wno-unused-parameter", "-Wno-missing-field-initializers"]
    cflags += ["-I" + d for d in inc] + ["-I" + str(mod / "_ctypes")] + ffi_defines()
    lib, native = statictramp_archive()
    out.mkdir(parents=True, exist_ok=True)
    objs = []
    for s in sources:
        o = out / (s.stem + ".o")
        r = subprocess.run([info["cc"], "-c", *cflags, str(s), "-o", str(o)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise Refusal("compiling %s failed:\n%s" % (s, r.stderr[-3000:]))
        objs.append(str(o))
    target = out / ("_ctypes" + info["suffix"])
    tmp = out / ("._ctypes.tmp%d" % os.getpid())
    # Our archive before -lffi: the closure calls bind to it; --exclude-libs
    # hides its symbols, so the module exports only PyInit__ctypes.
    cmd = [info["cc"], "-shared", "-Wl,-O1", "-Wl,--exclude-libs,ALL", "-Wl,-z,noexecstack",
           "-Wl,-z,relro", "-Wl,-z,now", "-o", str(tmp), *objs, str(lib), "-lffi", *native]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise Refusal("linking failed:\n" + r.stderr[-3000:])
    check_module(tmp)
    os.replace(tmp, target)
    for o in objs:
        os.unlink(o)
    return target


def check_module(so):
    """Exports only PyInit__ctypes; imports none of libffi's closure API."""
    defined = subprocess.run(["nm", "-D", "--defined-only", str(so)],
                             capture_output=True, text=True).stdout.split("\n")
    names = sorted(l.split()[-1] for l in defined if l.strip())
    if names != ["PyInit__ctypes"]:
        raise Refusal("%s exports %s; expected only PyInit__ctypes" % (so, names))
    undef = subprocess.run(["nm", "-D", "--undefined-only", str(so)],
                           capture_output=True, text=True).stdout
    bound_elsewhere = [n for n in ("ffi_closure_alloc", "ffi_closure_free", "ffi_prep_closure_loc")
                       if re.search(r"\b%s\b" % n, undef)]
    if bound_elsewhere:
        raise Refusal("%s still takes %s from libffi" % (so, bound_elsewhere))


SYSTEM_DIRS = ("/usr/lib", "/usr/local/lib", "/lib", "/usr/lib64", "/lib64")


def check_install_dir(dest):
    """Refuses a destination before anything is built."""
    dest = Path(dest).resolve()
    if any(str(dest) == d or str(dest).startswith(d + "/") for d in SYSTEM_DIRS):
        raise Refusal("%s is a system directory: install into a directory of your own "
                      "(PYTHONPATH) or a venv (--venv)" % dest)
    if not dest.is_dir():
        raise Refusal("%s is not a directory" % dest)
    if not os.access(dest, os.W_OK):
        raise Refusal("cannot write into %s: not writable by this user" % dest)
    return dest


def install_into(module, dest):
    dest = check_install_dir(dest)
    final = dest / module.name
    tmp = dest / (".%s.tmp%d" % (module.name, os.getpid()))
    try:
        shutil.copy2(module, tmp)
        os.replace(tmp, final)
    except OSError as e:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise Refusal("cannot write into %s: %s" % (dest, e.strerror or e))
    return final


def check_venv(venv, info):
    """Refuses a venv before anything is built; returns its site-packages."""
    venv = Path(venv).resolve()
    cfg = venv / "pyvenv.cfg"
    if not cfg.exists():
        raise Refusal("%s is not a virtual environment (no pyvenv.cfg)" % venv)
    vpy = venv / "bin" / "python"
    vinfo = interpreter(str(vpy))
    if vinfo["version"] != info["version"]:
        raise Refusal("%s is a venv of Python %s, the module is for %s"
                      % (venv, vinfo["version"], info["version"]))
    mm = ".".join(info["version"].split(".")[:2])
    site = venv / "lib" / ("python" + mm) / "site-packages"
    if not site.is_dir() or not os.access(site, os.W_OK) or not os.access(venv / "lib", os.W_OK):
        raise Refusal("cannot write into %s: not writable by this user" % site)
    return venv, site


def install_venv(module, venv, site):
    """Installs into a venv check_venv accepted (its path and site-packages)."""
    moddir = venv / "lib" / "statictramp-ctypes"
    moddir.mkdir(exist_ok=True)
    final = install_into(module, moddir)
    pth = site / "statictramp_ctypes.pth"
    tmp = site / (".statictramp_ctypes.pth.tmp%d" % os.getpid())
    try:
        tmp.write_text("import sys; sys.path.insert(0, %r)\n" % str(moddir))
        os.replace(tmp, pth)
    except OSError as e:
        final.unlink()
        raise Refusal("cannot write %s: %s" % (pth, e.strerror or e))
    return final


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--python", default=DEBIAN_PYTHON)
    ap.add_argument("--source")
    ap.add_argument("--out")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--install")
    g.add_argument("--venv")
    a = ap.parse_args()
    try:
        info = interpreter(a.python)
        # Destinations first: a refusal must not cost a build.
        if a.install:
            check_install_dir(a.install)
        elif a.venv:
            venv = check_venv(a.venv, info)
        with tempfile.TemporaryDirectory(prefix="statictramp-ctypes-") as work:
            if a.source:
                src = Path(a.source)
            elif os.path.realpath(a.python).startswith("/usr/bin/"):
                src = debian_source(a.python, info["version"], Path(work))
            else:
                raise Refusal("%s is not Debian's: pass --source DIR, a CPython %s source tree"
                              % (a.python, info["version"]))
            have = tree_version(src)
            if have != info["version"]:
                raise Refusal("the source is CPython %s but %s is %s: use the source of "
                              "exactly that version" % (have, a.python, info["version"]))
            out = Path(a.out) if a.out else ROOT / "target" / "python-ctypes" / info["version"]
            module = build(info, src, out)
        if a.install:
            module = install_into(module, a.install)
        elif a.venv:
            module = install_venv(module, *venv)
    except Refusal as e:
        print("build_ctypes.py: %s" % e, file=sys.stderr)
        return 2
    print(module)
    return 0


if __name__ == "__main__":
    sys.exit(main())
