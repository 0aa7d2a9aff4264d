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
/* Bytes per code slot: the register-free slot is 31 bytes (table.S). */
#define SLOT_SIZE 32
/* A group is one 4 KiB page: 127 slots and, in the last 32 bytes, the PC
 * thunk every slot of the page calls (a balanced call/ret: i386 has no
 * PC-relative addressing). */
#define SLOTS_PER_GROUP 127
#define GROUP_BYTES 4096
/* Every slot has its own record (an ffi_closure, CLOSURE_SIZE bytes) at a
 * fixed distance from its code. */
#define REC_STRIDE 32
/* Slots in the in-image pool: 8 groups (code in .text, records in .bss). */
#define IMAGE_SLOTS 1016
/* Slots in the mappable template: 128 groups = 512 KiB, a multiple of the
 * largest page size we support. Each mapped copy is one VMA. */
#define TEMPLATE_SLOTS 16256
#define TEMPLATE_ALIGN 65536
/* Record bytes per template copy, rounded up to 64 KiB (16256 * 32 =
 * 520192 used); copies are mapped this far apart. */
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
 * words (scratch: the entry address it jumped through; the header). */
#define SLOT_WORDS_BYTES 8
