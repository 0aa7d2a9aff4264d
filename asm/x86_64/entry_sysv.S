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
 * CFI: CFA = rbp + 16 after the prologue, so debuggers and C++ exceptions
 * thrown by the handler unwind through the entry to the caller.
 */
#include "../common.h"
#include "layout.h"

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
	movl	PLAN_SCRATCH(%rax), %eax	/* multiple of 16 */
	subq	%rax, %rsp
	movq	%rsp, %rdx			/* arg 3: scratch */
	call	statictramp_dispatch@PLT
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
 * statictramp_entry_sysv_fast: signatures whose every argument sits whole in
 * the frame (registers only, no gathering) and whose return is void or one
 * scalar in rax/xmm0 (PLAN_FAST_RET). No Rust on the path: the entry builds
 * avalue[] from the byte offsets at PLAN_FAST_OFFS and calls
 *   fun(cif: rdi, rvalue: rsi, avalue: rdx, user_data: rcx)
 * itself. The frame's return slots hold, across the call:
 *   FRAME_RET_RAX = the return code, FRAME_RET_RDX = rvalue.
 */
ENTRY(statictramp_entry_sysv_fast)
	.cfi_startproc
	PROLOGUE FRAME_SIZE
	SAVE_ARGS
	movq	HDR_PLAN(%r10), %r11
	movl	PLAN_SCRATCH(%r11), %eax
	subq	%rax, %rsp			/* avalue[] at rsp */
	leaq	-FRAME_SIZE(%rbp), %rdx		/* frame */
	movl	PLAN_NARGS(%r11), %ecx
	xorl	%eax, %eax
	testl	%ecx, %ecx
	jz	2f
1:	movzbl	PLAN_FAST_OFFS(%r11,%rax), %edi	/* frame offset of argument i */
	addq	%rdx, %rdi
	movq	%rdi, (%rsp,%rax,8)		/* avalue[i] = frame + offset */
	incl	%eax
	cmpl	%ecx, %eax
	jne	1b
2:	movl	PLAN_FAST_RET(%r11), %eax
	movq	%rax, FRAME_RET_RAX(%rdx)
	movl	PLAN_RET_BUF(%r11), %esi
	addq	%rsp, %rsi			/* rvalue = scratch + ret_buf */
	movq	%rsi, FRAME_RET_RDX(%rdx)
	movq	HDR_CLOSURE(%r10), %rax
	movq	CLOSURE_CIF(%rax), %rdi
	movq	%rsp, %rdx			/* avalue */
	movq	CLOSURE_USER_DATA(%rax), %rcx
	call	*CLOSURE_FUN(%rax)
	movl	-FRAME_SIZE+FRAME_RET_RAX(%rbp), %ecx
	movq	-FRAME_SIZE+FRAME_RET_RDX(%rbp), %rsi
	/* Load the return value the way libffi's unix64 closure does: read
	 * exactly the type's size and extend it. */
	cmpl	$FAST_RET_I64, %ecx
	jne	3f
	movq	(%rsi), %rax
	RETURN
3:	cmpl	$FAST_RET_S32, %ecx
	jne	4f
	movslq	(%rsi), %rax
	RETURN
4:	cmpl	$FAST_RET_DOUBLE, %ecx
	jne	5f
	movsd	(%rsi), %xmm0
	RETURN
5:	cmpl	$FAST_RET_U32, %ecx
	jne	6f
	movl	(%rsi), %eax
	RETURN
6:	cmpl	$FAST_RET_FLOAT, %ecx
	jne	7f
	movss	(%rsi), %xmm0
	RETURN
7:	cmpl	$FAST_RET_U8, %ecx
	jne	8f
	movzbl	(%rsi), %eax
	RETURN
8:	cmpl	$FAST_RET_S8, %ecx
	jne	9f
	movsbq	(%rsi), %rax
	RETURN
9:	cmpl	$FAST_RET_U16, %ecx
	jne	10f
	movzwl	(%rsi), %eax
	RETURN
10:	cmpl	$FAST_RET_S16, %ecx
	jne	11f
	movswq	(%rsi), %rax
11:	RETURN					/* FAST_RET_VOID */
	.cfi_endproc
END(statictramp_entry_sysv_fast)

GNU_STACK
