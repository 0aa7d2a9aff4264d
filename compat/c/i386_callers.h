/*
 * i386_callers.h: what the i386 caller programs share. The programs test
 * libffi-style closures on i386 the way real code calls them, not through
 * libffi's ffi_call (which is wrong for several i386 conventions):
 *
 *   - i386_callers.c (written by gen_i386_callers.py: the cases; a random
 *     set of cases comes from `gen_i386_callers.py --random SEED`),
 *   - i386_callers_rt.c (this header's functions and main: one process
 *     per case and caller, the checks, the report),
 *   - i386_asm_callers.S (i386_raw_call: the hand-written caller).
 *
 * Every case is one signature under one libffi x86-32 ABI. Its closure is
 * made with the public libffi API (ffi_prep_cif, ffi_closure_alloc,
 * ffi_prep_closure_loc); the handler checks every argument and writes the
 * return value. Three callers:
 *
 *   gcc  a call through a function pointer of the matching GCC type:
 *        (with the stack pointer compared before and after the call;
 *        needs -fno-omit-frame-pointer -maccumulate-outgoing-args)
 *        cdecl, ms_abi, stdcall, fastcall, thiscall; for PASCAL
 *        `stdcall` and for REGISTER `regparm(3), stdcall` with the stack
 *        arguments declared in reverse (left-to-right pushing), which is
 *        the same stack and register layout (gen_i386_callers.py says how).
 *   asm  i386_raw_call: every register set to a known value, the stack
 *        image of the convention pushed word by word, the call, then
 *        eax/edx/st(0), the callee-saved registers, the stack pointer
 *        (callee pop), the words above the arguments, the direction flag
 *        and the x87 stack depth checked. Four times, with the stack
 *        pointer at the call 0, 4, 8 and 12 bytes below a 16-byte boundary.
 *   ref  the asm caller's image sent to a GCC-compiled callee of the gcc
 *        caller's type instead of the closure: checks the image itself
 *        (that the generator encodes what GCC does), so a closure failure
 *        under `asm` is the closure's, not the test's.
 *
 * The layout of struct i386_raw is shared with the assembly: RAW_*
 * offsets, checked by _Static_assert in i386_callers_rt.c.
 */
#ifndef I386_CALLERS_H
#define I386_CALLERS_H

/* Words the asm caller can push (the largest image of a case). */
#define RAW_MAXWORDS 128

/* struct i386_raw, byte offsets. */
#define RAW_FN 0
#define RAW_EAX 4
#define RAW_EDX 8
#define RAW_ECX 12
#define RAW_NWORDS 16
#define RAW_MISALIGN 20
#define RAW_X87 24
#define RAW_SAVED_ESP 28
#define RAW_ESP_BEFORE 32
#define RAW_OUT_EAX 36
#define RAW_OUT_EDX 40
#define RAW_OUT_ECX 44
#define RAW_OUT_EBX 48
#define RAW_OUT_ESI 52
#define RAW_OUT_EDI 56
#define RAW_OUT_EBP 60
#define RAW_OUT_ESP 64
#define RAW_OUT_EFLAGS 68
#define RAW_FSW_BEFORE 72
#define RAW_FSW_AFTER 74
#define RAW_CANARY_AT 76
#define RAW_OUT_CANARY 80
#define RAW_ST0 96
#define RAW_WORDS 108
#define RAW_SIZE (RAW_WORDS + 4 * RAW_MAXWORDS)

/* What the asm caller puts in the registers a callee must preserve, and
 * in the 16 bytes above the stack arguments. */
#define CANARY_EBX 0x0EB10EB1
#define CANARY_ESI 0x0E510E51
#define CANARY_EDI 0x0ED10ED1
#define CANARY_EBP 0x0EB90EB9
#define CANARY_STACK 0x5AC4CA5A

/* What an argument register holds when it carries no argument, and in
 * the bytes of a register or stack word an argument does not fill. */
#define GARBAGE_EAX 0xA1A1A1A1u
#define GARBAGE_EDX 0xD1D1D1D1u
#define GARBAGE_ECX 0xC1C1C1C1u
#define GARBAGE_BYTE 0xEE

#ifndef __ASSEMBLER__
#include <ffi.h>
#include <stddef.h>
#include <stdint.h>

/* The asm caller's input and output (one call at a time: the programs
 * are single-threaded). */
struct i386_raw {
    /* in */
    uint32_t fn;       /* what to call */
    uint32_t eax, edx, ecx;
    uint32_t nwords;   /* words[0] is pushed first (highest address) */
    uint32_t misalign; /* esp at the call is this many bytes below 16k */
    uint32_t x87;      /* 1: the callee returns in st(0); stored in st0 */
    uint32_t saved_esp; /* the caller's own, while all registers are canaries */
    /* out */
    uint32_t esp_before; /* esp before the first push */
    uint32_t out_eax, out_edx, out_ecx, out_ebx, out_esi, out_edi, out_ebp;
    uint32_t out_esp;
    uint32_t out_eflags;
    uint16_t fsw_before, fsw_after; /* x87 status words (TOP: bits 11-13) */
    uint32_t canary_at;             /* the address of the 16 canary bytes */
    uint32_t out_canary[4];         /* those bytes after the call */
    long double st0;
    uint32_t words[RAW_MAXWORDS];
};

extern struct i386_raw i386_raw;
/* Runs the call i386_raw describes (i386_asm_callers.S). */
void i386_raw_call(void);

/* Wrong callees for --self-test (i386_asm_callers.S). */
void i386_bad_callee_regs(void);
void i386_bad_callee_stack(void);

struct ccase;

/* One run of one case by one caller. */
struct ctx {
    const struct ccase *cs;
    const char *who; /* "gcc", "asm/4", "ref" */
    int calls;       /* calls the handler (or reference callee) saw */
    int fails;
    /* Small integer returns must come back extended to 32 bits, as
     * libffi's closures return them (a compiled callee need not). */
    int extend;
};

/* A case: one signature under one ABI (written by the generator). */
struct ccase {
    int id;
    ffi_abi abi;
    const char *abi_name;
    const char *sig;
    unsigned nargs, nfixed;
    int variadic;
    ffi_type **atypes;
    ffi_type *rtype;
    void (*fun)(ffi_cif *, void *, void **, void *);
    /* Calls `code` through a function pointer of the GCC type. */
    void (*gcc)(struct ctx *, void *code);
    /* Calls `code` with i386_raw_call; misalign: 0, 4, 8 or 12. */
    void (*raw)(struct ctx *, void *code, unsigned misalign);
    /* The GCC-compiled callee `raw` is checked against. */
    void *ref;
};

extern const struct ccase cases[];
extern const unsigned ncases;

/* The run in progress (handlers and reference callees report to it). */
extern struct ctx *cur;

/* A handler's first call: counts the call and checks user_data. */
struct ctx *handler_enter(ffi_cif *cif, void *user_data);
/* A reference callee's first call. */
struct ctx *ref_enter(void);

/* Reports a failure of the run `c` (printf format). */
void fail(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reports argument `i` (or the return value, i < 0) with both byte strings. */
void bad_value(struct ctx *c, int i, const void *got, const void *expected, size_t n);

/* The stack pointer, where the caller's code stands (a compiler barrier). */
static inline __attribute__((always_inline)) uint32_t stack_pointer(void)
{
    uint32_t sp;
    __asm__ volatile("movl %%esp, %0" : "=r"(sp) : : "memory");
    return sp;
}
/* A gcc caller's stack pointer before and after its call: equal unless the
 * callee popped another amount than the type says. */
void gcc_check_sp(struct ctx *c, uint32_t before, uint32_t after);

/* The asm caller's image: registers at their garbage, nothing pushed. */
void raw_begin(void);
/* Puts the n bytes at v in the low bytes of *reg (the rest garbage). */
void raw_reg(uint32_t *reg, const void *v, size_t n);
/* Pushes the n bytes at v as ceil(n/4) words (the last one's tail garbage),
 * so that they lie in memory as at v. */
void raw_push(const void *v, size_t n);
/* Calls `fn` with the image; checks the callee-saved registers, that the
 * callee popped `pop` bytes, the canary words, the direction flag and the
 * x87 depth (one value more iff x87). */
void raw_run(struct ctx *c, void *fn, unsigned misalign, unsigned pop, int x87);
/* Return checks after raw_run. */
/* eax: all of it if c->extend, else its low `size` bytes. */
void raw_ret_eax(struct ctx *c, uint32_t expected, size_t size);
void raw_ret_eax_edx(struct ctx *c, uint64_t expected);
void raw_ret_bytes(struct ctx *c, const void *expected, size_t n);
void raw_ret_x87(struct ctx *c, long double expected);
void raw_ret_echo(struct ctx *c, const void *sret);
#endif /* __ASSEMBLER__ */
#endif /* I386_CALLERS_H */
