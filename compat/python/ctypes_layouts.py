#!/usr/bin/env python3
"""ctypes callbacks taking packed structures, unions and bitfield structures.

CPython's ctypes states the size and alignment of these types in their
ffi_type (Modules/_ctypes/stgdict.c): a `_pack_ = 1` structure is smaller
than the C layout of its fields, a Union lists every member as an element
of a struct of the largest member's size, and a structure with bitfields
lists every bitfield as an element of its declared type although they share
storage. libffi takes such layouts as stated, and so must statictramp: each
CFUNCTYPE below is prepared with ffi_prep_closure_loc and called through
libffi's ffi_call (a ctypes function pointer made from the callback's
address), with the structures as arguments among scalars, in registers and
on the stack. Every field the callback sees is compared with what was sent,
and every scalar it returns with what the caller got. (ctypes callbacks
cannot return structures or unions: "invalid result type for callback
function".)

Usage:
  LD_PRELOAD=target/release/libstatictramp-preload.so python3 ctypes_layouts.py
      every callback must be a live statictramp closure (statictramp_owns_code)
  python3 ctypes_layouts.py --system
      control: the system libffi's own closures, statictramp must not be loaded

Exits non-zero on the first wrong value (or if statictramp did not serve the
callbacks); before statictramp accepted these layouts, making the first
callback failed with "RuntimeError: ffi_prep_closure failed with 1".
"""

import ctypes
import sys
from ctypes import (
    CFUNCTYPE,
    Structure,
    Union,
    c_char,
    c_double,
    c_float,
    c_int,
    c_int8,
    c_int64,
    c_uint,
    c_uint8,
    c_uint64,
    c_void_p,
    cast,
    sizeof,
)

SYSTEM = "--system" in sys.argv[1:]


def fail(msg):
    print(f"ctypes_layouts: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


process = ctypes.CDLL(None)
owns_code = getattr(process, "statictramp_owns_code", None)
if SYSTEM:
    if owns_code is not None:
        fail("--system: statictramp is loaded; run without LD_PRELOAD")
elif owns_code is None:
    fail(
        "statictramp is not loaded (no statictramp_owns_code in the process); "
        "run under LD_PRELOAD=<path>/libstatictramp-preload.so, or pass --system"
    )
else:
    owns_code.argtypes = [c_void_p]
    owns_code.restype = c_int


def code_of(cb):
    """The address C code calls for a ctypes callback."""
    return cast(cb, c_void_p).value


# --- the types ---------------------------------------------------------------


class Packed13(Structure):
    _pack_ = 1
    _fields_ = [("c", c_char), ("i", c_int), ("d", c_double)]


class Packed33(Structure):
    _pack_ = 1
    _fields_ = [
        ("c", c_char),
        ("a", c_double),
        ("b", c_double),
        ("e", c_double),
        ("f", c_double),
    ]


class Packed33Array(Structure):
    # ctypes gives an array field of a structure over 16 bytes the
    # ffi_type of a pointer (8 bytes): the elements cover 9 of 33 bytes.
    _pack_ = 1
    _fields_ = [("c", c_char), ("q", c_int64 * 4)]


class IntDouble(Union):
    _fields_ = [("i", c_int), ("d", c_double)]


class DoubleInt(Union):
    # libffi classifies only the double (the int walks past the 8 bytes):
    # passed in an SSE register, where C compilers use a general one.
    _fields_ = [("d", c_double), ("i", c_int)]


class DoubleQuads(Union):
    # The array becomes a struct of two int64 (16-byte struct, bpo-22273).
    _fields_ = [("d", c_double), ("q", c_int64 * 2)]


class IntInts(Union):
    # libffi walks the int[4] from offset 4 over three eightbytes: memory.
    _fields_ = [("i", c_int), ("a", c_int * 4)]


class Bits(Structure):
    _fields_ = [("a", c_uint, 3), ("b", c_uint, 5), ("c", c_uint, 24)]


class FloatBitsFloat(Structure):
    # ctypes: x and y share the int at 4, g at 8; libffi walks y to 8 and g
    # to 12, so both eightbytes are INTEGER (two general registers).
    _fields_ = [("f", c_float), ("x", c_int, 3), ("y", c_int, 3), ("g", c_float)]


class DoubleBits64(Structure):
    _fields_ = [("x", c_double), ("a", c_uint64, 1), ("b", c_uint64, 63)]


class PackedBits(Structure):
    _pack_ = 1
    _fields_ = [("a", c_uint8, 4), ("b", c_uint8, 4), ("x", c_int)]


class NoFields(Structure):
    # No _fields_: its ffi_type stays zeroed (void, size 0, alignment 0).
    pass


class WithNoFields(Structure):
    _fields_ = [("e", NoFields), ("x", c_int), ("s", c_int8)]


for cls, size in [
    (Packed13, 13),
    (Packed33, 33),
    (Packed33Array, 33),
    (IntDouble, 8),
    (DoubleInt, 8),
    (DoubleQuads, 16),
    (IntInts, 16),
    (Bits, 4),
    (FloatBitsFloat, 12),
    (DoubleBits64, 16),
    (PackedBits, 5),
    (WithNoFields, 8),
]:
    if sizeof(cls) != size:
        fail(f"sizeof({cls.__name__}) is {sizeof(cls)}, expected {size}")


def fields(v):
    """A structure's or union's field values, recursively, as plain data
    (floats by repr, so that a union member read as a NaN compares equal);
    `raw` adds the bytes of the whole value, padding included."""
    out = {}
    for name, *_ in getattr(v, "_fields_", []):
        x = getattr(v, name)
        if isinstance(x, (Structure, Union)):
            x = fields(x)
        elif isinstance(x, ctypes.Array):
            x = list(x)
        elif isinstance(x, float):
            x = repr(x)
        out[name] = x
    out["raw"] = bytes(v)
    return out


# --- the calls -----------------------------------------------------------------

calls = 0
checked = 0


def run(name, restype, argtypes, values, compute):
    """Makes a callback of this signature that records what it gets and
    returns compute(*args), calls it through libffi's ffi_call with each
    tuple of `values`, and checks every argument and the return value."""
    global calls, checked
    seen = []

    def body(*args):
        seen.append([fields(a) if isinstance(a, (Structure, Union)) else a for a in args])
        return compute(*args)

    proto = CFUNCTYPE(restype, *argtypes)
    cb = proto(body)
    if not SYSTEM and owns_code(code_of(cb)) != 1:
        fail(f"{name}: callback code {code_of(cb):#x} is not a statictramp closure")
    via_ffi_call = proto(code_of(cb))
    for args in values:
        seen.clear()
        got = via_ffi_call(*args)
        calls += 1
        if len(seen) != 1:
            fail(f"{name}: callback ran {len(seen)} times")
        want_args = [fields(a) if isinstance(a, (Structure, Union)) else a for a in args]
        for i, (w, g) in enumerate(zip(want_args, seen[0])):
            if w != g:
                fail(f"{name}: argument {i}: sent {w!r}, callback got {g!r}")
            checked += 1
        want = compute(*args)
        if got != want:
            fail(f"{name}: returned {got!r}, expected {want!r}")
    if not SYSTEM and owns_code(code_of(cb)) != 1:
        fail(f"{name}: callback is no longer a statictramp closure")
    return cb


def p13(c, i, d):
    return Packed13(c, i, d)


def p33(c, *ds):
    return Packed33(c, *ds)


def quads(*q):
    return (c_int64 * len(q))(*q)


keep = []

# Packed 13 bytes: INTEGER + SSE in libffi's view, alone, among scalars, and
# on the stack once the general registers are taken.
keep.append(
    run(
        "int(Packed13)",
        c_int,
        [Packed13],
        [(p13(b"A", 123456789, 2.5),), (p13(b"\xff", -1, -0.125),)],
        lambda s: s.i ^ s.c[0],
    )
)
keep.append(
    run(
        "double(int, Packed13, double, Packed13, char)",
        c_double,
        [c_int, Packed13, c_double, Packed13, c_char],
        [(7, p13(b"x", -5, 1e300), 0.75, p13(b"y", 2**31 - 1, -3.5), b"z")],
        lambda a, s, d, t, ch: a + s.i + s.d + d + t.i + t.d + ch[0],
    )
)
keep.append(
    run(
        "int64(int x 6, Packed13, int, Packed13)",
        c_int64,
        [c_int] * 6 + [Packed13, c_int, Packed13],
        [tuple(range(1, 7)) + (p13(b"s", 31337, 6.25), 99, p13(b"t", -2, 0.5))],
        lambda *a: sum(a[:6]) + a[6].i + int(a[6].d * 4) + a[7] + a[8].i + int(a[8].d * 4),
    )
)

# Packed 33 bytes: memory, on the stack.
keep.append(
    run(
        "double(Packed33, int, Packed33)",
        c_double,
        [Packed33, c_int, Packed33],
        [(p33(b"q", 1.0, 2.0, 3.0, 4.5), 10, p33(b"r", -1.0, -2.0, -3.0, -4.5))],
        lambda s, k, t: s.a + s.b + s.e + s.f + k + t.a + t.b + t.e + t.f + s.c[0] - t.c[0],
    )
)
keep.append(
    run(
        "int64(Packed33Array, Packed13)",
        c_int64,
        [Packed33Array, Packed13],
        [(Packed33Array(b"w", quads(1, -2, 3, -(2**62))), p13(b"v", 77, 8.0))],
        lambda s, t: sum(s.q) + s.c[0] + t.i,
    )
)

# Unions of int and double, either member set.
keep.append(
    run(
        "double(IntDouble, DoubleInt, IntDouble)",
        c_double,
        [IntDouble, DoubleInt, IntDouble],
        [
            (IntDouble(d=3.25), DoubleInt(d=-7.5), IntDouble(i=-42)),
            (IntDouble(i=123), DoubleInt(i=456), IntDouble(d=1e-300)),
        ],
        lambda u, v, w: u.d + v.d + w.i,
    )
)
keep.append(
    run(
        "int(int x 5, IntDouble, DoubleInt, double x 8, DoubleInt)",
        c_int,
        [c_int] * 5 + [IntDouble, DoubleInt] + [c_double] * 8 + [DoubleInt],
        [
            tuple(range(5))
            + (IntDouble(i=11), DoubleInt(d=2.5))
            + tuple(float(k) for k in range(8))
            + (DoubleInt(i=-9),)
        ],
        lambda *a: sum(a[:5]) + a[5].i + int(a[6].d * 2) + int(sum(a[7:15])) + a[15].i,
    )
)
keep.append(
    run(
        "int64(DoubleQuads, IntInts, int)",
        c_int64,
        [DoubleQuads, IntInts, c_int],
        [
            (DoubleQuads(q=quads(-5, 2**40)), IntInts(a=(c_int * 4)(1, 2, 3, -4)), 5),
            (DoubleQuads(d=0.5), IntInts(i=-1), -5),
        ],
        lambda u, v, k: u.q[0] + u.q[1] + sum(v.a) + k,
    )
)

# Bitfield structures.
keep.append(
    run(
        "uint(Bits, FloatBitsFloat, Bits)",
        c_uint,
        [Bits, FloatBitsFloat, Bits],
        [
            (Bits(7, 31, 0xFFFFFF), FloatBitsFloat(1.5, -4, 3, -2.25), Bits(1, 2, 3)),
            (Bits(0, 16, 0x800000), FloatBitsFloat(-0.0, 3, -4, 1e30), Bits(5, 0, 1)),
        ],
        lambda b, f, c: (b.a + b.b + b.c + f.x * 7 + f.y + c.a + c.b + c.c) & 0xFFFFFFFF,
    )
)
keep.append(
    run(
        "double(DoubleBits64, PackedBits, float, PackedBits)",
        c_double,
        [DoubleBits64, PackedBits, c_float, PackedBits],
        [
            (DoubleBits64(-1.75, 1, 2**63 - 1), PackedBits(15, 9, -100000), 0.5, PackedBits(1, 2, 3)),
            (DoubleBits64(8.0, 0, 12345), PackedBits(0, 15, 2**31 - 1), -2.0, PackedBits(8, 8, -1)),
        ],
        lambda s, p, f, q: s.x + s.a + (s.b & 0xFFFF) + p.a + p.b + p.x + f + q.a + q.b + q.x,
    )
)

# A structure with a field of a structure without _fields_.
keep.append(
    run(
        "int(WithNoFields, int, WithNoFields)",
        c_int,
        [WithNoFields, c_int, WithNoFields],
        [(WithNoFields(x=-77, s=5), 1000, WithNoFields(x=12, s=-128))],
        lambda s, k, t: s.x + s.s + k + t.x + t.s,
    )
)

who = "the system libffi" if SYSTEM else "statictramp"
print(
    f"ctypes_layouts: {len(keep)} callbacks ({who}), {calls} calls through "
    f"ffi_call, {checked} arguments checked: packed 13/33-byte structures, "
    "unions of int and double, bitfield structures: all correct"
)
