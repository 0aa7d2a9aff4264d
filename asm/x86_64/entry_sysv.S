/*
 * x86_64 System V closure entries.
 *
 * Contract (both entries): reached by `jmp` from a trampoline slot with
 *   r10 = closure header (layout.h HDR_*), every argument register and the
 *   stack exactly as the caller left them (rsp = return address, so
 *   rsp % 16 == 8). They return to the caller with the return registers
 *   loaded as the psABI requires; callee-saved registers are preserved.
 *
 * Frame after the prologue (both entries):
 *
 *     rbp+16 ..          caller's stack arguments (FRAME_STACK_PTR points here)
 *     rbp+8              return address
 *     rbp+0              caller's rbp                          <- CFA - 16
 *     rbp-160 = frame    FRAME_SIZE bytes (layout.h FRAME_*):
 *                          +0   rdi rsi rdx rcx r8 r9
 *                          +48  xmm0..xmm7 (low 8 bytes)
 *                          +112 return slots rax rdx xmm0 xmm1
 *                          +144 pointer to the stack arguments
 *     frame-scratch = rsp  PLAN_SCRATCH bytes: avalue[] at rsp, gathered
 *                          arguments, the return buffer (PLAN_RET_BUF)
 *
 * Both are 16-byte aligned at every call (scratch sizes are multiples of 16).
 * The generic entry's scratch can be many pages: it is reserved page by
 * page (SUB_RSP_PROBED, stack.h) so that a stack overflow faults in the
 * guard page. The fast entry's is at most FAST_MAX_ARGS pointers and a
 * 32-byte return buffer (its plans gather nothing), well under a page.
 * CFI: CFA = rbp + 16 after the prologue, so debuggers and C++ exceptions
 * thrown by the handler unwind through the entry to the caller.
 */
#include "../common.h"
#include "layout.h"
#include "stack.h"

/* The Rust dispatcher (src/dispatch.rs), called directly: hidden, so the
 * linked symbol is neither exported nor interposable (the visibility of
 * any reference applies to the definition). */
	.hidden	statictramp_dispatch

/* Saves the SysV argument registers into the frame at %rsp. */
.macro SAVE_ARGS
	movq	%rdi, FRAME_GPR+0(%rsp)
	movq	%rsi, FRAME_GPR+8(%rsp)
	movq	%rdx, FRAME_GPR+16(%rsp)
	movq	%rcx, FRAME_GPR+24(%rsp)
	movq	%r8,  FRAME_GPR+32(%rsp)
	movq	%r9,  FRAME_GPR+40(%rsp)
	movq	%xmm0, FRAME_SSE+0(%rsp)
	movq	%xmm1, FRAME_SSE+8(%rsp)
	movq	%xmm2, FRAME_SSE+16(%rsp)
	movq	%xmm3, FRAME_SSE+24(%rsp)
	movq	%xmm4, FRAME_SSE+32(%rsp)
	movq	%xmm5, FRAME_SSE+40(%rsp)
	movq	%xmm6, FRAME_SSE+48(%rsp)
	movq	%xmm7, FRAME_SSE+56(%rsp)
.endm

/* push rbp; mov rsp, rbp; reserve the frame — with CFI. */
.macro PROLOGUE size
	endbr64
	pushq	%rbp
	.cfi_def_cfa_offset 16
	.cfi_offset %rbp, -16
	movq	%rsp, %rbp
	.cfi_def_cfa_register %rbp
	subq	$\size, %rsp
.endm

/* leave; ret — keeping the CFI of the code that follows intact. */
.macro RETURN
	.cfi_remember_state
	leave
	.cfi_def_cfa %rsp, 8
	ret
	.cfi_restore_state
.endm

	.text

/*
 * statictramp_entry_sysv: any System V signature, table driven.
 *   statictramp_dispatch(frame: rdi, header: rsi, scratch: rdx) -> eax
 * does the work (src/dispatch.rs); eax says how to load the return value.
 */
ENTRY(statictramp_entry_sysv)
	.cfi_startproc
	PROLOGUE FRAME_SIZE
	SAVE_ARGS
	leaq	16(%rbp), %rax			/* first stack argument */
	movq	%rax, FRAME_STACK_PTR(%rsp)
	movq	%rsp, %rdi			/* arg 1: frame */
	movq	%r10, %rsi			/* arg 2: header */
	movq	HDR_PLAN(%r10), %rax
	movl	PLAN_SCRATCH(%rax), %eax	/* multiple of 16, up to ~33 KiB */
	SUB_RSP_PROBED %rax			/* stack.h: page by page */
	movq	%rsp, %rdx			/* arg 3: scratch */
	call	statictramp_dispatch
	leaq	-FRAME_SIZE(%rbp), %rcx		/* frame */
	cmpl	$RET_KIND_REGS, %eax
	jne	1f
	movq	FRAME_RET_RAX(%rcx), %rax
	movq	FRAME_RET_RDX(%rcx), %rdx
	movq	FRAME_RET_XMM0(%rcx), %xmm0
	movq	FRAME_RET_XMM1(%rcx), %xmm1
	RETURN
1:	movq	FRAME_RET_RAX(%rcx), %rcx	/* x87: address of the return buffer */
	cmpl	$RET_KIND_X87, %eax
	jne	2f
	fldt	(%rcx)				/* long double -> st(0) */
	RETURN
2:	fldt	16(%rcx)			/* complex long double: imag -> st(1) */
	fldt	(%rcx)				/* real -> st(0) */
	RETURN
	.cfi_endproc
END(statictramp_entry_sysv)

/*
 * statictramp_entry_sysv_fast: signatures whose every argument sits whole
 * either in the saved registers or on the caller's stack (no gathering),
 * with at most FAST_MAX_ARGS arguments, and whose return is void, one
 * scalar, two whole eightbytes, or in memory (PLAN_FAST_RET). No Rust on
 * the path:
 *   - only the register files named by PLAN_FAST_SAVE are saved;
 *   - avalue[i] = rbp + PLAN_FAST_OFFS[i] (int16: negative = in the frame,
 *     >= 16 = on the caller's stack);
 *   - rvalue = scratch + PLAN_RET_BUF, or the hidden pointer (saved rdi);
 *   - fun(cif: rdi, rvalue: rsi, avalue: rdx, user_data: rcx) is called;
 *   - the return registers are loaded by the return sequence at
 *     PLAN_FAST_TARGET (chosen at prep from statictramp_fast_ret_table).
 * Across the call the frame's return slots hold FRAME_RET_RAX = that
 * address and FRAME_RET_RDX = rvalue.
 */
ENTRY(statictramp_entry_sysv_fast)
	.cfi_startproc
	PROLOGUE FRAME_SIZE
	movq	HDR_PLAN(%r10), %r11
	testb	$FAST_SAVE_GPR, PLAN_FAST_SAVE(%r11)
	jz	1f
	movq	%rdi, FRAME_GPR+0(%rsp)
	movq	%rsi, FRAME_GPR+8(%rsp)
	movq	%rdx, FRAME_GPR+16(%rsp)
	movq	%rcx, FRAME_GPR+24(%rsp)
	movq	%r8,  FRAME_GPR+32(%rsp)
	movq	%r9,  FRAME_GPR+40(%rsp)
1:	testb	$FAST_SAVE_SSE, PLAN_FAST_SAVE(%r11)
	jz	2f
	movq	%xmm0, FRAME_SSE+0(%rsp)
	movq	%xmm1, FRAME_SSE+8(%rsp)
	movq	%xmm2, FRAME_SSE+16(%rsp)
	movq	%xmm3, FRAME_SSE+24(%rsp)
	movq	%xmm4, FRAME_SSE+32(%rsp)
	movq	%xmm5, FRAME_SSE+40(%rsp)
	movq	%xmm6, FRAME_SSE+48(%rsp)
	movq	%xmm7, FRAME_SSE+56(%rsp)
2:	movl	PLAN_SCRATCH(%r11), %eax	/* < one page: no probe */
	subq	%rax, %rsp			/* avalue[] at rsp */
	movl	PLAN_NARGS(%r11), %ecx
	testl	%ecx, %ecx
	jz	4f
3:	movswq	PLAN_FAST_OFFS-2(%r11,%rcx,2), %rdi	/* rbp-relative offset of argument i-1 */
	addq	%rbp, %rdi
	movq	%rdi, -8(%rsp,%rcx,8)		/* avalue[i-1] */
	decl	%ecx
	jnz	3b
4:	movq	PLAN_FAST_TARGET(%r11), %rax
	movq	%rax, -FRAME_SIZE+FRAME_RET_RAX(%rbp)	/* where to go after the call */
	movl	PLAN_RET_BUF(%r11), %esi
	addq	%rsp, %rsi			/* rvalue = scratch + ret_buf */
	cmpl	$FAST_RET_MEM, PLAN_FAST_RET(%r11)
	jne	5f
	movq	-FRAME_SIZE+FRAME_GPR+0(%rbp), %rsi	/* rvalue = hidden pointer (rdi) */
5:	movq	%rsi, -FRAME_SIZE+FRAME_RET_RDX(%rbp)
	movq	HDR_CLOSURE(%r10), %rax
	movq	CLOSURE_CIF(%rax), %rdi
	movq	%rsp, %rdx			/* avalue */
	movq	CLOSURE_USER_DATA(%rax), %rcx
	call	*CLOSURE_FUN(%rax)
	movq	-FRAME_SIZE+FRAME_RET_RDX(%rbp), %rsi
	jmp	*-FRAME_SIZE+FRAME_RET_RAX(%rbp)	/* one of the sequences below */
	/* Return sequences: load the return value the way libffi's unix64
	 * closure does, reading exactly the type's size and extending it. */
.Lfast_ret_void:
	endbr64
	RETURN
.Lfast_ret_u8:
	endbr64
	movzbl	(%rsi), %eax
	RETURN
.Lfast_ret_s8:
	endbr64
	movsbq	(%rsi), %rax
	RETURN
.Lfast_ret_u16:
	endbr64
	movzwl	(%rsi), %eax
	RETURN
.Lfast_ret_s16:
	endbr64
	movswq	(%rsi), %rax
	RETURN
.Lfast_ret_u32:
	endbr64
	movl	(%rsi), %eax
	RETURN
.Lfast_ret_s32:
	endbr64
	movslq	(%rsi), %rax
	RETURN
.Lfast_ret_i64:
	endbr64
	movq	(%rsi), %rax
	RETURN
.Lfast_ret_float:
	endbr64
	movss	(%rsi), %xmm0
	RETURN
.Lfast_ret_double:
	endbr64
	movsd	(%rsi), %xmm0
	RETURN
.Lfast_ret_rax_rdx:
	endbr64
	movq	(%rsi), %rax
	movq	8(%rsi), %rdx
	RETURN
.Lfast_ret_xmm0_xmm1:
	endbr64
	movsd	(%rsi), %xmm0
	movsd	8(%rsi), %xmm1
	RETURN
.Lfast_ret_rax_xmm0:
	endbr64
	movq	(%rsi), %rax
	movsd	8(%rsi), %xmm0
	RETURN
.Lfast_ret_xmm0_rax:
	endbr64
	movsd	(%rsi), %xmm0
	movq	8(%rsi), %rax
	RETURN
.Lfast_ret_mem:
	endbr64
	movq	%rsi, %rax			/* the hidden pointer, as the psABI requires */
	RETURN
	.cfi_endproc
END(statictramp_entry_sysv_fast)

	.section .rodata.statictramp_fast_ret, "a", @progbits
	.balign 4
/* Offsets from the table to each return sequence, by FAST_RET_* code; read
 * by src/plan.rs to fill PLAN_FAST_TARGET. */
	.globl	statictramp_fast_ret_table
	.hidden	statictramp_fast_ret_table
	.type	statictramp_fast_ret_table, @object
statictramp_fast_ret_table:
.Lfast_ret_table:
	.long	.Lfast_ret_void - .Lfast_ret_table
	.long	.Lfast_ret_u8 - .Lfast_ret_table
	.long	.Lfast_ret_s8 - .Lfast_ret_table
	.long	.Lfast_ret_u16 - .Lfast_ret_table
	.long	.Lfast_ret_s16 - .Lfast_ret_table
	.long	.Lfast_ret_u32 - .Lfast_ret_table
	.long	.Lfast_ret_s32 - .Lfast_ret_table
	.long	.Lfast_ret_i64 - .Lfast_ret_table
	.long	.Lfast_ret_float - .Lfast_ret_table
	.long	.Lfast_ret_double - .Lfast_ret_table
	.long	.Lfast_ret_rax_rdx - .Lfast_ret_table
	.long	.Lfast_ret_xmm0_xmm1 - .Lfast_ret_table
	.long	.Lfast_ret_rax_xmm0 - .Lfast_ret_table
	.long	.Lfast_ret_xmm0_rax - .Lfast_ret_table
	.long	.Lfast_ret_mem - .Lfast_ret_table
	.if (. - .Lfast_ret_table) != FAST_RET_COUNT * 4
	.error "fast return table does not match FAST_RET_COUNT"
	.endif
	.size	statictramp_fast_ret_table, . - statictramp_fast_ret_table
	.text

/*
 * statictramp_entry_sysv_void0: void (void). Nothing to save and no
 * arguments: calls fun(cif, rvalue = a scratch buffer, avalue = an empty
 * array (non-NULL), user_data) and returns.
 *
 *     rbp+8              return address
 *     rbp+0              caller's rbp                          <- CFA - 16
 *     rbp-16 = rsp       VOID0_SCRATCH bytes: rvalue buffer, also avalue
 */
ENTRY(statictramp_entry_sysv_void0)
	.cfi_startproc
	PROLOGUE VOID0_SCRATCH
	movq	HDR_CLOSURE(%r10), %rax
	movq	CLOSURE_CIF(%rax), %rdi
	movq	%rsp, %rsi			/* rvalue */
	movq	%rsp, %rdx			/* avalue: no entries */
	movq	CLOSURE_USER_DATA(%rax), %rcx
	call	*CLOSURE_FUN(%rax)
	RETURN
	.cfi_endproc
END(statictramp_entry_sysv_void0)

/*
 * statictramp_entry_sysv_regsN, N = 0..6: signatures whose N arguments
 * are each one whole integer-class eightbyte in rdi, rsi, rdx, rcx, r8, r9
 * in that order (argument i in the i-th register), returning anything the
 * fast entry's return sequences load except in memory (PLAN_FAST_TARGET,
 * not FAST_RET_MEM). The fast entry would compute the same avalue[]; these
 * skip its save tests, offset loop and return-kind checks: one entry per
 * argument count, with the argument addresses fixed.
 *
 * Frame (REGS_* in layout.h; CFA = rbp + 16):
 *
 *     rbp+8                return address
 *     rbp+0                caller's rbp                        <- CFA - 16
 *     rsp+REGS_TARGET      address of the return sequence (kept across
 *                          the call)
 *     rsp+REGS_RET_BUF     16-byte return buffer (rvalue)
 *     rsp+REGS_SAVED       rdi rsi rdx rcx r8 r9 (the first N)
 *     rsp+0                avalue[0..N): &saved[i]
 *     rsp = rbp - REGS_SCRATCH, 16-byte aligned at the call.
 *
 * In: r10 = header. Scratch: rax. The handler gets
 * fun(cif: rdi, rvalue: rsi, avalue: rdx, user_data: rcx); the return
 * sequence gets rsi = rvalue and ends with leave; ret.
 */
.macro POINT_AT_SAVED i
	leaq	REGS_SAVED+8*\i(%rsp), %rax
	movq	%rax, 8*\i(%rsp)		/* avalue[i] = &saved[i] */
.endm
.macro REGS_ENTRY n
ENTRY(statictramp_entry_sysv_regs\n)
	.cfi_startproc
	PROLOGUE REGS_SCRATCH
	/* Save the argument registers first: rdi..rcx carry the handler's
	 * arguments below. */
	.set	.Lreg_i, 0
	.irp reg, %rdi, %rsi, %rdx, %rcx, %r8, %r9
	.if .Lreg_i < \n
	movq	\reg, REGS_SAVED+8*.Lreg_i(%rsp)	/* saved[i] */
	.endif
	.set	.Lreg_i, .Lreg_i + 1
	.endr
	.irp i, 0, 1, 2, 3, 4, 5
	.if \i < \n
	POINT_AT_SAVED \i
	.endif
	.endr
	movq	HDR_PLAN(%r10), %rax
	movq	PLAN_FAST_TARGET(%rax), %rax
	movq	%rax, REGS_TARGET(%rsp)		/* where to go after the call */
	movq	HDR_CLOSURE(%r10), %rax
	movq	CLOSURE_CIF(%rax), %rdi
	leaq	REGS_RET_BUF(%rsp), %rsi	/* rvalue */
	movq	%rsp, %rdx			/* avalue */
	movq	CLOSURE_USER_DATA(%rax), %rcx
	call	*CLOSURE_FUN(%rax)
	leaq	REGS_RET_BUF(%rsp), %rsi
	jmp	*REGS_TARGET(%rsp)		/* a fast return sequence */
	.cfi_endproc
END(statictramp_entry_sysv_regs\n)
.endm

	.if REGS_SCRATCH != REGS_TARGET + 16 || REGS_RET_BUF != REGS_SAVED + 8 * REGS_MAX_ARGS
	.error "register-entry frame layout in layout.h is inconsistent"
	.endif
	.if REGS_SAVED != 8 * REGS_MAX_ARGS || REGS_TARGET != REGS_RET_BUF + 16
	.error "register-entry frame layout in layout.h is inconsistent"
	.endif
REGS_ENTRY 0
REGS_ENTRY 1
REGS_ENTRY 2
REGS_ENTRY 3
REGS_ENTRY 4
REGS_ENTRY 5
REGS_ENTRY 6

FILE_NOTES
