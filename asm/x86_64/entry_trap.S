/*
 * statictramp_entry_trap: the entry of closures that must not be called —
 * freed closures (their header has the trap entry and the FREED magic) and
 * records allocated but not yet prepared.
 *
 * In: r10 = header. Never returns: statictramp_trap(header: rdi) prints a
 * diagnostic naming the case and aborts. Frame: rsp is moved by 8 so the
 * call happens with rsp % 16 == 0; CFA = rsp + 16 after that.
 */
#include "../common.h"
#include "layout.h"

/* The Rust diagnostic (src/dispatch.rs), called directly: hidden, so the
 * linked symbol is neither exported nor interposable (the visibility of
 * any reference applies to the definition). */
	.hidden	statictramp_trap

	.text

ENTRY(statictramp_entry_trap)
	.cfi_startproc
	endbr64
	subq	$8, %rsp
	.cfi_def_cfa_offset 16
	movq	%r10, %rdi
	call	statictramp_trap
	ud2
	.cfi_endproc
END(statictramp_entry_trap)

FILE_NOTES
