/*
 * x86_64 trampoline tables.
 *
 * Contract: each slot is SLOT_SIZE (16) bytes of code
 *
 *     endbr64                      ; IBT landing pad: callers reach slots indirectly
 *     leaq  REC(%rip), %r10        ; r10 = the slot's own record = closure header
 *     jmpq  *HDR_ENTRY(%r10)       ; the header names the entry (per ABI / fast)
 *     int3 ...                     ; padding, never executed
 *
 * r10 is a scratch register at a call boundary in both SysV and Win64, so
 * the argument registers reach the entry untouched. The slot never uses the
 * stack: the entry sees the caller's frame exactly as a direct call leaves it.
 *
 * Two tables with identical slot code but different record addressing:
 *
 * statictramp_image_table: IMAGE_SLOTS slots whose records are in .bss
 *   (statictramp_image_records, REC_STRIDE bytes per slot, addressed by
 *   label). These serve the first closures with no mmap, no file, no /proc.
 *
 * statictramp_template: TEMPLATE_SLOTS slots, TEMPLATE_ALIGN-aligned, never
 *   executed in place. Slot j uses the record at (template start + REC_DIST
 *   + j * REC_STRIDE). The runtime maps copies of these pages (from the
 *   library file or a sealed memfd, never a writable alias) inside a
 *   reserved region whose record half lies REC_DIST above. Position
 *   independent: no relocations.
 */
#include "../common.h"
#include "layout.h"

/* One slot whose record is at `rec` (an address expression). */
.macro SLOT rec
0:	endbr64
	leaq	\rec(%rip), %r10
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
	SLOT	(statictramp_image_records + slot_index * REC_STRIDE)
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
	SLOT	(statictramp_template + REC_DIST + slot_index * REC_STRIDE)
	.set	slot_index, slot_index + 1
	.endr
	.if (. - statictramp_template) != TEMPLATE_SLOTS * SLOT_SIZE
	.error "template size"
	.endif
	.size	statictramp_template, . - statictramp_template

	.section .bss.statictramp_image_records, "aw", @nobits
	.balign 64
	.globl	statictramp_image_records
	.hidden	statictramp_image_records
	.type	statictramp_image_records, @object
statictramp_image_records:
	.zero	IMAGE_SLOTS * REC_STRIDE
	.size	statictramp_image_records, . - statictramp_image_records

FILE_NOTES
