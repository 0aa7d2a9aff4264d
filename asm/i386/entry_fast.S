/*
 * The i386 fast entries: plans whose every argument sits whole in a saved
 * register or in the caller's stack (no gathering, no pointer to follow),
 * at most FAST_MAX_ARGS of them, and whose return is void, one integer of
 * at most 8 bytes, one x87 value or in memory. They call the handler
 * themselves, with no Rust on the path, in any convention: the plan gives
 * every argument's address and the return sequence (which loads the
 * value and pops what the convention pops) as data. Chosen at prep by
 * src/arch/i386/mod.rs `select_entry`; everything else goes to
 * statictramp_entry_i386 (entry.S).
 *
 * In: as every entry (frame.h): esp+0 the caller's eax, esp+4 header, esp+8
 * return address, esp+12 stack arguments; eax, edx, ecx as the caller left
 * them (REGISTER, FASTCALL and THISCALL arguments).
 *
 * Frame (CFA = ebp + 16 from the prologue to the return; FAST_* in
 * layout.h; "a" = esp after the `andl`, 16-byte aligned):
 *
 *     ebp+16 ..           the caller's stack arguments
 *     ebp+12              return address
 *     ebp+8               header
 *     ebp+4               the caller's eax, as the slot saved it
 *     ebp+0               caller's ebp
 *     ebp-4               ecx  } the argument registers, saved
 *     ebp-8               edx  }
 *     ebp-12              eax  }
 *     ebp-16              the return buffer's address (FAST_BUF_PTR)
 *     ...                 (alignment)
 *     a+16 .. a+80        avalue[FAST_MAX_ARGS]
 *     a+0  .. a+16        return buffer
 *     a-16 = esp at the   fun(cif, rvalue, avalue, user_data), pushed;
 *       call              the call is at a 16-byte aligned esp
 *
 * avalue[i] = ebp + PLAN_FAST_OFFS[i] (int16: negative = a saved
 * register, >= 16 = the caller's stack). rvalue = the word at ebp +
 * PLAN_FAST_RVALUE: FAST_BUF_PTR (the buffer) or the caller's hidden
 * pointer (a saved register or a stack slot). After the handler returns,
 * `jmp *PLAN_FAST_TARGET` reaches the return sequence chosen at prep
 * (statictramp_i386_fast_ret_table, by return kind and pop), with ecx =
 * the plan and esp as at the call. Scratch registers: eax, ecx, edx (none
 * is callee-saved in any convention).
 */
#include "../common.h"
#include "layout.h"
#include "frame.h"

	.text

/* Frame set-up common to the fast entries: the prologue, the locals and
 * the aligned area, the argument registers saved; then ecx = header and
 * edx = plan. */
.macro FAST_SETUP
	PROLOGUE
	subl	$FAST_RESERVE, %esp
	andl	$-16, %esp			/* a */
	movl	%eax, -FAST_SAVED_EAX(%ebp)
	movl	%edx, -FAST_SAVED_EDX(%ebp)
	movl	%ecx, -FAST_SAVED_ECX(%ebp)
	movl	8(%ebp), %ecx			/* header */
	movl	HDR_PLAN(%ecx), %edx		/* plan */
.endm

/* avalue[i] = ebp + PLAN_FAST_OFFS[i], with esp = a. Uses eax. */
.macro POINT_AT i
	movswl	PLAN_FAST_OFFS+2*\i(%edx), %eax
	addl	%ebp, %eax
	movl	%eax, FAST_AVALUE-16+4*\i(%esp)
.endm

/* Push fun's arguments (user_data, avalue, rvalue = eax, cif), call fun
 * with esp at a - 16, and go to the plan's return sequence. In: esp = a,
 * ecx = header, eax = rvalue. */
.macro FAST_CALL
	movl	HDR_CLOSURE(%ecx), %ecx		/* the ffi_closure */
	pushl	CLOSURE_USER_DATA(%ecx)		/* esp = a - 4 */
	leal	FAST_AVALUE-16+4(%esp), %edx
	pushl	%edx				/* avalue; esp = a - 8 */
	pushl	%eax				/* rvalue; esp = a - 12 */
	pushl	CLOSURE_CIF(%ecx)		/* esp = a - 16 */
	call	*CLOSURE_FUN(%ecx)
	movl	8(%ebp), %ecx
	movl	HDR_PLAN(%ecx), %ecx		/* plan, for the return sequence */
	jmp	*PLAN_FAST_TARGET(%ecx)
.endm

/*
 * statictramp_entry_i386_fastN, N = 0..FAST_UNROLLED_MAX: N arguments, the
 * return in the buffer (not in memory): avalue[] filled without a loop.
 */
.macro FAST_UNROLLED n
ENTRY(statictramp_entry_i386_fast\n)
	.cfi_startproc
	FAST_SETUP
	.irp i, 0, 1, 2, 3
	.if \i < \n
	POINT_AT \i
	.endif
	.endr
	movl	%esp, %eax			/* rvalue: the buffer at a */
	FAST_CALL
	.cfi_endproc
END(statictramp_entry_i386_fast\n)
.endm

	FAST_UNROLLED 0
	FAST_UNROLLED 1
	FAST_UNROLLED 2
	FAST_UNROLLED 3
	FAST_UNROLLED 4
	.if FAST_UNROLLED_MAX != 4
	.error "FAST_UNROLLED_MAX: add or remove FAST_UNROLLED lines"
	.endif

/*
 * statictramp_entry_i386_fast: up to FAST_MAX_ARGS arguments (a loop), any
 * fast return including one in memory. Its function also holds every
 * fast return sequence.
 */
ENTRY(statictramp_entry_i386_fast)
	.cfi_startproc
	FAST_SETUP
	movl	PLAN_NARGS(%edx), %ecx
	testl	%ecx, %ecx
	jz	2f
1:	movswl	PLAN_FAST_OFFS-2(%edx,%ecx,2), %eax	/* argument ecx-1 */
	addl	%ebp, %eax
	movl	%eax, FAST_AVALUE-16-4(%esp,%ecx,4)
	decl	%ecx
	jnz	1b
2:	movl	%esp, -FAST_BUF_PTR(%ebp)	/* the buffer's address */
	movl	PLAN_FAST_RVALUE(%edx), %eax
	movl	(%ebp,%eax), %eax		/* rvalue: that, or the hidden pointer */
	movl	8(%ebp), %ecx			/* header */
	FAST_CALL

/* Return sequences. In: ecx = plan, esp = a - 16 (the return buffer at
 * esp + 16). Each loads the value the way libffi's i386 closures do
 * (sysv.S: reading exactly the type's size, extended) and returns. */
.macro LOAD_void
.endm
.macro LOAD_u8
	movzbl	FAST_RET_BUF(%esp), %eax
.endm
.macro LOAD_s8
	movsbl	FAST_RET_BUF(%esp), %eax
.endm
.macro LOAD_u16
	movzwl	FAST_RET_BUF(%esp), %eax
.endm
.macro LOAD_s16
	movswl	FAST_RET_BUF(%esp), %eax
.endm
.macro LOAD_i32
	movl	FAST_RET_BUF(%esp), %eax
.endm
.macro LOAD_i64
	movl	FAST_RET_BUF(%esp), %eax
	movl	FAST_RET_BUF+4(%esp), %edx
.endm
.macro LOAD_float
	flds	FAST_RET_BUF(%esp)
.endm
.macro LOAD_double
	fldl	FAST_RET_BUF(%esp)
.endm
.macro LOAD_ldouble
	fldt	FAST_RET_BUF(%esp)
.endm
.macro LOAD_mem				/* the hidden pointer, back in eax */
	movl	PLAN_FAST_RVALUE(%ecx), %eax
	movl	(%ebp,%eax), %eax
.endm

/* How a sequence returns: popping nothing, 4 bytes (a System V hidden
 * pointer), or PLAN_POP bytes. */
.macro POP_none
	RETURN_CONST 0
.endm
.macro POP_4
	RETURN_CONST 4
.endm
.macro POP_n
	movl	PLAN_POP(%ecx), %ecx
	RETURN_POP_ECX
.endm

.macro RET_SEQ kind, pop
.Lfast_\kind\()_\pop:
	endbr32					/* reached by jmp *PLAN_FAST_TARGET */
	LOAD_\kind
	POP_\pop
.endm

/* The sequences for one way of popping, in FAST_RET_* order. */
.macro RET_SEQS pop
	RET_SEQ void, \pop
	RET_SEQ u8, \pop
	RET_SEQ s8, \pop
	RET_SEQ u16, \pop
	RET_SEQ s16, \pop
	RET_SEQ i32, \pop
	RET_SEQ i64, \pop
	RET_SEQ float, \pop
	RET_SEQ double, \pop
	RET_SEQ ldouble, \pop
	RET_SEQ mem, \pop
.endm

	RET_SEQS none
	RET_SEQS 4
	RET_SEQS n
	.cfi_endproc
END(statictramp_entry_i386_fast)

/*
 * statictramp_entry_i386_void0: no arguments, no return value, nothing
 * popped (`void f(void)` in every convention). Calls fun(cif, rvalue =
 * a 16-byte buffer, avalue = the same address (no entries), user_data).
 *
 *     ebp+0               caller's ebp (CFA = ebp + 16, frame.h)
 *     a+0 .. a+16         the buffer (a: 16-byte aligned)
 *     a-16 = esp          fun's arguments, pushed
 */
ENTRY(statictramp_entry_i386_void0)
	.cfi_startproc
	PROLOGUE
	andl	$-16, %esp
	subl	$16, %esp			/* a: the buffer */
	movl	%esp, %eax
	movl	8(%ebp), %ecx
	movl	HDR_CLOSURE(%ecx), %ecx		/* the ffi_closure */
	pushl	CLOSURE_USER_DATA(%ecx)
	pushl	%eax				/* avalue */
	pushl	%eax				/* rvalue */
	pushl	CLOSURE_CIF(%ecx)
	call	*CLOSURE_FUN(%ecx)
	RETURN_CONST 0
	.cfi_endproc
END(statictramp_entry_i386_void0)

/* Offsets from the table to each return sequence, FAST_RET_COUNT per way
 * of popping (FAST_POP_*), read by src/arch/i386/mod.rs to fill
 * PLAN_FAST_TARGET. */
	.section .rodata.statictramp_i386_fast_ret, "a", %progbits
	.balign 4
	.globl	statictramp_i386_fast_ret_table
	.hidden	statictramp_i386_fast_ret_table
	.type	statictramp_i386_fast_ret_table, %object
statictramp_i386_fast_ret_table:
.macro RET_ENTRY kind, pop
	.long	.Lfast_\kind\()_\pop - statictramp_i386_fast_ret_table
.endm
.macro RET_ENTRIES pop
	RET_ENTRY void, \pop
	RET_ENTRY u8, \pop
	RET_ENTRY s8, \pop
	RET_ENTRY u16, \pop
	RET_ENTRY s16, \pop
	RET_ENTRY i32, \pop
	RET_ENTRY i64, \pop
	RET_ENTRY float, \pop
	RET_ENTRY double, \pop
	RET_ENTRY ldouble, \pop
	RET_ENTRY mem, \pop
.endm
	RET_ENTRIES none
	RET_ENTRIES 4
	RET_ENTRIES n
	.if (. - statictramp_i386_fast_ret_table) != FAST_RET_COUNT * FAST_POP_COUNT * 4
	.error "fast return table does not match FAST_RET_COUNT * FAST_POP_COUNT"
	.endif
	.size	statictramp_i386_fast_ret_table, . - statictramp_i386_fast_ret_table

FILE_NOTES
