#!/usr/bin/env python3
"""Python ctypes callbacks served by statictramp.

ctypes makes every CFUNCTYPE callback with libffi's ffi_closure_alloc and
ffi_prep_closure_loc. Run under LD_PRELOAD=libstatictramp-preload.so (see
scripts/demo), those come from statictramp: the callback's code is a slot of a
static trampoline table and no page is ever writable and executable.

The demo sorts with libc's qsort through Python comparison callbacks:
  - ~100 000 ints,
  - an array of structs by a key,
  - the same ints in descending order with glibc's qsort_r (context argument),
and exercises other callback signatures: bsearch, double(double, double),
a struct passed by value, float/int64 arguments, and many short-lived
callbacks. Every result is verified, and every callback's code pointer must be
a live statictramp closure (statictramp_owns_code, exported by statictramp
only). Exits non-zero if statictramp is not loaded or did not serve them.

Usage: LD_PRELOAD=target/release/libstatictramp-preload.so python3 qsort_demo.py [N]
"""

import ctypes
import random
import sys
import time
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char,
    c_double,
    c_float,
    c_int,
    c_int64,
    c_size_t,
    c_void_p,
    cast,
    sizeof,
)


def fail(msg):
    print(f"qsort_demo: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def grouped(n):
    """1723456 -> '1 723 456'."""
    return f"{n:,}".replace(",", " ")


# --- statictramp present? ---------------------------------------------------

process = ctypes.CDLL(None)
try:
    owns_code = process.statictramp_owns_code
except AttributeError:
    fail(
        "statictramp is not loaded (no statictramp_owns_code in the process); "
        "run this under LD_PRELOAD=<path>/libstatictramp-preload.so, e.g. with scripts/demo"
    )
owns_code.argtypes = [c_void_p]
owns_code.restype = c_int

libc = ctypes.CDLL("libc.so.6", use_errno=True)


def code_of(cb):
    """The address C code calls for a ctypes callback."""
    return cast(cb, c_void_p).value


served = {}  # name -> closure


def require_ours(name, cb):
    """The callback's code must be a live statictramp closure."""
    code = code_of(cb)
    if owns_code(code) != 1:
        fail(f"callback {name!r} (code {code:#x}) is not a statictramp closure")
    served[name] = cb


# --- 1. qsort ~100k ints ----------------------------------------------------

CMP = CFUNCTYPE(c_int, c_void_p, c_void_p)
libc.qsort.argtypes = [c_void_p, c_size_t, c_size_t, CMP]
libc.qsort.restype = None

calls = {"ints": 0, "structs": 0, "ints_desc": 0}
IntP = POINTER(c_int)


def cmp_int(a, b):
    calls["ints"] += 1
    x = cast(a, IntP)[0]
    y = cast(b, IntP)[0]
    return (x > y) - (x < y)


n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
rng = random.Random(20240601)
values = [rng.randint(-(2**31), 2**31 - 1) for _ in range(n)]
ints = (c_int * n)(*values)

cmp_int_cb = CMP(cmp_int)
require_ours("qsort ints", cmp_int_cb)
t0 = time.perf_counter()
libc.qsort(ints, n, sizeof(c_int), cmp_int_cb)
t_ints = time.perf_counter() - t0
if list(ints) != sorted(values):
    fail("qsort of ints through the callback did not sort them")


# --- 2. qsort an array of structs by a key -----------------------------------


class Rec(Structure):
    _fields_ = [("key", c_int64), ("weight", c_double), ("tag", c_char * 8)]


RecP = POINTER(Rec)
m = max(n // 5, 10)
recs_in = [
    (rng.randint(0, m // 2), rng.random(), f"r{i}".encode()[:7]) for i in range(m)
]
recs = (Rec * m)(*[Rec(k, w, t) for (k, w, t) in recs_in])


def cmp_rec(a, b):
    calls["structs"] += 1
    x = cast(a, RecP).contents
    y = cast(b, RecP).contents
    # by key, then by tag to make the order total
    kx, ky = (x.key, x.tag), (y.key, y.tag)
    return (kx > ky) - (kx < ky)


cmp_rec_cb = CMP(cmp_rec)
require_ours("qsort structs", cmp_rec_cb)
libc.qsort(recs, m, sizeof(Rec), cmp_rec_cb)
got = [(r.key, r.weight, r.tag) for r in recs]
if got != sorted(recs_in, key=lambda r: (r[0], r[2])):
    fail("qsort of structs by key did not sort them (or lost fields)")


# --- 3. glibc qsort_r: descending, with a context pointer --------------------

CMP_R = CFUNCTYPE(c_int, c_void_p, c_void_p, c_void_p)
libc.qsort_r.argtypes = [c_void_p, c_size_t, c_size_t, CMP_R, c_void_p]
libc.qsort_r.restype = None
context = ctypes.c_int(-1)  # the sign of the order, read through the context


def cmp_int_r(a, b, ctx):
    calls["ints_desc"] += 1
    sign = cast(ctx, IntP)[0]
    x = cast(a, IntP)[0]
    y = cast(b, IntP)[0]
    return sign * ((x > y) - (x < y))


cmp_int_r_cb = CMP_R(cmp_int_r)
require_ours("qsort_r ints descending", cmp_int_r_cb)
desc = (c_int * n)(*values)
libc.qsort_r(desc, n, sizeof(c_int), cmp_int_r_cb, ctypes.byref(context))
if list(desc) != sorted(values, reverse=True):
    fail("qsort_r descending did not sort")

qsort_calls = sum(calls.values())
qsort_closures = 3


# --- 4. other signatures ------------------------------------------------------

# bsearch over the sorted ints
libc.bsearch.argtypes = [c_void_p, c_void_p, c_size_t, c_size_t, CMP]
libc.bsearch.restype = c_void_p
bsearch_cb = CMP(cmp_int)
require_ours("bsearch", bsearch_cb)
for probe in rng.sample(values, 200):
    key = c_int(probe)
    hit = libc.bsearch(ctypes.byref(key), ints, n, sizeof(c_int), bsearch_cb)
    if hit is None or cast(hit, IntP)[0] != probe:
        fail(f"bsearch for {probe} failed")

# double f(double, double), called through libffi's ffi_call (a ctypes
# function pointer made from the code address)
DBL2 = CFUNCTYPE(c_double, c_double, c_double)
hypot_cb = DBL2(lambda x, y: (x * x + y * y) ** 0.5)
require_ours("double(double, double)", hypot_cb)
via_c = DBL2(code_of(hypot_cb))
if via_c(3.0, 4.0) != 5.0 or via_c(-5.0, 12.0) != 13.0:
    fail("double(double, double) callback returned a wrong value")

# mixed scalars: int64 f(int, float, int64, double, char)
MIXED = CFUNCTYPE(c_int64, c_int, c_float, c_int64, c_double, c_char)
mixed_cb = MIXED(lambda a, f, big, d, ch: a + int(f * 4) + big + int(d * 8) + ch[0])
require_ours("int64(int, float, int64, double, char)", mixed_cb)
r = MIXED(code_of(mixed_cb))(7, 0.25, 1 << 40, 0.5, b"A")
if r != 7 + 1 + (1 << 40) + 4 + 65:
    fail(f"mixed-argument callback returned {r}")


# a struct passed by value (argument; ctypes callbacks return scalars only)
class Point(Structure):
    _fields_ = [("x", c_double), ("y", c_double), ("id", c_int)]


PT = CFUNCTYPE(c_double, Point, c_int)
pt_cb = PT(lambda p, k: (p.x + p.y) * k + p.id)
require_ours("double(struct Point, int)", pt_cb)
r = PT(code_of(pt_cb))(Point(1.5, 2.25, 100), 4)
if r != 115.0:
    fail(f"struct-by-value callback returned {r}")

# many short-lived callbacks: each made, checked, called and dropped
# (ffi_closure_free), so slots are recycled
ID = CFUNCTYPE(c_int, c_int)
for i in range(2000):
    cb = ID(lambda v, i=i: v + i)
    if owns_code(code_of(cb)) != 1:
        fail(f"short-lived callback {i} is not a statictramp closure")
    if ID(code_of(cb))(1) != 1 + i:
        fail(f"short-lived callback {i} returned a wrong value")
    del cb

# every long-lived callback is still a live statictramp closure
for name, cb in served.items():
    if owns_code(code_of(cb)) != 1:
        fail(f"callback {name!r} is no longer a statictramp closure")

if qsort_calls < n:
    fail(f"only {qsort_calls} qsort callbacks ran")

print(
    f"qsort_demo: sorted {grouped(n)} ints ({t_ints:.2f} s, "
    f"{grouped(calls['ints'])} comparisons), {grouped(m)} structs by key "
    f"({grouped(calls['structs'])}), {grouped(n)} ints descending with qsort_r "
    f"({grouped(calls['ints_desc'])})"
)
print(
    "qsort_demo: also bsearch, double(double, double), int64(int, float, int64, "
    "double, char), double(struct, int) and 2 000 short-lived callbacks: all correct"
)
print(
    f"statictramp served {grouped(qsort_calls)} qsort callbacks on "
    f"{qsort_closures} closures ({len(served)} long-lived closures checked with "
    f"statictramp_owns_code)"
)


def seccomp_mode():
    """The Seccomp: field of /proc/self/status (2 = filtered), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Seccomp:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


if seccomp_mode() == 2:
    print(
        "qsort_demo: this process runs under a seccomp filter (statictramp run "
        "--strict: no writable+executable or anonymous executable memory)"
    )
