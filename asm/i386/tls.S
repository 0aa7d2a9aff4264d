/*
 * statictramp_thread_state: one TLS word per thread holding the address of
 * that thread's state (src/thread_state.rs), reached through a TLS
 * descriptor so that the library needs no static TLS (no DF_STATIC_TLS:
 * it can be dlopened after other objects used up glibc's surplus). When
 * the offset the descriptor gives is the same in every thread, the runtime
 * keeps it and adds it to %gs:0 without calling these functions again
 * (src/arch/i386/tls.rs).
 *
 * statictramp_tls_offset() -> eax: this thread's word's offset from the
 *   thread pointer, through the descriptor (`leal sym@tlsdesc(%ebx), %eax;
 *   call *sym@tlscall(%eax)`). Called from Rust as an `extern "C"`
 *   function: clobbers eax, ecx, edx (the descriptor ABI promises to keep
 *   ecx and edx, but a glibc without the fix for its bug 31372 may run C
 *   code on the allocating path). ebx is saved: it holds the GOT address
 *   the descriptor sequence needs.
 *   statictramp_tls_call labels its `call *(%eax)` (ff 10): in an
 *   executable the linker relaxes the pair to a constant offset (the call
 *   becomes a 2-byte nop), which the runtime tells by these bytes.
 *
 * statictramp_tls_descriptor() -> eax: the address of the descriptor (its
 *   two words in the GOT: resolver, argument), the `leal` alone; where the
 *   linker relaxed the sequence, the constant offset instead. Clobbers eax.
 *
 * Frame of both (ebx saved):
 *     esp+0  saved ebx                 <- CFA - 8
 *     esp+4  return address
 */
#include "../common.h"
#include "layout.h"

	.section .tbss, "awT", %nobits
	.balign 4
	.globl	statictramp_thread_state
	.hidden	statictramp_thread_state
	.type	statictramp_thread_state, %object
	.size	statictramp_thread_state, 4
statictramp_thread_state:
	.zero	4

	.text

ENTRY(statictramp_tls_offset)
	.cfi_startproc
	pushl	%ebx
	.cfi_def_cfa_offset 8
	.cfi_offset %ebx, -8
	call	.Lpc_thunk_bx			/* ebx = address of the addl */
	addl	$_GLOBAL_OFFSET_TABLE_, %ebx	/* ebx = GOT (R_386_GOTPC) */
	leal	statictramp_thread_state@tlsdesc(%ebx), %eax
	.globl	statictramp_tls_call
	.hidden	statictramp_tls_call
statictramp_tls_call:
	call	*statictramp_thread_state@tlscall(%eax)	/* eax = offset from the TP */
	popl	%ebx
	.cfi_restore %ebx
	.cfi_def_cfa_offset 4
	ret
	.cfi_endproc
END(statictramp_tls_offset)

ENTRY(statictramp_tls_descriptor)
	.cfi_startproc
	pushl	%ebx
	.cfi_def_cfa_offset 8
	.cfi_offset %ebx, -8
	call	.Lpc_thunk_bx
	addl	$_GLOBAL_OFFSET_TABLE_, %ebx
	leal	statictramp_thread_state@tlsdesc(%ebx), %eax	/* the descriptor */
	popl	%ebx
	.cfi_restore %ebx
	.cfi_def_cfa_offset 4
	ret
	.cfi_endproc
END(statictramp_tls_descriptor)

/* The PC thunk for the GOT address: returns normally (balanced call/ret). */
LOCAL(.Lpc_thunk_bx)
	.cfi_startproc
	movl	(%esp), %ebx
	ret
	.cfi_endproc
END(.Lpc_thunk_bx)

FILE_NOTES
