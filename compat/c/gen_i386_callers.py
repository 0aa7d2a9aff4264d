#!/usr/bin/env python3
"""Writes the cases of the i386 caller programs (compat/c/i386_callers.h).

    gen_i386_callers.py                      the fixed cases -> stdout
                                             (compat/c/i386_callers.c is this output)
    gen_i386_callers.py --random SEED [--count N]
                                             N random signatures per ABI
                                             (abi-cafe style) -> stdout

Every case is a signature under one of libffi's seven x86-32 ABIs. For each
the output has: the closure handler (checks every argument, writes the
return value), a `gcc` caller (a call through a function pointer of the
matching GCC type), a `raw` caller (the convention's register and stack
image for the hand-written asm caller, and its return checks) and a
GCC-compiled reference callee of the gcc caller's type, which the raw
image is checked against.

The conventions, as the compilers emit them (GCC 12 for the C ones; the
Delphi Language Guide for PASCAL and REGISTER, which no C compiler emits):

  ABI       registers     stack order     callee pops      struct return
  SYSV      -             right to left   hidden ptr only  hidden ptr, first
  MS_CDECL  -             right to left   nothing          hidden ptr, first
  STDCALL   -             right to left   all              hidden ptr, first
  FASTCALL  ecx, edx      right to left   its stack args   hidden ptr in ecx
  THISCALL  ecx           right to left   its stack args   hidden ptr in ecx
  PASCAL    -             left to right   all              1/2/4 bytes in eax,
  REGISTER  eax, edx, ecx left to right   all              else hidden ptr last

Registers: an integer or pointer of at most 4 bytes takes the next one.
GCC (fastcall, thiscall): a 64-bit integer or a struct of integer mode or
BLKmode goes on the stack but uses up ceil(size/4) registers; floating
types and structs of one floating member use none. Delphi (register): a
parameter that does not qualify takes none, later ones still may. Every
stack argument takes its size rounded up to 4 bytes, at 4-byte alignment.
The C conventions return every struct through the hidden pointer (Linux
i386 is -fpcc-struct-return); _Complex float comes back in edx:eax in
every convention (GCC's SCmode; Pascal has none, libffi does the same); the Pascal
ones pass the hidden pointer after the declared parameters (the next free
register, else pushed last: nearest the return address).

GCC types for PASCAL and REGISTER: `stdcall` (PASCAL) and
`regparm(3), stdcall` (REGISTER), whose parameters are: for REGISTER the
values of eax, edx and ecx (the register arguments, the hidden pointer, or
an unused uint32_t where none goes), then the stack arguments from the
lowest address up, i.e. in reverse of the order they are pushed. GCC lays
those out exactly where the Pascal convention does, and pops them.
"""

import argparse
import random
import sys

ABIS = ["SYSV", "STDCALL", "THISCALL", "FASTCALL", "MS_CDECL", "PASCAL", "REGISTER"]


class Conv:
    def __init__(self, regs, rule, order, pop, sret, attr):
        self.regs = regs  # argument registers in the order they are taken
        self.rule = rule  # "gcc" or "delphi"
        self.order = order  # "rtl" (C) or "ltr" (Pascal)
        self.pop = pop  # "hidden", "none" or "all"
        self.sret = sret  # "first" (C) or "last" (Pascal)
        self.attr = attr  # GCC attributes of the gcc caller's type


CONV = {
    "SYSV": Conv([], "gcc", "rtl", "hidden", "first", "cdecl"),
    # regparm(0) changes nothing but makes GCC keep the type apart: GCC 12
    # does not count ms_abi in a function type's identity on i386, so a
    # pointer to `struct S f(void)` with ms_abi and one without, in one
    # translation unit, both take the convention of whichever came first
    # (the ms_abi caller then expects the callee to pop the hidden pointer).
    "MS_CDECL": Conv([], "gcc", "rtl", "none", "first", "ms_abi, regparm(0)"),
    "STDCALL": Conv([], "gcc", "rtl", "all", "first", "stdcall"),
    "FASTCALL": Conv(["ecx", "edx"], "gcc", "rtl", "all", "first", "fastcall"),
    "THISCALL": Conv(["ecx"], "gcc", "rtl", "all", "first", "thiscall"),
    "PASCAL": Conv([], "delphi", "ltr", "all", "last", "stdcall"),
    "REGISTER": Conv(["eax", "edx", "ecx"], "delphi", "ltr", "all", "last", "regparm(3), stdcall"),
}

# ---- types --------------------------------------------------------------------


class Ty:
    def __init__(self, name, c, ffi, size, align, kind, signed=False, fields=()):
        self.name = name  # in signatures: u8, s32, f64, S3, ...
        self.c = c  # C type
        self.ffi = ffi  # ffi_type * expression
        self.size = size
        self.align = align
        self.kind = kind  # int ptr float double ldouble cfloat cdouble struct
        self.signed = signed
        self.fields = list(fields)


def scalar(name, c, ffi, size, kind, signed=False):
    return Ty(name, c, "&" + ffi, size, min(size, 4), kind, signed)


U8 = scalar("u8", "uint8_t", "ffi_type_uint8", 1, "int")
S8 = scalar("s8", "int8_t", "ffi_type_sint8", 1, "int", True)
U16 = scalar("u16", "uint16_t", "ffi_type_uint16", 2, "int")
S16 = scalar("s16", "int16_t", "ffi_type_sint16", 2, "int", True)
U32 = scalar("u32", "uint32_t", "ffi_type_uint32", 4, "int")
S32 = scalar("s32", "int32_t", "ffi_type_sint32", 4, "int", True)
U64 = scalar("u64", "uint64_t", "ffi_type_uint64", 8, "int")
S64 = scalar("s64", "int64_t", "ffi_type_sint64", 8, "int", True)
PTR = scalar("ptr", "void *", "ffi_type_pointer", 4, "ptr")
F32 = scalar("f32", "float", "ffi_type_float", 4, "float")
F64 = scalar("f64", "double", "ffi_type_double", 8, "double")
LD = scalar("ld", "long double", "ffi_type_longdouble", 12, "ldouble")
CF = scalar("cf", "float _Complex", "ffi_type_complex_float", 8, "cfloat")
CD = scalar("cd", "double _Complex", "ffi_type_complex_double", 16, "cdouble")
VOID = Ty("void", "void", "&ffi_type_void", 0, 1, "void")
SCALARS = [U8, S8, U16, S16, U32, S32, U64, S64, PTR, F32, F64, LD, CF, CD]


def struct(name, fields):
    off = 0
    align = 1
    for f in fields:
        off = (off + f.align - 1) // f.align * f.align + f.size
        align = max(align, f.align)
    size = (off + align - 1) // align * align
    return Ty(name, "struct " + name, "&t_" + name, size, align, "struct", fields=fields)


STRUCTS = [
    struct("S1", [U8]),
    struct("S2", [S16]),
    struct("S3", [U8, U8, U8]),
    struct("S4", [S32]),
    struct("S4f", [F32]),  # one float member: SFmode, no register in fastcall
    struct("S5", [U8] * 5),
    struct("S6", [S16] * 3),
    struct("S8", [S32, U32]),
    struct("Sff", [F32, F32]),  # two floats: DImode, two registers in fastcall
    struct("Sd", [F64]),  # DFmode
    struct("Sc8", [U8, S32]),  # 3 bytes of padding
    struct("S12", [S32, S32, S32]),
    struct("Sld", [LD]),  # XFmode
    struct("S16", [F64, S32, S16]),  # 2 bytes of padding at the end
    struct("S20", [U32] * 5),
    struct("Sp", [PTR, U8]),
]
T = {t.name: t for t in SCALARS + STRUCTS + [VOID]}


def gcc_float_mode(t):
    """GCC gives t a floating-point machine mode (SF, DF, XF, SC, DC)."""
    if t.kind in ("float", "double", "ldouble", "cfloat", "cdouble"):
        return True
    if t.kind == "struct":
        sized = [f for f in t.fields if f.size > 0]
        return len(sized) == 1 and sized[0].size == t.size and gcc_float_mode(sized[0])
    return False


def eligible(t):
    """May go in an argument register."""
    return (t.kind == "int" and t.size <= 4) or t.kind == "ptr"


def gcc_words_used(t):
    """Registers GCC's fastcall/thiscall use up for t on the stack."""
    if (t.kind == "int" and t.size == 8) or (t.kind == "struct" and not gcc_float_mode(t)):
        return (t.size + 3) // 4
    return 0


def slot(size):
    return (size + 3) // 4 * 4


# ---- values -------------------------------------------------------------------


def hexfloat(x, suffix):
    return x.hex() + suffix


def value(t, k):
    """A C expression of type t, distinct per k, exact in its type; integers
    have their top bit set (signed ones are negative) so that a missing sign
    or zero extension shows."""
    if t.kind == "int":
        bits = t.size * 8
        low = (0x5A3C96E1D2B4870F * (k + 1) + 0x1F) % (1 << (bits - 1))
        if t.signed:
            return "(%s)(-%dLL - 1)" % (t.c, low)
        return "(%s)%dULL" % (t.c, (1 << (bits - 1)) | low)
    if t.kind == "ptr":
        return "(void *)(uintptr_t)0x%08xu" % (0xC0DE0000 + 0x10 * (k % 4096) + 4)
    if t.kind == "float":
        return hexfloat((-1) ** k * (1.5 + 0.25 * (k % 1000)), "f")
    if t.kind == "double":
        return hexfloat((-1) ** (k + 1) * (1.0 + (k % 1000) / 1024.0) * 2.0**40, "")
    if t.kind == "ldouble":
        # 1 + (k+1) * 2^-60 needs all 64 bits of the x87 significand.
        return "(%s(1.0L + %d * 0x1p-60L))" % ("-" if k % 2 else "", k % 15 + 1)
    if t.kind == "cfloat":
        return "__builtin_complex(%s, %s)" % (value(F32, 2 * k), value(F32, 2 * k + 1))
    if t.kind == "cdouble":
        return "__builtin_complex(%s, %s)" % (value(F64, 2 * k), value(F64, 2 * k + 1))
    if t.kind == "struct":
        return "(%s){%s}" % (t.c, ", ".join(value(f, 16 * k + j) for j, f in enumerate(t.fields)))
    raise ValueError(t.name)


def equal(t, a, b):
    """C expression: the lvalues a and b of type t hold the same value."""
    if t.kind == "struct":
        return "eq_%s(&(%s), &(%s))" % (t.name, a, b)
    return "(%s) == (%s)" % (a, b)


def sig_bytes(t):
    """Bytes of t that carry its value (an x87 long double uses 10 of 12)."""
    return "10" if t.kind == "ldouble" else "sizeof(%s)" % t.c


# ---- layout -------------------------------------------------------------------


class Layout:
    """Where a signature's arguments go under a convention. Roles:
    ("arg", i), ("sret",), ("dummy", n)."""

    def __init__(self, abi, args, ret):
        conv = CONV[abi]
        self.conv = conv
        # How the value comes back.
        if ret.kind == "void":
            self.ret = "void"
        elif (ret.kind == "int" and ret.size <= 4) or ret.kind == "ptr":
            self.ret = "eax"
        elif ret.kind == "int":
            self.ret = "edx:eax"
        elif ret.kind in ("float", "double", "ldouble"):
            self.ret = "x87"
        elif ret.kind == "cfloat":
            # GCC returns SCmode like a 64-bit integer in every convention;
            # Pascal has no complex types, and libffi's ffi_call (the only
            # caller of a PASCAL/REGISTER closure returning one) does the
            # same (X86_RET_INT64 whatever the ABI).
            self.ret = "edx:eax"
        elif conv.sret == "first":
            self.ret = "sret"
        else:
            self.ret = "small" if ret.size in (1, 2, 4) else "sret"
        hidden = self.ret == "sret"

        # Registers, in argument order.
        regs = conv.regs
        self.reg = {}  # register -> role
        nxt = 0
        if hidden and conv.sret == "first" and regs:
            self.reg[regs[0]] = ("sret",)
            nxt = 1
        in_reg = [False] * len(args)
        for i, t in enumerate(args):
            if eligible(t) and nxt < len(regs):
                self.reg[regs[nxt]] = ("arg", i)
                in_reg[i] = True
                nxt += 1
            elif conv.rule == "gcc":
                nxt = min(nxt + gcc_words_used(t), len(regs))
        if hidden and conv.sret == "last" and nxt < len(regs):
            self.reg[regs[nxt]] = ("sret",)
        sret_on_stack = hidden and ("sret",) not in self.reg.values()

        # Stack, from offset 0 (nearest the return address) up.
        self.stack = [("sret",)] if sret_on_stack else []
        order = range(len(args)) if conv.order == "rtl" else reversed(range(len(args)))
        self.stack += [("arg", i) for i in order if not in_reg[i]]
        self.bytes = sum(slot(args[r[1]].size) if r[0] == "arg" else 4 for r in self.stack)
        if conv.pop == "all":
            self.pop = self.bytes
        elif conv.pop == "hidden":
            self.pop = 4 if sret_on_stack else 0
        else:
            self.pop = 0


# ---- code ---------------------------------------------------------------------


class Sig:
    def __init__(self, ret, args, nfixed=None):
        self.ret = ret
        self.args = args
        self.nfixed = len(args) if nfixed is None else nfixed
        self.variadic = nfixed is not None

    def text(self):
        names = [a.name for a in self.args]
        if self.variadic:
            fixed, var = names[: self.nfixed], names[self.nfixed :]
            return "%s(%s...%s)" % (self.ret.name, "".join(n + "," for n in fixed), ",".join(var))
        return "%s(%s)" % (self.ret.name, ",".join(names))


def arg_value(s, i):
    return value(s.args[i], 10 * s.index + i)


def ret_value(s):
    return value(s.ret, 10 * s.index + 9)


def emit_types(out):
    for t in STRUCTS:
        out.append("struct %s {" % t.name)
        for j, f in enumerate(t.fields):
            out.append("    %s f%d;" % (f.c, j))
        out.append("};")
        out.append(
            "_Static_assert(sizeof(struct %s) == %d && _Alignof(struct %s) == %d, \"%s\");"
            % (t.name, t.size, t.name, t.align, t.name)
        )
        out.append("static ffi_type *el_%s[] = {%s, NULL};" % (t.name, ", ".join(f.ffi for f in t.fields)))
        out.append("static ffi_type t_%s = {0, 0, FFI_TYPE_STRUCT, el_%s};" % (t.name, t.name))
        conds = " && ".join("a->f%d == b->f%d" % (j, j) for j in range(len(t.fields)))
        out.append(
            "static inline int eq_%s(const struct %s *a, const struct %s *b) { return %s; }"
            % (t.name, t.name, t.name, conds)
        )
        out.append("")


def emit_handler(out, s):
    """The closure's handler: ABI-independent."""
    out.append("/* %s */" % s.text())
    out.append("static void h%d(ffi_cif *cif, void *ret, void **args, void *ud)" % s.index)
    out.append("{")
    out.append("    struct ctx *c = handler_enter(cif, ud);")
    for i, t in enumerate(s.args):
        out.append("    {")
        out.append("        %s e = %s;" % (t.c, arg_value(s, i)))
        out.append("        if (!(%s))" % equal(t, "*(%s *)args[%d]" % (t.c, i), "e"))
        out.append("            bad_value(c, %d, args[%d], &e, %s);" % (i, i, sig_bytes(t)))
        out.append("    }")
    r = s.ret
    if r.kind == "void":
        out.append("    (void)ret;")
    elif r.kind == "int" and r.size < 4:
        # libffi: a small integer return is written as a whole ffi_arg.
        out.append("    *(%s *)ret = %s;" % ("ffi_sarg" if r.signed else "ffi_arg", ret_value(s)))
    else:
        out.append("    *(%s *)ret = %s;" % (r.c, ret_value(s)))
    if not s.args:
        out.append("    (void)args;")
        out.append("    (void)c;")
    out.append("}")
    out.append("")


def role_type(s, role):
    if role[0] == "arg":
        return s.args[role[1]].c
    if role[0] == "sret":
        return "void *"
    return "uint32_t"


def role_value(role):
    if role[0] == "arg":
        return "a%d" % role[1]
    if role[0] == "sret":
        return "sp"
    return "0x%08xu" % (0xDEAD0000 + role[1])


def small_uint(size):
    return {1: "uint8_t", 2: "uint16_t", 4: "uint32_t"}[size]


class Decl:
    """The GCC function type of a case: its return type and parameters."""

    def __init__(self, s, abi, lay):
        self.attr = CONV[abi].attr
        if CONV[abi].sret == "first":
            # A C convention: the signature as it is.
            self.ret = s.ret.c
            self.params = [("arg", i) for i in range(s.nfixed)]
            self.variadic = s.variadic
            return
        self.variadic = False
        if lay.ret == "sret":
            self.ret = "void *"
        elif lay.ret == "small":
            self.ret = small_uint(s.ret.size)
        else:
            self.ret = s.ret.c
        self.params = []
        if abi == "REGISTER":
            for n, reg in enumerate(["eax", "edx", "ecx"]):
                self.params.append(lay.reg.get(reg, ("dummy", n)))
        self.params += lay.stack

    def ptype(self, s, name):
        """The pointer-to-function type, declaring `name`."""
        ps = ", ".join(role_type(s, r) for r in self.params)
        if self.variadic:
            ps += ", ..."
        return "%s (__attribute__((%s)) *%s)(%s)" % (self.ret, self.attr, name, ps or "void")


def emit_locals(out, s, indent="    "):
    for i, t in enumerate(s.args):
        out.append("%s%s a%d = %s;" % (indent, t.c, i, arg_value(s, i)))


def emit_gcc(out, s, abi, lay, decl):
    n = "%s_%d" % (abi, s.index)
    out.append("static void gcc_%s(struct ctx *c, void *code)" % n)
    out.append("{")
    out.append("    %s = (void *)code;" % decl.ptype(s, "f"))
    emit_locals(out, s)
    r = s.ret
    if r.kind != "void":
        out.append("    %s e = %s;" % (r.c, ret_value(s)))
    call_args = [role_value(p) for p in decl.params]
    if decl.variadic:
        call_args += ["a%d" % i for i in range(s.nfixed, len(s.args))]
    call = "f(%s)" % ", ".join(call_args)
    # The stack pointer around the call: built with
    # -maccumulate-outgoing-args it stays put in the function's body (GCC
    # re-subtracts what a callee pops), so a difference is what the callee
    # popped wrong; the frame pointer keeps the rest of the function right.
    before = "    uint32_t sp0 = stack_pointer();"
    after = "    gcc_check_sp(c, sp0, stack_pointer());"
    if lay.ret == "sret" and CONV[abi].sret == "last":
        out.append("    %s got;" % r.c)
        out.append("    void *sp = &got;")
        out.append("    memset(&got, 0x5a, sizeof got);")
        out.append(before)
        out.append("    (void)%s;" % call)
        out.append(after)
    elif lay.ret == "small":
        out.append(before)
        out.append("    %s bits = %s;" % (decl.ret, call))
        out.append(after)
        out.append("    %s got;" % r.c)
        out.append("    memcpy(&got, &bits, sizeof got);")
    elif r.kind == "void":
        out.append(before)
        out.append("    %s;" % call)
        out.append(after)
    else:
        out.append(before)
        out.append("    %s got = %s;" % (r.c, call))
        out.append(after)
    if r.kind != "void":
        out.append("    if (!(%s))" % equal(r, "got", "e"))
        out.append("        bad_value(c, -1, &got, &e, %s);" % sig_bytes(r))
    out.append("}")
    out.append("")


def emit_raw(out, s, abi, lay):
    n = "%s_%d" % (abi, s.index)
    out.append("static void raw_%s(struct ctx *c, void *fn, unsigned misalign)" % n)
    out.append("{")
    emit_locals(out, s)
    r = s.ret
    if r.kind != "void":
        out.append("    %s e = %s;" % (r.c, ret_value(s)))
    if lay.ret == "sret":
        out.append("    %s got;" % r.c)
        out.append("    void *sp = &got;")
        out.append("    memset(&got, 0x5a, sizeof got);")
    out.append("    raw_begin();")
    for reg in ["eax", "edx", "ecx"]:
        if reg in lay.reg:
            role = lay.reg[reg]
            v = role_value(role)
            out.append("    raw_reg(&i386_raw.%s, &%s, sizeof %s);" % (reg, v, v))
    for role in reversed(lay.stack):
        v = role_value(role)
        out.append("    raw_push(&%s, sizeof %s);" % (v, v))
    out.append("    raw_run(c, fn, misalign, %d, %d);" % (lay.pop, 1 if lay.ret == "x87" else 0))
    if lay.ret == "eax":
        if r.kind == "ptr":
            out.append("    raw_ret_eax(c, (uint32_t)e, 4);")
        else:
            # Extended to 32 bits, as libffi's closures do.
            out.append(
                "    raw_ret_eax(c, (uint32_t)(%s)e, %d);" % ("int32_t" if r.signed else "uint32_t", r.size)
            )
    elif lay.ret == "edx:eax":
        if r.kind == "int":
            out.append("    raw_ret_eax_edx(c, (uint64_t)e);")
        else:
            out.append("    raw_ret_bytes(c, &e, sizeof e);")
    elif lay.ret == "x87":
        out.append("    raw_ret_x87(c, e);")
    elif lay.ret == "small":
        out.append("    raw_ret_bytes(c, &e, sizeof e);")
    elif lay.ret == "sret":
        out.append("    if (!(%s))" % equal(r, "got", "e"))
        out.append("        bad_value(c, -1, &got, &e, sizeof got);")
        if CONV[abi].sret == "first":
            # The C conventions return the hidden pointer in eax.
            out.append("    raw_ret_echo(c, sp);")
    if r.kind == "void":
        out.append("    (void)c;")
    out.append("}")
    out.append("")


def emit_ref(out, s, abi, lay, decl):
    """A GCC-compiled callee of the gcc caller's type: the raw image sent to
    it must arrive as GCC expects it."""
    n = "%s_%d" % (abi, s.index)
    params = []
    for j, role in enumerate(decl.params):
        params.append("%s p%d" % (role_type(s, role), j))
    ps = ", ".join(params)
    if decl.variadic:
        ps += ", ..."
    out.append(
        "static __attribute__((%s, noinline)) %s ref_%s(%s)" % (decl.attr, decl.ret, n, ps or "void")
    )
    out.append("{")
    out.append("    struct ctx *c = ref_enter();")
    got = {}
    for j, role in enumerate(decl.params):
        if role[0] == "arg":
            got[role[1]] = "p%d" % j
        elif role[0] == "dummy":
            out.append("    (void)p%d;" % j)
    if decl.variadic:
        out.append("    va_list ap;")
        out.append("    va_start(ap, p%d);" % (len(decl.params) - 1))
        for i in range(s.nfixed, len(s.args)):
            out.append("    %s v%d = va_arg(ap, %s);" % (s.args[i].c, i, s.args[i].c))
            got[i] = "v%d" % i
        out.append("    va_end(ap);")
    for i, t in enumerate(s.args):
        out.append("    {")
        out.append("        %s e = %s;" % (t.c, arg_value(s, i)))
        out.append("        if (!(%s))" % equal(t, got[i], "e"))
        out.append("            bad_value(c, %d, &%s, &e, %s);" % (i, got[i], sig_bytes(t)))
        out.append("    }")
    if not s.args:
        out.append("    (void)c;")
    r = s.ret
    if r.kind == "void":
        pass
    elif lay.ret == "sret" and CONV[abi].sret == "last":
        sp = "p%d" % decl.params.index(("sret",))
        out.append("    *(%s *)%s = %s;" % (r.c, sp, ret_value(s)))
        out.append("    return %s;" % sp)
    elif lay.ret == "small":
        out.append("    %s v = %s;" % (r.c, ret_value(s)))
        out.append("    %s bits;" % decl.ret)
        out.append("    memcpy(&bits, &v, sizeof bits);")
        out.append("    return bits;")
    else:
        out.append("    return %s;" % ret_value(s))
    out.append("}")
    out.append("")


def fixed_signatures():
    """The fixed cases: every integer width, pointers, int64, the floating
    types, structs by value in and out, more arguments than registers,
    none at all."""
    t = T
    S = lambda *names: [t[n] for n in names]  # noqa: E731
    sigs = []

    def add(ret, *args):
        sigs.append(Sig(t[ret], S(*args)))

    add("void")
    add("s32")
    for n in ["u8", "s8", "u16", "s16", "u32", "s32", "u64", "s64", "ptr"]:
        add(n, n)
    add("s8", "s8", "s16", "u8")
    add("u16", "u8", "u16", "s8", "s16")
    add("void", "s32")
    add("void", "s32", "s32", "s32", "s32")
    add("f32", "f32")
    add("f64", "f64")
    add("ld", "ld")
    add("f32", "f32", "f64", "ld", "s32")
    add("f64", "s32", "f64", "s32", "f32", "s32")
    add("ld", "u8", "ld", "s16", "ld")
    add("s64", "s32", "s64", "s32")
    add("s32", "s64", "s32", "s32")
    add("u64", "u64", "u64", "u32")
    add("s32", "s32", "s32", "s64", "s32")
    add("u32", "u32", "u32", "u32", "u32", "u32", "u32")
    add("s32", "u8", "s16", "s32", "s64", "f32", "f64", "ld", "ptr", "u16", "S3", "s32", "u8")
    add("ptr", "ptr", "ptr", "ptr", "ptr")
    for n in ["S1", "S2", "S3", "S4", "S5", "S6", "Sc8", "Sld", "S20", "Sp"]:
        add("s32", n)
    add("s32", "S4", "s32", "s32")
    add("s32", "S1", "s32", "s32")
    add("s32", "S4f", "s32", "s32")
    add("s32", "Sd", "s32", "s32")
    add("s32", "s32", "Sff", "s32")
    add("s32", "S8", "s32")
    add("s32", "S12", "s32", "S20")
    add("s32", "s32", "S16", "u8", "s32")
    add("void", "S3", "f64", "S5")
    add("S1")
    add("S2", "s32")
    add("S3", "s32", "s32")
    add("S4", "s32")
    add("S4f", "f32")
    add("S8", "s32", "s32")
    add("Sd", "f64")
    add("S12")
    add("S12", "s32")
    add("S12", "s32", "s32")
    add("S12", "s32", "s32", "s32")
    add("S12", "s32", "s32", "s32", "s32")
    add("S12", "s64", "s32")
    add("S12", "f64", "u8")
    add("Sld", "ld")
    add("S16", "S16", "s32")
    add("S20", "S20")
    add("S5", "u8", "S5")
    add("cf", "cf")
    add("cd", "cd", "s32")
    add("s32", "cf", "s32", "s32")
    return sigs


def variadic_signatures():
    """Variadic cifs (ffi_prep_cif_var): the cdecl conventions only (GCC
    makes a variadic stdcall function cdecl)."""
    return [
        Sig(S32, [S32, F64, S64, S32], nfixed=1),
        Sig(F64, [PTR, S32, F64], nfixed=1),
        Sig(T["S12"], [S32, S32, T["S3"], F64], nfixed=2),
    ]


def random_signatures(rng, count):
    pool = [t for t in SCALARS + STRUCTS]
    rets = [VOID] + pool
    sigs = []
    for _ in range(count):
        n = rng.choice([0, 1, 2, 3, 4, 5, 6, 8, 10, 13, 16])
        # Weight the small integers and pointers: they decide the registers.
        args = [
            rng.choice([U8, S8, U16, S16, U32, S32, PTR]) if rng.random() < 0.5 else rng.choice(pool)
            for _ in range(n)
        ]
        sigs.append(Sig(rng.choice(rets), args))
    return sigs


def generate(per_abi, header_comment):
    """per_abi: abi -> list of Sig. Signatures shared by several ABIs share
    their handler."""
    out = [header_comment, '#include "i386_callers.h"', "", "#include <stdarg.h>", "#include <string.h>", ""]
    emit_types(out)
    handlers = {}
    for abi in ABIS:
        for s in per_abi[abi]:
            if id(s) not in handlers:
                s.index = len(handlers)
                handlers[id(s)] = s
                emit_handler(out, s)
    entries = []
    for abi in ABIS:
        for s in per_abi[abi]:
            lay = Layout(abi, s.args, s.ret)
            decl = Decl(s, abi, lay)
            emit_gcc(out, s, abi, lay, decl)
            emit_raw(out, s, abi, lay)
            emit_ref(out, s, abi, lay, decl)
            entries.append((abi, s))
    out.append("static ffi_type *no_args[1];")
    for k, (abi, s) in enumerate(entries):
        if s.args and not hasattr(s, "atypes_emitted"):
            out.append("static ffi_type *at%d[] = {%s};" % (s.index, ", ".join(a.ffi for a in s.args)))
            s.atypes_emitted = True
    out.append("")
    out.append("const struct ccase cases[] = {")
    for k, (abi, s) in enumerate(entries):
        n = "%s_%d" % (abi, s.index)
        out.append(
            '    {%d, FFI_%s, "FFI_%s", "%s", %d, %d, %d, %s, %s, h%d, gcc_%s, raw_%s, (void *)ref_%s},'
            % (
                k,
                abi,
                abi,
                s.text(),
                len(s.args),
                s.nfixed,
                int(s.variadic),
                "at%d" % s.index if s.args else "no_args",
                s.ret.ffi,
                s.index,
                n,
                n,
                n,
            )
        )
    out.append("};")
    out.append("const unsigned ncases = sizeof cases / sizeof cases[0];")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--random", type=int, metavar="SEED", help="random signatures from SEED")
    ap.add_argument("--count", type=int, default=40, help="random signatures per ABI (default 40)")
    a = ap.parse_args()
    if a.random is None:
        fixed = fixed_signatures()
        var = variadic_signatures()
        per_abi = {abi: fixed + (var if abi in ("SYSV", "MS_CDECL") else []) for abi in ABIS}
        head = (
            "/* Generated by compat/c/gen_i386_callers.py; do not edit (tests/i386_callers.rs\n"
            " * checks that it is current). The fixed cases of the i386 callers:\n"
            " * compat/c/i386_callers.h. */"
        )
    else:
        rng = random.Random(a.random)
        per_abi = {abi: random_signatures(rng, a.count) for abi in ABIS}
        head = "/* Generated by compat/c/gen_i386_callers.py --random %d --count %d. */" % (
            a.random,
            a.count,
        )
    sys.stdout.write(generate(per_abi, head))


if __name__ == "__main__":
    main()
