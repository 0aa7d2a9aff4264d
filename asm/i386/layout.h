/*
 * i386 layout constants shared by the assembly and the Rust runtime.
 *
 * This header is the one place these numbers are written. build.rs parses
 * every `#define NAME value` line into Rust constants (src/layout.rs), the
 * runtime const-asserts its #[repr(C)] structs against them, and build.rs
 * checks the header, ffi_closure, FRAME_* and RET_KIND_* values against
 * statictramp-abi (i386::ASM_CONSTANTS).
 */

/* ---- trampoline slots ------------------------------------------------- */
/* Bytes per code slot: the register-free slot is 26 bytes (table.S). */
#define SLOT_SIZE 32
/* A group is one 4 KiB page of slots; each slot carries its own PC thunk
 * (i386 has no PC-relative addressing), so a page holds 128. */
#define SLOTS_PER_GROUP 128
#define GROUP_BYTES 4096
/* Every slot has its own record (an ffi_closure, CLOSURE_SIZE bytes) at a
 * fixed distance from its code. */
#define REC_STRIDE 32
/* Slots in the in-image pool: 8 groups (code in .text, records in .bss). */
#define IMAGE_SLOTS 1024
/* Slots in the mappable template: 128 groups = 512 KiB, a multiple of the
 * largest page size we support. Each mapped copy is one VMA. */
#define TEMPLATE_SLOTS 16384
#define TEMPLATE_ALIGN 65536
/* Record bytes per template copy (16384 * 32, a multiple of 64 KiB);
 * copies are mapped this far apart. */
#define RECORDS_BYTES 524288
/* Copies per mapped region; a region is 2 * REC_DIST = 128 MiB of address
 * space (a 32-bit process has little). */
#define REGION_COPIES 128
/* Distance from a copy to its records: REGION_COPIES * RECORDS_BYTES. */
#define REC_DIST 67108864

/* ---- closure header: the first 12 bytes of ffi_closure.tramp[16] ------ */
#define HDR_ENTRY 0
#define HDR_PLAN 4
#define HDR_CLOSURE 8
#define HDR_SIZE 12

/* ---- ffi_closure (libffi include/ffi.h.in, i386 FFI_TRAMPOLINE_SIZE 16,
 *      src/x86/ffitarget.h:150; aligned(8): 28 -> 32 bytes) ------------ */
#define CLOSURE_CIF 16
#define CLOSURE_FUN 20
#define CLOSURE_USER_DATA 24
#define CLOSURE_SIZE 32

/* ---- compiled plan (src/arch/i386/mod.rs `EntryData`) ------------------ */
#define PLAN_SCRATCH 0
/* Bytes of the caller's stack arguments the callee pops (ret $N). */
#define PLAN_POP 4
/* Fast entries (entry_fast.S): the number of arguments, where rvalue is
 * (an ebp-relative offset, int32, of the word holding it), the return
 * sequence's address, and each argument's ebp-relative address (int16). */
#define PLAN_NARGS 8
#define PLAN_FAST_RVALUE 12
#define PLAN_FAST_TARGET 16
#define PLAN_FAST_OFFS 20
#define FAST_MAX_ARGS 16
/* statictramp_entry_i386_fastN exists for N = 0 .. FAST_UNROLLED_MAX. */
#define FAST_UNROLLED_MAX 4

/* ---- fast entry frame (entry_fast.S) ---------------------------------- */
/* Bytes below ebp: the saved argument registers and the buffer pointer. */
#define FAST_SAVED_ECX 4
#define FAST_SAVED_EDX 8
#define FAST_SAVED_EAX 12
#define FAST_BUF_PTR 16
/* Bytes reserved below ebp before aligning: the four locals above and,
 * below them, the 16-byte return buffer and avalue[FAST_MAX_ARGS]. */
#define FAST_RESERVE 96
/* At the handler call, from esp: its four arguments at 0, the return
 * buffer at FAST_RET_BUF, avalue[] at FAST_AVALUE. */
#define FAST_RET_BUF 16
#define FAST_AVALUE 32
/* Return codes (statictramp_i386_fast_ret_table order). */
#define FAST_RET_VOID 0
#define FAST_RET_U8 1
#define FAST_RET_S8 2
#define FAST_RET_U16 3
#define FAST_RET_S16 4
#define FAST_RET_I32 5
#define FAST_RET_I64 6
#define FAST_RET_FLOAT 7
#define FAST_RET_DOUBLE 8
#define FAST_RET_LDOUBLE 9
#define FAST_RET_MEM 10
#define FAST_RET_COUNT 11
/* How a return sequence pops: nothing, 4 bytes (ret $4), PLAN_POP bytes. */
#define FAST_POP_NONE 0
#define FAST_POP_4 1
#define FAST_POP_N 2
#define FAST_POP_COUNT 3

/* ---- entry frame (statictramp-abi src/i386/frame.rs) ------------------ */
#define FRAME_EAX 0
#define FRAME_EDX 4
#define FRAME_ECX 8
#define FRAME_STACK_PTR 12
#define FRAME_RET_EAX 16
#define FRAME_RET_EDX 24
#define FRAME_SIZE 32

/* Dispatcher return codes (statictramp-abi RetKind). */
#define RET_KIND_REGS 0
#define RET_KIND_X87 1
#define RET_KIND_X87_FLOAT 3
#define RET_KIND_X87_DOUBLE 4

/* Bytes an entry drops besides the caller's arguments: the slot's two
 * words (the caller's eax, which the entry reloads; the header). */
#define SLOT_WORDS_BYTES 8
