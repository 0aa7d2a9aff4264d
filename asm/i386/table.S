/*
 * i386 trampoline tables: the register-free slot.
 *
 * Contract: a slot is reached by the caller's `call` with every register
 * as the convention left it. FFI_REGISTER passes arguments in eax, edx and
 * ecx, FASTCALL in ecx and edx, THISCALL in ecx, and everything else is
 * callee-saved, so no register is free to carry the closure: the slot
 * passes it on the stack, and eax, the one register it must use, goes on
 * the stack too for the entry to take back. i386 has no PC-relative data
 * addressing, so the slot gets its own address from a call to the PC
 * thunk in its last bytes, which returns normally (a balanced call/ret:
 * safe for CET shadow stacks and for the return-address predictor; never
 * `call 1f; pop`).
 *
 * Slot (26 bytes of SLOT_SIZE = 32):
 *
 *     endbr32                     ; IBT landing pad (callers call indirectly)
 *     pushl %eax                  ; room for the header word
 *     pushl %eax                  ; the caller's eax
 *     call  2f                    ; eax = address of the next instruction
 *  1: addl  $(REC - 1b), %eax     ; eax = this slot's record = its header
 *     movl  %eax, 4(%esp)         ; header word
 *     jmp   *HDR_ENTRY(%eax)      ; to the entry the header names
 *  2: movl  (%esp), %eax          ; the PC thunk
 *     ret
 *
 * The entry then sees:
 *
 *     esp+0   the caller's eax (every entry reloads eax from it first,
 *             frame.h PROLOGUE)
 *     esp+4   the closure header
 *     esp+8   the caller's return address
 *     esp+12  the caller's stack arguments
 *
 * and removes both words when it returns (with the caller's arguments
 * where the convention pops them). Foreign closures' classic trampolines
 * (src/arch/i386/mod.rs) build the same two words.
 *
 * Groups: a 4 KiB page holds SLOTS_PER_GROUP = 128 slots; each slot
 * carries its own thunk, so nothing else shares the page and the group
 * arithmetic of src/table.rs folds away as on x86_64.
 *
 * statictramp_image_table: IMAGE_SLOTS slots whose records are in .bss
 *   (statictramp_image_records), addressed PC-relatively by label.
 * statictramp_template: TEMPLATE_SLOTS slots, never executed in place; slot
 *   j's record is at (template start + REC_DIST + j * REC_STRIDE). Copies
 *   are mapped from the library file or a sealed memfd, never a writable
 *   alias. Position independent: no relocations.
 */
#include "../common.h"
#include "layout.h"

/* One slot whose record is at `rec` (an address expression). */
.macro SLOT rec
0:	endbr32
	pushl	%eax
	pushl	%eax
	call	2f
1:	addl	$(\rec - 1b), %eax
	movl	%eax, 4(%esp)
	jmp	*HDR_ENTRY(%eax)
2:	movl	(%esp), %eax		/* the PC thunk: eax = return address */
	ret
	.fill	SLOT_SIZE - (. - 0b), 1, 0xcc
	.if (. - 0b) != SLOT_SIZE
	.error "trampoline slot is not SLOT_SIZE bytes"
	.endif
.endm

/* One group: SLOTS_PER_GROUP slots filling GROUP_BYTES; the records of
 * the group's slots start at `rec0` (slot k at rec0 + k * REC_STRIDE). */
.macro GROUP rec0
8:
	.set	.Lslot_k, 0
	.rept	SLOTS_PER_GROUP
	SLOT	(\rec0 + .Lslot_k * REC_STRIDE)
	.set	.Lslot_k, .Lslot_k + 1
	.endr
	.if (. - 8b) != GROUP_BYTES
	.error "slot group is not GROUP_BYTES bytes"
	.endif
.endm

	.section .text.statictramp_image, "ax", %progbits
	.balign 4096
	.globl	statictramp_image_table
	.hidden	statictramp_image_table
	.type	statictramp_image_table, %object
statictramp_image_table:
	.set	group_index, 0
	.rept	IMAGE_SLOTS / SLOTS_PER_GROUP
	GROUP	(statictramp_image_records + group_index * SLOTS_PER_GROUP * REC_STRIDE)
	.set	group_index, group_index + 1
	.endr
	.size	statictramp_image_table, . - statictramp_image_table

	.section .text.statictramp_template, "ax", %progbits
	.balign TEMPLATE_ALIGN
	.globl	statictramp_template
	.hidden	statictramp_template
	.type	statictramp_template, %object
statictramp_template:
	.set	group_index, 0
	.rept	TEMPLATE_SLOTS / SLOTS_PER_GROUP
	/* Relative to the template's own start, so copies work anywhere. */
	GROUP	(statictramp_template + REC_DIST + group_index * SLOTS_PER_GROUP * REC_STRIDE)
	.set	group_index, group_index + 1
	.endr
	.if (. - statictramp_template) != TEMPLATE_SLOTS / SLOTS_PER_GROUP * GROUP_BYTES
	.error "template size"
	.endif
	.size	statictramp_template, . - statictramp_template

	.section .bss.statictramp_image_records, "aw", %nobits
	.balign 64
	.globl	statictramp_image_records
	.hidden	statictramp_image_records
	.type	statictramp_image_records, %object
statictramp_image_records:
	.zero	IMAGE_SLOTS * REC_STRIDE
	.size	statictramp_image_records, . - statictramp_image_records

FILE_NOTES
