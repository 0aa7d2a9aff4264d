/*
 * x86_64 layout constants shared by the assembly and the Rust runtime.
 *
 * This header is the one place these numbers are written. build.rs parses
 * every `#define NAME value` line into Rust constants (src/layout.rs includes
 * them), and the runtime const-asserts its #[repr(C)] structs against them;
 * build.rs also checks the header, ffi_closure, FRAME_* and RET_KIND_*
 * values against statictramp-abi (x86_64::ASM_CONSTANTS).
 */

/* ---- trampoline slots ------------------------------------------------- */
/* Bytes per code slot. */
#define SLOT_SIZE 16
/* Every slot has its own closure record (an ffi_closure, CLOSURE_SIZE
 * bytes) at a fixed distance: the slot computes the record's address
 * PC-relatively (lea, no load) and jumps through the header at its start.
 * A live closure costs 16 bytes of code and its 56-byte record. */
#define REC_STRIDE 56
/* Slots come in groups of SLOTS_PER_GROUP, GROUP_BYTES apart (an
 * architecture that needs a per-page helper beside its slots, as i386's PC
 * thunk, puts it in the rest of each group). x86_64 needs none. */
#define SLOTS_PER_GROUP 1
#define GROUP_BYTES 16
/* Slots in the in-image pool (code in .text, records in .bss). */
#define IMAGE_SLOTS 1024
/* Slots in the mappable template; its size (SLOT_SIZE * TEMPLATE_SLOTS =
 * 512 KiB) is a multiple of the largest page size we support (64 KiB).
 * Each mapped copy is one VMA. */
#define TEMPLATE_SLOTS 32768
#define TEMPLATE_ALIGN 65536
/* Records of one template copy: TEMPLATE_SLOTS * REC_STRIDE = 1.75 MiB, a
 * multiple of 64 KiB. Copies are mapped RECORDS_BYTES apart (their code is
 * followed by a released hole), so that the records of all copies of a
 * region are one contiguous read-write mapping. */
#define RECORDS_BYTES 1835008
/* Copies per mapped region. */
#define REGION_COPIES 128
/* Distance from a copy to its records: REGION_COPIES * RECORDS_BYTES
 * (224 MiB). A region is [copies, RECORDS_BYTES apart: REC_DIST bytes]
 * [records: REC_DIST bytes]; slot j of a copy uses the record at
 * (copy + REC_DIST + j * REC_STRIDE). */
#define REC_DIST 234881024

/* ---- closure header: the first bytes of ffi_closure.tramp[32] --------- */
/* Three words: the entry the slot jumps through, the compiled plan, and
 * the ffi_closure the entry serves (src/record.rs; statictramp-abi's
 * RecordLayout, checked by const assertions on both). The slot computes
 * its record's address into r10 and jumps through HDR_ENTRY; closures
 * prepared on foreign memory get a separate header. */
#define HDR_ENTRY 0
#define HDR_PLAN 8
#define HDR_CLOSURE 16
#define HDR_SIZE 24

/* ---- ffi_closure (libffi include/ffi.h.in, x86_64 FFI_TRAMPOLINE_SIZE 32,
 *      src/x86/ffitarget.h) --------------------------------------------- */
#define CLOSURE_CIF 32
#define CLOSURE_FUN 40
#define CLOSURE_USER_DATA 48
#define CLOSURE_SIZE 56

/* ---- compiled plan (src/arch/x86_64/entries.rs `EntryData`), read by the
 *      entries ------------------------------------------------------------ */
#define PLAN_SCRATCH 0
#define PLAN_NARGS 4
#define PLAN_RET_BUF 8
#define PLAN_FAST_RET 12
#define PLAN_FAST_SAVE 16
/* Absolute address of the fast entry's return sequence for this plan
 * (statictramp_fast_ret_table + its entry for PLAN_FAST_RET). */
#define PLAN_FAST_TARGET 24
#define PLAN_FAST_OFFS 32
/* Most arguments the fast entry handles (in registers or on the stack). */
#define FAST_MAX_ARGS 16

/* Fast-entry register saves (PLAN_FAST_SAVE bits): only the register files
 * some argument (or the hidden return pointer) lives in are saved. */
#define FAST_SAVE_GPR 1
#define FAST_SAVE_SSE 2

/* Fast-entry return codes (PLAN_FAST_RET): an index into the entry's jump
 * table, so keep them dense. */
#define FAST_RET_VOID 0
#define FAST_RET_U8 1
#define FAST_RET_S8 2
#define FAST_RET_U16 3
#define FAST_RET_S16 4
#define FAST_RET_U32 5
#define FAST_RET_S32 6
#define FAST_RET_I64 7
#define FAST_RET_FLOAT 8
#define FAST_RET_DOUBLE 9
/* Two eightbytes of the return buffer: rax:rdx, xmm0:xmm1, rax:xmm0, xmm0:rax. */
#define FAST_RET_RAX_RDX 10
#define FAST_RET_XMM0_XMM1 11
#define FAST_RET_RAX_XMM0 12
#define FAST_RET_XMM0_RAX 13
/* Returned in memory: rvalue is the caller's hidden pointer (saved rdi),
 * handed back in rax. */
#define FAST_RET_MEM 14
#define FAST_RET_COUNT 15
/* Scratch the no-argument void entry reserves (return buffer, 16-aligned). */
#define VOID0_SCRATCH 16
/* The register-argument entries (statictramp_entry_sysv_regs0..6): a
 * fixed frame of REGS_SCRATCH bytes below the saved rbp. Offsets from rsp:
 * avalue[6] at 0, the saved rdi..r9 at REGS_SAVED, a 16-byte return
 * buffer at REGS_RET_BUF, the return sequence's address at REGS_TARGET. */
#define REGS_SCRATCH 128
#define REGS_SAVED 48
#define REGS_RET_BUF 96
#define REGS_TARGET 112
/* Most arguments a register-argument entry takes (rdi, rsi, rdx, rcx, r8,
 * r9). */
#define REGS_MAX_ARGS 6

/* ---- entry frame (statictramp-abi src/x86_64/frame.rs) ---------------- */
#define FRAME_GPR 0
#define FRAME_SSE 48
#define FRAME_RET_RAX 112
#define FRAME_RET_RDX 120
#define FRAME_RET_XMM0 128
#define FRAME_RET_XMM1 136
#define FRAME_STACK_PTR 144
#define FRAME_SIZE 160

/* Dispatcher return codes (statictramp-abi RetKind, checked by build.rs). */
#define RET_KIND_REGS 0
#define RET_KIND_X87 1
#define RET_KIND_X87_PAIR 2

/* Win64 entry: rsi, rdi and xmm6..xmm15 are callee-saved there but not in
 * the SysV code it calls; they are saved above the frame. */
#define WIN64_SAVE_RSI 160
#define WIN64_SAVE_RDI 168
#define WIN64_SAVE_XMM6 176
#define WIN64_FRAME_SIZE 336
