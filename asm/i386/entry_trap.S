/*
 * statictramp_entry_trap: the entry of closures that must not be called —
 * freed closures and records allocated but not yet prepared.
 *
 * In (from a slot or a classic trampoline, table.S):
 *     esp+0 the caller's eax, esp+4 header, esp+8 return address.
 * Never returns: statictramp_trap(header) prints a diagnostic naming the
 * case and aborts. Frame: ebp-based (CFA = ebp + 16), the stack 16-byte
 * aligned at the call as the i386 System V ABI wants.
 */
#include "../common.h"
#include "layout.h"

	.hidden	statictramp_trap
	.text

ENTRY(statictramp_entry_trap)
	.cfi_startproc
	.cfi_def_cfa_offset 12		/* the slot's two words above the return address */
	endbr32
	pushl	%ebp
	.cfi_def_cfa_offset 16
	.cfi_offset %ebp, -16
	movl	%esp, %ebp
	.cfi_def_cfa_register %ebp
	movl	8(%ebp), %eax		/* header */
	andl	$-16, %esp
	subl	$12, %esp
	pushl	%eax			/* arg 1: header */
	call	statictramp_trap	/* hidden: a direct call, no PLT */
	ud2
	.cfi_endproc
END(statictramp_entry_trap)

FILE_NOTES
