/*
 * x86_64 trampoline tables.
 *
 * Contract: each slot is SLOT_SIZE (16) bytes of code
 *
 *     endbr64                      ; IBT landing pad: callers reach slots indirectly
 *     movq  DATA(%rip), %r10       ; r10 = the slot's data word = closure header
 *     jmpq  *HDR_ENTRY(%r10)       ; the header names the entry (per ABI / fast)
 *     int3 ...                     ; padding, never executed
 *
 * r10 is a scratch register at a call boundary in both SysV and Win64, so
 * the argument registers reach the entry untouched. The slot never uses the
 * stack: the entry sees the caller's frame exactly as a direct call leaves it.
 *
 * Two tables with identical slot code but different data addressing:
 *
 * statictramp_image_table: IMAGE_SLOTS slots whose data words are in .bss
 *   (statictramp_image_data, DATA_STRIDE bytes per slot, addressed by label). These
 *   serve the first closures with no mmap, no file and no /proc.
 *
 * statictramp_template: TEMPLATE_SLOTS slots, TEMPLATE_ALIGN-aligned, never
 *   executed in place. Slot i reads the word at (template start + DATA_DIST +
 *   i * DATA_STRIDE), i.e. (its own address + DATA_DIST - i * (SLOT_SIZE -
 *   DATA_STRIDE)): data words are packed 8 bytes apart, not 16;
 *   the runtime maps copies of these pages (from the library file or a
 *   sealed memfd, never a writable alias) inside a reserved region whose
 *   data half lies DATA_DIST above. Position independent: no relocations.
 */
#include "../common.h"
#include "layout.h"

/* One slot whose data word is at `data` (an address expression). */
.macro SLOT data
0:	endbr64
	movq	\data(%rip), %r10
	jmpq	*HDR_ENTRY(%r10)
	.fill	SLOT_SIZE - (. - 0b), 1, 0xcc
	.if (. - 0b) != SLOT_SIZE
	.error "trampoline slot is not SLOT_SIZE bytes"
	.endif
.endm

	.section .text.statictramp_image, "ax", @progbits
	.balign 4096
	.globl	statictramp_image_table
	.hidden	statictramp_image_table
	.type	statictramp_image_table, @object
statictramp_image_table:
	.set	slot_index, 0
	.rept	IMAGE_SLOTS
	SLOT	(statictramp_image_data + slot_index * DATA_STRIDE)
	.set	slot_index, slot_index + 1
	.endr
	.size	statictramp_image_table, . - statictramp_image_table

	.section .text.statictramp_template, "ax", @progbits
	.balign TEMPLATE_ALIGN
	.globl	statictramp_template
	.hidden	statictramp_template
	.type	statictramp_template, @object
statictramp_template:
	.set	slot_index, 0
	.rept	TEMPLATE_SLOTS
	/* Relative to the template's own start, so copies work anywhere. */
	SLOT	(statictramp_template + DATA_DIST + slot_index * DATA_STRIDE)
	.set	slot_index, slot_index + 1
	.endr
	.if (. - statictramp_template) != TEMPLATE_SLOTS * SLOT_SIZE
	.error "template size"
	.endif
	.size	statictramp_template, . - statictramp_template

	.section .bss.statictramp_image_data, "aw", @nobits
	.balign 64
	.globl	statictramp_image_data
	.hidden	statictramp_image_data
	.type	statictramp_image_data, @object
statictramp_image_data:
	.zero	IMAGE_SLOTS * DATA_STRIDE
	.size	statictramp_image_data, . - statictramp_image_data

GNU_STACK
