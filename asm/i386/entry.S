/*
 * statictramp_entry_i386: the closure entry of every libffi x86-32
 * convention (SYSV, STDCALL, THISCALL, FASTCALL, MS_CDECL, PASCAL,
 * REGISTER). The conventions differ in which registers carry arguments,
 * in argument order and in who pops: the Plan (statictramp-abi i386)
 * says where each argument is, and PLAN_POP how many bytes of the
 * caller's arguments to pop; the entry itself treats them all alike.
 *
 * In (from a slot or a classic trampoline, table.S):
 *     esp+0   the caller's eax (reloaded by PROLOGUE)
 *     esp+4   closure header
 *     esp+8   the caller's return address
 *     esp+12  the caller's stack arguments
 *     eax, edx, ecx: register arguments where the convention has them.
 *
 * Frame after the prologue:
 *
 *     ebp+16 ..          caller's stack arguments (FRAME_STACK_PTR points here)
 *     ebp+12             return address                       <- CFA - 4
 *     ebp+8              header
 *     ebp+4              the caller's eax, as the slot saved it
 *     ebp+0              caller's ebp                         <- CFA - 16
 *     ebp-4              address of the frame below
 *     frame (16-aligned) FRAME_SIZE bytes (layout.h FRAME_*):
 *                          +0 eax  +4 edx  +8 ecx  +12 stack argument pointer
 *                          +16 return slot eax  +24 return slot edx
 *     scratch            PLAN_SCRATCH bytes (a multiple of 16): avalue[] at
 *                        its start, gathered arguments, the return buffer;
 *                        reserved page by page (a stack overflow faults in
 *                        the guard page, never beyond it)
 *     esp                statictramp_dispatch's three arguments
 *
 *   statictramp_dispatch(frame, header, scratch) -> eax = RetKind
 * builds avalue[] and calls the handler (src/dispatch.rs); the entry then
 * loads eax:edx from the return slots, or pushes the x87 value whose buffer
 * the dispatcher left in the eax return slot (flds / fldl / fldt).
 *
 * Return: the caller expects esp to come back above its arguments, plus N
 * = PLAN_POP bytes where the callee pops, and the slot's two words are
 * ours to remove: frame.h's RETURN_POP_ECX, with N only known at run time.
 * The fast entries (entry_fast.S) serve the plans that need no Rust.
 */
#include "../common.h"
#include "layout.h"
#include "frame.h"

	.hidden	statictramp_dispatch
	.text

ENTRY(statictramp_entry_i386)
	.cfi_startproc
	PROLOGUE
	subl	$4 + FRAME_SIZE, %esp
	andl	$-16, %esp			/* frame: 16-aligned */
	movl	%esp, -4(%ebp)
	movl	%eax, FRAME_EAX(%esp)
	movl	%edx, FRAME_EDX(%esp)
	movl	%ecx, FRAME_ECX(%esp)
	leal	16(%ebp), %eax			/* first stack argument */
	movl	%eax, FRAME_STACK_PTR(%esp)
	movl	8(%ebp), %ecx			/* header */
	movl	HDR_PLAN(%ecx), %eax
	movl	PLAN_SCRATCH(%eax), %eax	/* scratch bytes, a multiple of 16 */
	/* esp -= eax, touching every page on the way down. */
1:	cmpl	$4096, %eax
	jb	2f
	subl	$4096, %esp
	orl	$0, (%esp)
	subl	$4096, %eax
	jmp	1b
2:	subl	%eax, %esp			/* scratch */
	movl	%esp, %eax
	subl	$16, %esp			/* three arguments, 16-aligned */
	movl	-4(%ebp), %edx
	movl	%edx, 0(%esp)			/* arg 1: frame */
	movl	%ecx, 4(%esp)			/* arg 2: header */
	movl	%eax, 8(%esp)			/* arg 3: scratch */
	call	statictramp_dispatch		/* hidden: direct call, no PLT */
	movl	-4(%ebp), %ecx			/* frame */
	cmpl	$RET_KIND_REGS, %eax
	jne	3f
	movl	FRAME_RET_EAX(%ecx), %eax
	movl	FRAME_RET_EDX(%ecx), %edx
	jmp	.Lreturn
3:	movl	FRAME_RET_EAX(%ecx), %edx	/* x87: the return buffer's address */
	cmpl	$RET_KIND_X87_FLOAT, %eax
	jne	4f
	flds	(%edx)
	jmp	.Lreturn
4:	cmpl	$RET_KIND_X87_DOUBLE, %eax
	jne	5f
	fldl	(%edx)
	jmp	.Lreturn
5:	fldt	(%edx)				/* RET_KIND_X87: long double */
.Lreturn:
	movl	8(%ebp), %ecx			/* header */
	movl	HDR_PLAN(%ecx), %ecx
	movl	PLAN_POP(%ecx), %ecx		/* N */
	RETURN_POP_ECX
	.cfi_endproc
END(statictramp_entry_i386)

FILE_NOTES
