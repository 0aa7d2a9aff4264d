/*
 * x86_64 Microsoft x64 closure entry (libffi FFI_WIN64 / FFI_EFI64 / FFI_GNUW64).
 *
 * Contract: reached by `jmp` from a trampoline slot with r10 = closure header;
 * arguments in rcx, rdx, r8, r9 / xmm0..xmm3 and on the stack above the
 * caller's 32-byte home area. Returns in rax or xmm0 (rdx/xmm1 are loaded
 * too; they are volatile in this convention). rbx, rbp, rdi, rsi, r12..r15
 * and xmm6..xmm15 are callee-saved here, but the System V dispatcher may
 * clobber rdi, rsi and xmm6..xmm15, so the entry saves them itself.
 *
 * Frame after the prologue:
 *
 *     rbp+48 ..          stack arguments 5.. (FRAME_STACK_PTR + 32)
 *     rbp+16 .. rbp+48   caller's home area for rcx, rdx, r8, r9
 *     rbp+8              return address
 *     rbp+0              caller's rbp                           <- CFA - 16
 *     rbp-336 = frame    +0   rcx rdx r8 r9 (frame gpr 0..3)
 *                        +48  xmm0..xmm3 (low 8 bytes)
 *                        +112 return slots rax rdx xmm0 xmm1
 *                        +144 pointer to the first stack slot (the home area)
 *                        +160 saved rsi, +168 saved rdi, +176 xmm6..xmm15
 *     rsp                scratch (PLAN_SCRATCH bytes, reserved page by page:
 *                        SUB_RSP_PROBED, stack.h)
 */
#include "../common.h"
#include "layout.h"
#include "stack.h"

/* The Rust dispatcher (src/dispatch.rs), called directly: hidden, so the
 * linked symbol is neither exported nor interposable (the visibility of
 * any reference applies to the definition). */
	.hidden	statictramp_dispatch

	.text

ENTRY(statictramp_entry_win64)
	.cfi_startproc
	endbr64
	pushq	%rbp
	.cfi_def_cfa_offset 16
	.cfi_offset %rbp, -16
	movq	%rsp, %rbp
	.cfi_def_cfa_register %rbp
	subq	$WIN64_FRAME_SIZE, %rsp
	/* Callee-saved in Win64, clobberable by the SysV dispatcher. */
	movq	%rsi, WIN64_SAVE_RSI(%rsp)
	.cfi_offset %rsi, WIN64_SAVE_RSI - WIN64_FRAME_SIZE - 16
	movq	%rdi, WIN64_SAVE_RDI(%rsp)
	.cfi_offset %rdi, WIN64_SAVE_RDI - WIN64_FRAME_SIZE - 16
	movaps	%xmm6,  WIN64_SAVE_XMM6+0(%rsp)
	movaps	%xmm7,  WIN64_SAVE_XMM6+16(%rsp)
	movaps	%xmm8,  WIN64_SAVE_XMM6+32(%rsp)
	movaps	%xmm9,  WIN64_SAVE_XMM6+48(%rsp)
	movaps	%xmm10, WIN64_SAVE_XMM6+64(%rsp)
	movaps	%xmm11, WIN64_SAVE_XMM6+80(%rsp)
	movaps	%xmm12, WIN64_SAVE_XMM6+96(%rsp)
	movaps	%xmm13, WIN64_SAVE_XMM6+112(%rsp)
	movaps	%xmm14, WIN64_SAVE_XMM6+128(%rsp)
	movaps	%xmm15, WIN64_SAVE_XMM6+144(%rsp)
	/* Argument registers into the frame. */
	movq	%rcx, FRAME_GPR+0(%rsp)
	movq	%rdx, FRAME_GPR+8(%rsp)
	movq	%r8,  FRAME_GPR+16(%rsp)
	movq	%r9,  FRAME_GPR+24(%rsp)
	movq	%xmm0, FRAME_SSE+0(%rsp)
	movq	%xmm1, FRAME_SSE+8(%rsp)
	movq	%xmm2, FRAME_SSE+16(%rsp)
	movq	%xmm3, FRAME_SSE+24(%rsp)
	leaq	16(%rbp), %rax			/* first stack slot: the home area */
	movq	%rax, FRAME_STACK_PTR(%rsp)
	movq	%rsp, %rdi			/* arg 1: frame */
	movq	%r10, %rsi			/* arg 2: header */
	movq	HDR_PLAN(%r10), %rax
	movl	PLAN_SCRATCH(%rax), %eax	/* multiple of 16, up to ~33 KiB */
	SUB_RSP_PROBED %rax			/* stack.h: page by page */
	movq	%rsp, %rdx			/* arg 3: scratch */
	call	statictramp_dispatch
	leaq	-WIN64_FRAME_SIZE(%rbp), %rcx	/* frame */
	movq	WIN64_SAVE_RSI(%rcx), %rsi
	movq	WIN64_SAVE_RDI(%rcx), %rdi
	movaps	WIN64_SAVE_XMM6+0(%rcx), %xmm6
	movaps	WIN64_SAVE_XMM6+16(%rcx), %xmm7
	movaps	WIN64_SAVE_XMM6+32(%rcx), %xmm8
	movaps	WIN64_SAVE_XMM6+48(%rcx), %xmm9
	movaps	WIN64_SAVE_XMM6+64(%rcx), %xmm10
	movaps	WIN64_SAVE_XMM6+80(%rcx), %xmm11
	movaps	WIN64_SAVE_XMM6+96(%rcx), %xmm12
	movaps	WIN64_SAVE_XMM6+112(%rcx), %xmm13
	movaps	WIN64_SAVE_XMM6+128(%rcx), %xmm14
	movaps	WIN64_SAVE_XMM6+144(%rcx), %xmm15
	cmpl	$RET_KIND_REGS, %eax
	jne	1f
	movq	FRAME_RET_RAX(%rcx), %rax
	movq	FRAME_RET_RDX(%rcx), %rdx
	movq	FRAME_RET_XMM0(%rcx), %xmm0
	movq	FRAME_RET_XMM1(%rcx), %xmm1
	.cfi_remember_state
	leave
	.cfi_def_cfa %rsp, 8
	ret
	.cfi_restore_state
1:	movq	FRAME_RET_RAX(%rcx), %rcx	/* x87 return: buffer address */
	fldt	(%rcx)
	leave
	.cfi_def_cfa %rsp, 8
	ret
	.cfi_endproc
END(statictramp_entry_win64)

FILE_NOTES
