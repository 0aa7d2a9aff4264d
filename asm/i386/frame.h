/*
 * Prologue and returns shared by the i386 entries (entry.S,
 * entry_fast.S). Every entry is reached from a slot or a classic
 * trampoline (table.S) with
 *
 *     esp+0   the caller's eax (PROLOGUE reloads eax from it)
 *     esp+4   closure header
 *     esp+8   the caller's return address
 *     esp+12  the caller's stack arguments
 *
 * and builds the same ebp frame, so that CFA = ebp + 16 everywhere
 * between its prologue and its return (which lets the fast entries share
 * their return sequences):
 *
 *     ebp+16 ..   the caller's stack arguments
 *     ebp+12      return address                      <- CFA - 4
 *     ebp+8       header
 *     ebp+4       the caller's eax, as the slot saved it
 *     ebp+0       caller's ebp                        <- CFA - 16
 *
 * Returning drops the slot's two words and, where the convention says so,
 * N bytes of the caller's arguments (Plan::callee_pop, PLAN_POP).
 */
#ifndef STATICTRAMP_I386_FRAME_H
#define STATICTRAMP_I386_FRAME_H

/* endbr32; push %ebp; mov %esp, %ebp — with CFI (inside .cfi_startproc). */
.macro PROLOGUE
	.cfi_def_cfa_offset 12		/* the slot's two words above the return address */
	endbr32
	movl	(%esp), %eax			/* the caller's eax, saved by the slot */
	pushl	%ebp
	.cfi_def_cfa_offset 16
	.cfi_offset %ebp, -16
	movl	%esp, %ebp
	.cfi_def_cfa_register %ebp
.endm

/* Return popping \n (0 or a constant) bytes of the caller's arguments:
 * leave; drop the slot's two words; ret $n. The CFI of the code that
 * follows stays as it was. */
.macro RETURN_CONST n
	.cfi_remember_state
	leave
	.cfi_def_cfa %esp, 12
	.cfi_restore %ebp
	addl	$SLOT_WORDS_BYTES, %esp
	.cfi_def_cfa_offset 4
	.if \n
	ret	$\n
	.else
	ret
	.endif
	.cfi_restore_state
.endm

/* Return popping ecx = N bytes of the caller's arguments (N unknown to
 * the assembler). `ret $N` needs a constant, and a jump instead of ret
 * would break CET shadow stacks, so the return address is copied to the
 * top of the popped area (ebp+12+N), the saved ebp just below it, esp
 * set there, and then `pop %ebp; ret`. Only ecx (not a return register
 * in any convention) is used. CFI: CFA = ebp + 16 until the two copies;
 * for the last three instructions CFA is described as the caller's esp
 * after the pop (ecx + 4), the return address and saved ebp at their new
 * places. */
.macro RETURN_POP_ECX
	.cfi_remember_state
	leal	12(%ebp,%ecx), %ecx		/* where the return address goes */
	pushl	12(%ebp)
	popl	(%ecx)				/* return address, copied up */
	pushl	0(%ebp)
	popl	-4(%ecx)			/* caller's ebp, just below it */
	.cfi_def_cfa %ecx, 4
	.cfi_offset %eip, -4
	.cfi_offset %ebp, -8
	leal	-4(%ecx), %esp
	.cfi_def_cfa %esp, 8
	popl	%ebp
	.cfi_def_cfa_offset 4
	.cfi_restore %ebp
	ret
	.cfi_restore_state
.endm

#endif
